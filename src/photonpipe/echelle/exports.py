"""NRES registries and results as nres-pipe's csv files: targets.csv, zeros.csv, rv.csv."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

from photonpipe.echelle.rv import list_velocities
from photonpipe.echelle.targets import MISSING, TARGET_COLUMNS, list_targets
from photonpipe.echelle.templates import list_zeros
from photonpipe.platform.archive import atomic_output
from photonpipe.platform.db import Database

log = logging.getLogger("photonpipe.echelle.rv")  # one logger for the RV modules

ZERO_COLUMNS = (
    "Filename",
    "Navg",
    "Site",
    "Camera",
    "Jdate",
    "Target",
    "Teff",
    "Logg",
    "B-V",
    "J-K",
    "Flags",
)


RV_COLUMNS = (
    "Targname",
    "BJD",
    "Site",
    "Instrument",
    "Exptime",
    "Orgname",
    "Specfile",
    "RVkm/s",
    "RVerrkm/s",
    "Baryshift",
    "Template",
    "SNR",
    "Nblocks",
    "Reason",
)


def _csv_number(value: float | None, digits: int) -> str:
    return f"{MISSING:.1f}" if value is None else f"{value:.{digits}f}"


def export_targets(database: Database, path: str | Path) -> int:
    """Write the registry as targets.csv (atomically); return the number of targets."""
    records = list_targets(database)
    digits = {"ra": 5, "dec": 5, "pmra": 2, "pmdec": 2, "parallax": 2, "rv": 3, "teff": 0}
    with atomic_output(path) as temp, temp.open("w", newline="") as handle:
        writer = csv.writer(handle, quoting=csv.QUOTE_MINIMAL)
        writer.writerow(TARGET_COLUMNS)
        for record in records:
            row: list[str] = []
            for attribute in TARGET_COLUMNS.values():
                value = getattr(record, attribute)
                if attribute == "name":
                    row.append(value)
                elif attribute == "zero":
                    row.append(value or "NULL")
                else:
                    row.append(_csv_number(value, digits.get(attribute, 3)))
            writer.writerow(row)
    return len(records)


def export_zeros(database: Database, path: str | Path) -> int:
    """Write the zeros registry as zeros.csv (nres-pipe's columns) atomically."""
    records = list_zeros(database)
    with atomic_output(path) as temp, temp.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(ZERO_COLUMNS)
        for r in records:
            writer.writerow(
                [
                    r.path,
                    r.navg,
                    r.site,
                    r.camera,
                    f"{r.jdate:.9f}",
                    r.target,
                    _csv_number(r.teff, 2),
                    _csv_number(r.logg, 5),
                    _csv_number(r.b_v, 6),
                    _csv_number(r.j_k, 6),
                    r.flags,
                ]
            )
    return len(records)


def export_velocities(database: Database, path: str | Path) -> int:
    """Write the RV table as rv.csv atomically; unusable RVs have empty values and a Reason."""
    records = list_velocities(database)

    def number(value: float | None, fmt: str) -> str:
        return "" if value is None else format(value, fmt)

    with atomic_output(path) as temp, temp.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(RV_COLUMNS)
        for r in records:
            writer.writerow(
                [
                    r.target,
                    number(r.bjd, ".8f"),
                    r.site,
                    r.instrument,
                    f"{r.exptime:.3f}",
                    r.rawfile,
                    Path(r.spectrum).name,
                    number(r.rv, ".6f"),
                    number(r.rv_error, ".6f"),
                    number(r.barycorr, ".6f"),
                    Path(r.template).name if r.template else "",
                    number(r.snr, ".1f"),
                    r.n_blocks,
                    r.reason or "",
                ]
            )
    return len(records)
