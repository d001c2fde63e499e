"""Executor and ledger overhead on no-op work units.

Measures, in one run and against baselines measured in that same run:

* photonpipe ``run_work_units`` on the local backend against a plain
  ``concurrent.futures.ProcessPoolExecutor`` map (chunksize 1 and 64), both including pool
  start-up and shutdown;
* the same on the Dask backend against a plain ``client.map`` on a ``LocalCluster``, both
  including cluster start-up and shutdown;
* a second run over the same, already done, units (the resume/skip cost);
* the ledger alone (``Ledger.plan`` + ``claim`` + ``record``, no workers) on SQLite and,
  with ``--postgres URL``, on a scratch PostgreSQL database.

Run as ``python benchmarks/bench_executor.py [--units N] [--workers W] [--repeat R]``. It prints
medians, never checks a time against a threshold, and exits 0 unless a unit fails.

Worker processes re-import this module (forkserver and Dask's spawned workers), so importing it
must do nothing but define things.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import logging
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url

from photonpipe.platform.db import Database
from photonpipe.platform.executor import run_work_units
from photonpipe.platform.ledger import Ledger, WorkUnit

START_METHOD = "forkserver"  # photonpipe's default executor.start_method
KIND = "bench.noop"
LEDGER_BATCHES = (1, 200)  # 1: a claim and a record per unit (worst case); 200: the claim chunk


def noop(x: Any) -> Any:
    return x


# --- measurements ---------------------------------------------------------------------------


@dataclass
class Measurement:
    """Times of one thing measured, one per repetition [s]."""

    name: str
    baseline: str | None = None
    times: list[float] = field(default_factory=list)
    extra: dict[str, list[float]] = field(default_factory=dict)

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    def add_extra(self, name: str, value: float) -> None:
        self.extra.setdefault(name, []).append(value)

    def extra_median(self, name: str) -> float:
        return statistics.median(self.extra[name])


class Results:
    """Measurements in the order they were first added."""

    def __init__(self) -> None:
        self.rows: dict[str, Measurement] = {}

    def row(self, name: str, baseline: str | None = None) -> Measurement:
        if name not in self.rows:
            self.rows[name] = Measurement(name, baseline)
        return self.rows[name]


def _check_results(results: list[Any], units: int, what: str) -> None:
    if results != list(range(units)):
        raise RuntimeError(f"{what}: wrong results")


def time_pool_map(units: int, workers: int, chunksize: int) -> float:
    """Plain process pool map of ``noop``, pool start-up and shutdown included [s]."""
    context = multiprocessing.get_context(START_METHOD)
    start = time.perf_counter()
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        results = list(pool.map(noop, range(units), chunksize=chunksize))
    elapsed = time.perf_counter() - start
    _check_results(results, units, f"pool map chunksize={chunksize}")
    return elapsed


def time_dask_map(units: int, workers: int) -> float:
    """Plain Dask map of ``noop``, LocalCluster start-up and shutdown included [s]."""
    import distributed

    start = time.perf_counter()
    with (
        distributed.LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,  # as photonpipe's Dask backend
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        results = client.gather(client.map(noop, range(units), pure=False))
    elapsed = time.perf_counter() - start
    _check_results(list(results), units, "dask map")
    return elapsed


@contextmanager
def count_transactions(database: Database) -> Iterator[list[int]]:
    """Count the commits on ``database``'s engine inside the block (one-element list)."""
    count = [0]

    def on_commit(_conn: Any) -> None:
        count[0] += 1

    engine = database.engine
    event.listen(engine, "commit", on_commit)
    try:
        yield count
    finally:
        event.remove(engine, "commit", on_commit)


def sqlite_database(directory: Path) -> Database:
    """A fresh, migrated SQLite database in ``directory``."""
    directory.mkdir(parents=True)
    database = Database(f"sqlite:///{directory / 'bench.db'}")
    database.upgrade()
    return database


