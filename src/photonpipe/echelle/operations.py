"""NRES operations without a broker: filtering, the processed-file table, one frame's processing.

:func:`process_file` is what a Celery worker (:mod:`photonpipe.echelle.service`) and
``photonpipe echelle watch`` run for one raw frame:

1. **filter** (:func:`accept_file`): a raw NRES frame name (containing ``00.fits``, not a guide
   ``g00`` or exposure-meter ``x00`` frame), a readable header with RLEVEL 0 and an instrument
   (TELESCOP) among the configured ones (setting ``echelleops.instruments``);
2. **claim** the frame's work unit in the platform ledger (kind ``echelle.frame``, key the
   resolved path, checksum the SHA-256 of the contents: the very units ``photonpipe echelle
   reduce`` uses, so a frame reduced either way is not reduced again). A frame already done with
   the same contents is skipped, a changed one reduced again, a failed one retried until it has
   been tried ``executor.max_tries`` times and then left failed with its error; a unit held by a
   process that died (a killed worker) is taken over;
3. **reduce** it with :func:`photonpipe.echelle.pipeline.reduce_frame_unit` (the function
   ``photonpipe echelle reduce`` runs per frame: calibration frames are checked, science frames
   reduced with the best calibrations);
4. **record** the attempt in the processed-file table (``echelle_processed_file``: filename,
   MD5, frame id, status, success, tries, error, timestamps, duration) and in the ledger, and log
   a metrics event (JSON lines with ``--log-format json``).

Nightly tasks (:func:`run_nightly`): stacking of the last 24 h of BIAS, DARK, FLAT and ARC frames
of a site, and trace refinement from those flats followed by the TRIPLE (the steps:
:data:`photonpipe.echelle.settings.NIGHTLY_STEPS`, run by
:func:`photonpipe.echelle.stages.run_steps`); each run is a ledger unit of kind
``echelle.nightly``, which ``photonpipe echelle status`` reports.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import logging
import multiprocessing
import threading
import time
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from stat import S_ISDIR, S_ISREG
from typing import Any

import sqlalchemy as sa

from photonpipe.echelle import instrument
from photonpipe.echelle.calibrations import reduced_dir, write_initial_traces
from photonpipe.echelle.formats import read_header
from photonpipe.echelle.models import ProcessedFile
from photonpipe.echelle.science import KIND
from photonpipe.echelle.settings import NIGHTLY_STEPS, Options
from photonpipe.echelle.stages import NightContext, run_steps
from photonpipe.errors import InputFileError, PhotonpipeError
from photonpipe.platform.archive import Archive
from photonpipe.platform.db import Database, upsert, utcnow
from photonpipe.platform.executor import available_cores
from photonpipe.platform.ledger import (
    DONE,
    FAILED,
    RUNNING,
    Ledger,
    WorkUnit,
    WorkUnitRecord,
    file_checksum,
    transient_fault,
)

log = logging.getLogger("photonpipe.echelle.operations")

#: Longest wait between two scans of ``watch`` while a transient fault lasts [s].
MAX_WATCH_BACKOFF = 60.0

NIGHTLY_KIND = "echelle.nightly"
#: Processed-file status of a message or file that is not processed (dead-lettered).
REJECTED = "rejected"
#: The nightly tasks; their steps are :data:`photonpipe.echelle.settings.NIGHTLY_STEPS`.
NIGHTLY_TASKS = tuple(NIGHTLY_STEPS)


class RejectedFileError(PhotonpipeError):
    """A message or file that the operations path does not reduce (with the reason)."""

    exit_code = 1


@dataclass(frozen=True)
class OpsContext:
    """What processing a frame needs, picklable for worker processes.

    Attributes
    ----------
    root : str
        Archive root.
    database : Database
        The pipeline database.
    options : Options
        Reduction parameters (settings section ``echelle``).
    max_tries : int
        Attempts per frame and checksum (``executor.max_tries``).
    instruments : tuple of str
        Instruments whose frames are reduced (``echelleops.instruments``).
    reduction : str
        ``module:function`` run per frame (``echelleops.reduction``).
    retry_backoff : float
        Delay before the first retry of a failed frame, doubled for each further retry [s].
    """

    root: str
    database: Database
    options: Options
    max_tries: int = 3
    instruments: tuple[str, ...] = ("nres01", "nres02", "nres03")
    reduction: str = "photonpipe.echelle.pipeline:reduce_frame_unit"
    retry_backoff: float = 60.0

    @classmethod
    def from_settings(cls, settings: Any, database: Database | None = None) -> OpsContext:
        """Build the context from the archive, database, executor and echelle settings."""
        import photonpipe.echelle.settings  # noqa: F401  (registers the sections)

        return cls(
            root=str(Archive.from_settings(settings).root),
            database=database if database is not None else Database.from_settings(settings),
            options=Options.from_settings(settings),
            max_tries=int(settings["executor.max_tries"]),
            instruments=tuple(
                name.strip().lower()
                for name in str(settings["echelleops.instruments"]).split(",")
                if name.strip()
            ),
            reduction=str(settings["echelleops.reduction"]),
            retry_backoff=float(settings["echelleops.retry_backoff"]),
        )

    @property
    def archive(self) -> Archive:
        """Return the archive."""
        return Archive(self.root)


def file_md5(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """Return the MD5 of a file's contents (hex), as NRES's processed-file table stored it."""
    digest = hashlib.md5(usedforsecurity=False)
    with Path(path).open("rb") as handle:
        while block := handle.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------- filtering


def raw_name_ok(name: str) -> bool:
    """Whether a file name is a raw NRES frame's: contains ``00.fits``, not ``g00``/``x00``."""
    return "00.fits" in name and "g00" not in name and "x00" not in name


