"""The light-curve archive pipeline: ingest directory → database → filesystem by target → products.

hstlc's ingest, on the platform's database, archive and executor. Layout under the archive root::

    lightcurves/ingest/               default ingest directory (setting lightcurve.ingest_dir)
    lightcurves/filesystem/TARGET/    archived input files, one directory per canonical target
    lightcurves/outputs/TARGET/       individual light curves, composites and their quicklooks
    lightcurves/bad_data/             rejected input files (moved, never deleted)

One work unit per dataset (rootname) runs :func:`ingest_dataset`, an idempotent state machine:

1. *new*: quality checks of each event file; on the first failure every file of the dataset is
   recorded in ``bad_data`` (commit), then moved to the bad-data directory;
2. otherwise the individual light curve and its quicklook are written atomically into
   ``outputs/TARGET/``, then ``metadata``, ``outputs`` and ``stats`` rows are committed in one
   transaction, then the files are moved into ``filesystem/TARGET/``;
3. *recorded but not moved* (a run died between the commit and a move): the moves are finished.
   A move interrupted between its hard link and its unlink is finished by removing the inbox
   name when both names are the same file.

Every step is safe to repeat, so a run killed at any point is completed by the next run. The
platform ledger (kinds ``lightcurve.ingest`` and ``lightcurve.composite``) gives each unit to one
process at a time: two ingests of one directory never run the same dataset together, and a unit
whose process died is taken over.

Composites: a dataset is a *member* of its (instrument, detector, target, grating, cenwave,
aperture) group once all its files are in ``filesystem/``. Table ``composite`` records the members
each composite was built from; after the datasets, exactly the composites whose membership
changed (or whose file is missing) are rebuilt, each by one process at a time, until none is
stale.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import signal
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa
from astropy.io import fits

from photonpipe.errors import ArchiveError, ConfigError
from photonpipe.lightcurves.dataset import Dataset, assemble_dataset, dataset_from_files
from photonpipe.lightcurves.extract import ExtractionParameters
from photonpipe.lightcurves.formats import (
    SPT,
    X1D,
    EventFile,
    LightCurveInputError,
    identify,
    read_events,
    read_x1d,
    validate_events,
)
from photonpipe.lightcurves.models import (
    TARGET_CHARS,
    BadData,
    Composite,
    Metadata,
    Output,
    Stats,
    TargetAlias,
)
from photonpipe.lightcurves.orbit import read_spt
from photonpipe.lightcurves.products import (
    Product,
    hlsp_filename,
    individual_filename,
    make_composite,
    make_individual,
)
from photonpipe.lightcurves.targets import register_targets, target_token
from photonpipe.platform.archive import TEMP_MARK, Archive
from photonpipe.platform.db import Database, upsert, utcnow
from photonpipe.platform.executor import run_work_units
from photonpipe.platform.ledger import WorkUnit, file_checksum, process_alive
from photonpipe.platform.logs import get_logger

log = get_logger(__name__)

KIND_INGEST = "lightcurve.ingest"
KIND_COMPOSITE = "lightcurve.composite"
AREA = "lightcurves"
INGEST = "ingest"
FILESYSTEM = "filesystem"
OUTPUTS = "outputs"
BAD_DATA = "bad_data"
#: Fault injection for the crash-safety tests: ``POINT`` or ``POINT@N`` kills the ingest
#: (batch process and worker, SIGKILL) the N-th time a worker reaches checkpoint POINT.
KILL_VARIABLE = "PHOTONPIPE_TEST_LIGHTCURVE_KILL"
#: The checkpoints :data:`KILL_VARIABLE` can name, in the order a dataset passes them.
CHECKPOINTS = (
    "dataset_start",
    "bad_committed",
    "bad_moved",
    "individual_written",
    "committed",
    "moved",
    "dataset_done",
    "composite_start",
    "composite_written",
    "composite_committed",
)

_INPUT_NAME = re.compile(
    r"^([a-z0-9]+)_(tag|corrtag|corrtag_a|corrtag_b|x1d|spt)\.fits$", re.IGNORECASE
)
_hits: Counter[str] = Counter()


def checkpoint(name: str, batch_pid: int | None = None) -> None:
    """Fault-injection hook: SIGKILL the ingest here when :data:`KILL_VARIABLE` says so."""
    spec = os.environ.get(KILL_VARIABLE)
    if not spec:
        return
    point, _, nth = spec.partition("@")
    if point != name:
        return
    _hits[name] += 1
    if _hits[name] != int(nth or 1):
        return
    if batch_pid is not None and batch_pid != os.getpid():
        os.kill(batch_pid, signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)


# --- layout -----------------------------------------------------------------------------------


def target_directory(target: str) -> str:
    """Directory name of a canonical target (:func:`~photonpipe.lightcurves.targets.target_token`).

    >>> target_directory("AV 75")
    'AV_75'
    """
    return target_token(target).directory


def normalise_target(name: str) -> str:
    """Target name as compared and stored: stripped, inner blanks collapsed, case kept."""
    return " ".join(str(name).split())


def alias_key(name: str) -> str:
    """Return an alias as stored and looked up: normalised, upper case (aliases ignore case)."""
    return normalise_target(name).upper()


@dataclass(frozen=True)
class ArchiveLayout:
    """Where the light-curve archive lives inside the archive root.

    Attributes
    ----------
    archive : Archive
        The platform archive (confinement, atomic moves, modes and group).
    ingest_dir : str
        Ingest directory relative to the archive root.
    """

    archive: Archive
    ingest_dir: str = f"{AREA}/{INGEST}"

    @classmethod
    def from_settings(
        cls, settings: Any, ingest_dir: str | os.PathLike[str] | None = None
    ) -> ArchiveLayout:
        """Layout from ``archive.*`` and ``lightcurve.ingest_dir`` (or an explicit directory).

        Raises
        ------
        ConfigError
            The ingest directory is outside the archive root.
        """
        archive = Archive.from_settings(settings)
        if ingest_dir is not None:
            return cls.for_archive(archive, ingest_dir, source="--ingest-dir")
        return cls.for_archive(archive, settings["lightcurve.ingest_dir"] or None)

    @classmethod
    def for_archive(
        cls,
        archive: Archive,
        ingest_dir: str | os.PathLike[str] | None = None,
        *,
        source: str = "lightcurve.ingest_dir",
    ) -> ArchiveLayout:
        """Layout of ``archive``; ``ingest_dir`` absolute or relative to the root.

        ``source`` names where the directory came from in the error message.
        """
        if ingest_dir is None:
            return cls(archive)
        path = Path(ingest_dir)
        if not path.is_absolute():
            path = archive.root / path
        path = Path(os.path.normpath(path))
        if not archive.contains(path) or path == archive.root:
            raise ConfigError(
                f"ingest directory {path} must be inside the archive root {archive.root} "
                "(files are moved from it into the archive; copy them into the archive root "
                f"first, e.g. into {archive.root / AREA / INGEST})",
                source,
            )
        return cls(archive, path.relative_to(archive.root).as_posix())

    @property
    def inbox(self) -> Path:
        """The ingest directory (absolute)."""
        return self.archive.path(self.ingest_dir)

    @property
    def area(self) -> Path:
        """``lightcurves/`` under the root: everything the archive pipeline owns."""
        return self.archive.path(AREA)

    def filesystem(self, target: str) -> str:
        """Relative directory of a target's archived files."""
        return f"{AREA}/{FILESYSTEM}/{target_directory(target)}"

    def outputs(self, target: str) -> str:
        """Relative directory of a target's light curves."""
        return f"{AREA}/{OUTPUTS}/{target_directory(target)}"

    @property
    def bad_data(self) -> str:
        """Relative directory of rejected files."""
        return f"{AREA}/{BAD_DATA}"


