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


def _rootname(events: int, background: float) -> str:
    return f"lcbench{events}" if not background else f"lcbkg{round(100 * background)}x{events}"


def dark_rate_for(events: int, background: float) -> float | None:
    """Dark rate [counts s⁻¹ pixel⁻¹] that makes ``background`` of ``events`` uniform dark counts.

    None (the mode's own small rate) when ``background`` is 0.
    """
    if not background:
        return None
    return background * events / (2 * FUV_AREA * ON_TIME * FLAT_SURVIVAL)


def _count_events(corrtags: list[Path]) -> int:
    total = 0
    for path in corrtags:
        with fits.open(path) as hdul:
            total += int(hdul["EVENTS"].header["NAXIS2"])
    return total


#: Active detector area of one COS FUV segment in the simulator [pixel] and its good-time
#: length with the default gaps [s]: what turns a wanted number of dark events into a rate.
FUV_AREA = 14000.0 * 450.0
ON_TIME = EXPTIME - 50.0
#: Fraction of a uniform dark event's chance to survive the simulated flat-field thinning.
FLAT_SURVIVAL = 0.93


def _simulate(rootname: str, source_events: int, directory: Path, dark_rate: float | None) -> int:
    flux = flux_for_events(MODE, source_events, EXPTIME)
    exposure = Exposure(rootname, mode=MODE, exptime=EXPTIME, flux=flux, dark_rate=dark_rate)
    return simulate_exposure(exposure, directory, seed=SEED).n_events