def accept_file(path: Path, instruments: Sequence[str]) -> str:
    """Check that a file is a raw frame of a configured NRES instrument; return its OBSTYPE.

    Raises
    ------
    RejectedFileError
        Naming the file and why (name, unreadable header, RLEVEL, instrument).
    """
    if not raw_name_ok(path.name):
        raise RejectedFileError(
            f"{path}: not a raw NRES frame name (needs '00.fits', not a g00/x00 frame)"
        )
    try:
        header = read_header(path)
    except InputFileError as exc:
        raise RejectedFileError(str(exc)) from None
    except Exception as exc:  # anything else the FITS reader meets is a bad file too
        raise RejectedFileError(
            f"{path}: unreadable FITS file ({type(exc).__name__}: {exc})"
        ) from None
    rlevel = header.get("RLEVEL", 0)
    if str(rlevel).strip() not in ("0", "00"):
        raise RejectedFileError(f"{path}: RLEVEL {rlevel} is not a raw frame")
    telescope = str(header["TELESCOP"]).strip().lower()
    if telescope not in instruments:
        raise RejectedFileError(
            f"{path}: instrument {telescope!r} is not configured ({', '.join(instruments)})"
        )
    return str(header["OBSTYPE"]).strip().upper()


#: Longest path a message may name, and longest file-name component [bytes] (Linux limits).
MAX_PATH_BYTES = 4096
MAX_NAME_BYTES = 255
#: Frame ids are stored as a signed 64-bit integer.
_MAX_FRAME_ID = 2**63 - 1


def _check_path_text(raw_path: str) -> None:
    """Reject a path the file system cannot hold, before any system call sees it."""
    if "\x00" in raw_path:
        raise RejectedFileError(f"message 'path' contains a NUL character: {raw_path[:120]!r}")
    try:
        encoded = raw_path.encode("utf-8")
    except UnicodeEncodeError:
        raise RejectedFileError(
            f"message 'path' is not valid Unicode text: {raw_path[:120]!r}"
        ) from None
    if len(encoded) > MAX_PATH_BYTES:
        raise RejectedFileError(
            f"message 'path' is {len(encoded)} bytes long (at most {MAX_PATH_BYTES}): "
            f"{raw_path[:120]!r}…"
        )
    longest = max(encoded.split(b"/"), key=len)
    if len(longest) > MAX_NAME_BYTES:
        raise RejectedFileError(
            f"message 'path' has a {len(longest)}-byte file or directory name (at most "
            f"{MAX_NAME_BYTES}): {raw_path[:120]!r}…"
        )


def _message_content(body: bytes | str | dict[str, Any]) -> dict[str, Any]:
    """Return the JSON object of a message body (:class:`RejectedFileError` if not one)."""
    if isinstance(body, dict):
        content: Any = body
    else:
        try:
            text = body.decode("utf-8") if isinstance(body, bytes | bytearray) else str(body)
            content = json.loads(text)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise RejectedFileError(f"message is not JSON ({exc}; UTF-8 JSON expected)") from None
    if not isinstance(content, dict):
        raise RejectedFileError(f"message is not a JSON object: {str(content)[:80]!r}")
    return content


