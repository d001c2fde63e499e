"""The executor with real worker processes: retries, crashes, kills, concurrent runs."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from helpers.batch import units as batch_units
from helpers.units import misbehave, record_run
from photonpipe.platform.db import Database
from photonpipe.platform.executor import WORKER_DIED, BatchReport, run_work_units
from photonpipe.platform.ledger import DONE, RUNNING, WorkUnit, WorkUnitRecord

TESTS_DIR = Path(__file__).resolve().parents[1]
N_UNITS = 240


def run_counts(runs: Path) -> dict[str, int]:
    """How many times each unit started (one line per start)."""
    return {p.name: p.read_text().count("\n") for p in runs.iterdir()}


def ledger_rows(database: Database, kind: str = "test.batch") -> dict[str, tuple[str, int]]:
    table = WorkUnitRecord.__table__
    with database.session() as session:
        rows = session.execute(
            sa.select(table.c.key, table.c.status, table.c.tries).where(table.c.kind == kind)
        )
        return {r.key: (r.status, r.tries) for r in rows}


def dirs(tmp_path: Path) -> tuple[Path, Path]:
    runs, out = tmp_path / "runs", tmp_path / "out"
    runs.mkdir(exist_ok=True)
    out.mkdir(exist_ok=True)
    return runs, out


def start_batch(url: str, backend: str, runs: Path, out: Path, sleep: float) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS_DIR), *sys.path]))
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "helpers.batch",
            url,
            backend,
            str(N_UNITS),
            str(runs),
            str(out),
            str(sleep),
            "2",
        ],
        env=env,
        cwd=TESTS_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def done_count(database: Database) -> int:
    try:
        return sum(1 for status, _ in ledger_rows(database).values() if status == DONE)
    except sa.exc.OperationalError:
        return 0


def kill_when(proc: subprocess.Popen, database: Database, at_least: int, group: bool) -> None:
    deadline = time.monotonic() + 120
    while done_count(database) < at_least:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "batch made no progress"
        time.sleep(0.02)
    if group:
        os.killpg(proc.pid, signal.SIGKILL)
    else:
        proc.kill()
    proc.communicate()


def wait_dead(pids: set[int], timeout: float = 10) -> set[int]:
    deadline = time.monotonic() + timeout
    alive = set(pids)
    while alive and time.monotonic() < deadline:
        for pid in list(alive):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                alive.discard(pid)
        time.sleep(0.1)
    return alive


def check_resume(
    tmp_path: Path, backend: str, kill_points: list[int], sleep: float, group: bool = True
) -> None:
    """Kill the batch at each point, then run it to the end: nothing lost, nothing redone."""
    runs, out = dirs(tmp_path)
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    database = Database(url)
    database.upgrade()
    for point in kill_points:
        proc = start_batch(url, backend, runs, out, sleep)
        kill_when(proc, database, point, group)
        done_before = {k for k, (s, _) in ledger_rows(database).items() if s == DONE}
        counts_before = run_counts(runs)
        assert len(done_before) >= point
        if not group:
            # Only the main process was killed: its workers must exit by themselves.
            pids = {int(line) for p in runs.iterdir() for line in p.read_text().split()}
            assert wait_dead(pids) == set()
        # Re-run to the end.
        proc = start_batch(url, backend, runs, out, sleep)
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr
        assert stdout.split()[0] == "done"
        counts = run_counts(runs)
        # A recorded success is never redone ...
        for key in done_before:
            assert counts[key] == counts_before[key], key
        # ... and every unit ends done, with its product.
        rows = ledger_rows(database)
        assert len(rows) == N_UNITS
        assert {s for s, _ in rows.values()} == {DONE}
        assert sorted(p.name for p in out.iterdir()) == sorted(rows)
        # Re-running a finished batch runs nothing.
        proc = start_batch(url, backend, runs, out, sleep)
        stdout, _ = proc.communicate(timeout=300)
        assert stdout.split() == ["done", "0", str(N_UNITS), "0"]
        assert run_counts(runs) == counts
        # Start the next trial from scratch.
        database.dispose()
        for path in [*runs.iterdir(), *out.iterdir()]:
            path.unlink()
        with database.session() as session:
            session.execute(sa.delete(WorkUnitRecord.__table__))


def test_local_batch_resumes_after_sigkill(tmp_path: Path) -> None:
    check_resume(tmp_path, "local", kill_points=[0, 25, 120, 230], sleep=0.01)


def test_local_workers_exit_when_the_batch_process_is_killed(tmp_path: Path) -> None:
    check_resume(tmp_path, "local", kill_points=[60], sleep=0.01, group=False)


def test_dask_batch_resumes_after_sigkill(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    check_resume(tmp_path, "dask", kill_points=[5, 100, 200], sleep=0.01)


def test_retries_then_success_and_exhaustion(tmp_path: Path, sqlite_database: Database) -> None:
    runs, out = dirs(tmp_path)
    batch = [
        WorkUnit("flaky", {"key": "flaky", "runs": str(runs), "out": str(out), "fail_times": 2}),
        WorkUnit("broken", {"key": "broken", "runs": str(runs), "out": str(out), "fail_times": 99}),
        WorkUnit("fine", {"key": "fine", "runs": str(runs), "out": str(out)}),
    ]

    def run(retry_failed: bool = False) -> BatchReport:
        return run_work_units(
            record_run,
            batch,
            kind="test.retry",
            database=sqlite_database,
            workers=2,
            max_tries=3,
            retry_failed=retry_failed,
            progress=False,
        )

    report = run()
    assert sorted(report.done) == ["fine", "flaky"]
    source = Path(record_run.__code__.co_filename)
    raise_line = 1 + next(
        i for i, line in enumerate(source.read_text().splitlines()) if "raise RuntimeError" in line
    )
    assert report.failed == {
        "broken": f"RuntimeError: planned failure 3 of broken (at {source}:{raise_line})"
    }
    assert run_counts(runs) == {"flaky": 3, "broken": 3, "fine": 1}
    rows = ledger_rows(sqlite_database, "test.retry")
    assert rows == {"flaky": (DONE, 3), "broken": ("failed", 3), "fine": (DONE, 1)}
    assert report.results["fine"]["key"] == "fine"
    # A later run reports the exhausted unit without running it again ...
    again = run()
    assert again.done == []
    assert sorted(again.already_done) == ["fine", "flaky"]
    assert set(again.failed) == {"broken"}
    assert not again.ok
    assert run_counts(runs)["broken"] == 3
    # ... unless asked to retry failures.
    run(retry_failed=True)
    assert run_counts(runs)["broken"] == 6


def test_a_crashing_unit_does_not_take_others_down(
    tmp_path: Path, sqlite_database: Database
) -> None:
    """A unit that kills its worker fails alone; units in flight with it are not charged."""
    runs, out = dirs(tmp_path)
    batch = [
        WorkUnit(
            f"u{i:02d}",
            {
                "key": f"u{i:02d}",
                "runs": str(runs),
                "out": str(out),
                "sleep": 0.05,
                "crash": i == 5,
            },
        )
        for i in range(16)
    ]
    report = run_work_units(
        record_run,
        batch,
        kind="test.crash",
        database=sqlite_database,
        workers=2,
        max_tries=2,
        progress=False,
    )
    assert report.failed == {"u05": WORKER_DIED}
    assert len(report.done) == 15
    rows = ledger_rows(sqlite_database, "test.crash")
    assert rows.pop("u05") == ("failed", 2)
    assert {tries for _, tries in rows.values()} == {1}
    assert len(list(out.iterdir())) == 15


def test_interrupt_hands_units_back(tmp_path: Path) -> None:
    """SIGINT (Ctrl-C) to the process group: in-flight units are released, not failed."""
    runs, out = dirs(tmp_path)
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    database = Database(url)
    database.upgrade()
    proc = start_batch(url, "local", runs, out, sleep=0.2)
    deadline = time.monotonic() + 60
    while done_count(database) < 4:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert "KeyboardInterrupt" in stderr
    rows = ledger_rows(database)
    assert RUNNING not in {s for s, _ in rows.values()}
    # Units not finished are pending with no try counted; finished ones are done.
    assert {(s, t) for s, t in rows.values()} <= {(DONE, 1), ("pending", 0)}


def test_two_concurrent_runs_share_the_work(tmp_path: Path) -> None:
    runs, out = dirs(tmp_path)
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    Database(url).upgrade()
    procs = [start_batch(url, "local", runs, out, sleep=0.02) for _ in range(2)]
    reports = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr
        reports.append([int(x) for x in stdout.split()[1:]])
    assert run_counts(runs) == {u.key: 1 for u in batch_units(N_UNITS, "", "", 0)}
    # Between them the two runs did every unit once (the second may also find some done).
    assert reports[0][0] + reports[1][0] == N_UNITS
    assert reports[0][0] > 0
    assert reports[1][0] > 0


def test_in_process_results(sqlite_database: Database, tmp_path: Path) -> None:
    runs, out = dirs(tmp_path)
    batch = batch_units(10, str(runs), str(out), 0.0)
    report = run_work_units(
        record_run, batch, kind="test.results", database=sqlite_database, workers=1, progress=False
    )
    assert report.ok
    assert report.total == len(report.done) == 10
    assert {k: v["key"] for k, v in report.results.items()} == {u.key: u.key for u in batch}
    assert "10 units: 10 done, 0 failed" in report.summary()


def test_progress_bar_only_when_asked_or_on_a_terminal(
    sqlite_database: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs, out = dirs(tmp_path)
    batch = batch_units(6, str(runs), str(out), 0.0)
    run_work_units(record_run, batch[:3], kind="test.bar", database=sqlite_database, workers=1)
    assert capsys.readouterr().err == ""  # stderr is not a terminal here: silent
    run_work_units(
        record_run, batch, kind="test.bar", database=sqlite_database, workers=1, progress=True
    )
    err = capsys.readouterr().err
    assert "test.bar" in err
    assert re.search(r"done=\d, failed=0, skipped=0", err)


def test_dask_backend_on_an_existing_scheduler(sqlite_database: Database, tmp_path: Path) -> None:
    """executor.scheduler points the Dask backend at a running cluster instead of its own."""
    distributed = pytest.importorskip("distributed")
    from photonpipe.platform.config import load_settings

    runs, out = dirs(tmp_path)
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as cluster:
        settings = load_settings(
            env={},
            overrides={"executor.backend": "dask", "executor.scheduler": cluster.scheduler_address},
        )
        report = run_work_units(
            record_run,
            batch_units(20, str(runs), str(out), 0.0),
            kind="test.scheduler",
            database=sqlite_database,
            settings=settings,
            progress=False,
        )
        with distributed.Client(cluster) as client:
            worker_pids = set(client.run(os.getpid).values())
    assert report.ok
    assert len(report.done) == 20
    ran_in = {result["pid"] for result in report.results.values()}
    assert os.getpid() not in ran_in
    assert ran_in <= worker_pids


def test_unreachable_scheduler_is_a_config_error(sqlite_database: Database) -> None:
    pytest.importorskip("distributed")
    from photonpipe.errors import ConfigError
    from photonpipe.platform.config import load_settings

    settings = load_settings(
        env={}, overrides={"executor.backend": "dask", "executor.scheduler": "tcp://127.0.0.1:1"}
    )
    with pytest.raises(
        ConfigError, match=r"cannot reach the Dask scheduler at 'tcp://127\.0\.0\.1:1'"
    ):
        run_work_units(
            record_run,
            [WorkUnit("a", {})],
            kind="test.noscheduler",
            database=sqlite_database,
            settings=settings,
            progress=False,
        )


def test_bad_results_and_sys_exit_fail_only_their_unit(sqlite_database: Database) -> None:
    batch = [WorkUnit(h, {"how": h}) for h in ("unpicklable", "exit", "fine", "also fine")]
    report = run_work_units(
        misbehave,
        batch,
        kind="test.misbehave",
        database=sqlite_database,
        workers=2,
        max_tries=1,
        progress=False,
    )
    assert sorted(report.done) == ["also fine", "fine"]
    assert set(report.failed) == {"unpicklable", "exit"}
    assert "pickle" in report.failed["unpicklable"].lower()
    assert report.failed["exit"].startswith("SystemExit: 4")


def test_transient_faults_back_off_uncharged_and_input_errors_run_once(
    tmp_path: Path, sqlite_database: Database
) -> None:
    """Disk full: retried after growing delays, never charged; a bad input: tried once.

    Before: a transient disk-full used up all of a unit's tries within a second and left it
    failed for good; a bad input file was tried ``max_tries`` times.
    """
    runs, out = dirs(tmp_path)

    def unit(key: str, **extra: object) -> WorkUnit:
        return WorkUnit(key, {"key": key, "runs": str(runs), "out": str(out), **extra})

    batch = [
        unit("full4", disk_full_times=4),  # passes after 4 faults: more than max_tries
        unit("full99", disk_full_times=99),  # outlasts the retries of this run
        unit("bad", bad_input=True),
        unit("fine"),
    ]
    options = {
        "kind": "test.faults",
        "database": sqlite_database,
        "workers": 2,
        "max_tries": 2,
        "progress": False,
        "transient_retries": 5,
        "backoff": 0.01,
    }
    start = time.perf_counter()
    report = run_work_units(record_run, batch, **options)  # type: ignore[arg-type]
    elapsed = time.perf_counter() - start
    assert sorted(report.done) == ["fine", "full4"]
    assert set(report.failed) == {"bad", "full99"}
    assert report.failed["full99"].startswith("transient fault after 6 attempts (not charged")
    assert "No space left on device" in report.failed["full99"]
    assert report.failed["bad"].startswith("InputFileError: ")
    counts = run_counts(runs)
    assert counts == {"full4": 5, "full99": 6, "bad": 1, "fine": 1}
    rows = ledger_rows(sqlite_database, "test.faults")
    assert rows["full4"] == (DONE, 1)
    assert rows["full99"] == ("pending", 0)  # never marked failed
    assert rows["bad"] == ("failed", 2)  # every try used up at once
    # the delays grew: 0.01 + 0.02 + 0.04 + 0.08 + 0.16 s before the 6th attempt at least
    assert elapsed >= 0.31
    # A plain re-run retries the transient one, not the bad input.
    again = run_work_units(record_run, batch, **options)  # type: ignore[arg-type]
    assert set(again.failed) == {"bad", "full99"}
    assert run_counts(runs)["full99"] == 12
    assert run_counts(runs)["bad"] == 1
