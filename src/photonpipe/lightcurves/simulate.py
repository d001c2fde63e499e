"""Simulated HST COS and STIS TIME-TAG exposures with a known truth.

Each exposure is written in the real formats (COS ``_corrtag_a/_b`` or NUV ``_corrtag``, STIS
``_tag``, and the ``_x1d`` of either) with HST's column names, dtypes and keywords. Photons come
from:

* the **source**: a UV continuum with emission lines, times the instrument sensitivity, spread
  along the trace with a Gaussian cross-dispersion profile, modulated in time by an injected light
  curve (constant, sinusoid, flare, eclipse);
* **geocoronal airglow**: Lyα 1215.67 Å and the O I 1302–1306 Å triplet filling the aperture,
  varying with orbital day/night;
* **detector background**: uniform dark counts, a short burst (events flagged DQ 64, the interval
  removed from the GTIs), a bad-time interval (DQ 2048, removed from the GTIs), hot spots in the
  background boxes (DQ 2, one of the SDQFLAGS bits);
* **flat-field efficiency**: events are thinned by a flat pattern and carry EPSILON = 1/flat
  (COS); STIS tags have no EPSILON, and a low-res flat image can be written to recover it.

The optical layouts (wavelength ranges, dispersions, trace positions, sensitivities) are round
approximations of the real modes (COS G130M/1291, G185M/1850; STIS G140L, E140M), chosen to be
realistic in scale, not reference data.

Truth files (ECSV): ``<root>_truth.ecsv`` with, per second of the exposure, the modulation, the
good-time flag, the expected EPSILON-weighted source count rate and the band-integrated flux in
the default band (all data, geocoronal windows excluded), and ``<root>_truth_spectrum.ecsv``
with the unmodulated source count rate and flux density per detector column of every region.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.table import Table

from photonpipe import __version__
from photonpipe.platform.archive import atomic_output
from photonpipe.platform.progress import Progress

log = logging.getLogger("photonpipe.lightcurves.simulate")

GEOCORONAL = ((1208.0, 1225.0), (1298.0, 1312.0))
COS_SDQFLAGS = 8346
DQ_HOT_SPOT = 2
DQ_OUT_OF_BOUNDS = 128
DQ_BURST = 64
DQ_BAD_TIME = 2048
#: UV emission lines of the simulated source: centre [Å], peak over continuum.
SOURCE_LINES = (
    (1238.8, 3.0),
    (1242.8, 2.0),
    (1335.7, 4.0),
    (1393.8, 3.0),
    (1402.8, 2.0),
    (1548.2, 5.0),
    (1550.8, 3.0),
    (1640.4, 2.0),
    (1854.7, 2.0),
    (1862.8, 1.5),
)


@dataclass
class Variability:
    """An injected light curve: the source rate is multiplied by :meth:`modulation`.

    Attributes
    ----------
    kind : str
        ``constant``; ``sinusoid`` (1 + amplitude·sin(2π t/period)); ``flare`` (1 + amplitude ·
        fast-rise exponential-decay peaking at ``peak``); ``eclipse`` (1 − depth between
        ``start`` and ``start + duration`` with linear ingress/egress of ``edge`` s);
        ``eclipsing`` (that eclipse repeated every ``period`` s, from ``start``); ``transit``
        (a limb-darkened planetary transit of full ``depth`` at centre, linear law u = 0.6,
        between ``start`` and ``start + duration``); ``red_noise`` (1 + a Gaussian process of
        rms ``amplitude`` with power spectrum ∝ (1 + (f·period)²)^(−alpha/2), a pure power law
        f^(−alpha) when ``period`` is 0, drawn with ``seed`` on a 1-s grid of 65536 s).
    """

    kind: str = "constant"
    amplitude: float = 0.3
    period: float = 300.0
    peak: float = 600.0
    rise: float = 10.0
    decay: float = 60.0
    start: float = 500.0
    duration: float = 200.0
    depth: float = 0.6
    edge: float = 20.0
    alpha: float = 2.0
    seed: int = 0

    def modulation(self, time: np.ndarray) -> np.ndarray:
        """Relative source brightness at ``time`` [s since EXPSTART]."""
        t = np.asarray(time, dtype=np.float64)
        if self.kind == "constant":
            return np.ones_like(t)
        if self.kind == "sinusoid":
            return 1.0 + self.amplitude * np.sin(2 * np.pi * t / self.period)
        if self.kind == "flare":
            before = np.exp(np.clip((t - self.peak) / self.rise, -50, 0))
            after = np.exp(-np.clip(t - self.peak, 0, None) / self.decay)
            return 1.0 + self.amplitude * np.where(t < self.peak, before, after)
        if self.kind in ("eclipse", "eclipsing"):
            since = t - self.start
            if self.kind == "eclipsing":
                since = np.mod(since, self.period)
            ingress = np.clip(since / self.edge, 0, 1)
            egress = np.clip((self.duration - since) / self.edge, 0, 1)
            return 1.0 - self.depth * np.minimum(ingress, egress)
        if self.kind == "transit":
            x = 2.0 * (t - self.start) / self.duration - 1.0
            inside = np.abs(x) < 1
            mu = np.sqrt(np.clip(1.0 - x**2, 0.0, 1.0))
            dip = self.depth * (1.0 - 0.6 * (1.0 - mu))
            return 1.0 - np.where(inside, dip, 0.0)
        if self.kind == "red_noise":
            grid = _red_noise_grid(self.alpha, self.period, self.seed)
            value = np.interp(np.mod(t, len(grid)), np.arange(len(grid)), grid)
            return np.clip(1.0 + self.amplitude * value, 0.0, None)
        raise ValueError(f"unknown variability kind {self.kind!r}")

    @property
    def maximum(self) -> float:
        """Upper bound of the modulation (for rejection sampling)."""
        if self.kind in ("sinusoid", "flare"):
            return 1.0 + abs(self.amplitude)
        if self.kind == "red_noise":
            return 1.0 + abs(self.amplitude) * float(
                np.max(_red_noise_grid(self.alpha, self.period, self.seed))
            )
        return 1.0


@functools.lru_cache(maxsize=64)
def _red_noise_grid(alpha: float, break_period: float, seed: int) -> np.ndarray:
    """Unit-variance Gaussian noise with a power-law spectrum on a 1-s grid of 2¹⁶ s.

    Timmer & König (1995): random complex Fourier amplitudes with variance ∝ the spectrum, drawn
    on a grid four times longer than kept so that the kept part does not wrap around.
    """
    n = 1 << 16
    rng = np.random.default_rng([seed, 1995])
    f = np.fft.rfftfreq(4 * n, 1.0)[1:]
    if break_period > 0:
        spectrum = (1.0 + (f * break_period) ** 2) ** (-alpha / 2)
    else:
        spectrum = f ** (-alpha)
    amplitudes = rng.normal(size=(2, len(f))) * np.sqrt(spectrum / 2)
    series = np.fft.irfft(np.concatenate([[0.0], amplitudes[0] + 1j * amplitudes[1]]), 4 * n)[:n]
    series = series - series.mean()
    return np.asarray(series / series.std())


@dataclass
class RegionLayout:
    """Where one spectrum (COS segment/stripe, STIS order) falls on the detector.

    Positions are in the event file's XFULL/YFULL frame [pixel, 0-based].
    """

    name: str
    file_key: str
    x_min: float
    x_max: float
    wavelength0: float
    dispersion: float
    center: float
    slope: float
    x_ref: float
    height: float
    background: tuple[float, float]
    background_height: tuple[float, float]
    sensitivity_peak: float
    profile_sigma: float = 3.0

    def wavelength(self, x: np.ndarray | float) -> np.ndarray:
        """Wavelength of column ``x`` [Å]."""
        return self.wavelength0 + self.dispersion * (np.asarray(x) - self.x_min)

    def sensitivity(self, wavelength: np.ndarray) -> np.ndarray:
        """S(λ) [(counts s⁻¹ pixel⁻¹) / (erg s⁻¹ cm⁻² Å⁻¹)]: smooth, peaked mid-region."""
        mid = self.wavelength0 + self.dispersion * (self.x_max - self.x_min) / 2
        span = self.dispersion * (self.x_max - self.x_min)
        return self.sensitivity_peak * (
            0.55 + 0.45 * np.exp(-(((wavelength - mid) / span) ** 2) * 3)
        )


@dataclass
class Mode:
    """An observing mode: instrument keywords, detector frame, regions and noise levels."""

    instrument: str
    detector: str
    opt_elem: str
    cenwave: int
    aperture: str
    nx: int
    ny: int
    y_active: tuple[float, float]
    regions: list[RegionLayout]
    dark_rate: float
    airglow_lya: float
    airglow_oi: float
    files: dict[str, str] = field(default_factory=dict)


def cos_fuv_g130m() -> Mode:
    """COS FUV G130M/1291 (PSA): segments A and B, 9.97 mÅ pixel⁻¹, traces with a small slope."""
    common: dict[str, Any] = dict(  # noqa: C408
        x_min=1200.0,
        x_max=15200.0,
        dispersion=0.00997,
        x_ref=8192.0,
        height=35.0,
        background_height=(60.0, 60.0),
        sensitivity_peak=1.2e12,
    )
    regions = [
        RegionLayout(
            "FUVA",
            "a",
            wavelength0=1290.0,
            center=486.0,
            slope=1.5e-4,
            background=(376.0, 596.0),
            **common,
        ),
        RegionLayout(
            "FUVB",
            "b",
            wavelength0=1134.0,
            center=545.0,
            slope=-1.0e-4,
            background=(435.0, 655.0),
            **common,
        ),
    ]
    return Mode(
        "COS",
        "FUV",
        "G130M",
        1291,
        "PSA",
        16384,
        1024,
        (300.0, 750.0),
        regions,
        dark_rate=2.0e-6,
        airglow_lya=15.0,
        airglow_oi=1.5,
        files={"a": "corrtag_a", "b": "corrtag_b"},
    )


def cos_nuv_g185m() -> Mode:
    """COS NUV G185M/1850 (PSA): three stripes in one file, 34 mÅ pixel⁻¹."""
    common: dict[str, Any] = dict(  # noqa: C408
        file_key="",
        x_min=0.0,
        x_max=1023.0,
        dispersion=0.034,
        slope=0.0,
        x_ref=512.0,
        height=41.0,
        background=(60.0, 700.0),
        background_height=(60.0, 60.0),
        sensitivity_peak=2.5e12,
    )
    regions = [
        RegionLayout("NUVA", wavelength0=1667.0, center=185.0, **common),
        RegionLayout("NUVB", wavelength0=1766.0, center=290.0, **common),
        RegionLayout("NUVC", wavelength0=1865.0, center=425.0, **common),
    ]
    return Mode(
        "COS",
        "NUV",
        "G185M",
        1850,
        "PSA",
        1024,
        1024,
        (20.0, 760.0),
        regions,
        dark_rate=1.0e-5,
        airglow_lya=0.0,
        airglow_oi=0.0,
        files={"": "corrtag"},
    )


def stis_g140l() -> Mode:
    """STIS FUV-MAMA G140L (52X0.2): first order, 0.584 Å per low-res pixel."""
    region = RegionLayout(
        "ORDER 1",
        "",
        0.0,
        1023.0,
        1119.0,
        0.5837,
        383.0,
        2.0e-3,
        512.0,
        11.0,
        (83.0, 683.0),
        (5.0, 5.0),
        sensitivity_peak=1.0e14,
        profile_sigma=1.2,
    )
    return Mode(
        "STIS",
        "FUV-MAMA",
        "G140L",
        1425,
        "52X0.2",
        1024,
        1024,
        (10.0, 1010.0),
        [region],
        dark_rate=1.0e-4,
        airglow_lya=4.0,
        airglow_oi=0.4,
        files={"": "tag"},
    )


def stis_e140m() -> Mode:
    """STIS FUV-MAMA E140M (0.2X0.2): orders 116–109 (1164–1239 Å), Lyα in order 111."""
    regions = []
    for k, order in enumerate(range(116, 108, -1)):
        centre_wavelength = 1.3506e5 / order
        dispersion = centre_wavelength / 91600.0
        center = 300.0 + 26.0 * k
        regions.append(
            RegionLayout(
                f"ORDER {order}",
                "",
                0.0,
                1023.0,
                centre_wavelength - 511.5 * dispersion,
                dispersion,
                center,
                1.0e-3,
                512.0,
                7.0,
                (center - 8.0, center + 8.0),
                (5.0, 5.0),
                sensitivity_peak=4.0e12,
                profile_sigma=1.0,
            )
        )
    return Mode(
        "STIS",
        "FUV-MAMA",
        "E140M",
        1425,
        "0.2X0.2",
        1024,
        1024,
        (250.0, 540.0),
        regions,
        dark_rate=1.0e-4,
        airglow_lya=1.0,
        airglow_oi=0.1,
        files={"": "tag"},
    )


MODES = {"G130M": cos_fuv_g130m, "G185M": cos_nuv_g185m, "G140L": stis_g140l, "E140M": stis_e140m}


def source_flux_density(wavelength: np.ndarray, level: float) -> np.ndarray:
    """Return the simulated source spectrum [erg s⁻¹ cm⁻² Å⁻¹].

    A λ⁻² continuum of ``level`` at 1300 Å with Gaussian emission lines (σ = 0.3 Å).
    """
    wavelength = np.asarray(wavelength, dtype=np.float64)
    spectrum = (wavelength / 1300.0) ** -2
    for centre, peak in SOURCE_LINES:  # its own Gaussian: the simulator shares no science code
        spectrum = spectrum + peak * np.exp(-0.5 * ((wavelength - centre) / 0.3) ** 2)
    return level * spectrum


def _airglow_modulation(time: np.ndarray) -> np.ndarray:
    """Orbital day/night variation of the geocoronal lines (period 5700 s)."""
    return 0.2 + 0.8 * np.sin(np.pi * np.asarray(time) / 5700.0) ** 2


def _flat(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Detector efficiency pattern, 0.94–1.06."""
    return 1.0 + 0.04 * np.sin(x / 37.0) * np.cos(y / 23.0) + 0.02 * np.sin(x / 211.0)


