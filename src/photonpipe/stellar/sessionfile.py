"""The ``.smh`` session file: a gzipped tarball of ``session.pkl`` and the files it refers to.

Layout (flat; no directories inside the tarball):

* ``session.pkl`` -- the session's descriptive state, a dict of plain data pickled with protocol
  2 (see :mod:`photonpipe.stellar.safe_pickle` for what "plain" means);
* the input spectra, byte-identical to the files the session was created from, under their
  basenames (listed in ``input_spectra_filenames``);
* ancillary files (RV templates, line lists) under their basenames (listed in
  ``ancillary_files``).

Reading is defensive because session files travel between people: the gzip stream is read
through a byte counter (a decompression bomb stops at :attr:`SessionLimits.max_total_bytes`),
members must be regular files with plain basenames (absolute paths, ``..``, directories,
symbolic and hard links, devices and FIFOs are refused), member sizes and counts are bounded, and
``session.pkl`` is read with the restricted unpickler. Writing is atomic: the tarball is written
to a temporary file next to the destination, fsynced and renamed over it.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import math
import os
import secrets
import tarfile
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from photonpipe.errors import InputFileError, PhotonpipeError
from photonpipe.platform.archive import naming_the_file
from photonpipe.stellar.safe_pickle import UnsafePickleError, dumps_plain, loads_plain

SESSION_PICKLE = "session.pkl"

#: Current layout of ``session.pkl``. History: 1 = the draft SMH data model (key
#: ``input_spectra_paths``, no ``schema_version``, no ``physics``/``notes`` sections);
#: 2 = this package's layout before abundances; 3 = with ``abundances``, stellar-parameter
#: methods and per-measurement abundances (see docs/stellar.md).
SCHEMA_VERSION = 3

#: Sections every schema-2 state has, with their empty values.
SECTIONS: dict[str, Any] = {
    "input_spectra_filenames": [],
    "input_spectra_sha256": {},
    "order_sources": [],
    "discarded_orders": [],
    "ancillary_files": {},
    "rv": {},
    "normalization": {"orders": [], "defaults": {}},
    "stacked_spectrum": {},
    "physics": {},
    "spectral_lines": {},
    "measurements": {},
    "stellar_parameters": {"adopted": None, "methods": {}},
    "abundances": {},
    "notes": "",
    "history": [],
}


class SessionFileError(InputFileError):
    """A session file is corrupt, unsafe or inconsistent (names the file and the problem)."""


@dataclass(frozen=True)
class SessionLimits:
    """Bounds applied when reading a session file.

    Attributes
    ----------
    max_members : int
        Most tar members accepted.
    max_member_bytes : int
        Largest member accepted [bytes].
    max_pickle_bytes : int
        Largest ``session.pkl`` accepted [bytes].
    max_total_bytes : int
        Most decompressed bytes read from the gzip stream in total [bytes].
    """

    max_members: int = 10_000
    max_member_bytes: int = 2 * 1024**3
    max_pickle_bytes: int = 512 * 1024**2
    max_total_bytes: int = 8 * 1024**3


DEFAULT_LIMITS = SessionLimits()


class _TooBigError(PhotonpipeError):
    """The decompressed stream passed its limit (turned into a :class:`SessionFileError`)."""


class _CountingReader(io.RawIOBase):
    """Read-only stream that refuses to deliver more than ``limit`` bytes in total."""

    def __init__(self, stream: IO[bytes] | gzip.GzipFile, limit: int) -> None:
        self._stream = stream
        self._left = limit

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer)
        data = self._stream.read(min(len(view), self._left + 1))
        if len(data) > self._left:
            raise _TooBigError("decompressed past the size limit")
        self._left -= len(data)
        view[: len(data)] = data
        return len(data)


def check_member_name(name: str) -> None:
    """Raise ``ValueError`` unless ``name`` is a plain basename allowed in a session tarball.

    Parameters
    ----------
    name : str
        Member name.
    """
    if (
        not name
        or name in (".", "..")
        or "/" in name
        or "\\" in name
        or "\0" in name
        or name.startswith(".")
        or len(name) > 255
    ):
        raise ValueError(f"{name!r} is not a plain file name")


def sha256_hex(data: bytes) -> str:
    """SHA-256 of ``data`` as 64 hexadecimal characters."""
    return hashlib.sha256(data).hexdigest()


def read_session_file(
    path: str | os.PathLike[str], limits: SessionLimits = DEFAULT_LIMITS
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Read a session file safely.

    Parameters
    ----------
    path : str or PathLike
        The ``.smh`` file.
    limits : SessionLimits
        Size and count bounds.

    Returns
    -------
    state : dict
        The contents of ``session.pkl``, migrated to :data:`SCHEMA_VERSION`.
    files : dict of str to bytes
        Every other member by name (input spectra and ancillary files).

    Raises
    ------
    SessionFileError
        The file is missing, not a gzipped tarball, holds an unsafe member or pickle, exceeds
        a bound, or refers to a file it does not contain.
    """
    path = Path(path)
    members: dict[str, bytes] = {}
    try:
        with path.open("rb") as raw, gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:
            counted = io.BufferedReader(_CountingReader(unzipped, limits.max_total_bytes))
            with tarfile.open(fileobj=counted, mode="r|") as tar:
                for member in tar:
                    _check_member(path, member, members, limits)
                    handle = tar.extractfile(member)
                    if handle is None:  # pragma: no cover - regular files always have data
                        raise SessionFileError(path, f"member {member.name!r} has no data")
                    members[member.name] = handle.read()
    except FileNotFoundError:
        raise SessionFileError(path, "no such session file") from None
    except IsADirectoryError:
        raise SessionFileError(path, "is a directory, not a session file") from None
    except _TooBigError:
        raise SessionFileError(
            path, f"decompresses to more than {limits.max_total_bytes} bytes"
        ) from None
    except (tarfile.TarError, gzip.BadGzipFile, zlib.error, EOFError, OSError) as exc:
        raise SessionFileError(path, f"not a readable gzipped tarball ({exc})") from None
    if SESSION_PICKLE not in members:
        raise SessionFileError(path, f"no {SESSION_PICKLE} in the session file")
    try:
        state = loads_plain(members.pop(SESSION_PICKLE))
    except UnsafePickleError as exc:
        raise SessionFileError(path, f"{SESSION_PICKLE}: {exc}") from None
    if not isinstance(state, dict):
        raise SessionFileError(path, f"{SESSION_PICKLE} does not hold a dict")
    state = migrate_state(state, path)
    _check_references(path, state, members)
    return state, members