def source_events_for(total: int, scratch: Path) -> int:
    """Source events to ask the simulator for so that the dataset has about ``total`` events.

    The simulator adds background and airglow events and loses some source events (flat field,
    detector edges), so the total is affine in the source events asked for; two small pilot
    simulations give the line.
    """
    small = max(total // 100, 10_000)
    large = max(total // 10, 100_000)
    got_small = _simulate("pilotsmall", small, scratch, None)
    got_large = _simulate("pilotlarge", large, scratch, None)
    slope = (got_large - got_small) / (large - small)
    offset = got_small - slope * small
    return max(1, round((total - offset) / slope))


def prepare_data(
    events: int, keep: Path | None, background: float = 0.0
) -> tuple[Data, tempfile.TemporaryDirectory[str]]:
    """Simulate the exposure (or reuse it from ``keep``); return its files and the scratch dir.

    ``background`` is the fraction of the events that are uniform detector dark counts (0: the
    simulator's own, about 1 %).
    """
    scratch = tempfile.TemporaryDirectory(prefix="pp_bench_lc_")
    directory = keep if keep is not None else Path(scratch.name) / "data"
    rootname = _rootname(events, background)
    corrtags = [directory / f"{rootname}_corrtag_{s}.fits" for s in ("a", "b")]
    x1d = directory / f"{rootname}_x1d.fits"
    if all(p.is_file() for p in [*corrtags, x1d]):
        print(f"reusing {rootname} in {directory}", file=sys.stderr, flush=True)
    else:
        start = time.perf_counter()
        source = source_events_for(round(events * (1.0 - background)), Path(scratch.name) / "pilot")
        print(
            f"simulating {rootname} ({source} source events asked for) into {directory} ...",
            file=sys.stderr,
            flush=True,
        )
        _simulate(rootname, source, directory, dark_rate_for(events, background))
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


def end_to_end_stream(data: Data) -> LightCurve:
    """read_datasets(stream=True) + extract: the events are read chunk by chunk by extract."""
    (dataset,) = read_datasets(data.inputs, stream=True)
    return extract_curve(dataset)


def anchor_available() -> bool:
    """Whether STScI's ``lightcurve`` package (the anchor, 0.6.2) can be imported."""
    try:
        import lightcurve  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        return False
    return True


def anchor_version() -> str:
    from importlib.metadata import version

    return version("lightcurve")


def anchor_extract(data: Data) -> int:
    """STScI ``lightcurve``: ``lightcurve.io.read(corrtag_a, step)`` (it finds segment b itself).

    Its output (its prints and warnings that no FLUXTAB/TDSTAB reference file is there, so it
    uses unity flux calibration) is discarded; returns its number of bins.
    """
    import contextlib
    import warnings

    import lightcurve

    with (
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(io.StringIO()),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")
        table = lightcurve.io.read(str(data.corrtags[0]), step=STEP)
    return len(table)


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
END_TO_END_STREAM = "read_datasets(stream) + extract"
ANCHOR = "anchor: STScI lightcurve.io.read"
COLD_BASELINE = "cold: baseline"
COLD_END_TO_END = "cold: read_datasets(stream) + extract"


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
        seconds, curve = timed(end_to_end_stream, data)
        results.add(END_TO_END_STREAM, seconds)
        _check_curve(curve, reference)
        if args.anchor:
            seconds, _ = timed(anchor_extract, data)
            results.add(ANCHOR, seconds)
        seconds, _ = timed(end_to_end_write, data, out / f"e2e-{repeat}_curve.fits")
        results.add(END_TO_END_WRITE, seconds)
        if cold:
            evict(data.inputs)
            seconds, _ = timed(read_columns_astropy, data.corrtags)
            results.add(COLD_BASELINE, seconds)
            evict(data.inputs)
            seconds, curve = timed(end_to_end_stream, data)
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
    streamed = rows[END_TO_END_STREAM].median
    print("the issue's figures (targets quoted for reference, not checked):")
    print(
        f"  extract alone: {n / rows[EXTRACT].median:.3g} events/s after reading "
        "(target >= 1e7 events/s)"
    )
    print(
        f"  read_datasets(stream) + extract = {streamed / base:.2f}x the baseline read, warm "
        f"cache (target <= 2x); in memory: {rows[END_TO_END].median / base:.2f}x"
    )
    if ANCHOR in rows:
        print(
            f"  STScI lightcurve {anchor_version()} / photonpipe (read_datasets(stream) + extract) "
            f"= {rows[ANCHOR].median / streamed:.2f}x (target >= 3x)"
        )
    else:
        print("  anchor skipped: STScI lightcurve is not installed (pip install lightcurve==0.6.2)")
    if COLD_END_TO_END in rows:
        cold = rows[COLD_END_TO_END].median / results.median(COLD_BASELINE)
        print(f"  read_datasets(stream) + extract = {cold:.2f}x the baseline read, cold cache")
    print()
    print("notes:")
    print("  * events/s is N / median time for every row (N = all events of both corrtags);")
    print("    'x baseline' is t / t_baseline with medians, for 'cold:' rows t / t_cold_baseline;")
    print("    'min s' is the fastest repetition (least disturbed by other processes)")
    print("  * warm page cache except the 'cold:' rows, for which the input files were evicted")
    print("    with posix_fadvise(DONTNEED) first (the VM host may still cache them)")
    print("  * extract alone works on a dataset already read; read_datasets also reads the x1d,")
    print("    the GTIs and headers, and checks that TIME never decreases; with stream=True the")
    print("    events stay in the files and extract reads them chunk by chunk (TIME checked there)")
    print("  * write_product: variability statistics, FITS product with checksums, SHA-256 of")
    print("    the inputs (the row below it), no quicklook PNG")
    print("  * the anchor (STScI lightcurve) finds no FLUXTAB/TDSTAB here and uses unity flux")
    print("    calibration: it does less than photonpipe, which calibrates with the x1d")


# --- cost against the number of events ----------------------------------------------------------


def tile_corrtag(source: Path, target: Path, copies: int, period: float) -> None:
    """Write ``source``'s events ``copies`` times, each shifted by ``period`` s more in TIME.

    A long exposure made of copies of a simulated one, written row block by row block so that
    even 10⁸ events need little memory: headers from astropy, the EVENTS rows copied as bytes
    with TIME rewritten, and the GTIs shifted alike. EXPTIME becomes ``copies`` times longer.
    """
    from photonpipe.lightcurves.formats import read_events

    events = read_events(source, stream=True)
    stream = events.stream
    assert stream is not None
    with fits.open(source) as hdul:
        primary_bytes = hdul[0].header.tostring(sep="", endcard=True, padding=True).encode()
        header = hdul["EVENTS"].header.copy()
        gti = hdul["GTI"].copy()
    for key in ("CHECKSUM", "DATASUM"):
        header.remove(key, ignore_missing=True)
    header["NAXIS2"] = stream.n_rows * copies
    header["EXPTIME"] = float(header["EXPTIME"]) * copies
    if "EXPEND" in header:
        header["EXPEND"] = float(header["EXPSTART"]) + copies * period / 86400.0
    starts = np.concatenate([np.asarray(gti.data["START"]) + k * period for k in range(copies)])
    stops = np.concatenate([np.asarray(gti.data["STOP"]) + k * period for k in range(copies)])
    new_gti = fits.BinTableHDU.from_columns(
        [fits.Column("START", "D", "s", array=starts), fits.Column("STOP", "D", "s", array=stops)],
        header=gti.header,
    )
    buffer = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), new_gti]).writeto(buffer)
    gti_bytes = buffer.getvalue()[2880:]  # after the empty primary HDU's one header block
    row = stream.row_dtype
    with target.open("wb") as out:
        out.write(primary_bytes)
        out.write(header.tostring(sep="", endcard=True, padding=True).encode())
        written = 0
        for k in range(copies):
            with source.open("rb") as handle:
                handle.seek(stream.offset)
                left = stream.n_rows
                while left:
                    rows = min(left, 1 << 20)
                    block = np.frombuffer(handle.read(rows * row.itemsize), dtype=row).copy()
                    block["TIME"] = (block["TIME"].astype(np.float64) + k * period).astype(">f4")
                    out.write(block.tobytes())
                    written += block.nbytes
                    left -= rows
        out.write(b"\0" * (-written % 2880))
        out.write(gti_bytes)