# --- quality checks ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Rejection:
    """Why a dataset is rejected: one of the ``bad_data`` reasons and the detail."""

    reason: str
    detail: str


def quality_check(path: Path) -> Rejection | None:
    """Run hstlc's checks of one event file in order; return the first failure or None.

    ``No events``, ``Bad EXPFLAG`` (EXPFLAG present and not NORMAL), ``Non-linear time`` (TIME
    decreases), ``Singular event`` (one distinct event time), ``Short exposure`` (EXPTIME < 1 s),
    then photonpipe's ``Bad TARGNAME`` (longer than the tables keep); a file that cannot be
    read as an event file is ``Unreadable file``.
    """
    try:
        events = read_events(path, validate=False)
    except LightCurveInputError as exc:
        return Rejection("Unreadable file", str(exc))
    return check_events(events)


def check_events(events: EventFile) -> Rejection | None:
    """:func:`quality_check` of an event file already read (with ``validate=False``)."""
    time = np.asarray(events.columns["TIME"], dtype=np.float64)
    name = events.path.name
    if len(time) == 0:
        return Rejection("No events", f"{name}: EVENTS table is empty")
    expflag = str(events.events_header.get("EXPFLAG", "NORMAL")).strip().upper()
    if expflag != "NORMAL":
        return Rejection("Bad EXPFLAG", f"{name}: EXPFLAG = {expflag!r}, not NORMAL")
    if len(time) > 1 and bool(np.any(np.diff(time) < 0)):
        first = int(np.argmax(np.diff(time) < 0))
        return Rejection(
            "Non-linear time",
            f"{name}: TIME decreases at event {first + 1} ({time[first]} -> {time[first + 1]} s)",
        )
    if len(np.unique(time)) == 1:
        return Rejection("Singular event", f"{name}: all {len(time)} events at TIME {time[0]} s")
    if events.exptime < 1.0:
        return Rejection("Short exposure", f"{name}: EXPTIME = {events.exptime} s < 1 s")
    targname = str(events.primary.get("TARGNAME", ""))
    if len(targname) > TARGET_CHARS:
        return Rejection(
            "Bad TARGNAME",
            f"{name}: TARGNAME is {len(targname)} characters long; the archive keeps target "
            f"names of at most {TARGET_CHARS}",
        )
    return None


