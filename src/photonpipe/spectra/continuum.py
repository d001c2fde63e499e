"""Continuum fitting with asymmetric sigma clipping, masks and added points.

Functions: a cubic (or other degree) least-squares spline with knots every ``knot_spacing`` Å,
or a polynomial, Legendre or Chebyshev series of degree ``order`` (the variable scaled to
[−1, 1] over the order). Each iteration fits the unmasked pixels (weights √ivar, or equal
weights), computes the standard deviation σ of the residuals of the pixels in use, and drops
pixels more than ``low_sigma`` σ below or ``high_sigma`` σ above the fit; the iterations stop
when no pixel changes or after ``max_iterations``. Absorption lines are below the continuum, so
the low clip is usually the tighter one. Masked ranges are never used; added points
(wavelength, flux, weight) are always used, their weight multiplying the median pixel weight.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.polynomial import chebyshev, legendre, polynomial
from numpy.typing import ArrayLike, NDArray
from scipy.interpolate import LSQUnivariateSpline

from photonpipe.errors import PhotonpipeError

FUNCTIONS = ("spline", "polynomial", "legendre", "chebyshev")


# Also a ValueError, as it was before PhotonpipeError: code that catches ValueError still does.
class ContinuumError(PhotonpipeError, ValueError):
    """The continuum cannot be fitted (too few pixels, unknown function)."""


@dataclass
class ContinuumFit:
    """Result of :func:`fit_continuum`.

    Attributes
    ----------
    continuum : ndarray
        Continuum at every pixel of the input (same unit as the flux).
    used : ndarray of bool
        Pixels used in the last iteration (not masked, not clipped).
    iterations : int
        Iterations done.
    rms : float
        Standard deviation of the residuals of the used pixels (flux unit).
    """

    continuum: NDArray[np.float64]
    used: NDArray[np.bool_]
    iterations: int
    rms: float


def _fit_once(
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    w: NDArray[np.float64],
    function: str,
    order: int,
    knot_spacing: float,
    x_eval: NDArray[np.float64],
) -> NDArray[np.float64]:
    if function == "spline":
        sort = np.argsort(x, kind="stable")
        xs, ys, ws = x[sort], y[sort], w[sort]
        n_knots = int((xs[-1] - xs[0]) // knot_spacing)
        knots = np.linspace(xs[0], xs[-1], n_knots + 2)[1:-1] if n_knots > 0 else np.array([])
        # Schoenberg-Whitney: keep knots with data between them
        if knots.size:
            counts = np.histogram(xs, bins=np.concatenate([[xs[0]], knots, [xs[-1]]]))[0]
            keep = np.ones(knots.size, dtype=bool)
            for i in range(knots.size):
                if counts[i] < order + 1:
                    keep[i] = False
                    if i + 1 < counts.size:
                        counts[i + 1] += counts[i]
            knots = knots[keep]
        _, unique = np.unique(xs, return_index=True)
        xs, ys, ws = xs[unique], ys[unique], ws[unique]
        spline = LSQUnivariateSpline(xs, ys, knots, w=ws, k=order)
        return np.asarray(spline(x_eval), dtype=np.float64)
    lo, hi = x_eval.min(), x_eval.max()
    scale = (hi - lo) / 2.0 or 1.0
    t = (x - lo) / scale - 1.0
    t_eval = (x_eval - lo) / scale - 1.0
    fit, val = {
        "polynomial": (polynomial.polyfit, polynomial.polyval),
        "legendre": (legendre.legfit, legendre.legval),
        "chebyshev": (chebyshev.chebfit, chebyshev.chebval),
    }[function]
    coeffs = fit(t, y, order, w=w)
    return np.asarray(val(t_eval, coeffs), dtype=np.float64)


def fit_continuum(
    wavelength: ArrayLike,
    flux: ArrayLike,
    ivar: ArrayLike | None = None,
    function: str = "spline",
    order: int = 3,
    knot_spacing: float = 20.0,
    low_sigma: float = 2.0,
    high_sigma: float = 3.0,
    max_iterations: int = 10,
    masks: Sequence[tuple[float, float]] = (),
    added_points: Sequence[tuple[float, float, float]] = (),
    use_ivar: bool = False,
) -> ContinuumFit:
    """Fit the continuum of one spectrum (one echelle order).

    Parameters
    ----------
    wavelength, flux : array_like
        Pixel wavelengths [Å] and flux.
    ivar : array_like, optional
        Inverse variance; pixels with 0 are never used.
    function : {"spline", "polynomial", "legendre", "chebyshev"}
        Continuum function.
    order : int
        Spline degree (1-5), or polynomial/series degree.
    knot_spacing : float
        Distance between spline knots [Å].
    low_sigma, high_sigma : float
        Clip pixels more than this many σ below / above the fit.
    max_iterations : int
        Most clipping iterations.
    masks : sequence of (float, float)
        Wavelength ranges [Å] never used.
    added_points : sequence of (float, float, float)
        Extra points (wavelength [Å], flux, weight) always used.
    use_ivar : bool
        Weight pixels by √ivar (default: equal weights, as the clipping already rejects lines).

    Returns
    -------
    ContinuumFit
        The continuum at every pixel and the pixels used.

    Raises
    ------
    ContinuumError
        Unknown function, or too few usable pixels for the function.
    """
    if function not in FUNCTIONS:
        raise ContinuumError(f"unknown continuum function {function!r} (use one of {FUNCTIONS})")
    if function == "spline" and not 1 <= order <= 5:
        raise ContinuumError("spline degree must be 1 to 5")
    x = np.asarray(wavelength, dtype=np.float64)
    y = np.asarray(flux, dtype=np.float64)
    iv = np.ones_like(y) if ivar is None else np.asarray(ivar, dtype=np.float64)
    usable = (iv > 0) & np.isfinite(y)
    for start, end in masks:
        usable &= ~((x >= start) & (x <= end))
    need = order + 2
    if usable.sum() < need:
        raise ContinuumError(f"only {int(usable.sum())} usable pixels for a {function} fit")
    weight = np.sqrt(iv) if use_ivar else np.ones_like(y)
    median_weight = float(np.median(weight[usable]))
    added = np.array(added_points, dtype=np.float64).reshape(-1, 3)
    used = usable.copy()
    continuum = np.zeros_like(y)
    iterations = 0
    rms = 0.0
    for iterations in range(1, max_iterations + 1):  # noqa: B007 - reported
        xs = np.concatenate([x[used], added[:, 0]])
        ys = np.concatenate([y[used], added[:, 1]])
        ws = np.concatenate([weight[used], added[:, 2] * median_weight])
        continuum = _fit_once(xs, ys, ws, function, order, knot_spacing, x)
        residual = y - continuum
        rms = float(np.std(residual[used]))
        if rms == 0:
            break
        keep = usable & (residual > -low_sigma * rms) & (residual < high_sigma * rms)
        if keep.sum() < need or np.array_equal(keep, used):
            break
        used = keep
    return ContinuumFit(continuum, used, iterations, rms)


#: Default masks in the stellar rest frame [Å, air]: (start, end, name).
STRONG_LINE_MASKS: tuple[tuple[float, float, str], ...] = (
    (3924.0, 3944.0, "Ca II K"),
    (3958.0, 3978.0, "Ca II H + Hε"),
    (4092.0, 4112.0, "Hδ"),
    (4330.0, 4350.0, "Hγ"),
    (4851.0, 4871.0, "Hβ"),
    (5165.0, 5186.0, "Mg I b"),
    (5887.0, 5899.0, "Na I D"),
    (6547.0, 6579.0, "Hα"),
    (8493.0, 8504.0, "Ca II 8498"),
    (8535.0, 8550.0, "Ca II 8542"),
    (8655.0, 8670.0, "Ca II 8662"),
)

#: Telluric absorption bands in the observed (topocentric) frame [Å, air]: (start, end, name).
TELLURIC_MASKS: tuple[tuple[float, float, str], ...] = (
    (6275.0, 6330.0, "O2 γ band"),
    (6860.0, 6960.0, "O2 B band"),
    (7160.0, 7340.0, "H2O"),
    (7590.0, 7700.0, "O2 A band"),
    (8120.0, 8350.0, "H2O"),
)
