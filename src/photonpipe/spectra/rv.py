"""Precise radial velocities of echelle spectra against a template.

Two steps, as precise RV pipelines do:

1. **Coarse:** each order is cross-correlated with the template by FFT on a grid uniform in ln λ
   (:func:`photonpipe.spectra.xcorr.cross_correlate`), the CCFs of all orders are summed on one
   velocity grid, and the peak of the sum gives a first velocity good to a fraction of a pixel.
2. **Fine:** each order is cut into blocks; in every block the template, shifted by a Doppler
   factor and multiplied by a straight line in ln λ (the ratio of the two spectra's continua and
   blaze), is fitted to the observed pixels by weighted least squares (Gauss–Newton in
   s = ln(1 + z) and the two line coefficients). The template is an interpolating quintic
   B-spline in ln λ, so the observed pixels are never resampled and their noise stays
   independent. (A cubic spline through a template sampled like the data, 2.4 pixels per
   resolution element, left interpolation errors of ~5 m/s that are the same in every block, so
   the block scatter could not see them; the quintic spline brings them below the photon noise.)
   In each block the pixel furthest from the fit is dropped, with its neighbours, while it is
   more than 5 robust σ away (at most four times: cosmic rays). A template stacked from
   observations can bring its own noise: with ``template_noise=True`` its variance is added to
   every pixel's.

The block velocities are combined with inverse-variance weights after iteratively rejecting
outlying blocks (5 σ, with σ scaled by the robust spread of the normalised residuals). The
reported uncertainty comes from the scatter of the blocks: the formal uncertainty of the mean
times the robust spread (1.4826 × the weighted median absolute deviation, weighted like the
mean, at least 1) of the blocks' residuals about the mean in units of their own errors. A plain
weighted standard deviation of the block velocities is not used: when the template is noisy,
blocks with few lines fit its noise, and the resulting heavy tail of block velocities inflated
it to 1.5–2× the actual errors (simulated NRES frames, pull widths 0.6–0.65) although those
blocks weigh little in the mean. The median is weighted for the same reason: on full-size
simulated frames the faint blue orders' blocks scatter 2–3× their errors, the bright orders'
1.0–1.2×, and an unweighted median let the faint ones set the scale (pull width 0.67 where the
weighted one gives 0.85 on the same frames). The formal uncertainty is kept alongside.

Velocities are ``c · z`` with ``1 + z = λ_observed / λ_template``; they combine with a
barycentric correction (also ``c · z_b``, as astropy's ``radial_velocity_correction`` returns)
relativistically: ``RV = c · ((1 + z)(1 + z_b) − 1)`` (:func:`barycentric_velocity`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy.interpolate import make_interp_spline

from photonpipe.errors import PhotonpipeError
from photonpipe.spectra.robust import MAD_TO_SIGMA, robust_sigma
from photonpipe.spectra.spectrum import C_KMS, Spectrum
from photonpipe.spectra.xcorr import CrossCorrelationError, cross_correlate

#: Strong telluric O₂ and H₂O absorption [Å, vacuum], masked by default: O₂ γ, O₂ B, H₂O,
#: O₂ A, H₂O (band limits rounded outwards from the HITRAN-based transmission of the standard
#: atmosphere at airmass 1–2).
TELLURIC_BANDS: tuple[tuple[float, float], ...] = (
    (6276.0, 6320.0),
    (6865.0, 6960.0),
    (7160.0, 7345.0),
    (7590.0, 7710.0),
    (8120.0, 8360.0),
    (8900.0, 9800.0),
)


#: Pixels of a block further than this from the fitted template are dropped [robust σ].
PIXEL_CLIP = 5.0
#: Most pixels (with their neighbours) dropped from one block.
PIXEL_REJECTIONS = 4


# Also a ValueError, as it was before PhotonpipeError: code that catches ValueError still does.
class RadialVelocityError(PhotonpipeError, ValueError):
    """No velocity can be measured (no overlap with the template, nothing left after masks)."""


@dataclass(frozen=True)
class BlockVelocity:
    """The fit of one block of one order.

    Attributes
    ----------
    order : int
        Index of the order in the input list.
    block : int
        Block number within the order (0 = bluest).
    wavelength : float
        Mean wavelength of the block's pixels [Å].
    velocity : float
        ``c · z`` of the block [km/s].
    uncertainty : float
        Formal 1σ uncertainty from the fit [km/s], scaled by √(reduced χ²) when that exceeds 1.
    n_pixels : int
        Pixels fitted.
    chi2_reduced : float
        χ² per degree of freedom at the solution.
    used : bool
        Whether the block entered the combined velocity (False: rejected as an outlier).
    """

    order: int
    block: int
    wavelength: float
    velocity: float
    uncertainty: float
    n_pixels: int
    chi2_reduced: float
    used: bool = True


@dataclass
class RadialVelocity:
    """Result of :func:`measure_velocity`.

    Attributes
    ----------
    velocity : float
        Combined ``c · z`` [km/s].
    uncertainty : float
        1σ uncertainty from the scatter of the used blocks: ``formal_uncertainty`` times the
        robust (weighted-median) spread of their normalised residuals about the mean (at least
        1) [km/s].
    formal_uncertainty : float
        1σ uncertainty from the block fits alone, ``(Σ 1/σᵢ²)^(-1/2)`` [km/s].
    coarse_velocity : float
        Velocity of the peak of the summed CCF [km/s].
    blocks : list of BlockVelocity
        Every fitted block, with ``used`` telling whether it was kept.
    ccf_velocity, ccf : ndarray
        The summed coarse CCF [km/s, dimensionless (mean correlation coefficient)].
    """

    velocity: float
    uncertainty: float
    formal_uncertainty: float
    coarse_velocity: float
    blocks: list[BlockVelocity] = field(default_factory=list)
    ccf_velocity: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    ccf: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))

    @property
    def n_used(self) -> int:
        """Number of blocks in the combined velocity."""
        return sum(b.used for b in self.blocks)


def barycentric_velocity(velocity_kms: float, barycentric_correction_kms: float) -> float:
    """Combine a measured ``c · z`` with a barycentric correction ``c · z_b`` [km/s].

    Returns ``c · ((1 + z)(1 + z_b) − 1)``, the barycentric radial velocity [km/s].
    """
    z = velocity_kms / C_KMS
    z_bary = barycentric_correction_kms / C_KMS
    return C_KMS * (z + z_bary + z * z_bary)  # (1 + z)(1 + z_b) − 1 without cancellation


class Template:
    """A template spectrum as a quintic spline in ln λ, with the points it can be trusted at.

    Parameters
    ----------
    spectrum : Spectrum
        High signal-to-noise template at rest (continuum-normalised or not; the fit scales it).
        Pixels with ``ivar == 0`` are gaps: observed pixels that map into them are not fitted.
    noisy : bool
        Whether ``spectrum.ivar`` is the template's own noise (a template stacked from observed
        spectra): its variance, interpolated linearly, is then returned by :meth:`variance` and
        added to the observed pixels' variance in the fit. False for a noiseless (synthetic)
        template, whose ``ivar`` only marks the usable pixels.
    """

    def __init__(self, spectrum: Spectrum, noisy: bool = False) -> None:
        good = (spectrum.ivar > 0) & np.isfinite(spectrum.flux)
        if good.sum() < 10:
            raise RadialVelocityError("template has fewer than 10 usable pixels")
        loglam = np.log(spectrum.wavelength)
        if np.any(np.diff(loglam) <= 0):
            raise RadialVelocityError("template wavelengths must increase")
        self.spectrum = spectrum
        self._spline = make_interp_spline(loglam[good], spectrum.flux[good], k=5)
        # the spline bridges gaps (runs of bad pixels, or jumps in wavelength such as between
        # concatenated orders): points there are not trusted
        trust_x = loglam
        trust = good.astype(np.float64)
        steps = np.diff(loglam)
        jumps = np.flatnonzero(steps > 3.0 * np.median(steps))
        if len(jumps):
            middle = 0.5 * (loglam[jumps] + loglam[jumps + 1])
            trust_x = np.insert(trust_x, jumps + 1, middle)
            trust = np.insert(trust, jumps + 1, 0.0)
        self._trust_x = trust_x
        self._trust = trust
        self.noisy = noisy
        self._loglam = loglam
        self._variance = np.where(good, 1.0 / np.where(good, spectrum.ivar, 1.0), 0.0)

    def variance(self, loglam: NDArray[np.float64]) -> NDArray[np.float64]:
        """Variance of the template value at ``loglam`` (0 for a noiseless template)."""
        if not self.noisy:
            return np.zeros_like(loglam)
        return np.interp(loglam, self._loglam, self._variance)

    def __call__(
        self, loglam: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.bool_]]:
        """Template value, its derivative d/d(ln λ), and whether it is trusted, at ``loglam``."""
        value = self._spline(loglam)
        derivative = self._spline(loglam, 1)
        trusted = np.interp(loglam, self._trust_x, self._trust, left=0.0, right=0.0) > 0.999
        trusted &= np.isfinite(value)
        return value, derivative, trusted


def _mask(
    spectrum: Spectrum, masks: Sequence[tuple[float, float]], edge_fraction: float
) -> NDArray[np.bool_]:
    usable = (spectrum.ivar > 0) & np.isfinite(spectrum.flux)
    n = len(spectrum)
    edge = round(edge_fraction * n)
    if edge:
        usable[:edge] = False
        usable[n - edge :] = False
    for lo, hi in masks:
        usable &= ~((spectrum.wavelength >= lo) & (spectrum.wavelength <= hi))
    return usable


def _per_order(
    orders: Sequence[Spectrum], template: Spectrum | Sequence[Spectrum]
) -> list[Spectrum]:
    """One template per order: the same for all, or a sequence matched to the orders."""
    if isinstance(template, Spectrum):
        return [template] * len(orders)
    templates = list(template)
    if len(templates) != len(orders):
        raise RadialVelocityError(f"{len(templates)} per-order templates for {len(orders)} orders")
    return templates


def coarse_velocity(
    orders: Sequence[Spectrum],
    template: Spectrum | Sequence[Spectrum],
    max_velocity: float = 400.0,
    masks: Sequence[tuple[float, float]] = TELLURIC_BANDS,
) -> tuple[float, NDArray[np.float64], NDArray[np.float64]]:
    """Velocity of the peak of the CCFs of all orders summed [km/s].

    ``template`` is one spectrum for all orders, or one per order (an echelle ZERO, whose
    orders overlap and so cannot be one spectrum).

    Returns
    -------
    velocity : float
        Peak of the summed CCF (parabola through the three highest points) [km/s].
    ccf_velocity, ccf : ndarray
        The summed CCF on a common velocity grid, as the mean of the orders' CCFs.

    Raises
    ------
    RadialVelocityError
        No order could be correlated.
    """
    ccfs = []
    steps = []
    for order, order_template in zip(orders, _per_order(orders, template), strict=True):
        # masked pixels get ivar 0: cross_correlate interpolates over them
        usable = _mask(order, masks, 0.0)
        if usable.sum() < 50:
            continue
        try:
            result = cross_correlate(
                Spectrum(order.wavelength, order.flux, np.where(usable, order.ivar, 0.0)),
                order_template,
                max_velocity=max_velocity,
            )
        except CrossCorrelationError:
            continue
        ccfs.append((result.ccf_velocity, result.ccf))
        steps.append(result.step_kms)
    if not ccfs:
        raise RadialVelocityError("no order could be cross-correlated with the template")
    step = float(np.min(steps))
    grid = np.arange(-max_velocity, max_velocity + step / 2, step)
    total = np.zeros_like(grid)
    for velocity, ccf in ccfs:
        total += np.interp(grid, velocity, ccf, left=0.0, right=0.0)
    total /= len(ccfs)
    peak = int(np.argmax(total))
    if peak in (0, len(grid) - 1):
        raise RadialVelocityError(f"summed CCF peaks at the edge of ±{max_velocity} km/s")
    y0, y1, y2 = total[peak - 1 : peak + 2]
    denominator = y0 - 2 * y1 + y2
    offset = 0.5 * (y0 - y2) / denominator if denominator < 0 else 0.0
    return float(grid[peak] + offset * step), grid, total


def _effective_weight(
    weight: NDArray[np.float64], template_variance: NDArray[np.float64], scale: NDArray[np.float64]
) -> NDArray[np.float64]:
    """1 / (σ_observed² + scale² σ_template²): the template's noise enters every residual."""
    if not np.any(template_variance):
        return weight
    return np.asarray(1.0 / (1.0 / weight + scale**2 * template_variance))