@dataclass
class Exposure:
    """What to simulate for one dataset."""

    rootname: str
    mode: str = "G130M"
    target: str = "SIM-STAR"
    ra: float = 150.0
    dec: float = 2.0
    expstart: float = 58000.25
    exptime: float = 1200.0
    flux: float = 1.0e-14
    variability: Variability = field(default_factory=Variability)
    gaps: Sequence[tuple[float, float]] = ((420.0, 470.0),)
    bad_time: tuple[float, float] | None = (700.0, 712.0)
    burst: tuple[float, float] | None = (900.0, 904.0)
    expflag: str = "NORMAL"
    proposal: int = 17000
    flat_file: bool = False
    #: Write the support file ``<root>_spt.fits`` with HST's orbital elements.
    support_file: bool = True
    #: Uniform detector dark rate [counts s⁻¹ pixel⁻¹]; None is the mode's own (COS FUV 2e-6).
    dark_rate: float | None = None


def _good_time(exposure: Exposure) -> np.ndarray:
    cuts = sorted(list(exposure.gaps) + [w for w in (exposure.bad_time, exposure.burst) if w])
    intervals = []
    start = 0.0
    for c0, c1 in cuts:
        if c0 > start:
            intervals.append((start, min(c0, exposure.exptime)))
        start = max(start, c1)
    if start < exposure.exptime:
        intervals.append((start, exposure.exptime))
    return np.asarray([iv for iv in intervals if iv[1] > iv[0]], dtype=np.float64).reshape(-1, 2)


