"""Th-Ar wavelength solution: line detection, matching, a 2-D (pixel, order) fit.

For each fibre of an extracted arc:

1. **Detect** emission lines (local maxima ≥ ``threshold`` σ above a running 20th percentile)
   and fit each with a Gaussian plus constant on ±5 px; saturated or masked lines are skipped.
2. **Seed** with the grating equation of the site's spectrograph
   (:meth:`~photonpipe.echelle.instrument.Spectrograph.nominal_wavelength`) and find the shift in
   pixels that makes most detected lines fall on isolated Redman et al. (2014) vacuum lines
   (first for the whole fibre, then refined per order).
3. **Fit** m λ − m λ_nominal(x) as a product of Legendre polynomials in x (degree
   ``x_degree``) and m (degree ``m_degree``), weighted by the line centre uncertainties;
   re-match with the fitted model, reject lines beyond 4 robust σ, repeat.

Quality figures: lines used, RMS residual [Å] and [m/s], and the RV precision the solution
supports, c · RMS(Δλ/λ)/√N [m/s].
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from numpy.polynomial import legendre
from numpy.typing import NDArray
from scipy.ndimage import percentile_filter
from scipy.optimize import OptimizeWarning, curve_fit

from photonpipe.echelle.instrument import Spectrograph
from photonpipe.errors import PhotonpipeError

C_MS = 299_792_458.0
FIT_HALF_WIDTH = 5


class WavelengthSolutionError(PhotonpipeError):
    """Too few lines were matched to fit a wavelength solution."""


@dataclass
class ArcLines:
    """Lines detected in one order: full-detector column [px], its 1σ [px], peak [e⁻]."""

    x: NDArray[np.float64]
    x_error: NDArray[np.float64]
    peak: NDArray[np.float64]


def _gauss(
    x: NDArray[np.float64], amplitude: float, centre: float, sigma: float, background: float
) -> NDArray[np.float64]:
    return np.asarray(amplitude * np.exp(-0.5 * ((x - centre) / sigma) ** 2) + background)


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
    out_x, out_err, out_peak = [], [], []
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
                    _gauss,
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
    return ArcLines(np.array(out_x), np.array(out_err), np.array(out_peak))


@dataclass
class WavelengthSolution:
    """λ(x, m) = [m λ_nominal(x) + Σ c_ij P_i(u) P_j(v)] / m for one fibre.

    u maps the columns ``x_domain`` to [−1, 1], v the orders ``m_domain`` to [−1, 1].
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
        u, v = self._uv(np.asarray(x, float), m_b)
        correction = legendre.legval2d(u, v, self.coeffs)
        return np.asarray(
            (m_b * self.spectrograph.nominal_wavelength(np.asarray(x, float), m_b) + correction)
            / m_b
        )


def _isolated(
    wavelengths: NDArray[np.float64], min_separation: NDArray[np.float64] | float
) -> NDArray[np.bool_]:
    gaps = np.diff(wavelengths)
    left = np.concatenate([[np.inf], gaps])
    right = np.concatenate([gaps, [np.inf]])
    return np.asarray((left > min_separation) & (right > min_separation))


def _design(
    u: NDArray[np.float64], v: NDArray[np.float64], x_degree: int, m_degree: int
) -> NDArray[np.float64]:
    return np.asarray(legendre.legvander2d(u, v, [x_degree, m_degree]))