def _gauss_newton(
    loglam: NDArray[np.float64],
    flux: NDArray[np.float64],
    weight: NDArray[np.float64],
    u: NDArray[np.float64],
    template: Template,
    s: float,
    line: tuple[float, float] | None,
    iterations: int,
) -> tuple[float, float, float] | None:
    """Iterate (s, a, b) of ``flux ≈ (a + b·u) · T(ln λ − s)`` over pixels with weight > 0."""
    a, b = line if line is not None else (1.0, 0.0)
    for iteration in range(iterations):
        value, derivative, trusted = template(loglam - s)
        keep = trusted & (weight > 0)
        if int(keep.sum()) < 10:
            return None
        t, d, f, uu = value[keep], derivative[keep], flux[keep], u[keep]
        w = _effective_weight(weight[keep], template.variance(loglam[keep] - s), a + b * uu)
        if iteration == 0 and line is None:
            # linear start for the continuum line at the coarse velocity
            design = np.stack([t, uu * t], axis=1)
            normal = design.T @ (design * w[:, None])
            try:
                a, b = np.linalg.solve(normal, design.T @ (w * f))
            except np.linalg.LinAlgError:
                return None
        model_line = a + b * uu
        residual = f - model_line * t
        jacobian = np.stack([-model_line * d, t, uu * t], axis=1)
        normal = jacobian.T @ (jacobian * w[:, None])
        try:
            step = np.linalg.solve(normal, jacobian.T @ (w * residual))
        except np.linalg.LinAlgError:
            return None
        s, a, b = s + step[0], a + step[1], b + step[2]
        if abs(step[0]) < 1e-13:  # 0.03 mm/s
            break
    return s, a, b


