import math

import numpy as np

from photonpipe.sky.moonlight import ks_airmass, moon_brightness_nl, nanolambert_to_v_mag


def test_krisciunas_schaefer_by_hand() -> None:
    # Full Moon (alpha = 0) 90 degrees from the sky position, both at zenith distance 60, k = 0.172,
    # evaluated term by term from K&S (1991) eqs. 3, 8, 15, 16, 21.
    illuminance = 10 ** (-0.4 * 3.84)
    scattering = 10**5.36 * (1.06 + math.cos(math.radians(90)) ** 2) + 10 ** (6.15 - 90 / 40)
    airmass = 1 / math.sqrt(1 - 0.96 * math.sin(math.radians(60)) ** 2)
    expected = (
        scattering
        * illuminance
        * 10 ** (-0.4 * 0.172 * airmass)
        * (1 - 10 ** (-0.4 * 0.172 * airmass))
    )
    assert ks_airmass(60.0) == np.float64(airmass)
    assert abs(moon_brightness_nl(0.0, 90.0, 60.0, 60.0) / expected - 1) < 1e-12
    # a full Moon brightens the sky to V ≈ 18 mag/arcsec² at such a geometry
    assert 17.0 < nanolambert_to_v_mag(expected) < 19.5


def test_moonlight_properties() -> None:
    # fainter towards new Moon, zero with the Moon below the horizon, brighter close to it
    phases = moon_brightness_nl(np.array([0.0, 60.0, 120.0]), 60.0, 40.0, 30.0)
    assert phases[0] > phases[1] > phases[2] > 0
    assert moon_brightness_nl(0.0, 60.0, 95.0, 30.0) == 0.0
    assert moon_brightness_nl(0.0, 10.0, 40.0, 30.0) > moon_brightness_nl(0.0, 60.0, 40.0, 30.0)
    # eq. 1: B = 34.08 exp(20.7233 − 0.92104 V)
    assert abs(nanolambert_to_v_mag(34.08 * math.exp(20.7233 - 0.92104 * 21.0)) - 21.0) < 1e-12
