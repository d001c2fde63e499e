"""Archive pipeline speed: ingest of simulated datasets against the light-curve step alone.

Measures, in one run:

* the baseline, *the light-curve step alone*: for every dataset ``read_datasets`` +
  ``make_individual`` (light curve, statistics, FITS product, quicklook PNG) on a process pool
  of the same size and start method as the executor's, then ``make_composite`` per target and
  configuration on a second pool, writing into a scratch directory: no database, no ledger, no
  quality checks, no moves;
* ``photonpipe lightcurve ingest`` (:func:`photonpipe.lightcurves.ingest.ingest`) of the same
  files copied into a fresh archive's ingest directory, with a fresh SQLite database (migrated
  before the clock starts): quality checks, products, database rows, moves into
  ``filesystem/TARGET``, composites, all through the ledger and the local executor.

The overhead is ingest / baseline − 1. The datasets (default 200: COS G130M and STIS G140L, 20
targets, 300 s exposures of about 3000 source events) are simulated once into a temporary
directory or ``--keep DIR``. Each measurement is repeated ``--repeat`` times, alternating the
order, and medians are printed. Run as ``python benchmarks/bench_lightcurves_ingest.py
[--datasets N] [--repeat R] [--workers W] [--no-plot] [--keep DIR] [--start-method M]``; never
a pass/fail check. With ``--start-method fork`` (or ``spawn``) both sides' workers are children of
the benchmark process and their CPU time is measured as well: unlike wall-clock time it does not
depend on the machine's load.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import multiprocessing
import os
import platform
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from photonpipe.lightcurves.dataset import read_datasets
from photonpipe.lightcurves.extract import ExtractionParameters
from photonpipe.lightcurves.ingest import ArchiveLayout, ingest
from photonpipe.lightcurves.products import make_composite, make_individual
from photonpipe.lightcurves.simulate_archive import deliver
from photonpipe.platform.archive import Archive
from photonpipe.platform.config import load_settings
from photonpipe.platform.db import Database
from photonpipe.platform.executor import available_cores

PARAMETERS = ExtractionParameters(step=10.0)


def cpu_seconds() -> float:
    """User + system CPU time of this process and its reaped children [s].

    Pool workers started with ``fork`` or ``spawn`` are children of this process and are reaped
    when their pool shuts down, so the difference around a measurement is its total CPU time,
    which (unlike wall-clock time) does not depend on what else the machine is running.
    """
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def simulate(directory: Path, n: int) -> list[list[Path]]:
    """Simulate ``n`` datasets (or reuse them); return the files of each dataset."""
    inbox = directory / "inbox"
    marker = directory / f".complete-{n}"
    if not marker.exists():
        shutil.rmtree(directory, ignore_errors=True)
        plan = []
        for i in range(n):
            stis = i % 2 == 1
            rootname = f"{'o' if stis else 'l'}b{i:04d}abq"
            plan.append(
                (rootname, "G140L" if stis else "G130M", f"BENCH-{i % 20:02d}", 58000 + i, None)
            )
        deliver(inbox, directory / "truth", plan, seed=7, exptime=300.0, events=3000)
        marker.touch()
    groups: dict[str, list[Path]] = {}
    for path in sorted(inbox.iterdir()):
        groups.setdefault(path.name.split("_")[0], []).append(path)
    return list(groups.values())


def _individual(args: tuple[list[Path], Path, bool]) -> tuple[tuple[str, ...], list[Path]]:
    files, out, plot = args
    (dataset,) = read_datasets(files)
    make_individual(dataset, out, PARAMETERS, plot=plot)
    return dataset.configuration, files


def _composite(args: tuple[list[list[Path]], Path, bool]) -> str:
    members, out, plot = args
    datasets = [d for files in members for d in read_datasets(files)]
    return make_composite(datasets, out, PARAMETERS, plot=plot).path.name


def baseline(
    datasets: list[list[Path]], scratch: Path, workers: int, plot: bool, start_method: str
) -> tuple[float, float]:
    """The light-curve step alone on a process pool; wall-clock and CPU seconds."""
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    context = multiprocessing.get_context(start_method)
    cpu = cpu_seconds()
    start = time.perf_counter()
    groups: dict[tuple[str, ...], list[list[Path]]] = {}
    with cf.ProcessPoolExecutor(workers, mp_context=context) as pool:
        for configuration, files in pool.map(
            _individual, [(files, scratch, plot) for files in datasets]
        ):
            groups.setdefault(configuration, []).append(files)
    with cf.ProcessPoolExecutor(workers, mp_context=context) as pool:
        list(pool.map(_composite, [(members, scratch, plot) for members in groups.values()]))
    return time.perf_counter() - start, cpu_seconds() - cpu


def archive_ingest(
    datasets: list[list[Path]], root: Path, workers: int, plot: bool, start_method: str
) -> tuple[float, float, str]:
    """The archive pipeline on a fresh archive and SQLite database; wall-clock, CPU seconds."""
    shutil.rmtree(root, ignore_errors=True)
    archive = Archive(root)
    archive.create()
    layout = ArchiveLayout(archive)
    inbox = archive.makedirs(layout.ingest_dir)
    for files in datasets:
        for path in files:
            shutil.copyfile(path, inbox / path.name)
    database = Database(f"sqlite:///{root / 'photonpipe.db'}")
    database.upgrade()
    settings = load_settings(
        env={}, overrides={"executor.workers": workers, "executor.start_method": start_method}
    )
    cpu = cpu_seconds()
    start = time.perf_counter()
    report = ingest(layout, database, PARAMETERS, settings=settings, plot=plot, progress=False)
    seconds = time.perf_counter() - start
    cpu = cpu_seconds() - cpu
    database.dispose()
    if not report.ok or len(report.archived) != len(datasets):
        raise RuntimeError(report.summary())
    return seconds, cpu, report.summary().splitlines()[0]


def main() -> None:
    """Parse options, run the measurements, print medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=0, help="0: one per core")
    parser.add_argument("--no-plot", action="store_true", help="no quicklook PNGs")
    parser.add_argument("--keep", type=Path, help="directory for the simulated data (reused)")
    parser.add_argument(
        "--start-method",
        choices=["forkserver", "fork", "spawn"],
        default="forkserver",
        help="how workers start (both sides); with fork or spawn the CPU time is measured too",
    )
    options = parser.parse_args()
    workers = options.workers or available_cores()
    plot = not options.no_plot
    with tempfile.TemporaryDirectory(prefix="bench-lc-ingest-") as tmp:
        data_dir = options.keep or Path(tmp) / "data"
        t0 = time.perf_counter()
        datasets = simulate(data_dir, options.datasets)
        print(
            f"{len(datasets)} datasets ({sum(len(d) for d in datasets)} files, "
            f"{sum(p.stat().st_size for d in datasets for p in d) / 1e6:.1f} MB) ready in "
            f"{time.perf_counter() - t0:.1f} s; {workers} workers, quicklooks {plot}; "
            f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"
        )
        base_times: list[float] = []
        ingest_times: list[float] = []
        base_cpu: list[float] = []
        ingest_cpu: list[float] = []
        method = options.start_method
        line = ""
        for i in range(options.repeat):
            order = ("base", "ingest") if i % 2 == 0 else ("ingest", "base")
            for what in order:
                if what == "base":
                    seconds, cpu = baseline(datasets, Path(tmp) / "scratch", workers, plot, method)
                    base_times.append(seconds)
                    base_cpu.append(cpu)
                else:
                    seconds, cpu, line = archive_ingest(
                        datasets, Path(tmp) / "archive", workers, plot, method
                    )
                    ingest_times.append(seconds)
                    ingest_cpu.append(cpu)
            print(
                f"  run {i + 1}: step alone {base_times[-1]:.2f} s (CPU {base_cpu[-1]:.1f} s), "
                f"ingest {ingest_times[-1]:.2f} s (CPU {ingest_cpu[-1]:.1f} s); "
                f"load average {os.getloadavg()[0]:.1f}"
            )
        base = statistics.median(base_times)
        full = statistics.median(ingest_times)
        n = len(datasets)
        print(f"ingest report: {line}")
        print(f"light-curve step alone  median {base:7.2f} s  {n / base:6.1f} datasets/s")
        print(f"archive ingest          median {full:7.2f} s  {n / full:6.1f} datasets/s")
        print(f"overhead (ingest / step alone - 1): {100 * (full / base - 1):+.1f} %")
        if method != "forkserver":  # forkserver workers are not this process's children
            cpu_base, cpu_full = statistics.median(base_cpu), statistics.median(ingest_cpu)
            print(
                f"CPU time: step alone {cpu_base:.1f} s, ingest {cpu_full:.1f} s, overhead "
                f"{100 * (cpu_full / cpu_base - 1):+.1f} %"
            )


if __name__ == "__main__":
    main()
