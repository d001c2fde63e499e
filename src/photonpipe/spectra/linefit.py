"""Fit an absorption line with a Gaussian or Voigt profile on a local linear continuum.

The model over a window around the line is

    F(λ) = (a + b·(λ − λ₀)) · (1 − W · φ(λ; λc, σ[, γ]))

where φ is a unit-area profile (:mod:`photonpipe.spectra.profiles`), so W is the equivalent
width in the units of λ, measured against the local continuum a + b·(λ − λ₀). Neighbouring
absorption is masked iteratively: after each fit, pixels away from the line whose residuals fall
below −``neighbour_sigma`` σ are masked, with a margin of one line FWHM, and the fit is repeated
until the mask stops changing.

Uncertainties come from the covariance (JᵀWJ)⁻¹ of the weighted least-squares fit, with weights
the inverse variance of the spectrum. When the spectrum's noise is unknown (``noise_known=False``)
the covariance is scaled by the reduced χ², i.e. the noise is taken from the residuals.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import wofz

from photonpipe.errors import PhotonpipeError
from photonpipe.spectra.profiles import GAUSSIAN_FWHM_PER_SIGMA, gaussian, voigt, voigt_fwhm
from photonpipe.spectra.robust import robust_sigma

PROFILES = ("gaussian", "voigt")
#: Local continuum models of :func:`fit_absorption_line`.
CONTINUA = ("linear", "constant", "fixed")


# Also a ValueError, as it was before PhotonpipeError: code that catches ValueError still does.
class LineFitError(PhotonpipeError, ValueError):
    """The line cannot be fitted (outside the spectrum, too few pixels)."""


@dataclass
class LineFit:
    """Result of :func:`fit_absorption_line`.

    Attributes
    ----------
    profile : str
        ``"gaussian"`` or ``"voigt"``.
    parameters : dict of str to float
        Best-fit values: ``ew`` [Å], ``center`` [Å], ``sigma`` [Å], ``gamma`` [Å] (Voigt only),
        ``continuum`` (level at ``reference_wavelength``) and ``slope`` [per Å].
    uncertainties : dict of str to float
        1σ uncertainties of ``parameters`` (same units).
    covariance : ndarray
        Covariance matrix in the order of ``parameter_names``.
    parameter_names : tuple of str
        Order of the covariance matrix.
    reference_wavelength : float
        λ₀ of the linear continuum [Å].
    wavelength, flux, ivar : ndarray
        The fit window [Å], its flux and inverse variance.
    mask : ndarray of bool
        True for the pixels used in the final fit.
    model : ndarray
        Best-fit model over the whole window.
    chi2 : float
        χ² of the final fit over the used pixels.
    dof : int
        Degrees of freedom.
    success : bool
        True when the optimiser converged.
    iterations : int
        Masking iterations done.
    """

    profile: str
    parameters: dict[str, float]
    uncertainties: dict[str, float]
    covariance: NDArray[np.float64]
    parameter_names: tuple[str, ...]
    reference_wavelength: float
    wavelength: NDArray[np.float64]
    flux: NDArray[np.float64]
    ivar: NDArray[np.float64]
    mask: NDArray[np.bool_]
    model: NDArray[np.float64]
    chi2: float
    dof: int
    success: bool
    iterations: int
    message: str = ""
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def ew(self) -> float:
        """Equivalent width [Å]."""
        return self.parameters["ew"]

    @property
    def ew_uncertainty(self) -> float:
        """1σ uncertainty of the equivalent width [Å]."""
        return self.uncertainties["ew"]

    @property
    def fwhm(self) -> float:
        """Full width at half maximum of the profile [Å]."""
        sigma = self.parameters["sigma"]
        if self.profile == "voigt":
            return voigt_fwhm(sigma, self.parameters["gamma"])
        return float(GAUSSIAN_FWHM_PER_SIGMA * sigma)


def _profile_values(
    profile: str, x: NDArray[np.float64], center: float, sigma: float, gamma: float
) -> NDArray[np.float64]:
    if profile == "voigt":
        return voigt(x, center, sigma, gamma)
    return gaussian(x, center, sigma)


def line_model(
    wavelength: ArrayLike,
    profile: str,
    parameters: dict[str, float],
    reference_wavelength: float,
) -> NDArray[np.float64]:
    """Evaluate the line-on-linear-continuum model.

    Parameters
    ----------
    wavelength : array_like
        Wavelengths [Å].
    profile : {"gaussian", "voigt"}
        Profile shape.
    parameters : dict
        ``ew``, ``center``, ``sigma``, ``gamma`` (Voigt), ``continuum``, ``slope``
        (see :class:`LineFit`).
    reference_wavelength : float
        λ₀ of the continuum [Å].

    Returns
    -------
    ndarray
        Model flux.
    """
    x = np.asarray(wavelength, dtype=np.float64)
    cont = parameters["continuum"] + parameters["slope"] * (x - reference_wavelength)
    phi = _profile_values(
        profile, x, parameters["center"], parameters["sigma"], parameters.get("gamma", 0.0)
    )
    return np.asarray(cont * (1.0 - parameters["ew"] * phi), dtype=np.float64)


def _names(profile: str) -> tuple[str, ...]:
    if profile == "voigt":
        return ("ew", "center", "sigma", "gamma", "continuum", "slope")
    return ("ew", "center", "sigma", "continuum", "slope")


def _unpack(profile: str, p: NDArray[np.float64]) -> dict[str, float]:
    return dict(zip(_names(profile), (float(v) for v in p), strict=True))


def _gaussian_jacobian(
    p: NDArray[np.float64], x: NDArray[np.float64], w: NDArray[np.float64], x0: float
) -> NDArray[np.float64]:
    ew, c, s, a, b = p
    dx = x - c
    g = gaussian(x, c, s)
    cont = a + b * (x - x0)
    line = 1.0 - ew * g
    jac = np.empty((x.size, 5))
    jac[:, 0] = -cont * g
    jac[:, 1] = -cont * ew * g * dx / s**2
    jac[:, 2] = -cont * ew * g * (dx**2 / s**3 - 1.0 / s)
    jac[:, 3] = line
    jac[:, 4] = line * (x - x0)
    return jac * w[:, None]


@dataclass
class _Solution:
    x: NDArray[np.float64]
    fun: NDArray[np.float64]
    jac: NDArray[np.float64]
    success: bool
    message: str


def _levenberg_marquardt(
    residuals: Callable[[NDArray[np.float64]], NDArray[np.float64]],
    jacobian: Callable[[NDArray[np.float64]], NDArray[np.float64]],
    p0: NDArray[np.float64],
    lower: NDArray[np.float64],
    upper: NDArray[np.float64],
    max_iterations: int = 200,
) -> _Solution:
    """Damped Gauss-Newton (Marquardt scaling) with parameters clipped to their bounds.

    Small problems (5-6 parameters, a few hundred pixels) are dominated by call overhead, so
    this hand-written loop is several times faster than a general-purpose trust-region solver.
    """
    p = np.clip(p0, lower, upper)
    r = residuals(p)
    cost = float(r @ r)
    damping = 1e-3
    message = "maximum iterations reached"
    success = False
    for _ in range(max_iterations):
        jac = jacobian(p)
        a = jac.T @ jac
        g = jac.T @ r
        scale = np.diag(a).copy()
        scale[scale <= 0] = 1.0
        improved = False
        while damping < 1e12:
            try:
                step = np.linalg.solve(a + damping * np.diag(scale), -g)
                # parameters at a bound that the step pushes outwards are held there, and the
                # step is solved for the others (a projected step: clipping alone can stall)
                held = ((p <= lower) & (step < 0)) | ((p >= upper) & (step > 0))
                if held.any() and not held.all():
                    keep = ~held
                    sub = a[np.ix_(keep, keep)] + damping * np.diag(scale[keep])
                    step = np.zeros_like(step)
                    step[keep] = np.linalg.solve(sub, -g[keep])
            except np.linalg.LinAlgError:
                damping *= 10.0
                continue
            trial = np.clip(p + step, lower, upper)
            r_trial = residuals(trial)
            cost_trial = float(r_trial @ r_trial)
            if np.isfinite(cost_trial) and cost_trial <= cost:
                improved = True
                break
            damping *= 10.0
        if not improved:
            success, message = True, "no further improvement"
            break
        change = cost - cost_trial
        moved = np.max(np.abs(trial - p) / (np.abs(p) + 1e-8))
        p, r, cost = trial, r_trial, cost_trial
        damping = max(damping * 0.1, 1e-9)
        if change <= 1e-9 * max(cost, 1e-300) or moved < 1e-8:
            success, message = True, "converged"
            break
    jac = jacobian(p)
    return _Solution(p, r, jac, success, message)


def _fit_free(
    residuals: Callable[[NDArray[np.float64]], NDArray[np.float64]],
    jacobian: Callable[[NDArray[np.float64]], NDArray[np.float64]],
    p0: NDArray[np.float64],
    lower: NDArray[np.float64],
    upper: NDArray[np.float64],
    free: NDArray[np.bool_],
) -> _Solution:
    """:func:`_levenberg_marquardt` over the ``free`` parameters, the others held at ``p0``.

    The returned ``x`` and ``jac`` are full-size (the Jacobian's fixed columns are kept).
    """
    if free.all():
        return _levenberg_marquardt(residuals, jacobian, p0, lower, upper)
    base = p0.copy()

    def full(q: NDArray[np.float64]) -> NDArray[np.float64]:
        p = base.copy()
        p[free] = q
        return p

    solution = _levenberg_marquardt(
        lambda q: residuals(full(q)),
        lambda q: jacobian(full(q))[:, free],
        p0[free],
        lower[free],
        upper[free],
    )
    p = full(solution.x)
    return _Solution(p, solution.fun, jacobian(p), solution.success, solution.message)


def _voigt_jacobian(
    p: NDArray[np.float64], x: NDArray[np.float64], w: NDArray[np.float64], x0: float
) -> NDArray[np.float64]:
    """Analytic Jacobian of the Voigt model through the Faddeeva function w(z).

    V = Re w(z) / (σ√(2π)) with z = (λ − λc + iγ)/(σ√2), and w'(z) = −2 z w(z) + 2i/√π.
    """
    ew, c, s, g, a, b = p
    root2s = s * np.sqrt(2.0)
    z = ((x - c) + 1j * g) / root2s
    wz = wofz(z)
    norm = 1.0 / (s * np.sqrt(2.0 * np.pi))
    v = wz.real * norm
    dw = -2.0 * z * wz + 2j / np.sqrt(np.pi)
    dv_dc = (dw * (-1.0 / root2s)).real * norm
    dv_dg = (dw * (1j / root2s)).real * norm
    dv_ds = (dw * (-z / s)).real * norm - v / s
    cont = a + b * (x - x0)
    line = 1.0 - ew * v
    jac = np.empty((x.size, 6))
    jac[:, 0] = -cont * v
    jac[:, 1] = -cont * ew * dv_dc
    jac[:, 2] = -cont * ew * dv_ds
    jac[:, 3] = -cont * ew * dv_dg
    jac[:, 4] = line
    jac[:, 5] = line * (x - x0)
    return jac * w[:, None]


def _long_runs(flags: NDArray[np.bool_], length: int) -> NDArray[np.bool_]:
    """Keep only the runs of at least ``length`` adjacent True values."""
    out = np.zeros_like(flags)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], flags.astype(np.int8), [0]])))
    for start, end in zip(edges[::2], edges[1::2], strict=True):
        if end - start >= length:
            out[start:end] = True
    return out


def _estimate_fwhm(x: NDArray[np.float64], depth: NDArray[np.float64], center: float) -> float:
    i = int(np.argmin(np.abs(x - center)))
    peak = depth[max(i - 1, 0) : i + 2].max()
    if peak <= 0:
        return float(4 * np.median(np.diff(x)))
    half = peak / 2.0
    lo = i
    while lo > 0 and depth[lo] > half:
        lo -= 1
    hi = i
    while hi < x.size - 1 and depth[hi] > half:
        hi += 1
    return float(max(x[hi] - x[lo], 2 * np.median(np.diff(x))))


def fit_absorption_line(
    wavelength: ArrayLike,
    flux: ArrayLike,
    ivar: ArrayLike,
    center: float,
    profile: str = "gaussian",
    window: float = 1.5,
    fwhm_guess: float | None = None,
    max_center_shift: float = 0.15,
    mask_neighbours: bool = True,
    neighbour_sigma: float = 3.0,
    max_iterations: int = 5,
    noise_known: bool = True,
    exclude: list[tuple[float, float]] | None = None,
    continuum: str = "linear",
    central_weighting: bool = False,
    mask_margin: float = 0.5,
    robust_masking: bool = False,
    fwhm_bounds: tuple[float, float] | None = None,
    neighbour_pixels: int = 1,
    max_gamma: float | None = None,
) -> LineFit:
    """Fit one absorption line.

    Parameters
    ----------
    wavelength, flux, ivar : array_like
        Spectrum [Å], flux (normalised or not) and inverse variance (0 = unused pixel).
    center : float
        Expected line centre [Å].
    profile : {"gaussian", "voigt"}
        Profile shape.
    window : float
        Half-width of the fit window around ``center`` [Å].
    fwhm_guess : float, optional
        Starting FWHM [Å]; default estimated from the data.
    max_center_shift : float
        Largest allowed distance of the fitted centre from ``center`` [Å].
    mask_neighbours : bool
        Iteratively mask neighbouring absorption.
    neighbour_sigma : float
        Residual threshold for masking [σ].
    max_iterations : int
        Most masking iterations.
    noise_known : bool
        ``ivar`` is a real noise estimate; if False, uncertainties are scaled by the reduced χ².
    exclude : list of (float, float), optional
        Wavelength ranges [Å] never used in the fit.
    continuum : {"linear", "constant", "fixed"}
        Local continuum: a + b·(λ − λ₀) fitted, a fitted (b = 0), or fixed at 1 (a
        continuum-normalised spectrum).
    central_weighting : bool
        Multiply the pixel weights by (1 + exp(−(λ − λc)²/(4σ₀²)))², σ₀ the starting Gaussian
        σ: up to 4× the weight at the line centre, as SMH does, so that the core, not the wings
        shared with neighbours, sets the profile.
    mask_margin : float
        Half-width of the mask around each pixel of a neighbour [FWHM of the line].
    robust_masking : bool
        Judge neighbours against the robust spread of the residuals (1.4826 × their median
        absolute value) instead of √(reduced χ²) when the noise is not known: unmasked
        neighbours then do not hide themselves by inflating the noise.
    neighbour_pixels : int
        Least number of adjacent pixels below −``neighbour_sigma`` that make a neighbour
        (1: any pixel; 3 ignores single noise excursions, whose masking would bias the
        continuum up).
    max_gamma : float, optional
        Largest Lorentzian half width γ of a Voigt profile [Å] (default: the window).
    fwhm_bounds : (float, float), optional
        Allowed range of the Gaussian FWHM [Å] (the Gaussian part for a Voigt), e.g. around
        the instrumental resolution; it also sets the starting width.

    Returns
    -------
    LineFit
        The fit.

    Raises
    ------
    LineFitError
        Fewer than 10 usable pixels in the window, or an unknown profile.
    """
    if profile not in PROFILES:
        raise LineFitError(f"unknown profile {profile!r} (use one of {PROFILES})")
    if continuum not in CONTINUA:
        raise LineFitError(f"unknown continuum {continuum!r} (use one of {CONTINUA})")
    wave_all = np.asarray(wavelength, dtype=np.float64)
    lo, hi = np.searchsorted(wave_all, [center - window, center + window])
    x = wave_all[lo:hi]
    y = np.asarray(flux, dtype=np.float64)[lo:hi]
    iv = np.asarray(ivar, dtype=np.float64)[lo:hi]
    usable = (iv > 0) & np.isfinite(y)
    for start, end in exclude or []:
        usable &= ~((x >= start) & (x <= end))
    core = np.abs(x - center) < max(max_center_shift, 0.05)
    if usable.sum() < 10 or not np.any(usable & core):
        raise LineFitError(f"line at {center:.3f} Å: fewer than 10 usable pixels in the window")
    x0 = float(center)
    cont0 = float(np.percentile(y[usable], 90))
    if cont0 <= 0:
        raise LineFitError(f"line at {center:.3f} Å: non-positive continuum")
    depth = 1.0 - np.where(usable, y, cont0) / cont0
    # Start from the deepest usable pixel near the expected centre, so that the width estimate
    # does not wander into a neighbour.
    near = np.flatnonzero(usable & (np.abs(x - center) <= max_center_shift))
    start_center = float(x[near[np.argmax(depth[near])]]) if near.size else float(center)
    fwhm0 = fwhm_guess if fwhm_guess else _estimate_fwhm(x, depth, start_center)
    if fwhm_bounds is not None:
        fwhm0 = float(np.clip(fwhm0, fwhm_bounds[0], fwhm_bounds[1]))
    pix = float(np.median(np.diff(x)))
    sigma0 = float(np.clip(fwhm0 / GAUSSIAN_FWHM_PER_SIGMA, 0.5 * pix, window / 3))
    peak = float(np.clip(depth[np.argmin(np.abs(x - start_center))], 0.01, 0.99))
    ew0 = peak * sigma0 * np.sqrt(2 * np.pi)
    names = _names(profile)
    if profile == "voigt":
        p0 = np.array([ew0, start_center, sigma0, 0.2 * sigma0, cont0, 0.0])
        lower = [0.0, center - max_center_shift, 0.25 * pix, 0.0, 0.0, -np.inf]
        gamma_top = window if max_gamma is None else max(float(max_gamma), 1e-9)
        p0[3] = min(p0[3], 0.5 * gamma_top)
        upper = [np.inf, center + max_center_shift, window, gamma_top, np.inf, np.inf]
    else:
        p0 = np.array([ew0, start_center, sigma0, cont0, 0.0])
        lower = [0.0, center - max_center_shift, 0.25 * pix, 0.0, -np.inf]
        upper = [np.inf, center + max_center_shift, window, np.inf, np.inf]
    lo_b, hi_b = np.array(lower, dtype=np.float64), np.array(upper, dtype=np.float64)
    if fwhm_bounds is not None:
        lo_b[2] = max(fwhm_bounds[0] / GAUSSIAN_FWHM_PER_SIGMA, 0.25 * pix)
        hi_b[2] = max(fwhm_bounds[1] / GAUSSIAN_FWHM_PER_SIGMA, lo_b[2] * (1 + 1e-9))
        p0[2] = float(np.clip(p0[2], lo_b[2], hi_b[2]))
    p0 = np.clip(p0, lo_b + 1e-12, hi_b - 1e-12)
    # parameters held fixed (continuum level and/or slope)
    free = np.ones(len(names), dtype=bool)
    if continuum in ("constant", "fixed"):
        free[names.index("slope")] = False
        p0[names.index("slope")] = 0.0
    if continuum == "fixed":
        free[names.index("continuum")] = False
        p0[names.index("continuum")] = 1.0
    weight_all = iv.copy()
    if central_weighting:
        weight_all = weight_all * (1.0 + np.exp(-((x - start_center) ** 2) / (4 * sigma0**2))) ** 2
    mask = usable.copy()
    iterations = 0
    result = None
    while True:
        iterations += 1
        xs, ys, ws = x[mask], y[mask], np.sqrt(weight_all[mask])

        def residuals(
            p: NDArray[np.float64],
            xs: NDArray[np.float64] = xs,
            ys: NDArray[np.float64] = ys,
            ws: NDArray[np.float64] = ws,
        ) -> NDArray[np.float64]:
            return (line_model(xs, profile, _unpack(profile, p), x0) - ys) * ws

        if profile == "gaussian":

            def jacobian(
                p: NDArray[np.float64],
                xs: NDArray[np.float64] = xs,
                ws: NDArray[np.float64] = ws,
            ) -> NDArray[np.float64]:
                return _gaussian_jacobian(p, xs, ws, x0)

            result = _fit_free(residuals, jacobian, p0, lo_b, hi_b, free)
        else:

            def voigt_jacobian(
                p: NDArray[np.float64],
                xs: NDArray[np.float64] = xs,
                ws: NDArray[np.float64] = ws,
            ) -> NDArray[np.float64]:
                return _voigt_jacobian(p, xs, ws, x0)

            result = _fit_free(residuals, voigt_jacobian, p0, lo_b, hi_b, free)
        p0 = result.x
        if not mask_neighbours or iterations >= max_iterations:
            break
        params = _unpack(profile, result.x)
        model = line_model(x, profile, params, x0)
        fwhm = (
            voigt_fwhm(params["sigma"], params["gamma"])
            if profile == "voigt"
            else GAUSSIAN_FWHM_PER_SIGMA * params["sigma"]
        )
        scale = 1.0
        if not noise_known:
            if robust_masking:
                normalised = (y - model)[mask] * np.sqrt(iv[mask])
                scale = robust_sigma(normalised, center=0.0)
            else:
                chi2_nu = float(np.sum(result.fun**2)) / max(int(mask.sum()) - int(free.sum()), 1)
                scale = np.sqrt(chi2_nu)
            scale = max(scale, 1e-300)
        pulls = (y - model) * np.sqrt(iv) / scale
        # A runaway width must not swallow a neighbour: judge "far" with at most 2× the
        # starting width.
        far = np.abs(x - params["center"]) > 1.5 * min(fwhm, 2.0 * fwhm0)
        bad = usable & far & (pulls < -neighbour_sigma)
        if neighbour_pixels > 1:
            bad = _long_runs(bad, neighbour_pixels)
        new_mask = usable.copy()
        for xb in x[bad]:
            new_mask &= np.abs(x - xb) > mask_margin * fwhm
        new_mask |= usable & ~far  # never mask the line itself
        if np.array_equal(new_mask, mask) or new_mask.sum() < int(free.sum()) + 5:
            break
        mask = new_mask
    if result is None:  # pragma: no cover - the loop runs at least once
        raise LineFitError("no fit was made")
    params = _unpack(profile, result.x)
    jac = result.jac
    dof = max(int(mask.sum()) - int(free.sum()), 1)
    chi2 = float(np.sum(result.fun**2))
    # covariance of the free parameters (those held fixed get 0); with central weighting the
    # weights are not the inverse variance and the χ² is not one of the noise, so the
    # uncertainties come from the sandwich (JᵀWJ)⁻¹ JᵀW²V J (JᵀWJ)⁻¹ with V = 1/ivar
    covariance = np.zeros((len(names), len(names)))
    jf = jac[:, free]
    try:
        inverse = np.asarray(np.linalg.pinv(jf.T @ jf), dtype=np.float64)
        if central_weighting:
            boost = np.sqrt(weight_all[mask] / np.where(iv[mask] > 0, iv[mask], 1.0))
            meat = (jf * boost[:, None]).T @ (jf * boost[:, None])
            inverse = inverse @ meat @ inverse
        covariance[np.ix_(free, free)] = inverse
    except np.linalg.LinAlgError:
        covariance[:] = np.nan
    if not noise_known:
        if central_weighting:
            residual = (y - line_model(x, profile, params, x0))[mask]
            covariance = covariance * float(np.sum(residual**2 * iv[mask])) / dof
        else:
            covariance = covariance * chi2 / dof
    errors = np.sqrt(np.clip(np.diag(covariance), 0.0, None))
    return LineFit(
        profile=profile,
        parameters=params,
        uncertainties=dict(zip(names, (float(e) for e in errors), strict=True)),
        covariance=covariance,
        parameter_names=names,
        reference_wavelength=x0,
        wavelength=x,
        flux=y,
        ivar=iv,
        mask=mask,
        model=line_model(x, profile, params, x0),
        chi2=chi2,
        dof=dof,
        success=bool(result.success),
        iterations=iterations,
        message=str(result.message),
    )


def fixed_line_ew_uncertainty(
    wavelength: ArrayLike,
    flux: ArrayLike,
    ivar: ArrayLike,
    center: float,
    fwhm: float,
    window: float = 1.5,
    noise_known: bool = True,
) -> tuple[float, float]:
    """Fit only the equivalent width (and continuum) of a line of fixed position and width.

    Used for upper limits: the EW is linear in the model once centre and width are fixed, so
    its uncertainty is the noise-limited one.

    Parameters
    ----------
    wavelength, flux, ivar : array_like
        Spectrum [Å], flux and inverse variance.
    center : float
        Line centre [Å].
    fwhm : float
        Gaussian FWHM [Å].
    window : float
        Half-width of the window [Å].
    noise_known : bool
        As in :func:`fit_absorption_line`.

    Returns
    -------
    ew, ew_uncertainty : float
        Best-fit EW (may be negative) and its 1σ uncertainty [Å].
    """
    wave_all = np.asarray(wavelength, dtype=np.float64)
    lo, hi = np.searchsorted(wave_all, [center - window, center + window])
    x = wave_all[lo:hi]
    y = np.asarray(flux, dtype=np.float64)[lo:hi]
    iv = np.asarray(ivar, dtype=np.float64)[lo:hi]
    use = (iv > 0) & np.isfinite(y)
    if use.sum() < 5:
        raise LineFitError(f"line at {center:.3f} Å: fewer than 5 usable pixels")
    x, y, w = x[use], y[use], np.sqrt(iv[use])
    g = gaussian(x, center, fwhm / GAUSSIAN_FWHM_PER_SIGMA)
    cont = float(np.percentile(y, 90))
    # Linearised around the continuum level: y ≈ a + b·dx − (a·W)·g
    design = np.column_stack([np.ones_like(x), x - center, -cont * g]) * w[:, None]
    coef, *_ = np.linalg.lstsq(design, y * w, rcond=None)
    cov = np.linalg.pinv(design.T @ design)
    if not noise_known:
        resid = design @ coef - y * w
        cov = cov * float(resid @ resid) / max(x.size - 3, 1)
    return float(coef[2]), float(np.sqrt(cov[2, 2]))
