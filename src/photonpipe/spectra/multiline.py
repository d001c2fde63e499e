"""Joint fits of many emission lines with a common width: line/continuum separation.

A spectrum is cut into regions at line-free gaps; in each region the model is

    F(λ) = Σₖ Aₖ G(λ; μₖ + δ, σ λ/λ₀) + Σⱼ cⱼ Pⱼ(x),

with G a Gaussian integrated over each pixel (per unit wavelength, unit area), the positions μₖ
from a line list shifted by one common δ (which absorbs a wavelength-calibration offset or a
line list's small systematic error), one common width σ (constant in velocity across the
region: scaled by λ/λ₀), free amplitudes Aₖ (line fluxes, unconstrained so that their errors are
honest), and a Legendre polynomial continuum in x ∈ [−1, 1] over the region.

The model is linear in A and c: for each (σ, δ) they come from one weighted linear least-squares
solve ("variable projection"), and only σ and δ are optimised (scipy ``least_squares``, bounded).
Uncertainties come from the full Jacobian (A, c, σ, δ) at the solution, so the width and shift
uncertainties propagate into the line fluxes.

The line-free continuum is the data minus the fitted lines (its noise kept), with a smooth
version (a weighted cubic spline through it away from line cores) alongside.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
from numpy.polynomial import legendre
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import least_squares
from scipy.special import ndtr

from photonpipe.spectra.resample import pixel_edges

FloatArray = NDArray[np.float64]


@dataclass
class RegionFit:
    """One region's joint fit.

    Attributes
    ----------
    lo, hi : float
        Region bounds [wavelength unit].
    centres : numpy.ndarray
        Listed line positions fitted [wavelength unit].
    flux, flux_error : numpy.ndarray
        Line fluxes Aₖ and their 1σ errors [flux-density unit × wavelength unit].
    sigma, sigma_error : float
        Gaussian sigma at the region's centre λ₀ and its error [wavelength unit].
    shift, shift_error : float
        Common shift δ and its error [wavelength unit].
    chi2_reduced : float
        χ² per degree of freedom.
    flag : str
        Empty when fitted; otherwise why not.
    """

    lo: float
    hi: float
    centres: FloatArray
    flux: FloatArray
    flux_error: FloatArray
    sigma: float = np.nan
    sigma_error: float = np.nan
    shift: float = np.nan
    shift_error: float = np.nan
    chi2_reduced: float = np.nan
    flag: str = ""


@dataclass
class Separation:
    """Line/continuum separation of one spectrum.

    Attributes
    ----------
    wavelength : numpy.ndarray
        Pixel centres.
    continuum : numpy.ndarray
        Data minus fitted lines (NaN where the data are, and in regions whose fit failed).
    smooth_continuum : numpy.ndarray
        A weighted cubic spline through ``continuum`` away from line cores
        (:func:`smooth_continuum`).
    lines : numpy.ndarray
        The fitted line model.
    regions : list of RegionFit
        One per region.
    """

    wavelength: FloatArray
    continuum: FloatArray
    smooth_continuum: FloatArray
    lines: FloatArray
    regions: list[RegionFit] = field(default_factory=list)


def _phi_integral(x: FloatArray) -> FloatArray:
    """∫_{−∞}^{x} Φ(t) dt = x Φ(x) + φ(x) (Φ, φ: standard normal CDF and density)."""
    return np.asarray(x * ndtr(x) + np.exp(-0.5 * x * x) / np.sqrt(2.0 * np.pi))


def gaussian_pixel_profiles(
    edges: FloatArray,
    centres: FloatArray,
    sigmas: FloatArray,
    boxes: FloatArray | None = None,
) -> FloatArray:
    """Unit-area Gaussians averaged over pixels, per unit wavelength.

    Parameters
    ----------
    edges : numpy.ndarray
        ``(npix + 1,)`` pixel edges.
    centres, sigmas : numpy.ndarray
        ``(nline,)`` line centres and sigmas (same unit as ``edges``).
    boxes : numpy.ndarray, optional
        ``(nline,)`` width of a box the Gaussian is first convolved with (the native pixel of a
        spectrum that was integrated over its own pixels before being resampled onto
        ``edges``); the double integral is exact, through ∫Φ = xΦ + φ.

    Returns
    -------
    numpy.ndarray
        ``(npix, nline)``.
    """
    width = np.diff(edges)[:, None]
    if boxes is None:
        cdf = ndtr((edges[:, None] - centres[None, :]) / sigmas[None, :])
        return np.asarray(np.diff(cdf, axis=0) / width)
    s = sigmas[None, :]
    half = 0.5 * boxes[None, :]
    upper = _phi_integral((edges[:, None] + half - centres[None, :]) / s)
    lower = _phi_integral((edges[:, None] - half - centres[None, :]) / s)
    return np.asarray(s * np.diff(upper - lower, axis=0) / (2.0 * half * width))


def merge_close_lines(
    lines: ArrayLike, min_separation: float, prefer: ArrayLike = ()
) -> FloatArray:
    """Drop lines closer than ``min_separation`` to a kept one (``prefer`` entries win).

    Parameters
    ----------
    lines : array_like
        Line positions.
    min_separation : float
        Separation below which two entries are taken as the same line.
    prefer : array_like
        Positions kept in preference (e.g. laboratory positions of lamp lines).
    """
    preferred = np.unique(np.asarray(prefer, dtype=np.float64))
    kept = list(preferred)
    for w in np.unique(np.asarray(lines, dtype=np.float64)):
        if not kept or np.min(np.abs(np.asarray(kept) - w)) >= min_separation:
            kept.append(float(w))
    return np.unique(np.asarray(kept, dtype=np.float64))


def plan_regions(
    lo: float, hi: float, lines: FloatArray, clearance: float, target: float, longest: float
) -> list[tuple[float, float]]:
    """Cut [lo, hi] into regions whose boundaries keep ``clearance`` from every line.

    Each region ends at the first point at least ``target`` from its start that lies at least
    ``clearance`` from every line; when there is none within ``longest``, at the middle of the
    widest gap between lines in that stretch.
    """
    inside = np.sort(lines[(lines > lo - clearance) & (lines < hi + clearance)])
    # Clear intervals: stretches at least `clearance` from every line.
    points = np.concatenate([[-np.inf], inside, [np.inf]])
    clear_lo = points[:-1] + clearance
    clear_hi = points[1:] - clearance
    keep = clear_hi > clear_lo
    clear_lo, clear_hi = clear_lo[keep], clear_hi[keep]
    bounds = [lo]
    start = lo
    while hi - start > longest or (hi - start > 1.3 * target):
        want = start + target
        k = np.flatnonzero(clear_hi >= want)
        cut = np.nan
        if k.size:
            candidate = max(want, float(clear_lo[k[0]]))
            if candidate <= start + longest:
                cut = candidate
        if not np.isfinite(cut):
            stretch = inside[(inside > start) & (inside < start + longest)]
            if stretch.size < 2:
                cut = start + longest
            else:
                g = int(np.argmax(np.diff(stretch)))
                cut = float(0.5 * (stretch[g] + stretch[g + 1]))
        if hi - cut < 0.3 * target:
            break
        bounds.append(cut)
        start = cut
    bounds.append(hi)
    return list(itertools.pairwise(bounds))


def fit_region(
    wavelength: FloatArray,
    flux: FloatArray,
    variance: FloatArray,
    centres: FloatArray,
    sigma0: float,
    *,
    degree: int = 2,
    max_shift: float | None = None,
    box_per_wavelength: float = 0.0,
) -> tuple[RegionFit, FloatArray, FloatArray]:
    """Fit one region: lines with a common width and shift plus a Legendre continuum.

    Parameters
    ----------
    wavelength, flux, variance : numpy.ndarray
        The region's pixels (NaN flux or non-positive variance = rejected).
    centres : numpy.ndarray
        Listed line positions inside the region.
    sigma0 : float
        Starting Gaussian sigma at the region centre (bounded to 0.4–2.5 × this).
    degree : int
        Continuum polynomial degree.
    max_shift : float, optional
        Bound on |δ| (default 1.5 σ0).
    box_per_wavelength : float
        Native pixel width divided by wavelength (ln 10 × step in dex for a log-λ grid): the
        lines are Gaussians integrated over native pixels, then over the pixels here
        (0: over the pixels here only).

    Returns
    -------
    fit : RegionFit
    line_model, continuum_model : numpy.ndarray
        On ``wavelength`` (NaN when the fit failed).
    """
    x_lo, x_hi = float(wavelength[0]), float(wavelength[-1])
    lam0 = 0.5 * (x_lo + x_hi)
    edges = pixel_edges(wavelength)
    xs = (wavelength - lam0) / (0.5 * (x_hi - x_lo) or 1.0)
    poly = legendre.legvander(xs, degree)
    good = np.isfinite(flux) & np.isfinite(variance) & (variance > 0)
    nanarr = np.full(wavelength.size, np.nan)
    empty = RegionFit(
        x_lo, x_hi, centres, np.full(centres.size, np.nan), np.full(centres.size, np.nan)
    )
    if good.sum() < degree + 1 + centres.size + 2:
        empty.flag = f"{good.sum()} valid pixels for {centres.size} lines"
        return empty, nanarr, nanarr
    w = np.where(good, 1.0 / np.where(good, variance, 1.0), 0.0)
    sw = np.sqrt(w[good])
    y = flux[good]
    max_shift = 1.5 * sigma0 if max_shift is None else max_shift

    def design(theta: FloatArray) -> FloatArray:
        sigma, shift = np.exp(theta[0]), theta[1]
        sig = sigma * (centres + shift) / lam0
        boxes = box_per_wavelength * (centres + shift) if box_per_wavelength > 0 else None
        return np.hstack([gaussian_pixel_profiles(edges, centres + shift, sig, boxes), poly])

    def solve(theta: FloatArray) -> tuple[FloatArray, FloatArray]:
        x = design(theta)
        coeff, *_ = np.linalg.lstsq(x[good] * sw[:, None], y * sw, rcond=None)
        return np.asarray(coeff, dtype=np.float64), x

    def residual(theta: FloatArray) -> FloatArray:
        coeff, x = solve(theta)
        return np.asarray((y - x[good] @ coeff) * sw)

    start = np.array([np.log(sigma0), 0.0])
    lower = np.array([np.log(0.4 * sigma0), -max_shift])
    upper = np.array([np.log(2.5 * sigma0), max_shift])
    if centres.size:
        result = least_squares(residual, start, bounds=(lower, upper), x_scale=[0.1, 0.3 * sigma0])
        theta = result.x
    else:
        theta = start
    coeff, x = solve(theta)
    model_lines = x[:, : centres.size] @ coeff[: centres.size]
    model_cont = x[:, centres.size :] @ coeff[centres.size :]
    # Full Jacobian over (A, c, log σ, δ) for the covariance.
    jac = [x[good]]
    if centres.size:
        for j, step in ((0, 1e-4), (1, 1e-4 * sigma0)):
            t = theta.copy()
            t[j] += step
            xp = design(t)
            jac.append(((xp[good] - x[good]) @ coeff / step)[:, None])
    jmat = np.hstack(jac) * sw[:, None]
    dof = max(1, int(good.sum()) - jmat.shape[1])
    chi2 = float(np.sum(residual(theta) ** 2)) / dof
    try:
        cov = np.linalg.pinv(jmat.T @ jmat)
    except np.linalg.LinAlgError:
        cov = np.full((jmat.shape[1],) * 2, np.nan)
    errs = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    k = centres.size
    fit = RegionFit(
        x_lo,
        x_hi,
        centres,
        coeff[:k].copy(),
        errs[:k].copy(),
        float(np.exp(theta[0])),
        float(np.exp(theta[0]) * errs[-2]) if k else np.nan,
        float(theta[1]),
        float(errs[-1]) if k else np.nan,
        chi2,
    )
    return fit, model_lines, model_cont


def separate_lines(
    wavelength: ArrayLike,
    flux: ArrayLike,
    variance: ArrayLike,
    lines: ArrayLike,
    sigma0: float,
    *,
    target: float | None = None,
    longest: float | None = None,
    degree: int = 2,
    box_per_wavelength: float = 0.0,
    knot_spacing: float | None = None,
) -> Separation:
    """Separate emission lines from the continuum over a whole spectrum.

    Parameters
    ----------
    wavelength : array_like
        Pixel centres, increasing [wavelength unit].
    flux : array_like
        Flux density (NaN = rejected).
    variance : array_like
        Variance of ``flux`` (non-finite or ≤ 0 = rejected).
    lines : array_like
        Line positions [wavelength unit]; lines outside the valid data are left out.
    sigma0 : float
        Typical Gaussian sigma of the lines [wavelength unit].
    target, longest : float, optional
        Preferred and longest region lengths (default 70 σ0 and 180 σ0).
    degree : int
        Continuum polynomial degree per region.
    box_per_wavelength : float
        As in :func:`fit_region`.
    knot_spacing : float, optional
        Knot spacing of the smooth continuum spline (default 60 σ0).

    Returns
    -------
    Separation
    """
    wave = np.asarray(wavelength, dtype=np.float64)
    f = np.asarray(flux, dtype=np.float64)
    v = np.asarray(variance, dtype=np.float64)
    good = np.isfinite(f) & np.isfinite(v) & (v > 0)
    line_model = np.zeros(wave.size)
    failed = np.zeros(wave.size, dtype=bool)
    smooth = np.full(wave.size, np.nan)
    regions: list[RegionFit] = []
    if not good.any():
        raise ValueError("no valid pixels: the spectrum is all NaN or has no variance")
    lo, hi = float(wave[good][0]), float(wave[good][-1])
    listed = np.asarray(lines, dtype=np.float64)
    clearance = 4.0 * sigma0
    margin = 10.0 * sigma0
    for r_lo, r_hi in plan_regions(
        lo, hi, listed, clearance, target or 70.0 * sigma0, longest or 180.0 * sigma0
    ):
        sel = (wave >= r_lo) & (wave < r_hi) if r_hi < hi else (wave >= r_lo) & (wave <= r_hi)
        if sel.sum() < degree + 2:
            continue
        # Each region is fitted over a margin on both sides, with the lines there, so that a
        # line next to a boundary is fitted whole; the model is kept on the region's own
        # pixels and each line is reported by the region that holds its centre.
        ext = (wave >= r_lo - margin) & (wave <= r_hi + margin)
        centres = listed[
            (listed >= r_lo - margin - clearance) & (listed <= r_hi + margin + clearance)
        ]
        fit, lm, cm = fit_region(
            wave[ext],
            f[ext],
            v[ext],
            centres,
            sigma0,
            degree=degree,
            box_per_wavelength=box_per_wavelength,
        )
        own = (centres >= r_lo) & (centres < r_hi)
        fit.lo, fit.hi = r_lo, r_hi
        fit.centres, fit.flux, fit.flux_error = centres[own], fit.flux[own], fit.flux_error[own]
        regions.append(fit)
        core = sel[ext]
        if fit.flag:
            failed[sel] = True
        else:
            line_model[sel] = lm[core]
            smooth[sel] = cm[core]
    continuum = np.where(good & ~failed, f - line_model, np.nan)
    spline = smooth_continuum(wave, continuum, v, line_model, smooth, knot_spacing or 60.0 * sigma0)
    return Separation(wave, continuum, spline, line_model, regions)


def smooth_continuum(
    wavelength: FloatArray,
    continuum: FloatArray,
    variance: FloatArray,
    line_model: FloatArray,
    first_guess: FloatArray,
    knot_spacing: float,
) -> FloatArray:
    """Fit a weighted cubic spline to the line-subtracted spectrum, away from line cores.

    Pixels where the fitted lines exceed 5 % of the regions' polynomial continuum are left out
    (there the data minus a slightly imperfect line profile is least reliable); knots every
    ``knot_spacing``, dropped where too few pixels remain between them.

    Returns
    -------
    numpy.ndarray
        The spline on ``wavelength`` (NaN outside the fitted span or where nothing fits).
    """
    from scipy.interpolate import make_lsq_spline

    use = (
        np.isfinite(continuum)
        & np.isfinite(variance)
        & (variance > 0)
        & np.isfinite(first_guess)
        & (line_model <= 0.05 * np.abs(first_guess))
    )
    out = np.full(wavelength.size, np.nan)
    if use.sum() < 8:
        return out
    x, y, w = wavelength[use], continuum[use], 1.0 / np.sqrt(variance[use])
    inner = np.arange(x[0] + knot_spacing, x[-1] - 0.5 * knot_spacing, knot_spacing)
    counts = np.histogram(x, bins=np.concatenate([[x[0]], inner, [x[-1]]]))[0]
    while inner.size and counts.min() < 6:  # merge knot intervals with too few pixels
        k = int(np.argmin(counts))
        inner = np.delete(inner, min(k, inner.size - 1))
        counts = np.histogram(x, bins=np.concatenate([[x[0]], inner, [x[-1]]]))[0]
    knots = np.concatenate([[x[0]] * 4, inner, [x[-1]] * 4])
    try:
        spline = make_lsq_spline(x, y, knots, k=3, w=w)
    except (ValueError, np.linalg.LinAlgError):
        return out
    span = (wavelength >= x[0]) & (wavelength <= x[-1])
    out[span] = spline(wavelength[span])
    return out
