"""The NRES targets registry (table ``echelle_target``) and proper motion.

nres-pipe's targets.csv (Name, RA(deg), Dec(deg), magnitudes, PMRA/PMDE [mas/yr], Plax [mas],
RV [km/s], Teff, Logg, ZERO; −99.9 = missing, NULL in the database). A frame's target is found
by name (the science part of OBJECTS) or by position: every star moved by its proper motion from
J2000.0 to the frame's epoch, the nearest within :data:`MATCH_RADIUS_ARCSEC`.
"""

from __future__ import annotations

import csv
import logging
import math
import warnings
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from astropy.coordinates import angular_separation
from astropy.time import Time
from astropy.utils.exceptions import AstropyWarning
from sqlalchemy import select

from photonpipe.echelle.models import TargetRecord
from photonpipe.errors import InputFileError
from photonpipe.platform.archive import Archive
from photonpipe.platform.db import Database, upsert

log = logging.getLogger("photonpipe.echelle.rv")  # one logger for the RV modules

MISSING = -99.9
#: Largest distance [arcsec] between a frame's pointing and a registry star for a match.
MATCH_RADIUS_ARCSEC = 30.0


#: targets.csv column → database attribute.
TARGET_COLUMNS = {
    "Name": "name",
    "RA(deg)": "ra",
    "Dec(deg)": "dec",
    "Vmag": "vmag",
    "Bmag": "bmag",
    "gmag": "gmag",
    "rmag": "rmag",
    "imag": "imag",
    "Jmag": "jmag",
    "Kmag": "kmag",
    "PMRA": "pmra",
    "PMDE": "pmdec",
    "Plax": "parallax",
    "RV": "rv",
    "Teff": "teff",
    "Logg": "logg",
    "ZERO": "zero",
}


def parse_coordinate(value: str | float, axis: str) -> float:
    """Return RA or Dec [deg] from degrees or sexagesimal text, as headers and catalogues give it.

    Parameters
    ----------
    value : str or float
        A number is degrees (``311.23879``, ``-5.0445``). Text with ``:``, spaces or unit
        letters is sexagesimal: RA in hours (``20:44:57.31``, ``20 44 57.31``,
        ``20h44m57.31s``), Dec in degrees (``-05:02:40.2``, ``-5d02m40.2s``); an explicit
        ``d``/``°`` or ``h`` overrides that.
    axis : {"ra", "dec"}
        Which coordinate.

    Returns
    -------
    float
        RA in [0, 360) or Dec in [−90, 90] [deg].

    Raises
    ------
    ValueError
        Not a number or a sexagesimal angle, or out of range (the message says which).
    """
    from astropy import units
    from astropy.coordinates import Angle

    if axis not in ("ra", "dec"):
        raise ValueError(f"axis must be 'ra' or 'dec', not {axis!r}")
    text = str(value).strip()
    try:
        degrees = float(text)
    except ValueError:
        unit = units.hourangle if axis == "ra" else units.deg
        try:
            with warnings.catch_warnings():
                # astropy only warns about 24 h or 60 min and then wraps: refuse those too
                warnings.simplefilter("error", AstropyWarning)
                degrees = float(Angle(text, unit=unit).deg)
        except (ValueError, TypeError, units.UnitsError, AstropyWarning):
            form = "hh:mm:ss.s" if axis == "ra" else "±dd:mm:ss.s"
            raise ValueError(
                f"{text!r} is not a number of degrees or a sexagesimal angle ({form})"
            ) from None
    if not math.isfinite(degrees):
        raise ValueError(f"{text!r} is not a finite angle")
    if axis == "ra":
        if not 0.0 <= degrees <= 360.0:
            raise ValueError(f"RA {text!r} is outside 0–360° (0–24 h)")
        return degrees % 360.0
    if not -90.0 <= degrees <= 90.0:
        raise ValueError(f"Dec {text!r} is outside −90…+90°")
    return degrees


def normalise_name(name: str) -> str:
    """Target name for matching: upper case without spaces, underscores or hyphens."""
    return "".join(c for c in name.upper() if c not in " _-")


# --------------------------------------------------------------------------- targets


def _is_missing(text: str) -> bool:
    try:
        return abs(float(text) - MISSING) < 1e-6
    except ValueError:
        return False


