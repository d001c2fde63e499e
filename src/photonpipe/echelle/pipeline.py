"""The echelle pipeline: calibration records, master stacks, traces, TRIPLE, science frames, nights.

Data tree (LCO's layout): raw frames under ``{root}/{site}/{nresNN}/{YYYYMMDD}/raw/``; products
under ``{root}/{site}/{nresNN}/reduced/`` with the sub-directories of :data:`REDUCED_SUBDIRS`
(masters in ``bias``, ``dark``, ``flat``, ``dble`` (arc stacks), ``trip`` (TRIPLE wavelength
solutions), ``trace``; science products in ``spec`` (1-D and 2-D), quicklooks in ``plot``, arc
residual figures in ``diag``).

Science frames with a simultaneous Th-Ar fibre have the spectrograph's drift since the TRIPLE
measured on that fibre and corrected in their wavelengths (:mod:`photonpipe.echelle.drift`).

Every master is recorded in table ``echelle_calibration``; a frame's calibrations are chosen by
:func:`best_calibration`. Frames go through the work-unit ledger (kind ``echelle.frame``), so a
bad frame is recorded with its error and the night goes on.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.time import Time
from sqlalchemy import select

from photonpipe.echelle import instrument
from photonpipe.echelle.blind import blind_traces
from photonpipe.echelle.drift import drift_cards, measure_drift
from photonpipe.echelle.expmeter import midpoint_cards, read_exposure_meter
from photonpipe.echelle.extract import (
    blaze_function,
    box_extract,
    keys_on_image,
    optimal_extract,
)
from photonpipe.echelle.formats import RawFrame, fibres_lit, parse_dateobs, read_header, read_raw
from photonpipe.echelle.models import CalibrationRecord
from photonpipe.echelle.preprocess import ProcessedImage, preprocess, read_image, write_image
from photonpipe.echelle.products import (
    ELECTRON_COMMENT,
    ELECTRON_UNIT,
    provenance_header,
    quicklook,
    read_triple,
    spectrum_table,
    write_triple,
)
from photonpipe.echelle.rv import (
    frame_velocity,
    night_zeros,
    register_site_targets,
    rv_header_cards,
    write_velocity,
)
from photonpipe.echelle.stacking import CalibrationError, stack_images
from photonpipe.echelle.traces import TraceSet, initial_traces, refine_traces
from photonpipe.echelle.wavecal import WavelengthSolution, detect_lines, solve_wavelength
from photonpipe.errors import InputFileError, PhotonpipeError
from photonpipe.platform.archive import Archive
from photonpipe.platform.db import Database, upsert
from photonpipe.platform.executor import BatchReport, run_work_units
from photonpipe.platform.ledger import WorkUnit, file_checksum
from photonpipe.platform.plots import new_figure
from photonpipe.platform.progress import Progress

log = logging.getLogger("photonpipe.echelle.pipeline")

KIND = "echelle.frame"
REDUCED_SUBDIRS = (
    "bias",
    "blaz",
    "ccor",
    "class",
    "config",
    "csv",
    "dark",
    "dble",
    "diag",
    "expm",
    "extr",
    "flat",
    "plot",
    "rv",
    "spec",
    "tar",
    "temp",
    "thar",
    "trace",
    "trip",
    "zero",
)
MASTER_DIR = {
    "BIAS": "bias",
    "DARK": "dark",
    "FLAT": "flat",
    "ARC": "dble",
    "TRIPLE": "trip",
    "TRACE": "trace",
}
#: How long a master stays valid either side of its observation date.
DEFAULT_VALIDITY = timedelta(days=2)


@dataclass
class Options:
    """Reduction parameters (settings section ``echelle``)."""

    validity_days: float = 2.0
    half_width: int = 6
    x_degree: int = 2
    m_degree: int = 2
    line_threshold: float = 20.0
    blind_trace: bool = False
    drift_threshold: float = 10.0
    drift_min_lines: int = 10

    @classmethod
    def from_settings(cls, settings: Any | None) -> Options:
        """Read the ``echelle`` settings section.

        Defaults without settings, or with settings loaded before the section was registered.
        """
        if settings is None:
            return cls()
        try:
            settings["echelle.validity_days"]
        except KeyError:
            return cls()
        return cls(
            validity_days=float(settings["echelle.validity_days"]),
            half_width=int(settings["echelle.half_width"]),
            x_degree=int(settings["echelle.x_degree"]),
            m_degree=int(settings["echelle.m_degree"]),
            line_threshold=float(settings["echelle.line_threshold"]),
            blind_trace=bool(settings["echelle.blind_trace"]),
            drift_threshold=float(settings["echelle.drift_threshold"]),
            drift_min_lines=int(settings["echelle.drift_min_lines"]),
        )


def reduced_dir(archive: Archive, site: str, instrument_name: str) -> Path:
    """Create (with all its sub-directories) and return the instrument's ``reduced/`` tree."""
    for sub in REDUCED_SUBDIRS:
        archive.makedirs(site, instrument_name, "reduced", sub)
    return archive.path(site, instrument_name, "reduced")


# --------------------------------------------------------------------------- calibration records


