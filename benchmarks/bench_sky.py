"""Sky application: sky spectra per second per core, against the time to read the spFrames.

Simulates ``--plates`` BOSS plates at full size (500 fibres per spectrograph, 4 cameras,
``--exposures`` exposures), then measures, medians of ``--repeat`` runs:

* baseline: reading every spFrame of the plates (``read_spframe``);
* one plate work unit in this process (``build_plate``: spFrame + spCFrame + spFluxcalib
  reads, flux conversion, conditions, metadata, HDF5 + Parquet writes), as sky spectra per
  second on one core and as a ratio to the baseline;
* the projected time for the survey's 2.5 million sky spectra on this machine's cores;
* ``sky build`` on a Dask LocalCluster with 1 and with 2 single-threaded workers (cluster start
  included), and the speed-up.

Run as ``python benchmarks/bench_sky.py [--plates N] [--exposures E] [--repeat R] [--no-dask]``.
Worker processes re-import this module, so importing it only defines things.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from _common import median_time

SURVEY_SPECTRA = 2_500_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plates", type=int, default=4)
    parser.add_argument("--exposures", type=int, default=2)
    parser.add_argument("--fibres", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-dask", action="store_true")
    args = parser.parse_args()

    import photonpipe.sky.settings  # noqa: F401
    from photonpipe.platform.archive import Archive
    from photonpipe.platform.config import load_settings
    from photonpipe.platform.db import Database
    from photonpipe.platform.executor import available_cores
    from photonpipe.sky.formats import read_spframe
    from photonpipe.sky.pipeline import BuildOptions, build_plate, build_sky_dataset
    from photonpipe.sky.simulate import observable_plates, simulate_plate

    work = Path(tempfile.mkdtemp(prefix="bench-sky-"))
    settings = load_settings(env={}, overrides={"archive.root": str(work / "archive")})
    options = BuildOptions.from_settings(settings)
    plates = observable_plates()[:: max(1, len(observable_plates()) // args.plates)][: args.plates]
    start = time.perf_counter()
    simulated = [
        simulate_plate(
            Archive(work / "input"),
            p,
            1,
            fibres_per_spectrograph=args.fibres,
            exposures=args.exposures,
        )
        for p in plates
    ]
    print(f"load average before measuring: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print(
        f"simulated {len(simulated)} plates in {time.perf_counter() - start:.1f} s "
        f"({args.fibres} fibres/spectrograph, {args.exposures} exposures, 4 cameras)"
    )

    frames = sorted(p for s in simulated for p in s.directory.glob("spFrame-*.fits"))
    read_s = median_time(lambda: [read_spframe(p) for p in frames], args.repeat)
    counts: list[int] = []

    def build_all() -> None:
        counts.clear()
        for s in simulated:
            result = build_plate(
                {"plate_dir": str(s.directory), "output_dir": str(work / "out"), "options": options}
            )
            counts.append(result["spectra"])

    build_s = median_time(build_all, args.repeat)
    spectra = sum(counts)
    rate = spectra / build_s
    cores = available_cores()
    print()
    print(f"{'measurement':<52} {'median':>9} {'ratio':>7}")
    print(f"{'read ' + str(len(frames)) + ' spFrames (baseline)':<52} {read_s:8.2f}s {'1.0':>7}")
    print(
        f"{'build ' + str(len(simulated)) + ' plates in-process (1 core)':<52} "
        f"{build_s:8.2f}s {build_s / read_s:6.1f}x"
    )
    print()
    print(
        f"sky spectra: {spectra}; {rate:.0f} spectra/s per core "
        f"({spectra / read_s:.0f}/s if only the spFrames were read)"
    )
    survey_h = SURVEY_SPECTRA / (rate * cores) / 3600.0
    print(
        f"projected full survey ({SURVEY_SPECTRA:,} spectra) on {cores} cores: "
        f"{survey_h:.1f} h (reading the spFrames alone: "
        f"{SURVEY_SPECTRA / (spectra / read_s * cores) / 3600.0:.1f} h)"
    )

    if args.no_dask:
        return
    from dask.distributed import LocalCluster

    def dask_build(workers: int, scheduler: str | None) -> None:
        tag = f"dask{workers}-{time.perf_counter_ns()}"
        database = Database(f"sqlite:///{work / (tag + '.db')}")
        run_settings = settings
        if scheduler is not None:
            run_settings = settings.replace({"executor.scheduler": scheduler}, "benchmark")
        report = build_sky_dataset(
            work / "input",
            work / tag,
            database=database,
            settings=run_settings,
            backend="dask",
            workers=workers,
            progress=False,
        )
        if not report.ok:
            sys.exit(f"dask build failed: {report.failed}")

    cold = {w: median_time(lambda w=w: dask_build(w, None), args.repeat) for w in (1, 2)}
    warm = {}
    for workers in (1, 2):
        with LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster:
            dask_build(workers, cluster.scheduler_address)  # warm up the workers' imports
            warm[workers] = median_time(
                lambda w=workers, a=cluster.scheduler_address: dask_build(w, a), args.repeat
            )
    print()
    print(f"{'sky build on Dask':<52} {'1 worker':>9} {'2 workers':>10} {'speed-up':>9}")
    print(
        f"{'new LocalCluster per run (start-up included)':<52} {cold[1]:8.2f}s {cold[2]:9.2f}s "
        f"{cold[1] / cold[2]:8.2f}x"
    )
    print(
        f"{'running cluster, workers warm':<52} {warm[1]:8.2f}s {warm[2]:9.2f}s "
        f"{warm[1] / warm[2]:8.2f}x"
    )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
