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

:func:`barycentric_julian_dates` converts arrival times seen from any geocentric position (a
spacecraft's, or the geocentre) to BJD_TDB with astropy's built-in ephemeris or a local JPL
kernel; it never downloads anything.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import astropy.units as u
import numpy as np
from astropy.coordinates import EarthLocation, SkyCoord
from astropy.time import Time
from astropy.utils import iers
from astropy.utils.exceptions import AstropyWarning

from photonpipe.errors import EXIT_USAGE, PhotonpipeError


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


# Also a ValueError, as it was before PhotonpipeError: code that catches ValueError still does.
class ObservationMetadataError(PhotonpipeError, ValueError):
    """The header lacks (or has malformed) coordinates, time or site."""

    exit_code = EXIT_USAGE


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


#: Name of astropy's built-in solar-system ephemeris (ERFA ``epv00``: VSOP2000-based, no files).
BUILTIN_EPHEMERIS = "builtin"
#: Speed of light [km/s].
_C_KMS = 299792.458


# Also a ValueError, as it was before PhotonpipeError: code that catches ValueError still does.
class EphemerisError(PhotonpipeError, ValueError):
    """An ephemeris setting names neither ``builtin`` nor a readable JPL kernel with jplephem."""

    exit_code = EXIT_USAGE


def ephemeris_label(ephemeris: str = BUILTIN_EPHEMERIS) -> str:
    """Short name of an ephemeris for headers: ``astropy builtin (ERFA epv00)`` or the kernel file.

    Raises
    ------
    EphemerisError
        ``ephemeris`` is not ``builtin`` and not an existing JPL SPK file usable with jplephem.
    """
    if ephemeris == BUILTIN_EPHEMERIS:
        return "astropy builtin (ERFA epv00)"
    return f"JPL {Path(_kernel_path(ephemeris)).name} (jplephem)"


def _kernel_path(ephemeris: str) -> str:
    path = Path(ephemeris).expanduser()
    if not path.is_file():
        raise EphemerisError(
            f"ephemeris {ephemeris!r}: not 'builtin' and no such JPL kernel file (a local "
            "DE4xx .bsp; nothing is downloaded)"
        )
    try:
        import jplephem  # noqa: F401  (astropy reads kernels through it)
    except ImportError:
        raise EphemerisError(
            f"ephemeris {ephemeris!r}: reading a JPL kernel needs the jplephem package"
        ) from None
    # absolute: astropy would take a bare "de421.bsp" for a kernel name to download
    return str(path.resolve())


def barycentric_julian_dates(
    times: Time,
    target: SkyCoord,
    observer_gcrs_km: np.ndarray | None = None,
    *,
    ephemeris: str = BUILTIN_EPHEMERIS,
) -> np.ndarray:
    """Barycentric Julian dates (TDB) of arrival times seen from a geocentric observer.

    ``BJD_TDB = t_TDB + (r_Earth + r_observer) · n̂ / c``: the Rømer delay towards the target
    (unit vector n̂, ICRS), with the Earth's barycentric position from the ephemeris and the
    observer's geocentric position (GCRS; e.g. a spacecraft's), or the geocentre when none is
    given. The Shapiro delay (< 0.1 ms away from the Sun's limb) is not included, as in
    astropy's ``Time.light_travel_time``.

    Parameters
    ----------
    times : astropy.time.Time
        Arrival times (any scale; converted to TDB at the geocentre).
    target : astropy.coordinates.SkyCoord
        Target direction.
    observer_gcrs_km : ndarray, shape (n, 3), optional
        Observer's geocentric position at each time [km].
    ephemeris : str
        ``builtin`` or the path of a local JPL SPK kernel (DE4xx, read with jplephem).

    Returns
    -------
    ndarray
        BJD_TDB [d] (Julian dates; float64 resolves 40 µs at current dates).
    """
    from astropy.coordinates import get_body_barycentric

    kernel = ephemeris if ephemeris == BUILTIN_EPHEMERIS else _kernel_path(ephemeris)
    with offline_earth_orientation(), warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyWarning)
        tdb = times.tdb
        earth = get_body_barycentric("earth", tdb, ephemeris=kernel)
    position = np.atleast_2d(earth.xyz.to_value(u.km).T)
    if observer_gcrs_km is not None:
        position = position + np.atleast_2d(np.asarray(observer_gcrs_km, dtype=np.float64))
    direction = target.icrs.cartesian.xyz.value
    direction = direction / np.linalg.norm(direction)
    delay_days = (position @ direction) / _C_KMS / 86400.0
    jd = np.asarray(tdb.jd1, dtype=np.float64) + np.asarray(tdb.jd2, dtype=np.float64)
    return np.asarray(jd + delay_days.reshape(np.shape(jd)), dtype=np.float64)