def read_targets_csv(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a targets.csv file as database rows (−99.9 and ``NULL`` → None).

    RA and Dec may be degrees (the format's columns ``RA(deg)``, ``Dec(deg)``) or sexagesimal
    (RA hours ``20:44:57.31``, Dec ``-05:02:40.2``; see :func:`parse_coordinate`).

    Raises
    ------
    InputFileError
        Missing columns, or a row with an unreadable number, name or position.
    """
    rows = []
    try:
        with Path(path).open(newline="") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in TARGET_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise InputFileError(path, f"missing columns {', '.join(missing)}")
            for line, row in enumerate(reader, start=2):
                out: dict[str, Any] = {}
                for column, attribute in TARGET_COLUMNS.items():
                    text = (row[column] or "").strip()
                    if attribute in ("name", "zero"):
                        out[attribute] = None if text.upper() in ("", "NULL") else text
                        continue
                    if attribute in ("ra", "dec") and text and not _is_missing(text):
                        # degrees (the format's) or sexagesimal, as headers write them
                        try:
                            out[attribute] = parse_coordinate(text, attribute)
                        except ValueError as exc:
                            raise InputFileError(path, f"line {line}: {column} {exc}") from None
                        continue
                    try:
                        value = float(text)
                    except ValueError:
                        raise InputFileError(
                            path, f"line {line}: {column} {text!r} is not a number"
                        ) from None
                    # exactly −99.9 is "missing" (proper motions can be below it)
                    out[attribute] = None if abs(value - MISSING) < 1e-6 else value
                if not out["name"] or out["ra"] is None or out["dec"] is None:
                    raise InputFileError(path, f"line {line}: a target needs Name, RA and Dec")
                rows.append(out)
    except OSError as exc:
        raise InputFileError(path, f"unreadable ({exc.strerror or exc})") from None
    return rows


def add_targets(database: Database, rows: Sequence[dict[str, Any]]) -> int:
    """Insert or update targets (keyed by name); return how many rows were written."""
    if not rows:
        return 0
    # a name listed twice (targets.csv has a few) keeps its last row, as sequential adds would
    by_name = {
        row["name"]: {attribute: row.get(attribute) for attribute in TARGET_COLUMNS.values()}
        for row in rows
    }
    full = list(by_name.values())
    with database.session() as session:
        upsert(session, TargetRecord, full, key=("name",))
    return len(full)


def import_targets(database: Database, path: str | Path) -> int:
    """Load a targets.csv file into the registry; return the number of targets."""
    return add_targets(database, read_targets_csv(path))


def list_targets(database: Database) -> list[TargetRecord]:
    """All registry targets, by name."""
    with database.session() as session:
        records = list(session.scalars(select(TargetRecord).order_by(TargetRecord.name)))
        session.expunge_all()
    return records


def propagate(record: TargetRecord, when: datetime) -> tuple[float, float]:
    """Position [deg] of a registry star (J2000.0) moved by its proper motion to ``when``.

    Linear in time, as nres-pipe moves its targets; kept rather than
    ``SkyCoord.apply_space_motion``, which moves the stars rigorously: over the 248 stars of
    the packaged targets.csv the two differ by up to 65 mas (μ Cas, 3.8″/yr, in 2040), far
    inside the 30″ match radius but more than the 1 mas that would keep the numbers the same.
    """
    years = float(Time(when).jyear) - 2000.0
    dec = record.dec + (record.pmdec or 0.0) * years / 3.6e6
    cos_dec = max(math.cos(math.radians(dec)), 1e-9)
    ra = record.ra + (record.pmra or 0.0) * years / 3.6e6 / cos_dec
    return ra % 360.0, dec


def _separation_arcsec(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    """Great-circle distance [arcsec] (astropy's Vincenty formula, on plain radians)."""
    radians = np.radians([ra1, dec1, ra2, dec2])
    return float(np.degrees(angular_separation(*radians))) * 3600.0


def find_target(
    database: Database,
    name: str | None = None,
    position: tuple[float, float] | None = None,
    when: datetime | None = None,
    radius_arcsec: float = MATCH_RADIUS_ARCSEC,
) -> TargetRecord | None:
    """Return a registry target by name, else by position (with proper motion to ``when``).

    Parameters
    ----------
    name : str, optional
        Matched ignoring case, spaces, underscores and hyphens.
    position : (float, float), optional
        RA, Dec [deg] of the pointing at ``when``.
    when : datetime, optional
        Epoch of ``position`` (UTC); default J2000.0 (no proper motion).
    radius_arcsec : float
        Largest accepted separation [arcsec].
    """
    records = list_targets(database)
    if name:
        wanted = normalise_name(name)
        for record in records:
            if normalise_name(record.name) == wanted:
                return record
    if position is None:
        return None
    epoch = when or datetime(2000, 1, 1, 12, tzinfo=UTC)
    best, best_distance = None, radius_arcsec
    for record in records:
        ra, dec = propagate(record, epoch)
        distance = _separation_arcsec(position[0], position[1], ra, dec)
        if distance <= best_distance:
            best, best_distance = record, distance
    return best


def register_site_targets(
    archive: Archive, database: Database, site: str, instrument_name: str
) -> list[str]:
    """Add the stars of the instrument's ``reduced/csv/targets.csv`` missing from the registry.

    nres-pipe keeps its targets registry in that file (the simulator writes the stars it
    observes there). Stars the registry knows already (by name, ignoring case, spaces, ``_``
    and ``-``) are left as they are, so ``targets add`` and ``targets import`` keep priority.

    Returns
    -------
    list of str
        Names added (none when the file does not exist).
    """
    path = archive.path(site, instrument_name, "reduced", "csv", "targets.csv")
    if not path.is_file():
        return []
    known = {normalise_name(t.name) for t in list_targets(database)}
    new = [row for row in read_targets_csv(path) if normalise_name(row["name"]) not in known]
    add_targets(database, new)
    if new:
        log.info("targets from %s: %s", path, ", ".join(row["name"] for row in new))
    return [row["name"] for row in new]
