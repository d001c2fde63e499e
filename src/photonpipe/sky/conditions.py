"""Observing conditions of BOSS exposures at Apache Point Observatory, vectorised per plate.

One ephemeris evaluation serves all exposures of a plate: the Moon and the Sun are computed with
astropy's built-in ephemeris (``get_body``, ERFA) for every exposure at once, plus one grid of
solar altitudes spanning the night for sunset and sunrise. Fibre coordinates (ecliptic,
galactic, Moon separation) are computed for every fibre, not only the plate centre.

Definitions
-----------
* Times are TAI seconds on the MJD·86400 scale (the ``TAI-BEG``/``TAI-END`` keywords); the
  mid-exposure time is their mean.
* Altitudes are geometric (no refraction), topocentric, apparent (precession, nutation,
  aberration) as astropy's ``AltAz`` frame with zero pressure gives them.
* Sunset and sunrise are the times the Sun's centre crosses −0.8333° (the almanac convention:
  34′ refraction plus 16′ semi-diameter) within 16 h of the exposure: located with a
  low-precision solar formula on a 10-minute grid, then refined with astropy's Sun at ±2 minutes
  (linear interpolation; a few tenths of a second). They are computed once per night and
  process (cached by TAI day) for all the plates of the night.
* Moon illuminated fraction k = (1 + cos i)/2 with the phase angle i from the Sun–Moon
  elongation ψ and distances: tan i = R_sun sin ψ / (R_moon − R_sun cos ψ).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import astropy.units as u
import numpy as np
import numpy.typing as npt
from astropy.coordinates import (
    AltAz,
    EarthLocation,
    GeocentricMeanEcliptic,
    SkyCoord,
    get_body,
)
from astropy.time import Time

from photonpipe.sky.reference import (
    integrated_starlight,
    photometric_flag,
    solar_flux_10cm,
    zodiacal_brightness,
)
from photonpipe.spectra.barycentric import offline_earth_orientation

FloatArray = npt.NDArray[np.float64]

#: Apache Point Observatory, 2.5-m SDSS telescope (WGS84).
APACHE_POINT = EarthLocation.from_geodetic(
    lon=-105.820417 * u.deg, lat=32.780361 * u.deg, height=2788.0 * u.m
)
SUNSET_ALTITUDE_DEG = -0.8333
_GRID_HALF_SPAN_S = 16.0 * 3600.0


def tai_seconds_to_time(tai_seconds: npt.ArrayLike) -> Time:
    """TAI seconds on the MJD·86400 scale to an astropy Time (scale TAI)."""
    tai = np.asarray(tai_seconds, dtype=np.float64)
    day = np.floor(tai / 86400.0)
    return Time(day, (tai - day * 86400.0) / 86400.0, format="mjd", scale="tai")


def _offline_iers() -> Any:
    # The bundled tables cover the BOSS years; never download, never fail by the wall clock.
    return offline_earth_orientation()


@dataclass
class ExposureEphemeris:
    """Moon and Sun for a set of exposures (arrays of shape ``(nexp,)``).

    Attributes
    ----------
    time : astropy.time.Time
        Mid-exposure times.
    moon_ra, moon_dec : numpy.ndarray
        Topocentric apparent Moon position [deg].
    moon_alt, moon_az : numpy.ndarray
        Moon altitude and azimuth (east of north) [deg].
    moon_distance_km : numpy.ndarray
        Topocentric Moon distance [km].
    moon_phase_angle : numpy.ndarray
        Sun–Moon–observer angle (0 full, 180 new) [deg].
    moon_illumination : numpy.ndarray
        Illuminated fraction of the disc (0–1).
    sun_alt, sun_az : numpy.ndarray
        Sun altitude and azimuth [deg].
    sun_ra, sun_dec : numpy.ndarray
        Sun apparent position [deg].
    sun_moon_separation : numpy.ndarray
        Angular distance Sun–Moon (elongation) [deg].
    hours_since_sunset, hours_until_sunrise : numpy.ndarray
        From the previous sunset and to the next sunrise at APO [h].
    """

    time: Time
    moon_ra: FloatArray
    moon_dec: FloatArray
    moon_alt: FloatArray
    moon_az: FloatArray
    moon_distance_km: FloatArray
    moon_phase_angle: FloatArray
    moon_illumination: FloatArray
    sun_alt: FloatArray
    sun_az: FloatArray
    sun_ra: FloatArray
    sun_dec: FloatArray
    sun_moon_separation: FloatArray
    hours_since_sunset: FloatArray
    hours_until_sunrise: FloatArray


def _altaz(time: Time) -> AltAz:
    return AltAz(obstime=time, location=APACHE_POINT, pressure=0 * u.hPa)


def approximate_sun_altitude_deg(tai_seconds: npt.ArrayLike) -> FloatArray:
    """Geometric altitude of the Sun's centre at APO from a low-precision formula [deg].

    The Astronomical Almanac's low-precision solar coordinates (accurate to about 0.01° in
    1950–2050) with the mean sidereal time; the difference TAI − UT (≈ 35 s) is neglected. Only
    used to locate sunset and sunrise to within about a minute before they are refined with
    astropy.

    Parameters
    ----------
    tai_seconds : array_like
        TAI seconds on the MJD·86400 scale.
    """
    days = np.asarray(tai_seconds, dtype=np.float64) / 86400.0 - 51544.5  # days from J2000.0
    mean_longitude = np.radians(280.460 + 0.9856474 * days)
    anomaly = np.radians(357.528 + 0.9856003 * days)
    longitude = mean_longitude + np.radians(1.915 * np.sin(anomaly) + 0.020 * np.sin(2 * anomaly))
    obliquity = np.radians(23.439 - 4.0e-7 * days)
    ra = np.arctan2(np.cos(obliquity) * np.sin(longitude), np.cos(longitude))
    dec = np.arcsin(np.sin(obliquity) * np.sin(longitude))
    sidereal = np.radians(280.46061837 + 360.98564736629 * days) + APACHE_POINT.lon.rad
    latitude = APACHE_POINT.lat.rad
    hour_angle = sidereal - ra
    return np.degrees(
        np.arcsin(
            np.sin(latitude) * np.sin(dec) + np.cos(latitude) * np.cos(dec) * np.cos(hour_angle)
        )
    )


def _sun_altitude_deg(tai_seconds: FloatArray) -> FloatArray:
    """Topocentric altitude of the Sun's centre from astropy (as for the exposures) [deg]."""
    times = tai_seconds_to_time(tai_seconds)
    return np.asarray(
        get_body("sun", times, APACHE_POINT).transform_to(_altaz(times)).alt.deg, dtype=np.float64
    )


