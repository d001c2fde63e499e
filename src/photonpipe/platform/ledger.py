"""Resumable work-unit ledger kept in the database.

A batch (ingesting files, building plates, reducing frames) is split into work units, each
identified by ``(kind, key)`` and carrying a checksum of its inputs. The ledger records for each
unit its status, the number of tries, the checksum its last success was computed from, the error
of its last failure, who is working on it and when. That record is what makes a batch resumable:

* a unit whose last success was recorded with the same input checksum is never run again;
* a unit whose input checksum changed since its success is run again;
* a failed unit is retried until it has been tried ``max_tries`` times, then reported with its
  error (and left alone by later runs unless they ask to retry failures or its input changed);
* a unit left ``running`` by a process that died (killed, power loss) is taken over by the next
  run: immediately when the owner was a process on this host that no longer exists, otherwise
  after ``lease`` seconds without a heartbeat.

A kill costs nothing. A claim only reserves a unit; its try is charged when a worker starts it
(:meth:`Ledger.start`, or at the latest when its result is recorded). A unit claimed but never
started goes back untouched. A try whose process died is counted in ``deaths``, not against the
try limit, as long as no attempt of the unit ever raised (``failures`` is 0): a unit killed any
number of times is simply run again by the next plain run (up to ``max_deaths`` deaths;
beyond them a death counts as a try, so a unit that kills every process running it is
bounded). A *transient* fault (disk full, database busy or locked, connection lost; see
:func:`transient_fault`) is never charged and
never makes a unit failed for good; an *input* error (a bad file: the same input fails the same
way every time) uses up the unit's tries at once.

Claims are compare-and-swap updates on the unit's row (status, try counter and owner), so two
runs of the same batch started at once share the units instead of doing any of them twice.

Guarantee: a unit is *recorded* as succeeded exactly once per input checksum, and a recorded
success is never redone. Work is delivered at least once: a unit whose process is killed after
finishing its work but before the success is recorded runs again, so a unit's work must be
idempotent (photonpipe's steps write their products atomically, which makes them so).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import socket
import sqlite3
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from photonpipe.platform.db import Base, Database, UTCDateTime, upsert, utcnow

PENDING = "pending"
RUNNING = "running"
DONE = "done"
FAILED = "failed"
STATUSES = (PENDING, RUNNING, DONE, FAILED)

_MAX_ERROR_CHARS = 4000
_MAX_RESULT_CHARS = 16000
_CLAIM_CHUNK = 200


class WorkUnitRecord(Base):
    """One row of the ledger: the state of one work unit."""

    __tablename__ = "work_unit"
    __table_args__ = (sa.UniqueConstraint("kind", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(64))
    key: Mapped[str] = mapped_column(sa.String(512))
    status: Mapped[str] = mapped_column(sa.String(16), index=True)
    tries: Mapped[int] = mapped_column(default=0)
    deaths: Mapped[int] = mapped_column(default=0, server_default="0")
    failures: Mapped[int] = mapped_column(default=0, server_default="0")
    checksum: Mapped[str | None] = mapped_column(sa.String(128))
    done_checksum: Mapped[str | None] = mapped_column(sa.String(128))
    error: Mapped[str | None] = mapped_column(sa.Text)
    result: Mapped[str | None] = mapped_column(sa.Text)
    owner: Mapped[str | None] = mapped_column(sa.String(255))
    created: Mapped[Any] = mapped_column(UTCDateTime)
    started: Mapped[Any] = mapped_column(UTCDateTime, nullable=True)
    finished: Mapped[Any] = mapped_column(UTCDateTime, nullable=True)
    heartbeat: Mapped[Any] = mapped_column(UTCDateTime, nullable=True)


@dataclass(frozen=True)
class WorkUnit:
    """A piece of work for :func:`photonpipe.platform.executor.run_work_units`.

    Parameters
    ----------
    key : str
        Identity of the unit within its kind (e.g. a file name or plate-MJD); ≤ 512 characters.
    payload : object
        Argument passed to the work function; must be picklable.
    checksum : str, optional
        Fingerprint of the unit's inputs (see :func:`file_checksum`). When it differs from the
        checksum of the unit's recorded success, the unit is redone. None: never redone.
    """

    key: str
    payload: Any = None
    checksum: str | None = None


@dataclass
class Plan:
    """How a set of units stands in the ledger before a run."""

    todo: list[WorkUnit] = field(default_factory=list)
    already_done: list[str] = field(default_factory=list)
    exhausted: dict[str, str] = field(default_factory=dict)
    busy: list[str] = field(default_factory=list)


def process_start_time(pid: int) -> str:
    """Return a process's start time in clock ticks since boot (Linux), or '' where unknown.

    Together with the pid it identifies a process even after the pid is reused.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


