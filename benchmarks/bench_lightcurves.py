"""Light-curve extraction speed on a simulated COS FUV exposure of about 10⁷ events.

Measures, in one run and against a baseline measured in that same run:

* the baseline: reading just the columns the extraction needs (TIME, XFULL, YFULL, WAVELENGTH,
  EPSILON, DQ) of both corrtags with astropy (memory-mapped) and converting them to native byte
  order, nothing else;
* the same columns read by a plain ``numpy.memmap`` of the EVENTS table bytes (a second,
  astropy-free lower bound on reading);
* photonpipe's readers: ``read_events`` on both corrtags, ``read_datasets`` on the corrtags and
  the x1d;
* ``extract`` alone on a dataset already read (events/s after reading);
* ``write_product`` alone (variability statistics, FITS product, SHA-256 of the three inputs),
  and the SHA-256 of the inputs on its own;
* end to end: ``read_datasets`` + ``extract``, and the same + ``write_product``.

The data are simulated once (``simulate_exposure``, G130M, 1200 s) into a temporary directory,
or into ``--keep DIR`` where a later run reuses them. Every measurement is repeated ``--repeat``
times (default 3) and the medians are printed, with ratios to the baseline. Files are in the page
cache after the first read, so the main figures are warm-cache ones; unless ``--no-cold``, the
baseline and the end-to-end read + extract are also timed after evicting the input files from the
page cache (``posix_fadvise(DONTNEED)`` on those files only). ``--profile`` adds a cProfile of
``extract`` and the time spent on each of its lines.

Run as ``python benchmarks/bench_lightcurves.py [--events N] [--repeat R] [--keep DIR]``. It
prints medians and never checks a time against a threshold.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import linecache
import os
import platform
import pstats
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
from astropy.io import fits

from photonpipe.lightcurves.curve import LightCurve
from photonpipe.lightcurves.dataset import Dataset, read_datasets
from photonpipe.lightcurves.extract import ExtractionParameters, extract
from photonpipe.lightcurves.formats import EXTRACTION_COLUMNS, read_events
from photonpipe.lightcurves.products import write_product
from photonpipe.lightcurves.simulate import Exposure, flux_for_events, simulate_exposure
from photonpipe.platform.ledger import file_checksum

MODE = "G130M"
EXPTIME = 1200.0  # [s]
SEED = 1
STEP = 1.0  # bin width [s]


# --- data -------------------------------------------------------------------------------------


@dataclass
class Data:
    """The simulated exposure's files."""

    corrtags: list[Path]
    x1d: Path
    n_events: int

    @property
    def inputs(self) -> list[Path]:
        return [*self.corrtags, self.x1d]


def _rootname(events: int) -> str:
    return f"lcbench{events}"


def _count_events(corrtags: list[Path]) -> int:
    total = 0
    for path in corrtags:
        with fits.open(path) as hdul:
            total += int(hdul["EVENTS"].header["NAXIS2"])
    return total


def _simulate(rootname: str, source_events: int, directory: Path) -> int:
    flux = flux_for_events(MODE, source_events, EXPTIME)
    exposure = Exposure(rootname, mode=MODE, exptime=EXPTIME, flux=flux)
    return simulate_exposure(exposure, directory, seed=SEED).n_events