def _on_time(exposure: Exposure) -> np.ndarray:
    """Intervals when photons arrive (the exposure minus its gaps; bad time included)."""
    intervals, start = [], 0.0
    for g0, g1 in sorted(exposure.gaps):
        intervals.append((start, g0))
        start = g1
    intervals.append((start, exposure.exptime))
    clipped = [(a, min(b, exposure.exptime)) for a, b in intervals]
    return np.asarray([iv for iv in clipped if iv[1] > iv[0]], dtype=np.float64)


def _sample_times(rng: np.random.Generator, n: int, intervals: np.ndarray) -> np.ndarray:
    lengths = intervals[:, 1] - intervals[:, 0]
    u = rng.uniform(0, lengths.sum(), n)
    edges = np.concatenate([[0.0], np.cumsum(lengths)])
    index = np.clip(np.searchsorted(edges, u, side="right") - 1, 0, len(intervals) - 1)
    return intervals[index, 0] + (u - edges[index])


def _sample_modulated_times(
    rng: np.random.Generator, expected: float, intervals: np.ndarray, modulation: Variability
) -> np.ndarray:
    """Poisson process with rate ∝ modulation(t): thin a homogeneous process at the maximum."""
    total = expected * modulation.maximum
    candidates = _sample_times(rng, int(rng.poisson(total)), intervals)
    keep = rng.uniform(0, modulation.maximum, len(candidates)) < modulation.modulation(candidates)
    return candidates[keep]


@dataclass
class _Events:
    time: list[np.ndarray] = field(default_factory=list)
    x: list[np.ndarray] = field(default_factory=list)
    y: list[np.ndarray] = field(default_factory=list)
    dq: list[np.ndarray] = field(default_factory=list)

    def add(self, time: np.ndarray, x: np.ndarray, y: np.ndarray, dq: int = 0) -> None:
        self.time.append(time)
        self.x.append(x)
        self.y.append(y)
        self.dq.append(np.full(len(time), dq, dtype=np.int16))

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        time = np.concatenate(self.time)
        order = np.argsort(time, kind="stable")
        return (
            time[order],
            np.concatenate(self.x)[order],
            np.concatenate(self.y)[order],
            np.concatenate(self.dq)[order],
        )