def _check_member(
    path: Path, member: tarfile.TarInfo, seen: Mapping[str, bytes], limits: SessionLimits
) -> None:
    name = member.name
    if name.startswith("/") or Path(name).is_absolute():
        raise SessionFileError(path, f"member {name!r} has an absolute path")
    if ".." in Path(name).parts:
        raise SessionFileError(path, f"member {name!r} leads out of the session ('..')")
    if member.issym() or member.islnk():
        raise SessionFileError(path, f"member {name!r} is a link")
    if member.isdev() or member.isfifo():
        raise SessionFileError(path, f"member {name!r} is a device or FIFO")
    if not member.isreg():
        raise SessionFileError(path, f"member {name!r} is not a regular file")
    try:
        check_member_name(name)
    except ValueError:
        raise SessionFileError(path, f"member {name!r} is not a plain file name") from None
    if name in seen:
        raise SessionFileError(path, f"member {name!r} appears twice")
    if len(seen) >= limits.max_members:
        raise SessionFileError(path, f"more than {limits.max_members} members")
    bound = limits.max_pickle_bytes if name == SESSION_PICKLE else limits.max_member_bytes
    if member.size > bound:
        raise SessionFileError(path, f"member {name!r} is larger than {bound} bytes")


def _check_references(path: Path, state: dict[str, Any], files: Mapping[str, bytes]) -> None:
    names = state["input_spectra_filenames"]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise SessionFileError(path, "input_spectra_filenames is not a list of names")
    for name in names:
        if name not in files:
            raise SessionFileError(path, f"input spectrum {name!r} is missing from the session")
        expected = state["input_spectra_sha256"].get(name)
        if expected is not None and sha256_hex(files[name]) != expected:
            raise SessionFileError(path, f"input spectrum {name!r} does not match its checksum")
    for name in state["ancillary_files"]:
        if name not in files:
            raise SessionFileError(path, f"ancillary file {name!r} is missing from the session")