def _fit_block(
    loglam: NDArray[np.float64],
    flux: NDArray[np.float64],
    weight: NDArray[np.float64],
    template: Template,
    s0: float,
    iterations: int = 12,
    clip: float = PIXEL_CLIP,
) -> tuple[float, float, float, int] | None:
    """Gauss–Newton fit of (s, a, b) in ``flux ≈ (a + b·u) · T(ln λ − s)``.

    The pixel with the largest residual, when it exceeds ``clip`` times the robust spread of the
    normalised residuals (at least 1), is dropped with its neighbours and the block is fitted
    again, up to :data:`PIXEL_REJECTIONS` times: a cosmic ray left in the spectrum or in the
    template must not drag a block. Only a few pixels go, so a block that does not match the
    template over many pixels (unmasked telluric lines) keeps its large χ² and weight of
    √χ²-inflated uncertainty.

    Returns (s, σ_s, reduced χ², pixels) or None when the block cannot be fitted.
    """
    centre = 0.5 * (loglam[0] + loglam[-1])
    half = max(0.5 * (loglam[-1] - loglam[0]), 1e-12)
    u = (loglam - centre) / half
    weight = np.asarray(weight, dtype=np.float64).copy()
    fit = _gauss_newton(loglam, flux, weight, u, template, s0, None, iterations)
    for _ in range(PIXEL_REJECTIONS):
        if fit is None:
            return None
        s, a, b = fit
        value, _, trusted = template(loglam - s)
        keep = trusted & (weight > 0)
        w_all = np.zeros_like(weight)
        w_all[keep] = _effective_weight(
            weight[keep], template.variance(loglam[keep] - s), a + b * u[keep]
        )
        normalised = np.where(keep, (flux - (a + b * u) * value) * np.sqrt(w_all), 0.0)
        spread = max(robust_sigma(normalised[keep], center=0.0), 1.0)
        worst = int(np.argmax(np.abs(normalised)))
        if abs(normalised[worst]) <= clip * spread:
            break
        weight[max(worst - 1, 0) : worst + 2] = 0.0
        fit = _gauss_newton(loglam, flux, weight, u, template, s, (a, b), iterations)
    if fit is None:
        return None
    s, a, b = fit
    value, derivative, trusted = template(loglam - s)
    keep = trusted & (weight > 0)
    n = int(keep.sum())
    if n < 10:
        return None
    t, d, f, uu = value[keep], derivative[keep], flux[keep], u[keep]
    line = a + b * uu
    w = _effective_weight(weight[keep], template.variance(loglam[keep] - s), line)
    chi2 = float(np.sum(w * (f - line * t) ** 2))
    jacobian = np.stack([-line * d, t, uu * t], axis=1)
    normal = jacobian.T @ (jacobian * w[:, None])
    try:
        covariance = np.linalg.inv(normal)
    except np.linalg.LinAlgError:
        return None
    if not covariance[0, 0] > 0:
        return None
    return s, float(np.sqrt(covariance[0, 0])), chi2 / max(n - 3, 1), n


