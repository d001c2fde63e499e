"""Observing conditions against PyEphem (an independent ephemeris) and almanac values."""

import math

import ephem  # test extra (pyproject): an independent ephemeris
import numpy as np
import pytest
from astropy.time import Time

from photonpipe.sky.conditions import (
    angular_separation_deg,
    exposure_conditions,
    exposure_ephemeris,
    fibre_coordinates,
)
from photonpipe.sky.reference import (
    integrated_starlight,
    photometric_flag,
    solar_flux_10cm,
    zodiacal_brightness,
)

# Mid-exposure times of real BOSS plates (plate list TAI_BEG + 450 s) and two fixed dates.
DATES_UTC = [
    "2010-06-12T05:03:12",
    "2012-03-21T07:40:00",
    "2013-01-05T10:20:00",
    "2011-10-28T03:10:00",
    "2014-05-01T06:00:00",
]


def _tai_seconds(isot: str) -> float:
    return float(Time(isot, scale="utc").tai.mjd * 86400.0)


def _observer(isot: str):  # type: ignore[no-untyped-def]
    observer = ephem.Observer()
    observer.lat = "32.780361"
    observer.lon = "-105.820417"
    observer.elevation = 2788.0
    observer.pressure = 0  # geometric altitudes, as in photonpipe
    observer.date = isot.replace("T", " ").replace("-", "/")
    return observer


def _angle_diff(a: float, b: float) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)


@pytest.mark.parametrize("isot", DATES_UTC)
def test_moon_and_sun_agree_with_pyephem(isot: str) -> None:
    eph = exposure_ephemeris([_tai_seconds(isot)])
    observer = _observer(isot)
    moon = ephem.Moon(observer)
    sun = ephem.Sun(observer)
    assert abs(eph.moon_alt[0] - math.degrees(moon.alt)) < 0.1
    assert _angle_diff(eph.moon_az[0], math.degrees(moon.az)) * math.cos(moon.alt) < 0.1
    assert abs(eph.sun_alt[0] - math.degrees(sun.alt)) < 0.1
    assert _angle_diff(eph.sun_az[0], math.degrees(sun.az)) * math.cos(sun.alt) < 0.1
    assert abs(eph.moon_illumination[0] - moon.moon_phase) < 0.01
    separation = math.degrees(ephem.separation(moon, sun))
    assert abs(eph.sun_moon_separation[0] - separation) < 0.1
    # Earth radii, ephem gives the topocentric distance in AU
    assert abs(eph.moon_distance_km[0] - moon.earth_distance * 1.495978707e8) < 100.0


@pytest.mark.parametrize("isot", DATES_UTC)
def test_sunset_and_sunrise_agree_with_pyephem(isot: str) -> None:
    eph = exposure_ephemeris([_tai_seconds(isot)])
    observer = _observer(isot)
    observer.horizon = "-0:50"  # centre of the Sun at -0.8333 degrees, no refraction
    sun = ephem.Sun()
    setting = observer.previous_setting(sun, use_center=True)
    rising = observer.next_rising(sun, use_center=True)
    since = (observer.date - setting) * 24.0
    until = (rising - observer.date) * 24.0
    assert abs(eph.hours_since_sunset[0] - since) < 2 / 60
    assert abs(eph.hours_until_sunrise[0] - until) < 2 / 60


def test_illumination_at_published_full_and_new_moons() -> None:
    # USNO phases of the Moon: full 2012 May 6 03:35 UT, new 2012 May 20 23:47 UT
    # (the annular eclipse), first quarter 2012 May 28 20:16 UT.
    eph = exposure_ephemeris(
        [
            _tai_seconds("2012-05-06T03:35:00"),
            _tai_seconds("2012-05-20T23:47:00"),
            _tai_seconds("2012-05-28T20:16:00"),
        ]
    )
    assert eph.moon_illumination[0] > 0.99
    assert eph.moon_illumination[1] < 0.01
    assert abs(eph.moon_illumination[2] - 0.5) < 0.02
    assert eph.moon_phase_angle[0] < 10.0
    assert eph.moon_phase_angle[1] > 170.0


def test_exposure_conditions_columns() -> None:
    tai = _tai_seconds("2012-03-21T07:40:00")
    columns = exposure_conditions([tai - 450.0, tai + 600.0], [tai + 450.0, tai + 1500.0])
    assert columns["month"].tolist() == [3.0, 3.0]
    np.testing.assert_allclose(columns["tai_mid"], [tai, tai + 1050.0])
    assert np.all(columns["solar_flux_obs"] > 50)
    assert columns["hours_since_sunset"][1] > columns["hours_since_sunset"][0]


