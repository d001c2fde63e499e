"""The light-curve part of ``photonpipe demo``.

Simulated COS and STIS exposures of two targets, individual light curves, composites, quicklooks.
"""

from __future__ import annotations

from astropy.table import Table

from photonpipe.demo import DemoSection
from photonpipe.lightcurves.dataset import Dataset, assemble_dataset
from photonpipe.lightcurves.extract import ExtractionParameters
from photonpipe.lightcurves.products import make_composite, make_individual
from photonpipe.lightcurves.simulate import Exposure, Variability, simulate_exposure
from photonpipe.platform.archive import Archive
from photonpipe.platform.config import Settings
from photonpipe.platform.db import Database

#: (rootname, mode, target, EXPSTART [MJD], variability)
DEMO_EXPOSURES = (
    ("lsdm01abq", "G130M", "SIM-FLARE-STAR", 58100.10, Variability("flare", 1.5, peak=650.0)),
    ("lsdm02abq", "G130M", "SIM-FLARE-STAR", 58100.17, Variability("constant")),
    ("osdm01abq", "G140L", "SIM-ECLIPSER", 58101.20, Variability("eclipse", start=300.0)),
    ("osdm02abq", "G140L", "SIM-ECLIPSER", 58101.27, Variability("sinusoid", 0.2, 240.0)),
)


def step(archive: Archive, database: Database, settings: Settings, seed: int) -> DemoSection:
    """Simulate four exposures of two targets, write their light curves and composites."""
    raw = archive.makedirs("lightcurves", "raw")
    out_dir = archive.makedirs("lightcurves", "products")
    parameters = ExtractionParameters(step=10.0)
    section = DemoSection("Light curves (HST COS and STIS TIME-TAG)")
    by_target: dict[str, list[Dataset]] = {}
    for rootname, mode, target, expstart, variability in DEMO_EXPOSURES:
        simulated = simulate_exposure(
            Exposure(rootname, mode=mode, target=target, expstart=expstart,
                     variability=variability, flat_file=mode == "G140L"),
            raw,
            seed=seed,
        )  # fmt: skip
        flats = [p for p in simulated.files if p.name.endswith("_lfl.fits")]
        files = [p for p in simulated.files if p not in flats]
        dataset = assemble_dataset(files, flat=flats[0] if flats else None)
        product = make_individual(dataset, out_dir, parameters)
        truth = Table.read(simulated.truth)
        by_target.setdefault(target, []).append(dataset)
        section.links.append((f"{rootname} light curve ({target})", archive.relative(product.path)))
        if product.quicklook is not None:
            section.images.append(archive.relative(product.quicklook))
        t = product.curve["BIN_EXPTIME"].value
        mean_flux = float((product.curve["FLUX"].value * t).sum() / t.sum())
        good = truth["good"]
        truth_flux = truth.meta["band_flux"] * float(truth["modulation"][good].mean())
        statistics = product.statistics
        period = statistics.best_period if statistics.significant_period else None
        section.table.append(
            (
                f"{rootname} {mode} {variability.kind}",
                (
                    f"{len(product.curve)} bins; mean flux {mean_flux:.4g} erg/s/cm² "
                    f"(truth {truth_flux:.4g}); significant period: "
                    + (f"{period:.0f} s" if period else "none")
                ),
            )
        )
    for target, datasets in by_target.items():
        composite = make_composite(datasets, out_dir, parameters)
        section.links.append((f"composite {target}", archive.relative(composite.path)))
        if composite.quicklook is not None:
            section.images.append(archive.relative(composite.quicklook))
    section.summary = (
        "Four simulated TIME-TAG exposures (COS FUV G130M with segments A and B; STIS FUV-MAMA "
        "G140L tag files converted to corrtag with their x1d and flat) of two targets with an "
        "injected flare, eclipse and sinusoid, extracted in 10 s bins outside the geocoronal "
        "windows and flux-calibrated with each dataset's x1d; composites per target and "
        "configuration. The table compares the mean flux with the simulator's truth."
    )
    return section