def parse_message(body: bytes | str | dict[str, Any], archive: Archive) -> tuple[Path, int | None]:
    """Decode a fits-exchange message ``{"path": ..., "frameid": ...}``; return (path, frame id).

    A relative path is taken relative to the archive root; the file must lie inside the root
    and be a regular file. ``frameid`` is optional: a non-negative integer below 2**63.

    Raises
    ------
    RejectedFileError
        For every message that cannot be processed: not UTF-8 JSON, not an object, no ``path``
        or one that is not a non-empty string, a NUL character, a path or file name longer
        than the file system allows, a path outside the archive root, a missing file, a
        directory or other non-regular file, a symbolic-link loop, a bad ``frameid``. No other
        exception escapes.
    """
    content = _message_content(body)
    raw_path = content.get("path")
    if not isinstance(raw_path, str) or not raw_path:
        raise RejectedFileError(
            f"message has no 'path' (a non-empty string): {_preview_json(content)}"
        )
    frame_id = content.get("frameid")
    if frame_id is not None and (
        isinstance(frame_id, bool) or not isinstance(frame_id, int) or frame_id < 0
    ):
        raise RejectedFileError(
            f"message 'frameid' is not a non-negative integer: {str(frame_id)[:80]!r}"
        )
    if frame_id is not None and frame_id > _MAX_FRAME_ID:
        raise RejectedFileError(f"message 'frameid' {str(frame_id)[:80]} is above 2**63 - 1")
    _check_path_text(raw_path)
    candidate = Path(raw_path)
    if not candidate.is_absolute():
        candidate = archive.root / candidate
    try:
        path = archive.confine(candidate)
    except PhotonpipeError:
        raise RejectedFileError(f"{raw_path}: outside the archive root {archive.root}") from None
    except (OSError, RuntimeError, ValueError) as exc:  # e.g. a symbolic-link loop
        raise RejectedFileError(f"{raw_path}: cannot resolve the path ({exc})") from None
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise RejectedFileError(f"{path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise RejectedFileError(f"{path}: cannot read ({exc})") from None
    if S_ISDIR(mode):
        raise RejectedFileError(f"{path}: a directory, not a file")
    if not S_ISREG(mode):
        raise RejectedFileError(f"{path}: not a regular file")
    return path, frame_id


def _preview_json(content: Any) -> str:
    try:
        return json.dumps(content, default=str)[:120]
    except (TypeError, ValueError, RecursionError):
        return repr(content)[:120]


# --------------------------------------------------------------------------- processed files


def _processed_row(
    database: Database, filename: str, values: dict[str, Any], *, insert_only: bool = False
) -> None:
    row = {"filename": filename, **values}
    row.setdefault("created", utcnow())
    with database.session() as session:
        upsert(
            session,
            ProcessedFile,
            [row],
            key=("filename",),
            update=() if insert_only else [k for k in row if k not in ("filename", "created")],
        )


#: Longest ``filename`` the processed-file table holds (the column is 512 characters).
_FILENAME_CHARS = 512


def _printable(text: str) -> str:
    """Escape control characters and lone surrogates (no database stores them as text)."""
    if text.isprintable():
        return text
    return "".join(
        c.encode("unicode_escape", "backslashreplace").decode("ascii")
        if unicodedata.category(c) in ("Cc", "Cs")
        else c
        for c in text
    )


def message_filename(body: bytes | str | dict[str, Any], archive: Archive) -> str:
    """Return the processed-file key of a message: the file it names, or its digest.

    The path a message names (relative to the archive root when inside it, as given
    otherwise), with control characters escaped; a key longer than the column holds keeps its
    first 480 characters and ends in the SHA-256 of the whole. A message naming no path has the
    key ``<message sha256:HEX>``.
    """
    raw_path: Any = None
    if isinstance(body, dict):
        raw_path = body.get("path")
    else:
        with contextlib.suppress(Exception):
            content = json.loads(body)
            if isinstance(content, dict):
                raw_path = content.get("path")
    if not isinstance(raw_path, str) or not raw_path:
        return f"<message sha256:{hashlib.sha256(_body_bytes(body)).hexdigest()}>"
    name = raw_path
    with contextlib.suppress(Exception):
        if "\x00" not in raw_path and len(raw_path) <= MAX_PATH_BYTES:
            candidate = Path(raw_path)
            if not candidate.is_absolute():
                candidate = archive.root / candidate
            if candidate.resolve().is_relative_to(archive.real_root):
                name = archive.relative(candidate)
    name = _printable(name)
    if len(name) > _FILENAME_CHARS:
        digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()
        name = f"{name[:480]}…sha256:{digest[:24]}"
    return name


def _body_bytes(body: bytes | str | dict[str, Any]) -> bytes:
    if isinstance(body, bytes | bytearray):
        return bytes(body)
    if isinstance(body, str):
        return body.encode("utf-8", "surrogatepass")
    return json.dumps(body, sort_keys=True, default=str).encode()


def body_preview(body: bytes | str | dict[str, Any], chars: int = 1000) -> str:
    """Return the start of a message body as printable text (undecodable bytes escaped)."""
    if isinstance(body, dict):
        text = json.dumps(body, default=str)
    elif isinstance(body, bytes | bytearray):
        text = bytes(body[: 4 * chars]).decode("utf-8", errors="backslashreplace")
    else:
        text = body
    return _printable(text[:chars])


def record_rejection(
    database: Database,
    archive: Archive,
    body: bytes | str | dict[str, Any],
    reason: str,
    *,
    path: Path | None = None,
    frame_id: int | None = None,
    status: str = REJECTED,
) -> str:
    """Record a rejected message or file in the processed-file table; return its key.

    ``status`` is ``rejected`` (the message or file is not processed) or ``failed`` (a
    worker gave up on it after its retries). ``checksum`` is the MD5 of the file when one was
    read, else of the message body; ``message`` keeps the start of the body. A frame recorded
    ``done`` keeps that record, and so does a ``running`` one for a rejection.
    """
    filename = archive.relative(path) if path is not None else message_filename(body, archive)
    checksum = hashlib.md5(_body_bytes(body), usedforsecurity=False).hexdigest()
    if path is not None:
        with contextlib.suppress(OSError, ValueError):
            checksum = file_md5(path)
    values = {
        "checksum": checksum,
        "frame_id": frame_id,
        "status": status,
        "success": False,
        "error": _printable(reason[:4000]),
        "message": body_preview(body),
        "finished": utcnow(),
    }
    # A frame recorded done (or, for a rejection, running) keeps its record: a bad message
    # about a good frame says nothing about the frame. A worker giving up ends a running one.
    keep = (DONE,) if status == FAILED else (DONE, RUNNING)
    with database.session() as session:  # one transaction
        upsert(
            session,
            ProcessedFile,
            [{"filename": filename, "created": utcnow(), **values}],
            key=("filename",),
            update=(),
        )
        session.execute(
            sa.update(ProcessedFile)
            .where(
                ProcessedFile.filename == filename,
                ProcessedFile.status.not_in(keep),
            )
            .values(**values)
        )
    return filename


def _update_processed(database: Database, filename: str, values: dict[str, Any]) -> None:
    with database.session() as session:
        session.execute(
            sa.update(ProcessedFile).where(ProcessedFile.filename == filename).values(**values)
        )


def _resolve(name: str) -> Callable[[dict[str, Any]], Any]:
    module, _, function = name.partition(":")
    result = getattr(importlib.import_module(module), function)
    if not callable(result):
        raise TypeError(f"{name} is not callable")
    return result


@dataclass
class Outcome:
    """What :func:`process_file` did with one frame.

    ``status``: ``done`` (reduced now), ``skipped`` (done before with the same contents),
    ``busy`` (another live process holds it), ``retry`` (failed, tries left; ``retry_in`` [s]),
    ``failed`` (failed with no tries left), ``rejected`` (not a frame to reduce).
    """

    filename: str
    status: str
    tries: int = 0
    error: str | None = None
    frame_type: str | None = None
    duration: float = 0.0
    retry_in: float | None = None
    result: Any = None

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict (the Celery task's return value)."""
        return {
            "filename": self.filename,
            "status": self.status,
            "tries": self.tries,
            "error": self.error,
            "frame_type": self.frame_type,
            "duration": self.duration,
            "retry_in": self.retry_in,
        }


def _event(outcome: Outcome, frame_id: int | None) -> None:
    level = logging.WARNING if outcome.status in ("failed", "retry", "rejected") else logging.INFO
    log.log(
        level,
        "%s %s%s",
        outcome.status,
        outcome.filename,
        f": {outcome.error}" if outcome.error else "",
        extra={
            "event": "file_processed",
            "unit": outcome.filename,
            "duration": outcome.duration,
            "outcome": outcome.status,
            "frame_type": outcome.frame_type,
            "tries": outcome.tries,
            "frame_id": frame_id,
            "reason": outcome.error,
        },
    )


def process_file(context: OpsContext, path: str | Path, frame_id: int | None = None) -> Outcome:
    """Filter, claim, reduce and record one raw frame (the workers' and ``watch``'s unit).

    Parameters
    ----------
    context : OpsContext
        Archive, database, options, tries, configured instruments.
    path : str or Path
        The raw frame (inside the archive root).
    frame_id : int, optional
        The archive's frame id from the message, stored with the record.

    Returns
    -------
    Outcome
        Never raises for a bad frame: problems are in the outcome (and the tables).
    """
    start = time.perf_counter()
    archive = context.archive
    database = context.database
    message = {"path": str(path), **({"frameid": frame_id} if frame_id is not None else {})}
    resolved: Path | None = None
    try:
        resolved, frame_id = parse_message(message, archive)
        path = resolved
        filename = archive.relative(path)
        obstype = accept_file(path, context.instruments)
        md5 = file_md5(path)
        checksum = file_checksum(path)
    except (RejectedFileError, OSError) as exc:
        reason = str(exc) if isinstance(exc, RejectedFileError) else f"{path}: {exc}"
        key = record_rejection(database, archive, message, reason, path=resolved)
        outcome = Outcome(key, REJECTED, error=reason)
        outcome.duration = time.perf_counter() - start
        _event(outcome, frame_id if isinstance(frame_id, int) else None)
        return outcome
    key = str(path.resolve())
    unit = WorkUnit(
        key=key,
        payload={
            "root": str(archive.root),
            "database": database,
            "path": key,
            "options": context.options,
        },
        checksum=checksum,
    )
    ledger = Ledger(database, KIND, max_tries=context.max_tries)
    plan = ledger.plan([unit])
    outcome = Outcome(filename, "busy", frame_type=obstype)
    if plan.already_done or plan.exhausted:
        outcome.status = "skipped" if plan.already_done else "failed"
        outcome.error = plan.exhausted.get(key)
        # A frame done by ``echelle reduce`` gets its processed-file record here.
        _processed_row(
            database,
            filename,
            {
                "checksum": md5,
                "frame_id": frame_id,
                "status": DONE if plan.already_done else FAILED,
                "success": bool(plan.already_done),
                "tries": context.max_tries - ledger.tries_left(unit),
                "error": outcome.error,
                "frame_type": obstype,
            },
            insert_only=True,
        )
    elif plan.todo and ledger.claim([unit]):
        ledger.start([unit.key])  # this process reduces it now: the try is charged
        tries = context.max_tries - ledger.tries_left(unit)
        outcome.tries = tries
        try:
            _processed_row(
                database,
                filename,
                {
                    "checksum": md5,
                    **({"frame_id": frame_id} if frame_id is not None else {}),
                    "status": RUNNING,
                    "success": False,
                    "tries": tries,
                    "error": None,
                    "frame_type": obstype,
                    "started": utcnow(),
                    "finished": None,
                    "duration": None,
                },
            )
            _finish(ledger, context, unit, filename, outcome, tries, start)
        except BaseException:
            ledger.release([unit])
            raise
    outcome.duration = time.perf_counter() - start
    _event(outcome, frame_id)
    return outcome


def _finish(
    ledger: Ledger,
    context: OpsContext,
    unit: WorkUnit,
    filename: str,
    outcome: Outcome,
    tries: int,
    start: float,
) -> None:
    """Run the reduction of a claimed unit and record its success or failure."""
    database = context.database
    try:
        result = _resolve(context.reduction)(unit.payload)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        outcome.duration = time.perf_counter() - start
        _update_processed(
            database,
            filename,
            {
                "status": FAILED,
                "success": False,
                "error": error,
                "finished": utcnow(),
                "duration": outcome.duration,
            },
        )
        ledger.record(failures=[(unit, error)])
        left = context.max_tries - tries
        outcome.status = "retry" if left > 0 else "failed"
        outcome.error = error
        if left > 0:
            outcome.retry_in = context.retry_backoff * 2.0 ** (tries - 1)
    else:
        outcome.duration = time.perf_counter() - start
        _update_processed(
            database,
            filename,
            {
                "status": DONE,
                "success": True,
                "error": None,
                "finished": utcnow(),
                "duration": outcome.duration,
            },
        )
        ledger.record(successes=[(unit, result)])
        outcome.status = "done"
        outcome.result = result


# --------------------------------------------------------------------------- watch


def _process_in_worker(context: OpsContext, path: str) -> dict[str, Any]:
    return process_file(context, path).as_dict()


@dataclass
class WatchState:
    """Files a :func:`watch` loop has seen: (size, mtime) per path, handled, retry times."""

    sizes: dict[str, tuple[int, float]] = field(default_factory=dict)
    handled: dict[str, tuple[int, float]] = field(default_factory=dict)
    retry_at: dict[str, float] = field(default_factory=dict)


def _settled_files(
    directory: Path, state: WatchState, settle: float, marker: str | None
) -> list[str]:
    """Raw frames under ``directory`` that stopped changing (see :func:`watch_scan`)."""
    now = time.time()
    ready: list[str] = []
    for path in sorted(directory.rglob("*")):
        if path.name.startswith(".") or not raw_name_ok(path.name):
            continue
        if marker and path.name.endswith(marker):
            continue
        try:
            if not path.is_file():
                continue
            if marker and not path.with_name(path.name + marker).exists():
                continue
            stat = path.stat()
        except (OSError, ValueError):
            continue
        key = str(path)
        signature = (stat.st_size, stat.st_mtime)
        previous = state.sizes.get(key)
        state.sizes[key] = signature
        if previous != signature or now - stat.st_mtime < settle:
            continue
        retry = state.retry_at.get(key)
        if state.handled.get(key) == signature and (retry is None or retry > now):
            continue
        ready.append(key)
    return ready


def watch_scan(
    context: OpsContext,
    directory: Path,
    state: WatchState,
    pool: ProcessPoolExecutor | None,
    settle: float = 2.0,
    marker: str | None = None,
) -> list[Outcome]:
    """One scan of a watched directory: process raw frames that arrived and stopped growing.

    A file is processed once its size and modification time are unchanged since the previous
    scan and it is at least ``settle`` seconds old; with ``marker`` (a suffix such as
    ``.done``), moreover only once the completion marker ``FILE + marker`` exists (written by
    the transfer after the file is complete), so a copy that stalls for longer than ``settle``
    is not read half-written either. Hidden files (a leading dot, as rsync's temporary files)
    are never read. A file that failed with tries left is retried after its back-off.
    """
    ready = _settled_files(directory, state, settle, marker)
    outcomes: list[Outcome] = []
    if pool is None:
        outcomes = [process_file(context, key) for key in ready]
    else:
        futures: list[Future[dict[str, Any]]] = [
            pool.submit(_process_in_worker, context, key) for key in ready
        ]
        outcomes = [Outcome(**f.result()) for f in futures]
    for key, outcome in zip(ready, outcomes, strict=True):
        state.handled[key] = state.sizes[key]
        if outcome.status == "retry" and outcome.retry_in is not None:
            state.retry_at[key] = time.time() + outcome.retry_in
        else:
            state.retry_at.pop(key, None)
    return outcomes


def watch(
    context: OpsContext,
    directory: Path,
    *,
    workers: int = 1,
    start_method: str = "forkserver",
    interval: float = 5.0,
    settle: float = 2.0,
    stop: threading.Event | None = None,
    marker: str | None = None,
) -> Iterator[list[Outcome]]:
    """Reduce new raw frames under ``directory`` as they arrive, until ``stop`` is set.

    Yields the outcomes of each scan (:func:`watch_scan`: a file is read only once it stopped
    changing for ``settle`` seconds and, with ``marker``, once its completion marker exists).
    ``workers`` > 1 processes frames on a local process pool; 1 processes them in this process.

    A scan that meets a transient fault (the database restarting, busy or unreachable, a full
    disk, a lost network connection; see :func:`~photonpipe.platform.ledger.transient_fault`)
    does not end the watch: it is logged (event ``watch_transient``) and the next scan comes
    after a delay doubled each time, from ``interval`` up to :data:`MAX_WATCH_BACKOFF`. The
    files of that scan are looked at again; those already recorded as done are not redone.
    Other errors end the watch.
    """
    if not directory.is_dir():
        raise PhotonpipeError(f"{directory}: not a directory")
    stop = stop or threading.Event()
    state = WatchState()
    pool = None
    if workers > 1:
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(start_method))
    delay = interval
    try:
        while not stop.is_set():
            try:
                outcomes = watch_scan(context, directory, state, pool, settle, marker)
            except Exception as exc:
                reason = transient_fault(exc)
                if reason is None:
                    raise
                log.warning(
                    "watch %s: scan failed (%s); next scan in %.0f s",
                    directory,
                    reason,
                    delay,
                    extra={"event": "watch_transient", "reason": reason, "retry_in": delay},
                )
                stop.wait(delay)
                delay = min(2.0 * delay, MAX_WATCH_BACKOFF)
                continue
            delay = interval
            yield outcomes
            stop.wait(interval)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)


