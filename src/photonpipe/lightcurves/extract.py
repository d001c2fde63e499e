"""Extraction of a light curve from a dataset's events.

For every region (COS segment or stripe, STIS order) the source box and the two background boxes
follow the trace (see :class:`~photonpipe.lightcurves.formats.ExtractionRegion`). An event counts
when ``DQ & SDQFLAGS == 0``, its time is inside a good time interval, and its wavelength is inside
the band and outside the excluded (geocoronal) windows; it counts with weight EPSILON. Source
events use their WAVELENGTH; background events, which calibration pipelines often leave without
one, get the wavelength of their detector column from the x1d (or, without an x1d, from a
polynomial fitted to the source events' WAVELENGTH against XFULL).

Time bins of ``step`` seconds start at EXPSTART. A bin's exposure is its overlap with the good
time; bins without good time are dropped and partial bins keep their true exposure, so a gap
never shows as zero flux. Rates are counts / exposure.

Errors: the gross and background counts of a bin get Poisson errors, with the Gehrels (1986,
ApJ 303, 336, eq. 7) upper 1σ limit ``1 + sqrt(N + 3/4)`` below 20 counts (``sqrt(N)`` from 20
up), scaled by the rms EPSILON of the bin's events; the background error is scaled by the area
ratio; the two add in quadrature.

Implementation: TIME never decreases (the readers check it), so each good time interval and each
bin is a run of consecutive events found by bisection, and per-bin sums are ``np.add.reduceat``
over those runs. Events are handled :data:`CHUNK_EVENTS` at a time so that temporaries stay in
the CPU cache.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from photonpipe import __version__
from photonpipe.lightcurves.calibration import (
    RegionCalibration,
    from_reference_tables,
    from_x1d_row,
)
from photonpipe.lightcurves.curve import LightCurve
from photonpipe.lightcurves.dataset import Dataset
from photonpipe.lightcurves.formats import (
    EventFile,
    ExtractionRegion,
    LightCurveInputError,
    check_time,
)
from photonpipe.lightcurves.orbit import barycentric_dates

#: Geocoronal airglow windows excluded by default: Lyman α and O I 1304 [Å].
GEOCORONAL_WINDOWS: tuple[tuple[float, float], ...] = ((1208.0, 1225.0), (1298.0, 1312.0))
#: Below this many counts a bin's Poisson error uses the Gehrels upper limit.
GEHRELS_THRESHOLD = 20


@dataclass(frozen=True)
class ExtractionParameters:
    """Parameters of :func:`extract`.

    Attributes
    ----------
    step : float
        Bin width [s].
    wave_min, wave_max : float or None
        Wavelength window [Å]; None is the edge of the data.
    exclude : tuple of (float, float)
        Wavelength windows left out [Å] (default the geocoronal Lyα and O I windows).
    fluxtab, tdstab : Path or None
        COS reference tables; when both are given they replace the x1d sensitivity.
    ephemeris : str
        Solar-system ephemeris of TIME_BJD_TDB: ``builtin`` (astropy's) or the path of a local
        JPL kernel (DE4xx ``.bsp``, read with jplephem).
    """

    step: float = 1.0
    wave_min: float | None = None
    wave_max: float | None = None
    exclude: tuple[tuple[float, float], ...] = GEOCORONAL_WINDOWS
    fluxtab: Path | None = None
    tdstab: Path | None = None
    ephemeris: str = "builtin"

    def __post_init__(self) -> None:
        if not self.step > 0:
            raise ValueError(f"step must be positive, got {self.step}")
        if (
            self.wave_min is not None
            and self.wave_max is not None
            and not self.wave_max > self.wave_min
        ):
            raise ValueError(f"wave_max {self.wave_max} must exceed wave_min {self.wave_min}")
        if (self.fluxtab is None) != (self.tdstab is None):
            raise ValueError("give both FLUXTAB and TDSTAB, or neither")


@dataclass
class _Accumulator:
    """Per-bin sums over runs of consecutive selected events."""

    n_bins: int
    sums: dict[str, np.ndarray] = field(default_factory=dict)

    def _target(self, name: str) -> np.ndarray:
        if name not in self.sums:
            self.sums[name] = np.zeros(self.n_bins)
        return self.sums[name]

    def add_runs(self, name: str, first_bin: int, starts: np.ndarray, weights: np.ndarray) -> None:
        """Add ``weights[starts[i]:starts[i+1]].sum()`` to bin ``first_bin + i``."""
        target = self._target(name)[first_bin : first_bin + len(starts) - 1]
        if len(weights):
            first = starts[:-1]
            nonempty = first < starts[1:]
            # reduceat sums from each index to the next; empty runs are left out
            target[nonempty] += np.add.reduceat(weights, first[nonempty])

    def add_counts(self, name: str, first_bin: int, starts: np.ndarray) -> None:
        """Add the length of each run (the number of selected events) to its bin."""
        self._target(name)[first_bin : first_bin + len(starts) - 1] += np.diff(starts)

    def get(self, name: str) -> np.ndarray:
        return self.sums.get(name, np.zeros(self.n_bins))


#: Events handled at once: temporaries of this many events stay in the CPU cache and are
#: recycled by the allocator instead of being mapped afresh for every operation.
CHUNK_EVENTS = 1 << 17


def _event_chunks(events: EventFile, names: Sequence[str]) -> Iterator[dict[str, np.ndarray]]:
    """Yield the event columns :data:`CHUNK_EVENTS` rows at a time, from memory or the file.

    A streamed file (:attr:`EventFile.stream`) is read chunk by chunk and its TIME checked for
    decreasing values on the way; columns already in memory are sliced.
    """
    stream = events.stream
    if stream is not None and not all(name in events.columns for name in names):
        previous = -np.inf
        first = 0
        for chunk in stream.chunks(CHUNK_EVENTS):
            time = chunk["TIME"]
            check_time(time, events.path, first, previous)
            if len(time):
                previous = float(time[-1])
            first += len(time)
            yield chunk
        return
    columns = events.columns
    n_events = events.n_events
    for c0 in range(0, n_events, CHUNK_EVENTS):
        c1 = min(c0 + CHUNK_EVENTS, n_events)
        yield {name: columns[name][c0:c1] for name in names}


def _accumulate_events(
    acc: _Accumulator,
    events: EventFile,
    setups: list[_RegionSetup],
    edges: np.ndarray,
    gti: np.ndarray,
    band: tuple[float, float],
    parameters: ExtractionParameters,
    calibrated: bool,
    *,
    offset: float,
) -> None:
    """Add one event file's selected events to the per-bin sums, a chunk of events at a time.

    ``offset`` [s] moves the file's TIME onto the dataset's clock (FUV segments can start at
    slightly different times).
    """
    sdq = events.sdqflags
    n_bins = len(edges) - 1
    names = ("TIME", "XFULL", "YFULL", "WAVELENGTH", "EPSILON") + (("DQ",) if sdq else ())
    ws = _Workspace()
    for chunk in _event_chunks(events, names):
        n = len(chunk["TIME"])
        if n == 0:
            continue
        t = ws("time", np.float64, n)
        np.copyto(t, chunk["TIME"])
        t += offset
        # TIME never decreases (checked by the reader), so each bin and each good time interval
        # is a run of consecutive events, found by bisection. Bins [b0, b1] hold this chunk's
        # events (events before the first edge or after the last fall in the first or last bin;
        # they are outside the good time, which lies between the edges); ``local`` are the
        # bins' first events inside the chunk
        b0 = min(max(int(np.searchsorted(edges, t[0], side="right")) - 1, 0), n_bins - 1)
        b1 = min(max(int(np.searchsorted(edges, t[-1], side="right")) - 1, 0), n_bins - 1)
        local = np.empty(b1 - b0 + 2, dtype=np.intp)
        local[0] = 0
        local[-1] = n
        local[1:-1] = np.searchsorted(t, edges[b0 + 1 : b1 + 1], side="left")
        good = ws("good", np.bool_, n)
        good[:] = False
        firsts = np.searchsorted(t, gti[:, 0], side="left")
        stops = np.searchsorted(t, gti[:, 1], side="left")
        for i, j in zip(firsts.tolist(), stops.tolist(), strict=True):
            if j > i:
                good[i:j] = True
        if sdq:
            dq = chunk["DQ"]
            rejected = np.bitwise_and(
                dq, np.asarray(sdq).astype(dq.dtype), out=ws("dq", dq.dtype, n)
            )
            good &= np.equal(rejected, 0, out=ws("dq_ok", np.bool_, n))
        for setup in setups:
            _accumulate_region(
                acc,
                setup,
                b0,
                local,
                good,
                chunk["XFULL"],
                chunk["YFULL"],
                chunk["WAVELENGTH"],
                chunk["EPSILON"],
                band,
                parameters.exclude,
                calibrated,
                ws,
            )


class _Workspace:
    """Arrays reused for every chunk of events.

    A fresh temporary per numpy operation is mapped afresh by the allocator on this size of
    chunk (the memory goes back to the system when freed), and those page faults cost more than
    the arithmetic; every array of the extraction's inner loop is a view of one of these.
    """

    def __init__(self) -> None:
        self._arrays: dict[str, np.ndarray] = {}

    def __call__(self, name: str, dtype: Any, n: int) -> np.ndarray:
        """Return scratch array ``name``: ``n`` elements of ``dtype``, contents undefined."""
        dtype = np.dtype(dtype)
        array = self._arrays.get(name)
        if array is None or array.dtype != dtype or len(array) < n:
            array = np.empty(max(n, CHUNK_EVENTS), dtype=dtype)
            self._arrays[name] = array
        return array[:n]


def _run_starts(mask: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Where each run ``[starts[i], starts[i+1])`` of ``mask`` begins among its True values.

    ``starts`` begins at 0 and ends at ``len(mask)``; the result has the same length and ends at
    the number of True values (the runs' counts of True values, accumulated).
    """
    first = starts[:-1]
    nonempty = first < starts[1:]
    counts = np.zeros(len(first), dtype=np.intp)
    if len(mask):
        # reduceat sums from each index to the next; empty runs are left out (count 0)
        counts[nonempty] = np.add.reduceat(mask.view(np.uint8), first[nonempty], dtype=np.intp)
    out = np.empty(len(starts), dtype=np.intp)
    out[0] = 0
    np.cumsum(counts, out=out[1:])
    return out


def _accumulate_region(
    acc: _Accumulator,
    setup: _RegionSetup,
    first_bin: int,
    starts: np.ndarray,
    good: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    wavelength_column: np.ndarray,
    epsilon_column: np.ndarray,
    band: tuple[float, float],
    exclude: Sequence[tuple[float, float]],
    calibrated: bool,
    ws: _Workspace,
) -> None:
    """Per-bin sums of one region's source and background events in a chunk of events.

    Every intermediate array is a view of ``ws`` (see :class:`_Workspace`); the arithmetic is
    the plain formulation's, operation for operation, so the sums are the same numbers.
    """
    region = setup.region
    n = len(x)
    if region.slope:
        dy = ws("dy", np.result_type(x.dtype, y.dtype, 1.0), n)
        np.subtract(x, region.x_ref, out=dy)
        np.multiply(dy, region.slope, out=dy)
        np.subtract(y, dy, out=dy)
    else:
        dy = y
    source = _within(dy, region.center, region.height, ws, "source")
    source &= good
    background = _within(dy, region.background[0], region.background_height[0], ws, "bkg")
    background |= _within(dy, region.background[1], region.background_height[1], ws, "bkg2")
    background &= good
    lo = max(band[0], setup.coverage[0])
    hi = min(band[1], setup.coverage[1])
    # source events carry their wavelength: select on the chunk's column, then gather
    source &= _band_mask(wavelength_column, lo, hi, exclude, ws, "band")
    for kind in ("src", "bkg"):
        mask = source if kind == "src" else background
        count = int(np.count_nonzero(mask))
        # first selected event of each bin
        runs = _run_starts(mask, starts)
        epsilon_selected = np.compress(
            mask, epsilon_column, out=ws("eps_sel", epsilon_column.dtype, count)
        )
        wavelength = ws("wavelength", np.float64, count)
        if kind == "src":
            np.copyto(
                wavelength,
                np.compress(
                    mask, wavelength_column, out=ws("w_sel", wavelength_column.dtype, count)
                ),
            )
            epsilon = ws("epsilon", np.float64, count)
            np.copyto(epsilon, epsilon_selected)
        else:
            assert setup.column_wavelength is not None
            x_selected = np.compress(mask, x, out=ws("x_sel", x.dtype, count))
            _column_interp(x_selected, setup.column_wavelength, out=wavelength, ws=ws)
            keep = _band_mask(wavelength, lo, hi, exclude, ws, "band")
            if not keep.all():
                runs = _run_starts(keep, runs)
                count = int(np.count_nonzero(keep))
                wavelength = np.compress(keep, wavelength, out=ws("w_kept", np.float64, count))
                epsilon_selected = np.compress(
                    keep, epsilon_selected, out=ws("eps_kept", epsilon_selected.dtype, count)
                )
            epsilon = ws("epsilon", np.float64, count)
            np.copyto(epsilon, epsilon_selected)
        key = f"{kind}:{region.name}"
        scale = 1.0 if kind == "src" else region.background_scale
        if scale != 1.0:
            weighted = np.multiply(epsilon, scale, out=ws("weighted", np.float64, count))
        else:
            weighted = epsilon
        acc.add_runs(f"{kind}_eps", first_bin, runs, weighted)
        acc.add_counts(f"{key}:n", first_bin, runs)
        squared = np.multiply(epsilon, epsilon, out=ws("squared", np.float64, count))
        acc.add_runs(f"{key}:eps2", first_bin, runs, squared)
        if calibrated:
            assert setup.calibration is not None
            conversion = setup.calibration.lookup.evaluate_into(
                wavelength,
                ws("conversion", np.float64, count),
                ws("work", np.float64, count),
                ws("bucket", np.intp, count),
                ws("index", np.intp, count),
                ws("flags", np.bool_, count),
            )
            conversion *= weighted
            acc.add_runs(f"{kind}_flux", first_bin, runs, conversion)


def _column_interp(
    x: np.ndarray, table: np.ndarray, *, out: np.ndarray | None = None, ws: _Workspace | None = None
) -> np.ndarray:
    """``numpy.interp(x, arange(len(table)), table)`` by an index computation [Å].

    The abscissae are the integers 0 … n−1, so the interval of ``x`` is ``floor(x)`` and no
    binary search is needed. The value is computed as ``numpy.interp`` does,
    ``(table[j+1] − table[j]) · (x − j) + table[j]``, so the results are the same numbers; below
    0 and above n−1 the end values are taken, and NaN stays NaN.
    """
    ws = ws if ws is not None else _Workspace()
    n = len(table)
    m = len(x)
    out = out if out is not None else np.empty(m)
    if n < 2:
        out[:] = table[0] if n else np.nan
        return out
    j = ws("interp_j", np.float64, m)
    np.floor(x, out=j)
    np.clip(j, 0.0, n - 2.0, out=j)
    flags = ws("interp_flags", np.bool_, m)
    np.isnan(j, out=flags)
    if flags.any():
        j[flags] = 0.0  # NaN x: any interval, the value is NaN
    index = ws("interp_index", np.intp, m)
    np.copyto(index, j, casting="unsafe")
    np.subtract(x, j, out=out)
    np.take(np.diff(table), index, out=j)
    out *= j
    np.take(table, index, out=j)
    out += j
    np.less(x, 0.0, out=flags)
    np.copyto(out, table[0], where=flags)
    np.greater_equal(x, n - 1.0, out=flags)
    np.copyto(out, table[-1], where=flags)
    return out


def poisson_sigma(counts: np.ndarray) -> np.ndarray:
    """1σ Poisson error of raw counts: Gehrels upper limit below 20 counts, sqrt(N) above.

    Parameters
    ----------
    counts : ndarray
        Raw (unweighted) counts.

    Returns
    -------
    ndarray
        1σ error [counts].
    """
    counts = np.asarray(counts, dtype=np.float64)
    return np.where(
        counts < GEHRELS_THRESHOLD, 1.0 + np.sqrt(counts + 0.75), np.sqrt(np.maximum(counts, 0))
    )


def bin_exposure(edges: np.ndarray, gti: np.ndarray) -> np.ndarray:
    """Overlap of each bin [edges[i], edges[i+1]) with the good time intervals [s]."""
    exposure = np.zeros(len(edges) - 1)
    for start, stop in gti:
        exposure += np.clip(np.minimum(edges[1:], stop) - np.maximum(edges[:-1], start), 0, None)
    return exposure


def _bin_centres(edges: np.ndarray, gti: np.ndarray) -> np.ndarray:
    """Midpoint of the first and last good time inside each bin [s]."""
    first = np.full(len(edges) - 1, np.inf)
    last = np.full(len(edges) - 1, -np.inf)
    for start, stop in gti:
        lo = np.maximum(edges[:-1], start)
        hi = np.minimum(edges[1:], stop)
        overlap = hi > lo
        first = np.where(overlap, np.minimum(first, lo), first)
        last = np.where(overlap, np.maximum(last, hi), last)
    have = np.isfinite(first) & np.isfinite(last)
    return np.where(have, (np.where(have, first, 0.0) + np.where(have, last, 0.0)) / 2.0, np.nan)


def _good_time_mask(time: np.ndarray, intervals: np.ndarray) -> np.ndarray:
    """Whether each time lies in one of the [start, stop) intervals.

    ``time`` must not decrease, so each interval is one run of events found by bisection.
    """
    good = np.zeros(len(time), dtype=bool)
    if len(intervals):
        first = np.searchsorted(time, intervals[:, 0], side="left")
        stop = np.searchsorted(time, intervals[:, 1], side="left")
        for i, j in zip(first, stop, strict=True):
            good[i:j] = True
    return good


def _within(
    values: np.ndarray, centre: float, height: float, ws: _Workspace, name: str
) -> np.ndarray:
    """Whether ``|values - centre| <= height / 2`` (a box of full height ``height``)."""
    deviation = ws("deviation", values.dtype, len(values))
    np.subtract(values, np.float32(centre) if values.dtype == np.float32 else centre, out=deviation)
    np.abs(deviation, out=deviation)
    return np.less_equal(deviation, height / 2.0, out=ws(name, np.bool_, len(values)))


def _float32_at_least(value: float) -> np.float32:
    """Return the smallest float32 >= ``value`` (so ``w >= value`` ⟺ ``w >= it`` for float32 w)."""
    with np.errstate(over="ignore"):
        rounded = np.float32(value)
    if float(rounded) < value:
        rounded = np.nextafter(rounded, np.float32(np.inf))
    return rounded


def _float32_at_most(value: float) -> np.float32:
    """Return the largest float32 <= ``value`` (so ``w <= value`` ⟺ ``w <= it`` for float32 w)."""
    with np.errstate(over="ignore"):
        rounded = np.float32(value)
    if float(rounded) > value:
        rounded = np.nextafter(rounded, np.float32(-np.inf))
    return rounded


def _band_mask(
    wavelength: np.ndarray,
    low: float,
    high: float,
    exclude: Sequence,
    ws: _Workspace | None = None,
    name: str = "band",
) -> np.ndarray:
    """Whether each wavelength is in [low, high] and outside every excluded [w0, w1] [Å].

    The comparisons are those of double precision whatever the dtype of ``wavelength``: for
    float32 wavelengths the limits are first rounded to the float32 numbers that give the same
    answers (every float32 is a double), so the comparisons run in float32.
    """
    ws = ws if ws is not None else _Workspace()
    n = len(wavelength)
    mask = ws(name, np.bool_, n)
    flags = ws(name + "_flags", np.bool_, n)
    if wavelength.dtype == np.float32:
        at_least, at_most = _float32_at_least, _float32_at_most
    else:
        at_least = at_most = np.float64  # type: ignore[assignment]
    np.greater_equal(wavelength, at_least(low), out=mask)
    mask &= np.less_equal(wavelength, at_most(high), out=flags)
    for w0, w1 in exclude:
        if w1 < low or w0 > high:
            continue  # a window outside the band removes nothing
        # outside ⟺ w < w0 or w > w1 ⟺ not (w >= w0) or not (w <= w1)
        np.greater_equal(wavelength, at_least(w0), out=flags)
        flags &= np.less_equal(wavelength, at_most(w1), out=ws(name + "_inside", np.bool_, n))
        np.logical_not(flags, out=flags)
        mask &= flags
    return mask


def _band_width(low: float, high: float, exclude: Sequence[tuple[float, float]]) -> float:
    """Width of [low, high] minus the excluded windows [Å]."""
    width = max(high - low, 0.0)
    for w0, w1 in exclude:
        width -= max(min(high, w1) - max(low, w0), 0.0)
    return width


@dataclass
class _RegionSetup:
    region: ExtractionRegion
    coverage: tuple[float, float]
    column_wavelength: np.ndarray | None
    calibration: RegionCalibration | None


def region_coverage(dataset: Dataset) -> list[tuple[str, float, float]]:
    """Wavelength range of each region's data: (name, min, max) [Å]."""
    return [(s.region.name, *s.coverage) for s in _setup_regions(dataset, None)[0]]


def _x1d_coverage(row: Any) -> tuple[float, float] | None:
    counts = row.gross if row.gross is not None else row.net
    have = np.isfinite(counts) & (counts != 0)
    if row.dq is not None:
        have &= (np.asarray(row.dq).astype(np.int64) & 128) == 0  # COS: out of detector bounds
    if not have.any():
        return None
    wavelengths = row.wavelength[have]
    return float(wavelengths.min()), float(wavelengths.max())


def _setup_regions(
    dataset: Dataset, parameters: ExtractionParameters | None
) -> tuple[list[_RegionSetup], str, float]:
    setups: list[_RegionSetup] = []
    sources: set[str] = set()
    factors: list[float] = []
    for events in dataset.events:
        for region in events.regions:
            row = dataset.x1d.row(region.x1d_row) if dataset.x1d is not None else None
            column_wavelength = row.wavelength if row is not None else None
            coverage = _x1d_coverage(row) if row is not None else None
            if coverage is None:
                coverage = _event_coverage(events, region)
            calibration = None
            if parameters is not None and parameters.fluxtab is not None:
                assert parameters.tdstab is not None
                pixel_wavelength = (
                    column_wavelength
                    if column_wavelength is not None
                    else _fit_column_wavelength(events, region)
                )
                calibration = from_reference_tables(
                    parameters.fluxtab,
                    parameters.tdstab,
                    segment=region.name,
                    opt_elem=str(dataset.keyword("OPT_ELEM")),
                    cenwave=int(str(dataset.keyword("CENWAVE"))),
                    aperture=str(dataset.keyword("APERTURE")),
                    mjd=events.expstart,
                    pixel_wavelength=pixel_wavelength,
                )
            elif row is not None:
                try:
                    calibration = from_x1d_row(row)
                except ValueError:
                    calibration = None
            if calibration is not None:
                sources.add(calibration.source)
                factors.append(calibration.tds_factor)
            setups.append(_RegionSetup(region, coverage, column_wavelength, calibration))
    if not setups:
        raise LightCurveInputError(dataset.events[0].path, "no extraction region")
    if all(s.calibration is not None for s in setups):
        method = sources.pop() if len(sources) == 1 else "+".join(sorted(sources))
    else:
        method = "NONE"
    return setups, method, float(np.mean(factors)) if factors else 1.0


def _source_mask(events: EventFile, region: ExtractionRegion, select: np.ndarray) -> np.ndarray:
    x = events.columns["XFULL"][select]
    y = events.columns["YFULL"][select]
    trace = region.slope * (x - region.x_ref)
    return np.abs(y - trace - region.center) <= region.height / 2.0


def _event_coverage(events: EventFile, region: ExtractionRegion) -> tuple[float, float]:
    select = np.ones(events.n_events, dtype=bool)
    inside = _source_mask(events, region, select)
    wavelength = events.columns["WAVELENGTH"][inside]
    wavelength = wavelength[wavelength > 0]
    if len(wavelength) == 0:
        raise LightCurveInputError(
            events.path, f"no source event with a wavelength in {region.name}"
        )
    return float(wavelength.min()), float(wavelength.max())


def _fit_column_wavelength(events: EventFile, region: ExtractionRegion) -> np.ndarray:
    """Wavelength of each detector column from the source events (no x1d) [Å]."""
    select = np.ones(events.n_events, dtype=bool)
    inside = _source_mask(events, region, select)
    x = events.columns["XFULL"][inside].astype(np.float64)
    wavelength = events.columns["WAVELENGTH"][inside].astype(np.float64)
    have = wavelength > 0
    if have.sum() < 10:
        raise LightCurveInputError(
            events.path, f"too few source events to map x to wavelength in {region.name}"
        )
    step = max(1, int(have.sum()) // 20000)
    coefficients = np.polyfit(x[have][::step], wavelength[have][::step], 3)
    columns = np.arange(int(np.ceil(x.max())) + 2, dtype=np.float64)
    return np.polyval(coefficients, columns)


def extract(
    dataset: Dataset,
    parameters: ExtractionParameters | None = None,
    *,
    dataset_number: int = 1,
    reference_mjd: float | None = None,
) -> LightCurve:
    """Extract the binned light curve of one dataset.

    Parameters
    ----------
    dataset : Dataset
        Event files and x1d of one exposure.
    parameters : ExtractionParameters, optional
        Bin width, wavelength window, exclusions, reference tables.
    dataset_number : int
        Value of the DATASET column.
    reference_mjd : float, optional
        Zero of the TIME column [MJD] (default the dataset's EXPSTART; composites pass the
        first member's).

    Returns
    -------
    LightCurve
        One row per bin with good time.

    Raises
    ------
    LightCurveInputError
        No good time, no region, no overlap of the band with the data.
    """
    parameters = parameters or ExtractionParameters()
    setups, method, tds_factor = _setup_regions(dataset, parameters)
    low = min(s.coverage[0] for s in setups)
    high = max(s.coverage[1] for s in setups)
    band_low = low if parameters.wave_min is None else parameters.wave_min
    band_high = high if parameters.wave_max is None else parameters.wave_max
    bandwidth = sum(
        _band_width(max(band_low, s.coverage[0]), min(band_high, s.coverage[1]), parameters.exclude)
        for s in setups
    )
    if not bandwidth > 0:
        raise LightCurveInputError(
            dataset.events[0].path,
            f"band {band_low:.1f}–{band_high:.1f} Å does not overlap the data "
            f"({low:.1f}–{high:.1f} Å) outside the excluded windows",
        )
    gti = dataset.gti
    if len(gti) == 0:
        raise LightCurveInputError(dataset.events[0].path, "no good time common to all segments")
    step = parameters.step
    n_bins = int(np.ceil(gti[-1, 1] / step))
    edges = np.arange(n_bins + 1, dtype=np.float64) * step
    acc = _Accumulator(n_bins)
    calibrated = method != "NONE"
    regions_meta = []
    for events in dataset.events:
        mine = [setup for setup in setups if setup.region in events.regions]
        for setup in mine:
            if setup.column_wavelength is None:  # background events need it
                setup.column_wavelength = _fit_column_wavelength(events, setup.region)
        _accumulate_events(
            acc,
            events,
            mine,
            edges,
            gti,
            (band_low, band_high),
            parameters,
            calibrated,
            offset=(events.expstart - dataset.expstart) * 86400.0,
        )
        for setup in mine:
            region = setup.region
            regions_meta.append(
                {
                    "name": region.name,
                    "center": region.center,
                    "height": region.height,
                    "slope": region.slope,
                    "x_ref": region.x_ref,
                    "background": list(region.background),
                    "background_height": list(region.background_height),
                    "wave_min": max(band_low, setup.coverage[0]),
                    "wave_max": min(band_high, setup.coverage[1]),
                }
            )
    exposure = bin_exposure(edges, gti)
    keep = exposure > 0
    # variances: per region, Gehrels on raw counts scaled by rms epsilon
    gross_var = np.zeros(n_bins)
    background_var = np.zeros(n_bins)
    for setup in setups:
        name = setup.region.name
        for kind, scale in (("src", 1.0), ("bkg", setup.region.background_scale)):
            n = acc.get(f"{kind}:{name}:n")
            rms = np.sqrt(
                np.divide(acc.get(f"{kind}:{name}:eps2"), n, out=np.ones(n_bins), where=n > 0)
            )
            variance = (scale * poisson_sigma(n) * rms) ** 2
            if kind == "src":
                gross_var += variance
            else:
                background_var += variance
    t = exposure[keep]
    gross_counts = acc.get("src_eps")[keep]
    background_counts = acc.get("bkg_eps")[keep]
    gross = gross_counts / t
    background = background_counts / t
    net = gross - background
    error = np.sqrt(gross_var[keep] + background_var[keep]) / t
    if calibrated:
        flux = (acc.get("src_flux")[keep] - acc.get("bkg_flux")[keep]) / t
        total_eps = acc.get("src_eps").sum() - acc.get("bkg_eps").sum()
        total_flux = acc.get("src_flux").sum() - acc.get("bkg_flux").sum()
        mean_conversion = float(total_flux / total_eps) if total_eps > 0 else float("nan")
        flux_error = error * mean_conversion
        flux_density = flux / bandwidth
    else:
        flux = flux_error = flux_density = np.full(int(keep.sum()), np.nan)
    reference = dataset.expstart if reference_mjd is None else reference_mjd
    shift = (dataset.expstart - reference) * 86400.0
    centres = _bin_centres(edges, gti)[keep]
    mjd = dataset.expstart + centres / 86400.0
    bjd, bjd_header = barycentric_dates(
        mjd,
        dataset.keyword("RA_TARG", None),  # type: ignore[arg-type]
        dataset.keyword("DEC_TARG", None),  # type: ignore[arg-type]
        dataset.orbit,
        parameters.ephemeris,
    )
    columns = {
        "TIME": edges[:-1][keep] + shift,
        "MJD": mjd,
        "TIME_BJD_TDB": bjd,
        "BIN_EXPTIME": t,
        "GROSS": gross,
        "BACKGROUND": background,
        "NET": net,
        "COUNTS": gross_counts,
        "ERROR": error,
        "FLUX": flux,
        "FLUX_ERROR": flux_error,
        "FLUX_DENSITY": flux_density,
        "SIGNAL_TO_NOISE": np.divide(net, error, out=np.zeros_like(net), where=error > 0),
        "DATASET": np.full(int(keep.sum()), dataset_number, dtype=np.int32),
    }
    header = {k: dataset.keyword(k) for k in ("TELESCOP", "INSTRUME", "DETECTOR", "OPT_ELEM")}
    header.update(
        {
            "CENWAVE": dataset.keyword("CENWAVE"),
            "APERTURE": dataset.keyword("APERTURE"),
            "TARGNAME": dataset.keyword("TARGNAME"),
            "RA_TARG": dataset.keyword("RA_TARG", None),
            "DEC_TARG": dataset.keyword("DEC_TARG", None),
            "PROPOSID": dataset.keyword("PROPOSID", None),
            "CAL_VER": dataset.keyword("CAL_VER", None),
            "ROOTNAME": dataset.rootname,
            "EXPSTART": reference,
            "STEP": step,
            "WAVEMIN": band_low,
            "WAVEMAX": band_high,
            "BANDWID": bandwidth,
            "FLUXCAL": method,
            "TDSFACT": tds_factor if method == "FLUXTAB+TDSTAB" else None,
            "FLUXTAB": parameters.fluxtab.name if parameters.fluxtab else None,
            "TDSTAB": parameters.tdstab.name if parameters.tdstab else None,
            "SOFTVER": f"photonpipe {__version__}",
            **bjd_header,
        }
    )
    meta = {
        "header": header,
        "exclude": [list(w) for w in parameters.exclude],
        "regions": regions_meta,
        "inputs": [str(p) for p in dataset.inputs],
        "datasets": [dataset.rootname],
    }
    return LightCurve.from_columns(columns, meta)


def common_wavelength_range(datasets: Sequence[Dataset]) -> tuple[float, float]:
    """Wavelength range covered by every dataset [Å] (max of minima, min of maxima).

    Raises
    ------
    LightCurveInputError
        The datasets share no wavelength range.
    """
    lows, highs = [], []
    for dataset in datasets:
        coverage = region_coverage(dataset)
        lows.append(min(c[1] for c in coverage))
        highs.append(max(c[2] for c in coverage))
    low, high = max(lows), min(highs)
    if not high > low:
        raise LightCurveInputError(datasets[0].events[0].path, "datasets share no wavelength range")
    return low, high


def extract_composite(
    datasets: Sequence[Dataset], parameters: ExtractionParameters | None = None
) -> LightCurve:
    """Composite light curve of datasets of one target and configuration.

    The datasets are re-extracted over their common wavelength range (narrowed further by the
    parameters' window), ordered by EXPSTART, numbered 1, 2, ... in the DATASET column, and
    stacked; TIME counts from the first dataset's EXPSTART.

    Raises
    ------
    LightCurveInputError
        No datasets, mixed configurations, no common wavelength range.
    """
    if not datasets:
        raise ValueError("no datasets")
    configurations = {d.configuration for d in datasets}
    if len(configurations) != 1:
        raise LightCurveInputError(
            datasets[0].events[0].path,
            f"datasets of different configurations: {sorted(configurations)}",
        )
    parameters = parameters or ExtractionParameters()
    low, high = common_wavelength_range(datasets)
    if parameters.wave_min is not None:
        low = max(low, parameters.wave_min)
    if parameters.wave_max is not None:
        high = min(high, parameters.wave_max)
    common = replace(parameters, wave_min=low, wave_max=high)
    ordered = sorted(datasets, key=lambda d: d.expstart)
    reference = ordered[0].expstart
    curves = [
        extract(d, common, dataset_number=i + 1, reference_mjd=reference)
        for i, d in enumerate(ordered)
    ]
    return LightCurve.stack(curves)
