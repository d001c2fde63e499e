"""Speed of the light-curve archive pages (``photonpipe serve``, ``lightcurve site``).

A simulated delivery (COS G130M datasets of one target, 10 s bins) is ingested; then, for the
target's page, the baseline is what the page's science costs anyway — reading every product
and computing its statistics and periodograms — against rendering the page cold (plots made)
and warm (plots cached), the archive index, and writing the whole static site.

    python benchmarks/bench_web.py [--datasets 8] [--repeat 3]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from _common import median_time
from photonpipe.lightcurves.catalog import archive_catalog
from photonpipe.lightcurves.curve import LightCurve
from photonpipe.lightcurves.extract import ExtractionParameters
from photonpipe.lightcurves.ingest import ArchiveLayout, ingest
from photonpipe.lightcurves.simulate import Variability
from photonpipe.lightcurves.simulate_archive import deliver
from photonpipe.lightcurves.stats import variability_statistics
from photonpipe.platform.archive import Archive
from photonpipe.platform.config import load_settings
from photonpipe.platform.db import Database
from photonpipe.web import site


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--datasets", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-web-"))
    try:
        root = work / "archive"
        archive = Archive(root)
        archive.create()
        database = Database(f"sqlite:///{root / 'photonpipe.db'}")
        layout = ArchiveLayout(archive)
        plan = [
            (f"lbw{i:02d}abq", "G130M", "BENCH-STAR", 58000.1 + 0.07 * i, None)
            for i in range(args.datasets)
        ]
        deliver(
            layout.inbox, work / "truth", plan, seed=2, exptime=1500.0, events=20000,
            variability=Variability("sinusoid", 0.2, 300.0),
        )  # fmt: skip
        settings = load_settings(env={}, overrides={"executor.start_method": "fork"})
        report = ingest(
            layout, database, ExtractionParameters(step=10.0), settings=settings, progress=False
        )
        assert report.ok, report.summary()
        catalog = archive_catalog(database, archive)
        target = catalog.targets[0]
        paths = [root / c.path for c in target.composites] + [
            root / d.individual.path for d in target.datasets if d.individual is not None
        ]
        bins = sum(len(LightCurve.read(p)) for p in paths)

        def science() -> None:
            for path in paths:
                variability_statistics(LightCurve.read(path))

        def cold() -> None:
            # the plot cache is what the server keeps between requests
            site._cached_plot.cache_clear()
            site.target_page_html(catalog, archive, target, live=True)

        baseline = median_time(science, args.repeat)
        timings = {
            "target page, cold (plots made)": median_time(cold, args.repeat),
            "target page, warm (plots cached)": median_time(
                lambda: site.target_page_html(catalog, archive, target, live=True), args.repeat
            ),
            "archive index (catalog + page)": median_time(
                lambda: site.archive_index_page(
                    archive_catalog(database, archive), archive, live=True
                ),
                args.repeat,
            ),
            "static site (whole, plots made)": median_time(
                lambda: (
                    site._cached_plot.cache_clear(),
                    site.write_site(work / "site", database, archive),
                ),
                args.repeat,
            ),
        }
        print(
            f"{len(paths)} products of one target ({args.datasets} datasets + composite), "
            f"{bins} bins in all"
        )
        print(f"baseline: read every product + statistics/periodograms: {baseline:.3f} s")
        for name, seconds in timings.items():
            print(f"{name:34s} {seconds:7.3f} s   {seconds / baseline:5.2f}x baseline")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
