"""Echelle science frames: reduction with the best calibrations, and the frame ledger units.

Science frames with a simultaneous Th-Ar fibre have the spectrograph's drift since the TRIPLE
measured on that fibre and corrected in their wavelengths (:mod:`photonpipe.echelle.drift`).
Frames go through the work-unit ledger (kind ``echelle.frame``), so a bad frame is recorded with
its error and the night goes on.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.time import Time

from photonpipe.echelle import instrument
from photonpipe.echelle.calibrations import frame_info, reduced_dir, require_calibration
from photonpipe.echelle.drift import drift_cards, measure_drift
from photonpipe.echelle.expmeter import midpoint_cards, read_exposure_meter
from photonpipe.echelle.extract import (
    blaze_function,
    box_extract,
    keys_on_image,
    optimal_extract,
)
from photonpipe.echelle.formats import read_raw
from photonpipe.echelle.preprocess import ProcessedImage, preprocess, read_image, write_image
from photonpipe.echelle.products import (
    provenance_header,
    quicklook,
    read_triple,
    spectrum_table,
)
from photonpipe.echelle.rv import frame_velocity, rv_header_cards, write_velocity
from photonpipe.echelle.settings import Options
from photonpipe.echelle.stacking import CalibrationError
from photonpipe.echelle.traces import TraceSet
from photonpipe.errors import InputFileError
from photonpipe.platform.archive import Archive
from photonpipe.platform.db import Database
from photonpipe.platform.executor import BatchReport, run_work_units
from photonpipe.platform.ledger import WorkUnit, file_checksum

# the pipeline's logger name is kept, so log lines read as before the split
log = logging.getLogger("photonpipe.echelle.pipeline")

KIND = "echelle.frame"


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
