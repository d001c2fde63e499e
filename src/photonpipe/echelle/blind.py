"""Blind tracing: find the orders and fibres on master flats without a hand trace.

Steps, per master flat (a ``ProcessedImage`` whose ``FIBRES`` keyword says which fibres are lit):

1. **Detect.** The median profile across the dispersion of the central column band (16 bins of
   8 columns around the middle of the read-out window) is filtered with a matched filter: a
   zero-mean Gaussian of the fibre profile's width (σ = 1.5 px), so a smooth background does not
   contribute. Local maxima of the filtered profile above :data:`DETECT_SIGMA` times its
   propagated noise, at least :data:`MIN_SEPARATION` px apart, are the lit fibres.
2. **Link.** Each peak is followed outward bin by bin (the windowed centroid of
   :mod:`photonpipe.echelle.traces`), each bin's expected row extrapolated from a straight-line fit
   to the last few measured bins, so the follower keeps up with the traces' slope at the detector
   edges; a quartic y(x) is fitted to the centres with outlier rejection.
3. **Label.** Positions alone do not say which order or fibre a trace is. The traces' rows at the
   middle column are matched, as one pattern, to the expected rows of the lit fibres of every
   order from the site's nominal order geometry (the packaged hand trace interpolated in order,
   fibre 2 one fibre spacing beyond fibre 1, as :func:`photonpipe.echelle.traces.initial_traces`):
   for each candidate (which expected fibre the middle peak is), the common shift is the median
   offset and the cost the RMS of the remaining offsets plus a penalty on the shift. The spacing
   pattern — two lit fibres per order at the fibre separation, and an order spacing that grows
   with order (≈ 35 px at order index 0, ≈ 60 px at 50 on the full detector) — makes a
   wrong order or fibre label cost several pixels RMS, while the night's flexure (a few px)
   costs nothing. With both flats, fibre 1 (lit in both) must get the same label in both.

The result is a :class:`~photonpipe.echelle.traces.TraceSet` of the lit fibres that lie wholly on
the read-out window, usable directly or as the start of
:func:`~photonpipe.echelle.traces.refine_traces`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from scipy.ndimage import correlate1d

from photonpipe.echelle import instrument
from photonpipe.echelle.preprocess import ProcessedImage
from photonpipe.echelle.stacking import CalibrationError
from photonpipe.echelle.traces import (
    HALF_WINDOW,
    MIN_SNR,
    TRACE_DEGREE,
    TraceSet,
    _binned_columns,
    _centroid,
    _u,
    initial_traces,
)
from photonpipe.errors import InputFileError
from photonpipe.spectra.profiles import gaussian_peak
from photonpipe.spectra.robust import robust_sigma

#: Matched-filter Gaussian σ [px] (the fibre profile on NRES is σ ≈ 1.4–1.6 px).
PROFILE_SIGMA = 1.5
#: Detection threshold of a fibre peak in the matched-filtered profile [σ].
DETECT_SIGMA = 30.0
#: Fewest rows between two detected peaks [px] (fibres are ≥ 15 px apart).
MIN_SEPARATION = 6
#: Column bins either side of the middle averaged for detection.
CENTRAL_BINS = 8
#: A wrong label costs at least this much RMS [px]; the shift penalty scale [px].
SHIFT_SCALE = 15.0
#: Largest |shift| between the nominal geometry and the flat accepted [px].
MAX_SHIFT = 30.0
#: Largest RMS of the labelled peaks about the nominal geometry accepted [px].
MAX_LABEL_RMS = 3.0


@dataclass
class FoundTrace:
    """A trace followed on one flat (not yet labelled).

    Attributes
    ----------
    coeffs : ndarray
        Quartic y(u) coefficients, u = (x − 2047.5)/2047.5, full-detector rows.
    rms : float
        RMS of the centre measurements about the fit [px].
    y_mid : float
        Row at the window's middle column [px, full detector].
    """

    coeffs: NDArray[np.float64]
    rms: float
    y_mid: float


def detect_peaks(
    image: ProcessedImage,
    binned_columns: tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]
    | None = None,
) -> NDArray[np.float64]:
    """Rows [px, window] of the lit fibres in the central column band (matched filter).

    Parameters
    ----------
    image : ProcessedImage
        Master flat.
    binned_columns : tuple, optional
        The image's column bins (``traces._binned_columns``), if already computed.

    Returns
    -------
    ndarray
        Peak rows refined by a parabola through the filtered maximum, sorted.
    """
    x_bins, binned, noise = binned_columns or _binned_columns(image)
    middle = x_bins.size // 2
    band = slice(max(middle - CENTRAL_BINS, 0), middle + CENTRAL_BINS)
    n_band = binned[:, band].shape[1]
    profile = np.median(binned[:, band], axis=1)
    # Noise of the median of n_band bin values (≈ √(π/2) of the mean's).
    finite_noise = np.where(np.isfinite(noise[:, band]), noise[:, band], np.nan)
    sigma = 1.2533 * np.sqrt(np.nanmean(finite_noise**2, axis=1) / n_band)
    sigma = np.nan_to_num(sigma, nan=np.inf)
    half = int(np.ceil(4 * PROFILE_SIGMA))
    offsets = np.arange(-half, half + 1, dtype=float)
    kernel = gaussian_peak(offsets, 1.0, 0.0, PROFILE_SIGMA)
    kernel -= kernel.mean()
    filtered = correlate1d(profile, kernel, mode="nearest")
    filtered_noise = np.sqrt(correlate1d(sigma**2, kernel**2, mode="nearest"))
    snr = np.where(np.isfinite(filtered_noise), filtered / filtered_noise, 0.0)
    rows = np.arange(2, profile.size - 2)
    is_peak = (
        (filtered[rows] > filtered[rows - 1])
        & (filtered[rows] >= filtered[rows + 1])
        & (snr[rows] > DETECT_SIGMA)
    )
    candidates = rows[is_peak]
    # Keep the strongest of peaks closer than MIN_SEPARATION.
    order = candidates[np.argsort(-filtered[candidates])]
    kept: list[int] = []
    for row in order:
        if all(abs(int(row) - k) >= MIN_SEPARATION for k in kept):
            kept.append(int(row))
    peaks = []
    for row in sorted(kept):
        a, b, c = filtered[row - 1], filtered[row], filtered[row + 1]
        denominator = a - 2 * b + c
        peaks.append(row + (0.5 * (a - c) / denominator if denominator < 0 else 0.0))
    return np.array(peaks, float)


def follow_trace(
    x_bins: NDArray[np.float64],
    binned: NDArray[np.float64],
    noise: NDArray[np.float64],
    start_row: float,
    max_misses: int = 12,
) -> NDArray[np.float64]:
    """Follow a lit fibre outward from the middle bin: centres [px, window] per bin, NaN = none."""
    n = x_bins.size
    middle = n // 2
    centres = np.full(n, np.nan)
    value, snr = _centroid(binned[:, middle], noise[:, middle], start_row)
    if not (np.isfinite(value) and snr >= MIN_SNR and abs(value - start_row) < 2.0):
        return centres
    centres[middle] = value
    for direction in (1, -1):
        misses = 0
        k = middle + direction
        while 0 <= k < n and misses < max_misses:
            done = np.flatnonzero(np.isfinite(centres))
            near = done[np.argsort(np.abs(done - k))][:6]
            if near.size >= 3:
                # Straight line through the nearest measured bins, extrapolated to bin k.
                dx = near - near.mean()
                ys = centres[near]
                slope = float(np.dot(dx, ys - ys.mean()) / np.dot(dx, dx))
                expected = float(ys.mean()) + slope * (k - near.mean())
            else:
                expected = float(centres[near[0]])
            value, snr = _centroid(binned[:, k], noise[:, k], expected)
            if np.isfinite(value) and snr >= MIN_SNR and abs(value - expected) < 1.0:
                centres[k] = value
                misses = 0
            else:
                misses += 1
            k += direction
    return centres


def _fit(
    x: NDArray[np.float64], y: NDArray[np.float64]
) -> tuple[NDArray[np.float64], float] | None:
    good = np.isfinite(y)
    if good.sum() < 2 * (TRACE_DEGREE + 1):
        return None
    u = _u(x)
    fit = np.zeros(TRACE_DEGREE + 1)
    residual = np.zeros_like(y)
    for _ in range(5):
        fit = np.asarray(np.polynomial.polynomial.polyfit(u[good], y[good], TRACE_DEGREE), float)
        residual = y - np.polynomial.polynomial.polyval(u, fit)
        sigma = robust_sigma(residual[good], center=0.0, ignore_nan=True)
        new_good = np.isfinite(y) & (np.abs(residual) < max(4.0 * sigma, 0.02))
        if new_good.sum() == good.sum():
            break
        good = new_good
    return fit, float(np.sqrt(np.mean(residual[good] ** 2)))


def find_traces(image: ProcessedImage, min_coverage: float = 0.5) -> list[FoundTrace]:
    """Detect, follow and fit every lit fibre of a flat that lies wholly on the read-out window.

    Parameters
    ----------
    image : ProcessedImage
        Master flat.
    min_coverage : float
        Fewest fraction of column bins with a measured centre for a trace to be kept.
    """
    x_bins, binned, noise = _binned_columns(image)
    ny = image.data.shape[0]
    x_mid = float(x_bins[x_bins.size // 2])
    found = []
    for row in detect_peaks(image, (x_bins, binned, noise)):
        centres = follow_trace(x_bins, binned, noise, row)
        if np.isfinite(centres).sum() < min_coverage * x_bins.size:
            continue
        fitted = _fit(x_bins, centres + image.y0)
        if fitted is None:
            continue
        coeffs, rms = fitted
        model = np.polynomial.polynomial.polyval(_u(x_bins), coeffs) - image.y0
        if model.min() < HALF_WINDOW + 4 or model.max() > ny - HALF_WINDOW - 5:
            continue
        y_mid = float(np.polynomial.polynomial.polyval(_u(np.array([x_mid])), coeffs)[0])
        found.append(FoundTrace(coeffs, rms, y_mid))
    return found


def label_traces(
    found: Sequence[FoundTrace],
    fibres: Sequence[int],
    nominal: TraceSet,
    x_mid: float,
    path: str | Path,
) -> tuple[dict[tuple[int, int], FoundTrace], float, float]:
    """Give each found trace its (order index, fibre) by matching the nominal order pattern.

    Parameters
    ----------
    found : sequence of FoundTrace
        Traces of one flat.
    fibres : sequence of int
        Fibres lit on that flat.
    nominal : TraceSet
        Nominal geometry of every order and fibre.
    x_mid : float
        Column [px, full detector] where the pattern is compared.
    path : path-like
        The flat (for error messages).

    Returns
    -------
    labels, shift, rms
        The labelled traces, the shift of the flat from the nominal geometry [px] and the RMS of
        the labelled traces about the shifted geometry [px].
    """
    keys = [k for k in nominal if k[1] in fibres]
    expected = np.array([float(nominal.centre(o, f, np.array([x_mid]))[0]) for o, f in keys])
    measured = np.array([t.y_mid for t in found])
    anchor = int(np.argsort(measured)[measured.size // 2])
    best: tuple[float, float, float, NDArray[np.int64]] | None = None
    for candidate in range(expected.size):
        shift = measured[anchor] - expected[candidate]
        if abs(shift) > 3 * MAX_SHIFT:
            continue
        for _ in range(3):
            nearest = np.argmin(np.abs(measured[:, None] - (expected[None, :] + shift)), axis=1)
            shift = float(np.median(measured - expected[nearest]))
        residual = measured - expected[nearest] - shift
        rms = float(np.sqrt(np.mean(residual**2)))
        if np.unique(nearest).size < nearest.size:
            continue
        cost = rms + abs(shift) / SHIFT_SCALE
        if best is None or cost < best[0]:
            best = (cost, shift, rms, nearest)
    if best is None:
        raise InputFileError(path, "the lit fibres found do not match the NRES order pattern")
    _, shift, rms, nearest = best
    if abs(shift) > MAX_SHIFT or rms > MAX_LABEL_RMS:
        raise InputFileError(
            path,
            f"the lit fibres found do not match the NRES order pattern (best shift {shift:.1f} px,"
            f" RMS {rms:.1f} px)",
        )
    return {keys[int(j)]: trace for j, trace in zip(nearest, found, strict=True)}, shift, rms


def blind_traces(flats: Sequence[ProcessedImage], site: str | None = None) -> TraceSet:
    """Find the traces of the lit fibres of master flats without a starting trace.

    Parameters
    ----------
    flats : sequence of ProcessedImage
        Master flats (``FIBRES`` keyword: ``"110"``, ``"011"``); one or both pairs.
    site : str, optional
        Site whose nominal order geometry labels the orders; default the flats' ``SITEID``.

    Returns
    -------
    TraceSet
        Per (order index, fibre) lit on some flat and wholly on the window, the fitted quartic;
        fibre 1, when lit on both flats, the mean of both fits.

    Raises
    ------
    InputFileError
        A flat with no lit fibre found, or whose traces do not match the order pattern.
    CalibrationError
        Two flats that label the shared fibre differently.
    """
    if not flats:
        raise CalibrationError("blind tracing needs at least one master flat")
    site = site or str(flats[0].header["SITEID"]).strip()
    nominal = initial_traces(instrument.hand_trace(site))
    collected: dict[tuple[int, int], list[FoundTrace]] = {}
    per_flat: list[tuple[list[int], dict[tuple[int, int], FoundTrace]]] = []
    for image in flats:
        lit = str(image.header.get("FIBRES", "")).strip()
        fibres = [f for f, c in enumerate(lit) if c == "1"]
        if not fibres:
            raise InputFileError(image.path, f"no lit fibres in FIBRES keyword ({lit!r})")
        found = find_traces(image)
        if len(found) < 2:
            raise InputFileError(
                image.path,
                f"blind tracing found {len(found)} lit fibre trace(s) on the flat"
                " (no light, or not a lamp flat?)",
            )
        nx = image.data.shape[1]
        x_bins = image.x0 + np.arange(nx // 8) * 8 + 3.5
        labels, _, _ = label_traces(
            found, fibres, nominal, float(x_bins[x_bins.size // 2]), image.path
        )
        # A fibre lit on two flats must get the same labels on both. (Only that fibre: on the
        # reddest orders fibre 2 of order i + 1 lies within a pixel or two of fibre 0 of order i.)
        for earlier_fibres, earlier in per_flat:
            shared = set(fibres) & set(earlier_fibres)
            for key, trace in labels.items():
                for other_key, other in earlier.items():
                    if (
                        key[1] in shared
                        and other_key[1] in shared
                        and abs(trace.y_mid - other.y_mid) < 2.0
                        and key != other_key
                    ):
                        raise CalibrationError(
                            f"blind tracing: {image.path.name} labels a trace order {key[0]}"
                            f" fibre {key[1]}, another flat order {other_key[0]} fibre"
                            f" {other_key[1]}"
                        )
        per_flat.append((fibres, labels))
        for key, trace in labels.items():
            collected.setdefault(key, []).append(trace)
    coeffs = {}
    rms = {}
    for key, traces in collected.items():
        ys = np.array([t.y_mid for t in traces])
        if ys.max() - ys.min() > 2.0:
            raise CalibrationError(
                f"blind tracing: the flats disagree on order {key[0]} fibre {key[1]}"
                f" ({ys.min():.1f} vs {ys.max():.1f} px)"
            )
        coeffs[key] = np.mean([t.coeffs for t in traces], axis=0)
        rms[key] = float(np.mean([t.rms for t in traces]))
    return TraceSet(coeffs, rms)
