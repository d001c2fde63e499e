"""The ledger's bookkeeping, driven directly (no worker processes)."""

from __future__ import annotations

import errno
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from photonpipe.platform.db import Database
from photonpipe.platform.ledger import (
    DONE,
    FAILED,
    PENDING,
    RUNNING,
    Ledger,
    WorkUnit,
    WorkUnitRecord,
    file_checksum,
    ledger_counts,
    transient_fault,
)


def units(n: int, checksum: str | None = None) -> list[WorkUnit]:
    return [WorkUnit(f"k{i}", i, checksum) for i in range(n)]


def test_lifecycle_on_every_dialect(database: Database) -> None:
    ledger = Ledger(database, "test.kind", max_tries=2)
    batch = units(5, "sha256:a")
    plan = ledger.plan(batch)
    assert [u.key for u in plan.todo] == ["k0", "k1", "k2", "k3", "k4"]
    claimed = ledger.claim(batch)
    assert claimed == batch
    assert ledger.counts() == {RUNNING: 5}
    ledger.record(
        successes=[(u, {"n": u.payload}) for u in batch[:3]],
        failures=[(batch[3], "ValueError: bad"), (batch[4], "x" * 10000)],
    )
    assert ledger.counts() == {DONE: 3, FAILED: 2}
    assert ledger.failures() == {"k3": "ValueError: bad", "k4": "x" * 4000}
    # Second plan: done units skipped; failed ones still have a try left.
    plan = ledger.plan(batch)
    assert plan.already_done == ["k0", "k1", "k2"]
    assert [u.key for u in plan.todo] == ["k3", "k4"]
    assert ledger.claim(plan.todo) == plan.todo
    ledger.record(failures=[(u, "again") for u in plan.todo])
    plan = ledger.plan(batch)
    assert plan.exhausted == {"k3": "again", "k4": "again"}
    assert plan.todo == []
    # No tries left: a claim takes nothing.
    assert ledger.claim(batch[3:]) == []
    # retry_failed gives them a fresh set of tries.
    plan = ledger.plan(batch, retry_failed=True)
    assert [u.key for u in plan.todo] == ["k3", "k4"]
    assert ledger.tries_left(batch[3]) == 2
    assert ledger_counts(database) == {"test.kind": {DONE: 3, FAILED: 2}}


def test_changed_input_is_redone(sqlite_database: Database) -> None:
    ledger = Ledger(sqlite_database, "test.kind")
    old = units(3, "sha256:old")
    ledger.claim(ledger.plan(old).todo)
    ledger.record(successes=[(u, None) for u in old])
    new = [old[0], WorkUnit("k1", 1, "sha256:new"), WorkUnit("k2", 2, None)]
    plan = ledger.plan(new)
    # k1's input changed; k2 now comes without a checksum, which never forces a redo.
    assert [u.key for u in plan.todo] == ["k1"]
    assert plan.already_done == ["k0", "k2"]


def test_failed_unit_with_changed_input_gets_new_tries(sqlite_database: Database) -> None:
    ledger = Ledger(sqlite_database, "test.kind", max_tries=1)
    unit = WorkUnit("k", 0, "sha256:broken-file")
    ledger.claim(ledger.plan([unit]).todo)
    ledger.record(failures=[(unit, "corrupt")])
    assert ledger.plan([unit]).exhausted == {"k": "corrupt"}
    fixed = WorkUnit("k", 0, "sha256:fixed-file")
    assert ledger.plan([fixed]).todo == [fixed]
    assert ledger.claim([fixed]) == [fixed]


def test_concurrent_claims_are_exclusive(database: Database) -> None:
    first = Ledger(database, "test.kind")
    second = Ledger(database, "test.kind")
    batch = units(50)
    first.plan(batch)
    a = first.claim(batch[:30])
    b = second.claim(batch)  # the first 30 are held by a live process (this one)
    assert {u.key for u in a}.isdisjoint({u.key for u in b})
    assert len(a) + len(b) == 50
    # Every unit is now held by a live process (this one, under two owners).
    assert second.plan(batch).busy == [u.key for u in batch]


