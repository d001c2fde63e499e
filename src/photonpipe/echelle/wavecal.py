"""Th-Ar wavelength solution: line detection, matching, a 2-D (pixel, order) fit.

For each fibre of an extracted arc:

1. **Detect** emission lines (local maxima ≥ ``threshold`` σ above a running 20th percentile)
   and fit each with a Gaussian plus constant on ±5 px; saturated or masked lines are skipped.
   Lines whose width is off the order's trend by > 8 % are blends and are not matched.
2. **Seed** with the grating equation of the site's spectrograph
   (:meth:`~photonpipe.echelle.instrument.Spectrograph.nominal_wavelength`) and find the shift in
   pixels that makes most detected lines fall on isolated reference lines
   (:func:`~photonpipe.echelle.instrument.thar_reference`; first for the whole fibre, then
   refined per order).
3. **Fit** m λ − m λ_nominal(x) as a product of Legendre polynomials in x (degree
   ``x_degree``) and m (degree ``m_degree``), each line weighted by its centre's error (the
   photon-noise error of the Gaussian fit, times √χ²ᵣ of that fit when above 1: a poorly
   fitting line is an unresolved blend or distorted), its list wavelength's and the lines'
   excess scatter; re-match with the fitted model, reject lines
   beyond 4 σ, repeat.
4. **Report** the coefficients' covariance, scaled by χ²ᵣ and by held-out lines (whole orders
   left out of the fit and predicted), and from it the expected RMS error of λ per order and
   over all orders [m/s].

Quality figures: lines used, RMS residual [Å] and [m/s], expected error per order and overall.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
from numpy.polynomial import legendre
from numpy.typing import NDArray
from scipy.ndimage import percentile_filter
from scipy.optimize import OptimizeWarning, curve_fit

from photonpipe.echelle.instrument import ReferenceLines, Spectrograph
from photonpipe.errors import PhotonpipeError
from photonpipe.spectra.profiles import gaussian_peak
from photonpipe.spectra.robust import robust_sigma

C_MS = 299_792_458.0
FIT_HALF_WIDTH = 5


class WavelengthSolutionError(PhotonpipeError):
    """Too few lines were matched to fit a wavelength solution."""


@dataclass
class ArcLines:
    """Lines detected in one order.

    Attributes
    ----------
    x, x_error : ndarray
        Full-detector column of the centre [px] and its 1σ [px].
    peak : ndarray
        Gaussian amplitude [e⁻].
    width : ndarray
        Gaussian σ [px] (empty when not measured).
    chi2 : ndarray
        Reduced χ² of the Gaussian fit (empty when not measured).
    """

    x: NDArray[np.float64]
    x_error: NDArray[np.float64]
    peak: NDArray[np.float64]
    width: NDArray[np.float64] = field(default_factory=lambda: np.empty(0))
    chi2: NDArray[np.float64] = field(default_factory=lambda: np.empty(0))


def detect_lines(
    x: NDArray[np.float64],
    flux: NDArray[np.float64],
    variance: NDArray[np.float64],
    mask: NDArray[np.uint8],
    threshold: float = 20.0,
) -> ArcLines:
    """Find and centre emission lines in one extracted arc order.

    Parameters
    ----------
    x : ndarray
        Full-detector columns [px].
    flux, variance : ndarray
        Extracted counts [e⁻] and variance [e⁻²].
    mask : ndarray of uint8
        Extraction mask; lines with a flagged pixel within ±5 px are skipped.
    threshold : float
        Detection threshold on the peak's significance above the background [σ].
    """
    background = percentile_filter(flux, 20, size=41, mode="nearest")
    sigma = np.sqrt(np.clip(variance, 1.0, None))
    excess = (flux - background) / sigma
    peaks = (
        np.flatnonzero(
            (flux[2:-2] > flux[1:-3])
            & (flux[2:-2] >= flux[3:-1])
            & (flux[2:-2] > flux[:-4])
            & (flux[2:-2] >= flux[4:])
            & (excess[2:-2] > threshold)
        )
        + 2
    )
    out_x, out_err, out_peak, out_width, out_chi2 = [], [], [], [], []
    pixels = np.arange(flux.size, dtype=float)
    for peak in peaks:
        lo, hi = peak - FIT_HALF_WIDTH, peak + FIT_HALF_WIDTH + 1
        if lo < 0 or hi > flux.size or np.any(mask[lo:hi]):
            continue
        window = pixels[lo:hi]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", OptimizeWarning)
                params, cov = curve_fit(
                    gaussian_peak,
                    window,
                    flux[lo:hi],
                    p0=(flux[peak] - background[peak], float(peak), 1.7, background[peak]),
                    sigma=sigma[lo:hi],
                    absolute_sigma=True,
                    maxfev=200,
                )
        except (RuntimeError, ValueError):
            continue
        error = float(np.sqrt(cov[1, 1])) if np.isfinite(cov[1, 1]) else np.inf
        if not (
            0.8 < params[2] < 4.0 and abs(params[1] - peak) < 1.5 and params[0] > 0 and error < 0.5
        ):
            continue
        out_x.append(x[0] + params[1] * (x[1] - x[0]))
        out_err.append(error)
        out_peak.append(params[0])
        out_width.append(abs(params[2]))
        model = gaussian_peak(window, *params)
        out_chi2.append(float(np.sum(((flux[lo:hi] - model) / sigma[lo:hi]) ** 2)) / (hi - lo - 4))
    return ArcLines(
        np.array(out_x),
        np.array(out_err),
        np.array(out_peak),
        np.array(out_width),
        np.array(out_chi2),
    )


@dataclass
class WavelengthSolution:
    """λ(x, m) = [m λ_nominal(x) + Σ c_ij P_i(u) P_j(v)] / m for one fibre.

    u maps the columns ``x_domain`` to [−1, 1], v the orders ``m_domain`` to [−1, 1].

    Attributes
    ----------
    covariance : ndarray or None
        Covariance of the flattened ``coeffs`` [Å²], scaled so that it includes the lines'
        excess scatter (blends, line-list errors) and the model floor found on held-out
        lines; None for solutions read from products that do not carry it.
    precision_ms : float
        Expected RMS error of λ over the columns of the solved orders [m/s] (from
        ``covariance``).
    orders : dict[int, OrderQuality]
        Per order index: lines used, residual RMS and expected RMS error [m/s].
    model_scale : float
        Factor (≥ 1) by which held-out lines showed the fit's formal errors to be too small.
    arc_lines : dict[str, ndarray]
        Every line detected in the arc (``x``, ``x_error`` [px], ``order``), matched or not:
        the simultaneous-drift correction pairs a science frame's lines with these.
    """

    spectrograph: Spectrograph
    fibre: int
    coeffs: NDArray[np.float64]  # (x_degree + 1, m_degree + 1)
    x_domain: tuple[float, float]
    m_domain: tuple[float, float]
    n_lines: int = 0
    rms_angstrom: float = 0.0
    rms_ms: float = 0.0
    precision_ms: float = 0.0
    lines: dict[str, NDArray[np.float64]] = field(default_factory=dict)
    covariance: NDArray[np.float64] | None = None
    orders: dict[int, OrderQuality] = field(default_factory=dict)
    model_scale: float = 1.0
    arc_lines: dict[str, NDArray[np.float64]] = field(default_factory=dict)

    def design(self, x: NDArray[np.float64], m: NDArray[np.float64]) -> NDArray[np.float64]:
        """Design matrix: P_i(u) P_j(v) at columns ``x`` [px] of physical orders ``m``."""
        u, v = self._uv(np.asarray(x, float).ravel(), np.asarray(m, float).ravel())
        return _design(u, v, *self._degrees())

    def _uv(
        self, x: NDArray[np.float64], m: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        u = (2.0 * np.asarray(x, float) - sum(self.x_domain)) / (
            self.x_domain[1] - self.x_domain[0]
        )
        v = (2.0 * np.asarray(m, float) - sum(self.m_domain)) / max(
            self.m_domain[1] - self.m_domain[0], 1.0
        )
        return u, v

    def __call__(
        self, x: NDArray[np.float64], order_index: int | NDArray[np.int64]
    ) -> NDArray[np.float64]:
        """Vacuum wavelength [Å] at full-detector columns ``x`` of order index ``order_index``."""
        m = self.spectrograph.order0 + np.asarray(order_index, float)
        m_b = np.broadcast_to(m, np.shape(x)).astype(float)
        x = np.asarray(x, float)
        u, v = self._uv(x, m_b)
        correction = legendre.legval2d(u, v, self.coeffs)
        return np.asarray((m_b * self.spectrograph.nominal_wavelength(x, m_b) + correction) / m_b)

    def uncertainty(
        self, x: NDArray[np.float64], order_index: int | NDArray[np.int64]
    ) -> NDArray[np.float64]:
        """1σ of the wavelength [Å] at columns ``x`` of ``order_index`` (NaN without covariance)."""
        x = np.asarray(x, float)
        if self.covariance is None:
            return np.full(x.shape, np.nan)
        m = np.broadcast_to(self.spectrograph.order0 + np.asarray(order_index, float), x.shape)
        design = self.design(x, m)
        variance = np.einsum("ij,jk,ik->i", design, self.covariance, design)
        return np.asarray(np.sqrt(np.clip(variance, 0.0, None)).reshape(x.shape) / m)

    def _degrees(self) -> tuple[int, int]:
        return self.coeffs.shape[0] - 1, self.coeffs.shape[1] - 1

    def expected_error_ms(self, order_index: int) -> float:
        """Return the expected RMS error of λ over one order's columns [m/s] (NaN: none)."""
        x = np.linspace(self.x_domain[0], self.x_domain[1], 129)
        relative = self.uncertainty(x, order_index) / self(x, order_index)
        return float(C_MS * np.sqrt(np.mean(relative**2)))


