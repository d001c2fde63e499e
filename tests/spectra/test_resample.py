"""Flux-conserving resampling and inverse-variance co-addition."""

from __future__ import annotations

import numpy as np
import pytest

from photonpipe.spectra.resample import (
    coadd,
    linear_wavelength_grid,
    log_wavelength_grid,
    pixel_edges,
    resample,
)
from photonpipe.spectra.spectrum import C_KMS, Spectrum


def test_flux_is_conserved() -> None:
    rng = np.random.default_rng(0)
    wave = np.sort(rng.uniform(5000.0, 5010.0, 400))
    flux = rng.normal(1.0, 0.3, wave.size)
    source = Spectrum(wave, flux, np.full(wave.size, 100.0))
    edges = pixel_edges(wave)
    new = linear_wavelength_grid(5001.0, 5009.0, 0.037)
    out = resample(source, new)
    new_edges = pixel_edges(new)
    # integral of the piecewise-constant input density over the same interval
    fine = np.linspace(new_edges[0], new_edges[-1], 2_000_001)
    density = flux[np.clip(np.searchsorted(edges, fine, side="right") - 1, 0, flux.size - 1)]
    expected = np.trapezoid(density, fine)
    assert np.sum(out.flux * np.diff(new_edges)) == pytest.approx(expected, rel=1e-5)


def test_constant_stays_constant_and_variance_propagates() -> None:
    wave = linear_wavelength_grid(5000.0, 5010.0, 0.01)
    out = resample(
        Spectrum(wave, np.full(wave.size, 3.0)), linear_wavelength_grid(5001, 5009, 0.033)
    )
    np.testing.assert_allclose(out.flux, 3.0)
    # Monte Carlo: the variance of a resampled pixel matches Σ o² σ² / (Σ o)²
    rng = np.random.default_rng(1)
    sigma = 0.1
    new = linear_wavelength_grid(5002.0, 5008.0, 0.025)
    draws = np.array(
        [
            resample(
                Spectrum(wave, 1 + rng.normal(0, sigma, wave.size), np.full(wave.size, 100.0)), new
            ).flux
            for _ in range(400)
        ]
    )
    predicted = (
        1.0 / resample(Spectrum(wave, np.ones_like(wave), np.full(wave.size, 100.0)), new).ivar
    )
    np.testing.assert_allclose(np.var(draws, axis=0).mean(), predicted.mean(), rtol=0.1)
    # brute force Σ o² σ² / (Σ o)² with explicit overlaps, pixel by pixel
    e_in, e_out = pixel_edges(wave), pixel_edges(new)
    for j in (0, 7, 100):
        overlap = np.clip(
            np.minimum(e_in[1:], e_out[j + 1]) - np.maximum(e_in[:-1], e_out[j]), 0, None
        )
        brute = np.sum(overlap**2) * sigma**2 / np.sum(overlap) ** 2
        assert predicted[j] == pytest.approx(brute, rel=1e-9)


def test_bad_pixels_and_coverage() -> None:
    wave = linear_wavelength_grid(5000.0, 5010.0, 0.01)
    ivar = np.ones_like(wave)
    ivar[200:300] = 0.0
    out = resample(
        Spectrum(wave, np.ones_like(wave), ivar), linear_wavelength_grid(5000, 5010, 0.05)
    )
    gap = (out.wavelength > 5002.1) & (out.wavelength < 5002.9)
    assert np.all(out.ivar[gap] == 0)
    np.testing.assert_allclose(out.flux[out.ivar > 0], 1.0)


def test_coadd_weights() -> None:
    wave = linear_wavelength_grid(5000.0, 5010.0, 0.01)
    a = Spectrum(wave, np.full(wave.size, 1.0), np.full(wave.size, 100.0))
    b = Spectrum(wave, np.full(wave.size, 2.0), np.full(wave.size, 300.0))
    grid = linear_wavelength_grid(5001.0, 5009.0, 0.01)
    out = coadd([a, b], grid)
    np.testing.assert_allclose(out.flux, (100 * 1.0 + 300 * 2.0) / 400.0)
    np.testing.assert_allclose(out.ivar, 400.0)


def test_log_grid_has_constant_velocity_step() -> None:
    grid = log_wavelength_grid(5000.0, 6000.0, 2.0)
    steps = np.diff(grid) / grid[:-1] * C_KMS
    np.testing.assert_allclose(steps, 2.0, rtol=1e-9)
    assert grid[-1] <= 6000.0


def test_coadd_agrees_with_combine_spectra_where_their_jobs_overlap() -> None:
    # Spectra already on the grid, no oversampling correction and too few spectra for
    # combine_spectra to reject any: both are the same inverse-variance mean.
    from photonpipe.spectra.combine import combine_spectra

    rng = np.random.default_rng(3)
    grid = linear_wavelength_grid(5000.0, 5010.0, 0.01)
    ivar = rng.uniform(50.0, 400.0, (2, grid.size))
    ivar[0, :100] = 0.0  # a gap in one spectrum
    flux = rng.normal(1.0, 1.0 / np.sqrt(np.maximum(ivar, 1.0)))
    spectra = [Spectrum(grid, f, w) for f, w in zip(flux, ivar, strict=True)]
    stacked = coadd(spectra, grid, oversampling_correction=False)
    variance = np.where(ivar > 0, 1.0 / np.maximum(ivar, 1e-300), np.inf)
    combined = combine_spectra(np.where(ivar > 0, flux, np.nan), variance)
    assert combined.accepted.all()
    np.testing.assert_allclose(stacked.flux, combined.flux, rtol=1e-12)
    np.testing.assert_allclose(stacked.ivar, 1.0 / combined.variance, rtol=1e-12)