def _weighted_median(values: NDArray[np.float64], weights: NDArray[np.float64]) -> float:
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cumulative, 0.5 * cumulative[-1])])


def _combine(
    velocity: NDArray[np.float64], sigma: NDArray[np.float64], clip: float
) -> tuple[float, float, float, NDArray[np.bool_]]:
    """Weighted mean of block velocities after rejecting outliers.

    The first centre is the weighted median, so that a group of bad blocks (a whole order with a
    wrong wavelength scale) cannot drag the centre and the spread towards itself; the spread is
    1.4826 · the median absolute normalised residual (at least 1).

    Returns the mean, its uncertainty (the formal one times the final spread: the blocks'
    scatter about the mean in units of their own errors, as 1.4826 × the median absolute value
    weighted like the mean, at least 1), the formal uncertainty and which blocks were used.
    """
    weights = 1.0 / sigma**2
    centre = _weighted_median(velocity, weights)
    used = np.ones(len(velocity), dtype=bool)
    for _ in range(10):
        normalised = (velocity - centre) / sigma
        spread = max(robust_sigma(normalised[used], center=0.0), 1.0)
        new = np.abs(normalised) <= clip * spread
        if new.sum() < 2:
            break
        converged = np.array_equal(new, used)
        used = new
        centre = float(np.sum(weights[used] * velocity[used]) / np.sum(weights[used]))
        if converged:
            break
    w = weights[used]
    mean = float(np.sum(w * velocity[used]) / np.sum(w))
    formal = float(1.0 / np.sqrt(np.sum(w)))
    n = int(used.sum())
    if n > 1:
        normalised = np.abs(velocity[used] - mean) / sigma[used]
        # weighted: the blocks that carry the mean set its scale, not the many faint ones (blue
        # orders at low S/N, order edges) whose errors the fit describes less well
        spread = max(MAD_TO_SIGMA * _weighted_median(normalised, w), 1.0)
    else:
        spread = 1.0
    return mean, formal * spread, formal, used


