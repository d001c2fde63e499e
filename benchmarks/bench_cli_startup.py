"""Start-up time of the ``photonpipe`` command: ``--help`` of the command and of every group.

Each row is a fresh process (``python -m photonpipe ARGS``, what the console script runs),
timed from start to exit, and compared with ``python -c pass`` (the interpreter alone) and with
``python -c "import click"`` measured in the same run. Bytecode caches are written by a warm-up
run first (``PYTHONDONTWRITEBYTECODE`` is removed from the environment), as an installed
package has them.

Run as ``python benchmarks/bench_cli_startup.py [--repeat R]`` (default 15). It prints median
seconds and ratios, never checks a time against a threshold, and exits 0 unless a command fails.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys

from _common import median_time

COMMANDS: tuple[tuple[str, ...], ...] = (
    ("--help",),
    ("--version",),
    ("config", "--help"),
    ("db", "--help"),
    ("work", "--help"),
    ("demo", "--help"),
    ("simulate", "--help"),
    ("lightcurve", "--help"),
    ("lightcurve", "make", "--help"),
    ("sky", "--help"),
    ("session", "--help"),
    ("echelle", "--help"),
    ("echelle", "night", "--help"),
    ("config", "template"),
)


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHOTONPIPE_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _run(argv: list[str], env: dict[str, str]) -> None:
    result = subprocess.run(argv, env=env, capture_output=True, check=False)
    if result.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.decode()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=15, help="runs per row (median)")
    args = parser.parse_args()
    env = _environment()
    python = sys.executable
    rows: list[tuple[str, list[str]]] = [
        ("python -c pass (baseline)", [python, "-c", "pass"]),
        ("python -c 'import click'", [python, "-c", "import click"]),
    ]
    rows += [("photonpipe " + " ".join(c), [python, "-m", "photonpipe", *c]) for c in COMMANDS]
    for _, argv in rows:
        _run(argv, env)  # warm-up: bytecode caches, file-system cache
    # Round-robin, so that a change in the machine's load affects every row alike.
    times: dict[str, list[float]] = {label: [] for label, _ in rows}
    for _ in range(args.repeat):
        for label, argv in rows:
            times[label].append(median_time(lambda argv=argv: _run(argv, env), 1))
    medians = {label: statistics.median(values) for label, values in times.items()}
    baseline = medians[rows[0][0]]
    click_only = medians[rows[1][0]]
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores")
    print(f"medians of {args.repeat} fresh processes per row")
    print(f"{'command':40s} {'median [s]':>10s} {'× pass':>7s} {'− click [s]':>12s}")
    for label, _ in rows:
        seconds = medians[label]
        extra = f"{seconds - click_only:12.3f}" if label.startswith("photonpipe") else ""
        print(f"{label:40s} {seconds:10.3f} {seconds / baseline:7.1f} {extra}")


if __name__ == "__main__":
    main()
