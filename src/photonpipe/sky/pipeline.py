"""``photonpipe sky build``: BOSS plate directories → sky dataset, plates as resumable work units.

A plate directory (``{input}/{plate}/``, as in the BOSS redux tree) holds, for each exposure and
camera, ``spFrame``, ``spCFrame`` and ``spFluxcalib`` files. One work unit converts one plate:

1. group the files by exposure and check every exposure has all cameras (``sky.cameras``) and
   each spFrame its spCFrame and spFluxcalib;
2. convert the sky fibres of every frame to flux (:mod:`photonpipe.sky.flux`);
3. compute the observing conditions once for the plate: one ephemeris call for all exposures,
   fibre coordinates for all fibres (:mod:`photonpipe.sky.conditions`);
4. write ``spectra/{plate}.h5`` and ``metadata/{plate}.parquet`` atomically
   (:mod:`photonpipe.sky.storage`).

Units run through :func:`photonpipe.platform.executor.run_work_units` (kind ``sky.build``): a
re-run skips plates done with unchanged inputs, redoes plates whose inputs changed (fingerprint
per ``sky.checksum``), and a bad plate fails alone with the reason in the ledger.
"""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from astropy.io.fits.card import Undefined

import photonpipe.sky.settings  # noqa: F401  (registers the "sky" settings section)
from photonpipe import __version__
from photonpipe.errors import InputFileError
from photonpipe.platform.archive import Archive
from photonpipe.platform.config import Settings
from photonpipe.platform.db import Database
from photonpipe.platform.executor import BatchReport, run_work_units
from photonpipe.platform.ledger import WorkUnit, file_checksum
from photonpipe.platform.logs import get_logger
from photonpipe.sky.analysis import CameraSpectra, analyse_plate_spectra, write_airglow, write_means
from photonpipe.sky.conditions import angular_separation_deg, exposure_conditions, fibre_coordinates
from photonpipe.sky.flux import SkyFibreSpectra, calibrate_sky_fibres
from photonpipe.sky.formats import (
    HEADER_KEYWORDS,
    SpFrame,
    frame_name,
    parse_name,
    read_spcframe_mask_loglam,
    read_spfluxcalib,
    read_spframe,
)
from photonpipe.sky.lines import read_features
from photonpipe.sky.storage import write_plate

log = get_logger(__name__)

KIND = "sky.build"
_STRING_KEYS = {"CAMERAS", "DATE-OBS", "QUALITY"}
_INT_KEYS = {"PLATEID", "MJD", "EXPOSURE"}


@dataclass(frozen=True)
class BuildOptions:
    """Options of a build (picklable; travels with every work unit).

    Attributes
    ----------
    wave_ranges_nm : dict of str to (float, float)
        Window per arm (``b``, ``r``) [nm].
    reject_flags : tuple of str
        SPPIXMASK flags set to NaN.
    flux_scale : float
        Factor on the flux.
    cameras : tuple of str
        Cameras every exposure must have.
    analyse : bool
        Also measure line strengths, sky brightness, mean spectra and their airglow/continuum
        separation (:mod:`photonpipe.sky.analysis`).
    line_windows : str, optional
        Line/continuum-point configuration file (default: the packaged one).
    """

    wave_ranges_nm: dict[str, tuple[float, float]]
    reject_flags: tuple[str, ...]
    flux_scale: float = 1.0
    cameras: tuple[str, ...] = ("b1", "b2", "r1", "r2")
    analyse: bool = True
    line_windows: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> BuildOptions:
        """Options from the ``sky.*`` settings."""
        return cls(
            wave_ranges_nm={
                "b": (settings["sky.blue_min_nm"], settings["sky.blue_max_nm"]),
                "r": (settings["sky.red_min_nm"], settings["sky.red_max_nm"]),
            },
            reject_flags=tuple(f.strip() for f in settings["sky.reject_flags"].split(",") if f),
            flux_scale=settings["sky.flux_scale"],
            cameras=tuple(c.strip() for c in settings["sky.cameras"].split(",") if c),
            analyse=settings["sky.analysis"],
            line_windows=str(settings["sky.line_windows"])
            if settings["sky.line_windows"]
            else None,
        )


