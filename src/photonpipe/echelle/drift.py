"""Simultaneous Th-Ar drift correction of science frames.

An NRES science frame carries the star on one fibre and the Th-Ar lamp on another. Between the
night's arcs (the TRIPLE wavelength solution) and a science exposure the spectrograph drifts
along the dispersion (temperature, pressure): every fibre and order moves by nearly the same
number of pixels. The Th-Ar fibre measures that shift, which is then applied to the science
fibre's solution, λ_corrected(x) = λ_TRIPLE(x − δx):

1. **Detect** the Th-Ar fibre's lines in every extracted order
   (:func:`~photonpipe.echelle.wavecal.detect_lines`, a lower threshold than for arcs: each
   line is matched to a known arc line, so a spurious peak cannot pass).
2. **Match** each line to the same line in the TRIPLE's list of every line detected in the
   arc stack for that fibre and order (its measured column, whether or not the wavelength
   solution used it), after a coarse shift that matches the most lines.
   Line by line, the arc's own centroid and any blend or line-profile asymmetry cancel: both
   frames see the same line through the same optics.
3. **Fit** one shift δx [px] for the whole fibre: the weighted mean of x_science − x_arc with
   weights 1/σ², σ² = σ_science² + σ_arc² (both lines' centroid errors: the arc stack's own
   noise is part of every frame's drift error), clipping lines beyond 4 robust σ. Its
   uncertainty is the formal one scaled by √χ²ᵣ when χ²ᵣ > 1. A TRIPLE written before the arc
   lines' errors were stored (no ``XERR`` column) gives σ_arc = 0.
   One shift, not one per order: the drift NRES's simultaneous calibration corrects is a
   uniform shift (the simulator's too), and with 5–30 lines per order per-order shifts would
   each carry √(orders) times the noise of the single one.

The correction is not applied (and the frame is not failed) when the frame has no lit Th-Ar
fibre with a solution, when fewer than ``min_lines`` lines match, when the lines disagree
(χ²ᵣ > ``max_chi2``) or when the shift's uncertainty exceeds ``max_error_px``; header keyword
``DRIFTWHY`` then says why. Not corrected: a change of the dispersion or a drift across the
orders, and any drift during the exposure that the star's flux weights differently from the
lamp's (clouds).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
from astropy.io import fits
from numpy.typing import NDArray

from photonpipe.echelle.extract import ExtractedSpectra
from photonpipe.echelle.wavecal import C_MS, ArcLines, WavelengthSolution, detect_lines
from photonpipe.spectra.robust import robust_sigma

log = logging.getLogger("photonpipe.echelle.drift")

#: Detection threshold [σ] of the Th-Ar lines on a science frame's calibration fibre.
DRIFT_LINE_THRESHOLD = 10.0
#: Fewest matched lines for a drift correction.
DRIFT_MIN_LINES = 10
#: Largest drift searched for [px] (|δx|).
MAX_SHIFT_PX = 5.0
#: Floor of a line centre's uncertainty [px].
CENTROID_FLOOR_PX = 0.002


@dataclass
class Drift:
    """The drift of a science frame measured on its simultaneous Th-Ar fibre.

    Attributes
    ----------
    shift_px : float
        Shift δx [px] of the spectrum along the dispersion since the TRIPLE's arcs (positive:
        lines at larger columns); NaN when not measured.
    error_px : float
        1σ uncertainty of ``shift_px`` [px].
    n_lines : int
        Lines used in the fit (after clipping).
    chi2 : float
        Reduced χ² of the lines about the shift.
    velocity_ms : float
        The shift as a velocity [m/s] at the centre of the middle order of the science fibre,
        c δx (dλ/dx)/λ (positive: the spectrum appeared redshifted).
    thar_fibre : int or None
        Fibre carrying the Th-Ar lamp.
    applied : bool
        Whether the WAVELENGTH columns were corrected.
    reason : str
        Why the correction was not applied ("" when it was).
    """

    shift_px: float = math.nan
    error_px: float = math.nan
    n_lines: int = 0
    chi2: float = math.nan
    velocity_ms: float = math.nan
    thar_fibre: int | None = None
    applied: bool = False
    reason: str = ""


def match_lines(
    lines: dict[int, ArcLines],
    reference: WavelengthSolution,
    max_shift: float = MAX_SHIFT_PX,
    tolerance: float = 0.5,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Pair lines found on a science frame's Th-Ar fibre with the TRIPLE's arc lines.

    Parameters
    ----------
    lines : dict[int, ArcLines]
        Lines found per order index (full-detector columns [px]).
    reference : WavelengthSolution
        The TRIPLE's solution of the same fibre; its ``arc_lines`` (``x``, ``x_error`` [px],
        ``order``: every line detected in the arc), or for older TRIPLEs its ``lines`` (the
        arc lines it was fitted to).
    max_shift : float
        Largest shift searched for [px].
    tolerance : float
        Largest distance [px] from the arc line plus the coarse shift.

    Returns
    -------
    x_science, x_error, x_arc, x_arc_error : ndarray
        Matched columns on the science frame [px], their 1σ [px], the arc lines' columns [px]
        and their 1σ [px] (0 when the TRIPLE does not record them); each arc line is used at
        most once (its nearest science line).
    """
    # every detected arc line when the TRIPLE records them (blends cancel line by line), else
    # the lines the wavelength solution used
    arc_lines = reference.arc_lines if reference.arc_lines else reference.lines
    ref_x = np.asarray(arc_lines.get("x", np.empty(0)), float)
    ref_order = np.asarray(arc_lines.get("order", np.empty(0)), float)
    ref_error = np.asarray(arc_lines.get("x_error", np.zeros(ref_x.size)), float)
    ref_error = np.where(np.isfinite(ref_error), ref_error, 0.0)
    pairs: list[
        tuple[
            int, NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]
        ]
    ] = []
    for order, found in lines.items():
        sel = ref_order == order
        arc_order = np.argsort(ref_x[sel])
        arc = ref_x[sel][arc_order]
        if found.x.size and arc.size:
            pairs.append((order, found.x, found.x_error, arc, ref_error[sel][arc_order]))
    empty = np.empty(0)
    if not pairs:
        return empty, empty, empty, empty
    # coarse shift: the one that puts most lines within 0.3 px of an arc line
    differences = np.concatenate([(x[:, None] - arc[None, :]).ravel() for _, x, _, arc, _ in pairs])
    differences = differences[np.abs(differences) <= max_shift]
    if differences.size == 0:
        return empty, empty, empty, empty
    grid = np.arange(-max_shift, max_shift + 0.05, 0.05)
    counts = [int(np.sum(np.abs(differences - s) < 0.3)) for s in grid]
    coarse = float(np.median(differences[np.abs(differences - grid[int(np.argmax(counts))]) < 0.3]))
    xs, errors, arcs, arc_errors = [], [], [], []
    for _, x, error, arc, arc_error in pairs:
        nearest = np.abs((x[:, None] - coarse) - arc[None, :])
        best = np.argmin(nearest, axis=1)
        close = nearest[np.arange(x.size), best] < tolerance
        for k in np.flatnonzero(close):
            # an arc line claimed by two science lines keeps the nearer one only
            rivals = np.flatnonzero(close & (best == best[k]))
            if k != rivals[np.argmin(nearest[rivals, best[k]])]:
                continue
            xs.append(x[k])
            errors.append(error[k])
            arcs.append(arc[best[k]])
            arc_errors.append(arc_error[best[k]])
    return np.array(xs), np.array(errors), np.array(arcs), np.array(arc_errors)


