"""Run work units on a local process pool or a Dask cluster, resumably, through the ledger.

:func:`run_work_units` is the one way photonpipe runs a batch. The calling process owns the
ledger: it claims units, hands them to workers, and records each result as it comes back
(results that arrive together are recorded in one transaction). Workers never touch the ledger,
so the engine choice (``local`` or ``dask``) changes where the work runs, not what is recorded.

Backends
--------
``local``
    :class:`concurrent.futures.ProcessPoolExecutor`; ``workers`` processes (default: one per
    core), started with the ``executor.start_method`` setting (``forkserver`` by default: it does
    not inherit the parent's threads and locks). Workers exit by themselves if the batch process
    dies, so a killed batch leaves no orphans behind.
``dask``
    ``dask.distributed``: a ``LocalCluster`` of ``workers`` single-threaded worker processes, or
    the scheduler at the ``executor.scheduler`` address. Needs the ``dask`` extra.

Failure handling: an exception in a unit is recorded with its type and message and the unit is
retried until it has been tried ``max_tries`` times. Three kinds of exception are told apart:

* a *transient* fault (:func:`~photonpipe.platform.ledger.transient_fault`: disk full, database
  busy or locked, connection lost) is not charged: the unit is retried after a growing delay
  (``backoff``, doubled each time, at most 30 s) up to ``transient_retries`` times in a run, and
  left pending (never failed for good) for the next run when the fault persists;
* an *input* error (a :class:`~photonpipe.errors.PhotonpipeError` with exit code 2 other than
  a database error: a bad file or setting fails the same way every time) is never retried;
* any other exception is retried while tries last.

A try is charged only once a worker has started it: local workers report each start to the
batch process, which charges the try in the ledger (:meth:`~photonpipe.platform.ledger.Ledger.
start`); on Dask a try is charged when it is submitted. A worker process that dies (segmentation
fault, out of memory, killed) while running a unit alone fails that unit (a counted try) and the
pool is restarted; when several units were in flight they are given back uncharged and run one
at a time to find the culprit. Ctrl-C (or SIGTERM through the CLI) gives the unfinished units
back to the ledger, uncharged, before the interruption propagates. When the batch process itself
is killed, the next run takes its units back (:meth:`~photonpipe.platform.ledger.Ledger.plan`).
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing
import os
import signal
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from photonpipe.errors import EXIT_USAGE, ConfigError, DatabaseError, PhotonpipeError
from photonpipe.platform.db import Database
from photonpipe.platform.ledger import (
    Ledger,
    WorkUnit,
    process_alive,
    process_start_time,
    transient_fault,
)
from photonpipe.platform.progress import Progress

log = logging.getLogger(__name__)

WORKER_DIED = "worker process died (killed, crashed or out of memory)"

#: Outcomes of one try, as :func:`_call` reports them.
OK = "ok"
ERROR = "error"
INPUT = "input"
TRANSIENT = "transient"

#: Longest wait before retrying a unit after a transient fault [s].
MAX_BACKOFF = 30.0

# Set in each local worker by its initializer: "started", where it reports the units it starts.
_WORKER: dict[str, Any] = {}


@dataclass
class BatchReport:
    """What a call of :func:`run_work_units` did.

    Attributes
    ----------
    kind : str
        Kind of work units.
    total : int
        Units in the batch.
    done : list of str
        Keys of units that succeeded in this run.
    already_done : list of str
        Keys skipped because their success was already recorded (same input checksum).
    busy : list of str
        Keys skipped because another live process was running them.
    failed : dict
        Key to error, for units that failed their last try (in this run or, having no tries
        left, in an earlier one).
    results : dict
        Key to the work function's return value, for units done in this run.
    seconds : float
        Wall-clock duration of the run [s].
    """

    kind: str
    total: int = 0
    done: list[str] = field(default_factory=list)
    already_done: list[str] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when no unit of the batch is failed."""
        return not self.failed

    def summary(self) -> str:
        """One line: counts of done, skipped and failed units."""
        parts = [f"{len(self.done)} done"]
        if self.already_done:
            parts.append(f"{len(self.already_done)} already done")
        if self.busy:
            parts.append(f"{len(self.busy)} running elsewhere")
        parts.append(f"{len(self.failed)} failed")
        return f"{self.kind}: {self.total} units: " + ", ".join(parts) + f" in {self.seconds:.1f} s"