def test_fibre_coordinates_against_known_positions() -> None:
    # Galactic north pole (ICRS 192.85948, 27.12825) and the vernal equinox (0, 0).
    coords = fibre_coordinates([192.85948, 0.0, 266.40499], [27.12825, 0.0, -28.93617])
    assert coords.gal_b[0] == pytest.approx(90.0, abs=1e-3)
    assert coords.ecl_lat[1] == pytest.approx(0.0, abs=0.01)
    # the IAU galactic centre direction (J2000 266.40499, -28.93617) is l = b = 0
    assert min(coords.gal_l[2], 360.0 - coords.gal_l[2]) < 1e-3
    assert coords.gal_b[2] == pytest.approx(0.0, abs=1e-3)
    np.testing.assert_allclose(coords.zodiacal[1], 5.34181335, rtol=1e-6)


def test_reference_lookups() -> None:
    np.testing.assert_allclose(
        zodiacal_brightness([0.0, -5.0, 2.5, 90.0]),
        [5.34181335, 4.92633898, (5.34181335 + 4.92633898) / 2, 1.66189749],
    )
    # grid points of the ISL map and the wrap at l = 360
    np.testing.assert_allclose(
        integrated_starlight([0.0, 350.0], [-80.0, 80.0]), [1.00900919, 0.91997897]
    )
    np.testing.assert_allclose(
        integrated_starlight(355.0, -80.0), integrated_starlight([350.0, 0.0], -80.0).mean()
    )
    observed, adjusted = solar_flux_10cm([54500.0 + 0.84, 40000.0])
    assert np.isfinite(observed[0])
    assert np.isnan(observed[1])
    assert adjusted[0] > 0
    # windows of MJD 55960 in the record: (…942208, …942989) not photometric, then photometric
    assert photometric_flag(4834942500.0) == 0.0
    assert photometric_flag(4834945000.0) == 1.0
    assert np.isnan(photometric_flag(4000000000.0))


def test_angular_separation() -> None:
    np.testing.assert_allclose(angular_separation_deg(0, 0, 90, 0), 90.0)
    np.testing.assert_allclose(angular_separation_deg(10, 89.9, 190, 89.9), 0.2, rtol=1e-9)


def _grid_crossings(tai_mid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The previous implementation: astropy's Sun on a ±16 h grid of 5-minute steps, linear."""
    from photonpipe.sky.conditions import SUNSET_ALTITUDE_DEG, _sun_altitude_deg

    since, until = [], []
    for t in tai_mid:
        grid = np.arange(t - 57600.0, t + 57600.0 + 300.0, 300.0)
        above = _sun_altitude_deg(grid) - SUNSET_ALTITUDE_DEG
        change = np.flatnonzero(np.signbit(above[:-1]) != np.signbit(above[1:]))
        crossing = grid[change] + 300.0 * above[change] / (above[change] - above[change + 1])
        setting, rising = crossing[above[change] > 0], crossing[above[change] <= 0]
        since.append((t - setting[setting <= t].max()) / 3600.0)
        until.append((rising[rising >= t].min() - t) / 3600.0)
    return np.array(since), np.array(until)


def test_twilight_refined_matches_the_fine_grid_and_astropy() -> None:
    from photonpipe.sky.conditions import (
        SUNSET_ALTITUDE_DEG,
        _day_crossings,
        _sun_altitude_deg,
        _sun_crossings,
        approximate_sun_altitude_deg,
    )
    from photonpipe.spectra.barycentric import offline_earth_orientation

    rng = np.random.default_rng(5)
    # night-time exposures over the BOSS years, two per night, and the fixed dates
    nights = rng.uniform(_tai_seconds("2009-12-01T00:00:00"), _tai_seconds("2020-06-30T00:00"), 6)
    days = np.floor(nights / 86400.0)
    fixed = np.array([_tai_seconds(d) for d in DATES_UTC])
    # ≈ 22:30 and 01:00 MST
    tai = np.concatenate([days * 86400.0 + 5.5 * 3600, days * 86400.0 + 8.0 * 3600.0, fixed])
    with offline_earth_orientation():
        since, until = _sun_crossings(tai)
        since_grid, until_grid = _grid_crossings(tai)
        # the Sun's altitude rises or sinks about 0.2 degrees a minute at APO's twilight:
        # 0.01 degrees is about 3 s, 1 s is about 0.003 degrees
        np.testing.assert_allclose(since * 3600.0, since_grid * 3600.0, atol=1.0)
        np.testing.assert_allclose(until * 3600.0, until_grid * 3600.0, atol=1.0)
        # and at the crossings themselves astropy's Sun is at -0.8333 degrees to 0.001 degrees
        for day in np.unique(np.floor(tai / 86400.0)).astype(int)[:6]:
            setting, rising = _day_crossings(int(day))
            altitudes = _sun_altitude_deg(np.concatenate([setting, rising]))
            np.testing.assert_allclose(altitudes, SUNSET_ALTITUDE_DEG, atol=1e-3)
    # the low-precision Sun used only to locate them (mean sidereal time, TAI for UT) is within
    # 0.2 degrees of astropy's, under a minute of twilight: well inside the ±2 minutes refined
    grid = np.linspace(tai.min(), tai.max(), 40)
    with offline_earth_orientation():
        reference = _sun_altitude_deg(grid)
    np.testing.assert_allclose(approximate_sun_altitude_deg(grid), reference, atol=0.2)