# --- database helpers -------------------------------------------------------------------------


def canonical_target(session: Any, targname: str) -> str:
    """Canonical name of a TARGNAME through the alias table (itself when no alias).

    Aliases match whatever the case; a TARGNAME without alias keeps its case, so that names
    differing only in case stay different targets.
    """
    name = normalise_target(targname)
    alias = session.scalar(
        sa.select(TargetAlias.canonical).where(TargetAlias.alias == alias_key(name))
    )
    return normalise_target(alias) if alias else name


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _stats_row(product: Product, kind: str, target: str) -> dict[str, Any]:
    s = product.statistics
    return {
        "filename": product.path.name,
        "kind": kind,
        "target": target,
        "quantity": s.quantity,
        "mean": _finite(s.mean),
        "std": _finite(s.std),
        "poisson_factor": _finite(s.poisson_factor),
        "pearson_r": _finite(s.pearson_r),
        "pearson_p": _finite(s.pearson_p),
        "periodogram": bool(s.significant_period),
        "best_period": _finite(s.best_period) if s.significant_period else None,
        "period_verdict": s.period_verdict,
    }


def _header_value(header: fits.Header, key: str, integer: bool = False) -> Any:
    value = header.get(key)
    if value is None:
        return None
    if integer:
        try:
            return int(value)
        except (TypeError, ValueError):
            return None
    return str(value).strip()[:128]


def _metadata_row(
    path: Path,
    h: fits.Header,
    kind: str,
    rootname: str,
    target: str,
    directory: str,
    expstart: float,
) -> dict[str, Any]:
    """Build the ``metadata`` row of one file from its primary header ``h``."""
    return {
        "filename": path.name,
        "path": directory,
        "ingest_date": utcnow(),
        "telescop": _header_value(h, "TELESCOP"),
        "instrume": _header_value(h, "INSTRUME"),
        "targname": _header_value(h, "TARGNAME"),
        "cal_ver": _header_value(h, "CAL_VER"),
        "obstype": _header_value(h, "OBSTYPE"),
        "cenwave": _header_value(h, "CENWAVE", integer=True),
        "aperture": _header_value(h, "APERTURE"),
        "detector": _header_value(h, "DETECTOR"),
        "opt_elem": _header_value(h, "OPT_ELEM"),
        "fppos": _header_value(h, "FPPOS", integer=True),
        "dataset": rootname,
        "target": target,
        "kind": kind,
        "expstart": expstart,
    }


# --- moves ------------------------------------------------------------------------------------


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.samefile(b):
            return True
        if a.stat().st_size != b.stat().st_size:
            return False
    except FileNotFoundError:
        return False
    return file_checksum(a) == file_checksum(b)


def finish_move(archive: Archive, source: Path, directory: str) -> Path:
    """Move ``source`` into ``directory`` (relative to the root), completing an interrupted move.

    When the destination already holds the same file (a move killed between its hard link and
    its unlink, or a second delivery of identical bytes) the source name is removed.

    Raises
    ------
    ArchiveError
        The destination holds a different file of the same name.
    """
    destination = archive.path(directory, source.name)
    if destination.exists():
        if not source.exists():
            return destination
        if not _same_file(source, destination):
            raise ArchiveError(
                f"{source.name}: a different file of that name is already archived at "
                f"{destination}; the new one is left in {source.parent}"
            )
        archive.confine(source).unlink()
        return destination
    return archive.move(source, directory, source.name)


def remove_dead_temporaries(directory: Path) -> list[Path]:
    """Remove temporary files below ``directory`` whose writing process is dead.

    Atomic writes name their temporary ``.<name>.photonpipe-tmp-<pid>-<random>``; a SIGKILL
    leaves it behind. Temporaries of live processes (writes in progress) are kept.
    """
    removed: list[Path] = []
    if not directory.is_dir():
        return removed
    for temp in directory.rglob(f"*{TEMP_MARK}*"):
        try:
            pid = int(temp.name.split(TEMP_MARK, 1)[1].split("-", 1)[0])
        except (IndexError, ValueError):
            continue
        if pid != os.getpid() and not process_alive(pid):
            try:
                temp.unlink()
                removed.append(temp)
            except FileNotFoundError:
                continue
    return removed