def default_workers(settings: Any) -> int:
    """Return ``executor.workers`` or, when 0, the cores available."""
    return int(settings["executor.workers"]) or available_cores()


# --------------------------------------------------------------------------- nightly tasks


@dataclass
class NightlyReport:
    """What one nightly task made, and what it could not make (with reasons)."""

    site: str
    task: str
    masters: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        """Return one line."""
        return f"{self.site} {self.task}: {len(self.masters)} products, {len(self.errors)} not made"


def run_nightly(
    context: OpsContext, site: str, task: str, end: datetime | None = None
) -> NightlyReport:
    """Run a nightly task of a site over the 24 h before ``end`` (default now).

    ``stack``: BIAS, DARK, FLAT and ARC masters (and the TRIPLE when a trace exists); ``traces``:
    traces refined on the newest flats of the window, then the TRIPLE from its arcs. The run is a
    ledger unit of kind ``echelle.nightly`` (key ``site/task/end``): succeeded when it made at
    least one product, failed otherwise (the error lists why).
    """
    if task not in NIGHTLY_TASKS:
        raise PhotonpipeError(f"unknown nightly task {task!r} (known: {', '.join(NIGHTLY_TASKS)})")
    try:
        instrument.site_info(site)
    except KeyError as exc:
        raise PhotonpipeError(str(exc.args[0])) from None
    end = (end or datetime.now(UTC)).astimezone(UTC)
    start = end - timedelta(hours=24)
    report = NightlyReport(site, task)
    ledger = Ledger(context.database, NIGHTLY_KIND, max_tries=10**6)
    unit = WorkUnit(key=f"{site}/{task}/{end:%Y-%m-%dT%H:%M:%S}")
    ledger.plan([unit], retry_failed=True)
    if not ledger.claim([unit]):
        report.errors["claim"] = "another process runs this nightly task"
        return report
    began = time.perf_counter()
    night = NightContext.for_window(
        context.archive,
        context.database,
        instrument.site_info(site),
        start,
        end,
        context.options,
        report_skipped=True,
    )
    try:
        run_steps(night, NIGHTLY_STEPS[task])
    except BaseException:
        ledger.release([unit])
        raise
    duration = time.perf_counter() - began
    report.masters = [context.archive.relative(p) for p in night.made]
    report.errors = night.failed
    if report.masters:
        ledger.record(successes=[(unit, {"masters": report.masters, "errors": report.errors})])
    else:
        ledger.record(failures=[(unit, "; ".join(f"{k}: {v}" for k, v in report.errors.items()))])
    log.info(
        report.summary(),
        extra={
            "event": "nightly",
            "site": site,
            "task": task,
            "duration": duration,
            "products": len(report.masters),
            "errors": report.errors,
        },
    )
    return report