@dataclass(frozen=True)
class OrderQuality:
    """Quality of a solution in one order: lines used, residual RMS and expected error [m/s]."""

    n_lines: int
    rms_ms: float
    precision_ms: float


def _isolated_among(
    wavelengths: NDArray[np.float64],
    brightness: NDArray[np.float64],
    neighbours: NDArray[np.float64],
    neighbour_brightness: NDArray[np.float64],
    min_separation: NDArray[np.float64],
) -> NDArray[np.bool_]:
    """Lines with no other known line within ``min_separation`` [Å] that could move them.

    A neighbour fainter than :data:`BLEND_CONTRAST` × the line (both brightnesses known) is
    harmless; one of unknown brightness is not.
    """
    keep = np.ones(wavelengths.size, bool)
    lo = np.searchsorted(neighbours, wavelengths - min_separation, side="left")
    hi = np.searchsorted(neighbours, wavelengths + min_separation, side="right")
    for k in np.flatnonzero(hi - lo > 1):
        near = slice(lo[k], hi[k])
        others = np.abs(neighbours[near] - wavelengths[k]) > 1e-6
        faint = neighbour_brightness[near] < BLEND_CONTRAST * brightness[k]
        if np.any(others & ~faint):
            keep[k] = False
    return keep


def _design(
    u: NDArray[np.float64], v: NDArray[np.float64], x_degree: int, m_degree: int
) -> NDArray[np.float64]:
    return np.asarray(legendre.legvander2d(u, v, [x_degree, m_degree]))


