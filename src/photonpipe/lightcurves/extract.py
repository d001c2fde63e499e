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
"""

from __future__ import annotations

from collections.abc import Sequence
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
from photonpipe.lightcurves.formats import EventFile, ExtractionRegion, LightCurveInputError

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
    """

    step: float = 1.0
    wave_min: float | None = None
    wave_max: float | None = None
    exclude: tuple[tuple[float, float], ...] = GEOCORONAL_WINDOWS
    fluxtab: Path | None = None
    tdstab: Path | None = None

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
    n_bins: int
    sums: dict[str, np.ndarray] = field(default_factory=dict)

    def add(self, name: str, index: np.ndarray, weights: np.ndarray | None = None) -> None:
        counts = np.bincount(index, weights=weights, minlength=self.n_bins)[: self.n_bins]
        if name in self.sums:
            self.sums[name] += counts
        else:
            self.sums[name] = counts.astype(np.float64)

    def get(self, name: str) -> np.ndarray:
        return self.sums.get(name, np.zeros(self.n_bins))


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


def in_intervals(time: np.ndarray, intervals: np.ndarray) -> np.ndarray:
    """Whether each time lies in one of the sorted disjoint [start, stop) intervals."""
    if len(intervals) == 0:
        return np.zeros(len(time), dtype=bool)
    index = np.searchsorted(intervals[:, 0], time, side="right") - 1
    safe = np.clip(index, 0, None)
    return (index >= 0) & (time < intervals[safe, 1])


def _band_mask(wavelength: np.ndarray, low: float, high: float, exclude: Sequence) -> np.ndarray:
    mask = (wavelength >= low) & (wavelength <= high)
    for w0, w1 in exclude:
        mask &= ~((wavelength >= w0) & (wavelength <= w1))
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
        offset = (events.expstart - dataset.expstart) * 86400.0
        time = events.columns["TIME"].astype(np.float64) + offset
        dq = events.columns["DQ"]
        good = in_intervals(time, gti)
        sdq = events.sdqflags
        if sdq:
            good &= (dq.astype(np.int64) & sdq) == 0
        selected = np.flatnonzero(good)
        x_all = events.columns["XFULL"][selected]
        y_all = events.columns["YFULL"][selected]
        for setup in setups:
            if setup.region not in events.regions:
                continue
            region = setup.region
            trace = region.slope * (x_all - region.x_ref)
            dy = y_all - trace
            source = np.abs(dy - region.center) <= region.height / 2.0
            background = (
                np.abs(dy - region.background[0]) <= region.background_height[0] / 2.0
            ) | (np.abs(dy - region.background[1]) <= region.background_height[1] / 2.0)
            lo = max(band_low, setup.coverage[0])
            hi = min(band_high, setup.coverage[1])
            for kind, mask in (("src", source), ("bkg", background)):
                idx = selected[mask]
                if kind == "src":
                    wavelength = events.columns["WAVELENGTH"][idx].astype(np.float64)
                else:
                    column_wavelength = setup.column_wavelength
                    if column_wavelength is None:
                        column_wavelength = _fit_column_wavelength(events, region)
                        setup.column_wavelength = column_wavelength
                    wavelength = np.interp(
                        events.columns["XFULL"][idx],
                        np.arange(len(column_wavelength)),
                        column_wavelength,
                    )
                keep = _band_mask(wavelength, lo, hi, parameters.exclude)
                idx = idx[keep]
                wavelength = wavelength[keep]
                epsilon = events.columns["EPSILON"][idx].astype(np.float64)
                bins = np.minimum((time[idx] / step).astype(np.int64), n_bins - 1)
                scale = 1.0 if kind == "src" else region.background_scale
                key = f"{kind}:{region.name}"
                acc.add(f"{kind}_eps", bins, epsilon * scale)
                acc.add(f"{key}:n", bins)
                acc.add(f"{key}:eps2", bins, epsilon**2)
                if calibrated:
                    assert setup.calibration is not None
                    conversion = setup.calibration(wavelength)
                    conversion = np.nan_to_num(conversion, nan=0.0)
                    acc.add(f"{kind}_flux", bins, epsilon * conversion * scale)
                    acc.add(f"{kind}_eps_cal", bins, epsilon * scale)
            regions_meta.append(
                {
                    "name": region.name,
                    "center": region.center,
                    "height": region.height,
                    "slope": region.slope,
                    "x_ref": region.x_ref,
                    "background": list(region.background),
                    "background_height": list(region.background_height),
                    "wave_min": lo,
                    "wave_max": hi,
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
        total_eps = acc.get("src_eps_cal").sum() - acc.get("bkg_eps_cal").sum()
        total_flux = acc.get("src_flux").sum() - acc.get("bkg_flux").sum()
        mean_conversion = float(total_flux / total_eps) if total_eps > 0 else float("nan")
        flux_error = error * mean_conversion
        flux_density = flux / bandwidth
    else:
        flux = flux_error = flux_density = np.full(int(keep.sum()), np.nan)
    reference = dataset.expstart if reference_mjd is None else reference_mjd
    shift = (dataset.expstart - reference) * 86400.0
    centres = _bin_centres(edges, gti)[keep]
    columns = {
        "TIME": edges[:-1][keep] + shift,
        "MJD": dataset.expstart + centres / 86400.0,
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
