"""Cross-correlation RVs on simulated spectra (real spectra: tests/stellar/test_rv_real.py)."""

from __future__ import annotations

import numpy as np
import pytest

from photonpipe.spectra.resample import linear_wavelength_grid
from photonpipe.spectra.spectrum import Spectrum
from photonpipe.spectra.xcorr import CrossCorrelationError, cross_correlate
from photonpipe.stellar.simulate import normalized_flux, random_lines, simulate_echelle


@pytest.fixture(scope="module")
def lines():
    return random_lines(np.random.default_rng(3), 4950.0, 5250.0, 0.5, (10.0, 150.0), 40_000)


def test_simulated_rv_within_0p2_kms(lines) -> None:
    # Template: the same lines on a finer, linear grid (noise-free); observed: log-uniform
    # echelle pixels with a blaze, photon noise and the true relativistic Doppler shift.
    grid = linear_wavelength_grid(4950.0, 5250.0, 0.01)
    template = Spectrum(grid, normalized_flux(grid, lines))
    rng = np.random.default_rng(9)
    errors, sigmas = [], []
    for seed in range(12):
        rv = float(rng.uniform(-400.0, 400.0))
        star = simulate_echelle([(5040.0, 5120.0)], lines, rv, snr=30.0, seed=seed)
        result = cross_correlate(star.orders[0], template, max_velocity=500.0)
        errors.append(result.velocity - rv)
        sigmas.append(result.uncertainty)
        assert abs(result.velocity - rv) < 0.2
    # the Zucker (2003) uncertainty is of the size of the actual scatter
    assert 0.5 < np.median(sigmas) / np.std(errors) < 3.0
    assert result.ccf.size == result.ccf_velocity.size
    assert 0.5 < result.peak <= 1.0


def test_peak_near_the_search_edge_is_flagged(lines) -> None:
    grid = linear_wavelength_grid(4950.0, 5250.0, 0.01)
    template = Spectrum(grid, normalized_flux(grid, lines))
    inside = simulate_echelle([(5040.0, 5120.0)], lines, 280.0, snr=30.0, seed=1)
    assert cross_correlate(inside.orders[0], template, max_velocity=300.0).warnings == []
    edge = simulate_echelle([(5040.0, 5120.0)], lines, 297.0, snr=30.0, seed=1)
    result = cross_correlate(edge.orders[0], template, max_velocity=300.0)
    assert result.velocity == pytest.approx(297.0, abs=0.2)
    assert any("edge of the ±300 km/s search range" in w for w in result.warnings)
    assert not result.reliable
    outside = simulate_echelle([(5040.0, 5120.0)], lines, 320.0, snr=30.0, seed=1)
    result = cross_correlate(outside.orders[0], template, max_velocity=300.0)
    assert result.warnings  # whatever peak it finds inside ±300 km/s is not the star's


def test_template_coverage_and_masks(lines) -> None:
    """The template is used over the observed range ± the largest lag; masked lines go."""
    grid = linear_wavelength_grid(4950.0, 5250.0, 0.01)
    template = Spectrum(grid, normalized_flux(grid, lines))
    star = simulate_echelle([(4960.0, 5040.0)], lines, -150.0, snr=50.0, seed=2)
    result = cross_correlate(star.orders[0], template, max_velocity=400.0)
    # the observed range is cut so that the template covers it at ±400 km/s
    assert result.wavelength_range[0] >= 4950.0 * (1 + 400.0 / 299_792.458)
    assert result.velocity == pytest.approx(-150.0, abs=0.2)
    masked = cross_correlate(star.orders[0], template, max_velocity=400.0, masks=[(4990, 5010)])
    assert masked.velocity == pytest.approx(-150.0, abs=0.2)
    assert masked.zucker_uncertainty > result.zucker_uncertainty  # fewer pixels


def test_errors(lines) -> None:
    grid = linear_wavelength_grid(4950.0, 5000.0, 0.01)
    template = Spectrum(grid, normalized_flux(grid, lines))
    far = Spectrum(np.linspace(6000, 6100, 1000), np.ones(1000))
    with pytest.raises(CrossCorrelationError, match="do not overlap"):
        cross_correlate(far, template)
    flat = Spectrum(grid, np.ones_like(grid))
    with pytest.raises(CrossCorrelationError):
        cross_correlate(flat, flat)