#: Smallest separation [px, nominal dispersion] of two reference lines for either to be used.
BLEND_SEPARATION_PX = 6.0
#: A neighbour fainter than this fraction of a line does not make it a blend.
BLEND_CONTRAST = 0.02
#: Lines further than this many robust σ from the fit are rejected.
CLIP_SIGMA = 4.0
#: Ranges of orders (thirds) whose held-out scale sets the covariance separately.
HELD_OUT_GROUPS = 3
#: Held-out folds for the model-floor check.
HELD_OUT_FOLDS = 5
#: Floor of a line centre's uncertainty [px].
CENTROID_FLOOR_PX = 0.002


#: Lines wider or narrower than this fraction of the order's typical width are blends (or noise).
MAX_WIDTH_DEVIATION = 0.08


def _drop_wide(found: ArcLines) -> ArcLines:
    """Drop lines whose Gaussian σ is off the order's trend (quadratic in x) by > 8 %."""
    if found.width.size != found.x.size or found.x.size < 8:
        return found
    keep = np.ones(found.x.size, bool)
    u = (found.x - found.x.mean()) / max(float(np.ptp(found.x)), 1.0)
    for _ in range(3):
        coeffs = np.polyfit(u[keep], found.width[keep], 2 if keep.sum() >= 12 else 0)
        relative = found.width / np.polyval(coeffs, u) - 1.0
        new_keep = np.abs(relative) < MAX_WIDTH_DEVIATION
        if np.array_equal(new_keep, keep) or new_keep.sum() < 5:
            break
        keep = new_keep
    return ArcLines(
        found.x[keep],
        found.x_error[keep],
        found.peak[keep],
        found.width[keep],
        found.chi2[keep] if found.chi2.size == found.x.size else found.chi2,
    )


