"""NRES radial velocities: targets registry, ZERO templates, RVs of reduced science frames.

* **Targets** (table ``echelle_target``): nres-pipe's targets.csv (Name, RA(deg), Dec(deg),
  magnitudes, PMRA/PMDE [mas/yr], Plax [mas], RV [km/s], Teff, Logg, ZERO; −99.9 = missing,
  NULL in the database). A frame's target is found by name (the science part of OBJECTS) or by
  position: every star moved by its proper motion from J2000.0 to the frame's epoch, the nearest
  within :data:`MATCH_RADIUS_ARCSEC`.
* **ZERO** (``reduced/zero/``, table ``echelle_zero``): the reduced spectra of a standard star
  shifted to rest, ``λ_rest = λ_obs (1 + z_b) / (1 + z_cat)`` (z_b the barycentric correction at
  the exposure mid-point, z_cat the catalogue RV). Per order, pixels that disagree with the
  other frames by more than 5σ (cosmic rays the extraction could not see: a track along a column
  over most of the fibre's core) are dropped; each frame is interpolated (quintic spline in
  ln λ) onto a ln λ grid oversampled ×2, averaged with inverse-variance weights (IVAR: the
  inverse variance of the template's value), and smoothed with a Gaussian of σ = 0.7 native
  pixel; one template per order. A symmetric kernel does not move lines or blends: for a
  template T and T_s = T * g with g even, Σ (T − T_s(x − s))² is stationary at s = 0. The
  smoothing damps the noise in the template's derivative, which the fine fit of
  :mod:`photonpipe.spectra.rv` uses and which, between a block's few lines, is pure noise
  (measured on simulated full-size frames: RV error RMS 4.6 m/s unsmoothed, 4.0 m/s smoothed).
  Flags as nres-pipe's zeros.csv (four characters, see :func:`fibre_flag`).
* **Template choice**: the target's own good ZERO (same instrument and lit fibres, nearest in
  time), else the good ZERO vetted as a general standard nearest in (Teff, log g).
* **RV** (``reduced/rv/``, table ``echelle_rv``): the blaze-normalised science orders against the
  ZERO's orders with :func:`photonpipe.spectra.rv.measure_velocity` (coarse CCF, 12 blocks per
  order, telluric and edge masks, the ZERO's noise in the weights, uncertainty from the robust
  scatter of the blocks), combined with the barycentric
  correction relativistically (:func:`photonpipe.spectra.rv.barycentric_velocity`); BJD_TDB at
  the mid-point: the flux-weighted mid-time of the science fibre's exposure-meter counts when
  the reduction found a usable record in the raw frame (header ``EMMIDTIM``, see
  :mod:`photonpipe.echelle.expmeter`), else the geometric DATE-OBS + EXPTIME/2 (keyword
  ``MIDTYPE``: ``flux-weighted`` or ``geometric``); with a record, the correction is the
  flux-weighted mean over the exposure to second order (:func:`frame_barycentric`).
"""

from __future__ import annotations

import csv
import functools
import logging
import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import astropy.units as u
import numpy as np
from astropy.io import fits
from astropy.time import Time
from astropy.utils.exceptions import AstropyWarning
from numpy.typing import NDArray
from scipy.ndimage import gaussian_filter1d, median_filter
from sqlalchemy import select

from photonpipe import __version__
from photonpipe.echelle.models import RadialVelocityRecord, TargetRecord, ZeroRecord
from photonpipe.errors import InputFileError, PhotonpipeError
from photonpipe.platform.archive import Archive, atomic_output
from photonpipe.platform.db import Database, upsert
from photonpipe.spectra.barycentric import (
    ObservationMetadataError,
    bjd_tdb,
    observation_from_header,
    velocity_corrections,
)
from photonpipe.spectra.rv import (
    RadialVelocity,
    RadialVelocityError,
    Template,
    barycentric_velocity,
    coarse_velocity,
    measure_velocity,
)
from photonpipe.spectra.spectrum import C_KMS, Spectrum

log = logging.getLogger("photonpipe.echelle.rv")

MISSING = -99.9
#: Largest distance [arcsec] between a frame's pointing and a registry star for a match.
MATCH_RADIUS_ARCSEC = 30.0
#: Fewest orders with fitted blocks for a usable velocity.
MIN_ORDERS = 3
#: Start of the reason of an RV missing only for want of a template.
NO_TEMPLATE = "no ZERO template"
#: Oversampling of the ZERO's ln λ grid relative to the spectra's pixels.
ZERO_OVERSAMPLING = 2
#: Gaussian smoothing σ of the ZERO [native pixels]: the fine fit uses the template's derivative,
#: which in a noisy template is dominated by noise between the (sparse) lines; see the module
#: docstring.
ZERO_SMOOTHING = 0.7
#: Pixels of a ZERO's input frame further than this from the other frames are dropped [σ].
ZERO_CLIP = 5.0
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


def propagate(record: TargetRecord, when: datetime) -> tuple[float, float]:
    """Position [deg] of a registry star (J2000.0) moved by its proper motion to ``when``."""
    years = float(Time(when).jyear) - 2000.0
    dec = record.dec + (record.pmdec or 0.0) * years / 3.6e6
    cos_dec = max(math.cos(math.radians(dec)), 1e-9)
    ra = record.ra + (record.pmra or 0.0) * years / 3.6e6 / cos_dec
    return ra % 360.0, dec


def _separation_arcsec(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    """Great-circle distance [arcsec] (haversine)."""
    p1, p2 = math.radians(dec1), math.radians(dec2)
    dra = math.radians(ra2 - ra1)
    h = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dra / 2) ** 2
    return math.degrees(2 * math.asin(min(1.0, math.sqrt(h)))) * 3600.0


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


# --------------------------------------------------------------------------- spectra and headers


def science_name(objects: str) -> str | None:
    """Return the target name in OBJECTS (the part not none/thar/tung), or None."""
    for part in objects.split("&"):
        if part.strip().lower() not in ("none", "thar", "tung", ""):
            return part.strip()
    return None


def fibre_flag(fibres: str) -> str:
    """Return the lit-fibre character of a ZERO flag (``110`` → 1, ``011`` → 2, ``111`` → 3)."""
    codes = {"110": "1", "011": "2", "111": "3"}
    if fibres not in codes:
        raise ValueError(f"no ZERO flag for lit fibres {fibres!r}")
    return codes[fibres]


@dataclass
class Barycentric:
    """Barycentric correction and time of an exposure's mid-point."""

    correction_kms: float
    bjd_tdb: float
    midpoint: str  # ISO UTC
    midtype: str  # "geometric" or "flux-weighted"