def test_units_of_a_dead_process_are_taken_over(sqlite_database: Database) -> None:
    """A unit left running by a process that no longer exists is claimable at once."""
    script = (
        "import sys\n"
        "from photonpipe.platform.db import Database\n"
        "from photonpipe.platform.ledger import Ledger, WorkUnit\n"
        f"ledger = Ledger(Database({sqlite_database.url!r}), 'test.kind')\n"
        "units = [WorkUnit(f'k{i}') for i in range(3)]\n"
        "ledger.plan(units)\n"
        "assert len(ledger.claim(units)) == 3\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True)
    ledger = Ledger(sqlite_database, "test.kind")
    assert ledger.counts() == {RUNNING: 3}
    plan = ledger.plan(units(3))
    assert plan.busy == []
    assert len(ledger.claim(plan.todo)) == 3


def test_units_of_a_live_process_elsewhere_wait_for_the_lease(sqlite_database: Database) -> None:
    ledger = Ledger(sqlite_database, "test.kind", lease=3600)
    batch = units(2)
    ledger.plan(batch)
    # Pretend another host holds the units: its liveness cannot be checked, so the lease rules.
    table = ledger._table()
    with sqlite_database.session() as session:
        session.execute(
            table.update().values(
                status=RUNNING, owner="elsewhere:1:1:abc", heartbeat=None, tries=1
            )
        )
    assert ledger.plan(batch).busy == []  # no heartbeat at all: abandoned, taken back
    assert ledger.counts() == {PENDING: 2}
    with sqlite_database.session() as session:
        session.execute(
            table.update().values(
                status=RUNNING, owner="elsewhere:1:1:abc", heartbeat=table.c.created
            )
        )
    impatient = Ledger(sqlite_database, "test.kind", lease=1e-3)
    assert ledger.plan(batch).busy == ["k0", "k1"]  # recent heartbeat, long lease
    assert impatient.plan(batch).busy == []  # lease expired
    assert len(impatient.claim(batch)) == 2


def test_release_does_not_count_the_try(sqlite_database: Database) -> None:
    ledger = Ledger(sqlite_database, "test.kind", max_tries=1)
    batch = units(2)
    ledger.claim(ledger.plan(batch).todo)
    ledger.release(batch)
    assert ledger.counts() == {PENDING: 2}
    assert ledger.tries_left(batch[0]) == 1


def test_duplicate_keys_are_refused(sqlite_database: Database) -> None:
    with pytest.raises(ValueError, match="duplicate work-unit keys"):
        Ledger(sqlite_database, "test.kind").plan([WorkUnit("a"), WorkUnit("a")])


def test_results_are_stored_when_small_and_serialisable(sqlite_database: Database) -> None:
    ledger = Ledger(sqlite_database, "test.kind")
    batch = units(4)
    ledger.claim(ledger.plan(batch).todo)
    ledger.record(
        successes=[
            (batch[0], {"flux": 1.5}),
            (batch[1], object()),
            (batch[2], "x" * 100_000),
            (batch[3], {"rate": np.float32(2.5), "path": Path("/a/b")}),
        ]
    )
    table = ledger._table()
    with sqlite_database.session() as session:
        query = table.select().with_only_columns(table.c.key, table.c.result)
        rows = {r.key: r.result for r in session.execute(query)}
    assert rows == {
        "k0": '{"flux": 1.5}',
        "k1": None,
        "k2": None,
        "k3": '{"rate": 2.5, "path": "/a/b"}',
    }


def test_file_checksum(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"abc")
    b.write_bytes(b"")
    # SHA-256 of "abc\0" (each file is followed by a NUL separator).
    expected = "dc1114cd074914bd872cc1f9a23ec910ea2203bc79779ab2e17da25782a624fc"
    assert file_checksum(a) == f"sha256:{expected}"
    assert file_checksum(a, b) != file_checksum(b, a)
    assert file_checksum(a) == file_checksum(a)


def _claim_and_die(url: str, keys: list[str], started: list[str], max_tries: int = 1) -> None:
    """In a process that exits at once: claim ``keys`` and charge the tries of ``started``."""
    script = (
        "from photonpipe.platform.db import Database\n"
        "from photonpipe.platform.ledger import Ledger, WorkUnit\n"
        f"ledger = Ledger(Database({url!r}), 'test.kind', max_tries={max_tries})\n"
        f"units = [WorkUnit(k) for k in {keys!r}]\n"
        "ledger.plan(units)\n"
        f"assert len(ledger.claim(units)) == {len(keys)}\n"
        f"ledger.start({started!r})\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True)


def _row(database: Database, key: str) -> tuple[str, int, int, int]:
    table = WorkUnitRecord.__table__
    with database.session() as session:
        row = session.execute(
            sa.select(table.c.status, table.c.tries, table.c.deaths, table.c.failures).where(
                table.c.key == key
            )
        ).one()
    return tuple(row)  # type: ignore[return-value]


def test_a_kill_costs_nothing(sqlite_database: Database) -> None:
    """Claimed units a killed process never started go back uncharged; started ones too.

    Before: every claimed unit was charged a try, so after ``max_tries`` kills it was
    "abandoned" and a plain re-run would not touch it.
    """
    url = sqlite_database.url
    for kill in range(3):
        _claim_and_die(url, ["k0", "k1"], started=["k1"])
        ledger = Ledger(sqlite_database, "test.kind", max_tries=1)
        plan = ledger.plan(units(2))
        assert [u.key for u in plan.todo] == ["k0", "k1"], kill
        assert plan.exhausted == {}
        assert _row(sqlite_database, "k0") == (PENDING, 0, 0, 0)  # never started
        assert _row(sqlite_database, "k1") == (PENDING, 0, kill + 1, 0)  # deaths, not tries
    ledger = Ledger(sqlite_database, "test.kind", max_tries=1)
    assert ledger.claim(units(2)) == units(2)
    ledger.record(successes=[(u, None) for u in units(2)])
    assert _row(sqlite_database, "k1") == (DONE, 1, 3, 0)


def test_a_unit_that_kills_every_process_running_it_ends_failed(
    sqlite_database: Database,
) -> None:
    """Deaths beyond ``max_deaths`` count as tries: a redelivered crasher is not run for ever.

    Before: every death was given back, so a frame that crashed its Celery worker child was
    redelivered and taken over for ever.
    """
    url = sqlite_database.url
    ledger = Ledger(sqlite_database, "test.kind", max_tries=2, max_deaths=3)
    for death in range(1, 6):
        _claim_and_die(url, ["k0"], started=["k0"], max_tries=2)
        plan = ledger.plan(units(1))
        if death <= 4:  # three deaths given back, the fourth charged (one try of two left)
            assert [u.key for u in plan.todo] == ["k0"], death
    assert _row(sqlite_database, "k0") == (FAILED, 2, 5, 0)
    assert plan.todo == []
    assert "died (" in plan.exhausted["k0"]
    assert plan.exhausted["k0"].endswith("5 times (each death beyond 3 counts as a try)")
    # asking to retry failures starts afresh
    assert [u.key for u in ledger.plan(units(1), retry_failed=True).todo] == ["k0"]
    assert _row(sqlite_database, "k0")[1:] == (0, 0, 0)


def test_a_unit_that_raised_before_is_charged_for_its_deaths(sqlite_database: Database) -> None:
    """Once an attempt of a unit raised, a death of its process counts as a try."""
    ledger = Ledger(sqlite_database, "test.kind", max_tries=2)
    ledger.plan(units(1))
    ledger.claim(units(1))
    ledger.start(["k0"])
    ledger.record(failures=[(units(1)[0], "ValueError: bad")])
    assert _row(sqlite_database, "k0") == (FAILED, 1, 0, 1)
    _claim_and_die(sqlite_database.url, ["k0"], started=["k0"], max_tries=2)
    plan = ledger.plan(units(1))
    assert plan.todo == []
    assert plan.exhausted["k0"].startswith("abandoned: the process running try 2 of 2 died (")
    assert plan.exhausted["k0"].endswith("raised: ValueError: bad")
    assert _row(sqlite_database, "k0") == (FAILED, 2, 1, 1)
    assert ledger.failures()["k0"] == plan.exhausted["k0"]
    # Asking to retry failures gives it new tries.
    assert [u.key for u in ledger.plan(units(1), retry_failed=True).todo] == ["k0"]


def test_transient_faults_are_not_charged_and_input_errors_not_retried(
    sqlite_database: Database,
) -> None:
    ledger = Ledger(sqlite_database, "test.kind", max_tries=2)
    batch = units(2)
    ledger.plan(batch)
    for _ in range(5):
        ledger.claim(batch)
        ledger.start(["k0", "k1"])
        ledger.record(transient=[(batch[0], "OSError: [Errno 28] No space left on device")])
        assert _row(sqlite_database, "k0") == (PENDING, 0, 0, 0)
        ledger.record(permanent=[(batch[1], "InputFileError: x.fits: not FITS")])
        assert _row(sqlite_database, "k1") == (FAILED, 2, 0, 1)
    plan = ledger.plan(batch)
    assert [u.key for u in plan.todo] == ["k0"]
    assert plan.exhausted == {"k1": "InputFileError: x.fits: not FITS"}


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (OSError(errno.ENOSPC, "No space left on device", "/a/b"), True),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), True),
        (OSError(errno.ENOENT, "No such file or directory", "/a"), False),
        (OSError(errno.EROFS, "Read-only file system", "/a"), False),
        (
            sa.exc.OperationalError("UPDATE", {}, sqlite3.OperationalError("database is locked")),
            True,
        ),
        (
            sa.exc.OperationalError(
                "UPDATE", {}, sqlite3.OperationalError("database or disk is full")
            ),
            True,
        ),
        (
            sa.exc.OperationalError("SELECT", {}, Exception("(2013, 'Lost connection to MySQL')")),
            True,
        ),
        (sa.exc.IntegrityError("INSERT", {}, Exception("UNIQUE constraint failed")), False),
        (ValueError("bad"), False),
    ],
)
def test_transient_fault_classification(exc: BaseException, transient: bool) -> None:
    assert (transient_fault(exc) is not None) == transient
    # also when wrapped, as photonpipe's own errors wrap them
    outer = RuntimeError("wrapped")
    outer.__cause__ = exc
    assert (transient_fault(outer) is not None) == transient