def default_min_lines(x_degree: int, m_degree: int) -> int:
    """Fewest matched lines for a solution with these degrees: 2 per coefficient, at least 8."""
    return max(8, 2 * (x_degree + 1) * (m_degree + 1))


def _as_reference(
    reference: ReferenceLines | tuple[NDArray[np.float64], NDArray[np.float64]],
) -> ReferenceLines:
    if isinstance(reference, ReferenceLines):
        return reference
    wave, bright = (np.asarray(a, float) for a in reference)
    order = np.argsort(wave)
    return ReferenceLines(
        wave[order], np.zeros(wave.size), bright[order], np.zeros(wave.size, bool)
    )


def _excess(residual: NDArray[np.float64], sigma: NDArray[np.float64]) -> float:
    """Scatter [px] to add in quadrature to ``sigma`` so that the residuals have unit spread."""
    if residual.size < 5:
        return 0.0
    spread = robust_sigma(residual, center=0.0) ** 2
    return float(np.sqrt(max(spread - float(np.median(sigma**2)), 0.0)))


def _nearest_within(
    reference: NDArray[np.float64], values: NDArray[np.float64], tolerance: NDArray[np.float64]
) -> NDArray[np.intp]:
    """Index of the nearest of the sorted ``reference`` to each value, −1 if beyond tolerance."""
    if reference.size == 0 or values.size == 0:
        return np.full(values.size, -1, dtype=np.intp)
    k = np.clip(np.searchsorted(reference, values), 0, reference.size - 1)
    left = np.clip(k - 1, 0, reference.size - 1)
    k = np.where(np.abs(reference[left] - values) < np.abs(reference[k] - values), left, k)
    return np.where(np.abs(reference[k] - values) < tolerance, k, -1).astype(np.intp)