def fit_shift(
    x_science: NDArray[np.float64],
    x_error: NDArray[np.float64],
    x_arc: NDArray[np.float64],
    clip: float = 4.0,
    x_arc_error: NDArray[np.float64] | None = None,
) -> tuple[float, float, int, float]:
    """Fit one shift to matched lines, weighted by 1/σ², clipping outliers.

    Parameters
    ----------
    x_science, x_error, x_arc : ndarray
        Matched line centres [px] on the science frame, their 1σ [px], and on the arc.
    clip : float
        Lines further than ``clip`` robust σ (of the normalised residuals, at least 1) from the
        shift are rejected, repeatedly.
    x_arc_error : ndarray, optional
        1σ [px] of the arc centres, added in quadrature to ``x_error`` (default 0).

    Returns
    -------
    shift_px, error_px, n_lines, chi2 : float, float, int, float
        Shift [px], its 1σ [px] (scaled by √χ²ᵣ when χ²ᵣ > 1), lines kept, reduced χ².
    """
    difference = np.asarray(x_science, float) - np.asarray(x_arc, float)
    sigma = np.hypot(np.asarray(x_error, float), CENTROID_FLOOR_PX)
    if x_arc_error is not None and np.size(x_arc_error):
        sigma = np.hypot(sigma, np.asarray(x_arc_error, float))
    if difference.size == 0:
        return math.nan, math.nan, 0, math.nan
    weights = 1.0 / sigma**2
    keep = np.ones(difference.size, bool)
    shift = float(np.median(difference))
    for _ in range(10):
        normalised = (difference - shift) / sigma
        spread = robust_sigma(normalised[keep], center=0.0)
        new_keep = np.abs(normalised) < clip * max(spread, 1.0)
        if not new_keep.any():
            break
        shift = float(np.sum(weights[new_keep] * difference[new_keep]) / weights[new_keep].sum())
        if np.array_equal(new_keep, keep):
            break
        keep = new_keep
    n = int(keep.sum())
    chi2 = float(np.sum(weights[keep] * (difference[keep] - shift) ** 2) / max(n - 1, 1))
    error = math.sqrt(1.0 / float(weights[keep].sum())) * math.sqrt(max(chi2, 1.0))
    return shift, error, n, chi2


