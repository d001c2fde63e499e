"""Scattered moonlight: Krisciunas & Schaefer (1991, PASP 103, 1033) V-band model.

    B_moon = f(ρ) · I* · 10^(−0.4 k X(Z_moon)) · [1 − 10^(−0.4 k X(Z))]    [nanoLambert]

with the Moon's illuminance outside the atmosphere I* = 10^(−0.4 (3.84 + 0.026|α| + 4·10⁻⁹ α⁴))
(α the lunar phase angle in degrees, 0 = full), the scattering function
f(ρ) = 10^5.36 (1.06 + cos² ρ) + 10^(6.15 − ρ/40) (ρ the Moon–sky separation in degrees), the
airmass X(Z) = (1 − 0.96 sin² Z)^(−1/2) and the V extinction coefficient k [mag/airmass].
Surface brightness conversion (their eq. 1): V = (20.7233 − ln(B/34.08)) / 0.92104 mag/arcsec².

This is the BOSS simulator's moonlight, kept deliberately apart from the terms the sky model
fits (:mod:`photonpipe.spectra.moonlight`): the model's test recovers this code's sky with that
code, so a mistake in one of them shows.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def ks_airmass(zenith_distance_deg: npt.ArrayLike) -> FloatArray:
    """Krisciunas & Schaefer airmass X(Z) = (1 − 0.96 sin² Z)^(−1/2) (dimensionless)."""
    z = np.radians(np.asarray(zenith_distance_deg, dtype=np.float64))
    return np.asarray((1.0 - 0.96 * np.sin(z) ** 2) ** -0.5)


def moon_brightness_nl(
    phase_angle_deg: npt.ArrayLike,
    separation_deg: npt.ArrayLike,
    moon_zenith_deg: npt.ArrayLike,
    sky_zenith_deg: npt.ArrayLike,
    extinction_v: float = 0.172,
) -> FloatArray:
    """Scattered-moonlight surface brightness in V [nanoLambert]; 0 with the Moon set.

    Parameters
    ----------
    phase_angle_deg : array_like
        Lunar phase angle α (0 full, 180 new) [deg].
    separation_deg : array_like
        Angular distance Moon–sky position ρ [deg].
    moon_zenith_deg, sky_zenith_deg : array_like
        Zenith distances of the Moon and of the sky position [deg].
    extinction_v : float
        V-band extinction coefficient k [mag/airmass] (0.172 at Mauna Kea in the paper).

    Returns
    -------
    numpy.ndarray
        B_moon [nL].
    """
    alpha = np.abs(np.asarray(phase_angle_deg, dtype=np.float64))
    rho = np.asarray(separation_deg, dtype=np.float64)
    illuminance = 10.0 ** (-0.4 * (3.84 + 0.026 * alpha + 4e-9 * alpha**4))
    scattering = 10.0**5.36 * (1.06 + np.cos(np.radians(rho)) ** 2) + 10.0 ** (6.15 - rho / 40.0)
    moon_z = np.asarray(moon_zenith_deg, dtype=np.float64)
    sky_z = np.asarray(sky_zenith_deg, dtype=np.float64)
    transmitted = 10.0 ** (-0.4 * extinction_v * ks_airmass(np.minimum(moon_z, 90.0)))
    scattered = 1.0 - 10.0 ** (-0.4 * extinction_v * ks_airmass(sky_z))
    brightness = scattering * illuminance * transmitted * scattered
    return np.asarray(np.where(moon_z < 90.0, brightness, 0.0))


def nanolambert_to_v_mag(brightness_nl: npt.ArrayLike) -> FloatArray:
    """Surface brightness in nanoLambert to V [mag arcsec⁻²] (K&S 1991 eq. 1 inverted)."""
    b = np.asarray(brightness_nl, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return np.asarray((20.7233 - np.log(b / 34.08)) / 0.92104)