def available_cores() -> int:
    """Return the CPU cores this process may run on (its affinity mask, e.g. in a container)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _call(function: Callable[[Any], Any], payload: Any, key: str | None = None) -> Any:
    """Run one unit in a worker, turning any exception into one picklable error line.

    Before the work starts, ``key`` is reported to the batch process (local workers), which
    charges the try. ``SystemExit`` (a ``sys.exit`` in the work function) is a failure of the
    unit too: it must not end the worker pool or, through the pool, the batch process.

    Returns
    -------
    tuple
        ``(OK, result)`` or ``(ERROR | INPUT | TRANSIENT, one-line error)``.
    """
    started = _WORKER.get("started")
    if started is not None and key is not None:
        started.put(key)
    try:
        return OK, function(payload)
    except (Exception, SystemExit) as exc:
        return _outcome(exc)


def _outcome(exc: BaseException) -> tuple[str, str]:
    """Kind of failure (:data:`ERROR`, :data:`INPUT`, :data:`TRANSIENT`) and its error line."""
    reason = transient_fault(exc)
    if isinstance(exc, PhotonpipeError):
        line = f"{type(exc).__name__}: {exc}"
        if reason is not None:
            return TRANSIENT, line
        if exc.exit_code == EXIT_USAGE and not isinstance(exc, DatabaseError):
            return INPUT, line
        return ERROR, line
    last = traceback.extract_tb(exc.__traceback__)[-1:]
    where = f" (at {last[0].filename}:{last[0].lineno})" if last else ""
    return (TRANSIENT if reason is not None else ERROR), f"{type(exc).__name__}: {exc}{where}"


def _watch_batch_process(pid: int, start_time: str, started: Any = None) -> None:
    """Worker initializer: ignore Ctrl-C; exit when the batch process owning the pool is gone.

    The worker's parent is not a reliable sign: with the forkserver start method the parent is
    the fork server, which outlives the batch process as long as any worker lives (CPython
    gives every forkserver child the server's keep-alive pipe).

    Ctrl-C reaches the whole process group. Only the batch process acts on it (it hands the
    unfinished units back and exits; the workers then exit too): a worker killed by it first
    would look like a crashed worker, and its unit would be charged a failed try.

    ``started`` is the queue on which the worker reports each unit it starts.
    """
    _WORKER["started"] = started
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while process_alive(pid, start_time):
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="photonpipe-parent-watch", daemon=True).start()


class _Backend(Protocol):
    def submit(self, function: Callable[..., Any], *args: Any) -> Any: ...
    def wait(self, futures: Iterable[Any], timeout: float) -> set[Any]: ...
    def results(self, finished: Iterable[Any]) -> dict[Any, Any]: ...
    def broken(self, finished: Iterable[Any]) -> bool: ...
    def result(self, future: Any) -> Any: ...
    def restart(self) -> None: ...
    def close(self, cancel: bool = False) -> None: ...
    def started(self) -> list[str]: ...


class _LocalBackend:
    """Process pool whose workers die with their parent."""

    def __init__(self, workers: int, start_method: str) -> None:
        self.workers = workers
        self.context = multiprocessing.get_context(start_method)
        self.start_method = start_method
        self.pool = self._new_pool()

    def _new_pool(self) -> cf.ProcessPoolExecutor:
        pid = os.getpid()
        # A new queue with every pool: a worker killed while writing to it cannot leave the
        # next pool's queue locked.
        self.queue = self.context.SimpleQueue()
        return cf.ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=self.context,
            initializer=_watch_batch_process,
            initargs=(pid, process_start_time(pid), self.queue),
        )

    def started(self) -> list[str]:
        keys = []
        while not self.queue.empty():
            keys.append(self.queue.get())
        return keys

    def submit(self, function: Callable[..., Any], *args: Any) -> Any:
        try:
            return self.pool.submit(function, *args)
        except cf.process.BrokenProcessPool as exc:
            # A worker died since the last check: hand back a future that says so.
            future: cf.Future[Any] = cf.Future()
            future.set_exception(exc)
            return future

    def wait(self, futures: Iterable[Any], timeout: float) -> set[Any]:
        done, _ = cf.wait(list(futures), timeout=timeout, return_when=cf.FIRST_COMPLETED)
        return set(done)

    def result(self, future: Any) -> Any:
        try:
            return future.result()
        except cf.process.BrokenProcessPool:
            return ERROR, WORKER_DIED
        except cf.CancelledError:
            return ERROR, "cancelled"
        except Exception as exc:  # the payload or the result could not be pickled
            return ERROR, f"{type(exc).__name__}: {exc}"

    def results(self, finished: Iterable[Any]) -> dict[Any, Any]:
        return {future: self.result(future) for future in finished}

    def broken(self, finished: Iterable[Any]) -> bool:
        for future in finished:
            if not future.cancelled() and isinstance(
                future.exception(), cf.process.BrokenProcessPool
            ):
                return True
        return False

    def restart(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.pool = self._new_pool()

    def close(self, cancel: bool = False) -> None:
        self.pool.shutdown(wait=not cancel, cancel_futures=cancel)


class _DaskBackend:
    """A dask.distributed client on a LocalCluster or an existing scheduler."""

    def __init__(self, workers: int, scheduler: str | None) -> None:
        try:
            import distributed
        except ImportError:
            raise ConfigError(
                "executor.backend = 'dask' needs the dask extra: pip install 'photonpipe[dask]'"
            ) from None
        self.distributed = distributed
        self.cluster = None
        if scheduler:
            try:
                self.client = distributed.Client(scheduler, timeout=10)
            except OSError as exc:
                raise ConfigError(
                    f"cannot reach the Dask scheduler at {scheduler!r}: {exc}",
                    "executor.scheduler",
                ) from None
        else:
            self.cluster = distributed.LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                # The scheduler's HTTP server (metrics) binds even without a dashboard; on its
                # default port 8787 a second cluster on the machine fails with a warning.
                scheduler_kwargs={"dashboard_address": ":0"},
                silence_logs=logging.ERROR,
            )
            self.client = distributed.Client(self.cluster)
        self.submitted: list[str] = []

    def submit(self, function: Callable[..., Any], *args: Any) -> Any:
        # Dask workers cannot report starts: a try is charged when it is submitted.
        self.submitted.append(args[-1])
        return self.client.submit(function, *args, pure=False)

    def started(self) -> list[str]:
        keys, self.submitted = self.submitted, []
        return keys

    def wait(self, futures: Iterable[Any], timeout: float) -> set[Any]:
        futures = list(futures)
        try:
            done, _ = self.distributed.wait(futures, timeout=timeout, return_when="FIRST_COMPLETED")
        except TimeoutError:
            return set()
        return set(done)

    def result(self, future: Any) -> Any:
        try:
            return future.result()
        except self.distributed.KilledWorker:
            return ERROR, WORKER_DIED
        except Exception as exc:  # a scheduler-side failure, e.g. unpicklable payload
            return ERROR, f"{type(exc).__name__}: {exc}"

    def results(self, finished: Iterable[Any]) -> dict[Any, Any]:
        # One gather for all: each Future.result() is a round trip to the client's thread.
        finished = list(finished)
        if all(f.status == "finished" for f in finished):
            try:
                return dict(zip(finished, self.client.gather(finished), strict=True))
            except Exception:  # fall back to one at a time, which attributes the error
                log.debug("gather failed; collecting results one by one", exc_info=True)
        return {future: self.result(future) for future in finished}

    def broken(self, finished: Iterable[Any]) -> bool:
        return False

    def restart(self) -> None:  # the scheduler replaces dead workers itself
        return

    def close(self, cancel: bool = False) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def _make_backend(backend: str, workers: int, settings: Any | None) -> Any:
    if backend == "local":
        method = settings["executor.start_method"] if settings is not None else "forkserver"
        return _LocalBackend(workers, method)
    if backend == "dask":
        scheduler = settings["executor.scheduler"] if settings is not None else None
        return _DaskBackend(workers, scheduler)
    raise ConfigError(f"unknown executor backend {backend!r} (local or dask)")


def run_work_units(
    function: Callable[[Any], Any],
    units: Iterable[WorkUnit],
    *,
    kind: str,
    database: Database,
    settings: Any | None = None,
    backend: str | None = None,
    workers: int | None = None,
    max_tries: int | None = None,
    retry_failed: bool = False,
    progress: bool | None = None,
    transient_retries: int | None = None,
    backoff: float | None = None,
) -> BatchReport:
    """Run ``function(unit.payload)`` for every unit not already done, resumably.

    Parameters
    ----------
    function : callable
        Module-level (picklable) function taking one payload. Its return value, if
        JSON-serialisable and small, is stored in the ledger. It should raise a
        :class:`~photonpipe.errors.PhotonpipeError` naming the input at fault for bad input.
    units : iterable of WorkUnit
        The batch. Keys must be unique.
    kind : str
        Kind of work, the ledger's namespace for the keys (e.g. ``"sky.build"``).
    database : Database
        Database holding the ledger.
    settings : Settings, optional
        Supplies defaults for ``backend``, ``workers``, ``max_tries``, the start method, the
        Dask scheduler address and the lease.
    backend : {"local", "dask"}, optional
        Where to run; default ``executor.backend`` (``local``).
    workers : int, optional
        Worker processes; default ``executor.workers``, where 0 means one per CPU core.
    max_tries : int, optional
        Attempts per unit; default ``executor.max_tries`` (3).
    retry_failed : bool
        Give units that failed in earlier runs a fresh set of tries.
    progress : bool, optional
        Show a progress bar of the finished units (:class:`~photonpipe.platform.progress.
        Progress`); default: only when stderr is a terminal. Either way the batch ends with
        one summary line in the log (:meth:`BatchReport.summary`).
    transient_retries : int, optional
        Retries in this run of a unit that met a transient fault (disk full, database busy,
        connection lost); such retries are not charged to the unit. When the fault outlasts
        them, the unit is reported failed for this run but left pending for the next. Default
        ``executor.transient_retries`` (6).
    backoff : float, optional
        Delay before the first such retry [s]; doubled for each further one, at most 30 s.
        Default ``executor.backoff`` (0.5 s).

    Returns
    -------
    BatchReport
        What was done, skipped and failed.
    """
    start = time.perf_counter()
    units = list(units)

    def setting(name: str, default: Any) -> Any:
        return settings[name] if settings is not None else default

    backend = backend or setting("executor.backend", "local")
    workers = workers or setting("executor.workers", 0) or available_cores()
    max_tries = max_tries or setting("executor.max_tries", 3)
    if transient_retries is None:
        transient_retries = int(setting("executor.transient_retries", 6))
    if backoff is None:
        backoff = float(setting("executor.backoff", 0.5))
    ledger = Ledger(database, kind, max_tries=max_tries, lease=setting("executor.lease", 600.0))
    plan = ledger.plan(units, retry_failed=retry_failed)
    report = BatchReport(
        kind=kind,
        total=len(units),
        already_done=plan.already_done,
        busy=list(plan.busy),
        failed=dict(plan.exhausted),
    )
    if not plan.todo:
        report.seconds = time.perf_counter() - start
        return report

    # the report's summary, logged below, is the batch's one line without a bar
    bar = Progress(len(units), kind, "unit", enabled=progress, logger=log, summary=False)
    bar.update(len(plan.already_done) + len(plan.exhausted))
    heartbeat_every = min(ledger.lease / 4, 30.0)
    last_heartbeat = time.monotonic()
    queue: deque[WorkUnit] = deque(plan.todo)
    in_flight: dict[Any, WorkUnit] = {}
    # Units waiting out a transient fault: (monotonic time when due, unit); and their counts.
    waiting: list[tuple[float, WorkUnit]] = []
    transients: dict[str, int] = {}
    # Units in flight at once: enough to keep every worker busy while results are recorded
    # (more on Dask, whose per-task round trips are longer). The window is refilled when it is
    # half empty, so that claims go to the database in batches rather than one by one.
    window = max(4 * workers, 8) if backend == "local" else max(8 * workers, 16)
    engine = _make_backend(backend, workers, settings)
    log.info("%s: %d units to run on %s with %d workers", kind, len(queue), backend, workers)
    interrupted = True
    # Units that were in flight when a local worker died: the culprit is unknown, so they go
    # back untried and run one at a time until each has run alone.
    suspects: set[str] = set()
    try:
        while queue or in_flight or waiting:
            if waiting:
                now = time.monotonic()
                queue.extend(u for due, u in waiting if due <= now)
                waiting = [(due, u) for due, u in waiting if due > now]
                if not queue and not in_flight:
                    time.sleep(max(min(due for due, _ in waiting) - now, 0.0))
                    continue
            if suspects:  # every suspect must still be queued or in flight
                suspects &= {u.key for u in queue} | {u.key for u in in_flight.values()}
            quarantine = bool(suspects)
            if quarantine:
                room = 0 if in_flight else 1
            else:
                room = window - len(in_flight) if len(in_flight) <= window // 2 else 0
            if queue and room > 0:
                if quarantine:
                    # Bring one suspect to the front and run it alone.
                    suspect = next(u for u in queue if u.key in suspects)
                    queue.remove(suspect)
                    batch = [suspect]
                else:
                    batch = [queue.popleft() for _ in range(min(len(queue), room))]
                claimed = ledger.claim(batch)
                taken = {u.key for u in claimed}
                for unit in batch:
                    if unit.key not in taken:
                        suspects.discard(unit.key)
                        report.busy.append(unit.key)
                        bar.update(1)
                for unit in claimed:
                    in_flight[engine.submit(_call, function, unit.payload, unit.key)] = unit
                if not in_flight:
                    continue
            finished = engine.wait(in_flight, timeout=1.0)
            # Tries the workers have started: charged with the results below, in the same
            # transaction, or on their own when no result came in.
            started = engine.started()
            if started and not finished:
                ledger.start(started)
                started = []
            if time.monotonic() - last_heartbeat > heartbeat_every:
                ledger.heartbeat()
                last_heartbeat = time.monotonic()
            successes: list[tuple[WorkUnit, Any]] = []
            failures: list[tuple[WorkUnit, str]] = []
            permanent: list[tuple[WorkUnit, str]] = []
            passing: list[tuple[WorkUnit, str]] = []
            if engine.broken(finished):
                lost = list(in_flight.values())
                in_flight.clear()
                engine.restart()
                if len(lost) == 1:
                    failures.append((lost[0], WORKER_DIED))
                    suspects.discard(lost[0].key)
                else:
                    log.warning(
                        "%s: a worker died with %d units in flight; running them one "
                        "at a time to find the cause",
                        kind,
                        len(lost),
                    )
                    ledger.release(lost)
                    suspects.update(u.key for u in lost)
                    queue.extendleft(reversed(lost))
            else:
                outcomes = {OK: successes, ERROR: failures, INPUT: permanent, TRANSIENT: passing}
                for future, (outcome, value) in engine.results(finished).items():
                    unit = in_flight.pop(future)
                    suspects.discard(unit.key)
                    outcomes[outcome].append((unit, value))
            if successes or failures or permanent or passing or started:
                ledger.record(
                    successes, failures, transient=passing, permanent=permanent, started=started
                )
            finished_now = len(successes)
            for unit, value in successes:
                report.done.append(unit.key)
                report.results[unit.key] = value
                report.failed.pop(unit.key, None)
            for unit, error in failures:
                if ledger.tries_left(unit) > 0:
                    log.warning(
                        "%s: will retry after error: %s", kind, error, extra={"unit": unit.key}
                    )
                    queue.append(unit)
                else:
                    log.error("%s: failed: %s", kind, error, extra={"unit": unit.key})
                    report.failed[unit.key] = error
                    finished_now += 1
            for unit, error in permanent:
                log.error("%s: failed (bad input): %s", kind, error, extra={"unit": unit.key})
                report.failed[unit.key] = error
                finished_now += 1
            for unit, error in passing:
                count = transients[unit.key] = transients.get(unit.key, 0) + 1
                if count <= transient_retries:
                    delay = min(backoff * 2 ** (count - 1), MAX_BACKOFF)
                    log.warning(
                        "%s: transient fault, retrying in %.1f s: %s",
                        kind,
                        delay,
                        error,
                        extra={"unit": unit.key},
                    )
                    waiting.append((time.monotonic() + delay, unit))
                else:
                    log.error(
                        "%s: transient fault persists; left for the next run: %s",
                        kind,
                        error,
                        extra={"unit": unit.key},
                    )
                    report.failed[unit.key] = (
                        f"transient fault after {count} attempts (not charged; the next run "
                        f"retries it): {error}"
                    )
                    finished_now += 1
            # Counts first, so that the redraw the update may trigger shows them.
            bar.update(
                finished_now,
                status=(
                    f"done={len(report.done) + len(report.already_done)}, "
                    f"failed={len(report.failed)}, skipped={len(report.busy)}"
                ),
            )
        interrupted = False
    finally:
        if interrupted:
            # Ctrl-C, SIGTERM or an error in the ledger itself: hand unfinished units back.
            engine.close(cancel=True)
            try:
                ledger.release(in_flight.values())
            except Exception as exc:  # the original interruption matters more
                log.warning("%s: could not release interrupted units: %s", kind, exc)
        else:
            engine.close()
        bar.close()
    report.seconds = time.perf_counter() - start
    log.info(report.summary())
    return report
