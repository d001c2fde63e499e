"""Barycentric and heliocentric radial-velocity corrections from observing metadata.

The corrections are astropy's ``SkyCoord.radial_velocity_correction`` (Earth's orbital and
rotational motion towards the target, with astropy's built-in ephemeris, so no download): add
the correction to a measured (topocentric) velocity to get the velocity relative to the solar
system barycentre (or the Sun's centre).

:func:`observation_from_header` reads the target, time and site from common FITS keywords:

* coordinates: ``RA``/``DEC`` (sexagesimal hours/degrees, or decimal degrees), or ``RA-D``/
  ``DEC-D`` [deg]; ``EQUINOX`` (default 2000);
* time: ``DATE-OBS`` (ISO, date or date-time) with ``UT-START``/``UT`` when the date has no
  time, or ``UT-DATE`` + ``UT-START`` (Magellan), or ``MJD-OBS``; the middle of the exposure is
  used when ``EXPTIME`` [s] is given;
* site: ``SITELAT``/``SITELONG`` [deg, east positive] and ``SITEALT`` [m], or ``LATITUDE``/
  ``LONGITUD``/``ALTITUDE``.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import astropy.units as u
from astropy.coordinates import EarthLocation, SkyCoord
from astropy.time import Time
from astropy.utils import iers
from astropy.utils.exceptions import AstropyWarning


@contextlib.contextmanager
def offline_earth_orientation() -> Iterator[None]:
    """Use astropy's bundled Earth-orientation (IERS) table, whatever its age.

    By default astropy downloads a fresh IERS-A table and, offline, refuses to use predictions
    published more than 30 days before today, so code that worked last month fails with the
    wall clock. Pipelines run unattended and offline: inside this context the bundled table
    (``astropy-iers-data``) is used without downloads or age limit, and times beyond its end get
    a warning instead of an error. Errors in the predicted UT1 − UTC, even of 0.1 s, change an
    observatory's rotational velocity by 0.03 mm/s and barycentric corrections not measurably.
    """
    with (
        iers.conf.set_temp("auto_download", False),
        iers.conf.set_temp("auto_max_age", None),
        iers.conf.set_temp("iers_degraded_accuracy", "warn"),
    ):
        yield


class ObservationMetadataError(ValueError):
    """The header lacks (or has malformed) coordinates, time or site."""


@dataclass(frozen=True)
class Observation:
    """Where, when and what was observed.

    Attributes
    ----------
    target : astropy.coordinates.SkyCoord
        Target (ICRS).
    time : astropy.time.Time
        Mid-exposure time (UTC).
    location : astropy.coordinates.EarthLocation
        Observatory.
    """

    target: SkyCoord
    time: Time
    location: EarthLocation


def _first(header: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        value = header.get(key)
        if value not in (None, ""):
            return value
    return None


def observation_from_header(header: Mapping[str, Any]) -> Observation:
    """Read target, mid-exposure time and site from FITS header keywords.

    Parameters
    ----------
    header : mapping
        FITS header or dict of keywords (see the module documentation for the keywords).

    Returns
    -------
    Observation
        Target, time and location.

    Raises
    ------
    ObservationMetadataError
        A required keyword is missing or malformed (the message names it).
    """
    try:
        ra_d, dec_d = header.get("RA-D"), header.get("DEC-D")
        if ra_d is not None and dec_d is not None:
            target = SkyCoord(float(ra_d) * u.deg, float(dec_d) * u.deg, frame="icrs")
        else:
            ra, dec = header.get("RA"), header.get("DEC")
            if ra is None or dec is None:
                raise ObservationMetadataError("no target coordinates (RA/DEC or RA-D/DEC-D)")
            if isinstance(ra, str) and ":" in ra:
                target = SkyCoord(ra.strip(), str(dec).strip(), unit=(u.hourangle, u.deg))
            else:
                target = SkyCoord(float(ra) * u.deg, float(dec) * u.deg)
    except ObservationMetadataError:
        raise
    except (ValueError, TypeError) as exc:
        raise ObservationMetadataError(f"malformed target coordinates ({exc})") from None
    try:
        time = _time_from_header(header)
    except ObservationMetadataError:
        raise
    except (ValueError, TypeError) as exc:
        raise ObservationMetadataError(f"malformed observation time ({exc})") from None
    lat = _first(header, "SITELAT", "LATITUDE", "OBS-LAT")
    lon = _first(header, "SITELONG", "LONGITUD", "OBS-LONG")
    alt = _first(header, "SITEALT", "ALTITUDE", "OBS-ELEV")
    if lat is None or lon is None:
        raise ObservationMetadataError("no site latitude/longitude (SITELAT/SITELONG)")
    try:
        location = EarthLocation.from_geodetic(
            float(lon) * u.deg, float(lat) * u.deg, float(alt or 0.0) * u.m
        )
    except (ValueError, TypeError) as exc:
        raise ObservationMetadataError(f"malformed site coordinates ({exc})") from None
    return Observation(target, time, location)


def _time_from_header(header: Mapping[str, Any]) -> Time:
    date_obs = header.get("DATE-OBS")
    start: Time
    if date_obs and "T" in str(date_obs):
        start = Time(str(date_obs), scale="utc")
    else:
        date = date_obs or header.get("UT-DATE")
        clock = _first(header, "UT-START", "UT", "TIME-OBS")
        if date and clock:
            start = Time(f"{str(date).strip()}T{str(clock).strip()}", scale="utc")
        elif header.get("MJD-OBS") is not None:
            start = Time(float(header["MJD-OBS"]), format="mjd", scale="utc")
        else:
            raise ObservationMetadataError("no observation time (DATE-OBS, UT-DATE/UT-START)")
    exptime = header.get("EXPTIME")
    if exptime is not None:
        start = start + 0.5 * float(exptime) * u.s
    return start


def velocity_corrections(observation: Observation) -> tuple[float, float]:
    """Barycentric and heliocentric corrections for an observation.

    Parameters
    ----------
    observation : Observation
        Target, time and site.

    Returns
    -------
    barycentric, heliocentric : float
        Corrections [km/s] to add to a topocentric radial velocity.
    """
    with offline_earth_orientation(), warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyWarning)
        bary = observation.target.radial_velocity_correction(
            kind="barycentric", obstime=observation.time, location=observation.location
        )
        helio = observation.target.radial_velocity_correction(
            kind="heliocentric", obstime=observation.time, location=observation.location
        )
    return float(bary.to_value(u.km / u.s)), float(helio.to_value(u.km / u.s))


def bjd_tdb(observation: Observation) -> float:
    """Barycentric Julian date (TDB) of an observation's time [d].

    The time converted to TDB plus the light travel time from the observatory to the solar
    system barycentre towards the target (astropy's ``Time.light_travel_time``, built-in
    ephemeris).
    """
    with offline_earth_orientation(), warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyWarning)
        time = Time(observation.time, location=observation.location)
        travel = time.light_travel_time(observation.target, kind="barycentric")
        return float((time.tdb + travel).jd)