def record_calibration(
    database: Database,
    archive: Archive,
    *,
    ctype: str,
    site: str,
    instrument_name: str,
    camera: str,
    fibres: str,
    dateobs: datetime,
    path: Path,
    n_frames: int,
    validity: timedelta = DEFAULT_VALIDITY,
) -> None:
    """Insert or update the record of a master calibration (keyed by its archive path)."""
    with database.session() as session:
        upsert(
            session,
            CalibrationRecord,
            [
                {
                    "type": ctype,
                    "site": site,
                    "instrument": instrument_name,
                    "camera": camera,
                    "fibres_lit": fibres,
                    "dateobs": dateobs,
                    "valid_from": dateobs - validity,
                    "valid_to": dateobs + validity,
                    "path": archive.relative(path),
                    "n_frames": n_frames,
                    "is_bad": False,
                    "created": datetime.now(UTC),
                }
            ],
            key=("path",),
        )


def best_calibration(
    database: Database, instrument_name: str, ctype: str, when: datetime, fibres: str | None = None
) -> CalibrationRecord | None:
    """Return the usable master nearest in time to ``when``.

    Usable: same instrument and type, the same fibres lit, not bad, valid at ``when``.
    """
    with database.session() as session:
        query = select(CalibrationRecord).where(
            CalibrationRecord.instrument == instrument_name,
            CalibrationRecord.type == ctype,
            CalibrationRecord.is_bad.is_(False),
            CalibrationRecord.valid_from <= when,
            CalibrationRecord.valid_to >= when,
        )
        if fibres is not None:
            query = query.where(CalibrationRecord.fibres_lit == fibres)
        records = list(session.scalars(query))
        session.expunge_all()
    if not records:
        return None
    return min(records, key=lambda r: abs((r.dateobs - when).total_seconds()))


def require_calibration(
    database: Database,
    archive: Archive,
    frame: Path,
    instrument_name: str,
    ctype: str,
    when: datetime,
    fibres: str | None = None,
) -> Path:
    """Path of the best master, or CalibrationError naming the frame and what is missing."""
    record = best_calibration(database, instrument_name, ctype, when, fibres)
    if record is None:
        wanted = f"{ctype}" + (f" with fibres {fibres} lit" if fibres else "")
        raise CalibrationError(
            f"{frame}: no usable {wanted} calibration for {instrument_name} "
            f"at {when:%Y-%m-%dT%H:%M}"
        )
    return archive.path(record.path)


# --------------------------------------------------------------------------- raw frames


@dataclass
class FrameInfo:
    """What the pipeline needs to know about a raw frame from its header."""

    path: Path
    obstype: str
    ctype: str | None
    fibres: str
    dateobs: datetime
    site: str
    instrument: str
    camera: str


def frame_info(path: Path) -> FrameInfo:
    """Read and check a raw frame's header."""
    from photonpipe.echelle.formats import FRAME_TYPES

    header = read_header(path)
    obstype = str(header["OBSTYPE"]).strip().upper()
    return FrameInfo(
        path=path,
        obstype=obstype,
        ctype=FRAME_TYPES[obstype],
        fibres=fibres_lit(str(header["OBJECTS"])),
        dateobs=parse_dateobs(path, str(header["DATE-OBS"])),
        site=str(header["SITEID"]).strip(),
        instrument=str(header["TELESCOP"]).strip(),
        camera=str(header["INSTRUME"]).strip(),
    )


def raw_files(
    archive: Archive, site: str, instrument_name: str, day_obs: str | None = None
) -> list[Path]:
    """Raw frames of one night (or all nights) of an instrument, sorted by name."""
    base = archive.path(site, instrument_name)
    pattern = f"{day_obs or '*'}/raw/*.fits*"
    return sorted(p for p in base.glob(pattern) if p.is_file() and not p.name.startswith("."))


def find_frames(
    archive: Archive,
    site: str,
    instrument_name: str,
    camera: str,
    ctype: str,
    start: datetime,
    end: datetime,
) -> tuple[list[FrameInfo], dict[str, str]]:
    """Return frames of a calibration type observed in [start, end], and unreadable ones' errors."""
    found, errors = [], {}
    for path in raw_files(archive, site, instrument_name):
        try:
            info = frame_info(path)
        except InputFileError as exc:
            errors[str(path)] = str(exc)
            continue
        if info.ctype == ctype and info.camera == camera and start <= info.dateobs <= end:
            found.append(info)
    return found, errors


# --------------------------------------------------------------------------- masters


def _load_raw(path: Path, site: str, instrument_name: str) -> RawFrame:
    frame = read_raw(path)
    if frame.site != site or frame.instrument != instrument_name:
        raise InputFileError(
            path, f"is from {frame.site}/{frame.instrument}, not {site}/{instrument_name}"
        )
    return frame


def _master_name(
    site: str, instrument_name: str, camera: str, when: datetime, ctype: str, fibres: str | None
) -> str:
    nres = instrument_name.replace("nres", "")
    suffix = f"-{fibres}" if fibres else ""
    return f"{site}nrs{nres}-{camera}-{when:%Y%m%d}-{ctype.lower()}{suffix}.fits"


def _mean_time(times: Sequence[datetime]) -> datetime:
    first = min(times)
    return first + sum((t - first for t in times), timedelta()) / len(times)


@dataclass
class StackResult:
    """Masters written by :func:`stack_calibration`, and frames skipped with their errors."""

    masters: list[Path] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