# --------------------------------------------------------------------------- status


@dataclass
class Status:
    """Summary for ``photonpipe echelle status``."""

    counts: dict[str, int] = field(default_factory=dict)
    failed_by_reason: dict[str, int] = field(default_factory=dict)
    nightly: dict[str, dict[str, Any]] = field(default_factory=dict)
    queued: dict[str, int | str] = field(default_factory=dict)


def failure_reason(error: str | None) -> str:
    """Return the class of a failure: the exception type before the first colon."""
    if not error:
        return "unknown"
    head = error.split(":", 1)[0].strip()
    return head if head.isidentifier() else "other"


def status(database: Database) -> Status:
    """Count processed files per status and failures by reason; find the last nightly runs."""
    out = Status()
    with database.session() as session:
        for state, n in session.execute(
            sa.select(ProcessedFile.status, sa.func.count()).group_by(ProcessedFile.status)
        ):
            out.counts[state] = n
        for (error,) in session.execute(
            sa.select(ProcessedFile.error).where(ProcessedFile.status == FAILED)
        ):
            reason = failure_reason(error)
            out.failed_by_reason[reason] = out.failed_by_reason.get(reason, 0) + 1
        table = WorkUnitRecord.__table__
        rows = session.execute(
            sa.select(table.c.key, table.c.status, table.c.finished, table.c.error)
            .where(table.c.kind == NIGHTLY_KIND, table.c.finished.is_not(None))
            .order_by(table.c.finished)
        )
        for key, state, finished, error in rows:
            site, task = key.split("/", 2)[:2]
            out.nightly[f"{site} {task}"] = {
                "finished": finished,
                "status": state,
                "error": error,
                "window_end": key.split("/", 2)[2],
            }
    return out