def process_alive(pid: int, start_time: str = "") -> bool:
    """Whether a process on this host is alive.

    Parameters
    ----------
    pid : int
        Process id.
    start_time : str
        Its :func:`process_start_time`, if known: a different process that reuses the pid
        then counts as dead.

    Returns
    -------
    bool
        False when the process is gone, a zombie (exited, not yet reaped by its parent), or
        replaced by another process with the same pid.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:  # no /proc on this system: the signal check is all there is
        return True
    if fields[0] in ("Z", "X"):
        return False
    return not start_time or fields[19] == start_time


def _owner_alive(owner: str) -> bool | None:
    """Whether the process named by an owner string lives (None: not on this host)."""
    try:
        host, pid_text, start, _ = owner.split(":", 3)
        pid = int(pid_text)
    except ValueError:
        return None
    if host != socket.gethostname():
        return None
    return process_alive(pid, start)


def file_checksum(*paths: str | Path, chunk_size: int = 1 << 20) -> str:
    """SHA-256 of the contents of one or more files, in order.

    Parameters
    ----------
    *paths : str or Path
        Input files of a work unit.
    chunk_size : int
        Read size [bytes].

    Returns
    -------
    str
        ``"sha256:<hex>"``.
    """
    digest = hashlib.sha256()
    for path in paths:
        with Path(path).open("rb") as handle:
            while block := handle.read(chunk_size):
                digest.update(block)
        digest.update(b"\0")
    return "sha256:" + digest.hexdigest()


#: OS errors that say nothing about the unit's input and may pass: disk full, quota, resources
#: busy or temporarily unavailable, network and connection failures.
TRANSIENT_ERRNOS = frozenset(
    {
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EAGAIN,
        errno.EBUSY,
        errno.ENOMEM,
        errno.ETIMEDOUT,
        errno.ECONNRESET,
        errno.ECONNREFUSED,
        errno.ECONNABORTED,
        errno.EPIPE,
        errno.ENETUNREACH,
        errno.EHOSTUNREACH,
        errno.ENETDOWN,
    }
)
#: Database driver messages of faults that pass (SQLite, PostgreSQL, MariaDB), lower case.
TRANSIENT_DATABASE_MESSAGES = (
    "database is locked",
    "database table is locked",
    "database or disk is full",
    "disk i/o error",
    "deadlock",
    "lock wait timeout",
    "lost connection",
    "server has gone away",
    "server closed the connection",
    "connection refused",
    "could not connect",
    "can't connect",
    "connection reset",
    "connection timed out",
    "too many connections",
    "terminating connection",
    "the database system is",
    "could not serialize access",
    "no space left on device",
)


def transient_fault(exc: BaseException) -> str | None:
    """Whether an exception is a fault that may pass by itself; the reason, or None.

    Transient: an ``OSError`` with an errno of :data:`TRANSIENT_ERRNOS` (disk full, quota,
    connection lost, ...), a database error whose driver message is one of
    :data:`TRANSIENT_DATABASE_MESSAGES` (busy or locked, disk full, connection lost) or whose
    connection was invalidated. The exception's causes are examined too.

    Returns
    -------
    str or None
        A short reason (e.g. ``"No space left on device"``), or None for other errors.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in TRANSIENT_ERRNOS:
            return current.strerror or os.strerror(current.errno or 0)
        if isinstance(current, sa.exc.DBAPIError) and current.connection_invalidated:
            return "database connection lost"
        if isinstance(current, sa.exc.DBAPIError | sqlite3.Error) or type(current).__module__.split(
            "."
        )[0] in ("psycopg", "pymysql", "sqlite3"):
            orig = getattr(current, "orig", None)
            text = str(orig if orig is not None else current).lower()
            for marker in TRANSIENT_DATABASE_MESSAGES:
                if marker in text:
                    return marker
        current = current.__cause__ or current.__context__
    return None