def _pixel_rates(region: RegionLayout, flux: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    columns = np.arange(int(region.x_min), int(region.x_max) + 1, dtype=np.float64)
    wavelength = region.wavelength(columns)
    rate = source_flux_density(wavelength, flux) * region.sensitivity(wavelength)
    return columns, wavelength, rate


def _line_columns(
    region: RegionLayout, centre: float, n: int, rng: np.random.Generator, sigma: float
) -> np.ndarray:
    wavelength = rng.normal(centre, sigma, n)
    return region.x_min + (wavelength - region.wavelength0) / region.dispersion


@dataclass
class SimulatedDataset:
    """Paths written for one exposure and its truth."""

    rootname: str
    files: list[Path]
    truth: Path
    truth_spectrum: Path
    n_events: int


def simulate_exposure(
    exposure: Exposure,
    out: str | os.PathLike[str],
    *,
    seed: int = 1,
    progress: bool | None = None,
) -> SimulatedDataset:
    """Simulate one exposure and write its event files, x1d and truth files into ``out``.

    Parameters
    ----------
    exposure : Exposure
        Mode, target, timing, flux [erg s⁻¹ cm⁻² Å⁻¹ at 1300 Å], variability, gaps.
    out : path-like
        Output directory (created).
    seed : int
        Random seed; the same seed gives byte-identical data.
    progress : bool, optional
        A progress bar of the steps (source and background events per region and file, files
        written); default: on a terminal, otherwise one summary line in the log.
    """
    mode = MODES[exposure.mode]()
    steps = len(mode.regions) + 2 * len(mode.files) + 2
    description = f"simulate {mode.instrument.lower()} {exposure.rootname}"
    with Progress(steps, description, "step", enabled=progress, logger=log) as bar:
        return _simulate_exposure(exposure, Path(out), seed, bar)


def _simulate_exposure(exposure: Exposure, out: Path, seed: int, bar: Progress) -> SimulatedDataset:
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, sum(map(ord, exposure.rootname))])
    mode = MODES[exposure.mode]()
    good = _good_time(exposure)
    on = _on_time(exposure)
    on_length = float(np.sum(on[:, 1] - on[:, 0]))
    by_file: dict[str, _Events] = {key: _Events() for key in mode.files}
    truth_rows = []
    for region in mode.regions:
        events = by_file[region.file_key]
        columns, wavelength, rate = _pixel_rates(region, exposure.flux)
        # source photons: times from the modulated process, columns ∝ rate, y Gaussian about trace
        times = _sample_modulated_times(rng, rate.sum() * on_length, on, exposure.variability)
        cdf = np.cumsum(rate) / rate.sum() if rate.sum() > 0 else np.linspace(0, 1, len(rate))
        pick = np.minimum(np.searchsorted(cdf, rng.uniform(0, 1, len(times))), len(columns) - 1)
        x = columns[pick] + rng.uniform(-0.5, 0.5, len(times))
        trace = region.center + region.slope * (x - region.x_ref)
        y = trace + rng.normal(0, region.profile_sigma, len(times))
        events.add(times, x, y)
        # geocoronal lines fill the aperture: wider in y, varying with orbital day/night
        for centre, total, sigma in (
            (1215.67, mode.airglow_lya, 0.35),
            (1302.17, mode.airglow_oi * 0.5, 0.12),
            (1304.86, mode.airglow_oi * 0.3, 0.12),
            (1306.03, mode.airglow_oi * 0.2, 0.12),
        ):
            lo, hi = region.wavelength(region.x_min), region.wavelength(region.x_max)
            if not (lo < centre < hi) or total <= 0:
                continue
            candidates = _sample_times(rng, int(rng.poisson(total * on_length)), on)
            keep = rng.uniform(0, 1, len(candidates)) < _airglow_modulation(candidates)
            t = candidates[keep]
            xl = _line_columns(region, centre, len(t), rng, sigma)
            yl = (
                region.center
                + region.slope * (xl - region.x_ref)
                + rng.uniform(-region.height * 0.35, region.height * 0.35, len(t))
            )
            events.add(t, xl, yl)
        truth_rows.append((region, columns, wavelength, rate))
        bar.update(1, status=f"events of {region.name}")
    # detector background, burst, hot spots: per event file over its active area
    for key, events in by_file.items():
        regions = [r for r in mode.regions if r.file_key == key]
        x0 = min(r.x_min for r in regions)
        x1 = max(r.x_max for r in regions)
        area = (x1 - x0) * (mode.y_active[1] - mode.y_active[0])
        dark_rate = mode.dark_rate if exposure.dark_rate is None else exposure.dark_rate
        n = int(rng.poisson(dark_rate * area * on_length))
        events.add(
            _sample_times(rng, n, on), rng.uniform(x0, x1, n), rng.uniform(*mode.y_active, n)
        )
        if exposure.burst and mode.instrument == "COS":
            b0, b1 = exposure.burst
            n = int(rng.poisson(300.0 * (b1 - b0)))
            events.add(
                rng.uniform(b0, b1, n),
                rng.uniform(x0, x1, n),
                rng.uniform(*mode.y_active, n),
                DQ_BURST,
            )
        if mode.instrument == "COS":
            for region in regions:  # a hot spot in each lower background box
                n = int(rng.poisson(0.5 * on_length))
                hx = (
                    rng.uniform(x0 + 3000, x0 + 3010, n)
                    if x1 - x0 > 2000
                    else rng.uniform(300, 304, n)
                )
                hy = (
                    region.background[0]
                    + region.slope * (hx - region.x_ref)
                    + rng.uniform(-2, 2, n)
                )
                events.add(_sample_times(rng, n, on), hx, hy, DQ_HOT_SPOT)
        bar.update(1, status=f"background of {key}")
    written: list[Path] = []
    n_total = 0
    for key, events in by_file.items():
        time, x, y, dq = events.arrays()
        if exposure.bad_time:
            in_bad = (time >= exposure.bad_time[0]) & (time < exposure.bad_time[1])
            dq[in_bad] |= DQ_BAD_TIME
        # flat-field thinning: COS events carry EPSILON; STIS only when a flat file is written
        thinned = mode.instrument == "COS" or exposure.flat_file
        efficiency = _flat(x, y) if thinned else np.full(len(x), 1.07)
        detected = rng.uniform(0, 1.07, len(time)) < efficiency
        time, x, y, dq, efficiency = (a[detected] for a in (time, x, y, dq, efficiency))
        n_total += len(time)
        regions = [r for r in mode.regions if r.file_key == key]
        if mode.instrument == "COS":
            path = out / f"{exposure.rootname}_{mode.files[key]}.fits"
            _write_cos_corrtag(
                path,
                exposure,
                mode,
                regions,
                key,
                time,
                x,
                y,
                dq,
                (1.0 / efficiency) * 1.07,
                good,
                rng,
            )
        else:
            path = out / f"{exposure.rootname}_tag.fits"
            _write_stis_tag(path, exposure, mode, time, x, y, good, rng)
            if exposure.flat_file:
                flat_path = out / f"{exposure.rootname}_lfl.fits"
                yy, xx = np.mgrid[0:1024, 0:1024].astype(np.float64)
                fits.PrimaryHDU((_flat(xx, yy) / 1.07).astype(np.float32)).writeto(
                    flat_path, overwrite=True
                )
                written.append(flat_path)
        written.append(path)
        bar.update(1, status=path.name)
    written.append(_write_x1d(out, exposure, mode, truth_rows, good, rng))
    if exposure.support_file:
        written.append(write_support_file(out, exposure, mode, hst_orbit(exposure.expstart, rng)))
    bar.update(1, status=written[-1].name)
    truth, truth_spectrum = _write_truth(out, exposure, mode, truth_rows, good)
    bar.update(1, status=truth.name)
    return SimulatedDataset(exposure.rootname, written, truth, truth_spectrum, n_total)


