"""Unit-area absorption-line profiles [Å⁻¹] and their widths."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import voigt_profile

#: FWHM / σ of a Gaussian, 2·sqrt(2 ln 2).
GAUSSIAN_FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))


def gaussian(x: ArrayLike, center: float, sigma: float) -> NDArray[np.float64]:
    """Unit-area Gaussian.

    Parameters
    ----------
    x : array_like
        Wavelengths [Å].
    center : float
        Line centre [Å].
    sigma : float
        Standard deviation [Å].

    Returns
    -------
    ndarray
        Profile value [Å⁻¹]; its integral over x is 1.
    """
    z = (np.asarray(x, dtype=np.float64) - center) / sigma
    return np.asarray(np.exp(-0.5 * z * z) / (sigma * np.sqrt(2.0 * np.pi)), dtype=np.float64)


def gaussian_peak(
    x: ArrayLike, amplitude: float, center: float, sigma: float, background: float = 0.0
) -> NDArray[np.float64]:
    """Gaussian of a given peak height on a constant background (a fitting model).

    Parameters
    ----------
    x : array_like
        Positions (any unit: pixels, Å, lags).
    amplitude : float
        Height of the peak above the background [unit of the result].
    center : float
        Peak position [unit of ``x``].
    sigma : float
        Standard deviation [unit of ``x``].
    background : float
        Constant added everywhere [unit of the result].

    Returns
    -------
    ndarray
        ``amplitude · exp(−(x − center)² / 2σ²) + background``.
    """
    z = (np.asarray(x, dtype=np.float64) - center) / sigma
    return np.asarray(amplitude * np.exp(-0.5 * z**2) + background, dtype=np.float64)


def voigt(x: ArrayLike, center: float, sigma: float, gamma: float) -> NDArray[np.float64]:
    """Unit-area Voigt profile (Gaussian σ convolved with Lorentzian half-width γ).

    Parameters
    ----------
    x : array_like
        Wavelengths [Å].
    center : float
        Line centre [Å].
    sigma : float
        Gaussian standard deviation [Å].
    gamma : float
        Lorentzian half width at half maximum [Å].

    Returns
    -------
    ndarray
        Profile value [Å⁻¹]; its integral over all x is 1.
    """
    return np.asarray(
        voigt_profile(np.asarray(x, dtype=np.float64) - center, sigma, gamma), dtype=np.float64
    )


def voigt_fwhm(sigma: float, gamma: float) -> float:
    """FWHM of a Voigt profile [Å] (Olivero & Longbothum 1977, accurate to 0.02 %).

    Parameters
    ----------
    sigma : float
        Gaussian standard deviation [Å].
    gamma : float
        Lorentzian HWHM [Å].
    """
    fg = GAUSSIAN_FWHM_PER_SIGMA * sigma
    fl = 2.0 * gamma
    return float(0.5346 * fl + np.sqrt(0.2166 * fl * fl + fg * fg))