def _json_default(value: Any) -> Any:
    """JSON for the few non-JSON types a result may hold: numpy scalars, paths, datetimes."""
    if isinstance(value, Path | datetime):
        return str(value)
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "shape", None) == ():
        return item()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def _json_or_none(value: Any) -> str | None:
    if value is None:
        return None
    try:
        text = json.dumps(value, default=_json_default)
    except (TypeError, ValueError):
        return None
    return text if len(text) <= _MAX_RESULT_CHARS else None


#: Deaths of a unit's process given back before they count as tries (see :class:`Ledger`):
#: more than a run is plausibly killed while one unit runs, few enough that a unit that
#: crashes its worker every time (redelivered by a broker) ends as failed.
MAX_DEATHS = 20


class Ledger:
    """The ledger of one kind of work unit.

    Parameters
    ----------
    database : Database
        Where the ledger lives.
    kind : str
        Kind of work (e.g. ``"lightcurves.ingest"``); ≤ 64 characters.
    max_tries : int
        Attempts before a unit is left failed.
    lease : float
        Seconds without heartbeat after which a running unit of a process on another host is
        considered abandoned [s].
    max_deaths : int
        Deaths of a unit's process that are given back (not charged as tries); beyond them a
        death counts as a try, so a unit that kills every process running it is bounded.
    """

    def __init__(
        self,
        database: Database,
        kind: str,
        *,
        max_tries: int = 3,
        lease: float = 600.0,
        max_deaths: int = MAX_DEATHS,
    ) -> None:
        if not 0 < len(kind) <= 64:
            raise ValueError("work-unit kind must have 1 to 64 characters")
        self.database = database
        self.kind = kind
        self.max_tries = max_tries
        self.lease = lease
        self.max_deaths = max_deaths
        pid = os.getpid()
        self.owner = (
            f"{socket.gethostname()}:{pid}:{process_start_time(pid)}:{uuid.uuid4().hex[:12]}"
        )

    def _table(self) -> sa.Table:
        return WorkUnitRecord.__table__  # type: ignore[return-value]

    def _stale(self, owner: str | None, heartbeat: Any) -> bool:
        if owner is None:
            return True
        alive = _owner_alive(owner)
        if alive is not None:
            return not alive
        return heartbeat is None or heartbeat < utcnow() - timedelta(seconds=self.lease)

    def _after_death(self, row: Any) -> tuple[int, int]:
        """Return (tries, deaths) of a unit whose running try died with its process.

        A try no worker started was never charged. A started try that died is a death; it is
        given back to the unit unless an attempt of the unit ever raised (then a crash of its
        process is likely the unit's doing, and the try counts), or the unit has already died
        ``max_deaths`` times: a unit that kills every process that runs it (a crash in a
        library, memory exhaustion) then uses up its tries and is reported, instead of being
        run again for ever.
        """
        if row.started is None:
            return row.tries, row.deaths
        deaths = row.deaths + 1
        refund = 1 if row.failures == 0 and deaths <= self.max_deaths else 0
        return max(row.tries - refund, 0), deaths

    def plan(self, units: Sequence[WorkUnit], *, retry_failed: bool = False) -> Plan:
        """Register units (new ones as pending) and sort them by what a run should do.

        Units left running by a process that died are taken back first (see
        :meth:`_after_death`): they become pending, or failed when their last try died after
        an attempt of theirs had raised.

        Parameters
        ----------
        units : sequence of WorkUnit
            Units of the batch; keys must be unique.
        retry_failed : bool
            Give units that used up their tries another ``max_tries`` attempts.

        Returns
        -------
        Plan
            ``todo`` (to run, in the given order), ``already_done`` (succeeded with the same
            checksum), ``exhausted`` (failed ``max_tries`` times; key to last error) and
            ``busy`` (being run by another live process).
        """
        keys = [u.key for u in units]
        if len(set(keys)) != len(keys):
            raise ValueError(f"duplicate work-unit keys in batch {self.kind!r}")
        now = utcnow()
        table = self._table()
        with self.database.session() as session:
            upsert(
                session,
                table,
                [
                    {
                        "kind": self.kind,
                        "key": u.key,
                        "status": PENDING,
                        "tries": 0,
                        "deaths": 0,
                        "failures": 0,
                        "checksum": u.checksum,
                        "created": now,
                    }
                    for u in units
                ],
                key=("kind", "key"),
                update=(),
            )
            rows = {}
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                query = sa.select(
                    table.c.key,
                    table.c.status,
                    table.c.tries,
                    table.c.deaths,
                    table.c.failures,
                    table.c.started,
                    table.c.checksum,
                    table.c.done_checksum,
                    table.c.error,
                    table.c.owner,
                    table.c.heartbeat,
                ).where(table.c.kind == self.kind, table.c.key.in_(chunk))
                rows.update({r.key: r for r in session.execute(query)})
            plan = Plan()
            reset: list[str] = []
            reaped: list[dict[str, Any]] = []
            for unit in units:
                row = rows[unit.key]
                # The input changed since the recorded success, or since the failed attempt.
                last = row.done_checksum if row.status == DONE else row.checksum
                changed = unit.checksum is not None and last not in (None, unit.checksum)
                if row.status == DONE and not changed:
                    plan.already_done.append(unit.key)
                    continue
                if row.status == RUNNING and not self._stale(row.owner, row.heartbeat):
                    plan.busy.append(unit.key)
                    continue
                status, tries, error = row.status, row.tries, row.error
                if row.status == RUNNING:
                    # Its process died (killed, crashed, power loss): take it back.
                    tries, deaths = self._after_death(row)
                    status = PENDING
                    if tries >= self.max_tries and not (retry_failed or changed):
                        status = FAILED
                        cause = (
                            f"after an earlier attempt raised: {row.error or 'failed'}"
                            if row.failures
                            else f"{deaths} times (each death beyond {self.max_deaths} counts "
                            "as a try)"
                        )
                        error = (
                            f"abandoned: the process running try {row.tries} of "
                            f"{self.max_tries} died ({row.owner}) {cause}"
                        )
                    reaped.append(
                        {
                            "b_key": unit.key,
                            "b_owner": row.owner,
                            "v_status": status,
                            "v_tries": tries,
                            "v_deaths": deaths,
                            "v_error": error,
                        }
                    )
                if status == FAILED and tries >= self.max_tries and not (retry_failed or changed):
                    plan.exhausted[unit.key] = error or "failed"
                    continue
                if (changed or retry_failed) and (status != PENDING or tries):
                    reset.append(unit.key)
                plan.todo.append(unit)
            if reaped:
                session.execute(
                    table.update()
                    .where(
                        table.c.kind == self.kind,
                        table.c.key == sa.bindparam("b_key"),
                        table.c.owner.is_not_distinct_from(sa.bindparam("b_owner")),
                        table.c.status == RUNNING,
                    )
                    .values(
                        status=sa.bindparam("v_status"),
                        tries=sa.bindparam("v_tries"),
                        deaths=sa.bindparam("v_deaths"),
                        error=sa.bindparam("v_error"),
                        finished=now,
                        owner=None,
                        started=None,
                    ),
                    reaped,
                )
            for start in range(0, len(reset), 500):
                session.execute(
                    table.update()
                    .where(table.c.kind == self.kind, table.c.key.in_(reset[start : start + 500]))
                    .values(tries=0, failures=0, deaths=0)
                )
        return plan

    def claim(self, units: Sequence[WorkUnit]) -> list[WorkUnit]:
        """Reserve units for this process: mark them running (no try is charged yet).

        A unit is taken only if it has tries left, no other live process holds it, and it is
        not done (unless its input checksum changed since). The update is a compare-and-swap on
        the unit's status, try counter and owner, so of two processes claiming the same unit at
        once exactly one gets it, and a unit another process has just finished is not run
        again. A unit whose holder died is taken over as :meth:`plan` does.

        The try is charged by :meth:`start` when a worker starts the unit (or by
        :meth:`record`); a claimed unit given back with :meth:`release`, or left behind by a
        killed process, before a worker started it costs nothing.

        Returns
        -------
        list of WorkUnit
            The units now owned by this process, in the given order.
        """
        table = self._table()
        claimed: list[WorkUnit] = []
        now = utcnow()
        swap = (
            table.update()
            .where(
                table.c.kind == self.kind,
                table.c.key == sa.bindparam("b_key"),
                table.c.tries == sa.bindparam("b_tries"),
                table.c.status == sa.bindparam("b_status"),
                table.c.owner.is_not_distinct_from(sa.bindparam("b_owner")),
            )
            .values(
                status=RUNNING,
                tries=sa.bindparam("v_tries"),
                deaths=sa.bindparam("v_deaths"),
                checksum=sa.bindparam("v_checksum"),
                owner=self.owner,
                started=None,
                heartbeat=now,
            )
        )
        for start in range(0, len(units), _CLAIM_CHUNK):
            chunk = list(units[start : start + _CLAIM_CHUNK])
            with self.database.session() as session:
                query = sa.select(
                    table.c.key,
                    table.c.status,
                    table.c.tries,
                    table.c.deaths,
                    table.c.failures,
                    table.c.started,
                    table.c.owner,
                    table.c.heartbeat,
                    table.c.done_checksum,
                ).where(table.c.kind == self.kind, table.c.key.in_([u.key for u in chunk]))
                rows = {r.key: r for r in session.execute(query)}
                params = []
                for unit in chunk:
                    row = rows.get(unit.key)
                    if row is None:
                        continue
                    tries, deaths = row.tries, row.deaths
                    if row.status == RUNNING:
                        if not self._stale(row.owner, row.heartbeat):
                            continue
                        tries, deaths = self._after_death(row)
                    if tries >= self.max_tries:
                        continue
                    if row.status == DONE and (
                        unit.checksum is None or row.done_checksum in (None, unit.checksum)
                    ):
                        continue
                    params.append(
                        {
                            "b_key": unit.key,
                            "b_tries": row.tries,
                            "b_status": row.status,
                            "b_owner": row.owner,
                            "v_tries": tries,
                            "v_deaths": deaths,
                            "v_checksum": unit.checksum,
                        }
                    )
                if not params:
                    continue
                session.execute(swap, params)
                mine = set(
                    session.execute(
                        sa.select(table.c.key).where(
                            table.c.kind == self.kind,
                            table.c.key.in_([p["b_key"] for p in params]),
                            table.c.owner == self.owner,
                            table.c.status == RUNNING,
                        )
                    ).scalars()
                )
            claimed.extend(u for u in chunk if u.key in mine)
        return claimed

    def start(self, keys: Iterable[str]) -> None:
        """Charge a try to units of this process that a worker has just started."""
        params = [{"b_key": k} for k in keys]
        if not params:
            return
        with self.database.session() as session:
            self._start(session, params)

    def _start(self, session: Any, params: list[dict[str, Any]]) -> None:
        table = self._table()
        session.execute(
            table.update()
            .where(self._own(table), table.c.status == RUNNING, table.c.started.is_(None))
            .values(tries=table.c.tries + 1, started=utcnow()),
            params,
        )

    def heartbeat(self) -> None:
        """Mark every unit this process runs as still alive."""
        table = self._table()
        with self.database.session() as session:
            session.execute(
                table.update()
                .where(table.c.owner == self.owner, table.c.status == RUNNING)
                .values(heartbeat=utcnow())
            )

    def _own(self, table: sa.Table) -> Any:
        """WHERE clause: the unit named by bind parameter ``b_key``, held by this process."""
        return sa.and_(
            table.c.kind == self.kind,
            table.c.key == sa.bindparam("b_key"),
            table.c.owner == self.owner,
        )

    def record(
        self,
        successes: Iterable[tuple[WorkUnit, Any]] = (),
        failures: Iterable[tuple[WorkUnit, str]] = (),
        *,
        transient: Iterable[tuple[WorkUnit, str]] = (),
        permanent: Iterable[tuple[WorkUnit, str]] = (),
        started: Iterable[str] = (),
    ) -> None:
        """Record finished units, and charge the tries of started ones, in one transaction.

        Each finished try is charged once (here, if :meth:`start` did not charge it).

        Parameters
        ----------
        successes : iterable of (WorkUnit, result)
            Units that succeeded and their (JSON-serialisable, small) results.
        failures : iterable of (WorkUnit, error)
            Units that failed and a one-line description of why; retried while tries last.
        transient : iterable of (WorkUnit, error)
            Units that met a transient fault: given back as pending, the try not charged.
        permanent : iterable of (WorkUnit, error)
            Units whose input is at fault: failed with every try used up (never retried
            unless their input changes or a run asks to retry failures).
        started : iterable of str
            Keys of units a worker has started since the last call (as :meth:`start`).
        """
        table = self._table()
        now = utcnow()
        charge = table.c.tries + sa.case((table.c.started.is_(None), 1), else_=0)
        done = [
            {"b_key": u.key, "v_checksum": u.checksum, "v_result": _json_or_none(r)}
            for u, r in successes
        ]
        failed = [{"b_key": u.key, "v_error": e[:_MAX_ERROR_CHARS]} for u, e in failures]
        passing = [{"b_key": u.key, "v_error": e[:_MAX_ERROR_CHARS]} for u, e in transient]
        fatal = [{"b_key": u.key, "v_error": e[:_MAX_ERROR_CHARS]} for u, e in permanent]
        starts = [{"b_key": k} for k in started]
        with self.database.session() as session:
            if starts:
                self._start(session, starts)
            if done:
                session.execute(
                    table.update()
                    .where(self._own(table))
                    .values(
                        status=DONE,
                        tries=charge,
                        done_checksum=sa.bindparam("v_checksum"),
                        error=None,
                        result=sa.bindparam("v_result"),
                        finished=now,
                        owner=None,
                    ),
                    done,
                )
            if failed:
                session.execute(
                    table.update()
                    .where(self._own(table))
                    .values(
                        status=FAILED,
                        tries=charge,
                        failures=table.c.failures + 1,
                        error=sa.bindparam("v_error"),
                        finished=now,
                        owner=None,
                    ),
                    failed,
                )
            if fatal:
                session.execute(
                    table.update()
                    .where(self._own(table))
                    .values(
                        status=FAILED,
                        tries=self.max_tries,
                        failures=table.c.failures + 1,
                        error=sa.bindparam("v_error"),
                        finished=now,
                        owner=None,
                    ),
                    fatal,
                )
            if passing:
                session.execute(
                    table.update()
                    .where(self._own(table))
                    .values(
                        status=PENDING,
                        tries=table.c.tries - sa.case((table.c.started.is_(None), 0), else_=1),
                        error=sa.bindparam("v_error"),
                        finished=now,
                        owner=None,
                        started=None,
                    ),
                    passing,
                )

    def release(self, units: Iterable[WorkUnit]) -> None:
        """Give back units that were claimed but not finished.

        They become pending again and the interrupted try, if a worker had started it, is
        not counted.
        """
        table = self._table()
        params = [{"b_key": u.key} for u in units]
        if not params:
            return
        with self.database.session() as session:
            session.execute(
                table.update()
                .where(self._own(table), table.c.status == RUNNING)
                .values(
                    status=PENDING,
                    owner=None,
                    tries=table.c.tries - sa.case((table.c.started.is_(None), 0), else_=1),
                    started=None,
                ),
                params,
            )

    def tries_left(self, unit: WorkUnit) -> int:
        """How many more times ``unit`` may be claimed."""
        table = self._table()
        with self.database.session() as session:
            tries = session.execute(
                sa.select(table.c.tries).where(table.c.kind == self.kind, table.c.key == unit.key)
            ).scalar_one()
        return max(self.max_tries - tries, 0)

    def counts(self) -> dict[str, int]:
        """Return the number of units of this kind in each status."""
        return ledger_counts(self.database, self.kind).get(self.kind, {})

    def failures(self) -> dict[str, str]:
        """Units of this kind whose last try failed: key to error."""
        table = self._table()
        with self.database.session() as session:
            rows = session.execute(
                sa.select(table.c.key, table.c.error)
                .where(table.c.kind == self.kind, table.c.status == FAILED)
                .order_by(table.c.key)
            )
            return {r.key: r.error or "" for r in rows}


def ledger_counts(database: Database, kind: str | None = None) -> dict[str, dict[str, int]]:
    """Units per kind and status, e.g. ``{"sky.build": {"done": 12, "failed": 1}}``."""
    table: sa.Table = WorkUnitRecord.__table__  # type: ignore[assignment]
    query = sa.select(table.c.kind, table.c.status, sa.func.count()).group_by(
        table.c.kind, table.c.status
    )
    if kind is not None:
        query = query.where(table.c.kind == kind)
    out: dict[str, dict[str, int]] = {}
    with database.session() as session:
        for k, status, n in session.execute(query):
            out.setdefault(k, {})[status] = n
    return out