def _primary(exposure: Exposure, mode: Mode, segment: str | None) -> fits.Header:
    h = fits.Header()
    h["TELESCOP"] = "HST"
    h["INSTRUME"] = mode.instrument
    h["DETECTOR"] = mode.detector
    if segment is not None:
        h["SEGMENT"] = segment
    h["OPT_ELEM"] = mode.opt_elem
    h["CENWAVE"] = mode.cenwave
    h["APERTURE"] = mode.aperture
    h["FPPOS"] = 3 if mode.instrument == "COS" else 1
    h["ROOTNAME"] = exposure.rootname
    h["TARGNAME"] = exposure.target
    h["RA_TARG"] = exposure.ra
    h["DEC_TARG"] = exposure.dec
    h["PROPOSID"] = exposure.proposal
    h["CAL_VER"] = "3.4.1" if mode.instrument == "COS" else "3.4.2"
    h["OBSTYPE"] = "SPECTROSCOPIC"
    h["OBSMODE"] = "TIME-TAG"
    h["FLUXTAB"] = "lref$simulated_phot.fits" if mode.instrument == "COS" else "oref$sim_pht.fits"
    h["TDSTAB"] = "lref$simulated_tds.fits" if mode.instrument == "COS" else "oref$sim_tds.fits"
    h["FILETYPE"] = "SCI"
    h["ORIGIN"] = f"photonpipe {__version__} simulator"
    return h


def _events_header(exposure: Exposure, good: np.ndarray) -> fits.Header:
    h = fits.Header()
    h["EXPSTART"] = (exposure.expstart, "exposure start time (MJD)")
    h["EXPEND"] = (exposure.expstart + exposure.exptime / 86400.0, "exposure end time (MJD)")
    h["EXPTIME"] = (float(np.sum(good[:, 1] - good[:, 0])), "exposure duration (seconds)")
    h["EXPFLAG"] = exposure.expflag
    return h


def _write_cos_corrtag(
    path: Path,
    exposure: Exposure,
    mode: Mode,
    regions: list[RegionLayout],
    key: str,
    time: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    dq: np.ndarray,
    epsilon: np.ndarray,
    good: np.ndarray,
    rng: np.random.Generator,
) -> None:
    # wavelength of every event: the region whose trace is nearest in y
    distance = np.stack([np.abs(y - (r.center + r.slope * (x - r.x_ref))) for r in regions])
    nearest = np.argmin(distance, axis=0)
    wavelength = np.zeros(len(x))
    for i, region in enumerate(regions):
        wavelength[nearest == i] = region.wavelength(x[nearest == i])
    outside = (x < 0) | (x >= mode.nx) | (y < 0) | (y >= mode.ny)
    dq = dq | np.where(outside, DQ_OUT_OF_BOUNDS, 0).astype(np.int16)
    doppler = 8.0 * np.sin(2 * np.pi * time / 5700.0)
    n = len(time)
    columns = [
        fits.Column("TIME", "E", "s", array=time.astype(np.float32)),
        fits.Column(
            "RAWX", "I", "pixel", array=np.clip(x + doppler, 0, mode.nx - 1).astype(np.int16)
        ),
        fits.Column("RAWY", "I", "pixel", array=np.clip(y, 0, mode.ny - 1).astype(np.int16)),
        fits.Column("XCORR", "E", "pixel", array=(x + doppler).astype(np.float32)),
        fits.Column("YCORR", "E", "pixel", array=y.astype(np.float32)),
        fits.Column("XDOPP", "E", "pixel", array=x.astype(np.float32)),
        fits.Column("XFULL", "E", "pixel", array=x.astype(np.float32)),
        fits.Column("YFULL", "E", "pixel", array=y.astype(np.float32)),
        fits.Column("WAVELENGTH", "E", "angstrom", array=wavelength.astype(np.float32)),
        fits.Column("EPSILON", "E", array=epsilon.astype(np.float32)),
        fits.Column("DQ", "I", array=dq.astype(np.int16)),
        fits.Column("PHA", "B", array=rng.integers(3, 28, n).astype(np.uint8)),
    ]
    header = _events_header(exposure, good)
    header["SDQFLAGS"] = (COS_SDQFLAGS, "serious data quality flags")
    for region in regions:
        letter = region.name[-1]
        header[f"SP_LOC_{letter}"] = (region.center, "spectrum centre at x_ref [pixel]")
        header[f"SP_HGT_{letter}"] = (region.height, "extraction height [pixel]")
        header[f"SP_SLP_{letter}"] = (region.slope, "trace slope")
        header[f"B_BKG1_{letter}"] = region.background[0]
        header[f"B_BKG2_{letter}"] = region.background[1]
        header[f"B_HGT1_{letter}"] = region.background_height[0]
        header[f"B_HGT2_{letter}"] = region.background_height[1]
    segment = regions[0].name if mode.detector == "FUV" else "N/A"
    _write(path, _primary(exposure, mode, segment), columns, header, good)


def _write_stis_tag(
    path: Path,
    exposure: Exposure,
    mode: Mode,
    time: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    good: np.ndarray,
    rng: np.random.Generator,
) -> None:
    axis1 = np.clip(np.floor((x + 0.5) * 2), 0, 2047).astype(np.int16)
    axis2 = np.clip(np.floor((y + 0.5) * 2), 0, 2047).astype(np.int16)
    doppler = np.round(6.0 * np.sin(2 * np.pi * time / 5700.0)).astype(np.int16)
    columns = [
        fits.Column("TIME", "D", "s", array=time),
        fits.Column("AXIS1", "I", "pixel", array=axis1),
        fits.Column("AXIS2", "I", "pixel", array=axis2),
        fits.Column(
            "DETAXIS1", "I", "pixel", array=np.clip(axis1 + doppler, 0, 2047).astype(np.int16)
        ),
    ]
    _write(path, _primary(exposure, mode, None), columns, _events_header(exposure, good), good)