def time_photonpipe(
    units: int, workers: int, backend: str, directory: Path
) -> tuple[float, float, float]:
    """Return (first run [s], resume run [s], transactions per unit of the first run)."""
    database = sqlite_database(directory)
    batch = [WorkUnit(f"u{i}", i) for i in range(units)]

    def run() -> Any:
        return run_work_units(
            noop,
            batch,
            kind=KIND,
            database=database,
            backend=backend,
            workers=workers,
            progress=False,
        )

    with count_transactions(database) as commits:
        start = time.perf_counter()
        report = run()
        first = time.perf_counter() - start
    if not report.ok or len(report.done) != units:
        raise RuntimeError(f"photonpipe {backend}: {report.summary()}; failed: {report.failed}")
    _check_results([report.results[u.key] for u in batch], units, f"photonpipe {backend}")
    start = time.perf_counter()
    again = run()
    resume = time.perf_counter() - start
    if len(again.already_done) != units:
        raise RuntimeError(f"photonpipe {backend} resume: {again.summary()}")
    database.dispose()
    return first, resume, commits[0] / units


def time_ledger(database: Database, units: int, batch: int, kind: str) -> dict[str, float]:
    """Ledger work for ``units`` units in this process, no workers [s per phase].

    Units are claimed and recorded ``batch`` at a time, as the executor does with the units
    that come back together.
    """
    ledger = Ledger(database, kind)
    todo = [WorkUnit(f"u{i}", i) for i in range(units)]
    t_start = time.perf_counter()
    plan = ledger.plan(todo)
    t_planned = time.perf_counter()
    claim = record = 0.0
    for first in range(0, units, batch):
        chunk = plan.todo[first : first + batch]
        t0 = time.perf_counter()
        claimed = ledger.claim(chunk)
        t1 = time.perf_counter()
        ledger.record([(u, u.payload) for u in claimed])
        t2 = time.perf_counter()
        claim += t1 - t0
        record += t2 - t1
        if len(claimed) != len(chunk):
            raise RuntimeError(f"ledger: claimed {len(claimed)} of {len(chunk)} units")
    t_end = time.perf_counter()
    replan = ledger.plan(todo)
    t_resumed = time.perf_counter()
    if len(replan.already_done) != units:
        raise RuntimeError("ledger: units not recorded as done")
    return {
        "plan": t_planned - t_start,
        "claim": claim,
        "record": record,
        "total": t_end - t_start,
        "resume plan": t_resumed - t_end,
    }


@contextmanager
def postgres_scratch(url: str) -> Iterator[Database]:
    """A migrated scratch database ``pp_bench_<random>`` on the server of ``url``, dropped after."""
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    name = f"pp_bench_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    database = Database(make_url(url).set(database=name).render_as_string(hide_password=False))
    try:
        database.upgrade()
        yield database
    finally:
        database.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


def record_ledger(results: Results, label: str, times: dict[str, float]) -> None:
    row = results.row(label)
    row.times.append(times["total"])
    for phase in ("plan", "claim", "record", "resume plan"):
        row.add_extra(phase, times[phase])


# --- the benchmark --------------------------------------------------------------------------

POOL_1 = "plain pool map chunksize=1"
POOL_64 = "plain pool map chunksize=64"
PP_LOCAL = "photonpipe local"
PP_LOCAL_RESUME = "photonpipe local, resume (all done)"
DASK_MAP = "plain dask map"
PP_DASK = "photonpipe dask"
PP_DASK_RESUME = "photonpipe dask, resume (all done)"


def warm_up(workers: int) -> None:
    """Start the forkserver once, so that no measurement pays for it alone."""
    time_pool_map(workers, workers, 1)


def run_benchmark(args: argparse.Namespace, scratch: Path) -> Results:
    n, w = args.units, args.workers
    results = Results()
    transactions: list[float] = []
    for repeat in range(args.repeat):
        print(f"repetition {repeat + 1} of {args.repeat} ...", file=sys.stderr, flush=True)
        results.row(POOL_1).times.append(time_pool_map(n, w, 1))
        results.row(POOL_64).times.append(time_pool_map(n, w, 64))
        first, resume, per_unit = time_photonpipe(n, w, "local", scratch / f"local-{repeat}")
        results.row(PP_LOCAL, POOL_1).times.append(first)
        results.row(PP_LOCAL_RESUME).times.append(resume)
        transactions.append(per_unit)
        if not args.no_dask:
            results.row(DASK_MAP).times.append(time_dask_map(n, w))
            first, resume, _ = time_photonpipe(n, w, "dask", scratch / f"dask-{repeat}")
            results.row(PP_DASK, DASK_MAP).times.append(first)
            results.row(PP_DASK_RESUME).times.append(resume)
        for batch in LEDGER_BATCHES:
            database = sqlite_database(scratch / f"ledger-{repeat}-{batch}")
            times = time_ledger(database, n, batch, KIND)
            database.dispose()
            record_ledger(results, f"ledger only sqlite, batches of {batch}", times)
        if args.postgres:
            with postgres_scratch(args.postgres) as database:
                for batch in LEDGER_BATCHES:
                    times = time_ledger(database, n, batch, f"{KIND}.{batch}")
                    record_ledger(results, f"ledger only postgresql, batches of {batch}", times)
    results.row(PP_LOCAL).add_extra("transactions per unit", statistics.median(transactions))
    return results