def frame_barycentric(path: str | Path, header: fits.Header) -> Barycentric:
    """Barycentric correction [km/s] and BJD_TDB at the exposure mid-point of a frame.

    Uses RA/DEC (the pointing) and the telescope's LONG1/LAT1/HT1. The mid-point is the
    flux-weighted mid-time ``EMMIDTIM`` (ISO UTC) that the reduction derived from the raw frame's
    exposure-meter record (:mod:`photonpipe.echelle.expmeter`), ``midtype`` "flux-weighted";
    without it, the geometric DATE-OBS + EXPTIME/2, ``midtype`` "geometric". With a flux-weighted
    mid-time t̄ and its flux-weighted rms σ_t (``EMTRMS`` [s]) the correction is the mean of the
    corrections at t̄ − σ_t and t̄ + σ_t: the flux-weighted mean of v_b(t) to second order, which
    is what shifts the spectrum (v_b(t̄) alone misses ½ v_b'' σ_t², up to ≈ 3 cm/s for a 600 s
    exposure); BJD_TDB is that of t̄.

    Raises
    ------
    InputFileError
        A keyword is missing or malformed (named in the message).
    """
    midtime = header.get("EMMIDTIM")
    values = {
        "RA": header.get("RA"),
        "DEC": header.get("DEC"),
        "DATE-OBS": header.get("DATE-OBS") if midtime is None else midtime,
        # the flux-weighted time is already the mid-point: no EXPTIME/2 to add
        "EXPTIME": header.get("EXPTIME") if midtime is None else None,
        "SITELONG": header.get("LONG1"),
        "SITELAT": header.get("LAT1"),
        "SITEALT": header.get("HT1"),
    }
    if values["RA"] in (None, "N/A") or values["DEC"] in (None, "N/A"):
        raise InputFileError(path, "no target coordinates (RA/DEC) for the barycentric correction")
    if midtime is not None and "T" not in str(midtime):
        raise InputFileError(path, f"EMMIDTIM {midtime!r} is not an ISO date-time")
    try:
        spread = float(header.get("EMTRMS", 0.0)) if midtime is not None else 0.0
    except (TypeError, ValueError):
        raise InputFileError(path, f"EMTRMS {header.get('EMTRMS')!r} is not a number") from None
    if not math.isfinite(spread) or spread < 0.0:
        raise InputFileError(path, f"EMTRMS {spread!r} is not a time spread [s]")
    try:
        correction, bjd, isot = _corrections(tuple(values.items()), spread)
    except ObservationMetadataError as exc:
        raise InputFileError(path, f"barycentric correction impossible: {exc}") from None
    midtype = "geometric" if midtime is None else "flux-weighted"
    return Barycentric(correction, bjd, isot, midtype)


@functools.lru_cache(maxsize=256)
def _corrections(items: tuple[tuple[str, Any], ...], spread: float) -> tuple[float, float, str]:
    """Barycentric correction [km/s], BJD_TDB and ISO mid-time of header values (cached).

    A frame's correction is asked for more than once (ZERO stacking, then its RV); the
    ephemeris and Earth-rotation computation is ≈ 0.15 s.
    """
    observation = observation_from_header(dict(items))
    correction, _ = velocity_corrections(observation)
    bjd = bjd_tdb(observation)
    if spread > 0.0:
        # the flux-weighted mean of v_b(t), not v_b at the mean time: averaging v_b at
        # t̄ ± σ_t adds the second-order term ½ v_b'' σ_t² (≈ cm/s for 600 s)
        both = [
            velocity_corrections(replace(observation, time=observation.time + d * u.s))[0]
            for d in (-spread, spread)
        ]
        correction = 0.5 * (both[0] + both[1])
    return correction, bjd, str(observation.time.isot)


def _pointing(header: fits.Header) -> tuple[float, float] | None:
    from astropy.coordinates import SkyCoord

    ra, dec = header.get("RA"), header.get("DEC")
    if ra in (None, "N/A") or dec in (None, "N/A"):
        return None
    try:
        coord = SkyCoord(str(ra), str(dec), unit=("hourangle", "deg"))
    except ValueError:
        return None
    return float(coord.ra.deg), float(coord.dec.deg)


def science_orders(table: fits.FITS_rec, fibre: int) -> dict[int, Spectrum]:
    """Blaze-normalised orders of one fibre from a SPECTRUM table, masked pixels with ivar 0."""
    out = {}
    for row in table[table["FIBRE"] == fibre]:
        sigma = np.asarray(row["NORMUNCERTAINTY"], float)
        good = (np.asarray(row["MASK"]) == 0) & (sigma > 0) & np.isfinite(row["NORMFLUX"])
        ivar = np.where(good, 1.0 / np.where(good, sigma, 1.0) ** 2, 0.0)
        out[int(row["ORDER"])] = Spectrum(
            np.asarray(row["WAVELENGTH"], float), np.asarray(row["NORMFLUX"], float), ivar
        )
    return out


def signal_to_noise(table: fits.FITS_rec, fibre: int) -> float:
    """Median over orders of the 95th percentile of FLUX/UNCERTAINTY (≈ S/N at blaze peak)."""
    values = []
    for row in table[table["FIBRE"] == fibre]:
        good = (np.asarray(row["MASK"]) == 0) & (np.asarray(row["UNCERTAINTY"]) > 0)
        if good.sum() > 10:
            values.append(np.percentile(row["FLUX"][good] / row["UNCERTAINTY"][good], 95))
    return float(np.median(values)) if values else 0.0


# --------------------------------------------------------------------------- ZERO templates


@dataclass
class Zero:
    """A ZERO template: its header and one rest-frame spectrum per order."""

    path: Path
    header: fits.Header
    orders: dict[int, Spectrum]

    @property
    def instrument(self) -> str:
        """Instrument (TELESCOP) the ZERO was made on."""
        return str(self.header.get("TELESCOP", "")).strip()

    @property
    def fibres(self) -> str:
        """Lit fibres of the frames stacked (``110`` or ``011``)."""
        return str(self.header.get("FIBRES", "")).strip()