def stack_calibration(
    archive: Archive,
    database: Database,
    *,
    site: str,
    camera: str,
    instrument_name: str,
    ctype: str,
    start: datetime,
    end: datetime,
    options: Options | None = None,
    progress: Progress | None = None,
) -> StackResult:
    """Stack the BIAS, DARK, FLAT or ARC frames observed in [start, end] into masters.

    FLAT and ARC frames are stacked per lit-fibre pair. DARK frames are bias-subtracted, FLAT and
    ARC frames bias- and dark-subtracted with the best masters for their time. After an ARC stack,
    the TRIPLE wavelength solution is made when both arc pairs, both flats and a trace are
    available (:func:`make_triple`). ``progress`` (optional) counts the frames read (its total
    grows by the frames found).

    Raises
    ------
    CalibrationError
        No frames, too few frames, or a needed master missing.
    """
    options = options or Options()
    validity = timedelta(days=options.validity_days)
    frames, skipped = find_frames(archive, site, instrument_name, camera, ctype, start, end)
    if not frames:
        raise CalibrationError(
            f"no {ctype} frames of {site}/{instrument_name}/{camera} between "
            f"{start:%Y-%m-%dT%H:%M} and {end:%Y-%m-%dT%H:%M}"
        )
    if progress is not None:
        progress.add_total(len(frames))
    groups: dict[str, list[FrameInfo]] = {}
    for info in frames:
        groups.setdefault(info.fibres if ctype in ("FLAT", "ARC") else "000", []).append(info)
    result = StackResult(skipped=skipped)
    reduced = reduced_dir(archive, site, instrument_name)
    for fibres, members in sorted(groups.items()):
        when = _mean_time([m.dateobs for m in members])
        bias = dark = None
        if ctype != "BIAS":
            bias = read_image(
                require_calibration(
                    database, archive, members[0].path, instrument_name, "BIAS", when
                )
            )
        if ctype in ("FLAT", "ARC"):
            dark = read_image(
                require_calibration(
                    database, archive, members[0].path, instrument_name, "DARK", when
                )
            )
        images: list[ProcessedImage] = []
        for member in members:
            try:
                images.append(preprocess(_load_raw(member.path, site, instrument_name), bias, dark))
            except InputFileError as exc:
                result.skipped[str(member.path)] = str(exc)
            if progress is not None:
                progress.update(1, status=member.path.name)
        master = stack_images(images, ctype)
        name = _master_name(
            site, instrument_name, camera, when, ctype, fibres if ctype in ("FLAT", "ARC") else None
        )
        header = provenance_header(
            None,
            {k: str(v.path) for k, v in (("BIASFILE", bias), ("DARKFILE", dark)) if v is not None},
            master.inputs,
        )
        for key in ("SITEID", "TELESCOP", "INSTRUME", "DAY-OBS", "GAIN", "RDNOISE"):
            header[key] = master.header[key]
        header["OBSTYPE"] = (ctype, "master calibration type")
        header["FIBRES"] = (fibres, "fibres lit")
        header["DATE-OBS"] = (when.strftime("%Y-%m-%dT%H:%M:%S"), "mean time of the inputs")
        per_second = " per second" if ctype == "DARK" else ""
        header["BUNIT"] = (
            f"{ELECTRON_UNIT} s-1" if ctype == "DARK" else ELECTRON_UNIT,
            ELECTRON_COMMENT + per_second,
        )
        destination = reduced / MASTER_DIR[ctype] / name
        with archive.atomic_path(destination.relative_to(archive.root)) as temp:
            write_image(temp, master, header)
        record_calibration(
            database,
            archive,
            ctype=ctype,
            site=site,
            instrument_name=instrument_name,
            camera=camera,
            fibres=fibres,
            dateobs=when,
            path=destination,
            n_frames=len(images),
            validity=validity,
        )
        result.masters.append(destination)
        log.info("%s master %s from %d frames", ctype, destination.name, len(images))
    return result