def measure_velocity(
    orders: Sequence[Spectrum],
    template: Spectrum | Sequence[Spectrum],
    *,
    blocks: int = 12,
    masks: Sequence[tuple[float, float]] = TELLURIC_BANDS,
    edge_fraction: float = 0.05,
    max_velocity: float = 400.0,
    clip: float = 5.0,
    initial_velocity: float | None = None,
    template_noise: bool = False,
) -> RadialVelocity:
    """Radial velocity of an echelle spectrum relative to a template.

    Parameters
    ----------
    orders : sequence of Spectrum
        The observed orders (wavelength [Å, vacuum], flux with its ``ivar``); blaze-normalised or
        not.
    template : Spectrum or sequence of Spectrum
        Template at rest, covering the orders' wavelengths (allowing for the velocity); or one
        template per order (same length as ``orders``), e.g. the orders of an echelle ZERO.
    blocks : int
        Blocks per order fitted separately.
    masks : sequence of (float, float)
        Observed-frame wavelength ranges left out [Å] (default: strong telluric bands).
    edge_fraction : float
        Fraction of each order's pixels left out at each end.
    max_velocity : float
        Range of the coarse CCF search, ±[km/s].
    clip : float
        Outlier rejection threshold for blocks [σ].
    initial_velocity : float, optional
        Skip the coarse CCF and start the block fits here [km/s].
    template_noise : bool
        The template's ``ivar`` is its noise (a template stacked from observations): its
        variance is added to every fitted pixel's, so blocks where the template is noisy weigh
        less and their formal errors include it. False: the template is taken as noiseless.

    Returns
    -------
    RadialVelocity

    Raises
    ------
    RadialVelocityError
        Nothing to fit: no overlap with the template, every pixel masked, no block converged.
    """
    if blocks < 1:
        raise ValueError(f"blocks must be at least 1, got {blocks}")
    templates = _per_order(orders, template)
    splines: dict[int, Template | None] = {}
    for spectrum in templates:
        if id(spectrum) not in splines:
            try:
                splines[id(spectrum)] = Template(spectrum, noisy=template_noise)
            except RadialVelocityError:
                if isinstance(template, Spectrum):
                    raise
                splines[id(spectrum)] = None  # an unusable order of a per-order template
    if initial_velocity is None:
        coarse, ccf_velocity, ccf = coarse_velocity(orders, templates, max_velocity, masks)
    else:
        coarse, ccf_velocity, ccf = float(initial_velocity), np.zeros(0), np.zeros(0)
    s0 = float(np.log1p(coarse / C_KMS))
    results: list[BlockVelocity] = []
    for index, order in enumerate(orders):
        spline = splines[id(templates[index])]
        if spline is None:
            continue
        usable = _mask(order, masks, edge_fraction)
        pixels = np.flatnonzero(usable)
        if len(pixels) < 10 * blocks:
            continue
        loglam_all = np.log(order.wavelength)
        for number, chunk in enumerate(np.array_split(pixels, blocks)):
            fit = _fit_block(loglam_all[chunk], order.flux[chunk], order.ivar[chunk], spline, s0)
            if fit is None:
                continue
            s, sigma_s, chi2_reduced, n = fit
            z = float(np.expm1(s))
            # dv/ds = c · (1 + z); scale by √χ²ᵣ when the block fits worse than its noise says
            block_sigma = C_KMS * (1.0 + z) * sigma_s * max(1.0, float(np.sqrt(chi2_reduced)))
            results.append(
                BlockVelocity(
                    index,
                    number,
                    float(np.mean(order.wavelength[chunk])),
                    C_KMS * z,
                    block_sigma,
                    n,
                    chi2_reduced,
                )
            )
    if not results:
        raise RadialVelocityError("no block of any order could be fitted to the template")
    velocity = np.array([b.velocity for b in results])
    sigma = np.array([b.uncertainty for b in results])
    mean, scatter, formal, used = _combine(velocity, sigma, clip)
    blocks_out = [
        BlockVelocity(**{**b.__dict__, "used": bool(u)}) for b, u in zip(results, used, strict=True)
    ]
    return RadialVelocity(mean, scatter, formal, coarse, blocks_out, ccf_velocity, ccf)
