"""Air ↔ vacuum wavelengths with the Ciddor (1996) refractive index of standard air.

Ciddor (1996, Applied Optics 35, 1566), eq. 1: for dry air at 15 °C, 101 325 Pa and 450 ppm
CO₂, with σ the vacuum wave number in µm⁻¹,

    n − 1 = 0.05792105 / (238.0185 − σ²) + 0.00167917 / (57.362 − σ²).

This is the formula IDL astrolib's ``airtovac`` and the SDSS pipelines use since 2011. Because
σ is the *vacuum* wave number, air → vacuum is solved by fixed-point iteration (three steps
reach 10⁻¹² relative). Valid for 230 nm – 1.7 µm.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

#: Range of validity of the formula [nm].
VALID_RANGE_NM = (230.0, 1700.0)


def refractive_index_air(wave_vacuum_nm: ArrayLike) -> NDArray[np.float64]:
    """Refractive index of standard dry air (Ciddor 1996, eq. 1).

    Parameters
    ----------
    wave_vacuum_nm : array_like
        Vacuum wavelength [nm].

    Returns
    -------
    numpy.ndarray
        n (dimensionless).
    """
    s2 = (1e3 / np.asarray(wave_vacuum_nm, dtype=np.float64)) ** 2  # σ² [µm⁻²]
    return np.asarray(1.0 + 0.05792105 / (238.0185 - s2) + 0.00167917 / (57.362 - s2))


def _check_range(wave_nm: NDArray[np.float64], what: str) -> None:
    bad = ~np.isfinite(wave_nm) | (wave_nm < VALID_RANGE_NM[0]) | (wave_nm > VALID_RANGE_NM[1])
    if np.any(bad):
        example = float(np.asarray(wave_nm)[bad].ravel()[0])
        raise ValueError(
            f"{what} {example!r} nm is outside {VALID_RANGE_NM[0]:g}–{VALID_RANGE_NM[1]:g} nm "
            "(wrong unit? wavelengths must be in nm)"
        )


def air_to_vacuum(wave_air_nm: ArrayLike) -> NDArray[np.float64]:
    """Vacuum wavelength of an air wavelength (Ciddor 1996).

    Parameters
    ----------
    wave_air_nm : array_like
        Wavelength in standard air [nm], 230–1700 nm.

    Returns
    -------
    numpy.ndarray
        Vacuum wavelength [nm].

    Raises
    ------
    ValueError
        A wavelength outside the formula's range (e.g. given in Å instead of nm).
    """
    air = np.asarray(wave_air_nm, dtype=np.float64)
    _check_range(air, "air wavelength")
    vacuum = air.copy()
    for _ in range(3):
        vacuum = air * refractive_index_air(vacuum)
    return vacuum


def vacuum_to_air(wave_vacuum_nm: ArrayLike) -> NDArray[np.float64]:
    """Air wavelength of a vacuum wavelength (Ciddor 1996).

    Parameters
    ----------
    wave_vacuum_nm : array_like
        Vacuum wavelength [nm], 230–1700 nm.

    Returns
    -------
    numpy.ndarray
        Wavelength in standard air [nm].
    """
    vacuum = np.asarray(wave_vacuum_nm, dtype=np.float64)
    _check_range(vacuum, "vacuum wavelength")
    return np.asarray(vacuum / refractive_index_air(vacuum))
