"""A kill costs nothing: `photonpipe lightcurve ingest` SIGKILLed again and again, then re-run.

Each trial runs the real command in its own process group (two workers) and kills it with
SIGKILL at a random point: either at a random checkpoint of a dataset or composite (the
ingest's fault-injection variable) or after a random delay (to the whole process group). The
next trial is a plain re-run of the same command, which may be killed in turn, so kills pile up
on the same datasets. Whenever a run finishes (exit 0), the next wave of deliveries arrives. At
the end one plain run must exit 0 with everything in place.

Before the ledger charged tries only to started units, three kills of a claimed dataset left it
"abandoned" for good and the plain re-run exited 1 with datasets stuck in the ingest directory.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from helpers.lightcurve_archive import check_consistency, check_no_orphans
from photonpipe.lightcurves.ingest import CHECKPOINTS, KILL_VARIABLE, ArchiveLayout
from photonpipe.lightcurves.simulate_archive import DeliveredDataset, deliver
from photonpipe.platform.archive import Archive
from photonpipe.platform.db import Database
from photonpipe.platform.ledger import FAILED, WorkUnitRecord

#: Checkpoints of a dataset every delivery passes; the composites' and the rejection's (only
#: every other delivery has a bad dataset) are drawn less often.
_DATASET = ["dataset_start", "individual_written", "committed", "moved", "dataset_done"]
#: Checkpoints no dataset has passed its commit at (the first burst's).
_EARLY = ["dataset_start", "individual_written"]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _wave(root: Path, k: int) -> list[DeliveredDataset]:
    """Delivery ``k``: two small good datasets, and a bad one in every other delivery."""
    plan: list[tuple[str, str, str, float, str | None]] = [
        (f"lk{k:02d}a1bq", "G130M", "STAR-A", 58000.0 + k + 0.1, None),
        (f"lk{k:02d}b1bq", "G130M", "STAR-B" if k % 2 else "STAR-A", 58000.0 + k + 0.2, None),
    ]
    if k % 2 == 0:
        plan.append((f"lk{k:02d}x1bq", "G130M", "STAR-A", 58000.0 + k + 0.3, "Bad EXPFLAG"))
    return deliver(root / f"wave{k}", root / "truth", plan, seed=100 + k, exptime=120.0, events=400)


def _command(layout: ArchiveLayout, url: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "photonpipe",
        "--archive",
        str(layout.archive.root),
        "--set",
        f"database.url={url}",
        "--set",
        "executor.workers=2",
        "--set",
        "executor.start_method=fork",
        "lightcurve",
        "ingest",
        "--step",
        "10",
        "--no-plot",
    ]


def _run(command: list[str], kill: str | None, delay: float | None) -> tuple[int, str]:
    """Run the ingest; kill it at checkpoint ``kill`` or after ``delay`` s. Return (code, err)."""
    env = {k: v for k, v in os.environ.items() if k != KILL_VARIABLE}
    if kill:
        env[KILL_VARIABLE] = kill
    process = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    if delay is not None:
        try:
            process.wait(delay)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
    _, err = process.communicate(timeout=300)
    # a checkpoint kill takes the batch process and one worker; the others follow it
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    return process.returncode, err


def _deliver(
    tmp_path: Path,
    layout: ArchiveLayout,
    delivered: list[DeliveredDataset],
    originals: dict[str, str],
) -> None:
    """Copy the next wave of datasets into the ingest directory, noting their checksums."""
    wave = _wave(tmp_path / "pool", len(delivered))
    for dataset in wave:
        for path in dataset.files:
            originals[path.name] = _sha256(path)
            shutil.copy2(path, layout.inbox / path.name)
    delivered.extend(wave)


def _check_final(
    layout: ArchiveLayout,
    database: Database,
    delivered: list[DeliveredDataset],
    originals: dict[str, str],
) -> list[Any]:
    """Consistency, no orphans, every input byte kept, no failed unit; the ledger rows."""
    check_consistency(layout, database, delivered)
    products = check_no_orphans(layout, database)
    # one light curve per good dataset, one composite per target (no quicklooks)
    assert products == sum(1 for d in delivered if d.bad is None) + 2
    # every input byte kept: each file's checksum is its original one, wherever it is now
    area = layout.area
    for dataset in delivered:
        for path in dataset.files:
            (where,) = [
                p
                for p in (area / "bad_data" / path.name, *area.glob(f"filesystem/*/{path.name}"))
                if p.exists()
            ]
            assert _sha256(where) == originals[path.name], where
    with database.session() as session:
        statuses = session.execute(
            sa.select(WorkUnitRecord.key, WorkUnitRecord.status, WorkUnitRecord.deaths)
        ).all()
    assert FAILED not in {s for _, s, _ in statuses}, statuses
    return list(statuses)


def _units(url: str) -> str:
    """The ledger's rows, for a failure message."""
    database = Database(url)
    with database.session() as session:
        rows = session.execute(
            sa.select(
                WorkUnitRecord.kind,
                WorkUnitRecord.key,
                WorkUnitRecord.status,
                WorkUnitRecord.tries,
                WorkUnitRecord.deaths,
                WorkUnitRecord.failures,
                WorkUnitRecord.error,
            )
        ).all()
    database.dispose()
    return "\nledger:\n" + "\n".join(str(tuple(r)) for r in rows)