def make_traces(
    archive: Archive,
    database: Database,
    flat_paths: Sequence[Path],
    initial: Path | None = None,
    options: Options | None = None,
    blind: bool | None = None,
) -> Path:
    """Refine a starting trace on two master flats (fibres 0+1 and 1+2) and record the TRACE.

    Parameters
    ----------
    flat_paths : sequence of Path
        Master flats (their FIBRES keyword says which fibres are lit).
    initial : Path, optional
        Hand trace file (nres-pipe format) or a trace product; default: the site's own.
    blind : bool, optional
        Start from traces found blind on the flats (:mod:`photonpipe.echelle.blind`) instead of
        a hand trace; default the ``blind_trace`` setting. Not with ``initial``.
    """
    options = options or Options()
    blind = options.blind_trace if blind is None else blind
    if blind and initial is not None:
        raise ValueError("a starting trace and blind tracing exclude each other")
    flats = [read_image(path) for path in flat_paths]
    header = flats[0].header
    site = str(header["SITEID"]).strip()
    if blind:
        start = blind_traces(flats, site)
    elif initial is None:
        start = initial_traces(instrument.hand_trace(site))
    elif initial.suffix == ".fits":
        start = TraceSet.read(initial)
    else:
        try:
            start = initial_traces(instrument.read_hand_trace(initial))
        except (OSError, ValueError) as exc:
            raise InputFileError(initial, f"not a hand trace file ({exc})") from None
    traces = refine_traces(start, [(flat, str(flat.header["FIBRES"])) for flat in flats])
    if not traces.coeffs:
        raise CalibrationError(
            f"no order could be traced on {', '.join(p.name for p in flat_paths)}"
        )
    instrument_name = str(header["TELESCOP"]).strip()
    camera = str(header["INSTRUME"]).strip()
    when = _mean_time([parse_dateobs(f.path, str(f.header["DATE-OBS"])) for f in flats])
    reduced = reduced_dir(archive, site, instrument_name)
    destination = (
        reduced / "trace" / _master_name(site, instrument_name, camera, when, "TRACE", None)
    )
    out_header = provenance_header(None, {f"FLAT{k + 1}": str(p) for k, p in enumerate(flat_paths)})
    if blind:
        start_name = "blind (found on the flats)"
    elif initial is not None:
        start_name = initial.name
    else:
        start_name = f"packaged {instrument.site_info(site).trace_file}"
    out_header["INITIAL"] = (start_name, "starting trace")
    out_header["SITEID"], out_header["TELESCOP"], out_header["INSTRUME"] = (
        site,
        instrument_name,
        camera,
    )
    out_header["NTRACES"] = (len(traces.coeffs), "order/fibre traces")
    out_header["MEDRMS"] = (
        float(np.median(list(traces.rms.values()))),
        "[px] median trace fit RMS",
    )
    with archive.atomic_path(destination.relative_to(archive.root)) as temp:
        traces.write(temp, out_header)
    record_calibration(
        database,
        archive,
        ctype="TRACE",
        site=site,
        instrument_name=instrument_name,
        camera=camera,
        fibres="111",
        dateobs=when,
        path=destination,
        n_frames=len(flats),
        validity=timedelta(days=options.validity_days),
    )
    return destination


def write_initial_traces(
    archive: Archive, hand_file: Path, site: str, instrument_name: str
) -> Path:
    """Convert a hand trace file to a trace product (``trace/…-initial.fits``); not recorded."""
    try:
        traces = initial_traces(instrument.read_hand_trace(hand_file))
    except (OSError, ValueError) as exc:
        raise InputFileError(hand_file, f"not a hand trace file ({exc})") from None
    reduced = reduced_dir(archive, site, instrument_name)
    destination = reduced / "trace" / f"{hand_file.stem}-initial.fits"
    header = provenance_header(None, {})
    header["INITIAL"] = hand_file.name
    with archive.atomic_path(destination.relative_to(archive.root)) as temp:
        traces.write(temp, header)
    return destination


def write_blind_traces(archive: Archive, flat_paths: Sequence[Path]) -> Path:
    """Find starting traces blind on master flats → ``trace/{flat}-blind.fits``; not recorded.

    The product is a starting trace like :func:`write_initial_traces`'s (for ``trace-refine
    --initial``), holding the fibres lit on the given flats.
    """
    flats = [read_image(path) for path in flat_paths]
    header = flats[0].header
    site = str(header["SITEID"]).strip()
    traces = blind_traces(flats, site)
    reduced = reduced_dir(archive, site, str(header["TELESCOP"]).strip())
    destination = reduced / "trace" / f"{flat_paths[0].name.split('.')[0]}-blind.fits"
    out_header = provenance_header(None, {f"FLAT{k + 1}": str(p) for k, p in enumerate(flat_paths)})
    out_header["INITIAL"] = ("blind (found on the flats)", "starting trace")
    out_header["NTRACES"] = (len(traces.coeffs), "order/fibre traces")
    with archive.atomic_path(destination.relative_to(archive.root)) as temp:
        traces.write(temp, out_header)
    return destination


def _solve_fibres(
    arc: ProcessedImage,
    flat: ProcessedImage,
    traces: TraceSet,
    fibres: Sequence[int],
    site: str,
    options: Options,
) -> dict[int, WavelengthSolution]:
    when = parse_dateobs(arc.path, str(arc.header["DATE-OBS"]))
    from astropy.time import Time

    spectrograph = instrument.spectrograph(site, float(Time(when).mjd))
    out = {}
    for fibre in fibres:
        keys = keys_on_image(arc, traces, (fibre,), options.half_width)
        if not keys:
            continue
        spectra = optimal_extract(arc, flat, traces, keys, options.half_width)
        lines = {
            key[0]: detect_lines(
                spectra.x,
                spectra.flux[i],
                spectra.variance[i],
                spectra.mask[i],
                options.line_threshold,
            )
            for i, key in enumerate(keys)
        }
        n_orders = len(keys)
        x_degree = min(options.x_degree, 3 if spectra.x.size <= 1024 else options.x_degree)
        if n_orders == 1:
            # one order's lines (≤ 30) hold a slope, not a curvature: the seed carries that
            x_degree = min(x_degree, 1)
        m_degree = min(options.m_degree, max(n_orders - 1, 0))
        out[fibre] = solve_wavelength(
            spectrograph,
            fibre,
            lines,
            instrument.thar_reference(),
            (float(spectra.x[0]), float(spectra.x[-1])),
            x_degree,
            m_degree,
        )
    return out


