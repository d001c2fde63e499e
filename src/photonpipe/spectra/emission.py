"""Emission-line flux in a wavelength window above a locally fitted continuum.

The continuum is a straight line fitted (inverse-variance weighted) to the pixels of two side
bands, leaving out pixels near other known lines; the line flux is the integral over the window
of flux minus that continuum, with exact partial-pixel overlaps at the window edges. The
uncertainty adds the pixel noise in the window and the uncertainty of the continuum fit (whose
two parameters are correlated with nothing in the window, as the bands do not overlap it).

A result that cannot be measured (no valid pixels in the window, no line-free side band, the
window outside the spectrum) comes back as NaN with the reason in ``flag``: never a silent zero.
Rejected pixels inside the window are interpolated over; one in the line core is reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from photonpipe.spectra.resample import pixel_edges

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class WindowFlux:
    """A line flux measured in a window.

    Attributes
    ----------
    flux : float
        Continuum-subtracted integrated flux [flux-density unit × wavelength unit], NaN if
        unmeasured.
    error : float
        1σ uncertainty of ``flux``.
    continuum : float
        Continuum at the window centre [flux-density unit].
    continuum_error : float
        1σ uncertainty of ``continuum``.
    flag : str
        Empty when measured cleanly; otherwise why the value is NaN, or a caveat on it.
    """

    flux: float
    error: float
    continuum: float
    continuum_error: float
    flag: str = ""


def _overlap(edges: FloatArray, lo: float, hi: float) -> FloatArray:
    """Length of each pixel bin that lies inside [lo, hi]."""
    return np.clip(np.minimum(edges[1:], hi) - np.maximum(edges[:-1], lo), 0.0, None)


def fit_local_continuum(
    wavelength: FloatArray,
    flux: FloatArray,
    ivar: FloatArray,
    use: NDArray[np.bool_],
    centre: float,
) -> tuple[FloatArray, FloatArray] | None:
    """Weighted straight-line fit about ``centre``; ``None`` if fewer than 3 usable pixels.

    Returns the coefficients ``(c0, c1)`` of ``c0 + c1 (λ − centre)`` and their covariance.
    """
    good = use & (ivar > 0) & np.isfinite(flux)
    if good.sum() < 3:
        return None
    x = wavelength[good] - centre
    w = ivar[good]
    design = np.stack([np.ones_like(x), x], axis=1)
    normal = design.T @ (design * w[:, None])
    try:
        cov = np.linalg.inv(normal)
    except np.linalg.LinAlgError:
        return None
    coeff = cov @ (design.T @ (w * flux[good]))
    # Inflate by the reduced chi-square when the scatter exceeds the noise (unmodelled lines).
    resid = flux[good] - design @ coeff
    dof = max(1, int(good.sum()) - 2)
    chi2 = float(np.sum(w * resid**2)) / dof
    return np.asarray(coeff, dtype=np.float64), np.asarray(cov * max(1.0, chi2), dtype=np.float64)


def line_window_flux(
    wavelength: ArrayLike,
    flux: ArrayLike,
    ivar: ArrayLike,
    window: tuple[float, float],
    sidebands: tuple[tuple[float, float], tuple[float, float]],
    exclude: ArrayLike = (),
    exclude_half_width: float = 0.0,
    min_coverage: float = 0.9,
    core: tuple[float, float] | None = None,
) -> WindowFlux:
    """Continuum-subtracted flux of the emission in ``window``.

    Parameters
    ----------
    wavelength : array_like
        Pixel centres, strictly increasing [any wavelength unit, e.g. nm].
    flux : array_like
        Flux density per unit wavelength; NaN marks a rejected pixel.
    ivar : array_like
        Inverse variance of ``flux``; 0 marks a rejected pixel.
    window : (float, float)
        Integration window [wavelength unit].
    sidebands : ((float, float), (float, float))
        Continuum bands below and above the window [wavelength unit].
    exclude : array_like
        Positions of other lines whose surroundings are left out of the side bands.
    exclude_half_width : float
        Half-width excluded around each of ``exclude`` [wavelength unit].
    min_coverage : float
        Least fraction of the window that valid pixels must cover.
    core : (float, float), optional
        Where the line is bright: a rejected pixel there is reported in the flag (the value
        is still given, interpolated over).

    Returns
    -------
    WindowFlux
    """
    wave = np.asarray(wavelength, dtype=np.float64)
    f = np.asarray(flux, dtype=np.float64)
    iv = np.asarray(ivar, dtype=np.float64)
    lo, hi = window
    centre = 0.5 * (lo + hi)
    nan = WindowFlux(np.nan, np.nan, np.nan, np.nan, "")
    finite = np.isfinite(wave)
    if not finite.any():
        return WindowFlux(nan.flux, nan.error, nan.continuum, nan.continuum_error, "no wavelengths")
    if lo < np.nanmin(wave) or hi > np.nanmax(wave):
        return WindowFlux(
            nan.flux,
            nan.error,
            nan.continuum,
            nan.continuum_error,
            "window outside the spectrum's wavelength range",
        )
    valid = np.isfinite(f) & (iv > 0)
    if not valid.any():
        return WindowFlux(
            nan.flux, nan.error, nan.continuum, nan.continuum_error, "no valid pixels"
        )
    edges = pixel_edges(wave)
    inside = _overlap(edges, lo, hi)
    covered = float(np.sum(inside[valid]))
    if covered < min_coverage * (hi - lo):
        return WindowFlux(
            nan.flux,
            nan.error,
            nan.continuum,
            nan.continuum_error,
            f"window only {covered / (hi - lo):.0%} covered by valid pixels",
        )
    in_bands = np.zeros(wave.size, dtype=bool)
    for b_lo, b_hi in sidebands:
        in_bands |= (wave >= b_lo) & (wave <= b_hi)
    others = np.asarray(exclude, dtype=np.float64).ravel()
    if others.size and exclude_half_width > 0:
        near = np.min(np.abs(wave[:, None] - others[None, :]), axis=1) < exclude_half_width
        in_bands &= ~near
    fit = fit_local_continuum(wave, f, iv, in_bands & valid, centre)
    if fit is None:
        return WindowFlux(
            nan.flux, nan.error, nan.continuum, nan.continuum_error, "no line-free continuum"
        )
    coeff, cov = fit
    # Rejected pixels inside the window are interpolated over (linearly in the excess above
    # the continuum); a gap in the line core is reported in the flag.
    x = wave - centre
    cont = coeff[0] + coeff[1] * x
    variance_pix = np.where(valid, 1.0 / np.where(valid, iv, 1.0), 0.0)
    excess = np.where(valid, f - cont, 0.0)
    gaps = (inside > 0) & ~valid
    flag = ""
    if gaps.any():
        excess[gaps] = np.interp(wave[gaps], wave[valid], excess[valid])
        variance_pix[gaps] = np.interp(wave[gaps], wave[valid], variance_pix[valid])
        if core is not None and np.any(_overlap(edges, *core)[gaps] > 0):
            flag = "rejected pixels in the line core (interpolated over)"
    line_flux = float(np.sum(inside * excess))
    var_noise = float(np.sum(inside**2 * variance_pix))
    # d(flux)/d(c0, c1) = −Σ inside · (1, x)
    grad = -np.array([np.sum(inside), np.sum(inside * x)])
    var_cont = float(grad @ cov @ grad)
    return WindowFlux(
        line_flux,
        float(np.sqrt(var_noise + var_cont)),
        float(coeff[0]),
        float(np.sqrt(cov[0, 0])),
        flag,
    )
