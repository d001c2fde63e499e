"""Inverse-variance combination of spectra on a common grid, with outlier-spectrum rejection.

Given n spectra resampled onto one grid (flux Fᵢ, variance Vᵢ per pixel), the mean is

    F̄ = Σ wᵢ Fᵢ / Σ wᵢ,   Var(F̄) = Σ wᵢ² Vᵢ / (Σ wᵢ)²,   wᵢ = 1 / Vᵢ,

the variance propagated from the inputs (with wᵢ = 1/Vᵢ it is 1/Σ wᵢ; the general form is kept
so that other weights stay correct). Whole spectra that disagree with the others are rejected
first, against the per-pixel median spectrum M:

* scale: sᵢ = median(Fᵢ / M) more than ``scale_sigma`` robust standard deviations (1.4826 MAD)
  and more than ``min_scale_offset`` from the median of all sᵢ (a fibre with a wrong
  throughput or a target in it);
* shape: the median of (Fᵢ − sᵢ M)² / Vᵢ more than ``chi2_factor`` times its median over all
  spectra (a fibre with structure the others lack).

Too few spectra (< 3) are combined without rejection. The per-pixel scatter of the accepted
spectra about the mean is returned too, as a check of the propagated variance.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from photonpipe.spectra.robust import robust_sigma

FloatArray = NDArray[np.float64]


@dataclass
class CombinedSpectrum:
    """Result of :func:`combine_spectra`.

    Attributes
    ----------
    flux : numpy.ndarray
        Weighted mean (NaN where no spectrum has data).
    variance : numpy.ndarray
        Propagated variance of ``flux`` (inf where no data).
    scatter_variance : numpy.ndarray
        Variance of the mean from the scatter of the accepted spectra,
        Σ wᵢ (Fᵢ − F̄)² / ((n_eff − 1) Σ wᵢ) with n_eff the number contributing (NaN for < 2).
    n_used : numpy.ndarray
        Spectra contributing to each pixel.
    accepted : numpy.ndarray
        Boolean per input spectrum.
    reasons : list of str or None
        Why each rejected spectrum was rejected (None when accepted).
    scale : numpy.ndarray
        sᵢ of each input.
    """

    flux: FloatArray
    variance: FloatArray
    scatter_variance: FloatArray
    n_used: NDArray[np.int64]
    accepted: NDArray[np.bool_]
    reasons: list[str | None] = field(default_factory=list)
    scale: FloatArray = field(default_factory=lambda: np.zeros(0))


class WeightedMean:
    """Running weighted mean of spectra on one grid: F̄ = Σ wᵢ Fᵢ / Σ wᵢ per pixel.

    The one co-add kernel: :func:`combine_spectra` (spectra already on the grid) and
    :func:`photonpipe.spectra.resample.coadd` (each spectrum resampled onto part of the grid)
    add their spectra here, in order, so that both sum alike.

    Parameters
    ----------
    npix : int
        Number of grid pixels.
    """

    def __init__(self, npix: int) -> None:
        self.weighted = np.zeros(npix)
        self.weight = np.zeros(npix)

    def add(
        self,
        flux: NDArray[np.float64],
        weight: NDArray[np.float64],
        where: NDArray[np.bool_] | slice = slice(None),
    ) -> None:
        """Add one spectrum (flux and its weight, e.g. its inverse variance) on ``where``."""
        self.weighted[where] += weight * flux
        self.weight[where] += weight

    def mean(self, empty: float) -> FloatArray:
        """Return Σ wᵢ Fᵢ / Σ wᵢ, and ``empty`` where no spectrum has weight."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.weight > 0, self.weighted / self.weight, empty)


def _mad_sigma(x: FloatArray) -> float:
    return robust_sigma(x, ignore_nan=True)


def combine_spectra(
    flux: ArrayLike,
    variance: ArrayLike,
    *,
    scale_sigma: float = 5.0,
    min_scale_offset: float = 0.05,
    chi2_factor: float = 3.0,
    min_valid_fraction: float = 0.5,
) -> CombinedSpectrum:
    """Combine spectra on one grid with inverse-variance weights after rejecting outliers.

    Parameters
    ----------
    flux : array_like
        ``(n, npix)`` flux density; NaN where rejected.
    variance : array_like
        ``(n, npix)`` variance of ``flux``; non-finite or ≤ 0 where rejected.
    scale_sigma : float
        Scale outlier threshold [robust σ].
    min_scale_offset : float
        Least relative scale offset that counts as an outlier (dimensionless).
    chi2_factor : float
        Shape outlier threshold (× the median over spectra of the median normalised residual).
    min_valid_fraction : float
        Spectra with fewer valid pixels than this fraction of the best one are rejected.

    Returns
    -------
    CombinedSpectrum
    """
    f = np.asarray(flux, dtype=np.float64)
    v = np.asarray(variance, dtype=np.float64)
    if f.ndim != 2 or f.shape != v.shape:
        raise ValueError("flux and variance must be 2-D arrays of one shape (n, npix)")
    good = np.isfinite(f) & np.isfinite(v) & (v > 0)
    n = f.shape[0]
    accepted = np.ones(n, dtype=bool)
    reasons: list[str | None] = [None] * n
    nvalid = good.sum(axis=1)
    for i in range(n):
        if int(nvalid[i]) == 0:
            accepted[i], reasons[i] = False, "no valid pixels"
        elif nvalid[i] < min_valid_fraction * nvalid.max():
            accepted[i], reasons[i] = False, f"only {nvalid[i]} valid pixels"
    fm = np.where(good, f, np.nan)
    scale = np.full(n, np.nan)
    if accepted.sum() >= 3:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixel columns
            median = np.nanmedian(fm[accepted], axis=0)
            positive = np.isfinite(median) & (median > 0)
            ratio = fm[:, positive] / median[positive]
            scale = np.nanmedian(ratio, axis=1)
            s_ref = float(np.nanmedian(scale[accepted]))
            s_sig = _mad_sigma(scale[accepted])
            chi = np.nanmedian(
                (fm - scale[:, None] * median) ** 2 / np.where(good, v, np.nan), axis=1
            )
            chi_ref = float(np.nanmedian(chi[accepted]))
        for i in np.flatnonzero(accepted).tolist():
            offset = abs(scale[i] - s_ref)
            if offset > max(scale_sigma * s_sig, min_scale_offset * abs(s_ref)):
                accepted[i] = False
                reasons[i] = f"flux scale {scale[i] / s_ref:.3f} × the median fibre"
            elif chi[i] > chi2_factor * chi_ref:
                accepted[i] = False
                reasons[i] = (
                    f"shape differs from the median spectrum (χ² {chi[i] / chi_ref:.1f} × typical)"
                )
    use = good & accepted[:, None]
    w = np.where(use, 1.0 / np.where(use, v, 1.0), 0.0)
    combined = WeightedMean(f.shape[1])
    for flux_i, weight_i in zip(np.where(use, f, 0.0), w, strict=True):
        combined.add(flux_i, weight_i)
    sw = combined.weight
    mean = combined.mean(empty=np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        var = np.where(sw > 0, np.sum(w**2 * np.where(use, v, 0.0), axis=0) / sw**2, np.inf)
        n_used = use.sum(axis=0)
        resid2 = np.where(use, (np.where(use, f, 0.0) - mean) ** 2, 0.0)
        scatter = np.where(n_used > 1, np.sum(w * resid2, axis=0) / ((n_used - 1) * sw), np.nan)
    return CombinedSpectrum(mean, var, scatter, n_used.astype(np.int64), accepted, reasons, scale)