def remove_orphan_outputs(layout: ArchiveLayout, rootname: str, keep: str) -> list[Path]:
    """Remove a dataset's light curves left by a died try outside its output directory ``keep``.

    A try that died after writing its light curve but before its commit leaves a file no row
    names; when the retry writes to another directory (the target's alias or mapping changed
    in between) that file would stay an orphan. Files in ``keep`` are overwritten atomically
    by the retry. Only the dataset's own names (``<rootname>_curve.fits`` and its PNG) are
    touched, and only while its work unit is held, so no other run's output is removed.

    Returns
    -------
    list of Path
        The files removed.
    """
    outputs = layout.archive.path(AREA, OUTPUTS)
    keep_dir = layout.archive.path(keep)
    removed: list[Path] = []
    if not outputs.is_dir():
        return removed
    for name in (individual_filename(rootname), Path(individual_filename(rootname)).stem + ".png"):
        for path in outputs.glob(f"*/{name}"):
            if path.parent != keep_dir and path.is_file() and not path.is_symlink():
                path.unlink(missing_ok=True)
                removed.append(path)
    if removed:
        log.info("removed orphan outputs of %s: %s", rootname, [str(p) for p in removed])
    return removed


# --- one dataset ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetTask:
    """Payload of one ``lightcurve.ingest`` work unit.

    Attributes
    ----------
    rootname : str
        Dataset (HST rootname, lower case).
    files : tuple of str
        File names of the dataset found in the ingest directory.
    """

    rootname: str
    files: tuple[str, ...]
    layout: ArchiveLayout
    database: Database
    parameters: ExtractionParameters
    plot: bool = True
    batch_pid: int = 0


def _apply_target(dataset: Dataset, target: str) -> None:
    """Give the dataset's headers the canonical target (aliases share one composite)."""
    for events in dataset.events:
        events.primary["TARGNAME"] = target
    if dataset.x1d is not None:
        dataset.x1d.primary["TARGNAME"] = target


def _reject(task: DatasetTask, names: Sequence[str], rejection: Rejection) -> dict[str, Any]:
    layout = task.layout
    now = utcnow()
    with task.database.session() as session:
        upsert(
            session,
            BadData,
            [
                {
                    "filename": name,
                    "ingest_date": now,
                    "reason": rejection.reason,
                    "dataset": task.rootname,
                    "detail": rejection.detail[:4000],
                }
                for name in names
            ],
            key=("filename",),
            update=(),
        )
    checkpoint("bad_committed", task.batch_pid)
    for name in names:
        source = layout.inbox / name
        if source.exists():
            finish_move(layout.archive, source, layout.bad_data)
            checkpoint("bad_moved", task.batch_pid)
    log.info(
        "rejected %s: %s (%s)", task.rootname, rejection.reason, rejection.detail,
        extra={"unit": task.rootname},
    )  # fmt: skip
    return {"rootname": task.rootname, "status": "rejected", "reason": rejection.reason}