def read_zero(path: str | Path) -> Zero:
    """Read a ZERO file (table ``ZERO``: ORDER, WAVELENGTH [Å, rest], FLUX, IVAR)."""
    try:
        with fits.open(path) as hdul:
            header = hdul[0].header.copy()
            data = hdul["ZERO"].data
            orders = {
                int(row["ORDER"]): Spectrum(
                    np.array(row["WAVELENGTH"], float),
                    np.array(row["FLUX"], float),
                    np.array(row["IVAR"], float),
                )
                for row in data
            }
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise InputFileError(path, f"not a ZERO template ({exc})") from None
    if header.get("OBSTYPE") != "ZERO":
        raise InputFileError(path, "not a ZERO template (OBSTYPE is not ZERO)")
    return Zero(Path(path), header, orders)


def _reject_outliers(
    spectra: Sequence[Spectrum], loglam: NDArray[np.float64], clip: float
) -> list[Spectrum]:
    """Give ivar 0 to pixels of each frame that stand out from the other frames.

    Every frame is compared with the median of all frames (with two frames, with the other
    one) on a common ln λ grid, each scaled to it by a smooth ratio (continuum and throughput
    differ between exposures); pixels more than ``clip`` σ away, and their neighbours, are
    dropped. These are cosmic rays the extraction missed (a track along a column that covers
    most of the fibre's core) and bad columns: averaged into the template they would be
    features that exist in no star. With two frames only the higher pixel goes (cosmic rays
    only add charge); one frame is returned as it is.
    """
    if len(spectra) < 2:
        return list(spectra)
    values = np.full((len(spectra), loglam.size), np.nan)
    for i, spectrum in enumerate(spectra):
        try:
            value, _, trusted = Template(spectrum)(loglam)
        except RadialVelocityError:
            continue
        values[i] = np.where(trusted, value, np.nan)
    out = []
    for i, spectrum in enumerate(spectra):
        others = np.delete(values, i, axis=0) if len(spectra) == 2 else values
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # columns no frame covers: NaN
            reference = np.nanmedian(others, axis=0)
        own_loglam = np.log(spectrum.wavelength)
        covered = np.isfinite(reference)
        if covered.sum() < 50:
            out.append(spectrum)
            continue
        ref = np.interp(own_loglam, loglam[covered], reference[covered], left=np.nan, right=np.nan)
        good = (spectrum.ivar > 0) & np.isfinite(ref) & (ref > 0)
        if good.sum() < 50:
            out.append(spectrum)
            continue
        ratio = np.where(good, spectrum.flux / np.where(good, ref, 1.0), np.nan)
        # smooth ratio: running median over 101 pixels of the good ones, interpolated
        idx = np.flatnonzero(good)
        smooth = median_filter(ratio[idx], size=min(101, idx.size | 1), mode="nearest")
        scale = np.interp(np.arange(len(spectrum)), idx, smooth)
        sigma = 1.0 / np.sqrt(np.where(good, spectrum.ivar, 1.0))
        if len(spectra) == 2:
            # the two frames' noise: compare with the combined σ, drop only the higher
            other = spectra[1 - i]
            other_ivar = np.interp(own_loglam, np.log(other.wavelength), other.ivar)
            sigma = np.sqrt(
                sigma**2 + np.where(other_ivar > 0, 1.0 / np.maximum(other_ivar, 1e-300), np.inf)
            )
            residual = (spectrum.flux / scale - ref) / (sigma / scale)
            bad = good & (residual > clip)
        else:
            residual = (spectrum.flux / scale - ref) / (sigma / scale)
            bad = good & (np.abs(residual) > clip)
        if not bad.any():
            out.append(spectrum)
            continue
        bad = bad | np.roll(bad, 1) | np.roll(bad, -1)
        out.append(Spectrum(spectrum.wavelength, spectrum.flux, np.where(bad, 0.0, spectrum.ivar)))
    return out


def combine_rest_orders(
    frames: Sequence[dict[int, Spectrum]],
    oversampling: int = ZERO_OVERSAMPLING,
    smoothing: float = ZERO_SMOOTHING,
    clip: float = ZERO_CLIP,
) -> dict[int, Spectrum]:
    """Average rest-frame orders of several frames on an oversampled ln λ grid per order.

    Pixels that disagree with the other frames by more than ``clip`` σ are dropped first
    (:func:`_reject_outliers`). Each frame's order is then interpolated with a quintic spline
    in ln λ (its good pixels only); its inverse variance, interpolated linearly, is the weight,
    and the sum of the weights is the ZERO's IVAR: the inverse variance of the template's value
    at a point (the grid's points are not independent: neighbours share the native pixels'
    noise). The grid spans the part of the order every frame covers. The weighted mean is then
    smoothed with a Gaussian of ``smoothing`` native pixels (σ) to damp the noise in the template's
    derivative.
    """
    out: dict[int, Spectrum] = {}
    common = set.intersection(*(set(frame) for frame in frames)) if frames else set()
    for order in sorted(common):
        spectra = [frame[order] for frame in frames]
        bounds = []
        for spectrum in spectra:
            good = np.flatnonzero(spectrum.ivar > 0)
            if good.size < 20:
                break
            bounds.append((spectrum.wavelength[good[0]], spectrum.wavelength[good[-1]]))
        if len(bounds) != len(spectra):
            continue
        low = max(b[0] for b in bounds)
        high = min(b[1] for b in bounds)
        if high <= low:
            continue
        n = oversampling * len(spectra[0])
        loglam = np.linspace(math.log(low), math.log(high), n)
        if clip > 0:
            spectra = _reject_outliers(spectra, loglam, clip)
        total = np.zeros(n)
        weight = np.zeros(n)
        for spectrum in spectra:
            try:
                value, _, trusted = Template(spectrum)(loglam)
            except RadialVelocityError:
                continue
            ivar = np.interp(loglam, np.log(spectrum.wavelength), spectrum.ivar)
            w = np.where(trusted, ivar, 0.0)
            total += w * np.where(trusted, value, 0.0)
            weight += w
        if smoothing > 0:
            # a symmetric kernel does not move lines (nor blends): see the module docstring
            width = smoothing * oversampling
            total = gaussian_filter1d(total, width, mode="nearest")
            smoothed_weight = gaussian_filter1d(weight, width, mode="nearest")
        else:
            smoothed_weight = weight
        good = (weight > 0) & (smoothed_weight > 0)
        flux = np.where(good, total / np.where(good, smoothed_weight, 1.0), 0.0)
        out[order] = Spectrum(np.exp(loglam), flux, np.where(good, weight, 0.0))
    return out


@dataclass
class ZeroResult:
    """A ZERO written by :func:`make_zero` and the spectra skipped with their reasons."""

    path: Path
    inputs: list[str]
    skipped: dict[str, str] = field(default_factory=dict)
    frames: list[RestFrame] = field(default_factory=list)  # the spectra stacked, at rest