def make_triple(
    archive: Archive, database: Database, arc_paths: Sequence[Path], options: Options | None = None
) -> Path:
    """Wavelength solutions for all three fibres from the two arc stacks (the TRIPLE).

    Fibre 1 is lit in both arc pairs; its solution is taken from the pair with fibres 0+1.
    """
    options = options or Options()
    arcs = [read_image(path) for path in arc_paths]
    header = arcs[0].header
    site = str(header["SITEID"]).strip()
    instrument_name = str(header["TELESCOP"]).strip()
    camera = str(header["INSTRUME"]).strip()
    when = _mean_time([parse_dateobs(a.path, str(a.header["DATE-OBS"])) for a in arcs])
    trace_path = require_calibration(
        database, archive, arcs[0].path, instrument_name, "TRACE", when, "111"
    )
    traces = TraceSet.read(trace_path)
    solutions: dict[int, WavelengthSolution] = {}
    used = {"TRACFILE": str(trace_path)}
    for number, arc in enumerate(sorted(arcs, key=lambda a: str(a.header["FIBRES"]), reverse=True)):
        lit = str(arc.header["FIBRES"])
        flat_path = require_calibration(
            database, archive, arc.path, instrument_name, "FLAT", when, lit
        )
        used[f"FLAT{number + 1}"] = str(flat_path)
        used[f"ARC{number + 1}"] = str(arc.path)
        fibres = [f for f, c in enumerate(lit) if c == "1" and f not in solutions]
        solutions.update(_solve_fibres(arc, read_image(flat_path), traces, fibres, site, options))
    if not solutions:
        raise CalibrationError(
            f"no wavelength solution from {', '.join(p.name for p in arc_paths)}"
        )
    reduced = reduced_dir(archive, site, instrument_name)
    destination = (
        reduced / "trip" / _master_name(site, instrument_name, camera, when, "TRIPLE", None)
    )
    out_header = provenance_header(None, used)
    out_header["SITEID"], out_header["TELESCOP"], out_header["INSTRUME"] = (
        site,
        instrument_name,
        camera,
    )
    out_header["DATE-OBS"] = when.strftime("%Y-%m-%dT%H:%M:%S")
    with archive.atomic_path(destination.relative_to(archive.root)) as temp:
        write_triple(temp, solutions, out_header)
    figure = new_figure(10.0, 4.0)
    axes = figure.add_subplot(1, 1, 1)
    for fibre, solution in sorted(solutions.items()):
        label = (
            f"fibre {fibre}: {solution.n_lines} lines, {solution.rms_angstrom * 1e3:.2f} mÅ, "
            f"{solution.rms_ms:.1f} m/s, expected error {solution.precision_ms:.1f} m/s"
        )
        axes.plot(
            solution.lines["wavelength"], solution.lines["residual"] * 1e3, ".", ms=3, label=label
        )
    axes.axhline(0.0, color="k", lw=0.5)
    axes.set_xlabel("vacuum wavelength [Å]")
    axes.set_ylabel("residual [mÅ]")
    axes.set_title(destination.name)
    axes.legend(fontsize=8)
    with archive.atomic_path(
        (reduced / "diag" / destination.name.replace(".fits", ".png")).relative_to(archive.root)
    ) as temp:
        figure.savefig(temp, dpi=90, format="png")
    record_calibration(
        database,
        archive,
        ctype="TRIPLE",
        site=site,
        instrument_name=instrument_name,
        camera=camera,
        fibres="".join("1" if f in solutions else "0" for f in range(3)),
        dateobs=when,
        path=destination,
        n_frames=len(arcs),
        validity=timedelta(days=options.validity_days),
    )
    return destination


# --------------------------------------------------------------------------- science frames


@functools.lru_cache(maxsize=6)
def _cached_image(path: str, mtime_ns: int, size: int) -> ProcessedImage:
    return read_image(path)


def read_master(path: Path) -> ProcessedImage:
    """Read a master calibration image, kept in memory for the next frames of this process.

    The cache is keyed by path, modification time and size, so a rewritten master is re-read.
    Up to six masters (≈ 150 MB each at full size) are kept.
    """
    stat = Path(path).stat()
    return _cached_image(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=600)
def _cached_blaze(
    flat_path: str, mtime_ns: int, size: int, key: tuple[int, int], flat_bytes: bytes
) -> np.ndarray:
    del flat_path, mtime_ns, size, key  # identify the entry; the value depends on the flux only
    blaze = blaze_function(np.frombuffer(flat_bytes, dtype=np.float64))
    blaze.setflags(write=False)  # shared by every frame that asks
    return blaze


def master_blaze(flat_path: Path, key: tuple[int, int], flat_flux: np.ndarray) -> np.ndarray:
    """Return the smooth blaze of one trace of a master flat, fitted once per process.

    Every frame reduced with the same master flat has the same blaze; the spline fit costs
    ≈ 7 ms per order and fibre (≈ 1 s per full-size frame), so it is kept in memory, keyed like
    :func:`read_master` (path, modification time, size) plus the trace and the flat spectrum.
    """
    stat = Path(flat_path).stat()
    flux = np.ascontiguousarray(flat_flux, dtype=np.float64)
    return _cached_blaze(str(flat_path), stat.st_mtime_ns, stat.st_size, key, flux.tobytes())


