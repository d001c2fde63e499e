"""Helpers of the light-curve archive tests: deliveries, fast settings, the consistency check."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from astropy.io import fits

from photonpipe.lightcurves.ingest import ArchiveLayout, target_directory
from photonpipe.lightcurves.models import BadData, Composite, Metadata, Output, Stats
from photonpipe.lightcurves.products import hlsp_filename
from photonpipe.lightcurves.simulate_archive import DeliveredDataset
from photonpipe.lightcurves.targets import target_token
from photonpipe.platform.archive import TEMP_MARK
from photonpipe.platform.config import Settings, load_settings
from photonpipe.platform.db import Database

#: Small delivery: two COS FUV datasets of one target, one STIS G140L of another, one bad.
SMALL_PLAN: tuple[tuple[str, str, str, float, str | None], ...] = (
    ("lfa01abq", "G130M", "STAR-A", 58000.10, None),
    ("lfa02abq", "G130M", "STAR-A", 58000.20, None),
    ("lfb01abq", "G130M", "STAR-A", 58000.30, "Bad EXPFLAG"),
    ("ofc01abq", "G140L", "STAR-C", 58001.10, None),
)


def fast_settings(workers: int = 1) -> Settings:
    """Executor settings for tests: fork start (no re-import in workers), few workers."""
    return load_settings(
        env={},
        overrides={"executor.start_method": "fork", "executor.workers": workers},
    )


def copy_delivery(source: Path, layout: ArchiveLayout) -> None:
    """Copy a simulated ingest directory into a layout's (fresh) ingest directory."""
    inbox = layout.inbox
    inbox.mkdir(parents=True, exist_ok=True)
    for path in source.iterdir():
        shutil.copy2(path, inbox / path.name)


def _header_datasets(path: Path) -> list[str]:
    with fits.open(path) as hdul:
        header = hdul[0].header
        return sorted(str(header[f"DATA{i:04d}"]) for i in range(1, int(header["NDATASET"]) + 1))


def check_consistency(
    layout: ArchiveLayout, database: Database, delivered: Sequence[DeliveredDataset]
) -> dict[str, Any]:
    """Assert the archive is consistent with the delivery and return a summary.

    Every delivered file is in exactly one place (filesystem/TARGET or bad_data, never the
    ingest directory), recorded once (metadata or bad_data), good datasets have their
    individual light curve and outputs rows, composites hold exactly their archived members
    (FITS header and table ``composite``), every product has its stats row, and no temporary
    file is left.
    """
    archive = layout.archive
    area = layout.area
    with database.session() as session:
        metadata = {m.filename: m for m in session.scalars(sa.select(Metadata))}
        outputs = {o.metadata_id: o for o in session.scalars(sa.select(Output))}
        bad = {b.filename: b for b in session.scalars(sa.select(BadData))}
        composites = {c.filename: c for c in session.scalars(sa.select(Composite))}
        stats = {s.filename: s for s in session.scalars(sa.select(Stats))}
        session.expunge_all()
    groups: dict[str, set[str]] = {}
    for dataset in delivered:
        names = [p.name for p in dataset.files]
        for name in names:
            places = [
                p
                for p in (
                    layout.inbox / name,
                    area / "bad_data" / name,
                    *(d / name for d in (area / "filesystem").glob("*")),
                )
                if p.exists()
            ]
            assert len(places) == 1, f"{name} is in {len(places)} places: {places}"
            assert not (name in metadata and name in bad), f"{name} in metadata and bad_data"
        if dataset.bad is not None:
            for name in names:
                assert name in bad, f"{name} of rejected {dataset.rootname} not in bad_data"
                assert bad[name].reason == dataset.bad, (name, bad[name].reason, dataset.bad)
                assert (area / "bad_data" / name).is_file()
            continue
        directory = layout.filesystem(dataset.target)
        individual = None
        for name in names:
            assert name in metadata, f"{name} of {dataset.rootname} not in metadata"
            meta = metadata[name]
            assert meta.path == directory, (name, meta.path)
            assert archive.path(meta.path, name).is_file(), name
            output = outputs[meta.id]
            assert output.individual_filename == f"{dataset.rootname}_curve.fits"
            individual = archive.path(output.individual_path, output.individual_filename)
            group = hlsp_filename(
                (meta.instrume, meta.detector, target_token(meta.target).hlsp, meta.opt_elem,
                 str(meta.cenwave), meta.aperture)
            )  # fmt: skip
            groups.setdefault(group, set()).add(dataset.rootname)
            assert output.composite_filename == group, (name, output.composite_filename)
        assert individual is not None
        assert individual.is_file()
        assert _header_datasets(individual) == [dataset.rootname]
        assert individual.name in stats, f"no stats row for {individual.name}"
    assert set(groups) == set(composites), (sorted(groups), sorted(composites))
    for filename, members in groups.items():
        composite = composites[filename]
        assert composite.members.split(",") == sorted(members), (filename, composite.members)
        path = archive.path(composite.path, filename)
        assert path.is_file(), path
        assert _header_datasets(path) == sorted(members), filename
        assert filename in stats
        assert stats[filename].kind == "composite"
        assert composite.path == f"lightcurves/outputs/{target_directory(composite.target)}"
    delivered_names = {p.name for d in delivered for p in d.files}
    assert set(metadata) | set(bad) == delivered_names
    leftovers = list(area.rglob(f"*{TEMP_MARK}*"))
    assert not leftovers, f"temporary files left: {leftovers}"
    assert not any(layout.inbox.iterdir()), list(layout.inbox.iterdir())
    return {"groups": groups, "metadata": len(metadata), "bad": len(bad)}


def snapshot(layout: ArchiveLayout, database: Database) -> dict[str, Any]:
    """Every file under lightcurves/ (size, mtime) and every light-curve table row."""
    files = {
        str(p.relative_to(layout.area)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in layout.area.rglob("*")
        if p.is_file()
    }
    tables: dict[str, list[tuple[Any, ...]]] = {}
    with database.session() as session:
        for model in (Metadata, Output, BadData, Stats, Composite):
            table = model.__table__
            tables[table.name] = sorted(  # type: ignore[attr-defined]
                tuple(str(v) for v in row) for row in session.execute(sa.select(table)).all()
            )
    return {"files": files, "tables": tables}


def check_no_orphans(layout: ArchiveLayout, database: Database) -> int:
    """Assert every file under lightcurves/outputs/ is a product a database row names, once.

    Individual light curves and composites (with their quicklook PNGs) must be named by an
    ``outputs`` or ``composite`` row; a dataset's light curve must exist in one directory only.
    Returns the number of product files.
    """
    with database.session() as session:
        named = {
            (o.individual_path, o.individual_filename)
            for o in session.scalars(sa.select(Output))
            if o.individual_filename
        }
        named |= {(c.path, c.filename) for c in session.scalars(sa.select(Composite))}
    allowed = set(named) | {(d, str(Path(f).with_suffix(".png"))) for d, f in named}
    outputs = layout.area / "outputs"
    found = [p for p in outputs.rglob("*") if p.is_file()]
    orphans = [
        p
        for p in found
        if (p.parent.relative_to(layout.archive.root).as_posix(), p.name) not in allowed
    ]
    assert not orphans, f"orphan outputs: {orphans}"
    names = [p.name for p in found]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    assert not duplicates, f"outputs in more than one directory: {duplicates}"
    return len(found)