def spectrum_files(archive: Archive, site: str, instrument_name: str) -> list[Path]:
    """Reduced 1-D science spectra of an instrument."""
    return sorted(archive.path(site, instrument_name, "reduced", "spec").glob("*-1d.fits"))


@dataclass
class RestFrame:
    """A reduced spectrum of a standard star shifted to rest, as a ZERO input."""

    path: Path
    orders: dict[int, Spectrum]
    jd: float  # JD (UTC) of the exposure mid-point
    objects: str  # OBJECTS of the frame


def rest_frames(
    archive: Archive,
    record: TargetRecord,
    *,
    site: str,
    instrument_name: str,
    camera: str,
    start: datetime,
    end: datetime,
    spectra: Sequence[Path] | None = None,
) -> tuple[list[RestFrame], dict[str, str]]:
    """Read the reduced spectra of a star observed in [start, end] and shift them to rest.

    ``λ_rest = λ_obs (1 + z_b) / (1 + z_cat)`` (barycentric correction at the mid-point,
    catalogue RV of ``record``), science fibre, blaze-normalised orders.

    Parameters
    ----------
    spectra : sequence of Path, optional
        The 1-D spectra to consider (default: every reduced spectrum of the instrument).

    Returns
    -------
    frames : list of RestFrame
    skipped : dict
        Spectra of the star that could not be used, with the reason.
    """
    if record.rv is None:
        raise PhotonpipeError(f"target {record.name} has no catalogue RV to shift it to rest")
    frames: list[RestFrame] = []
    skipped: dict[str, str] = {}
    candidates = spectrum_files(archive, site, instrument_name) if spectra is None else spectra
    for path in candidates:
        try:
            with fits.open(path) as hdul:
                header = hdul[0].header.copy()
                table = hdul["SPECTRUM"].data.copy()
        except (OSError, KeyError) as exc:
            skipped[str(path)] = f"unreadable ({exc})"
            continue
        name = science_name(str(header.get("OBJECTS", "")))
        if name is None or normalise_name(name) != normalise_name(record.name):
            continue
        if str(header.get("INSTRUME", "")).strip() != camera:
            continue
        when = datetime.fromisoformat(str(header["DATE-OBS"])).replace(tzinfo=UTC)
        if not start <= when <= end:
            continue
        try:
            bary = frame_barycentric(path, header)
        except InputFileError as exc:
            skipped[str(path)] = str(exc)
            continue
        # λ_rest = λ_obs (1 + z_b) / (1 + z_cat)
        factor = (1.0 + bary.correction_kms / C_KMS) / (1.0 + record.rv / C_KMS)
        orders = science_orders(table, int(header.get("SCIFIBRE", 0)))
        frames.append(
            RestFrame(
                Path(path),
                {o: Spectrum(s.wavelength * factor, s.flux, s.ivar) for o, s in orders.items()},
                float(Time(bary.midpoint, scale="utc").jd),
                str(header.get("OBJECTS", "")),
            )
        )
    return frames, skipped


def make_zero(
    archive: Archive,
    database: Database,
    *,
    site: str,
    instrument_name: str,
    camera: str,
    target: str,
    start: datetime,
    end: datetime,
    spectra: Sequence[Path] | None = None,
) -> ZeroResult:
    """Stack the reduced spectra of a standard star observed in [start, end] into a ZERO.

    Parameters
    ----------
    spectra : sequence of Path, optional
        The 1-D spectra to stack from (default: every reduced spectrum of the instrument); only
        those of ``target`` from ``camera`` observed in [start, end] are used.

    Raises
    ------
    PhotonpipeError
        Target unknown or without catalogue RV, no spectra, spectra with different lit fibres.
    """
    record = find_target(database, name=target)
    if record is None:
        raise PhotonpipeError(f"target {target!r} is not in the targets registry")
    frames, skipped = rest_frames(
        archive,
        record,
        site=site,
        instrument_name=instrument_name,
        camera=camera,
        start=start,
        end=end,
        spectra=spectra,
    )
    if not frames:
        raise PhotonpipeError(
            f"no reduced spectra of {record.name} from {camera} between "
            f"{start:%Y-%m-%dT%H:%M} and {end:%Y-%m-%dT%H:%M} (reduce the frames first)"
        )
    return write_zero(
        archive,
        database,
        record,
        frames,
        site=site,
        instrument_name=instrument_name,
        camera=camera,
        skipped=skipped,
    )


def write_zero(
    archive: Archive,
    database: Database,
    record: TargetRecord,
    frames: Sequence[RestFrame],
    *,
    site: str,
    instrument_name: str,
    camera: str,
    skipped: dict[str, str] | None = None,
) -> ZeroResult:
    """Combine rest frames of a standard star into a ZERO file and record it (:func:`make_zero`).

    Raises
    ------
    PhotonpipeError
        Frames with different lit fibres, or no order they all share.
    """
    fibre_sets = {_lit_fibres(frame.objects) for frame in frames}
    if len(fibre_sets) != 1:
        raise PhotonpipeError(f"spectra of {record.name} have different lit fibres {fibre_sets}")
    fibres = fibre_sets.pop()
    orders = combine_rest_orders([frame.orders for frame in frames])
    if not orders:
        raise PhotonpipeError(f"the spectra of {record.name} share no usable order")
    inputs = [frame.path.name for frame in frames]
    jdate = float(np.mean([frame.jd for frame in frames]))
    stamp = Time(jdate, format="jd").datetime.strftime("%Y%m%d%H%M")
    nres = instrument_name.replace("nres", "")
    destination = archive.path(
        site,
        instrument_name,
        "reduced",
        "zero",
        f"zero_{normalise_name(record.name)}_{site}nrs{nres}-{camera}-{stamp}.fits",
    )
    header = fits.Header()
    header["SOFTWARE"] = (f"photonpipe {__version__}", "software that made this file")
    header["OBSTYPE"] = ("ZERO", "rest-frame template")
    header["OBJECT"] = (record.name, "standard star")
    header["SITEID"], header["TELESCOP"], header["INSTRUME"] = site, instrument_name, camera
    header["FIBRES"] = (fibres, "fibres lit in the frames stacked")
    header["NAVG"] = (len(frames), "spectra combined")
    header["JDATE"] = (jdate, "[d] mean JD (UTC) of the exposure mid-points")
    header["CATRV"] = (record.rv, "[km/s] catalogue RV removed")
    header["TEFF"] = (record.teff if record.teff is not None else MISSING, "[K]")
    header["LOGG"] = (record.logg if record.logg is not None else MISSING, "[cgs]")
    header["OVERSAMP"] = (ZERO_OVERSAMPLING, "ln-lambda grid oversampling")
    for number, name in enumerate(inputs, start=1):
        header[f"INPUT{number:03d}"] = (name, "input spectrum")
    keys = sorted(orders)
    n = len(orders[keys[0]])
    table = fits.BinTableHDU.from_columns(
        [
            fits.Column("ORDER", "J", array=keys),
            fits.Column(
                "WAVELENGTH",
                f"{n}D",
                unit="Angstrom",
                array=np.array([orders[k].wavelength for k in keys]),
            ),
            fits.Column("FLUX", f"{n}D", array=np.array([orders[k].flux for k in keys])),
            fits.Column("IVAR", f"{n}D", array=np.array([orders[k].ivar for k in keys])),
        ],
        name="ZERO",
    )
    with archive.atomic_path(destination.relative_to(archive.root)) as temp:
        fits.HDUList([fits.PrimaryHDU(header=header), table]).writeto(temp)
    b_v = record.bmag - record.vmag if record.bmag is not None and record.vmag is not None else None
    j_k = record.jmag - record.kmag if record.jmag is not None and record.kmag is not None else None
    with database.session() as session:
        upsert(
            session,
            ZeroRecord,
            [
                {
                    "path": archive.relative(destination),
                    "navg": len(frames),
                    "site": site,
                    "instrument": instrument_name,
                    "camera": camera,
                    "jdate": jdate,
                    "target": record.name,
                    "teff": record.teff,
                    "logg": record.logg,
                    "b_v": b_v,
                    "j_k": j_k,
                    "flags": f"00{fibre_flag(fibres)}0",
                    "created": datetime.now(UTC),
                }
            ],
            key=("path",),
        )
    log.info("ZERO %s from %d spectra of %s", destination.name, len(frames), record.name)
    return ZeroResult(destination, inputs, dict(skipped or {}), list(frames))