def print_report(results: Results, args: argparse.Namespace) -> None:
    n = args.units
    rows = results.rows
    print()
    print(f"{'name':<44} {'median s':>9} {'units/s':>9} {'x baseline':>10} {'ms/unit':>8}")
    print("-" * 84)
    for row in rows.values():
        seconds = row.median
        ratio = overhead = ""
        if row.baseline is not None:
            base = rows[row.baseline].median
            ratio = f"{seconds / base:.2f}x"
            overhead = f"{(seconds - base) / n * 1000:+.3f}"
        elif row.name.startswith("ledger only") or "resume" in row.name:
            overhead = f"{seconds / n * 1000:.3f}"
        print(f"{row.name:<44} {seconds:>9.3f} {n / seconds:>9.0f} {ratio:>10} {overhead:>8}")
    print()
    print("ratios to the baseline measured in this run (overhead = (t - t_baseline) / N):")
    pairs = [(PP_LOCAL, POOL_1), (PP_LOCAL, POOL_64), (POOL_1, POOL_64)]
    if not args.no_dask:
        pairs += [(PP_DASK, DASK_MAP), (DASK_MAP, POOL_1)]
    for name, base in pairs:
        seconds, base_seconds = rows[name].median, rows[base].median
        print(
            f"  {name} / {base} = {seconds / base_seconds:.2f}x, "
            f"overhead {(seconds - base_seconds) / n * 1000:+.3f} ms/unit"
        )
    print()
    print("ledger work in this process, no workers, ms per unit (medians):")
    print(f"  {'':<40} {'plan':>7} {'claim':>7} {'record':>7} {'total':>7} {'resume':>7}")
    for row in rows.values():
        if row.name.startswith("ledger only"):
            cells = [row.extra_median(p) for p in ("plan", "claim", "record")]
            cells += [row.median, row.extra_median("resume plan")]
            print(f"  {row.name:<40} " + " ".join(f"{c / n * 1000:>7.3f}" for c in cells))
    tx = rows[PP_LOCAL].extra_median("transactions per unit")
    print(f"  database transactions per unit in a photonpipe local run: {tx:.2f}")
    print()
    print("notes:")
    print("  * ms/unit: (t - t_baseline) / N for rows with a baseline, t / N for the others;")
    print("    'x baseline' is t / t_baseline (baselines: see the ratios above)")
    print("  * times include pool start-up and shutdown; the forkserver was started before")
    print("    timing (photonpipe's default start method, used by every local measurement)")
    print("  * Dask times include LocalCluster start-up and shutdown, for photonpipe (inside")
    print("    run_work_units) and for the plain map alike")
    print("  * resume rows: a second run_work_units over the same units, all already done;")
    print("    ms/unit is the whole run divided by N (no pool or cluster is started)")
    print("  * ledger rows: Ledger.plan + claim + record for N units claimed and recorded")
    print("    <batch> at a time; 'resume' is a second Ledger.plan over the done units")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=2000, help="work units N (default 2000)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes W (default 2)")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions R (default 3)")
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="also measure the ledger on a scratch database on this PostgreSQL server, e.g. "
        "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    )
    parser.add_argument("--no-dask", action="store_true", help="skip the Dask measurements")
    args = parser.parse_args(argv)
    for name in ("units", "workers", "repeat"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(
        f"bench_executor: N={args.units} units, W={args.workers} workers, R={args.repeat} "
        f"repetitions, medians; Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, start method {START_METHOD}"
    )
    warm_up(args.workers)
    with tempfile.TemporaryDirectory(prefix="pp_bench_") as scratch:
        results = run_benchmark(args, Path(scratch))
    print_report(results, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