def plate_directories(input_dir: str | os.PathLike[str]) -> list[Path]:
    """Plate directories under ``input_dir``: sub-directories holding spFrame files, sorted.

    Parameters
    ----------
    input_dir : path
        Root of the input tree (the directory itself counts when it holds spFrame files).
    """
    root = Path(input_dir)
    if not root.is_dir():
        raise InputFileError(root, "input directory not found")
    plates = [d for d in sorted(root.iterdir()) if d.is_dir() and any(d.glob("spFrame-*"))]
    if not plates and any(root.glob("spFrame-*")):
        plates = [root]
    return plates


def plate_fingerprint(directory: Path, mode: str = "stat") -> str:
    """Fingerprint of a plate directory's BOSS files.

    Parameters
    ----------
    directory : pathlib.Path
        Plate directory.
    mode : {"stat", "content"}
        ``stat``: names, sizes and modification times (cheap; a rewritten file changes its
        mtime); ``content``: SHA-256 of the contents (reads every byte).
    """
    files = sorted(p for p in directory.iterdir() if parse_name(p) is not None)
    if mode == "content":
        return file_checksum(*files)
    digest = hashlib.sha256()
    for path in files:
        stat = path.stat()
        digest.update(f"{path.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return "stat:" + digest.hexdigest()


def _group_exposures(directory: Path, cameras: tuple[str, ...]) -> dict[int, dict[str, Path]]:
    frames: dict[int, dict[str, Path]] = defaultdict(dict)
    for path in sorted(directory.iterdir()):
        parsed = parse_name(path)
        if parsed is not None and parsed[0] == "spFrame":
            frames[parsed[2]][parsed[1]] = path
    if not frames:
        raise InputFileError(directory, "no spFrame files")
    for exposure, by_camera in sorted(frames.items()):
        missing = [c for c in cameras if c not in by_camera]
        if missing:
            present = next(iter(by_camera.values()))
            raise InputFileError(
                present,
                f"exposure {exposure} lacks camera(s) {', '.join(missing)} "
                f"(has {', '.join(sorted(by_camera))})",
            )
    return dict(sorted(frames.items()))


def _companion(frame_path: Path, kind: str) -> Path:
    parsed = parse_name(frame_path)
    assert parsed is not None
    for gz in (False, True):
        candidate = frame_path.with_name(frame_name(kind, parsed[1], parsed[2], gzip=gz))
        if candidate.exists():
            return candidate
    raise InputFileError(frame_path, f"no matching {kind} file")


def _header_value(frame: SpFrame, key: str) -> Any:
    value = frame.header.get(key)
    if value is None or isinstance(value, Undefined):
        return None
    if key in _STRING_KEYS:
        return str(value).strip()
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if not np.isfinite(number):
        return None
    return int(number) if key in _INT_KEYS else number


def _nullable(values: np.ndarray) -> list[float | None]:
    return [None if not np.isfinite(v) else float(v) for v in np.asarray(values, dtype=float)]


def build_plate(payload: dict[str, Any]) -> dict[str, Any]:
    """Convert one plate directory into the dataset (the work function of ``sky.build``).

    Parameters
    ----------
    payload : dict
        ``plate_dir`` (str), ``output_dir`` (str), ``options`` (:class:`BuildOptions`).

    Returns
    -------
    dict
        ``plate``, ``exposures``, ``spectra`` (number written).

    Raises
    ------
    InputFileError
        Bad input (corrupt or incomplete files, missing cameras, no sky fibres), naming the file.
    """
    directory = Path(payload["plate_dir"])
    options: BuildOptions = payload["options"]
    exposures = _group_exposures(directory, options.cameras)
    frames: list[tuple[int, str, SpFrame, SkyFibreSpectra]] = []
    for exposure, by_camera in exposures.items():
        for camera in options.cameras:
            path = by_camera[camera]
            frame = read_spframe(path)
            if frame.camera != camera or frame.exposure != exposure:
                raise InputFileError(
                    path,
                    f"header says camera {frame.camera} exposure {frame.exposure}, "
                    f"the name {camera} {exposure}",
                )
            _, calibration = read_spfluxcalib(
                _companion(path, "spFluxcalib"), shape=frame.flux.shape
            )
            cframe = read_spcframe_mask_loglam(_companion(path, "spCFrame"))
            spectra = calibrate_sky_fibres(
                frame,
                calibration,
                cframe,
                wave_range_nm=options.wave_ranges_nm[camera[0]],
                reject_flags=options.reject_flags,
                flux_scale=options.flux_scale,
            )
            frames.append((exposure, camera, frame, spectra))

    plates = {int(f.header["PLATEID"]) for _, _, f, _ in frames}
    if len(plates) != 1:
        raise InputFileError(directory, f"frames of several plates: {sorted(plates)}")
    plate = plates.pop()

    # One ephemeris evaluation for all exposures of the plate.
    exposure_ids = list(exposures)
    first = {e: next(f for x, _, f, _ in frames if x == e) for e in exposure_ids}
    for f in first.values():
        for key in ("TAI-BEG", "TAI-END"):
            if _header_value(f, key) is None:
                raise InputFileError(f.path, f"primary header lacks {key}")
    conditions = exposure_conditions(
        [float(first[e].header["TAI-BEG"]) for e in exposure_ids],
        [float(first[e].header["TAI-END"]) for e in exposure_ids],
    )
    exposure_index = {e: i for i, e in enumerate(exposure_ids)}

    # Fibre coordinates once for every sky fibre of the plate.
    fibre_pos: dict[int, tuple[float, float]] = {}
    for _, _, frame, spectra in frames:
        for row, fid in zip(spectra.rows, spectra.fiberid, strict=True):
            fibre_pos[int(fid)] = (
                float(frame.plugmap["RA"][row]),
                float(frame.plugmap["DEC"][row]),
            )
    fibre_ids = sorted(fibre_pos)
    coords = fibre_coordinates(
        [fibre_pos[f][0] for f in fibre_ids], [fibre_pos[f][1] for f in fibre_ids]
    )
    fibre_index = {f: i for i, f in enumerate(fibre_ids)}

    analysis_columns: dict[tuple[int, str], dict[str, list[Any]]] = {}
    attributes = {
        "photonpipe_version": __version__,
        "plate": str(plate),
        "input": str(directory),
        "inputs": ",".join(p.name for by in exposures.values() for p in by.values()),
        "options": repr(options),
    }
    archive = Archive(Path(payload["output_dir"]))
    if options.analyse:
        features = read_features(options.line_windows)
        cameras = [
            CameraSpectra(
                exposure,
                camera,
                spectra.fiberid,
                spectra.wavelength_nm,
                spectra.flux,
                spectra.ivar,
                spectra.dispersion,
                options.wave_ranges_nm[camera[0]],
            )
            for exposure, camera, _, spectra in frames
        ]
        analysis_columns, means, airglow = analyse_plate_spectra(cameras, features)
        write_means(archive, plate, means, attributes)
        write_airglow(archive, plate, airglow, attributes)

    columns: dict[str, list[Any]] = defaultdict(list)
    arrays: dict[str, dict[str, list[Any]]] = {"b": defaultdict(list), "r": defaultdict(list)}
    specno = 0
    for exposure, camera, frame, spectra in frames:
        arm = camera[0]
        k = exposure_index[exposure]
        header_values = {key: _header_value(frame, key) for key in HEADER_KEYWORDS}
        for i, row in enumerate(spectra.rows):
            fid = int(spectra.fiberid[i])
            j = fibre_index[fid]
            ra, dec = fibre_pos[fid]
            plug = frame.plugmap[row]
            columns["PLATE"].append(plate)
            columns["SPECNO"].append(specno)
            columns["IMG"].append(exposure)
            columns["FIB"].append(fid)
            columns["ARM"].append(arm)
            columns["ROW"].append(len(arrays[arm]["specno"]))
            columns["XFOCAL"].append(float(plug["XFOCAL"]))
            columns["YFOCAL"].append(float(plug["YFOCAL"]))
            columns["FIBER_RA"].append(ra)
            columns["FIBER_DEC"].append(dec)
            columns["OBJTYPE"].append(str(plug["OBJTYPE"]).strip())
            for key, value in header_values.items():
                if key != "PLATEID":
                    columns[key].append(value)
            for key, values in conditions.items():
                columns[key.upper()].append(float(values[k]))
            columns["MOON_SEP"].append(
                float(
                    angular_separation_deg(
                        ra, dec, conditions["moon_ra"][k], conditions["moon_dec"][k]
                    )
                )
            )
            columns["SUN_SEP"].append(
                float(
                    angular_separation_deg(
                        ra, dec, conditions["sun_ra"][k], conditions["sun_dec"][k]
                    )
                )
            )
            columns["ECL_LON"].append(float(coords.ecl_lon[j]))
            columns["ECL_LAT"].append(float(coords.ecl_lat[j]))
            columns["GAL_L"].append(float(coords.gal_l[j]))
            columns["GAL_B"].append(float(coords.gal_b[j]))
            columns["ZODI"].append(float(coords.zodiacal[j]))
            columns["ISL"].append(float(coords.isl[j]))
            for name, measured in analysis_columns.get((exposure, camera), {}).items():
                columns[name].append(measured[i])
            arrays[arm]["specno"].append(specno)
            arrays[arm]["flux"].append(spectra.flux[i])
            arrays[arm]["ivar"].append(spectra.ivar[i])
            arrays[arm]["wavelength"].append(spectra.wavelength_nm[i])
            arrays[arm]["mask"].append(spectra.mask[i])
            arrays[arm]["dispersion"].append(spectra.dispersion[i])
            specno += 1

    fields = []
    for name, raw in columns.items():
        if name in ("ARM", "OBJTYPE") or name in _STRING_KEYS or name.endswith("_FLAG"):
            fields.append(pa.array(raw, type=pa.string()))
        elif name in ("PLATE", "SPECNO", "IMG", "FIB", "ROW") or name in _INT_KEYS:
            fields.append(pa.array(raw, type=pa.int64()))
        else:
            floats = np.array([np.nan if v is None else v for v in raw], dtype=np.float64)
            fields.append(pa.array(_nullable(floats), type=pa.float64()))
    table = pa.Table.from_arrays(fields, names=list(columns))
    stacked = {
        arm: {
            name: np.stack(values) if name != "specno" else np.asarray(values)
            for name, values in data.items()
        }
        for arm, data in arrays.items()
        if data["specno"]
    }
    write_plate(archive, plate, stacked, table, attributes)
    log.info("plate %d: %d sky spectra from %d exposures", plate, specno, len(exposures))
    return {"plate": plate, "exposures": len(exposures), "spectra": specno}


def build_sky_dataset(
    input_dir: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    *,
    database: Database,
    settings: Settings,
    retry_failed: bool = False,
    progress: bool | None = None,
    backend: str | None = None,
    workers: int | None = None,
) -> BatchReport:
    """Build (or continue building) a sky dataset from BOSS plate directories.

    Parameters
    ----------
    input_dir : path
        Root holding one directory per plate.
    output_dir : path
        Dataset root (created).
    database : Database
        Holds the ledger.
    settings : Settings
        ``sky.*`` options and the executor settings.
    retry_failed : bool
        Give failed plates new tries.
    progress : bool, optional
        Progress bar (default: on a terminal).
    backend, workers : optional
        Override ``executor.backend`` and ``executor.workers``.

    Returns
    -------
    BatchReport
        Keys are plate directory paths relative to ``input_dir``.
    """
    options = BuildOptions.from_settings(settings)
    if options.analyse:
        read_features(options.line_windows)  # a bad line list stops here, not in every plate
    output = Path(output_dir).resolve()
    Archive(output).create()
    root = Path(input_dir).resolve()
    units = [
        WorkUnit(
            key=f"{output}:{directory.relative_to(root) if directory != root else directory.name}",
            payload={"plate_dir": str(directory), "output_dir": str(output), "options": options},
            checksum=plate_fingerprint(directory, settings["sky.checksum"]),
        )
        for directory in plate_directories(root)
    ]
    return run_work_units(
        build_plate,
        units,
        kind=KIND,
        database=database,
        settings=settings,
        retry_failed=retry_failed,
        progress=progress,
        backend=backend,
        workers=workers,
    )