def _lit_fibres(objects: str) -> str:
    return "".join("0" if p.strip().lower() == "none" else "1" for p in objects.split("&"))


def list_zeros(database: Database) -> list[ZeroRecord]:
    """All ZERO records, oldest first."""
    with database.session() as session:
        records = list(session.scalars(select(ZeroRecord).order_by(ZeroRecord.jdate)))
        session.expunge_all()
    return records


def flag_zero(database: Database, archive: Archive, path: str | Path, flags: str) -> ZeroRecord:
    """Set the four-character flags of a ZERO (by its path or file name).

    Raises
    ------
    PhotonpipeError
        Flags not four characters, or no such ZERO.
    """
    if len(flags) != 4:
        raise PhotonpipeError(f"ZERO flags must have four characters, got {flags!r}")
    wanted = Path(path).name
    with database.session() as session:
        for record in session.scalars(select(ZeroRecord)):
            if Path(record.path).name == wanted:
                record.flags = flags
                session.flush()
                session.expunge(record)
                return record
    raise PhotonpipeError(f"no ZERO {wanted} in the zeros registry")


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


def choose_template(
    database: Database,
    target: TargetRecord,
    instrument_name: str,
    fibres: str,
    jdate: float,
) -> ZeroRecord | None:
    """Return the ZERO for a science frame.

    The target's own good ZERO (same instrument and lit fibres, nearest in time), else the good
    general standard (flag [1] = ``1``) nearest in Teff and log g, distance
    √((ΔTeff/500 K)² + (Δlog g/0.5)²); None when neither exists.
    """
    code = fibre_flag(fibres)
    usable = [
        z
        for z in list_zeros(database)
        if z.flags[0] == "0" and z.instrument == instrument_name and z.flags[2] == code
    ]
    own = [z for z in usable if normalise_name(z.target) == normalise_name(target.name)]
    if own:
        return min(own, key=lambda z: abs(z.jdate - jdate))
    standards = [z for z in usable if z.flags[1] == "1"]
    if not standards:
        return None
    if target.teff is None:
        return None

    def distance(z: ZeroRecord) -> float:
        dt = ((z.teff or 0.0) - (target.teff or 0.0)) / 500.0
        dg = ((z.logg or 4.5) - (target.logg if target.logg is not None else 4.5)) / 0.5
        return math.hypot(dt, dg)

    return min(standards, key=distance)


# --------------------------------------------------------------------------- velocities


@dataclass
class FrameVelocity:
    """The RV of one reduced frame, or the reason it has none."""

    target: str
    rv_kms: float | None = None
    error_kms: float | None = None
    barycentric: Barycentric | None = None
    template: str | None = None
    snr: float = 0.0
    result: RadialVelocity | None = None
    reason: str | None = None
    #: The template was the night's ZERO made without this frame (see :func:`night_zeros`).
    leave_one_out: bool = False

    @property
    def needs_template(self) -> bool:
        """True when the only thing missing for an RV was a ZERO template."""
        return self.rv_kms is None and (self.reason or "").startswith(NO_TEMPLATE)


def measure_spectrum(
    path: str | Path,
    header: fits.Header,
    table: fits.FITS_rec,
    zero: Zero,
) -> tuple[RadialVelocity, Barycentric]:
    """Velocity of a reduced spectrum against a ZERO, with its barycentric correction.

    Returns
    -------
    RadialVelocity
        ``velocity`` relative to the ZERO (c·z, topocentric) [km/s].
    Barycentric

    Raises
    ------
    InputFileError
        ZERO of another instrument or lit-fibre set, too few usable orders, no velocity.
    """
    instrument_name = str(header.get("TELESCOP", "")).strip()
    fibres = _lit_fibres(str(header.get("OBJECTS", "")))
    if zero.instrument != instrument_name:
        raise InputFileError(
            path, f"ZERO {zero.path.name} is from {zero.instrument}, not {instrument_name}"
        )
    if zero.fibres != fibres:
        raise InputFileError(
            path, f"ZERO {zero.path.name} has fibres {zero.fibres} lit, the frame {fibres}"
        )
    orders = science_orders(table, int(header.get("SCIFIBRE", 0)))
    common = [o for o in sorted(orders) if o in zero.orders]
    usable = [o for o in common if (orders[o].ivar > 0).sum() > 200]
    if len(usable) < MIN_ORDERS:
        raise InputFileError(
            path,
            f"too few usable orders for an RV ({len(usable)} shared with {zero.path.name}, "
            f"need {MIN_ORDERS})",
        )
    bary = frame_barycentric(path, header)
    try:
        result = measure_velocity(
            [orders[o] for o in usable], [zero.orders[o] for o in usable], template_noise=True
        )
    except RadialVelocityError as exc:
        raise InputFileError(path, f"no radial velocity: {exc}") from None
    used_orders = {b.order for b in result.blocks if b.used}
    if len(used_orders) < MIN_ORDERS:
        raise InputFileError(
            path, f"too few usable orders for an RV ({len(used_orders)} with accepted blocks)"
        )
    return result, bary