def reduce_science(
    archive: Archive, database: Database, path: Path, options: Options | None = None
) -> dict[str, str]:
    """Reduce a science frame with the best calibrations: 1-D, 2-D and quicklook products.

    When a fibre other than the star's carries the Th-Ar lamp (OBJECTS ``star&thar&none``), the
    spectrograph's drift since the TRIPLE is measured on its lines
    (:func:`~photonpipe.echelle.drift.measure_drift`: one shift δx [px] along the dispersion)
    and, if good enough, the WAVELENGTH of every extracted fibre becomes λ_TRIPLE(x − δx). The
    1-D header records it (DRIFTCOR, DRIFTWHY, DRIFTFIB, DRIFTPX, DRIFTERR [px], DRIFTMS [m/s],
    DRIFTNL, DRIFTCHI); a frame whose drift cannot be measured keeps the TRIPLE's wavelengths,
    with the reason in DRIFTWHY, and is not failed.

    Returns
    -------
    dict
        Product paths (relative to the archive root) by kind.
    """
    options = options or Options()
    frame = read_raw(path)
    info = instrument.site_for_instrument(frame.instrument)
    if frame.site != info.site or frame.camera != info.camera:
        raise InputFileError(
            path, f"site {frame.site!r}/camera {frame.camera!r} do not belong to {frame.instrument}"
        )
    if frame.obstype != "TARGET":
        raise InputFileError(path, f"OBSTYPE {frame.obstype} is not a science frame")
    when = frame.dateobs
    lit = frame.fibres
    paths = {
        "BIASFILE": require_calibration(database, archive, path, frame.instrument, "BIAS", when),
        "DARKFILE": require_calibration(database, archive, path, frame.instrument, "DARK", when),
        "FLATFILE": require_calibration(
            database, archive, path, frame.instrument, "FLAT", when, lit
        ),
        "TRACFILE": require_calibration(
            database, archive, path, frame.instrument, "TRACE", when, "111"
        ),
        "TRIPFILE": require_calibration(
            database, archive, path, frame.instrument, "TRIPLE", when, "111"
        ),
    }
    bias, dark, flat = (read_master(paths[k]) for k in ("BIASFILE", "DARKFILE", "FLATFILE"))
    traces = TraceSet.read(paths["TRACFILE"])
    solutions = read_triple(paths["TRIPFILE"])
    image = preprocess(frame, bias, dark)
    fibres = tuple(f for f, c in enumerate(lit) if c == "1" and f in solutions)
    keys = keys_on_image(image, traces, fibres, options.half_width)
    if not keys:
        raise CalibrationError(f"{path}: no traced order of fibres {fibres} lies on the frame")
    optimal = optimal_extract(image, flat, traces, keys, options.half_width)
    box = box_extract(image, traces, keys, options.half_width)
    flat_flux = optimal.flat_flux
    if flat_flux is None:  # optimal_extract always sums the flat; a guard for the type checker
        raise CalibrationError(f"{paths['FLATFILE']}: no flat spectrum for the blaze")
    blaze = {key: master_blaze(paths["FLATFILE"], key, flat_flux[i]) for i, key in enumerate(keys)}
    parts = [part.strip().lower() for part in str(frame.header["OBJECTS"]).split("&")]
    science_fibre = next(
        (f for f, part in enumerate(parts) if part not in ("none", "thar", "tung")),
        fibres[0],
    )
    thar_fibre = next(
        (f for f, part in enumerate(parts) if part == "thar" and f != science_fibre), None
    )
    drift = measure_drift(
        optimal,
        solutions,
        thar_fibre,
        science_fibre,
        options.drift_threshold,
        options.drift_min_lines,
    )
    if drift.applied:
        log.info(
            "%s: drift %.4f ± %.4f px (%.1f m/s) from %d Th-Ar lines",
            path.name,
            drift.shift_px,
            drift.error_px,
            drift.velocity_ms,
            drift.n_lines,
        )
    else:
        log.warning("%s: no drift correction: %s", path.name, drift.reason)
    shifts = dict.fromkeys(fibres, drift.shift_px) if drift.applied else None
    table = spectrum_table(optimal, box, blaze, solutions, shifts)
    header = provenance_header(path, {k: str(v) for k, v in paths.items()})
    for key in (
        "OBJECTS",
        "DATE-OBS",
        "DAY-OBS",
        "EXPTIME",
        "SITEID",
        "TELESCOP",
        "INSTRUME",
        "RA",
        "DEC",
        "MJD-OBS",
        "LONG1",
        "LAT1",
        "HT1",
    ):
        if key in frame.header:
            header[key] = frame.header[key]
    header["OBSTYPE"] = "TARGET"
    header["RLEVEL"] = (91, "reduction level")
    header["SCIFIBRE"] = (science_fibre, "fibre carrying the star")
    drift_cards(header, drift)
    # the flux-weighted mid-time goes into the header: re-measuring an RV needs only the 1-D file
    midpoint_cards(
        header,
        path,
        read_exposure_meter(path),
        science_fibre,
        Time(frame.dateobs, scale="utc"),
        float(frame.header["EXPTIME"]),
    )
    for fibre, solution in solutions.items():
        header[f"WRMS{fibre}"] = (solution.rms_ms, f"fibre {fibre}: wavelength solution RMS [m/s]")
    reduced = reduced_dir(archive, frame.site, frame.instrument)
    stem = product_stem(path)
    products = {
        "1d": reduced / "spec" / f"{stem}-1d.fits",
        "2d": reduced / "spec" / f"{stem}-2d.fits",
        "quicklook": reduced / "plot" / f"{stem}.png",
    }
    # radial velocity against the chosen ZERO; an unusable RV is flagged with its reason
    velocity = frame_velocity(archive, database, products["1d"], header, table.data)
    rv_header_cards(header, velocity)
    if velocity.needs_template:
        # not a fault: `echelle night` makes a ZERO of a star seen twice or more that night
        log.info("%s: no RV yet: %s", path.name, velocity.reason)
    elif velocity.reason:
        log.warning("%s: no RV: %s", path.name, velocity.reason)
    with archive.atomic_path(products["1d"].relative_to(archive.root)) as temp:
        fits.HDUList([fits.PrimaryHDU(header=header), table]).writeto(temp)
    products["rv"] = write_velocity(archive, database, products["1d"], header, velocity)
    with archive.atomic_path(products["2d"].relative_to(archive.root)) as temp:
        write_image(temp, image, header)
    with archive.atomic_path(products["quicklook"].relative_to(archive.root)) as temp:
        quicklook(temp, f"{path.name}  {frame.header['OBJECTS']}", table, solutions, science_fibre)
    return {kind: archive.relative(p) for kind, p in products.items()}