def _write(
    path: Path,
    primary: fits.Header,
    columns: list[fits.Column],
    header: fits.Header,
    good: np.ndarray,
) -> None:
    events = fits.BinTableHDU.from_columns(columns, header=header, name="EVENTS")
    gti = fits.BinTableHDU.from_columns(
        [
            fits.Column("START", "D", "s", array=good[:, 0]),
            fits.Column("STOP", "D", "s", array=good[:, 1]),
        ],
        name="GTI",
    )
    with atomic_output(path) as temporary:
        fits.HDUList([fits.PrimaryHDU(header=primary), events, gti]).writeto(temporary)


def _mean_modulation(exposure: Exposure, good: np.ndarray) -> float:
    grid = np.concatenate([np.linspace(a, b, max(int((b - a) * 4), 2)) for a, b in good])
    weights = np.concatenate(
        [np.full(max(int((b - a) * 4), 2), (b - a) / max(int((b - a) * 4), 2)) for a, b in good]
    )
    return float(np.sum(exposure.variability.modulation(grid) * weights) / weights.sum())


#: Earth's GM [m³ s⁻²], equatorial radius [m] and J2 (for the simulated orbit's drifts).
_GM_EARTH = 3.986004418e14
_R_EARTH = 6378137.0
_J2 = 1.08263e-3


def hst_orbit(expstart: float, rng: np.random.Generator) -> Any:
    """Make a realistic HST orbit for an exposure starting at ``expstart`` [MJD].

    Altitude 530–550 km, eccentricity 0.0002–0.0003, inclination 28.47°, random node, perigee
    and mean anomaly; the node and perigee drift at the J2 rates and the mean motion decays
    slightly (drag); the elements' epoch is 2–20 h before the exposure (STScI updates them
    about every other day).

    Returns
    -------
    photonpipe.lightcurves.orbit.HSTOrbit
    """
    from photonpipe.lightcurves.orbit import MJD_1985, HSTOrbit

    a = _R_EARTH + rng.uniform(530e3, 550e3)
    e = rng.uniform(2e-4, 3e-4)
    inclination = np.radians(28.47)
    p = a * (1 - e**2)
    n = np.sqrt(_GM_EARTH / a**3)  # rad/s
    j2 = 1.5 * n * _J2 * (_R_EARTH / p) ** 2
    node_rate = -j2 * np.cos(inclination)
    perigee_rate = 0.5 * j2 * (5 * np.cos(inclination) ** 2 - 1)
    epoch = (expstart - MJD_1985) * 86400.0 - rng.uniform(2.0, 20.0) * 3600.0
    return HSTOrbit(
        epchtime=float(epoch),
        semilrec=float(p),
        eccentry=float(e),
        eccentx2=float(2 * e),
        ecbdx3=float(3 * e**3),
        ecbdx4d3=float(4 * e**3 / 3),
        esqdx5d2=float(2.5 * e**2),
        meananom=float(rng.uniform(0, 2 * np.pi)),
        fdmeanan=float(n / (2 * np.pi)),
        sdmeanan=float(rng.uniform(2e-19, 8e-19)),
        argperig=float(rng.uniform(0, 1)),
        rcargper=float(perigee_rate / (2 * np.pi)),
        rascascn=float(rng.uniform(0, 1)),
        rcascnrv=float(node_rate / (2 * np.pi)),
        cosincli=float(np.cos(inclination)),
        sineincl=float(np.sin(inclination)),
        cirveloc=float(np.sqrt(_GM_EARTH / p)),
        hsthorb=float(np.pi / n),
    )


def write_support_file(out: Path, exposure: Exposure, mode: Mode, orbit: Any) -> Path:
    """Write ``<root>_spt.fits``: primary header with the orbital elements, and a SNAP1 HDU.

    As HST's support files: the standard keywords of the exposure and the ephemeris keywords
    (see :mod:`photonpipe.lightcurves.orbit` for their meaning), then an engineering snapshot
    extension (here a small image of zeros: photonpipe reads only the primary header).
    """
    comments = {
        "EPCHTIME": "epoch of parameters (s since 1985.0)",
        "SEMILREC": "semi-latus rectum (m)",
        "ECCENTRY": "eccentricity",
        "ECCENTX2": "eccentricity times 2",
        "ECBDX3": "eccentricity cubed times 3",
        "ECBDX4D3": "eccentricity cubed times 4/3",
        "ESQDX5D2": "eccentricity squared times 5/2",
        "MEANANOM": "mean anomaly (radians)",
        "FDMEANAN": "1st deriv. of mean anomaly (rev/s)",
        "SDMEANAN": "2nd deriv. of mean anomaly (rev/s2)",
        "ARGPERIG": "argument of perigee (rev)",
        "RCARGPER": "rate of argument of perigee (rev/s)",
        "RASCASCN": "RA of ascending node (rev)",
        "RCASCNRV": "rate of RA of ascending node (rev/s)",
        "COSINCLI": "cosine of inclination",
        "SINEINCL": "sine of inclination",
        "CIRVELOC": "circular orbit velocity (m/s)",
        "HSTHORB": "half the orbital period (s)",
    }
    primary = _primary(exposure, mode, None)
    primary["FILETYPE"] = "SPT"
    for key, value in orbit.to_header().items():
        primary[key] = (value, comments[key])
    snap = fits.ImageHDU(np.zeros(16, dtype=np.int16), name="SNAP1")
    path = out / f"{exposure.rootname}_spt.fits"
    with atomic_output(path) as temporary:
        fits.HDUList([fits.PrimaryHDU(header=primary), snap]).writeto(temporary)
    return path