def rv_header_cards(header: fits.Header, velocity: FrameVelocity) -> None:
    """Add RV, RVERR, BARYCORR, BJD, ZEROFILE (or RVFLAG with the reason) to a header."""
    header["RVTARGET"] = (velocity.target, "target of the RV")
    if velocity.rv_kms is None or velocity.barycentric is None or velocity.result is None:
        reason = (velocity.reason or "no RV")[:68]
        # a card holds 80 characters: a long reason goes without its comment (no truncation)
        header["RVFLAG"] = (reason, "RV unusable") if len(reason) <= 54 else reason
        return
    header["RV"] = (velocity.rv_kms, "[km/s] barycentric radial velocity")
    header["RVERR"] = (velocity.error_kms, "[km/s] RV uncertainty (block scatter)")
    header["RVFORMAL"] = (velocity.result.formal_uncertainty, "[km/s] formal RV uncertainty")
    header["RVRAW"] = (velocity.result.velocity, "[km/s] c*z relative to the ZERO")
    header["RVCOARSE"] = (velocity.result.coarse_velocity, "[km/s] peak of the summed CCF")
    header["BARYCORR"] = (velocity.barycentric.correction_kms, "[km/s] barycentric correction")
    header["BJD"] = (velocity.barycentric.bjd_tdb, "[d] BJD_TDB of the mid-point")
    header["MIDTIME"] = (velocity.barycentric.midpoint, "exposure mid-point (UTC)")
    header["MIDTYPE"] = (velocity.barycentric.midtype, "mid-point: flux-weighted or geometric")
    header["ZEROFILE"] = (Path(velocity.template or "").name, "template (ZERO) used")
    if velocity.leave_one_out:
        header["ZEROLOO"] = (True, "this frame was left out of ZEROFILE for its RV")
    header["RVNBLK"] = (velocity.result.n_used, "blocks in the RV")
    header["RVSNR"] = (velocity.snr, "S/N at the blaze peak (median of orders)")


def rv_product(header: fits.Header, velocity: FrameVelocity) -> fits.HDUList:
    """RV product: primary header with the RV keywords, CCF and BLOCKS tables."""
    primary = fits.PrimaryHDU(header=header.copy())
    rv_header_cards(primary.header, velocity)
    hdus: list[Any] = [primary]
    result = velocity.result
    if result is not None:
        hdus.append(
            fits.BinTableHDU.from_columns(
                [
                    fits.Column("VELOCITY", "D", unit="km/s", array=result.ccf_velocity),
                    fits.Column("CCF", "D", array=result.ccf),
                ],
                name="CCF",
            )
        )
        blocks = result.blocks
        hdus.append(
            fits.BinTableHDU.from_columns(
                [
                    fits.Column("ORDERIDX", "J", array=[b.order for b in blocks]),
                    fits.Column("BLOCK", "J", array=[b.block for b in blocks]),
                    fits.Column(
                        "WAVELENGTH", "D", unit="Angstrom", array=[b.wavelength for b in blocks]
                    ),
                    fits.Column("VELOCITY", "D", unit="km/s", array=[b.velocity for b in blocks]),
                    fits.Column(
                        "UNCERTAINTY", "D", unit="km/s", array=[b.uncertainty for b in blocks]
                    ),
                    fits.Column("NPIXELS", "J", array=[b.n_pixels for b in blocks]),
                    fits.Column("CHI2RED", "D", array=[b.chi2_reduced for b in blocks]),
                    fits.Column("USED", "L", array=[b.used for b in blocks]),
                ],
                name="BLOCKS",
            )
        )
    return fits.HDUList(hdus)


def frame_velocity(
    archive: Archive,
    database: Database,
    path: Path,
    header: fits.Header,
    table: fits.FITS_rec,
    template: Path | None = None,
) -> FrameVelocity:
    """Find the target and template of a reduced frame and measure its RV.

    Every problem (unknown target, no template, too few orders, metadata missing) becomes the
    ``reason`` of an unusable RV rather than an exception.
    """
    name = science_name(str(header.get("OBJECTS", ""))) or "unknown"
    when = datetime.fromisoformat(str(header["DATE-OBS"])).replace(tzinfo=UTC)
    snr = signal_to_noise(table, int(header.get("SCIFIBRE", 0)))
    target = find_target(database, name=name, position=_pointing(header), when=when)
    if target is None:
        return FrameVelocity(name, snr=snr, reason=f"target {name} not in the targets registry")
    velocity = FrameVelocity(target.name, snr=snr)
    try:
        if template is None:
            record = choose_template(
                database,
                target,
                str(header.get("TELESCOP", "")).strip(),
                _lit_fibres(str(header.get("OBJECTS", ""))),
                float(Time(when).jd),
            )
            if record is None:
                velocity.reason = f"{NO_TEMPLATE} for {target.name} (nor a general standard)"
                return velocity
            template = archive.path(record.path)
        zero = read_zero(template)
        result, bary = measure_spectrum(path, header, table, zero)
    except (InputFileError, ValueError) as exc:
        velocity.reason = str(exc)
        return velocity
    _set_velocity(archive, velocity, result, bary, template)
    return velocity


def _set_velocity(
    archive: Archive,
    velocity: FrameVelocity,
    result: RadialVelocity,
    bary: Barycentric,
    template: Path,
) -> None:
    velocity.result = result
    velocity.barycentric = bary
    velocity.template = archive.relative(template) if archive.contains(template) else str(template)
    velocity.rv_kms = barycentric_velocity(result.velocity, bary.correction_kms)
    # d RV / d v = (1 + z_b)
    velocity.error_kms = result.uncertainty * (1.0 + bary.correction_kms / C_KMS)
    velocity.reason = None