def solve_wavelength(
    spectrograph: Spectrograph,
    fibre: int,
    lines: dict[int, ArcLines],
    reference: ReferenceLines | tuple[NDArray[np.float64], NDArray[np.float64]],
    x_domain: tuple[float, float],
    x_degree: int = 2,
    m_degree: int = 2,
    min_lines: int | None = None,
) -> WavelengthSolution:
    """Fit a 2-D wavelength solution for one fibre.

    Parameters
    ----------
    spectrograph : Spectrograph
        Nominal model (the seed).
    fibre : int
    lines : dict[int, ArcLines]
        Detected lines per order index.
    reference : ReferenceLines or (ndarray, ndarray)
        Reference line list (:func:`~photonpipe.echelle.instrument.thar_reference`), or vacuum
        wavelengths [Å] and brightness (taken as exact).
    x_domain : (float, float)
        Range of full-detector columns of the extracted spectra.
    x_degree, m_degree : int
        Legendre degrees in column and order.
    min_lines : int, optional
        Fewest matched lines (default :func:`default_min_lines`: two per coefficient).

    Raises
    ------
    WavelengthSolutionError
        Fewer than ``min_lines`` lines could be matched.

    Notes
    -----
    Lines wider or narrower than the order's trend by > 8 % (blends) are dropped, and so are
    reference lines with a comparable neighbour within 6 px. Each line weighs 1/σ² with
    σ² = σ_centre² + (σ_list / dispersion)² + s², σ_centre the centroid error times
    √max(χ²ᵣ, 1) of the line's Gaussian fit, s the lines' excess scatter [px] (blends,
    line shapes, list errors) found from the residuals; lines beyond 4 σ are rejected. The
    coefficients' covariance is the weighted fit's, times the reduced χ² when above 1, with
    each line's variance times the square of the model scale of its third of the orders: the
    RMS (≥ 1) of the normalised errors of lines held out of the fit (whole orders in 5
    interleaved folds, or column blocks with few orders), predicted by the fit to the others.
    """
    ref = _as_reference(reference)
    if min_lines is None:
        min_lines = default_min_lines(x_degree, m_degree)
    orders = sorted(o for o, found in lines.items() if found.x.size)
    if not orders:
        raise WavelengthSolutionError(f"fibre {fibre}: no arc lines detected")
    m_domain = (float(spectrograph.order0 + min(orders)), float(spectrograph.order0 + max(orders)))
    # Reference lines with no comparable neighbour within 6 px (nominal dispersion) per order:
    # wavelength [Å], nominal column [px], list 1σ [Å].
    candidates: dict[int, tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]]
    candidates = {}
    grid = np.linspace(x_domain[0] - 20, x_domain[1] + 20, 512)
    for order in orders:
        m = spectrograph.order0 + order
        wave = spectrograph.nominal_wavelength(grid, m)
        inside = (ref.wavelength > wave[0]) & (ref.wavelength < wave[-1])
        chosen = ref.wavelength[inside]
        dispersion = np.interp(chosen, wave, np.gradient(wave, grid))
        keep = _isolated_among(
            chosen,
            ref.brightness[inside],
            ref.neighbours if ref.neighbours.size else ref.wavelength,
            ref.neighbour_brightness if ref.neighbours.size else ref.brightness,
            BLEND_SEPARATION_PX * dispersion,
        )
        candidates[order] = (
            chosen[keep],
            np.interp(chosen[keep], wave, grid),
            ref.uncertainty[inside][keep],
        )

    def count(shift: float, order: int, tolerance: float) -> int:
        ref_x = candidates[order][1]
        if ref_x.size == 0:
            return 0
        found = lines[order].x + shift
        distance = np.abs(found[:, None] - ref_x[None, :]).min(axis=1)
        return int((distance < tolerance).sum())

    shifts = np.arange(-25.0, 25.0, 0.1)
    totals = [sum(count(s, o, 0.4) for o in orders) for s in shifts]
    global_shift = float(shifts[int(np.argmax(totals))])
    per_order = {}
    for order in orders:
        local = np.arange(global_shift - 3.0, global_shift + 3.0, 0.05)
        scores = [count(s, order, 0.3) for s in local]
        per_order[order] = (
            float(local[int(np.argmax(scores))]) if max(scores) >= 3 else global_shift
        )

    detected = {
        "x": np.concatenate([lines[o].x for o in orders]),
        "x_error": np.concatenate([lines[o].x_error for o in orders]),
        "order": np.concatenate([np.full(lines[o].x.size, float(o)) for o in orders]),
    }
    lines = {o: _drop_wide(lines[o]) for o in orders}
    x_all = np.concatenate([lines[o].x for o in orders])
    e_all = np.concatenate([lines[o].x_error for o in orders])
    # a line whose Gaussian fit is poor (χ²ᵣ > 1: an unresolved blend, a distorted shape) has
    # a centre less certain than the photon noise says
    chi2_all = np.concatenate(
        [
            lines[o].chi2 if lines[o].chi2.size == lines[o].x.size else np.ones(lines[o].x.size)
            for o in orders
        ]
    )
    e_fit = e_all * np.sqrt(np.clip(chi2_all, 1.0, None))
    o_all = np.concatenate([np.full(lines[o].x.size, o) for o in orders])
    m_all = spectrograph.order0 + o_all.astype(float)
    starts = np.cumsum([0] + [candidates[o][0].size for o in orders])
    cand_w = np.concatenate([candidates[o][0] for o in orders])
    cand_e = np.concatenate([candidates[o][2] for o in orders])

    def match(
        values: NDArray[np.float64], tolerance: NDArray[np.float64], column: int
    ) -> NDArray[np.intp]:
        """Flattened candidate index of each line's match (−1 none); ``column`` 0 λ, 1 x."""
        out = np.full(x_all.size, -1, dtype=np.intp)
        for k, order in enumerate(orders):
            sel = np.flatnonzero(o_all == order)
            found = _nearest_within(candidates[order][column], values[sel], tolerance[sel])
            out[sel[found >= 0]] = starts[k] + found[found >= 0]
        return out

    # Initial matches: nearest isolated reference line within 1 px after the shift.
    shift_all = np.array([per_order[o] for o in o_all], float)
    matched = match(x_all + shift_all, np.ones(x_all.size), 1)
    solution = WavelengthSolution(
        spectrograph,
        fibre,
        np.zeros((x_degree + 1, m_degree + 1)),
        x_domain,
        m_domain,
        arc_lines=detected,
    )
    if int((matched >= 0).sum()) < min_lines:
        raise WavelengthSolutionError(
            f"fibre {fibre}: only {int((matched >= 0).sum())} arc lines matched (need {min_lines})"
        )
    design_all = solution.design(x_all, m_all)
    nominal_all = spectrograph.nominal_wavelength(x_all, m_all)
    dispersion_all = np.abs(
        spectrograph.nominal_wavelength(x_all + 0.5, m_all)
        - spectrograph.nominal_wavelength(x_all - 0.5, m_all)
    )
    statistical_all = np.hypot(e_fit, CENTROID_FLOOR_PX)
    excess = 0.0
    keep = np.zeros(x_all.size, bool)
    weights = np.zeros(x_all.size)
    for _ in range(8):
        use = np.flatnonzero(matched >= 0)
        wave_m = cand_w[matched[use]]
        target = m_all[use] * (wave_m - nominal_all[use])
        scale = m_all[use] * dispersion_all[use]  # [Å of m λ per px]
        base = np.hypot(statistical_all[use], cand_e[matched[use]] / dispersion_all[use])
        keep_m = np.ones(use.size, bool)
        fit = np.zeros(design_all.shape[1])
        w = np.zeros(use.size)
        for _ in range(10):
            w = 1.0 / (scale * np.hypot(base, excess))
            fit, *_ = np.linalg.lstsq(
                design_all[use][keep_m] * w[keep_m, None], target[keep_m] * w[keep_m], rcond=None
            )
            residual_px = (design_all[use] @ fit - target) / scale
            excess = _excess(residual_px[keep_m], base[keep_m])
            normalised = residual_px / np.hypot(base, excess)
            spread = robust_sigma(normalised[keep_m], center=0.0)
            new_keep = np.abs(normalised) < CLIP_SIGMA * max(spread, 1.0)
            if np.array_equal(new_keep, keep_m) or new_keep.sum() < min_lines:
                break
            keep_m = new_keep
        solution.coeffs = fit.reshape(x_degree + 1, m_degree + 1)
        keep = np.zeros(x_all.size, bool)
        keep[use[keep_m]] = True
        weights = np.zeros(x_all.size)
        weights[use] = w
        # Re-match every detected line with the fitted model (tighter: 0.25 px).
        new_matched = match(solution(x_all, o_all), 0.25 * dispersion_all, 0)
        if int((new_matched >= 0).sum()) < min_lines or np.array_equal(new_matched, matched):
            break
        matched = new_matched
    if keep.sum() < min_lines:
        raise WavelengthSolutionError(
            f"fibre {fibre}: only {int(keep.sum())} arc lines kept (need {min_lines})"
        )
    kept = np.flatnonzero(keep)
    design_k = design_all[kept] * weights[kept, None]
    wave_k = cand_w[matched[kept]]
    target_k = m_all[kept] * (wave_k - nominal_all[kept]) * weights[kept]
    n_params = design_k.shape[1]
    in_sample = design_k @ solution.coeffs.ravel() - target_k
    chi2 = float(np.sum(in_sample**2) / max(kept.size - n_params, 1))
    held = _held_out_errors(design_k, target_k, o_all[kept], x_all[kept], x_domain)
    solution.model_scale = _scale(held)
    # the held-out check, third of the orders by third: the covariance of the fit (a sandwich,
    # each line's variance scaled by its third's held-out scale) follows where the model is
    # worse or better than the lines' scatter says
    ranks = np.searchsorted(np.array(orders), o_all[kept])
    groups = (ranks * HELD_OUT_GROUPS) // max(len(orders), 1)
    factor = np.full(kept.size, solution.model_scale**2)
    for group in range(HELD_OUT_GROUPS):
        sel = groups == group
        if np.isfinite(held[sel]).sum() >= 20:
            factor[sel] = _scale(held[sel]) ** 2
    bread = np.linalg.pinv(design_k.T @ design_k)
    meat = design_k.T @ (design_k * factor[:, None])
    solution.covariance = np.asarray(bread @ meat @ bread * max(chi2, 1.0), dtype=np.float64)
    residual = solution(x_all[kept], o_all[kept]) - wave_k
    fractional = residual / wave_k
    solution.n_lines = int(kept.size)
    solution.rms_angstrom = float(np.sqrt(np.mean(residual**2)))
    solution.rms_ms = float(C_MS * np.sqrt(np.mean(fractional**2)))
    solution.lines = {
        "x": x_all[kept],
        "x_error": e_all[kept],
        "order": o_all[kept].astype(float),
        "wavelength": wave_k,
        "residual": residual,
        "sigma": 1.0 / (weights[kept] * m_all[kept]),
    }
    for order in orders:
        sel = o_all[kept] == order
        solution.orders[order] = OrderQuality(
            int(sel.sum()),
            float(C_MS * np.sqrt(np.mean(fractional[sel] ** 2))) if sel.any() else math.nan,
            solution.expected_error_ms(order),
        )
    solution.precision_ms = float(
        np.sqrt(np.mean([q.precision_ms**2 for q in solution.orders.values()]))
    )
    return solution