def ingest_dataset(task: DatasetTask) -> dict[str, Any]:
    """Ingest one dataset (see the module docstring); safe to run again after any interruption.

    Returns
    -------
    dict
        ``rootname``, ``status`` (``archived``, ``rejected`` or ``completed``: an earlier run's
        moves finished), ``reason`` for a rejection, ``target``.
    """
    checkpoint("dataset_start", task.batch_pid)
    layout, archive = task.layout, task.layout.archive
    names = sorted(set(task.files))
    with task.database.session() as session:
        recorded = {
            m.filename: (m, o)
            for m, o in session.execute(
                sa.select(Metadata, Output)
                .outerjoin(Output, Output.metadata_id == Metadata.id)
                .where(Metadata.dataset == task.rootname)
            ).all()
        }
        rejected = set(
            session.scalars(sa.select(BadData.filename).where(BadData.dataset == task.rootname))
        )
        session.expunge_all()
    # Recorded earlier (rejected, or committed and not yet moved): finish the moves.
    if names and all(n in rejected for n in names):
        for name in names:
            if (layout.inbox / name).exists():
                finish_move(archive, layout.inbox / name, layout.bad_data)
        return {"rootname": task.rootname, "status": "completed", "reason": "rejected earlier"}
    if names and all(n in recorded for n in names):
        complete = all(
            o is not None
            and o.individual_path
            and archive.path(o.individual_path, o.individual_filename or "").is_file()
            for m, o in recorded.values()
        )
        if complete:
            target = next(iter(recorded.values()))[0].target
            for name in names:
                if (layout.inbox / name).exists():
                    finish_move(archive, layout.inbox / name, recorded[name][0].path)
                    checkpoint("moved", task.batch_pid)
            return {"rootname": task.rootname, "status": "completed", "target": target}
    # New (or an earlier try died before its commit): the whole state machine.
    paths: dict[str, Path] = {}
    for name in names:
        if (layout.inbox / name).exists():
            paths[name] = layout.inbox / name
    for name, (meta, _) in recorded.items():
        if name not in paths and archive.path(meta.path, name).exists():
            paths[name] = archive.path(meta.path, name)
    if not paths:
        raise ArchiveError(f"{task.rootname}: none of its files {names} is in {layout.inbox}")
    # A rejection records and moves only what came in now, never files already archived.
    incoming = [n for n in sorted(paths) if paths[n].parent == layout.inbox]
    kinds: dict[str, str] = {}
    for name, path in sorted(paths.items()):
        try:
            kinds[name] = identify(path)
        except LightCurveInputError as exc:
            return _reject(task, incoming, Rejection("Unreadable file", str(exc)))
    event_names = [n for n in sorted(paths) if kinds[n] not in (X1D, SPT)]
    if not event_names:
        return _reject(
            task,
            incoming,
            Rejection("No events", f"{task.rootname}: no event file (tag or corrtag), only x1d"),
        )
    # each file is read once: the quality checks and the light curve use the same arrays
    event_files: dict[str, EventFile] = {}
    for name in event_names:
        try:
            event_files[name] = read_events(paths[name], validate=False)
        except LightCurveInputError as exc:
            return _reject(task, incoming, Rejection("Unreadable file", str(exc)))
        rejection = check_events(event_files[name])
        if rejection is not None:
            return _reject(task, incoming, rejection)
    try:
        for events in event_files.values():
            validate_events(events)
        x1d_names = [n for n in sorted(paths) if kinds[n] == X1D]
        if len(x1d_names) > 1:
            raise LightCurveInputError(paths[x1d_names[1]], f"second x1d for {task.rootname}")
        x1d = read_x1d(paths[x1d_names[0]]) if x1d_names else None
        spt_names = [n for n in sorted(paths) if kinds[n] == SPT]
        orbit = read_spt(paths[spt_names[0]]) if spt_names else None
        dataset = dataset_from_files(
            [paths[n] for n in sorted(paths)],
            [event_files[n] for n in event_names],
            x1d,
            orbit=orbit,
        )
        targname = str(dataset.keyword("TARGNAME"))
        with task.database.session() as session:
            target = canonical_target(session, targname)
            register_targets(session, [target])
        _apply_target(dataset, target)
        remove_orphan_outputs(layout, task.rootname, keep=layout.outputs(target))
        out_dir = archive.makedirs(layout.outputs(target))
        product = make_individual(dataset, out_dir, task.parameters, plot=task.plot)
    except LightCurveInputError as exc:
        return _reject(task, incoming, Rejection("Unreadable file", str(exc)))
    for written in (product.path, product.quicklook):
        if written is not None:
            archive.set_permissions(written)
    checkpoint("individual_written", task.batch_pid)
    directory = layout.filesystem(target)
    headers = {n: e.primary for n, e in event_files.items()}
    if x1d is not None:
        headers[x1d_names[0]] = x1d.primary
    for name in spt_names:
        headers[name] = fits.getheader(paths[name], 0)
    rows = [
        _metadata_row(
            paths[n], headers[n], kinds[n], task.rootname, target, directory, dataset.expstart
        )
        for n in sorted(paths)
    ]
    out_rel = layout.outputs(target)
    with task.database.session() as session:
        upsert(session, Metadata, rows, key=("filename",))
        ids = session.scalars(
            sa.select(Metadata.id).where(Metadata.filename.in_([r["filename"] for r in rows]))
        ).all()
        upsert(
            session,
            Output,
            [
                {
                    "metadata_id": i,
                    "individual_path": out_rel,
                    "individual_filename": product.path.name,
                }
                for i in ids
            ],
            key=("metadata_id",),
        )
        upsert(session, Stats, [_stats_row(product, "individual", target)], key=("filename",))
    checkpoint("committed", task.batch_pid)
    for name in sorted(paths):
        source = layout.inbox / name
        if source.exists():
            finish_move(archive, source, directory)
            checkpoint("moved", task.batch_pid)
    checkpoint("dataset_done", task.batch_pid)
    return {"rootname": task.rootname, "status": "archived", "target": target}


