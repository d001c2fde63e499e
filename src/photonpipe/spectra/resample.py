"""Flux-conserving resampling and inverse-variance co-addition of spectra.

Each pixel is a bin between the mid-points of neighbouring pixel centres, with a constant flux
density. A new pixel's flux is the integral of that density over its bin divided by the part of
its bin covered by good (``ivar > 0``) input pixels, so the integrated flux is conserved; its
variance is Σ oᵢ² σᵢ² / (Σ oᵢ)², oᵢ the overlap of input pixel i (covariance between the new
pixels is not tracked). New pixels less than ``min_coverage`` covered by good input get
``ivar = 0``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from photonpipe.spectra.combine import WeightedMean
from photonpipe.spectra.spectrum import C_KMS, Spectrum


def pixel_edges(centres: ArrayLike) -> NDArray[np.float64]:
    """Return the n + 1 bin edges of n increasing pixel centres (mid-points; ends mirrored).

    Parameters
    ----------
    centres : array_like
        Pixel centres (e.g. wavelengths [Å]), strictly increasing, at least 2.
    """
    c = np.asarray(centres, dtype=np.float64)
    mid = 0.5 * (c[1:] + c[:-1])
    return np.concatenate([[c[0] - (mid[0] - c[0])], mid, [c[-1] + (c[-1] - mid[-1])]])


def _locate(edges: NDArray[np.float64], x: NDArray[np.float64]) -> NDArray[np.intp]:
    return np.clip(np.searchsorted(edges, x, side="right") - 1, 0, edges.size - 2)


def resample(spectrum: Spectrum, new_wavelength: ArrayLike, min_coverage: float = 0.5) -> Spectrum:
    """Resample a spectrum onto new pixel centres, conserving flux.

    Parameters
    ----------
    spectrum : Spectrum
        Input (wavelength [Å], flux density, ivar).
    new_wavelength : array_like
        New pixel centres [Å], strictly increasing.
    min_coverage : float
        Least fraction of a new pixel that good input pixels must cover.

    Returns
    -------
    Spectrum
        Flux density and inverse variance on the new grid (``ivar = 0`` where not covered).
    """
    new = np.asarray(new_wavelength, dtype=np.float64)
    e_in = pixel_edges(spectrum.wavelength)
    e_out = pixel_edges(new)
    width = np.diff(e_in)
    good = spectrum.ivar > 0
    density = np.where(good, spectrum.flux, 0.0)
    # cumulative integrals at the input edges (exact for piecewise-constant densities)
    cum_flux = np.concatenate([[0.0], np.cumsum(density * width)])
    cum_good = np.concatenate([[0.0], np.cumsum(good * width)])
    at_flux = np.interp(e_out, e_in, cum_flux)
    at_good = np.interp(e_out, e_in, cum_good)
    integral = np.diff(at_flux)
    covered = np.diff(at_good)
    out_width = np.diff(e_out)
    variance = np.where(good, 1.0 / np.where(good, spectrum.ivar, 1.0), 0.0)
    # Σ oᵢ² σᵢ²: full input bins via a cumulative sum, partial bins at both ends explicitly.
    cum_var = np.concatenate([[0.0], np.cumsum(width**2 * variance)])
    lo = np.clip(e_out[:-1], e_in[0], e_in[-1])
    hi = np.clip(e_out[1:], e_in[0], e_in[-1])
    i_lo, i_hi = _locate(e_in, lo), _locate(e_in, hi)
    same = i_lo == i_hi
    var_sum = np.where(same, (hi - lo) ** 2 * variance[i_lo], 0.0)
    first = e_in[i_lo + 1] - lo
    last = hi - e_in[i_hi]
    full = cum_var[i_hi] - cum_var[np.minimum(i_lo + 1, i_hi)]
    var_sum = np.where(same, var_sum, first**2 * variance[i_lo] + last**2 * variance[i_hi] + full)
    ok = covered >= min_coverage * out_width
    with np.errstate(divide="ignore", invalid="ignore"):
        flux = np.where(ok, integral / covered, 0.0)
        ivar = np.where(ok & (var_sum > 0), covered**2 / var_sum, 0.0)
    return Spectrum(new, flux, ivar, dict(spectrum.meta), unit=spectrum.unit)


def log_wavelength_grid(start: float, end: float, step_kms: float) -> NDArray[np.float64]:
    """Return pixel centres from ``start`` to ``end`` [Å] with a constant velocity step [km/s]."""
    n = int(np.floor(np.log(end / start) / np.log1p(step_kms / C_KMS))) + 1
    return np.asarray(start * (1.0 + step_kms / C_KMS) ** np.arange(n), dtype=np.float64)


def linear_wavelength_grid(start: float, end: float, step: float) -> NDArray[np.float64]:
    """Return pixel centres from ``start`` to ``end`` [Å] with a constant step [Å]."""
    n = int(np.floor((end - start) / step + 1e-9)) + 1
    return np.asarray(start + step * np.arange(n), dtype=np.float64)


def coadd(
    spectra: Sequence[Spectrum],
    new_wavelength: ArrayLike,
    min_coverage: float = 0.5,
    oversampling_correction: bool = True,
) -> Spectrum:
    """Resample spectra onto one grid and average them with inverse-variance weights.

    Parameters
    ----------
    spectra : sequence of Spectrum
        Inputs (e.g. normalised rest-frame echelle orders).
    new_wavelength : array_like
        Common pixel centres [Å].
    min_coverage : float
        As in :func:`resample`.
    oversampling_correction : bool
        Where the new pixels are narrower than an input's pixels, neighbouring new pixels share
        the same input noise; a fit that treats them as independent would then underestimate
        its uncertainties by √(new width / input width). With this correction each input's
        resampled inverse variance is divided by max(1, input width / new width), so that the
        stacked ``ivar`` carries the information of the native pixels.

    Returns
    -------
    Spectrum
        ``flux = Σ wᵢ fᵢ / Σ wᵢ`` with ``wᵢ`` the resampled (and corrected) inverse variances,
        and ``ivar = Σ wᵢ``, in the inputs' flux unit.

    Raises
    ------
    ValueError
        The spectra have different flux units (:attr:`Spectrum.unit`).
    """
    units = {s.unit for s in spectra}
    if len(units) > 1:
        raise ValueError(
            f"cannot co-add spectra with different flux units: {sorted(map(str, units))}"
        )
    grid = np.asarray(new_wavelength, dtype=np.float64)
    combined = WeightedMean(grid.size)
    for spectrum in spectra:
        lo, hi = spectrum.wavelength_range
        inside = (grid >= lo) & (grid <= hi)
        if not np.any(inside):
            continue
        part = resample(spectrum, grid[inside], min_coverage)
        weight = part.ivar
        if oversampling_correction:
            in_width = np.interp(
                part.wavelength, spectrum.wavelength, np.gradient(spectrum.wavelength)
            )
            out_width = np.diff(pixel_edges(part.wavelength))
            weight = weight / np.maximum(1.0, in_width / out_width)
        combined.add(part.flux, weight, inside)
    return Spectrum(
        grid, combined.mean(empty=0.0), combined.weight, unit=units.pop() if units else None
    )
