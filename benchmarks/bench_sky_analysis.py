"""Sky analysis: airglow/continuum fit per camera, line strengths per second, catalogue of 10⁵ rows.

Simulates one full-size BOSS plate (500 fibres per spectrograph, 50 sky fibres per camera,
1 exposure), converts its sky fibres to flux, then measures (medians of ``--repeat`` runs):

* baseline: reading one camera's spFrame (``read_spframe``);
* line strengths and continuum points of every sky spectrum of a camera (spectra per second,
  and ratio to the baseline);
* the mean spectrum of a camera (resampling + combination);
* the airglow/continuum separation of one mean spectrum, per camera (target ≤ 1 s);
* ``photonpipe sky catalog --full`` over ``--rows`` metadata rows (default 10⁵: the plate's
  rows replicated under new plate numbers into a scratch dataset), against the time to read
  that metadata.

Run as ``python benchmarks/bench_sky_analysis.py [--rows N] [--repeat R]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import median_time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import pyarrow as pa
    import pyarrow.parquet as pq

    from photonpipe.platform.archive import Archive
    from photonpipe.sky.catalog import build_catalog
    from photonpipe.sky.flux import DEFAULT_WAVE_RANGES_NM, calibrate_sky_fibres
    from photonpipe.sky.formats import read_spcframe_mask_loglam, read_spfluxcalib, read_spframe
    from photonpipe.sky.lines import measure_line_strengths, read_features
    from photonpipe.sky.mean import mean_sky_spectrum, separate_airglow
    from photonpipe.sky.pipeline import BuildOptions, build_plate
    from photonpipe.sky.pixmask import DEFAULT_REJECT_FLAGS
    from photonpipe.sky.reference import boss_plates
    from photonpipe.sky.storage import read_metadata

    work = Path(tempfile.mkdtemp(prefix="bench-sky-analysis-"))
    plate = next(p for p in boss_plates() if (p.plate, p.mjd) == (6627, 56369))
    from photonpipe.sky.simulate import simulate_plate

    start = time.perf_counter()
    simulated = simulate_plate(Archive(work / "in"), plate, 1, exposures=1)
    print(
        f"simulated plate {plate.plate} (500 fibres per spectrograph) in "
        f"{time.perf_counter() - start:.1f} s"
    )
    features = read_features()
    rows = []
    for camera in ("b1", "r1"):
        path = next(simulated.directory.glob(f"spFrame-{camera}-*.fits"))
        read_time = median_time(lambda path=path: read_spframe(path), args.repeat)
        frame = read_spframe(path)
        _, calib = read_spfluxcalib(path.with_name(path.name.replace("spFrame", "spFluxcalib")))
        cframe = read_spcframe_mask_loglam(path.with_name(path.name.replace("spFrame", "spCFrame")))
        window = DEFAULT_WAVE_RANGES_NM[camera[0]]
        sp = calibrate_sky_fibres(frame, calib, cframe, wave_range_nm=window)
        nsky = len(sp.fiberid)
        t_lines = median_time(
            lambda sp=sp, camera=camera: measure_line_strengths(
                sp.wavelength_nm, sp.flux, sp.ivar, sp.dispersion, camera[0], features
            ),
            args.repeat,
        )

        def mean(sp=sp, camera=camera, window=window, exposure=frame.exposure):  # type: ignore[no-untyped-def]
            return mean_sky_spectrum(
                camera,
                exposure,
                sp.fiberid,
                sp.wavelength_nm,
                sp.flux,
                sp.ivar,
                sp.dispersion,
                window,
            )

        t_mean = median_time(mean, args.repeat)
        m = mean()
        t_sep = median_time(lambda m=m: separate_airglow(m), args.repeat)
        nlines = len(separate_airglow(m)[1])
        rows += [
            (f"{camera}: read spFrame (baseline)", read_time, "", ""),
            (
                f"{camera}: line strengths, {nsky} spectra",
                t_lines,
                f"{nsky / t_lines:.0f} spectra/s",
                f"{t_lines / read_time:.1f}×",
            ),
            (f"{camera}: mean spectrum of {nsky} fibres", t_mean, "", f"{t_mean / read_time:.1f}×"),
            (
                f"{camera}: airglow/continuum fit, {nlines} lines",
                t_sep,
                f"{nlines / t_sep:.0f} lines/s",
                f"{t_sep / read_time:.1f}×",
            ),
        ]

    # Catalogue of --rows rows: the plate's analysed metadata replicated under new plate numbers.
    dataset = work / "dataset"
    options = BuildOptions(dict(DEFAULT_WAVE_RANGES_NM), tuple(DEFAULT_REJECT_FLAGS))
    build_plate(
        {"plate_dir": str(simulated.directory), "output_dir": str(dataset), "options": options}
    )
    table = pq.read_table(dataset / "metadata" / f"{plate.plate:04d}.parquet")
    copies = max(1, args.rows // table.num_rows)
    plate_index = table.schema.get_field_index("PLATE")
    good = [p for p in boss_plates() if p.quality == "good"][:copies]
    for k, other in enumerate(good[1:], start=1):
        relabelled = table.set_column(
            plate_index, "PLATE", pa.array([other.plate] * table.num_rows, type=pa.int64())
        )
        pq.write_table(relabelled, dataset / "metadata" / f"{other.plate:04d}.parquet")
        if k + 1 >= copies:
            break
    total = len(read_metadata(dataset))
    t_read = median_time(lambda: read_metadata(dataset).to_pandas(), args.repeat)
    t_cat = median_time(lambda: build_catalog(dataset, work / "catalog", "full"), args.repeat)
    rows += [
        (f"read metadata, {total} rows (baseline)", t_read, "", ""),
        (
            f"sky catalog --full, {total} rows (Parquet + FITS × 4)",
            t_cat,
            f"{total / t_cat:.0f} rows/s",
            f"{t_cat / t_read:.1f}×",
        ),
    ]
    print(f"\n{'measurement':<58} {'median':>9} {'rate':>16} {'ratio':>7}")
    for name, seconds, rate, ratio in rows:
        print(f"{name:<58} {seconds:>8.3f}s {rate:>16} {ratio:>7}")


if __name__ == "__main__":
    main()