def migrate_state(state: dict[str, Any], path: str | os.PathLike[str]) -> dict[str, Any]:
    """Bring a ``session.pkl`` state from an older schema to :data:`SCHEMA_VERSION`.

    Version 1 (no ``schema_version`` key) is the draft SMH data model: the input spectra are
    listed under ``input_spectra_paths`` and the ``physics``, ``notes`` and bookkeeping
    sections are absent. Migration renames the list, keeps every other key, and adds the
    missing sections empty. Version 2 → 3: ``stellar_parameters`` becomes ``{"adopted": None,
    "methods": {}}`` (anything already there is kept under ``legacy``), an empty
    ``abundances`` section is added, and each EW measurement's empty ``abundances`` becomes
    ``{element: NaN}`` with ``abundance_uncertainties`` alike (NaN = not computed yet).

    Parameters
    ----------
    state : dict
        Loaded state.
    path : str or PathLike
        Session file, for error messages.

    Returns
    -------
    dict
        The state in the current schema (the same dict, updated).

    Raises
    ------
    SessionFileError
        The state was written by a newer photonpipe (unknown schema version).
    """
    version = state.get("schema_version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise SessionFileError(Path(path), f"invalid schema_version {version!r}")
    if version > SCHEMA_VERSION:
        raise SessionFileError(
            Path(path),
            f"schema version {version} is newer than this photonpipe understands "
            f"({SCHEMA_VERSION}); upgrade photonpipe",
        )
    if version == 1:
        if "input_spectra_paths" in state and "input_spectra_filenames" not in state:
            state["input_spectra_filenames"] = [
                Path(p).name for p in state.pop("input_spectra_paths")
            ]
        state.setdefault("history", []).append(
            {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "action": "migrated 1->2"}
        )
        version = 2
    if version == 2:
        _migrate_2_to_3(state)
        state.setdefault("history", []).append(
            {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "action": "migrated 2->3"}
        )
        version = 3
    for key, empty in SECTIONS.items():
        if key not in state:
            state[key] = _fresh(empty)
    state["schema_version"] = version
    return state


def _migrate_2_to_3(state: dict[str, Any]) -> None:
    old = state.get("stellar_parameters")
    if not (isinstance(old, dict) and "methods" in old):
        state["stellar_parameters"] = {"adopted": None, "methods": {}}
        if old:
            state["stellar_parameters"]["legacy"] = old
    measurements = state.get("measurements")
    lines = state.get("spectral_lines")
    if not isinstance(measurements, dict) or not isinstance(lines, dict):
        return
    for measurement in measurements.values():
        if not isinstance(measurement, dict) or measurement.get("method") != "ew":
            continue
        if measurement.get("abundances"):
            continue
        elements = set()
        for line_hash in measurement.get("line_hashes", []):
            line = lines.get(line_hash)
            if isinstance(line, dict) and isinstance(line.get("species"), float | int):
                elements.add(element_of(float(line["species"])))
        measurement["abundances"] = dict.fromkeys(sorted(elements), math.nan)
        measurement["abundance_uncertainties"] = dict.fromkeys(sorted(elements), math.nan)


def element_of(species: float) -> str:
    """Element symbol of a MOOG species code (26.1 → "Fe"; molecules: the code as text)."""
    from photonpipe.stellar.linelist import ELEMENTS

    z = int(species)
    return ELEMENTS[z - 1] if 1 <= z <= len(ELEMENTS) else f"{species:g}"


def _fresh(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _fresh(v) for k, v in value.items()}
    if isinstance(value, list):
        return list(value)
    return value


def empty_state() -> dict[str, Any]:
    """Return a new schema-:data:`SCHEMA_VERSION` state with every section empty."""
    state = {key: _fresh(value) for key, value in SECTIONS.items()}
    state["schema_version"] = SCHEMA_VERSION
    return state


def write_session_file(
    path: str | os.PathLike[str], state: Mapping[str, Any], files: Mapping[str, bytes]
) -> Path:
    """Write a session file atomically.

    Parameters
    ----------
    path : str or PathLike
        Destination ``.smh`` file; replaced only when the new file is complete.
    state : mapping
        The plain-data state pickled as ``session.pkl`` (protocol 2).
    files : mapping of str to bytes
        Input spectra and ancillary files, by basename.

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    photonpipe.stellar.safe_pickle.UnsafePickleError
        ``state`` holds something other than plain data (nothing is written).
    ValueError
        A file name is not a plain basename.
    """
    destination = Path(path)
    payload = dumps_plain(dict(state))
    for name in files:
        check_member_name(name)
        if name == SESSION_PICKLE:
            raise ValueError(f"{SESSION_PICKLE} is reserved")
    temp = destination.with_name(f".{destination.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    mtime = time.time()
    try:
        with temp.open("wb") as raw:
            with (
                gzip.GzipFile(filename="", fileobj=raw, mode="wb", compresslevel=6, mtime=0) as gz,
                tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
            ):
                for name, data in [(SESSION_PICKLE, payload), *files.items()]:
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    info.mtime = int(mtime)
                    info.mode = 0o644
                    tar.addfile(info, io.BytesIO(data))
            raw.flush()
            os.fsync(raw.fileno())
        temp.replace(destination)
    except OSError as exc:
        # a full disk or read-only directory: name the session file (the old one is intact)
        raise naming_the_file(exc, destination, temp) from None
    finally:
        # OSError, not only FileNotFoundError: on a read-only file system even the unlink of a
        # temporary never created fails, and must not hide the error that matters
        with contextlib.suppress(OSError):
            temp.unlink()
    with contextlib.suppress(OSError):
        fd = os.open(destination.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return destination
