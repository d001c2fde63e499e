"""Run a batch of :func:`helpers.units.record_run` units; used by tests that kill it.

Usage: python -m helpers.batch URL BACKEND N RUNS_DIR OUT_DIR [SLEEP] [WORKERS]
Prints "done" and the report's counts when it finishes.
"""

from __future__ import annotations

import sys

from helpers.units import record_run
from photonpipe.platform.db import Database
from photonpipe.platform.executor import run_work_units
from photonpipe.platform.ledger import WorkUnit


def units(n: int, runs: str, out: str, sleep: float) -> list[WorkUnit]:
    """The batch: n units, keys u0000..."""
    return [
        WorkUnit(f"u{i:04d}", {"key": f"u{i:04d}", "runs": runs, "out": out, "sleep": sleep})
        for i in range(n)
    ]


def main() -> None:
    url, backend, n, runs, out = sys.argv[1:6]
    sleep = float(sys.argv[6]) if len(sys.argv) > 6 else 0.01
    workers = int(sys.argv[7]) if len(sys.argv) > 7 else 2
    report = run_work_units(
        record_run,
        units(int(n), runs, out, sleep),
        kind="test.batch",
        database=Database(url),
        backend=backend,
        workers=workers,
        progress=False,
    )
    print("done", len(report.done), len(report.already_done), len(report.failed), flush=True)


if __name__ == "__main__":
    main()