def product_stem(raw: Path) -> str:
    """Stem of a science frame's products (``…-e00.fits.fz`` → ``…-e91``)."""
    return raw.name.replace(".fits.fz", "").replace(".fits", "").replace("-e00", "-e91")


def _archive_and_database(payload: dict[str, Any]) -> tuple[Archive, Database]:
    return Archive(payload["root"]), payload["database"]


def reduce_frame_unit(payload: dict[str, Any]) -> dict[str, Any]:
    """Work unit: check any raw frame; reduce it if it is a science frame.

    Calibration frames are only checked (they become inputs of master stacks).
    """
    archive, database = _archive_and_database(payload)
    path = Path(payload["path"])
    info = frame_info(path)
    if info.ctype is not None:
        read_raw(path)  # decompress once: a truncated file fails here, not in a stack
        return {"type": info.ctype, "fibres": info.fibres}
    return {
        "type": "SCIENCE",
        "products": reduce_science(archive, database, path, payload.get("options")),
    }


def reduce_files(
    archive: Archive,
    database: Database,
    paths: Sequence[Path],
    settings: Any | None = None,
    workers: int | None = None,
    progress: bool | None = None,
) -> BatchReport:
    """Run :func:`reduce_frame_unit` over files through the ledger (kind ``echelle.frame``)."""
    options = Options.from_settings(settings)
    units = [
        WorkUnit(
            key=str(Path(p).resolve()),
            payload={
                "root": str(archive.root),
                "database": database,
                "path": str(Path(p).resolve()),
                "options": options,
            },
            checksum=file_checksum(p) if Path(p).exists() else None,
        )
        for p in paths
    ]
    return run_work_units(
        reduce_frame_unit,
        units,
        kind=KIND,
        database=database,
        settings=settings,
        workers=workers,
        progress=progress,
    )


@dataclass
class NightVelocity:
    """The RV of one science frame of a night (from its 1-D product), or why it has none."""

    spectrum: Path
    target: str
    rv_kms: float | None
    error_kms: float | None
    template: str | None
    reason: str | None

    @classmethod
    def read(cls, spectrum: Path) -> NightVelocity:
        """Read the RV keywords of a 1-D product."""
        header = fits.getheader(spectrum)
        rv = header.get("RV")
        return cls(
            spectrum,
            str(header.get("RVTARGET", "unknown")),
            None if rv is None else float(rv),
            None if rv is None else float(header["RVERR"]),
            header.get("ZEROFILE"),
            None if rv is not None else str(header.get("RVFLAG", "no RV")),
        )

    def line(self) -> str:
        """One line: ``HR7913 RV 3.70512 ± 0.00512 km/s`` or ``no RV: reason``."""
        if self.rv_kms is None or self.error_kms is None:
            return f"no RV: {self.reason}"
        return f"{self.target} RV {self.rv_kms:.5f} ± {self.error_kms:.5f} km/s"


