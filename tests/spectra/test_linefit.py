"""Gaussian and Voigt line fits on simulated spectra: accuracy and honest uncertainties."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import quad

from photonpipe.spectra.linefit import (
    LineFitError,
    fit_absorption_line,
    fixed_line_ew_uncertainty,
)
from photonpipe.spectra.profiles import gaussian, voigt, voigt_fwhm
from photonpipe.stellar.simulate import SimulatedLine, normalized_flux

SNR = 100.0
STEP = 0.02  # Å per pixel
FWHM = 0.16  # Å, R ≈ 31 000 at 5000 Å (a 150 mÅ Gaussian line stays above zero flux)


def test_profiles_have_unit_area_and_textbook_widths() -> None:
    assert quad(lambda x: gaussian(x, 0.0, 0.3), -10, 10)[0] == pytest.approx(1.0, rel=1e-9)
    area = quad(lambda x: voigt(x, 0.0, 0.05, 0.02), -np.inf, np.inf, limit=500)[0]
    assert area == pytest.approx(1.0, rel=1e-6)
    # Pure Lorentzian / pure Gaussian limits of the Olivero & Longbothum FWHM
    assert voigt_fwhm(1e-9, 0.5) == pytest.approx(1.0, rel=1e-3)
    assert voigt_fwhm(1.0, 0.0) == pytest.approx(2.3548, rel=1e-4)


def _simulate(rng, profile: str, ew: float, neighbour: bool = True):
    x = np.arange(4990.0, 5010.0, STEP)
    centre = 5000.0 + rng.uniform(-0.05, 0.05)
    gamma = 0.03 if profile == "voigt" else 0.0
    lines = [SimulatedLine(centre, ew, FWHM, gamma)]
    if neighbour:
        side = rng.choice([-1.0, 1.0])
        lines.append(SimulatedLine(centre + side * rng.uniform(0.6, 1.2), 80.0, FWHM))
    flux = normalized_flux(x, lines) + rng.normal(0.0, 1.0 / SNR, x.size)
    return x, flux, np.full(x.size, SNR**2), lines[0]


@pytest.mark.parametrize("profile", ["gaussian", "voigt"])
def test_ew_accuracy_and_pulls_at_snr_100(profile: str) -> None:
    rng = np.random.default_rng(11 if profile == "gaussian" else 12)
    ratios, pulls = [], []
    for _ in range(120):
        ew = float(rng.uniform(20.0, 150.0))
        x, flux, ivar, line = _simulate(rng, profile, ew)
        fit = fit_absorption_line(x, flux, ivar, 5000.0, profile=profile, window=2.0)
        # Truth by direct integration of the true line's depth (independent of the fit's
        # parameterisation): EW = ∫ (1 − F/Fc) dλ over ±50 Å.
        fine = np.arange(4950.0, 5050.0, 0.002)
        truth = np.trapezoid(line.depth_profile(fine), fine)
        ratios.append(fit.ew / truth)
        pulls.append((fit.ew - truth) / fit.ew_uncertainty)
    ratios, pulls = np.array(ratios), np.array(pulls)
    assert abs(np.median(ratios) - 1.0) < 0.005  # no bias beyond 0.5 %
    assert np.median(np.abs(ratios - 1.0)) < 0.02  # typical line within 2 % at S/N 100
    # honest uncertainties: pulls are standard normal
    assert abs(np.mean(pulls)) < 0.2
    assert 0.85 < np.std(pulls) < 1.2
    assert np.mean(np.abs(pulls) < 2.0) > 0.9


def test_isolated_lines_within_two_percent_or_three_sigma() -> None:
    """At S/N 100 the noise alone is 1-4 % of a 20-60 mÅ line: 2 % holds where σ allows."""
    rng = np.random.default_rng(5)
    for profile in ("gaussian", "voigt"):
        for ew in (20.0, 60.0, 100.0, 150.0):
            ratios = []
            for _ in range(8):
                x, flux, ivar, line = _simulate(rng, profile, ew, neighbour=False)
                fit = fit_absorption_line(x, flux, ivar, 5000.0, profile=profile, window=2.0)
                tolerance = max(0.02 * ew, 3.0 * fit.ew_uncertainty * 1000)
                assert abs(fit.ew * 1000 - ew) < tolerance
                assert fit.parameters["center"] == pytest.approx(line.wavelength, abs=0.02)
                ratios.append(fit.ew * 1000 / ew)
            assert abs(np.mean(ratios) - 1.0) < max(0.01, 3 * np.std(ratios) / np.sqrt(8))


def test_uncertainty_matches_cayrel_formula() -> None:
    """σ(EW) ≈ 1.5 √(FWHM·δλ) / (S/N) (Cayrel 1988) for an isolated weak Gaussian line."""
    rng = np.random.default_rng(3)
    errors = []
    for _ in range(30):
        x, flux, ivar, _ = _simulate(rng, "gaussian", 30.0, neighbour=False)
        errors.append(fit_absorption_line(x, flux, ivar, 5000.0, window=1.0).ew_uncertainty)
    cayrel = 1.5 * np.sqrt(FWHM * STEP) / SNR
    # the fit also solves for the continuum and the width, so it is somewhat larger
    assert 0.9 < np.median(errors) / cayrel < 1.6
    _, fixed = fixed_line_ew_uncertainty(x, flux, ivar, 5000.0, FWHM, window=1.0)
    assert 0.7 < fixed / cayrel < 1.3


def test_unknown_noise_is_taken_from_the_residuals() -> None:
    rng = np.random.default_rng(8)
    x, flux, ivar, _ = _simulate(rng, "gaussian", 50.0, neighbour=False)
    known = fit_absorption_line(x, flux, ivar, 5000.0)
    unknown = fit_absorption_line(x, flux, np.ones_like(x), 5000.0, noise_known=False)
    assert unknown.ew == pytest.approx(known.ew, abs=0.1 * known.ew_uncertainty)
    assert unknown.ew_uncertainty == pytest.approx(known.ew_uncertainty, rel=0.2)


def test_neighbour_is_masked() -> None:
    rng = np.random.default_rng(4)
    x, flux, ivar, _ = _simulate(rng, "gaussian", 40.0, neighbour=False)
    blended = flux - 0.3 * np.exp(-0.5 * ((x - 5000.7) / 0.05) ** 2)  # a 38 mÅ neighbour
    fit = fit_absorption_line(x, blended, ivar, 5000.0, window=2.0)
    clean = fit_absorption_line(x, flux, ivar, 5000.0, window=2.0)
    assert fit.ew == pytest.approx(clean.ew, abs=clean.ew_uncertainty)
    assert not fit.mask[np.argmin(np.abs(fit.wavelength - 5000.7))]
    assert fit.mask[np.argmin(np.abs(fit.wavelength - 5000.0))]
    assert fit.iterations >= 2


def test_line_outside_or_without_pixels() -> None:
    x = np.arange(5000.0, 5010.0, 0.02)
    with pytest.raises(LineFitError, match="fewer than 10 usable pixels"):
        fit_absorption_line(x, np.ones_like(x), np.ones_like(x), 6000.0)
    with pytest.raises(LineFitError, match="unknown profile"):
        fit_absorption_line(x, np.ones_like(x), np.ones_like(x), 5005.0, profile="box")


def test_central_weighting_keeps_honest_uncertainties() -> None:
    """With the SMH-like central weights the sandwich covariance still gives pulls of 1."""
    rng = np.random.default_rng(21)
    pulls = []
    for _ in range(150):
        ew = float(rng.uniform(20.0, 150.0))
        x, flux, ivar, line = _simulate(rng, "gaussian", ew)
        fit = fit_absorption_line(
            x, flux, ivar, 5000.0, window=2.5, central_weighting=True, neighbour_sigma=1.5,
            neighbour_pixels=3, mask_margin=1.0,
        )  # fmt: skip
        pulls.append((fit.ew * 1000 - line.ew_milliangstrom) / (fit.ew_uncertainty * 1000))
    assert abs(np.mean(pulls)) < 0.2
    assert 0.85 < np.std(pulls) < 1.2


@pytest.mark.parametrize("continuum", ["constant", "fixed"])
def test_continuum_held_fixed(continuum: str) -> None:
    rng = np.random.default_rng(22)
    x, flux, ivar, _ = _simulate(rng, "gaussian", 60.0, neighbour=False)
    fit = fit_absorption_line(x, flux, ivar, 5000.0, continuum=continuum)
    assert fit.parameters["slope"] == 0.0
    assert fit.uncertainties["slope"] == 0.0
    if continuum == "fixed":
        assert fit.parameters["continuum"] == 1.0
        assert fit.uncertainties["continuum"] == 0.0
    assert fit.ew * 1000 == pytest.approx(60.0, abs=3 * fit.ew_uncertainty * 1000)
    with pytest.raises(LineFitError, match="unknown continuum"):
        fit_absorption_line(x, flux, ivar, 5000.0, continuum="spline")


def test_neighbour_needs_adjacent_pixels() -> None:
    """A single low pixel (noise, a cosmic-ray hole) is not a neighbour with ≥ 3 pixels."""
    rng = np.random.default_rng(23)
    x, flux, ivar, _ = _simulate(rng, "gaussian", 50.0, neighbour=False)
    spike = int(np.argmin(np.abs(x - 5001.0)))
    flux[spike] -= 0.08
    single = fit_absorption_line(x, flux, ivar, 5000.0, window=2.0, neighbour_pixels=1)
    runs = fit_absorption_line(x, flux, ivar, 5000.0, window=2.0, neighbour_pixels=3)
    offset = spike - int(np.searchsorted(x, 5000.0 - 2.0))
    assert not single.mask[offset]
    assert runs.mask[offset]


def test_bounds_on_width_and_gamma() -> None:
    rng = np.random.default_rng(24)
    x, flux, ivar, _ = _simulate(rng, "voigt", 100.0, neighbour=False)
    capped = fit_absorption_line(x, flux, ivar, 5000.0, profile="voigt", max_gamma=0.005)
    assert capped.success
    assert capped.parameters["gamma"] <= 0.005 + 1e-12
    bounded = fit_absorption_line(x, flux, ivar, 5000.0, fwhm_bounds=(0.15, 0.17))
    assert 0.15 - 1e-9 <= bounded.fwhm <= 0.17 + 1e-9
