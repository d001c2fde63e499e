"""What the light-curve archive holds, for browsing: targets, datasets, composites, bad data.

The archive pages (``photonpipe serve`` and ``photonpipe lightcurve site``) are built from
:func:`archive_catalog`, which reads the ``metadata``, ``outputs``, ``composite``, ``stats`` and
``bad_data`` tables and the ledger's light-curve work units. Paths are the ones the tables
hold (directories relative to the archive root), so the pages follow whatever directory name
the ingest gave a target.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa
from astropy.io import fits

from photonpipe.lightcurves.ingest import KIND_COMPOSITE, KIND_INGEST
from photonpipe.lightcurves.models import BadData, Composite, Metadata, Output, Stats
from photonpipe.platform.archive import Archive
from photonpipe.platform.db import Database
from photonpipe.platform.ledger import WorkUnitRecord

_UNSAFE_KEY = re.compile(r"[^A-Za-z0-9.+-]+")


@dataclass
class ProductEntry:
    """A light-curve product (individual curve or composite) and its statistics.

    Attributes
    ----------
    filename : str
        Product file name.
    path : str
        Archive-relative path of the FITS file.
    quicklook : str or None
        Archive-relative path of its quicklook PNG, when it exists.
    stats : dict
        Its ``stats`` row (empty when there is none).
    members : list of str
        Datasets it was made from.
    """

    filename: str
    path: str
    quicklook: str | None
    stats: dict[str, Any] = field(default_factory=dict)
    members: list[str] = field(default_factory=list)


@dataclass
class DatasetEntry:
    """One archived dataset: its configuration, files and individual light curve.

    Attributes
    ----------
    dataset : str
        HST rootname.
    target : str
        Canonical target name, as the ``metadata`` table holds it.
    targname : str
        TARGNAME of the header.
    instrume, detector, opt_elem, aperture : str
        Configuration.
    cenwave : int or None
        Central wavelength [Å].
    expstart : float or None
        Exposure start [MJD].
    exposure : float or None
        Good exposure time of the light curve [s] (sum of BIN_EXPTIME), None without one.
    ingest_date : str
        When it was ingested (ISO 8601, UTC).
    files : list of str
        Archived input files.
    individual : ProductEntry or None
        Its light curve.
    composite : str or None
        File name of the composite it belongs to.
    """

    dataset: str
    target: str
    targname: str
    instrume: str
    detector: str
    opt_elem: str
    aperture: str
    cenwave: int | None
    expstart: float | None
    exposure: float | None
    ingest_date: str
    files: list[str]
    individual: ProductEntry | None
    composite: str | None


@dataclass
class TargetEntry:
    """A target: its datasets and composites.

    Attributes
    ----------
    name : str
        Canonical target name.
    key : str
        Page name of the target: its output directory as the tables hold it (unique).
    datasets : list of DatasetEntry
        In exposure order.
    composites : list of ProductEntry
        Its composites.
    """

    name: str
    key: str
    datasets: list[DatasetEntry] = field(default_factory=list)
    composites: list[ProductEntry] = field(default_factory=list)


@dataclass
class Catalog:
    """Everything :func:`archive_catalog` found.

    Attributes
    ----------
    targets : list of TargetEntry
        By name.
    bad_data : list of dict
        ``bad_data`` rows (filename, dataset, reason, detail, ingest_date).
    ingest_status : list of dict
        Light-curve work units of the ledger (kind, key, dataset, status, tries, error,
        finished).
    """

    targets: list[TargetEntry]
    bad_data: list[dict[str, Any]]
    ingest_status: list[dict[str, Any]]

    @property
    def datasets(self) -> list[DatasetEntry]:
        """Every dataset, target by target."""
        return [d for t in self.targets for d in t.datasets]

    def target(self, key: str) -> TargetEntry | None:
        """Return the target whose page name is ``key`` (None if there is none)."""
        return next((t for t in self.targets if t.key == key), None)


def _iso(value: Any) -> str:
    return value.isoformat(timespec="seconds") if hasattr(value, "isoformat") else ""


def _row(row: Any) -> dict[str, Any]:
    out = {}
    for column in type(row).__table__.columns:
        value = getattr(row, column.key)
        out[column.key] = _iso(value) if hasattr(value, "isoformat") else value
    return out


@lru_cache(maxsize=4096)
def _exposure(path: str, mtime_ns: int) -> float | None:
    del mtime_ns  # part of the cache key: a rewritten product is read again
    try:
        with fits.open(path, memmap=False) as hdul:
            return float(np.sum(hdul["LIGHTCURVE"].data["BIN_EXPTIME"]))
    except (OSError, KeyError, ValueError):
        return None


def product_exposure(path: Path) -> float | None:
    """Good exposure time of a light-curve product [s] (cached while the file is unchanged)."""
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        return None
    return _exposure(str(path), mtime)


def _key(name: str, directory: str | None, taken: set[str]) -> str:
    base = Path(directory).name if directory else _UNSAFE_KEY.sub("_", name).strip("_")
    key = base or "target"
    if key in taken or key.startswith("."):
        key = f"{key.lstrip('.')}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
    taken.add(key)
    return key


def archive_catalog(database: Database, archive: Archive) -> Catalog:
    """Read what the light-curve archive holds.

    Parameters
    ----------
    database : Database
        Database with the light-curve tables.
    archive : Archive
        The archive root the table paths are relative to.

    Returns
    -------
    Catalog
    """
    with database.session() as session:
        rows = session.execute(
            sa.select(Metadata, Output)
            .outerjoin(Output, Output.metadata_id == Metadata.id)
            .order_by(Metadata.target, Metadata.expstart, Metadata.dataset, Metadata.filename)
        ).all()
        stats = {s.filename: _row(s) for s in session.scalars(sa.select(Stats))}
        composites = session.scalars(sa.select(Composite).order_by(Composite.filename)).all()
        composite_rows = [_row(c) for c in composites]
        bad = [
            _row(b)
            for b in session.scalars(sa.select(BadData).order_by(BadData.dataset, BadData.filename))
        ]
        table: sa.Table = WorkUnitRecord.__table__  # type: ignore[assignment]
        units = session.execute(
            sa.select(table)
            .where(table.c.kind.in_((KIND_INGEST, KIND_COMPOSITE)))
            .order_by(table.c.kind, table.c.key)
        ).all()

    def product(directory: str | None, filename: str | None) -> ProductEntry | None:
        if not directory or not filename:
            return None
        path = f"{directory}/{filename}"
        png = path.removesuffix(".fits") + ".png"
        quicklook = png if archive.contains(png) and archive.root.joinpath(png).is_file() else None
        return ProductEntry(filename, path, quicklook, stats.get(filename, {}))

    by_target: dict[str, TargetEntry] = {}
    taken: set[str] = set()
    datasets: dict[tuple[str, str], DatasetEntry] = {}
    for meta, output in rows:
        target = by_target.get(meta.target)
        if target is None:
            directory = output.individual_path if output is not None else None
            target = by_target[meta.target] = TargetEntry(
                meta.target, _key(meta.target, directory, taken)
            )
        entry = datasets.get((meta.target, meta.dataset))
        if entry is None:
            entry = datasets[(meta.target, meta.dataset)] = DatasetEntry(
                dataset=meta.dataset,
                target=meta.target,
                targname=meta.targname or "",
                instrume=meta.instrume or "",
                detector=meta.detector or "",
                opt_elem=meta.opt_elem or "",
                aperture=meta.aperture or "",
                cenwave=meta.cenwave,
                expstart=meta.expstart,
                exposure=None,
                ingest_date=_iso(meta.ingest_date),
                files=[],
                individual=None,
                composite=None,
            )
            target.datasets.append(entry)
        entry.files.append(meta.filename)
        if output is not None:
            if entry.individual is None:
                entry.individual = product(output.individual_path, output.individual_filename)
                if entry.individual is not None:
                    entry.individual.members = [meta.dataset]
            entry.composite = entry.composite or output.composite_filename
    for entry in datasets.values():
        if entry.individual is not None:
            entry.exposure = product_exposure(archive.root / entry.individual.path)
    for row in composite_rows:
        target = by_target.get(row["target"])
        made = product(row["path"], row["filename"])
        if target is None or made is None:
            continue
        made.members = [m for m in str(row["members"]).split(",") if m]
        target.composites.append(made)
    status = []
    for unit in units:
        dataset = unit.key.split(":", 1)[0] if unit.kind == KIND_INGEST else ""
        status.append(
            {
                "kind": unit.kind,
                "key": unit.key,
                "dataset": dataset,
                "status": unit.status,
                "tries": unit.tries,
                "error": unit.error or "",
                "finished": _iso(unit.finished),
            }
        )
    targets = sorted(by_target.values(), key=lambda t: t.name)
    return Catalog(targets, bad, status)
