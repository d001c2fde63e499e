"""The light-curve part of ``photonpipe demo``.

Simulated COS and STIS exposures of two targets, individual light curves, composites, quicklooks;
then the archive pipeline: a delivery of COS and STIS datasets of several targets (one under an
alias, some bad) ingested into the database and the filesystem by target.
"""

from __future__ import annotations

from collections import Counter

from astropy.table import Table

from photonpipe.errors import PhotonpipeError
from photonpipe.lightcurves.dataset import Dataset, assemble_dataset
from photonpipe.lightcurves.extract import ExtractionParameters
from photonpipe.lightcurves.ingest import ArchiveLayout, ingest
from photonpipe.lightcurves.models import BadData, Composite, Metadata
from photonpipe.lightcurves.products import make_composite, make_individual
from photonpipe.lightcurves.queries import add_alias
from photonpipe.lightcurves.simulate import Exposure, Variability, simulate_exposure
from photonpipe.lightcurves.simulate_archive import deliver
from photonpipe.platform.archive import Archive
from photonpipe.platform.config import Settings
from photonpipe.platform.db import Database
from photonpipe.platform.demo import DemoSection, register_demo_step

#: (rootname, mode, target, EXPSTART [MJD], variability)
DEMO_EXPOSURES = (
    ("lsdm01abq", "G130M", "SIM-FLARE-STAR", 58100.10, Variability("flare", 1.5, peak=650.0)),
    ("lsdm02abq", "G130M", "SIM-FLARE-STAR", 58100.17, Variability("constant")),
    ("osdm01abq", "G140L", "SIM-ECLIPSER", 58101.20, Variability("eclipse", start=300.0)),
    ("osdm02abq", "G140L", "SIM-ECLIPSER", 58101.27, Variability("sinusoid", 0.2, 240.0)),
)

#: The archive delivery: (rootname, mode, TARGNAME, EXPSTART [MJD], bad-data reason or None),
#: and the injected light curve of each group of datasets.
ARCHIVE_DELIVERY = (
    (
        Variability("flare", 1.5, peak=300.0),
        (
            ("lsar01abq", "G130M", "SIM-FLARE-STAR", 58200.10, None),
            ("lsar02abq", "G130M", "SIM-FLARE-STAR", 58200.17, None),
            ("lsar03abq", "G130M", "SIM-FLARE-STAR", 58200.24, "Bad EXPFLAG"),
        ),
    ),
    (
        Variability("sinusoid", 0.3, 120.0),
        (
            ("osar01abq", "G140L", "SIM-PULSATOR", 58201.10, None),
            ("osar02abq", "G140L", "SIM PULSATOR", 58201.17, None),  # alias spelling
            ("osar03abq", "E140M", "SIM-PULSATOR", 58201.24, None),
            ("osar04abq", "G140L", "SIM-PULSATOR", 58201.31, "Non-linear time"),
        ),
    ),
    (
        Variability("constant"),
        (
            ("lsar11abq", "G185M", "SIM-NUV-STAR", 58202.10, None),
            ("lsar12abq", "G185M", "SIM-NUV-STAR", 58202.17, "Unreadable file"),
            ("lsar13abq", "G185M", "SIM-NUV-STAR", 58202.24, "Short exposure"),
        ),
    ),
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
        truth_period = f", truth {variability.period:g} s" if variability.kind == "sinusoid" else ""
        section.table.append(
            (
                f"{rootname} {mode} {variability.kind}",
                (
                    f"{len(product.curve)} bins; mean flux {mean_flux:.4g} erg/s/cm² "
                    f"(truth {truth_flux:.4g}); {product.statistics.period_verdict}"
                    f"{truth_period}; times also as BJD_TDB "
                    f"({product.curve.header.get('BJDORIG')} position)"
                ),
            )
        )
    for target, datasets in by_target.items():
        composite = make_composite(datasets, out_dir, parameters)
        section.table.append((f"composite {target}", composite.statistics.period_verdict))
        section.links.append((f"composite {target}", archive.relative(composite.path)))
        if composite.quicklook is not None:
            section.images.append(archive.relative(composite.quicklook))
    _archive_part(archive, database, settings, seed, section)
    section.summary = (
        "Four simulated TIME-TAG exposures (COS FUV G130M with segments A and B; STIS FUV-MAMA "
        "G140L tag files converted to corrtag with their x1d and flat) of two targets with an "
        "injected flare, eclipse and sinusoid, extracted in 10 s bins outside the geocoronal "
        "windows and flux-calibrated with each dataset's x1d; composites per target and "
        "configuration. The table compares the mean flux with the simulator's truth. "
        "Then the archive pipeline: a delivery of COS and STIS datasets of three targets (one "
        "dataset under an alias spelling, four bad datasets) ingested into the database and "
        "lightcurves/filesystem/TARGET, with individual light curves and composites in "
        "lightcurves/outputs/TARGET and rejected files in lightcurves/bad_data."
    )
    return section


def _archive_part(
    archive: Archive, database: Database, settings: Settings, seed: int, section: DemoSection
) -> None:
    """Ingest a simulated delivery and add its products and bad-data summary to the section."""
    import sqlalchemy as sa

    layout = ArchiveLayout(archive)
    truth_dir = archive.makedirs("lightcurves", "delivery-truth")
    for variability, plan in ARCHIVE_DELIVERY:
        deliver(
            layout.inbox, truth_dir, plan, seed=seed, exptime=600.0, events=8000,
            variability=variability,
        )  # fmt: skip
    add_alias(database, "SIM PULSATOR", "SIM-PULSATOR")
    report = ingest(layout, database, ExtractionParameters(step=10.0), settings=settings)
    with database.session() as session:
        composites = session.scalars(sa.select(Composite).order_by(Composite.filename)).all()
        rows = session.execute(
            sa.select(Metadata.dataset, Metadata.target)
            .where(Metadata.kind != "x1d")
            .distinct()
            .order_by(Metadata.target, Metadata.dataset)
        ).all()
        bad = session.scalars(sa.select(BadData).order_by(BadData.filename)).all()
        session.expunge_all()
    section.table.append(("archive ingest", report.summary().splitlines()[0]))
    for dataset, target in rows:
        path = f"{layout.outputs(target)}/{dataset}_curve.fits"
        section.links.append((f"archive: {dataset} light curve ({target})", path))
    for composite in composites:
        path = f"{composite.path}/{composite.filename}"
        label = f"archive composite {composite.target}: {composite.members}"
        section.links.append((label, path))
        section.images.append(path.removesuffix(".fits") + ".png")
    by_dataset: dict[str, list[BadData]] = {}
    for row in bad:
        by_dataset.setdefault(row.dataset, []).append(row)
    counts = Counter(rows[0].reason for rows in by_dataset.values())
    section.table.append(
        (
            "bad data (lightcurves/bad_data)",
            ", ".join(f"{reason}: {n}" for reason, n in sorted(counts.items()))
            + f" ({len(bad)} files)",
        )
    )
    for dataset, files in sorted(by_dataset.items()):
        names = ", ".join(f.filename for f in files)
        section.table.append((f"bad data: {dataset}", f"{files[0].detail or ''} [{names}]"))
    if not report.ok:
        failures = "; ".join(f"{k}: {v}" for k, v in report.failed.items())
        raise PhotonpipeError(f"archive ingest failed: {failures}")


register_demo_step("light curves", step, order=1)
