"""Barycentric corrections from a real MIKE header, checked against textbook formulae."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from photonpipe.spectra.barycentric import (
    ObservationMetadataError,
    observation_from_header,
    velocity_corrections,
)
from photonpipe.stellar.readers import read_spectrum

TEMPLATES = Path(__file__).resolve().parents[2] / "src" / "photonpipe" / "stellar" / "data"


def _textbook_correction(ra_deg, dec_deg, jd, lat_deg, lst_hours):
    """Earth's orbital velocity (low-precision solar coordinates, Astronomical Almanac) and
    rotation projected on the line of sight [km/s]; accurate to ~0.05 km/s."""
    n = jd - 2451545.0
    mean_long = np.radians((280.460 + 0.9856474 * n) % 360)
    g = np.radians((357.528 + 0.9856003 * n) % 360)
    sun_long = mean_long + np.radians(1.915) * np.sin(g) + np.radians(0.020) * np.sin(2 * g)
    eps = np.radians(23.439 - 4e-7 * n)
    e = 0.016709
    v_orbit = 29.7847  # km/s, 2π AU / year
    perihelion = np.radians(282.94)  # longitude of the Sun's perigee
    # Earth's heliocentric velocity in ecliptic coordinates (Sun at λ☉ seen from Earth)
    vx = v_orbit * (np.sin(sun_long) + e * np.sin(perihelion))
    vy = -v_orbit * (np.cos(sun_long) + e * np.cos(perihelion))
    ra, dec = np.radians(ra_deg), np.radians(dec_deg)
    x, y, z = np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)
    star_y = y * np.cos(eps) + z * np.sin(eps)  # equatorial → ecliptic
    orbital = vx * x + vy * star_y
    hour_angle = np.radians(lst_hours * 15.0) - ra
    rotation = -0.4651 * np.cos(np.radians(lat_deg)) * np.cos(dec) * np.sin(hour_angle)
    return orbital + rotation


def test_hd140283_header() -> None:
    (order,) = read_spectrum(TEMPLATES / "rv_template_subgiant_hd140283.fits")
    header = order.meta["header"]
    observation = observation_from_header(header)
    assert observation.time.isot.startswith("2010-08-06T23:56:19")  # start + EXPTIME/2
    bary, helio = velocity_corrections(observation)
    assert abs(bary - helio) < 0.02
    lst = observation.time.sidereal_time("apparent", longitude=observation.location.lon).hour
    expected = _textbook_correction(235.7597083, -10.9341667, observation.time.jd, -29.01423, lst)
    assert bary == pytest.approx(expected, abs=0.1)
    # The reduction applied DOPCOR01-03 = 10 + 10 − 162 km/s (the topocentric velocity); with
    # our correction this gives the star's known radial velocity, −170.4 km/s (e.g. Gaia DR3).
    assert -142.0 + bary == pytest.approx(-170.4, abs=0.5)


def test_sexagesimal_and_date_obs() -> None:
    header = {
        "RA": "15:43:02.3", "DEC": "-10:56:03.0", "DATE-OBS": "2010-08-06T23:02:19",
        "EXPTIME": 6480.0, "SITELAT": -29.01423, "SITELONG": -70.69242, "SITEALT": 2400,
    }  # fmt: skip
    bary, _ = velocity_corrections(observation_from_header(header))
    assert bary == pytest.approx(-28.53, abs=0.02)


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        ({"DATE-OBS": "2010-01-01T00:00:00", "SITELAT": 0, "SITELONG": 0}, "coordinates"),
        ({"RA-D": 1.0, "DEC-D": 2.0, "SITELAT": 0, "SITELONG": 0}, "observation time"),
        ({"RA-D": 1.0, "DEC-D": 2.0, "DATE-OBS": "2010-01-01T00:00:00"}, "site"),
        ({"RA": "xx", "DEC": "yy", "DATE-OBS": "2010-01-01T00:00:00"}, "malformed target"),
    ],
)
def test_missing_metadata(header: dict, problem: str) -> None:
    with pytest.raises(ObservationMetadataError, match=problem):
        observation_from_header(header)
