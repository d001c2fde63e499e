"""Cross-correlation radial velocities: accuracy on simulated and real spectra."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from photonpipe.spectra.resample import linear_wavelength_grid, resample
from photonpipe.spectra.spectrum import Spectrum
from photonpipe.spectra.xcorr import CrossCorrelationError, cross_correlate
from photonpipe.stellar.simulate import normalized_flux, random_lines, simulate_echelle

TEMPLATES = Path(__file__).resolve().parents[2] / "src" / "photonpipe" / "stellar" / "data"


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


def test_real_template_shifted(tmp_path: Path) -> None:
    """The bundled HD 122563 spectrum, shifted and resampled to 0.04 Å with noise."""
    from photonpipe.stellar.readers import read_spectrum

    (giant,) = read_spectrum(TEMPLATES / "rv_template_giant_hd122563.fits")
    rng = np.random.default_rng(4)
    for rv in (-150.0, 12.3, 87.0):
        shifted = giant.doppler_shifted(-rv)  # wavelengths × Doppler factor: the star recedes
        observed = resample(shifted, linear_wavelength_grid(5000.0, 5400.0, 0.04))
        noisy = Spectrum(
            observed.wavelength, observed.flux + rng.normal(0, 0.02, len(observed)), None
        )
        result = cross_correlate(noisy, giant, wavelength_range=(5050.0, 5350.0))
        assert result.velocity == pytest.approx(rv, abs=0.2)


def test_errors(lines) -> None:
    grid = linear_wavelength_grid(4950.0, 5000.0, 0.01)
    template = Spectrum(grid, normalized_flux(grid, lines))
    far = Spectrum(np.linspace(6000, 6100, 1000), np.ones(1000))
    with pytest.raises(CrossCorrelationError, match="do not overlap"):
        cross_correlate(far, template)
    flat = Spectrum(grid, np.ones_like(grid))
    with pytest.raises(CrossCorrelationError):
        cross_correlate(flat, flat)
