"""Echelle application: seconds per full-size NRES science frame, against reading the raw frame.

Simulates one full-size (4096 × 4096, 67 orders) lsc night, then measures:

* the whole night through ``reduce_night`` (checks, BIAS/DARK/FLAT stacks, traces, ARC stacks,
  TRIPLE wavelength solutions, two science frames), once, wall clock;
* baseline: reading and decompressing one raw science frame (``read_raw``), median of
  ``--repeat``;
* one science frame with calibrations ready (``reduce_science``: pre-processing, optimal and box
  extraction of both lit fibres, wavelength solution applied, 1-D + 2-D + quicklook written),
  median of ``--repeat``, and its ratio to the baseline (target ≤ 10×);
* the full-size accuracy against the truth (trace RMS, wavelength solution vs truth, flux);
* radial velocity: a ZERO is stacked from the night's two science frames (the targets registry
  loaded), then the RV of one reduced frame (all orders, 12 blocks each, barycentric correction;
  ``photonpipe.echelle.rv.measure_spectrum``), median of ``--repeat``, and its ratio to the
  time of that frame's reduction (``reduce_science``, timed before the ZERO existed).

Run as ``python benchmarks/bench_echelle.py [--repeat R] [--workers W]``. Worker processes
re-import this module, so importing it only defines things.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import median_time


def main() -> None:
    """Run the benchmark and print its figures."""
    from astropy.io import fits

    from photonpipe.echelle import observation as eobs
    from photonpipe.echelle import rv as erv
    from photonpipe.echelle import targets as etargets
    from photonpipe.echelle import templates as etemplates
    from photonpipe.echelle.formats import read_raw
    from photonpipe.echelle.pipeline import reduce_night
    from photonpipe.echelle.products import read_triple
    from photonpipe.echelle.science import reduce_science
    from photonpipe.echelle.simulate import NightPlan, simulate_night
    from photonpipe.echelle.traces import TraceSet
    from photonpipe.platform.archive import Archive
    from photonpipe.platform.db import Database

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    print(f"load average: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        start = time.perf_counter()
        # the night of the figures in benchmarks/README.md: 2 science frames (default now 4)
        night = simulate_night(
            root, site="lsc", night="2026-03-01", small=False, seed=7, plan=NightPlan(science=2)
        )
        seconds = time.perf_counter() - start
        print(f"simulate full-size night ({len(night.frames)} frames): {seconds:.1f} s")
        archive = Archive(root)
        database = Database(f"sqlite:///{root / 'photonpipe.db'}")
        database.upgrade()
        start = time.perf_counter()
        report = reduce_night(
            archive, database, "lsc", "nres01", "20260301", workers=args.workers, progress=False
        )
        night_seconds = time.perf_counter() - start
        print(f"reduce_night ({args.workers} workers): {night_seconds:.1f} s — {report.summary()}")
        for key, error in report.failed.items():
            print(f"  failed {key}: {error}")
        science = next(p for p in night.frames if p.name.endswith("e00.fits.fz"))
        read_seconds = median_time(lambda: read_raw(science), args.repeat)
        start = time.perf_counter()
        reduce_science(archive, database, science)
        cold_seconds = time.perf_counter() - start
        # Later frames of the same worker find the masters in memory (read_master's cache).
        reduce_seconds = median_time(
            lambda: reduce_science(archive, database, science), args.repeat
        )
        print(f"read + decompress one raw frame (baseline): {read_seconds:.2f} s")
        print(
            f"reduce the first science frame (masters read from disk): {cold_seconds:.2f} s = "
            f"{cold_seconds / read_seconds:.1f}×"
        )
        ratio = reduce_seconds / read_seconds
        print(
            f"reduce one science frame, calibrations ready: {reduce_seconds:.2f} s = {ratio:.1f}×"
        )

        reduced = root / "lsc" / "nres01" / "reduced"
        truth_hdul = fits.open(night.truth_path)
        x = np.arange(4096.0)
        u = (x - 2047.5) / 2047.5
        inside = [int(o) for o in truth_hdul[0].header["ORDERS"].split(",")]
        traces = TraceSet.read(next((reduced / "trace").glob("*-trace.fits")))
        table = truth_hdul["TRACE"].data
        residuals = []
        for order, fibre in traces:
            if order in inside:
                row = (table["ORDER"] == order) & (table["FIBRE"] == fibre)
                residuals.append(
                    traces.centre(order, fibre, x)
                    - np.polynomial.polynomial.polyval(u, table["COEFFS"][row][0])
                )
        trace_rms = np.sqrt(np.mean(np.concatenate(residuals) ** 2))
        print(f"traces: {len(residuals)} order/fibre pairs, RMS vs truth {trace_rms:.4f} px")
        waves = truth_hdul["WAVELENGTH"].data
        for fibre, solution in sorted(read_triple(next((reduced / "trip").glob("*.fits"))).items()):
            velocity = []
            for order in range(int(solution.m_domain[0]) - 52, int(solution.m_domain[1]) - 52 + 1):
                row = (waves["ORDER"] == order) & (waves["FIBRE"] == fibre)
                if row.any():
                    true_wave = waves["WAVELENGTH"][row][0]
                    velocity.append((solution(x, order) - true_wave) / true_wave * 299_792_458.0)
            rms = np.sqrt(np.mean(np.concatenate(velocity) ** 2))
            print(
                f"fibre {fibre}: {solution.n_lines} lines, residual RMS "
                f"{solution.rms_angstrom * 1e3:.2f} mÅ = {solution.rms_ms:.1f} m/s, "
                f"RV precision {solution.precision_ms:.2f} m/s, vs truth {rms:.2f} m/s RMS"
            )
        product = next((reduced / "spec").glob(f"{science.name[:27]}*-1d.fits"))
        flux_truth = truth_hdul[f"SCI_{science.name.split('-')[3]}"].data
        with fits.open(product) as hdul:
            spectra = hdul["SPECTRUM"].data
        ratios = []
        for row in spectra[spectra["FIBRE"] == 0]:
            expected = flux_truth["FLUX"][
                (flux_truth["ORDER"] == row["ORDER"]) & (flux_truth["FIBRE"] == 0)
            ][0]
            good = (row["MASK"] == 0) & (expected / np.maximum(row["UNCERTAINTY"], 1e-9) >= 100)
            if good.sum() > 200:
                ratios.append(np.median(row["FLUX"][good] / expected[good]))
        print(
            f"optimal flux / truth at S/N ≥ 100: {len(ratios)} orders, "
            f"median ratios {min(ratios):.4f} … {max(ratios):.4f}"
        )
        truth_hdul.close()

        etargets.import_targets(database, Path(erv.__file__).parent / "data" / "targets.csv")
        spectra = etemplates.spectrum_files(archive, "lsc", "nres01")
        with fits.open(spectra[0]) as hdul:
            header = hdul[0].header.copy()
            table = hdul["SPECTRUM"].data.copy()
        target = eobs.science_name(str(header["OBJECTS"])) or ""
        from datetime import UTC, datetime, timedelta

        when = datetime.fromisoformat(str(header["DATE-OBS"])).replace(tzinfo=UTC)
        zero = etemplates.make_zero(
            archive,
            database,
            site="lsc",
            instrument_name="nres01",
            camera="fl09",
            target=target,
            start=when - timedelta(hours=2),
            end=when + timedelta(hours=2),
        )
        template = etemplates.read_zero(zero.path)
        results = []
        rv_seconds = median_time(
            lambda: results.append(erv.measure_spectrum(spectra[0], header, table, template)),
            args.repeat,
        )
        result, _ = results[-1]
        print(
            f"RV of one reduced frame ({len(template.orders)} orders in the ZERO from "
            f"{len(zero.inputs)} frames, {result.n_used}/{len(result.blocks)} blocks used): "
            f"{rv_seconds:.2f} s = {rv_seconds / reduce_seconds:.2f}× the frame's reduction"
        )
        print(
            f"  RV relative to the ZERO {result.velocity * 1e3:.1f} ± "
            f"{result.uncertainty * 1e3:.1f} m/s (formal {result.formal_uncertainty * 1e3:.1f})"
        )


if __name__ == "__main__":
    main()
