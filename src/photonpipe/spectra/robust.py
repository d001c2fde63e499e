"""Robust statistics: the standard deviation from the median absolute deviation (MAD).

Every clip loop and scatter estimate of photonpipe uses these, so that the constant and the
definition live in one place. ``astropy.stats.mad_std`` computes the same for a deviation about
the median with the constant to 16 digits (1.482602218505602); photonpipe's products were made
with the five-digit value, and the residual loops here measure deviations about zero (normalised
residuals) as often as about the median, so they keep their own two-line kernel.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

#: σ of a normal distribution per median absolute deviation, 1/Φ⁻¹(3/4) to five digits.
MAD_TO_SIGMA = 1.4826


def robust_sigma(
    values: ArrayLike, *, center: float | None = None, ignore_nan: bool = False
) -> float:
    """Robust standard deviation, 1.4826 × the median absolute deviation about ``center``.

    Parameters
    ----------
    values : array_like
        The sample (any unit; the result has the same unit).
    center : float, optional
        The value deviations are measured from: the sample's median when not given, ``0.0``
        for residuals or residuals normalised by their errors.
    ignore_nan : bool
        Skip NaN values (``numpy.nanmedian``) instead of returning NaN.

    Returns
    -------
    float
        The robust standard deviation [unit of ``values``]; NaN for an empty sample.
    """
    x = np.asarray(values, dtype=np.float64)
    median = np.nanmedian if ignore_nan else np.median
    about = median(x) if center is None else center
    return float(MAD_TO_SIGMA * median(np.abs(x - about)))


def robust_sigma_along(
    values: ArrayLike, axis: int, *, center: ArrayLike | None = None
) -> NDArray[np.float64]:
    """Robust standard deviation along one axis (e.g. per pixel over a stack of frames).

    Parameters
    ----------
    values : array_like
        The samples (any unit).
    axis : int
        The axis the deviations are taken along.
    center : array_like, optional
        The values deviations are measured from, shaped like ``values`` without ``axis``
        (e.g. the median already computed), broadcastable against ``values``; the median
        along ``axis`` when not given.

    Returns
    -------
    ndarray
        1.4826 × the median absolute deviation along ``axis`` [unit of ``values``].
    """
    x = np.asarray(values, dtype=np.float64)
    about = (
        np.median(x, axis=axis, keepdims=True)
        if center is None
        else np.asarray(center, dtype=np.float64)
    )
    return np.asarray(MAD_TO_SIGMA * np.median(np.abs(x - about), axis=axis), dtype=np.float64)