def _scaling_child(inputs: list[str], repeat: int) -> tuple[float, float, int]:
    """In a fresh process: median time of read_datasets(stream) + extract, peak RSS [MB], bins."""
    times = []
    bins = 0
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        (dataset,) = read_datasets([Path(p) for p in inputs], stream=True)
        bins = len(extract_curve(dataset))
        times.append(time.perf_counter() - start)
    # the high-water mark of this process's own memory (ru_maxrss would include the parent's,
    # inherited at fork)
    status = Path("/proc/self/status").read_text().splitlines()
    peak = next(float(line.split()[1]) / 1024.0 for line in status if line.startswith("VmHWM"))
    return statistics.median(times), peak, bins


def run_scaling(args: argparse.Namespace, keep: Path | None) -> None:
    """Time per event and peak memory of read_datasets(stream) + extract from 10⁵ to 10⁸ events.

    10⁵ … 10⁷ are simulations; larger sizes are the 10⁷ one tiled in time (``tile_corrtag``).
    Each size is measured in a new process, whose peak resident memory is reported.
    """
    import multiprocessing

    sizes = [int(n) for n in args.scaling.split(",")]
    largest_simulated = max(n for n in sizes if n <= 10_000_000)
    context = multiprocessing.get_context("spawn")
    print()
    print("cost against the number of events: read_datasets(stream) + extract, warm cache")
    print(f"{'events':>12} {'median s':>9} {'ns/event':>9} {'peak RSS MB':>12}  how made")
    scratches = []
    for n in sizes:
        if n <= 10_000_000:
            data, scratch = prepare_data(n, keep)
            how = "simulated"
        else:
            base, scratch = prepare_data(largest_simulated, keep)
            copies = round(n / base.n_events)
            directory = (keep or Path(scratch.name)) / f"tiled{copies}x{largest_simulated}"
            directory.mkdir(parents=True, exist_ok=True)
            root = f"lctile{copies}x{largest_simulated}"
            corrtags = [directory / f"{root}_corrtag_{s}.fits" for s in ("a", "b")]
            x1d = directory / f"{root}_x1d.fits"
            if not all(p.is_file() for p in [*corrtags, x1d]):
                print(f"tiling {copies} copies of {base.n_events} events ...", file=sys.stderr)
                for source, target in zip(base.corrtags, corrtags, strict=True):
                    tile_corrtag(source, target, copies, EXPTIME)
                x1d.write_bytes(base.x1d.read_bytes())
            data = Data(corrtags, x1d, _count_events(corrtags))
            how = f"{copies} copies of the {largest_simulated:.0e} simulation in time"
        scratches.append(scratch)
        for path in data.inputs:
            file_checksum(path)  # into the page cache
        with context.Pool(1) as pool:
            seconds, peak, _bins = pool.apply(
                _scaling_child, ([str(p) for p in data.inputs], args.repeat)
            )
        print(
            f"{data.n_events:>12} {seconds:>9.3f} {1e9 * seconds / data.n_events:>9.1f} "
            f"{peak:>12.0f}  {how}",
            flush=True,
        )
    for scratch in scratches:
        scratch.cleanup()


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
    parser.add_argument(
        "--background",
        type=float,
        default=0.4,
        metavar="F",
        help="second case: fraction F of the events uniform detector background, as in a real "
        "COS holdout (default 0.4; 0 skips the case)",
    )
    parser.add_argument("--no-cold", action="store_true", help="skip the cold-cache rows")
    parser.add_argument(
        "--no-anchor", dest="anchor", action="store_false", help="skip STScI lightcurve"
    )
    parser.add_argument(
        "--scaling",
        metavar="N,N,...",
        default="",
        help="also time read + extract at these event counts, each in a fresh process with its "
        "peak memory (e.g. 100000,1000000,10000000,100000000; above 10⁷ the 10⁷ simulation is "
        "tiled in time)",
    )
    parser.add_argument(
        "--only-scaling", action="store_true", help="run only the --scaling measurement"
    )
    parser.add_argument(
        "--profile", action="store_true", help="also profile extract (cProfile and per line)"
    )
    args = parser.parse_args(argv)
    for name in ("events", "repeat"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if not 0 <= args.background < 1:
        parser.error("--background must be in [0, 1)")
    if args.anchor and not anchor_available():
        print("STScI lightcurve not installed: anchor rows skipped", flush=True)
        args.anchor = False
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    print(f"load average at the start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    cases = [] if args.only_scaling else [0.0] + ([args.background] if args.background else [])
    for background in cases:
        data, scratch = prepare_data(args.events, args.keep, background)
        with scratch:
            sizes = sum(p.stat().st_size for p in data.inputs) / 1e6
            what = (
                "the project's simulation"
                if not background
                else f"background-heavy: about {100 * background:.0f} % of the events dark counts"
            )
            print()
            print(
                f"bench_lightcurves, {what}: COS {MODE} exposure, {EXPTIME:.0f} s, "
                f"N={data.n_events} events in 2 corrtags ({sizes:.0f} MB with the x1d), "
                f"bins of {STEP:g} s, R={args.repeat} repetitions, medians; "
                f"Python {platform.python_version()}, numpy {np.__version__}, "
                f"{os.cpu_count()} CPUs"
            )
            if not args.no_cold and not can_evict():
                print("(no posix_fadvise on this system: cold-cache rows skipped)")
            out = Path(scratch.name) / "products"
            out.mkdir()
            results = run_benchmark(args, data, out)
            print_report(results, data)
            print(f"load average now: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
            if args.profile:
                profile_extract(read_dataset(data), args.repeat)
    if args.scaling:
        run_scaling(args, args.keep)
        print(f"load average now: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