# --- composites -------------------------------------------------------------------------------


@dataclass
class GroupState:
    """A composite group: its archived members now and those its composite was built from."""

    filename: str
    target: str
    members: list[str]
    recorded: list[str]
    exists: bool
    built: str = ""

    @property
    def stale(self) -> bool:
        """Membership changed since the composite was built, or its file is missing."""
        return self.members != self.recorded or (bool(self.members) and not self.exists)

    @property
    def fingerprint(self) -> str:
        """Checksum of this state for the ledger (a new state is new work)."""
        text = "|".join([",".join(self.members), ",".join(self.recorded), str(self.exists)])
        return "state:" + hashlib.sha256(f"{text}|{self.built}".encode()).hexdigest()


def _group_of(meta: Metadata) -> str:
    return hlsp_filename(
        (
            meta.instrume or "",
            meta.detector or "",
            target_token(meta.target).hlsp,
            meta.opt_elem or "",
            str(meta.cenwave if meta.cenwave is not None else ""),
            meta.aperture or "",
        )
    )


def _archived_members(
    layout: ArchiveLayout, rows: Iterable[Metadata]
) -> dict[str, tuple[str, list[Metadata]]]:
    """Group filename → (target, metadata rows of its archived member datasets)."""
    by_dataset: dict[str, list[Metadata]] = {}
    for meta in rows:
        by_dataset.setdefault(meta.dataset, []).append(meta)
    groups: dict[str, tuple[str, list[Metadata]]] = {}
    inbox = layout.inbox
    for files in by_dataset.values():
        archived = all(
            layout.archive.path(m.path, m.filename).is_file() and not (inbox / m.filename).exists()
            for m in files
        )
        if not archived:
            continue
        events = [m for m in files if m.kind not in (X1D, SPT)] or files
        group = _group_of(events[0])
        groups.setdefault(group, (events[0].target, []))[1].extend(files)
    return groups


def composite_states(
    layout: ArchiveLayout, database: Database, target: str | None = None
) -> dict[str, GroupState]:
    """State of every composite group (of one target, when given)."""
    with database.session() as session:
        query = sa.select(Metadata)
        composites = sa.select(Composite)
        if target is not None:
            query = query.where(Metadata.target == target)
            composites = composites.where(Composite.target == target)
        rows = session.scalars(query).all()
        recorded = {c.filename: c for c in session.scalars(composites).all()}
        session.expunge_all()
    states: dict[str, GroupState] = {}
    for filename, (group_target, files) in _archived_members(layout, rows).items():
        members = sorted({m.dataset for m in files})
        states[filename] = GroupState(filename, group_target, members, [], False)
    for filename, comp in recorded.items():
        state = states.setdefault(filename, GroupState(filename, comp.target, [], [], False))
        state.recorded = [m for m in comp.members.split(",") if m]
        state.exists = layout.archive.path(comp.path, filename).is_file()
        state.built = comp.built.isoformat()
    return states


@dataclass(frozen=True)
class CompositeTask:
    """Payload of one ``lightcurve.composite`` work unit (one group's HLSP file name)."""

    filename: str
    target: str
    layout: ArchiveLayout
    database: Database
    parameters: ExtractionParameters
    plot: bool = True
    batch_pid: int = 0


def build_composite(task: CompositeTask) -> dict[str, Any]:
    """(Re)build one composite from its archived members as the database has them now.

    A group with no member left loses its composite (file, quicklook, rows).
    """
    checkpoint("composite_start", task.batch_pid)
    layout, archive = task.layout, task.layout.archive
    with task.database.session() as session:
        rows = session.scalars(sa.select(Metadata).where(Metadata.target == task.target)).all()
        session.expunge_all()
    target, files = _archived_members(layout, rows).get(task.filename, (task.target, []))
    out_rel = layout.outputs(target)
    members = sorted({m.dataset for m in files})
    if not members:
        for name in (task.filename, Path(task.filename).with_suffix(".png").name):
            archive.remove(out_rel, name, missing_ok=True)
        with task.database.session() as session:
            session.execute(sa.delete(Composite).where(Composite.filename == task.filename))
            session.execute(sa.delete(Stats).where(Stats.filename == task.filename))
            session.execute(
                sa.update(Output)
                .where(Output.composite_filename == task.filename)
                .values(composite_path=None, composite_filename=None)
            )
        return {"composite": task.filename, "members": []}
    datasets = []
    for rootname in members:
        paths = [archive.path(m.path, m.filename) for m in files if m.dataset == rootname]
        dataset = assemble_dataset(paths)
        _apply_target(dataset, target)
        datasets.append(dataset)
    product = make_composite(
        datasets, archive.makedirs(out_rel), task.parameters, plot=task.plot, filename=task.filename
    )
    if product.path.name != task.filename:
        raise ArchiveError(f"composite written as {product.path.name}, expected {task.filename}")
    for written in (product.path, product.quicklook):
        if written is not None:
            archive.set_permissions(written)
    checkpoint("composite_written", task.batch_pid)
    ids = [m.id for m in files]
    with task.database.session() as session:
        upsert(
            session,
            Composite,
            [
                {
                    "filename": task.filename,
                    "path": out_rel,
                    "target": target,
                    "members": ",".join(members),
                    "n_members": len(members),
                    "built": utcnow(),
                }
            ],
            key=("filename",),
        )
        session.execute(
            sa.update(Output)
            .where(Output.metadata_id.in_(ids))
            .values(composite_path=out_rel, composite_filename=task.filename)
        )
        session.execute(
            sa.update(Output)
            .where(Output.composite_filename == task.filename, Output.metadata_id.not_in(ids))
            .values(composite_path=None, composite_filename=None)
        )
        upsert(session, Stats, [_stats_row(product, "composite", target)], key=("filename",))
    checkpoint("composite_committed", task.batch_pid)
    return {"composite": task.filename, "members": members}