def _write_x1d(
    out: Path,
    exposure: Exposure,
    mode: Mode,
    truth_rows: list,
    good: np.ndarray,
    rng: np.random.Generator,
) -> Path:
    exptime = float(np.sum(good[:, 1] - good[:, 0]))
    mean_mod = _mean_modulation(exposure, good)
    nelem = mode.nx
    rows = []
    for region, columns, _, rate in truth_rows:
        pixels = np.arange(nelem, dtype=np.float64)
        wavelength = region.wavelength(pixels)
        net_true = np.zeros(nelem)
        net_true[columns.astype(int)] = rate * mean_mod
        net = rng.poisson(net_true * exptime) / exptime
        sens = region.sensitivity(wavelength)
        flux = net / sens
        background = np.full(
            nelem,
            (mode.dark_rate if exposure.dark_rate is None else exposure.dark_rate) * region.height,
        )
        dq = np.where((pixels < region.x_min) | (pixels > region.x_max), DQ_OUT_OF_BOUNDS, 0)
        active = dq == 0
        net[~active] = flux[~active] = background[~active] = 0.0
        error = np.sqrt(np.abs(net) * exptime) / exptime / sens
        error[~active] = 0.0
        rows.append((region, wavelength, flux, net, net + background, background, dq, error))
    label = "SEGMENT" if mode.instrument == "COS" else "SPORDER"
    labels = [r[0].name if mode.instrument == "COS" else int(r[0].name.split()[1]) for r in rows]
    fmt = f"{nelem}"
    cols = [
        fits.Column(label, "4A" if label == "SEGMENT" else "I", array=labels),
        fits.Column("EXPTIME", "D", "s", array=[exptime] * len(rows)),
        fits.Column("NELEM", "J", array=[nelem] * len(rows)),
        fits.Column("WAVELENGTH", fmt + "D", "angstrom", array=[r[1] for r in rows]),
        fits.Column("FLUX", fmt + "E", "erg /s /cm**2 /angstrom", array=[r[2] for r in rows]),
        fits.Column("ERROR", fmt + "E", "erg /s /cm**2 /angstrom", array=[r[7] for r in rows]),
        fits.Column("GROSS", fmt + "E", "count /s", array=[r[4] for r in rows]),
        fits.Column("NET", fmt + "E", "count /s", array=[r[3] for r in rows]),
        fits.Column("BACKGROUND", fmt + "E", "count /s", array=[r[5] for r in rows]),
        fits.Column("DQ", fmt + "I", array=[r[6].astype(np.int16) for r in rows]),
    ]
    if mode.instrument == "STIS":
        cols += [
            fits.Column("A2CENTER", "E", array=[r[0].center + 1.0 for r in rows]),
            fits.Column("EXTRSIZE", "E", array=[r[0].height for r in rows]),
            fits.Column("BK1SIZE", "E", array=[r[0].background_height[0] for r in rows]),
            fits.Column("BK2SIZE", "E", array=[r[0].background_height[1] for r in rows]),
            fits.Column("BK1OFFST", "E", array=[r[0].background[0] - r[0].center for r in rows]),
            fits.Column("BK2OFFST", "E", array=[r[0].background[1] - r[0].center for r in rows]),
            fits.Column(
                "EXTRLOCY",
                fmt + "E",
                array=[
                    r[0].center + r[0].slope * (np.arange(nelem) - r[0].x_ref) + 1.0 for r in rows
                ],
            ),
        ]
    header = fits.Header()
    header["EXPSTART"] = exposure.expstart
    header["EXPTIME"] = exptime
    header["SDQFLAGS"] = COS_SDQFLAGS if mode.instrument == "COS" else 31743
    primary = _primary(exposure, mode, None)
    sci = fits.BinTableHDU.from_columns(cols, header=header, name="SCI")
    path = out / f"{exposure.rootname}_x1d.fits"
    with atomic_output(path) as temporary:
        fits.HDUList([fits.PrimaryHDU(header=primary), sci]).writeto(temporary)
    return path


def band_truth(
    truth_spectrum: Table,
    low: float | None = None,
    high: float | None = None,
    exclude: Sequence[tuple[float, float]] = GEOCORONAL,
) -> tuple[float, float, float]:
    """Return the expected unmodulated source rate, flux and band width in a band (truth).

    Returns
    -------
    rate : float
        EPSILON-weighted source count rate [counts s⁻¹].
    flux : float
        Band-integrated flux [erg s⁻¹ cm⁻²].
    width : float
        Band width [Å] (per region, excluded windows removed, summed).
    """
    wavelength = np.asarray(truth_spectrum["wavelength"])
    keep = np.ones(len(wavelength), dtype=bool)
    if low is not None:
        keep &= wavelength >= low
    if high is not None:
        keep &= wavelength <= high
    for w0, w1 in exclude:
        keep &= ~((wavelength >= w0) & (wavelength <= w1))
    rate = float(np.sum(np.asarray(truth_spectrum["rate"])[keep]))
    flux = float(
        np.sum(
            (np.asarray(truth_spectrum["flux_density"]) * np.asarray(truth_spectrum["dispersion"]))[
                keep
            ]
        )
    )
    width = float(np.sum(np.asarray(truth_spectrum["dispersion"])[keep]))
    return rate, flux, width


def _write_truth(
    out: Path, exposure: Exposure, mode: Mode, truth_rows: list, good: np.ndarray
) -> tuple[Path, Path]:
    spectrum = Table()
    spectrum["region"] = np.concatenate([[r[0].name] * len(r[1]) for r in truth_rows])
    spectrum["column"] = np.concatenate([r[1] for r in truth_rows])
    spectrum["wavelength"] = np.concatenate([r[2] for r in truth_rows])
    spectrum["dispersion"] = np.concatenate(
        [np.full(len(r[1]), r[0].dispersion) for r in truth_rows]
    )
    spectrum["rate"] = np.concatenate([r[3] for r in truth_rows])
    spectrum["flux_density"] = np.concatenate(
        [source_flux_density(r[2], exposure.flux) for r in truth_rows]
    )
    spectrum["wavelength"].unit = "Angstrom"
    spectrum["rate"].unit = "ct / s"
    spectrum["flux_density"].unit = "erg / (s cm2 Angstrom)"
    spectrum.meta = {
        "rootname": exposure.rootname,
        "mode": exposure.mode,
        "description": "unmodulated source count rate and flux per detector column",
    }
    rate, flux, width = band_truth(spectrum)
    time = np.arange(0.0, exposure.exptime, 1.0) + 0.5
    modulation = exposure.variability.modulation(time)
    table = Table()
    table["time"] = time
    table["time"].unit = "s"
    table["mjd"] = exposure.expstart + time / 86400.0
    table["good"] = np.zeros(len(time), dtype=bool)
    for start, stop in good:
        table["good"] |= (time >= start) & (time < stop)
    table["modulation"] = modulation
    table["rate"] = modulation * rate
    table["rate"].unit = "ct / s"
    table["flux"] = modulation * flux
    table["flux"].unit = "erg / (s cm2)"
    table["flux_density"] = modulation * flux / width
    table.meta = {
        "rootname": exposure.rootname,
        "mode": exposure.mode,
        "target": exposure.target,
        "expstart": exposure.expstart,
        "variability": vars(exposure.variability),
        "band_rate": rate,
        "band_flux": flux,
        "band_width": width,
        "exclude": [list(w) for w in GEOCORONAL],
        "gti": good.tolist(),
        "seed_note": "rates are EPSILON-weighted expected source counts",
    }
    truth = out / f"{exposure.rootname}_truth.ecsv"
    truth_spectrum = out / f"{exposure.rootname}_truth_spectrum.ecsv"
    table.write(truth, overwrite=True)
    spectrum.write(truth_spectrum, overwrite=True)
    return truth, truth_spectrum


