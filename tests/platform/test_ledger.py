"""The ledger's bookkeeping, driven directly (no worker processes)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from photonpipe.platform.db import Database
from photonpipe.platform.ledger import (
    DONE,
    FAILED,
    PENDING,
    RUNNING,
    Ledger,
    WorkUnit,
    file_checksum,
    ledger_counts,
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
    assert ledger.plan(batch).busy == []  # no heartbeat at all: abandoned
    with sqlite_database.session() as session:
        session.execute(table.update().values(heartbeat=table.c.created))
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


def test_unit_abandoned_on_its_last_try_is_failed_not_stuck(sqlite_database: Database) -> None:
    """A unit whose final try died with its process is reported failed with the reason."""
    script = (
        "from photonpipe.platform.db import Database\n"
        "from photonpipe.platform.ledger import Ledger, WorkUnit\n"
        f"ledger = Ledger(Database({sqlite_database.url!r}), 'test.kind', max_tries=1)\n"
        "units = [WorkUnit('k0'), WorkUnit('k1')]\n"
        "ledger.plan(units)\n"
        "assert len(ledger.claim(units)) == 2\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True)
    ledger = Ledger(sqlite_database, "test.kind", max_tries=1)
    plan = ledger.plan(units(2))
    assert plan.todo == []
    assert plan.busy == []
    assert set(plan.exhausted) == {"k0", "k1"}
    assert plan.exhausted["k0"].startswith("abandoned: the process running try 1 of 1 died (")
    assert ledger.counts() == {FAILED: 2}
    assert ledger.failures()["k1"] == plan.exhausted["k1"]
    # Asking to retry failures gives them new tries.
    assert [u.key for u in ledger.plan(units(2), retry_failed=True).todo] == ["k0", "k1"]
