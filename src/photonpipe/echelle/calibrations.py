"""Echelle calibrations: master records, a night's raw frames, master stacks, traces, TRIPLE.

Data tree (LCO's layout): raw frames under ``{root}/{site}/{nresNN}/{YYYYMMDD}/raw/``; products
under ``{root}/{site}/{nresNN}/reduced/`` with the sub-directories of :data:`REDUCED_SUBDIRS`
(masters in ``bias``, ``dark``, ``flat``, ``dble`` (arc stacks), ``trip`` (TRIPLE wavelength
solutions), ``trace``; science products in ``spec`` (1-D and 2-D), quicklooks in ``plot``, arc
residual figures in ``diag``).

Every master is recorded in table ``echelle_calibration``; a frame's calibrations are chosen by
:func:`best_calibration`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from astropy.time import Time
from sqlalchemy import select

from photonpipe.echelle import instrument
from photonpipe.echelle.blind import blind_traces
from photonpipe.echelle.extract import (
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
    write_triple,
)
from photonpipe.echelle.settings import Options
from photonpipe.echelle.stacking import CalibrationError, stack_images
from photonpipe.echelle.traces import TraceSet, initial_traces, refine_traces
from photonpipe.echelle.wavecal import WavelengthSolution, detect_lines, solve_wavelength
from photonpipe.errors import InputFileError
from photonpipe.platform.archive import Archive
from photonpipe.platform.db import Database, upsert
from photonpipe.platform.plots import new_figure
from photonpipe.platform.progress import Progress

# the pipeline's logger name is kept, so log lines read as before the split
log = logging.getLogger("photonpipe.echelle.pipeline")

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
#: How long a master stays valid either side of its observation date (setting default).
DEFAULT_VALIDITY = timedelta(days=Options.validity_days)


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


def _night_dirs(base: Path, start: datetime, end: datetime) -> list[str]:
    """Night directories (DAY-OBS ``YYYYMMDD``) that can hold frames observed in [start, end].

    A frame's DAY-OBS is its local night, within a day of its UTC DATE-OBS; a directory whose
    name is not a date is kept (its frames are checked by their headers).
    """
    first, last = (start - timedelta(days=1)).date(), (end + timedelta(days=1)).date()
    names = []
    for directory in sorted(base.glob("*/raw")):
        name = directory.parent.name
        try:
            day = datetime.strptime(name, "%Y%m%d").date()
        except ValueError:
            names.append(name)
            continue
        if first <= day <= last:
            names.append(name)
    return names


@dataclass
class NightFrames:
    """The raw frames of one night or time window, each header read once.

    Attributes
    ----------
    frames : list of FrameInfo
        Frames with a readable header, sorted by path.
    unreadable : dict
        Error per frame whose header could not be read (key: the path as text).
    """

    frames: list[FrameInfo] = field(default_factory=list)
    unreadable: dict[str, str] = field(default_factory=dict)

    @classmethod
    def read(cls, paths: Sequence[Path]) -> NightFrames:
        """Read the headers of ``paths`` (once each)."""
        out = cls()
        for path in paths:
            try:
                out.frames.append(frame_info(path))
            except InputFileError as exc:
                out.unreadable[str(path)] = str(exc)
        return out

    @classmethod
    def of_window(
        cls, archive: Archive, site: str, instrument_name: str, start: datetime, end: datetime
    ) -> NightFrames:
        """Frames of the nights that can hold observations in [start, end] (not every night)."""
        base = archive.path(site, instrument_name)
        paths: list[Path] = []
        for night in _night_dirs(base, start, end):
            paths += raw_files(archive, site, instrument_name, night)
        return cls.read(paths)

    def select(self, ctype: str, camera: str, start: datetime, end: datetime) -> list[FrameInfo]:
        """Return the frames of a calibration type and camera observed in [start, end]."""
        return [
            info
            for info in self.frames
            if info.ctype == ctype and info.camera == camera and start <= info.dateobs <= end
        ]


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
    frames: NightFrames | None = None,
) -> StackResult:
    """Stack the BIAS, DARK, FLAT or ARC frames observed in [start, end] into masters.

    FLAT and ARC frames are stacked per lit-fibre pair. DARK frames are bias-subtracted, FLAT and
    ARC frames bias- and dark-subtracted with the best masters for their time. After an ARC stack,
    the TRIPLE wavelength solution is made when both arc pairs, both flats and a trace are
    available (:func:`make_triple`). ``progress`` (optional) counts the frames read (its total
    grows by the frames found). ``frames`` (optional): the night's frames with their headers,
    read once by the caller; default: the frames of the nights around [start, end].

    Raises
    ------
    CalibrationError
        No frames, too few frames, or a needed master missing.
    """
    options = options or Options()
    validity = timedelta(days=options.validity_days)
    if frames is None:
        frames = NightFrames.of_window(archive, site, instrument_name, start, end)
    skipped = dict(frames.unreadable)
    members_found = frames.select(ctype, camera, start, end)
    if not members_found:
        raise CalibrationError(
            f"no {ctype} frames of {site}/{instrument_name}/{camera} between "
            f"{start:%Y-%m-%dT%H:%M} and {end:%Y-%m-%dT%H:%M}"
        )
    if progress is not None:
        progress.add_total(len(members_found))
    groups: dict[str, list[FrameInfo]] = {}
    for info in members_found:
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