def measure_drift(
    spectra: ExtractedSpectra,
    solutions: dict[int, WavelengthSolution],
    thar_fibre: int | None,
    science_fibre: int,
    threshold: float = DRIFT_LINE_THRESHOLD,
    min_lines: int = DRIFT_MIN_LINES,
    max_chi2: float = 25.0,
    max_error_px: float = 0.05,
) -> Drift:
    """Measure a science frame's drift on its Th-Ar fibre and decide whether to correct it.

    Parameters
    ----------
    spectra : ExtractedSpectra
        The frame's extracted orders (all lit fibres with a solution).
    solutions : dict[int, WavelengthSolution]
        The TRIPLE's solutions by fibre.
    thar_fibre : int or None
        Fibre lit by the Th-Ar lamp (None: the frame has none).
    science_fibre : int
        Fibre carrying the star (for the velocity equivalent).
    threshold : float
        Line detection threshold [σ].
    min_lines : int
        Fewest lines the fit must keep.
    max_chi2 : float
        Largest reduced χ² of the lines about one shift.
    max_error_px : float
        Largest uncertainty [px] of an applied shift.

    Returns
    -------
    Drift
        ``applied`` True when the shift is good enough to correct the wavelengths.
    """
    if thar_fibre is None:
        return Drift(reason="no Th-Ar fibre lit")
    if thar_fibre not in solutions or not any(f == thar_fibre for _, f in spectra.keys):
        return Drift(thar_fibre=thar_fibre, reason=f"Th-Ar fibre {thar_fibre} not extracted")
    lines = {
        order: detect_lines(
            spectra.x, spectra.flux[i], spectra.variance[i], spectra.mask[i], threshold
        )
        for i, (order, fibre) in enumerate(spectra.keys)
        if fibre == thar_fibre
    }
    x_science, x_error, x_arc, x_arc_error = match_lines(lines, solutions[thar_fibre])
    shift, error, n, chi2 = fit_shift(x_science, x_error, x_arc, x_arc_error=x_arc_error)
    drift = Drift(shift, error, n, chi2, thar_fibre=thar_fibre)
    if science_fibre in solutions and math.isfinite(shift):
        orders = sorted(o for o, f in spectra.keys if f == science_fibre) or sorted(lines)
        order = orders[len(orders) // 2]
        centre = float(spectra.x[spectra.x.size // 2])
        solution = solutions[science_fibre]
        wave = solution(np.array([centre - 0.5, centre, centre + 0.5]), order)
        drift.velocity_ms = float(C_MS * shift * (wave[2] - wave[0]) / wave[1])
    if n < min_lines:
        drift.reason = f"only {n} Th-Ar lines matched (need {min_lines})"
    elif not chi2 <= max_chi2:
        drift.reason = f"Th-Ar lines disagree (chi2 {chi2:.1f} > {max_chi2:g})"
    elif not error <= max_error_px:
        drift.reason = f"drift uncertainty {error:.3f} px > {max_error_px:g} px"
    else:
        drift.applied = True
    return drift


def drift_cards(header: fits.Header, drift: Drift) -> None:
    """Record a drift measurement in a 1-D product's header (DRIFT* keywords)."""
    header["DRIFTCOR"] = (drift.applied, "simultaneous Th-Ar drift corrected")
    header["DRIFTWHY"] = (drift.reason or "corrected", "why (not) corrected")
    header["DRIFTFIB"] = (
        -1 if drift.thar_fibre is None else drift.thar_fibre,
        "fibre with the Th-Ar lamp (-1 none)",
    )
    finite = math.isfinite(drift.shift_px)
    header["DRIFTPX"] = (
        round(drift.shift_px, 6) if finite else "N/A",
        "[px] drift along dispersion since TRIPLE",
    )
    header["DRIFTERR"] = (
        round(drift.error_px, 6) if finite else "N/A",
        "[px] 1 sigma uncertainty of DRIFTPX",
    )
    header["DRIFTMS"] = (
        round(drift.velocity_ms, 3) if math.isfinite(drift.velocity_ms) else "N/A",
        "[m/s] DRIFTPX at the science order centre",
    )
    header["DRIFTNL"] = (drift.n_lines, "Th-Ar lines in the drift fit")
    header["DRIFTCHI"] = (
        round(drift.chi2, 3) if math.isfinite(drift.chi2) else "N/A",
        "reduced chi2 of the lines about the drift",
    )