@dataclass
class NightReport:
    """What :func:`reduce_night` did.

    ``velocities`` holds, per science frame (same keys as ``products``), its RV; ``zeros`` the
    ZERO templates made from the night's frames (:func:`~photonpipe.echelle.rv.night_zeros`);
    ``targets`` the stars added to the registry from ``reduced/csv/targets.csv``.
    """

    masters: list[Path] = field(default_factory=list)
    products: dict[str, dict[str, str]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    velocities: dict[str, NightVelocity] = field(default_factory=dict)
    zeros: list[Path] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Return whether nothing failed."""
        return not self.failed

    def summary(self) -> str:
        """Return one line: calibrations made, frames reduced, RVs measured, failures."""
        measured = sum(v.rv_kms is not None for v in self.velocities.values())
        return (
            f"{len(self.masters)} calibration products, {len(self.products)} science frames "
            f"reduced, {measured} RVs, {len(self.failed)} failed"
        )


def reduce_night(
    archive: Archive,
    database: Database,
    site: str,
    instrument_name: str,
    day_obs: str,
    settings: Any | None = None,
    workers: int | None = None,
    progress: bool | None = None,
) -> NightReport:
    """Reduce a night in order: biases → darks → flats → traces → arcs (TRIPLE) → science → RVs.

    Every raw frame is a ledger unit: calibration frames are checked (bad ones are recorded and
    left out of the stacks), science frames reduced. A failing stage is reported and the stages
    that do not need it still run. Before the science frames, the stars of the instrument's
    ``reduced/csv/targets.csv`` that the registry lacks are added
    (:func:`~photonpipe.echelle.rv.register_site_targets`); after them, a star observed at
    least twice with no ZERO gets one made from the night's frames, and their RVs measured with
    it (:func:`~photonpipe.echelle.rv.night_zeros`).

    Parameters
    ----------
    progress : bool, optional
        Progress bars (the night's steps, and the frames of each batch); default: on a
        terminal, otherwise one summary line per batch and one for the night.
    """
    options = Options.from_settings(settings)
    day_obs = day_obs.replace("-", "")
    info = instrument.site_for_instrument(instrument_name)
    if info.site != site:
        raise PhotonpipeError(f"{instrument_name} is at {info.site}, not {site}")
    report = NightReport()
    files = raw_files(archive, site, instrument_name, day_obs)
    if not files:
        raise PhotonpipeError(
            f"no raw frames in {archive.path(site, instrument_name, day_obs, 'raw')}"
        )
    steps = ("check", "BIAS", "DARK", "FLAT", "traces", "ARC", "TRIPLE", "science", "RVs")
    description = f"echelle night {site}/{instrument_name} {day_obs}"
    with Progress(len(steps), description, "step", enabled=progress, logger=log) as bar:
        _night_steps(
            archive, database, report, files, info, options, settings, workers, progress, bar
        )
    return report


def _night_steps(
    archive: Archive,
    database: Database,
    report: NightReport,
    files: list[Path],
    info: instrument.Site,
    options: Options,
    settings: Any | None,
    workers: int | None,
    progress: bool | None,
    bar: Progress,
) -> None:
    site, instrument_name = info.site, info.instrument
    infos: list[FrameInfo] = []
    for path in files:
        try:
            infos.append(frame_info(path))
        except InputFileError as exc:
            infos.append(
                FrameInfo(
                    path,
                    "UNKNOWN",
                    None,
                    "000",
                    datetime.min.replace(tzinfo=UTC),
                    site,
                    instrument_name,
                    info.camera,
                )
            )
            report.failed[str(path)] = str(exc)
    bar.set_status("checking calibration frames")
    calibration_files = [i.path for i in infos if i.ctype is not None]
    checked = reduce_files(archive, database, calibration_files, settings, workers, progress)
    report.failed.update(checked.failed)
    bar.update(1)
    good = [i for i in infos if i.ctype is not None and str(i.path.resolve()) not in checked.failed]
    if not good:
        report.failed.setdefault("calibrations", "no usable calibration frames")
        bar.update(6)
    else:
        start = min(i.dateobs for i in good) - timedelta(minutes=1)
        end = max(i.dateobs for i in good) + timedelta(minutes=1)
        flats: list[Path] = []
        arcs: list[Path] = []
        for ctype in ("BIAS", "DARK", "FLAT"):
            bar.set_status(f"{ctype} masters")
            try:
                result = stack_calibration(
                    archive,
                    database,
                    site=site,
                    camera=info.camera,
                    instrument_name=instrument_name,
                    ctype=ctype,
                    start=start,
                    end=end,
                    options=options,
                )
            except PhotonpipeError as exc:
                report.failed[f"{ctype} stack"] = str(exc)
                bar.update(1)
                continue
            report.masters += result.masters
            if ctype == "FLAT":
                flats = result.masters
            bar.update(1)
        bar.set_status("traces")
        if len(flats) >= 1:
            try:
                report.masters.append(make_traces(archive, database, flats, options=options))
            except PhotonpipeError as exc:
                report.failed["traces"] = str(exc)
        bar.update(1)
        bar.set_status("ARC masters")
        try:
            result = stack_calibration(
                archive,
                database,
                site=site,
                camera=info.camera,
                instrument_name=instrument_name,
                ctype="ARC",
                start=start,
                end=end,
                options=options,
            )
            report.masters += result.masters
            arcs = result.masters
        except PhotonpipeError as exc:
            report.failed["ARC stack"] = str(exc)
        bar.update(1)
        bar.set_status("TRIPLE wavelength solution")
        if arcs:
            try:
                report.masters.append(make_triple(archive, database, arcs, options))
            except PhotonpipeError as exc:
                report.failed["TRIPLE"] = str(exc)
        bar.update(1)
    science = [i.path for i in infos if i.obstype == "TARGET"]
    bar.set_status("science frames")
    if science:
        report.targets = register_site_targets(archive, database, site, instrument_name)
        batch = reduce_files(archive, database, science, settings, workers, progress)
        report.failed.update(batch.failed)
        for key, result in batch.results.items():
            report.products[key] = result["products"]
    bar.update(1)
    bar.set_status("radial velocities")
    spectra = {
        str(path.resolve()): archive.path(
            site, instrument_name, "reduced", "spec", f"{product_stem(path)}-1d.fits"
        )
        for path in science
    }
    made = night_zeros(archive, database, [p for p in spectra.values() if p.is_file()])
    report.zeros = made.zeros
    for key, spectrum in spectra.items():
        if spectrum.is_file():
            report.velocities[key] = NightVelocity.read(spectrum)
    bar.update(1)