#: Coarse grid of the low-precision Sun, and the half-width of the bracket refined with astropy.
_COARSE_STEP_S = 600.0
_REFINE_HALF_S = 120.0


@functools.lru_cache(maxsize=256)
def _day_crossings(day: int) -> tuple[FloatArray, FloatArray]:
    """Sunsets and sunrises at APO from 16 h before TAI day ``day`` to 16 h after it [TAI s].

    The twilight of a night is computed once per process (cached by day) for every plate of
    that night. The low-precision Sun on a 10-minute grid locates each crossing of −0.8333°;
    astropy's Sun (the same as the exposures') at 2 minutes either side of it, all crossings in
    one evaluation, refines it by linear interpolation (where astropy does not bracket the
    crossing there, it is evaluated on a 5-minute grid over the coarse step instead).
    """
    start = day * 86400.0 - _GRID_HALF_SPAN_S
    stop = (day + 1) * 86400.0 + _GRID_HALF_SPAN_S
    grid = np.arange(start, stop + _COARSE_STEP_S, _COARSE_STEP_S)
    above = approximate_sun_altitude_deg(grid) - SUNSET_ALTITUDE_DEG
    change = np.flatnonzero(np.signbit(above[:-1]) != np.signbit(above[1:]))
    if not len(change):
        return np.empty(0), np.empty(0)
    estimate = grid[change] + _COARSE_STEP_S * above[change] / (above[change] - above[change + 1])
    setting = above[change] > 0
    low = estimate - _REFINE_HALF_S
    high = estimate + _REFINE_HALF_S
    with _offline_iers():
        alt = _sun_altitude_deg(np.concatenate([low, high])) - SUNSET_ALTITUDE_DEG
    a_low, a_high = alt[: len(low)], alt[len(low) :]
    crossing = low + (high - low) * a_low / (a_low - a_high)
    bracketed = np.signbit(a_low) != np.signbit(a_high)
    for i in np.flatnonzero(~bracketed):  # not met in the survey's years; kept for safety
        fine = np.arange(grid[change[i]] - 3600.0, grid[change[i] + 1] + 3600.0, 300.0)
        with _offline_iers():
            f = _sun_altitude_deg(fine) - SUNSET_ALTITUDE_DEG
        sign = np.flatnonzero(np.signbit(f[:-1]) != np.signbit(f[1:]))
        sign = sign[(f[sign] > 0) == setting[i]]
        if len(sign):
            j = sign[np.argmin(np.abs(fine[sign] - estimate[i]))]
            crossing[i] = fine[j] + 300.0 * f[j] / (f[j] - f[j + 1])
    return crossing[setting], crossing[~setting]


