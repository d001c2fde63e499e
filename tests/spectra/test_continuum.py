"""Continuum fitting: every function recovers a known blaze under absorption lines."""

from __future__ import annotations

import numpy as np
import pytest

from photonpipe.spectra.continuum import ContinuumError, fit_continuum
from photonpipe.stellar.simulate import random_lines, simulate_echelle


@pytest.fixture(scope="module")
def star():
    lines = random_lines(np.random.default_rng(2), 4990.0, 5080.0, 0.3, (10.0, 120.0), 40_000)
    return simulate_echelle([(5000.0, 5070.0)], lines, 0.0, snr=150.0, seed=4)


@pytest.mark.parametrize(
    ("function", "degree"), [("spline", 3), ("polynomial", 6), ("legendre", 6), ("chebyshev", 6)]
)
def test_recovers_blaze(star, function: str, degree: int) -> None:
    order, truth = star.orders[0], star.continuum[0]
    fit = fit_continuum(
        order.wavelength, order.flux, order.ivar, function=function, order=degree,
        knot_spacing=10.0,
    )  # fmt: skip
    ratio = fit.continuum / truth
    inner = slice(50, -50)
    assert abs(np.median(ratio[inner]) - 1) < 0.003
    assert np.max(np.abs(ratio[inner] - 1)) < 0.02
    # asymmetric clipping removed the line pixels: the used pixels are near the continuum
    depth = 1 - order.flux / truth
    assert np.median(depth[fit.used]) < 0.01


def test_masks_and_added_points(star) -> None:
    order = star.orders[0]
    fit = fit_continuum(order.wavelength, order.flux, function="legendre", order=3,
                        masks=[(5030.0, 5040.0)])  # fmt: skip
    inside = (order.wavelength >= 5030.0) & (order.wavelength <= 5040.0)
    assert not fit.used[inside].any()
    pulled = fit_continuum(
        order.wavelength, order.flux, function="legendre", order=3,
        added_points=[(5035.0, 2.0 * order.flux.max(), 1000.0)],
    )  # fmt: skip
    i = np.argmin(np.abs(order.wavelength - 5035.0))
    assert pulled.continuum[i] > 1.2 * fit.continuum[i]


def test_errors() -> None:
    x = np.linspace(5000, 5001, 3)
    with pytest.raises(ContinuumError, match="usable pixels"):
        fit_continuum(x, np.ones(3), function="legendre", order=3)
    with pytest.raises(ContinuumError, match="unknown continuum function"):
        fit_continuum(x, np.ones(3), function="fourier")