def _kill_repeatedly(tmp_path: Path, url: str, kills: int, seed: int) -> dict[str, float]:
    rng = random.Random(seed)
    originals: dict[str, str] = {}
    archive = Archive(tmp_path / "archive")
    archive.create()
    layout = ArchiveLayout(archive)
    layout.inbox.mkdir(parents=True)
    command = _command(layout, url)
    delivered: list[DeliveredDataset] = []

    _deliver(tmp_path, layout, delivered, originals)
    killed = trials = longest = 0
    last_run = 4.0  # seconds a finished run took (for random delays within a run)
    start = time.perf_counter()
    while killed < kills:
        # A burst of kills: each run is a plain re-run of the one killed before. The first
        # burst kills more runs in a row than a unit has tries (executor.max_tries = 3).
        burst, streak = (4 if killed == 0 else rng.randint(1, 5)), 0
        while streak < burst and killed < kills:
            trials += 1
            assert trials < 4 * kills, f"{killed} of {kills} kills hit in {trials} trials"
            if killed < 4:
                # before any dataset of the delivery can finish: the same units die each time
                kill, delay = f"{rng.choice(_EARLY)}@1", None
            elif rng.random() < 0.85:
                point = rng.choice(_DATASET) if rng.random() < 0.8 else rng.choice(CHECKPOINTS)
                kill, delay = f"{point}@{1 if rng.random() < 0.8 else 2}", None
            else:
                kill, delay = None, rng.uniform(0.3, last_run)
            code, err = _run(command, kill, delay)
            if code != -signal.SIGKILL:  # the run got through before the kill point
                assert code == 0, f"re-run after {streak} kills in a row exited {code}: {err}"
                break
            killed += 1
            streak += 1
            longest = max(longest, streak)
        # a plain run (no kill) completes the delivery; then the next one arrives
        began = time.perf_counter()
        code, err = _run(command, None, None)
        assert code == 0, (
            f"plain run after {streak} kills in a row exited {code}: {err}{_units(url)}"
        )
        last_run = max(time.perf_counter() - began, 1.0)
        database = Database(url)
        check_consistency(layout, database, delivered)
        database.dispose()
        _deliver(tmp_path, layout, delivered, originals)
    assert longest > 3, f"at most {longest} kills in a row; the test needs more"
    code, err = _run(command, None, None)
    seconds = time.perf_counter() - start
    assert code == 0, err
    database = Database(url)
    statuses = _check_final(layout, database, delivered, originals)
    database.dispose()
    return {
        "kills": killed,
        "trials": trials,
        "longest run of kills": longest,
        "deaths recorded": sum(d for _, _, d in statuses),
        "seconds": round(seconds, 1),
    }


@pytest.mark.parametrize(
    "kills", [8, pytest.param(30, marks=pytest.mark.slow)], ids=["8-kills", "30-kills"]
)
def test_repeated_sigkills_cost_nothing(database_url: str, tmp_path: Path, kills: int) -> None:
    """SIGKILL the ingest command at random points; a plain re-run always completes it."""
    database = Database(database_url)
    database.upgrade()
    database.dispose()  # an engine left to the garbage collector warns (psycopg)
    figures = _kill_repeatedly(tmp_path, database_url, kills, seed=kills)
    print(f"kill test: {figures}")