def solve_wavelength(
    spectrograph: Spectrograph,
    fibre: int,
    lines: dict[int, ArcLines],
    reference: tuple[NDArray[np.float64], NDArray[np.float64]],
    x_domain: tuple[float, float],
    x_degree: int = 4,
    m_degree: int = 2,
    min_lines: int = 20,
) -> WavelengthSolution:
    """Fit a 2-D wavelength solution for one fibre.

    Parameters
    ----------
    spectrograph : Spectrograph
        Nominal model (the seed).
    fibre : int
    lines : dict[int, ArcLines]
        Detected lines per order index.
    reference : (ndarray, ndarray)
        Reference line list: vacuum wavelengths [Å] and brightness.
    x_domain : (float, float)
        Range of full-detector columns of the extracted spectra.
    x_degree, m_degree : int
        Legendre degrees in column and order.
    min_lines : int
        Fewest matched lines.

    Raises
    ------
    WavelengthSolutionError
        Fewer than ``min_lines`` lines could be matched.
    """
    ref_wave = np.sort(reference[0])
    orders = sorted(o for o, found in lines.items() if found.x.size)
    if not orders:
        raise WavelengthSolutionError(f"fibre {fibre}: no arc lines detected")
    m_domain = (float(spectrograph.order0 + min(orders)), float(spectrograph.order0 + max(orders)))
    # Reference lines with no neighbour within 6 px (nominal dispersion) in each order.
    candidates: dict[int, tuple[NDArray[np.float64], NDArray[np.float64]]] = {}
    grid = np.linspace(x_domain[0] - 20, x_domain[1] + 20, 512)
    for order in orders:
        m = spectrograph.order0 + order
        wave = spectrograph.nominal_wavelength(grid, m)
        inside = (ref_wave > wave[0]) & (ref_wave < wave[-1])
        chosen = ref_wave[inside]
        dispersion = np.interp(chosen, wave, np.gradient(wave, grid))
        keep = _isolated(chosen, 6.0 * dispersion)
        candidates[order] = (chosen[keep], np.interp(chosen[keep], wave, grid))

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

    # Initial matches: nearest isolated reference line within 1 px after the shift.
    xs, errs, ms, waves = [], [], [], []
    for order in orders:
        ref_w, ref_x = candidates[order]
        if ref_x.size == 0:
            continue
        found = lines[order]
        for x, err in zip(found.x, found.x_error, strict=True):
            distance = np.abs(ref_x - (x + per_order[order]))
            k = int(np.argmin(distance))
            if distance[k] < 1.0:
                xs.append(x)
                errs.append(err)
                ms.append(spectrograph.order0 + order)
                waves.append(ref_w[k])
    x_all = np.concatenate([lines[o].x for o in orders])
    e_all = np.concatenate([lines[o].x_error for o in orders])
    m_all = np.concatenate(
        [np.full(lines[o].x.size, spectrograph.order0 + o, float) for o in orders]
    )
    solution = WavelengthSolution(
        spectrograph, fibre, np.zeros((x_degree + 1, m_degree + 1)), x_domain, m_domain
    )
    x_m = np.array(xs)
    e_m = np.array(errs)
    m_m = np.array(ms, float)
    w_m = np.array(waves)
    if x_m.size < min_lines:
        raise WavelengthSolutionError(
            f"fibre {fibre}: only {x_m.size} arc lines matched (need {min_lines})"
        )
    for _ in range(6):
        keep = np.ones(x_m.size, bool)
        for _ in range(5):
            dispersion = np.abs(
                np.gradient(
                    spectrograph.nominal_wavelength(
                        np.array([x_m - 0.5, x_m + 0.5]).ravel(), np.tile(m_m, 2)
                    ).reshape(2, -1),
                    axis=0,
                )[0]
            )
            sigma_wave = np.hypot(e_m, 0.005) * dispersion
            target = m_m * w_m - m_m * spectrograph.nominal_wavelength(x_m, m_m)
            u, v = solution._uv(x_m, m_m)
            design = _design(u, v, x_degree, m_degree)
            weights = 1.0 / (m_m * sigma_wave)
            fit, *_ = np.linalg.lstsq(
                design[keep] * weights[keep, None], target[keep] * weights[keep], rcond=None
            )
            solution.coeffs = fit.reshape(x_degree + 1, m_degree + 1)
            residual_px = (solution(x_m, m_m - spectrograph.order0) - w_m) / dispersion
            robust = 1.4826 * np.median(np.abs(residual_px[keep]))
            new_keep = np.abs(residual_px) < max(4.0 * robust, 0.02)
            if (new_keep == keep).all():
                break
            keep = new_keep
        # Re-match every detected line with the fitted model (tighter: 0.25 px).
        predicted = solution(x_all, m_all - spectrograph.order0)
        dispersion_all = np.abs(
            solution(x_all + 0.5, m_all - spectrograph.order0)
            - solution(x_all - 0.5, m_all - spectrograph.order0)
        )
        xs2, es2, ms2, ws2 = [], [], [], []
        for order in orders:
            ref_w = candidates[order][0]
            if ref_w.size == 0:
                continue
            sel = m_all == spectrograph.order0 + order
            for x, err, wave, disp in zip(
                x_all[sel], e_all[sel], predicted[sel], dispersion_all[sel], strict=True
            ):
                k = int(np.argmin(np.abs(ref_w - wave)))
                if abs(ref_w[k] - wave) < 0.25 * disp:
                    xs2.append(x)
                    es2.append(err)
                    ms2.append(spectrograph.order0 + order)
                    ws2.append(ref_w[k])
        if len(xs2) < min_lines:
            break
        same = len(xs2) == x_m.size and np.array_equal(np.array(ws2), w_m)
        x_m, e_m, m_m, w_m = np.array(xs2), np.array(es2), np.array(ms2, float), np.array(ws2)
        if same:
            break
    residual = solution(x_m[keep], m_m[keep] - spectrograph.order0) - w_m[keep]
    fractional = residual / w_m[keep]
    solution.n_lines = int(keep.sum())
    solution.rms_angstrom = float(np.sqrt(np.mean(residual**2)))
    solution.rms_ms = float(C_MS * np.sqrt(np.mean(fractional**2)))
    solution.precision_ms = solution.rms_ms / np.sqrt(max(solution.n_lines, 1))
    solution.lines = {
        "x": x_m[keep],
        "order": m_m[keep] - spectrograph.order0,
        "wavelength": w_m[keep],
        "residual": residual,
    }
    if solution.n_lines < min_lines:
        raise WavelengthSolutionError(
            f"fibre {fibre}: only {solution.n_lines} arc lines kept (need {min_lines})"
        )
    return solution