# --- the batch --------------------------------------------------------------------------------


#: What ingest recognises, for messages about other files.
UNRECOGNISED_HINT = "tag, corrtag or x1d files (*_tag.fits, *_corrtag[_a|_b].fits, *_x1d.fits)"


def unrecognised_files(inbox: Path) -> list[str]:
    """Files of the ingest directory that :func:`gather` leaves alone (sorted names).

    Hidden files (the archive's temporaries among them) are not listed.
    """
    if not inbox.is_dir():
        return []
    return sorted(
        entry.name
        for entry in inbox.iterdir()
        if not entry.name.startswith(".")
        and entry.is_file()
        and not (_INPUT_NAME.match(entry.name) and not entry.is_symlink())
    )


def gather(inbox: Path) -> dict[str, list[str]]:
    """Tag, corrtag, x1d and spt files of the ingest directory grouped by rootname (sorted).

    FUV ``_corrtag_a``/``_corrtag_b``, their ``_x1d`` and their support file ``_spt`` (HST's
    orbital elements, for barycentric times) form one dataset. Other files are left alone.
    """
    groups: dict[str, list[str]] = {}
    if not inbox.is_dir():
        return groups
    for entry in sorted(inbox.iterdir()):
        match = _INPUT_NAME.match(entry.name)
        if match and entry.is_file() and not entry.is_symlink():
            groups.setdefault(match.group(1).lower(), []).append(entry.name)
    return groups


@dataclass
class IngestReport:
    """What one ingest did.

    Attributes
    ----------
    found : int
        Datasets found in the ingest directory.
    archived : list of str
        Datasets ingested (light curve written, files in ``filesystem/``).
    rejected : dict
        Reason → rejected datasets.
    completed : list of str
        Datasets an earlier, interrupted run had recorded; their moves were finished.
    already_done, busy : list of str
        Datasets the ledger skipped: done before with the same files, or being ingested by
        another live process.
    failed : dict
        Dataset or composite → error (left in place; the next run tries again).
    composites : list of str
        Composites rebuilt (or removed when they lost every member).
    seconds : float
        Wall-clock duration [s].
    unrecognised : list of str
        Files of the ingest directory that are no tag, corrtag or x1d file (left alone).
    inbox : str
        The ingest directory.
    """

    found: int = 0
    archived: list[str] = field(default_factory=list)
    rejected: dict[str, list[str]] = field(default_factory=dict)
    completed: list[str] = field(default_factory=list)
    already_done: list[str] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    composites: list[str] = field(default_factory=list)
    seconds: float = 0.0
    unrecognised: list[str] = field(default_factory=list)
    inbox: str = ""

    @property
    def ok(self) -> bool:
        """No dataset or composite failed."""
        return not self.failed

    def summary(self) -> str:
        """Multi-line summary: ingested, rejected by reason, composites rebuilt, failures."""
        first = (
            f"{self.found} datasets found: {len(self.archived)} ingested, "
            f"{sum(len(v) for v in self.rejected.values())} rejected, "
            f"{len(self.completed)} completed from an interrupted run, "
            f"{len(self.already_done)} already done, {len(self.busy)} busy elsewhere, "
            f"{len(self.failed)} failed ({self.seconds:.1f} s)"
        )
        lines = [first]
        if self.unrecognised:
            shown = ", ".join(self.unrecognised[:5]) + (
                ", ..." if len(self.unrecognised) > 5 else ""
            )
            lines.append(
                f"{len(self.unrecognised)} file{'s' if len(self.unrecognised) > 1 else ''} in "
                f"{self.inbox or 'the ingest directory'}: not {UNRECOGNISED_HINT}, left there: "
                f"{shown}"
            )
        for reason, datasets in sorted(self.rejected.items()):
            lines.append(f"  rejected, {reason}: {len(datasets)} ({', '.join(sorted(datasets))})")
        lines.append(f"{len(self.composites)} composites rebuilt")
        lines.extend(f"  {name}" for name in self.composites)
        lines.extend(f"FAILED {key}: {error}" for key, error in sorted(self.failed.items()))
        return "\n".join(lines)


