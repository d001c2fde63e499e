"""Sky simulator: peak memory and time per plate of ``simulate boss`` for 1, 3 and 10 plates.

Each run is a fresh Python process that imports the simulator, records its resident set size
(the baseline: what the interpreter and the imports take), then writes N full-size plates
(500 fibres per spectrograph, 4 cameras, the plate list's exposures, at most 4) with
``iter_simulate_boss`` as ``photonpipe simulate boss --plates N`` does, and reports its peak
resident set size (``getrusage`` ``ru_maxrss``) and the time of each plate. Peak memory must
not grow with N: nothing of a plate is kept once it is written.

Run as ``python benchmarks/bench_sky_simulate.py [--plates 1 3 10] [--seed S]``. Each plate's
files (≈ 1.8 GB) are deleted once it is written and timed (outside the timed part).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

CHILD = r"""
import json, resource, shutil, sys, time
from photonpipe.sky.simulate import iter_simulate_boss

def rss_mb():
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return float("nan")

baseline = rss_mb()
seconds, exposures = [], []
start = time.perf_counter()
for plate in iter_simulate_boss(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), progress=False):
    seconds.append(time.perf_counter() - start)
    exposures.append(len(plate.exposures))
    shutil.rmtree(plate.directory)  # disk: ~1.8 GB a plate; memory is what is measured
    plate.truth.unlink()
    start = time.perf_counter()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"baseline_mb": baseline, "peak_mb": peak, "seconds": seconds,
                  "exposures": exposures}))
"""


def run(plates: int, seed: int) -> dict[str, Any]:
    """Simulate ``plates`` plates in a fresh process; return its measurements."""
    work = Path(tempfile.mkdtemp(prefix="bench-sky-simulate-"))
    try:
        done = subprocess.run(
            [sys.executable, "-c", CHILD, str(work / "out"), str(plates), str(seed)],
            check=True,
            capture_output=True,
            text=True,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plates", type=int, nargs="+", default=[1, 3, 10])
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(f"load average before measuring: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print(
        "| plates | exposures | peak RSS | imports (baseline) | peak / 1-plate peak | "
        "median s per plate | s per exposure |"
    )
    print("|---|---|---|---|---|---|---|")
    first_peak: float | None = None
    for n in args.plates:
        result = run(n, args.seed)
        peak = float(result["peak_mb"])
        first_peak = first_peak or peak
        seconds = [float(s) for s in result["seconds"]]
        exposures = [int(e) for e in result["exposures"]]
        per_exposure = sum(seconds) / max(1, sum(exposures))
        print(
            f"| {n} | {sum(exposures)} | {peak:.0f} MB | "
            f"{float(result['baseline_mb']):.0f} MB | {peak / first_peak:.2f} | "
            f"{statistics.median(seconds):.1f} s | {per_exposure:.1f} s |"
        )


if __name__ == "__main__":
    main()
