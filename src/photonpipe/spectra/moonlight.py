"""Scattered moonlight: the terms of Krisciunas & Schaefer (1991, PASP 103, 1033).

    B_moon = I*(α) · f(ρ) · 10^(−0.4 k X(Z_moon)) · [1 − 10^(−0.4 k X(Z))]    [nanoLambert]

with the Moon's illuminance outside the atmosphere I*(α) = 10^(−0.4 (3.84 + 0.026|α| + 4·10⁻⁹ α⁴))
(α the lunar phase angle in degrees, 0 = full, their eq. 20), the scattering function
f(ρ) = 10^5.36 (1.06 + cos² ρ) + 10^(6.15 − ρ/40°) (Rayleigh and Mie parts, eq. 21; ρ the
Moon–sky separation), the airmass X(Z) = (1 − 0.96 sin² Z)^(−1/2) (eq. 3) and the extinction
coefficient k [mag/airmass]. The sky model (:mod:`photonpipe.sky.model`) fits the Rayleigh and
Mie parts per wavelength bin with these terms. The BOSS simulator's moonlight
(:mod:`photonpipe.sky.moonlight`) is a deliberately separate implementation of the same paper,
so that the model's test compares two codes.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

#: Krisciunas & Schaefer (1991) scattering-function weights [dimensionless]: Rayleigh
#: 10^5.36·(1.06 + cos² ρ) and Mie 10^(6.15 − ρ/40°) (their eq. 21).
KS_RAYLEIGH = 10.0**5.36
KS_MIE = 10.0**6.15


def moon_phase_angle_deg(illumination: npt.ArrayLike) -> FloatArray:
    """Lunar phase angle α [deg] (0 full, 180 new) from the illuminated fraction (1 + cos α)/2."""
    i = np.asarray(illumination, dtype=np.float64)
    return np.asarray(np.degrees(np.arccos(np.clip(2.0 * i - 1.0, -1.0, 1.0))))


def ks_airmass(zenith_deg: npt.ArrayLike) -> FloatArray:
    """Krisciunas & Schaefer airmass X = (1 − 0.96 sin² Z)^(−1/2), finite at the horizon.

    Parameters
    ----------
    zenith_deg : array_like
        Zenith distance Z [deg].

    Returns
    -------
    numpy.ndarray
        X [dimensionless].
    """
    z = np.asarray(zenith_deg, dtype=np.float64)
    return np.asarray((1.0 - 0.96 * np.sin(np.radians(z)) ** 2) ** -0.5)


def moon_illuminance(phase_angle_deg: npt.ArrayLike) -> FloatArray:
    """Return the Moon's illuminance outside the atmosphere I*(α) (K&S eq. 20, in their units).

    Parameters
    ----------
    phase_angle_deg : array_like
        Lunar phase angle α [deg] (0 full, 180 new).

    Returns
    -------
    numpy.ndarray
        10^(−0.4 (3.84 + 0.026|α| + 4·10⁻⁹ α⁴)) [dimensionless, relative to K&S's I*].
    """
    alpha = np.abs(np.asarray(phase_angle_deg, dtype=np.float64))
    return np.asarray(10.0 ** (-0.4 * (3.84 + 0.026 * alpha + 4e-9 * alpha**4)))


def scattering_terms(separation_deg: npt.ArrayLike) -> FloatArray:
    """Return the Rayleigh and Mie parts of the scattering function f(ρ) (K&S eq. 21).

    Parameters
    ----------
    separation_deg : array_like
        Moon–sky separation ρ [deg].

    Returns
    -------
    numpy.ndarray
        Shape ``(..., 2)``: 10^5.36 (1.06 + cos² ρ) and 10^6.15 · 10^(−ρ/40°); their sum is f(ρ).
    """
    rho = np.asarray(separation_deg, dtype=np.float64)
    return np.stack(
        [KS_RAYLEIGH * (1.06 + np.cos(np.radians(rho)) ** 2), KS_MIE * 10.0 ** (-rho / 40.0)],
        axis=-1,
    )