def _dataset_units(
    layout: ArchiveLayout,
    database: Database,
    parameters: ExtractionParameters,
    plot: bool,
    report: IngestReport,
) -> list[WorkUnit]:
    units = []
    for rootname, names in gather(layout.inbox).items():
        try:
            checksum = file_checksum(*(layout.inbox / n for n in names))
        except FileNotFoundError:  # another ingest is moving this dataset right now
            report.busy.append(rootname)
            continue
        task = DatasetTask(rootname, tuple(names), layout, database, parameters, plot, os.getpid())
        key = rootname + ":" + hashlib.sha256(",".join(names).encode()).hexdigest()[:16]
        units.append(WorkUnit(key=key, payload=task, checksum=checksum))
    return units


def ingest(
    layout: ArchiveLayout,
    database: Database,
    parameters: ExtractionParameters | None = None,
    *,
    settings: Any | None = None,
    plot: bool = True,
    backend: str | None = None,
    workers: int | None = None,
    retry_failed: bool = False,
    progress: bool | None = None,
) -> IngestReport:
    """Ingest the datasets of the ingest directory and rebuild the composites that changed.

    Parameters
    ----------
    layout : ArchiveLayout
        Archive and ingest directory.
    database : Database
        Database with the light-curve tables (and the ledger).
    parameters : ExtractionParameters, optional
        Light-curve extraction (bin width, band, excluded windows).
    settings : Settings, optional
        Executor settings (backend, workers, tries, start method, Dask scheduler).
    plot : bool
        Write quicklook PNGs.
    backend, workers, retry_failed, progress
        Passed to :func:`photonpipe.platform.executor.run_work_units`.

    Returns
    -------
    IngestReport
    """
    start = time.perf_counter()
    parameters = parameters or ExtractionParameters()
    archive = layout.archive
    archive.create()
    archive.makedirs(layout.ingest_dir)
    for sub in (FILESYSTEM, OUTPUTS, BAD_DATA):
        archive.makedirs(AREA, sub)
    remove_dead_temporaries(layout.area)
    report = IngestReport(inbox=str(layout.inbox))
    report.unrecognised = unrecognised_files(layout.inbox)
    units = _dataset_units(layout, database, parameters, plot, report)
    report.found = len(units)
    common: dict[str, Any] = {
        "database": database,
        "settings": settings,
        "backend": backend,
        "workers": workers,
        "retry_failed": retry_failed,
        "progress": progress,
    }
    batch = run_work_units(ingest_dataset, units, kind=KIND_INGEST, **common)
    names = {u.key: u.payload.rootname for u in units}
    report.already_done = [names[k] for k in batch.already_done]
    report.busy += [names[k] for k in batch.busy]
    report.failed.update({names[k]: e for k, e in batch.failed.items()})
    for key, result in batch.results.items():
        status = result.get("status") if isinstance(result, dict) else None
        if status == "archived":
            report.archived.append(names[key])
        elif status == "rejected":
            report.rejected.setdefault(str(result["reason"]), []).append(names[key])
        else:
            report.completed.append(names[key])
    # Composites: rebuild the stale ones until none is left that this process can take.
    attempted: set[str] = set()
    for _ in range(10):
        stale = [s for s in composite_states(layout, database).values() if s.stale]
        units = [
            WorkUnit(
                key=s.filename,
                payload=CompositeTask(
                    s.filename, s.target, layout, database, parameters, plot, os.getpid()
                ),
                checksum=s.fingerprint,
            )
            for s in stale
            if s.fingerprint not in attempted
        ]
        if not units:
            break
        attempted.update(u.checksum for u in units if u.checksum)
        batch = run_work_units(build_composite, units, kind=KIND_COMPOSITE, **common)
        report.composites += [k for k in batch.done if k not in report.composites]
        report.failed.update(batch.failed)
        if not batch.done:
            break  # the rest is failed, or held by another run that re-checks when it is done
    report.seconds = time.perf_counter() - start
    return report