def source_events_for(total: int, scratch: Path) -> int:
    """Source events to ask the simulator for so that the dataset has about ``total`` events.

    The simulator adds background and airglow events and loses some source events (flat field,
    detector edges), so the total is affine in the source events asked for; two small pilot
    simulations give the line.
    """
    small = max(total // 100, 10_000)
    large = max(total // 10, 100_000)
    got_small = _simulate("pilotsmall", small, scratch)
    got_large = _simulate("pilotlarge", large, scratch)
    slope = (got_large - got_small) / (large - small)
    offset = got_small - slope * small
    return max(1, round((total - offset) / slope))


def prepare_data(events: int, keep: Path | None) -> tuple[Data, tempfile.TemporaryDirectory[str]]:
    """Simulate the exposure (or reuse it from ``keep``); return its files and the scratch dir."""
    scratch = tempfile.TemporaryDirectory(prefix="pp_bench_lc_")
    directory = keep if keep is not None else Path(scratch.name) / "data"
    rootname = _rootname(events)
    corrtags = [directory / f"{rootname}_corrtag_{s}.fits" for s in ("a", "b")]
    x1d = directory / f"{rootname}_x1d.fits"
    if all(p.is_file() for p in [*corrtags, x1d]):
        print(f"reusing {rootname} in {directory}", file=sys.stderr, flush=True)
    else:
        start = time.perf_counter()
        source = source_events_for(events, Path(scratch.name) / "pilot")
        print(
            f"simulating {rootname} ({source} source events asked for) into {directory} ...",
            file=sys.stderr,
            flush=True,
        )
        _simulate(rootname, source, directory)
        print(f"  done in {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    return Data(corrtags, x1d, _count_events(corrtags)), scratch


# --- page cache -------------------------------------------------------------------------------


def can_evict() -> bool:
    return hasattr(os, "posix_fadvise") and hasattr(os, "POSIX_FADV_DONTNEED")


def evict(paths: list[Path]) -> None:
    """Drop these files' pages from the OS page cache (Linux; other files are left alone)."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


# --- what is timed ----------------------------------------------------------------------------


def read_columns_astropy(corrtags: list[Path]) -> int:
    """Baseline: the extraction's columns, memory-mapped by astropy, copied to native order."""
    n = 0
    for path in corrtags:
        with fits.open(path, memmap=True) as hdul:
            data = hdul["EVENTS"].data
            for name in EXTRACTION_COLUMNS:
                column = np.asarray(data.field(name))
                native = column.astype(column.dtype.newbyteorder("="), copy=True)
            n += len(native)
    return n


def read_columns_numpy(corrtags: list[Path]) -> int:
    """The same columns from a plain numpy.memmap of the EVENTS table bytes."""
    n = 0
    for path in corrtags:
        with fits.open(path, memmap=False, lazy_load_hdus=False) as hdul:
            index = hdul.index_of("EVENTS")
            offset = int(hdul.fileinfo(index)["datLoc"])
            hdu = hdul[index]
            dtype = hdu.columns.dtype
            rows = int(hdu.header["NAXIS2"])
        table = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=(rows,))
        for name in EXTRACTION_COLUMNS:
            column = table[name]
            native = column.astype(column.dtype.newbyteorder("="), copy=True)
        n += len(native)
        del table
    return n


def read_with_read_events(corrtags: list[Path]) -> int:
    return sum(read_events(path).n_events for path in corrtags)


def read_dataset(data: Data) -> Dataset:
    (dataset,) = read_datasets(data.inputs)
    return dataset


def extract_curve(dataset: Dataset) -> LightCurve:
    return extract(dataset, ExtractionParameters(step=STEP))


def checksums(paths: list[Path]) -> None:
    for path in paths:
        file_checksum(path)


def end_to_end(data: Data) -> LightCurve:
    return extract_curve(read_dataset(data))


def end_to_end_write(data: Data, product: Path) -> None:
    write_product(end_to_end(data), product, data.inputs, plot=False)


# --- measurements -----------------------------------------------------------------------------


@dataclass
class Measurement:
    """Times of one thing measured, one per repetition [s]."""

    name: str
    times: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.times)


class Results:
    """Measurements in the order they were first added."""

    def __init__(self) -> None:
        self.rows: dict[str, Measurement] = {}

    def add(self, name: str, seconds: float) -> None:
        self.rows.setdefault(name, Measurement(name)).times.append(seconds)

    def median(self, name: str) -> float:
        return self.rows[name].median


def timed(function: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[float, Any]:
    """Run ``function`` once after a garbage collection; return (seconds, result)."""
    gc.collect()
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - start, result


BASELINE = "baseline: 6 columns, astropy memmap + byteswap"
NUMPY_READ = "6 columns, numpy.memmap + byteswap"
READ_EVENTS = "read_events (both corrtags)"
READ_DATASETS = "read_datasets (corrtags + x1d)"
EXTRACT = "extract alone (after reading)"
WRITE = "write_product alone"
SHA256 = "  of which SHA-256 of the 3 inputs"
END_TO_END = "read_datasets + extract"
END_TO_END_WRITE = "read_datasets + extract + write_product"
COLD_BASELINE = "cold: baseline"
COLD_END_TO_END = "cold: read_datasets + extract"


def _check_curve(curve: LightCurve, reference: LightCurve | None) -> None:
    if len(curve) == 0 or not np.all(np.isfinite(np.asarray(curve["NET"]))):
        raise RuntimeError("extract gave an empty light curve or non-finite NET")
    if reference is not None and not np.array_equal(
        np.asarray(curve["COUNTS"]), np.asarray(reference["COUNTS"])
    ):
        raise RuntimeError("extract gave different light curves on the same data")


def run_benchmark(args: argparse.Namespace, data: Data, out: Path) -> Results:
    results = Results()
    n = data.n_events
    cold = not args.no_cold and can_evict()
    for path in data.inputs:  # warm the page cache before the first measurement
        file_checksum(path)
    reference: LightCurve | None = None
    for repeat in range(args.repeat):
        print(f"repetition {repeat + 1} of {args.repeat} ...", file=sys.stderr, flush=True)
        seconds, got = timed(read_columns_astropy, data.corrtags)
        results.add(BASELINE, seconds)
        if got != n:
            raise RuntimeError(f"baseline read {got} events, expected {n}")
        seconds, got = timed(read_columns_numpy, data.corrtags)
        results.add(NUMPY_READ, seconds)
        if got != n:
            raise RuntimeError(f"numpy read {got} events, expected {n}")
        seconds, got = timed(read_with_read_events, data.corrtags)
        results.add(READ_EVENTS, seconds)
        if got != n:
            raise RuntimeError(f"read_events read {got} events, expected {n}")
        seconds, dataset = timed(read_dataset, data)
        results.add(READ_DATASETS, seconds)
        seconds, curve = timed(extract_curve, dataset)
        results.add(EXTRACT, seconds)
        _check_curve(curve, reference)
        reference = curve
        del dataset
        product = out / f"product-{repeat}_curve.fits"
        seconds, _ = timed(write_product, curve, product, data.inputs, plot=False)
        results.add(WRITE, seconds)
        seconds, _ = timed(checksums, data.inputs)
        results.add(SHA256, seconds)

        seconds, curve = timed(end_to_end, data)
        results.add(END_TO_END, seconds)
        _check_curve(curve, reference)
        seconds, _ = timed(end_to_end_write, data, out / f"e2e-{repeat}_curve.fits")
        results.add(END_TO_END_WRITE, seconds)
        if cold:
            evict(data.inputs)
            seconds, _ = timed(read_columns_astropy, data.corrtags)
            results.add(COLD_BASELINE, seconds)
            evict(data.inputs)
            seconds, curve = timed(end_to_end, data)
            results.add(COLD_END_TO_END, seconds)
            _check_curve(curve, reference)
    return results


# --- profile ----------------------------------------------------------------------------------


def profile_extract(dataset: Dataset, repeat: int) -> None:
    """Print a cProfile of ``extract`` and the time spent on each line of ``extract``."""
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(repeat):
        extract_curve(dataset)
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(12)
    print()
    print(f"cProfile of extract ({repeat} calls), functions by own time:")
    print("\n".join(line for line in text.getvalue().splitlines() if line.strip()))

    # Time between successive line events of each traced frame: the time of each line,
    # including the numpy calls and functions it makes (so a line calling a traced function
    # also counts that function's lines).
    extract_module = sys.modules[extract.__module__]
    codes = {
        f.__code__
        for f in (
            extract,
            extract_module._accumulate_events,
            extract_module._accumulate_region,
        )
    }
    per_line: Counter[tuple[str, int]] = Counter()

    def tracer(frame: FrameType, _event: str, _arg: Any) -> Any:
        if frame.f_code not in codes:
            return None
        state: dict[str, Any] = {"line": None, "t": 0.0}
        name = frame.f_code.co_name

        def local(frame: FrameType, event: str, _arg: Any) -> Any:
            now = time.perf_counter()
            if state["line"] is not None:
                per_line[(name, state["line"])] += now - state["t"]
            state["line"] = frame.f_lineno if event == "line" else None
            state["t"] = time.perf_counter()
            return local

        return local

    sys.settrace(tracer)
    start = time.perf_counter()
    try:
        for _ in range(repeat):
            extract_curve(dataset)
    finally:
        sys.settrace(None)
    total = (time.perf_counter() - start) / repeat
    source = extract.__code__.co_filename
    print()
    print(
        f"lines of extract and the functions it calls, by time (mean of {repeat} calls, "
        f"{total:.3f} s per call traced; a calling line includes its callee's lines):"
    )
    for (name, line), seconds in per_line.most_common(20):
        text_line = linecache.getline(source, line).strip()[:64]
        print(
            f"  {seconds / repeat:7.3f} s {100 * seconds / repeat / total:5.1f} %  "
            f"{name}:{line:<4d} {text_line}"
        )


# --- report -----------------------------------------------------------------------------------


def print_report(results: Results, data: Data) -> None:
    n = data.n_events
    rows = results.rows
    base = results.median(BASELINE)
    print()
    print(f"{'name':<44} {'median s':>9} {'min s':>7} {'events/s':>10} {'x baseline':>10}")
    print("-" * 84)
    for row in rows.values():
        seconds = row.median
        baseline = results.median(COLD_BASELINE) if row.name.startswith("cold") else base
        ratio = "" if row.name in (BASELINE, COLD_BASELINE) else f"{seconds / baseline:.2f}x"
        rate = f"{n / seconds:.3g}"
        fastest = min(row.times)
        print(f"{row.name:<44} {seconds:>9.3f} {fastest:>7.3f} {rate:>10} {ratio:>10}")
    print()
    end_to_end = rows[END_TO_END].median
    print("the issue's figures (targets quoted for reference, not checked):")
    print(
        f"  extract alone: {n / rows[EXTRACT].median:.3g} events/s after reading "
        "(target >= 1e7 events/s)"
    )
    print(
        f"  read_datasets + extract = {end_to_end / base:.2f}x the baseline read, warm cache "
        "(target <= 3x)"
    )
    if COLD_END_TO_END in rows:
        cold = rows[COLD_END_TO_END].median / results.median(COLD_BASELINE)
        print(f"  read_datasets + extract = {cold:.2f}x the baseline read, cold cache")
    print()
    print("notes:")
    print("  * events/s is N / median time for every row (N = all events of both corrtags);")
    print("    'x baseline' is t / t_baseline with medians, for 'cold:' rows t / t_cold_baseline;")
    print("    'min s' is the fastest repetition (least disturbed by other processes)")
    print("  * warm page cache except the 'cold:' rows, for which the input files were evicted")
    print("    with posix_fadvise(DONTNEED) first (the VM host may still cache them)")
    print("  * extract alone works on a dataset already read; read_datasets also reads the x1d,")
    print("    the GTIs and headers, and checks that TIME never decreases")
    print("  * write_product: variability statistics, FITS product with checksums, SHA-256 of")
    print("    the inputs (the row below it), no quicklook PNG")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--events", type=int, default=10_000_000, help="events in the dataset (default 10⁷)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="repetitions R (default 3)")
    parser.add_argument(
        "--keep",
        type=Path,
        metavar="DIR",
        help="simulate into DIR and keep the files; reuse them if they are there already",
    )
    parser.add_argument("--no-cold", action="store_true", help="skip the cold-cache rows")
    parser.add_argument(
        "--profile", action="store_true", help="also profile extract (cProfile and per line)"
    )
    args = parser.parse_args(argv)
    for name in ("events", "repeat"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    data, scratch = prepare_data(args.events, args.keep)
    with scratch:
        sizes = sum(p.stat().st_size for p in data.inputs) / 1e6
        print(
            f"bench_lightcurves: simulated COS {MODE} exposure, {EXPTIME:.0f} s, "
            f"N={data.n_events} events in 2 corrtags ({sizes:.0f} MB with the x1d), "
            f"bins of {STEP:g} s, R={args.repeat} repetitions, medians; "
            f"Python {platform.python_version()}, numpy {np.__version__}, {os.cpu_count()} CPUs"
        )
        if not args.no_cold and not can_evict():
            print("(no posix_fadvise on this system: cold-cache rows skipped)")
        out = Path(scratch.name) / "products"
        out.mkdir()
        results = run_benchmark(args, data, out)
        print_report(results, data)
        if args.profile:
            profile_extract(read_dataset(data), args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