def record_velocity(
    database: Database, archive: Archive, spectrum: Path, header: fits.Header, v: FrameVelocity
) -> None:
    """Insert or update the frame's row of table ``echelle_rv``."""
    row = {
        "spectrum": archive.relative(spectrum),
        "rawfile": str(header.get("RAWFILE", spectrum.name)),
        "target": v.target,
        "site": str(header.get("SITEID", "")),
        "instrument": str(header.get("TELESCOP", "")),
        "exptime": float(header.get("EXPTIME", 0.0)),
        "bjd": v.barycentric.bjd_tdb if v.barycentric else None,
        "rv": v.rv_kms,
        "rv_error": v.error_kms,
        "barycorr": v.barycentric.correction_kms if v.barycentric else None,
        "template": v.template,
        "snr": v.snr,
        "n_blocks": v.result.n_used if v.result else 0,
        "reason": (v.reason or None) and v.reason[:256],
        "created": datetime.now(UTC),
    }
    with database.session() as session:
        upsert(session, RadialVelocityRecord, [row], key=("spectrum",))


def rv_path(archive: Archive, spectrum: Path, header: fits.Header) -> Path:
    """Where the RV product of a 1-D spectrum goes (``reduced/rv/…-rv.fits``)."""
    site = str(header.get("SITEID", "")).strip()
    instrument_name = str(header.get("TELESCOP", "")).strip()
    return archive.path(
        site, instrument_name, "reduced", "rv", spectrum.name.replace("-1d.fits", "-rv.fits")
    )


def write_velocity(
    archive: Archive, database: Database, spectrum: Path, header: fits.Header, v: FrameVelocity
) -> Path:
    """Write the RV product and the database row of a frame; return the product's path."""
    destination = rv_path(archive, spectrum, header)
    with archive.atomic_path(destination.relative_to(archive.root)) as temp:
        rv_product(header, v).writeto(temp)
    record_velocity(database, archive, spectrum, header, v)
    return destination


def measure_files(
    archive: Archive,
    database: Database,
    spectra: Iterable[Path],
    template: Path | None = None,
) -> dict[str, FrameVelocity]:
    """(Re)measure the RV of reduced 1-D spectra: RV product, DB row, keywords in the 1-D file.

    A file that cannot be read is reported with its reason; the others go on.
    """
    from photonpipe.platform.progress import track

    out: dict[str, FrameVelocity] = {}
    for item in track(list(spectra), "echelle rv", "spectrum", logger=log, status=_name):
        spectrum = Path(item)
        try:
            with fits.open(spectrum) as hdul:
                header = hdul[0].header.copy()
                table = hdul["SPECTRUM"].data.copy()
                spectrum_hdu = hdul["SPECTRUM"].copy()
        except (OSError, KeyError) as exc:
            out[str(spectrum)] = FrameVelocity("unknown", reason=f"{spectrum}: unreadable ({exc})")
            continue
        velocity = frame_velocity(archive, database, spectrum, header, table, template)
        store_velocity(archive, database, spectrum, header, spectrum_hdu, velocity)
        out[str(spectrum)] = velocity
    return out


#: RV keywords of a 1-D product's header, replaced when the RV is measured again.
RV_KEYWORDS = (
    "RV",
    "RVERR",
    "RVFORMAL",
    "RVRAW",
    "RVCOARSE",
    "BARYCORR",
    "BJD",
    "MIDTIME",
    "MIDTYPE",
    "ZEROFILE",
    "ZEROLOO",
    "RVNBLK",
    "RVSNR",
    "RVFLAG",
    "RVTARGET",
)


def store_velocity(
    archive: Archive,
    database: Database,
    spectrum: Path,
    header: fits.Header,
    spectrum_hdu: fits.BinTableHDU,
    velocity: FrameVelocity,
) -> Path:
    """Record a (re)measured RV: RV product, database row, keywords of the 1-D file.

    Returns
    -------
    pathlib.Path
        The RV product.
    """
    for key in RV_KEYWORDS:
        header.remove(key, ignore_missing=True, remove_all=True)
    product = write_velocity(archive, database, spectrum, header, velocity)
    rv_header_cards(header, velocity)
    with atomic_output(spectrum) as temp:
        fits.HDUList([fits.PrimaryHDU(header=header), spectrum_hdu]).writeto(temp)
    return product


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


#: Fewest frames of a star in a night for :func:`night_zeros` to make a ZERO of it.
MIN_NIGHT_ZERO_FRAMES = 2
#: Largest spread [km/s] of a night's coarse velocities (frames against the first one) for its
#: frames to be stacked into a ZERO: beyond it the star is not constant over the night.
NIGHT_ZERO_MAX_SPREAD_KMS = 3.0
#: Largest reduced χ² of a night's leave-one-out RVs about their weighted mean for its ZERO to
#: be kept: beyond it the star varies (or the errors are wrong) and its template would be smeared.
NIGHT_ZERO_MAX_CHI2 = 25.0


@dataclass
class NightZeros:
    """ZEROs that :func:`night_zeros` made and the RVs it measured with them."""

    zeros: list[Path] = field(default_factory=list)
    velocities: dict[str, FrameVelocity] = field(default_factory=dict)  # 1-D path → RV
    failed: dict[str, str] = field(default_factory=dict)  # what → why no ZERO


def night_zeros(archive: Archive, database: Database, spectra: Sequence[Path]) -> NightZeros:
    """Make a ZERO of each star of a night that has none, and measure the star's RVs with it.

    The reduced spectra whose RV is missing only for want of a template (a standard star
    observed for the first time, with a catalogue RV in the registry) are grouped by star,
    instrument, camera and lit fibres; a group of at least :data:`MIN_NIGHT_ZERO_FRAMES`
    frames is stacked into a ZERO (:func:`write_zero`, recorded in the zeros registry, so later
    nights pick it). Each frame's RV is then measured against the ZERO of the *other* frames of
    the group (leave one out, ``ZEROLOO`` in the header): a frame measured against a template
    holding its own photons would have its noise partly cancelled, and errors smaller than
    reported. The star must be constant over the night (a standard): its catalogue RV sets
    the template's rest frame, so the RVs of the group scatter about it. A group whose frames
    move against each other by more than :data:`NIGHT_ZERO_MAX_SPREAD_KMS` (coarse CCF
    against the first frame), or whose leave-one-out RVs scatter about their mean with a
    reduced χ² above :data:`NIGHT_ZERO_MAX_CHI2`, gets no ZERO (its frames keep "no ZERO
    template"; the reason is in ``failed`` and the log).

    Parameters
    ----------
    spectra : sequence of Path
        Reduced 1-D spectra of the night (others are not read).

    Returns
    -------
    NightZeros
    """
    out = NightZeros()
    groups: dict[tuple[str, str, str, str, str], list[Path]] = {}
    for spectrum in spectra:
        try:
            header = fits.getheader(spectrum)
        except OSError:
            continue
        if "RV" in header or not str(header.get("RVFLAG", "")).startswith(NO_TEMPLATE):
            continue
        key = (
            str(header.get("RVTARGET", "")),
            str(header.get("SITEID", "")).strip(),
            str(header.get("TELESCOP", "")).strip(),
            str(header.get("INSTRUME", "")).strip(),
            _lit_fibres(str(header.get("OBJECTS", ""))),
        )
        groups.setdefault(key, []).append(Path(spectrum))
    for (target, site, instrument_name, camera, fibres), paths in sorted(groups.items()):
        what = f"ZERO of {target} ({instrument_name}, fibres {fibres})"
        try:
            made = _night_zero(archive, database, target, site, instrument_name, camera, paths)
        except PhotonpipeError as exc:
            log.warning("no %s from this night: %s", what, exc)
            out.failed[what] = str(exc)
            continue
        out.zeros.append(made[0])
        out.velocities.update(made[1])
    return out