# --------------------------------------------------------------------------- new site

#: Empty registries of a new site (``reduced/csv``), with the columns they will hold.
REGISTRIES = {
    "standards.csv": "type,filename,navg,site,camera,jdate,flags",
    "zeros.csv": "filename,navg,site,camera,jdate,target,flags",
    "rv.csv": "filename,target,site,camera,jdate,rv_kms,rv_err_kms,flags",
}


def setup_site(archive: Archive, site: str, instrument_name: str, camera_name: str) -> list[Path]:
    """Start the reduction of a new site: reduced/ tree, instrument configuration, registries.

    Writes ``reduced/config/instrument.json`` (spectrograph model and CCD parameters from the
    shared instrument facts), the starting trace from the site's hand trace
    (``reduced/trace/…-initial.fits``) and empty registries in ``reduced/csv`` (a registry file
    already there, e.g. the ``targets.csv`` that ``simulate nres`` writes, is kept).

    Raises
    ------
    PhotonpipeError
        The site is set up already (``reduced/config/instrument.json`` exists), or the site,
        camera or instrument name is unknown to the instrument facts.
    """
    if not instrument_name.startswith("nres") or not instrument_name[4:].isdigit():
        raise PhotonpipeError(f"instrument {instrument_name!r} is not an NRES name (nresNN)")
    try:
        info = instrument.site_info(site)
        spectrograph = instrument.spectrograph(site)
        ccd = instrument.camera(camera_name)
        hand = instrument.hand_trace_path(site)
    except KeyError as exc:
        raise PhotonpipeError(str(exc.args[0])) from None
    if (instrument_name, camera_name) != (info.instrument, info.camera):
        raise PhotonpipeError(
            f"site {site} has {info.instrument} with camera {info.camera} in the instrument "
            f"facts, not {instrument_name}/{camera_name}"
        )
    target = archive.path(site, instrument_name, "reduced")
    if (target / "config" / "instrument.json").exists():
        raise PhotonpipeError(f"{target}: site {site}/{instrument_name} is set up already")
    archive.create()
    reduced = reduced_dir(archive, site, instrument_name)
    config = {
        "site": site,
        "instrument": instrument_name,
        "camera": camera_name,
        "spectrograph": {
            "mjd": spectrograph.mjd,
            "order0": spectrograph.order0,
            "n_orders": spectrograph.n_orders,
            "groove_spacing_um": spectrograph.groove_spacing_um,
            "incidence_deg": spectrograph.incidence_deg,
            "focal_length_mm": spectrograph.focal_length_mm,
            "pixel_mm": spectrograph.pixel_mm,
            "nx": spectrograph.nx,
            "off_plane_angle_deg": instrument.OFF_PLANE_ANGLE_DEG,
        },
        "ccd": {
            "nx": ccd.nx,
            "ny": ccd.ny,
            "gain_e_per_adu": ccd.gain,
            "read_noise_e": ccd.read_noise,
        },
        "hand_trace": hand.name,
    }
    written = [
        archive.write_text(
            json.dumps(config, indent=2) + "\n",
            (reduced / "config" / "instrument.json").relative_to(archive.root),
        )
    ]
    written.append(write_initial_traces(archive, hand, site, instrument_name))
    for name, columns in REGISTRIES.items():
        if (reduced / "csv" / name).exists():
            continue
        written.append(
            archive.write_text(columns + "\n", (reduced / "csv" / name).relative_to(archive.root))
        )
    return written