def _sun_crossings(tai_mid: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Hours since the last sunset and until the next sunrise within 16 h of each time."""
    since = np.full(tai_mid.shape, np.nan)
    until = np.full(tai_mid.shape, np.nan)
    for i, t in enumerate(tai_mid):
        setting, rising = _day_crossings(int(np.floor(t / 86400.0)))
        before = setting[(setting <= t) & (setting >= t - _GRID_HALF_SPAN_S)]
        after = rising[(rising >= t) & (rising <= t + _GRID_HALF_SPAN_S)]
        if before.size:
            since[i] = (t - before.max()) / 3600.0
        if after.size:
            until[i] = (after.min() - t) / 3600.0
    return since, until


def exposure_ephemeris(tai_mid: npt.ArrayLike) -> ExposureEphemeris:
    """Moon and Sun at APO for mid-exposure times (one vectorised evaluation).

    Parameters
    ----------
    tai_mid : array_like
        Mid-exposure times, TAI seconds on the MJD·86400 scale, shape ``(nexp,)``.

    Returns
    -------
    ExposureEphemeris
    """
    tai_mid = np.atleast_1d(np.asarray(tai_mid, dtype=np.float64))
    time = tai_seconds_to_time(tai_mid)
    with _offline_iers():
        frame = _altaz(time)
        moon = get_body("moon", time, APACHE_POINT)
        sun = get_body("sun", time, APACHE_POINT)
        moon_altaz = moon.transform_to(frame)
        sun_altaz = sun.transform_to(frame)
        since, until = _sun_crossings(tai_mid)
    elongation = sun.separation(moon).rad
    r_sun = sun.distance.to_value(u.km)
    r_moon = moon.distance.to_value(u.km)
    phase = np.arctan2(r_sun * np.sin(elongation), r_moon - r_sun * np.cos(elongation))
    return ExposureEphemeris(
        time=time,
        moon_ra=np.asarray(moon.ra.deg),
        moon_dec=np.asarray(moon.dec.deg),
        moon_alt=np.asarray(moon_altaz.alt.deg),
        moon_az=np.asarray(moon_altaz.az.deg),
        moon_distance_km=np.asarray(r_moon),
        moon_phase_angle=np.degrees(phase),
        moon_illumination=(1.0 + np.cos(phase)) / 2.0,
        sun_alt=np.asarray(sun_altaz.alt.deg),
        sun_az=np.asarray(sun_altaz.az.deg),
        sun_ra=np.asarray(sun.ra.deg),
        sun_dec=np.asarray(sun.dec.deg),
        sun_moon_separation=np.degrees(elongation),
        hours_since_sunset=since,
        hours_until_sunrise=until,
    )


def angular_separation_deg(
    ra1: npt.ArrayLike, dec1: npt.ArrayLike, ra2: npt.ArrayLike, dec2: npt.ArrayLike
) -> FloatArray:
    """Great-circle distance (Vincenty formula) between positions given in degrees [deg]."""
    lon1, lat1, lon2, lat2 = (
        np.radians(np.asarray(a, dtype=np.float64)) for a in (ra1, dec1, ra2, dec2)
    )
    dlon = lon2 - lon1
    num = np.hypot(
        np.cos(lat2) * np.sin(dlon),
        np.cos(lat1) * np.sin(lat2) - np.sin(lat1) * np.cos(lat2) * np.cos(dlon),
    )
    den = np.sin(lat1) * np.sin(lat2) + np.cos(lat1) * np.cos(lat2) * np.cos(dlon)
    return np.degrees(np.arctan2(num, den))


@dataclass
class FibreCoordinates:
    """Sky-position quantities of fibres (arrays of shape ``(nfibre,)``).

    Attributes
    ----------
    ecl_lon, ecl_lat : numpy.ndarray
        Geocentric mean ecliptic coordinates (equinox J2000) [deg].
    gal_l, gal_b : numpy.ndarray
        Galactic coordinates [deg].
    zodiacal : numpy.ndarray
        Zodiacal brightness from the SkyModelling table (S10-like units).
    isl : numpy.ndarray
        Integrated starlight from the SkyModelling map (S10-like units).
    """

    ecl_lon: FloatArray
    ecl_lat: FloatArray
    gal_l: FloatArray
    gal_b: FloatArray
    zodiacal: FloatArray
    isl: FloatArray


def fibre_coordinates(ra_deg: npt.ArrayLike, dec_deg: npt.ArrayLike) -> FibreCoordinates:
    """Ecliptic and galactic coordinates, zodiacal light and starlight of fibre positions.

    Parameters
    ----------
    ra_deg, dec_deg : array_like
        Fibre ICRS (J2000) positions [deg].
    """
    coords = SkyCoord(
        ra=np.asarray(ra_deg, dtype=np.float64) * u.deg,
        dec=np.asarray(dec_deg, dtype=np.float64) * u.deg,
        frame="icrs",
    )
    ecliptic = coords.transform_to(GeocentricMeanEcliptic())
    galactic = coords.galactic
    ecl_lat = np.asarray(ecliptic.lat.deg)
    gal_l = np.asarray(galactic.l.deg)
    gal_b = np.asarray(galactic.b.deg)
    return FibreCoordinates(
        ecl_lon=np.asarray(ecliptic.lon.deg),
        ecl_lat=ecl_lat,
        gal_l=gal_l,
        gal_b=gal_b,
        zodiacal=zodiacal_brightness(ecl_lat),
        isl=integrated_starlight(gal_l, gal_b),
    )


def exposure_conditions(tai_beg: npt.ArrayLike, tai_end: npt.ArrayLike) -> dict[str, FloatArray]:
    """Per-exposure conditions as columns (one entry per exposure).

    Parameters
    ----------
    tai_beg, tai_end : array_like
        Exposure start and end, TAI seconds on the MJD·86400 scale.

    Returns
    -------
    dict of str to numpy.ndarray
        ``tai_mid`` [s], ``mjd_mid`` [d], ``month`` (1–12, UTC), ``moon_*``, ``sun_*``,
        ``sun_moon_sep`` [deg], ``hours_since_sunset``, ``hours_until_sunrise`` [h],
        ``solar_flux_obs``, ``solar_flux_adj`` [sfu], ``photometric`` (1, 0 or NaN).
    """
    tai_mid = 0.5 * (np.asarray(tai_beg, dtype=np.float64) + np.asarray(tai_end, dtype=np.float64))
    eph = exposure_ephemeris(tai_mid)
    utc = eph.time.utc
    observed, adjusted = solar_flux_10cm(utc.mjd)
    return {
        "tai_mid": tai_mid,
        "mjd_mid": np.asarray(eph.time.tai.mjd),
        "month": np.array([int(s[5:7]) for s in np.atleast_1d(utc.isot)], dtype=np.float64),
        "moon_ra": eph.moon_ra,
        "moon_dec": eph.moon_dec,
        "moon_alt": eph.moon_alt,
        "moon_az": eph.moon_az,
        "moon_distance_km": eph.moon_distance_km,
        "moon_phase_angle": eph.moon_phase_angle,
        "moon_illumination": eph.moon_illumination,
        "sun_alt": eph.sun_alt,
        "sun_az": eph.sun_az,
        "sun_moon_sep": eph.sun_moon_separation,
        "sun_ra": eph.sun_ra,
        "sun_dec": eph.sun_dec,
        "hours_since_sunset": eph.hours_since_sunset,
        "hours_until_sunrise": eph.hours_until_sunrise,
        "solar_flux_obs": observed,
        "solar_flux_adj": adjusted,
        "photometric": photometric_flag(tai_mid),
    }