def flux_for_events(mode: str, n_events: int, exptime: float) -> float:
    """Source level [erg s⁻¹ cm⁻² Å⁻¹ at 1300 Å] that gives about ``n_events`` source events.

    Parameters
    ----------
    mode : str
        ``G130M``, ``G185M``, ``G140L`` or ``E140M``.
    n_events : int
        Wanted number of events.
    exptime : float
        Exposure length [s].
    """
    reference = 1.0e-14
    layout = MODES[mode]()
    rate = sum(_pixel_rates(region, reference)[2].sum() for region in layout.regions)
    return reference * n_events / (rate * exptime)


def binned_light_curve(
    exposure: Exposure,
    step: float,
    rate: float,
    *,
    seed: int = 1,
    background: float = 0.0,
    also: Sequence[Variability] = (),
    dataset_number: int = 1,
    reference_mjd: float | None = None,
) -> Any:
    """Simulate a binned light curve directly, without photon lists (fast: for test batteries).

    The same physics of the variability and the good time as :func:`simulate_exposure`, the
    counting statistics of a photon-counting detector, and the product layout of
    :func:`photonpipe.lightcurves.extract.extract`: bins of ``step`` s from EXPSTART, exposure =
    overlap with good time (bins without any dropped), Poisson counts of the source (``rate`` ×
    the mean modulation over the bin's good time) plus a background of ``background`` counts/s,
    errors √N (Gehrels 1 + √(N + 0.75) below 20 counts). FLUX is left uncalibrated (NaN);
    TIME_BJD_TDB is computed for the geocentre.

    Parameters
    ----------
    exposure : Exposure
        Timing (EXPSTART, EXPTIME, gaps, bad time, burst), target and variability.
    step : float
        Bin width [s].
    rate : float
        Unmodulated source count rate [counts/s].
    seed : int
        Random seed.
    background : float
        Background count rate in the source box [counts/s] (not subtracted).
    also : sequence of Variability
        Further modulations added to the exposure's (each contributes ``modulation − 1``).
    dataset_number : int
        DATASET column value.
    reference_mjd : float, optional
        Zero of the TIME column [MJD] (default EXPSTART; a composite's first EXPSTART).

    Returns
    -------
    LightCurve
    """
    from photonpipe.lightcurves.curve import LightCurve
    from photonpipe.lightcurves.orbit import barycentric_dates

    rng = np.random.default_rng([seed, sum(map(ord, exposure.rootname)), 17])
    good = _good_time(exposure)
    n_bins = int(np.ceil(exposure.exptime / step))
    edges = np.arange(n_bins + 1, dtype=np.float64) * step
    fine = 0.5  # s: the modulation is averaged on this grid over each bin's good time
    t_fine = np.arange(0.0, n_bins * step, fine) + fine / 2
    inside = np.zeros(len(t_fine), dtype=bool)
    for start, stop in good:
        inside |= (t_fine >= start) & (t_fine < stop)
    modulation = exposure.variability.modulation(t_fine)
    for other in also:
        modulation = modulation + other.modulation(t_fine) - 1.0
    modulation = np.clip(modulation, 0.0, None)
    index = np.minimum((t_fine / step).astype(np.int64), n_bins - 1)
    exposure_time = np.bincount(index, weights=inside * fine, minlength=n_bins)
    weighted_time = np.bincount(index, weights=inside * fine * t_fine, minlength=n_bins)
    modulation_sum = np.bincount(index, weights=inside * fine * modulation, minlength=n_bins)
    keep = exposure_time > 0
    t = exposure_time[keep]
    mean_modulation = modulation_sum[keep] / t
    counts: np.ndarray = rng.poisson((rate * mean_modulation + background) * t).astype(np.float64)
    sigma = np.where(counts < 20, 1.0 + np.sqrt(counts + 0.75), np.sqrt(counts))
    reference = exposure.expstart if reference_mjd is None else reference_mjd
    shift = (exposure.expstart - reference) * 86400.0
    gross = counts / t
    nan = np.full(len(t), np.nan)
    mjd = exposure.expstart + weighted_time[keep] / t / 86400.0
    bjd, bjd_header = barycentric_dates(mjd, exposure.ra, exposure.dec, None)
    columns = {
        "TIME": edges[:-1][keep] + shift,
        "MJD": mjd,
        "TIME_BJD_TDB": bjd,
        "BIN_EXPTIME": t,
        "GROSS": gross,
        "BACKGROUND": np.zeros(len(t)),
        "NET": gross,
        "COUNTS": counts,
        "ERROR": sigma / t,
        "FLUX": nan,
        "FLUX_ERROR": nan,
        "FLUX_DENSITY": nan,
        "SIGNAL_TO_NOISE": counts / sigma,
        "DATASET": np.full(len(t), dataset_number, dtype=np.int32),
    }
    header = {
        "TELESCOP": "HST",
        "INSTRUME": "COS",
        "TARGNAME": exposure.target,
        "RA_TARG": exposure.ra,
        "DEC_TARG": exposure.dec,
        "ROOTNAME": exposure.rootname,
        "EXPSTART": reference,
        "STEP": step,
        "FLUXCAL": "NONE",
        "SOFTVER": f"photonpipe {__version__} binned simulator",
        **bjd_header,
    }
    meta = {"header": header, "datasets": [exposure.rootname], "exclude": [], "regions": []}
    return LightCurve.from_columns(columns, meta)
