"""The sky model's Krisciunas & Schaefer terms against the simulator's separate implementation."""

from __future__ import annotations

import numpy as np

from photonpipe.sky.moonlight import moon_brightness_nl
from photonpipe.spectra.moonlight import (
    ks_airmass,
    moon_illuminance,
    moon_phase_angle_deg,
    scattering_terms,
)


def test_terms_compose_to_the_simulators_moonlight() -> None:
    rng = np.random.default_rng(7)
    n = 500
    illumination = rng.uniform(0.0, 1.0, n)
    separation = rng.uniform(5.0, 175.0, n)
    moon_z = rng.uniform(0.0, 89.0, n)
    sky_z = rng.uniform(0.0, 70.0, n)
    k = 0.172
    alpha = moon_phase_angle_deg(illumination)
    composed = (
        scattering_terms(separation).sum(axis=-1)
        * moon_illuminance(alpha)
        * 10.0 ** (-0.4 * k * ks_airmass(moon_z))
        * (1.0 - 10.0 ** (-0.4 * k * ks_airmass(sky_z)))
    )
    np.testing.assert_allclose(
        composed, moon_brightness_nl(alpha, separation, moon_z, sky_z, k), rtol=1e-12
    )


def test_phase_angle_and_airmass() -> None:
    np.testing.assert_allclose(moon_phase_angle_deg([1.0, 0.5, 0.0]), [0.0, 90.0, 180.0])
    assert ks_airmass(0.0) == 1.0
    # finite at the horizon: 1/sqrt(0.04) = 5
    assert abs(ks_airmass(90.0) - 5.0) < 1e-12
    assert scattering_terms(np.zeros(3)).shape == (3, 2)