def _scale(errors: NDArray[np.float64]) -> float:
    """RMS (≥ 1) of normalised held-out errors (NaN ignored; 1 with fewer than 5)."""
    finite = errors[np.isfinite(errors)]
    return max(float(np.sqrt(np.mean(finite**2))), 1.0) if finite.size >= 5 else 1.0


def _held_out_errors(
    design: NDArray[np.float64],
    target: NDArray[np.float64],
    orders: NDArray[np.int64],
    x: NDArray[np.float64],
    x_domain: tuple[float, float],
) -> NDArray[np.float64]:
    """Normalised prediction errors of lines held out of the fit (weighted design, target).

    Folds are whole orders, interleaved, so that errors shared by neighbouring lines count;
    with fewer than 2 × :data:`HELD_OUT_FOLDS` orders, blocks of columns. NaN: not held out.
    """
    distinct = np.unique(orders)
    if distinct.size >= 2 * HELD_OUT_FOLDS:
        folds = np.searchsorted(distinct, orders) % HELD_OUT_FOLDS
    else:
        span = x_domain[1] - x_domain[0]
        blocks = np.floor((x - x_domain[0]) / span * 2 * HELD_OUT_FOLDS).astype(int)
        folds = np.clip(blocks, 0, 2 * HELD_OUT_FOLDS - 1) % HELD_OUT_FOLDS
    held = np.full(target.size, np.nan)
    for fold in range(HELD_OUT_FOLDS):
        test = folds == fold
        train = ~test
        if train.sum() <= 2 * design.shape[1] or not test.any():
            continue
        fit, *_ = np.linalg.lstsq(design[train], target[train], rcond=None)
        covariance = np.linalg.pinv(design[train].T @ design[train])
        variance = 1.0 + np.einsum("ij,jk,ik->i", design[test], covariance, design[test])
        held[test] = (design[test] @ fit - target[test]) / np.sqrt(variance)
    return held