def _night_zero(
    archive: Archive,
    database: Database,
    target: str,
    site: str,
    instrument_name: str,
    camera: str,
    paths: Sequence[Path],
) -> tuple[Path, dict[str, FrameVelocity]]:
    """One star's night ZERO and its frames' leave-one-out RVs (see :func:`night_zeros`)."""
    if len(paths) < MIN_NIGHT_ZERO_FRAMES:
        raise PhotonpipeError(f"{len(paths)} frame, need {MIN_NIGHT_ZERO_FRAMES}")
    record = find_target(database, name=target)
    if record is None:
        raise PhotonpipeError(f"target {target!r} is not in the targets registry")
    times = [
        datetime.fromisoformat(str(fits.getval(p, "DATE-OBS"))).replace(tzinfo=UTC) for p in paths
    ]
    frames, skipped = rest_frames(
        archive,
        record,
        site=site,
        instrument_name=instrument_name,
        camera=camera,
        start=min(times),
        end=max(times),
        spectra=paths,
    )
    if len(frames) < MIN_NIGHT_ZERO_FRAMES:
        raise PhotonpipeError(f"{len(frames)} usable frame(s): {'; '.join(skipped.values())}")
    # a cheap test first: the frames at rest against the first one (coarse CCF)
    first = frames[0].orders
    coarse = []
    for frame in frames[1:]:
        common = sorted(set(first) & set(frame.orders))
        # five orders about the middle are plenty to see km/s (and cost a fraction of all 67)
        middle = max(0, len(common) // 2 - 2)
        common = common[middle : middle + 5]
        try:
            shift, _, _ = coarse_velocity(
                [frame.orders[o] for o in common], [first[o] for o in common]
            )
        except RadialVelocityError as exc:
            raise PhotonpipeError(f"{frame.path.name}: no CCF with the others ({exc})") from None
        coarse.append(shift)
    spread = max(map(abs, coarse))
    if spread > NIGHT_ZERO_MAX_SPREAD_KMS:
        raise PhotonpipeError(
            f"its frames move by up to {spread:.1f} km/s against each other "
            f"(> {NIGHT_ZERO_MAX_SPREAD_KMS} km/s): not a constant star"
        )
    zero = write_zero(
        archive,
        database,
        record,
        frames,
        site=site,
        instrument_name=instrument_name,
        camera=camera,
        skipped=skipped,
    )
    full = read_zero(zero.path)
    measured: dict[str, tuple[FrameVelocity, fits.Header, fits.BinTableHDU]] = {}
    for i, frame in enumerate(zero.frames):
        others = [f.orders for j, f in enumerate(zero.frames) if j != i]
        template = Zero(full.path, full.header, combine_rest_orders(others))
        measured[str(frame.path)] = _measure_left_out(archive, frame.path, template)
    good = [v for v, _, _ in measured.values() if v.rv_kms is not None and v.error_kms]
    if len(good) >= 2:
        rv = np.array([v.rv_kms for v in good], dtype=float)
        sigma = np.array([v.error_kms for v in good], dtype=float)
        weights = 1.0 / sigma**2
        mean = float(np.sum(weights * rv) / weights.sum())
        chi2 = float(np.sum(((rv - mean) / sigma) ** 2) / (rv.size - 1))
        if chi2 > NIGHT_ZERO_MAX_CHI2:
            _forget_zero(archive, database, zero.path)
            raise PhotonpipeError(
                f"its leave-one-out RVs scatter with reduced χ² {chi2:.0f} "
                f"(> {NIGHT_ZERO_MAX_CHI2:.0f}, RMS {np.std(rv) * 1000:.0f} m/s): "
                "not a constant star; ZERO removed"
            )
    velocities = {}
    for spectrum, (velocity, header, hdu) in measured.items():
        store_velocity(archive, database, Path(spectrum), header, hdu, velocity)
        if velocity.reason:
            log.warning("%s: no RV: %s", Path(spectrum).name, velocity.reason)
        velocities[spectrum] = velocity
    return zero.path, velocities


def _forget_zero(archive: Archive, database: Database, path: Path) -> None:
    """Remove a ZERO file and its registry row."""
    relative = archive.relative(path)
    with database.session() as session:
        for record in session.scalars(select(ZeroRecord).where(ZeroRecord.path == relative)):
            session.delete(record)
    path.unlink(missing_ok=True)


def _measure_left_out(
    archive: Archive, spectrum: Path, zero: Zero
) -> tuple[FrameVelocity, fits.Header, fits.BinTableHDU]:
    """Measure one frame against a ZERO made without it; return the RV and what to store it in."""
    with fits.open(spectrum) as hdul:
        header = hdul[0].header.copy()
        table = hdul["SPECTRUM"].data.copy()
        spectrum_hdu = hdul["SPECTRUM"].copy()
    fibre = int(header.get("SCIFIBRE", 0))
    velocity = FrameVelocity(str(zero.header.get("OBJECT", "")), snr=signal_to_noise(table, fibre))
    try:
        result, bary = measure_spectrum(spectrum, header, table, zero)
    except InputFileError as exc:
        velocity.reason = str(exc)
    else:
        _set_velocity(archive, velocity, result, bary, zero.path)
        velocity.leave_one_out = True
    return velocity, header, spectrum_hdu


def _name(path: str | Path) -> str:
    return Path(path).name


def list_velocities(database: Database) -> list[RadialVelocityRecord]:
    """Rows of the RV table, by target and BJD."""
    with database.session() as session:
        records = list(
            session.scalars(
                select(RadialVelocityRecord).order_by(
                    RadialVelocityRecord.target, RadialVelocityRecord.bjd
                )
            )
        )
        session.expunge_all()
    return records


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
