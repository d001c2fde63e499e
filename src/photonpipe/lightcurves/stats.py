"""Variability statistics and an honest period search of a light curve.

Statistics follow hstlc: mean and standard deviation of the flux (of NET when uncalibrated), the
Poisson factor (standard deviation of the gross counts per full bin over the square root of
their mean: ≈ 1 for a constant source, > 1 for excess variability) and Pearson's r of flux
against time.

Period search: a Lomb–Scargle periodogram (astropy, with the bin errors, ``psd`` normalisation)
whose peaks are judged against the light curve's *own aperiodic variability*, not against white
noise — flares, eclipses and flickering put a lot of power at low frequencies, and a white-noise
false-alarm probability calls that power "significant". The method is the red-noise test of
Vaughan (2005, A&A 431, 391) adapted to unevenly sampled data:

1. **Search band.** Periods from ``max(5 s, 2.5 bins)`` (near the Nyquist period the periodogram
   has one degree of freedom instead of two) to the good time divided by two (at least two
   cycles *in the good time*, so orbit gaps do not count), and at most 10 h.
2. **Continuum.** The smooth aperiodic power spectrum S(f) is fitted to the logarithm of the
   periodogram at the independent frequencies k / T_good (k = 1, 2, ...) with a penalised cubic
   B-spline in ln f (knots every 0.5 in ln f, a second-difference penalty that shrinks it towards
   a power law), using ``E[ln P] = ln S − γ`` and ``Var[ln P] = π²/6`` for a periodogram
   ordinate (χ²₂/2 times S) and clipping outliers. For a candidate, the ordinates within
   1.5 / T_good of its model's harmonics are left out and, when the model (step 5) has more
   than one term, the continuum is fitted to the periodogram of the data *less the model*, so
   that a non-sinusoidal signal — its harmonics and their window leakage — does not raise its
   own continuum (for one sinusoid, subtracting it would mostly lower the noise's own power
   next to it: red noise then gave 1.3 % false positives). The
   fit's covariance gives the uncertainty σ(f) of ln S.
3. **Candidate.** The highest local maximum of z(f) = P(f) / S(f) whose apex lies *inside* the
   band (a peak at either edge is never reported), found from the highest raw peak and from the
   highest peak against a first continuum, each iterated until the candidate and its continuum
   agree; its frequency is refined to the periodogram's maximum.
4. **False-alarm probability** of the highest z over the whole band: the Rice formula for the
   upcrossings of a χ²₂ field (the bound of Baluev 2008, with his effective time span
   ``T_eff = √(4π Var t)``), averaged over the continuum's uncertainty as Vaughan (2005) does.
   A systematic 10 % uncertainty of the continuum model is added in quadrature. The period is
   significant when this is below ``threshold`` (setting ``lightcurve.fap_threshold``, default
   0.01) **and** the periodic model (with its harmonics, step 5) is detected at 3σ in each half
   of the data on its own: a single flare or eclipse sits in one half, a period repeats.
5. **Harmonics.** A non-sinusoidal signal (an eclipsing binary) can peak at a harmonic of its
   period. For a peak at f (refined within one grid step), the number H of harmonics of f the
   signal needs (1–12, below the Nyquist frequency) is chosen by the Bayesian information
   criterion with the noise scale fitted (``n ln(χ²/n) + k ln n``: a model that misses part of
   the signal is not beaten by one whose extra terms soak up the unmodelled rest); then
   multi-harmonic models (Schwarzenberg-Czerny 1996) with base frequency f/m, m = 2 ... 32
   (while the period keeps two cycles and the model has at most n/4 parameters), each with
   its harmonics up to H f, are compared with it by the same criterion, a subharmonic model
   winning only if its extra terms also pass an F-test at p < 0.001 (one chance improvement
   among the m tried does not halve a sinusoid's frequency). The continuum then leaves out the
   harmonics of the chosen base frequency, and the period is 1/(the base frequency), refined
   by minimising that model's χ².

The test battery in ``tests/lightcurves/test_periods.py`` measures the false-positive rate on
simulated flares, single eclipses, transits, red and white noise and the recovery of sinusoids
and eclipsing binaries; docs/lightcurves.md gives the numbers.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from astropy.timeseries import LombScargle
from scipy import stats as scipy_stats
from scipy.interpolate import BSpline
from scipy.optimize import minimize_scalar

from photonpipe.lightcurves.curve import LightCurve

FALSE_ALARM_THRESHOLD = 0.01
#: Shortest and longest periods ever searched [s].
MIN_PERIOD = 5.0
MAX_PERIOD = 36000.0
#: Cycles the good time must hold for a period to be searched.
MIN_CYCLES = 2.0
#: Shortest period in bins (the periodogram degenerates towards the Nyquist period of 2 bins).
MIN_PERIOD_BINS = 2.5
#: Frequency-grid oversampling relative to 1 / (time span).
OVERSAMPLE = 5
MAX_FREQUENCIES = 200_000
#: Fewest independent frequencies for a continuum fit; below this no period is searched.
MIN_FIT_FREQUENCIES = 12
#: Words used when there is no significant period (headers, database, quicklook, demo).
NO_PERIOD = "no significant period"

_EULER = 0.5772156649015329
_LOG_SD = math.pi / math.sqrt(6.0)
_KNOT_STEP = 0.5
_PENALTY = 10.0
_CLIP_HIGH, _CLIP_LOW = 3.0, 6.0
_EXCLUDE = 1.5
#: Systematic uncertainty of the continuum model [in ln S], added in quadrature (see docs).
_SYSTEMATIC = 0.1
_HARMONICS = 3
#: Most harmonics of a candidate frequency in the periodic model.
_MAX_HARMONICS = 12
_MAX_SUBHARMONIC = 32
#: F-test probability below which a subharmonic model is preferred to the candidate's.
_SUBHARMONIC_P = 1e-3
_GH_NODES, _GH_WEIGHTS = np.polynomial.hermite_e.hermegauss(24)
_GH_WEIGHTS = _GH_WEIGHTS / _GH_WEIGHTS.sum()


@dataclass
class Periodogram:
    """The period search of one light curve.

    Attributes
    ----------
    min_period, max_period : float
        Search band [s].
    peak_period : float or None
        Period of the highest peak tested [s] (divided by its harmonic number, see
        ``harmonic``), significant or not (None when the band holds no peak).
    power : float
        Lomb–Scargle power (``psd`` normalisation) of the candidate.
    continuum : float
        Fitted aperiodic power at the candidate (same units).
    z : float
        ``power / continuum``.
    false_alarm_probability : float
        Probability that aperiodic variability alone gives a peak this high anywhere in the band.
    significant : bool
        ``false_alarm_probability`` below the threshold and the signal present in both halves
        of the data.
    harmonic : int
        The candidate peak was at this harmonic of the reported period (1: the period itself).
    frequencies : ndarray
        Searched frequencies [Hz] (not serialised).
    powers, continuum_powers : ndarray
        Periodogram and fitted continuum at ``frequencies`` (not serialised).
    """

    min_period: float
    max_period: float
    peak_period: float | None
    power: float
    continuum: float
    z: float
    false_alarm_probability: float
    significant: bool
    harmonic: int = 1
    frequencies: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    powers: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    continuum_powers: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)

    @property
    def periods(self) -> np.ndarray:
        """Searched periods [s]."""
        return 1.0 / self.frequencies


@dataclass
class VariabilityStatistics:
    """Summary statistics of a light curve (units of the quantity used, see ``quantity``)."""

    quantity: str
    mean: float
    std: float
    poisson_factor: float
    pearson_r: float
    pearson_p: float
    periodogram: Periodogram | None
    significant_period: bool
    best_period: float | None
    #: Why no period was searched (too few bins, too little good time), or "".
    period_note: str = ""

    @property
    def period_verdict(self) -> str:
        """The result in words: ``"period 240.1 s (FAP 3e-09)"`` or ``"no significant period"``."""
        p = self.periodogram
        if self.significant_period and p is not None and self.best_period is not None:
            return f"period {self.best_period:.6g} s (FAP {p.false_alarm_probability:.2g})"
        return NO_PERIOD

    def to_dict(self) -> dict[str, Any]:
        """Plain values (periodogram arrays left out)."""
        out = asdict(self)
        out.pop("periodogram")
        p = self.periodogram
        out["periodogram"] = (
            None
            if p is None
            else {
                k: v
                for k, v in asdict(p).items()
                if k not in ("frequencies", "powers", "continuum_powers")
            }
        )
        out["period_verdict"] = self.period_verdict
        return out


def _quantity(curve: LightCurve) -> tuple[str, np.ndarray, np.ndarray]:
    if curve.is_calibrated:
        return "FLUX", np.asarray(curve["FLUX"], float), np.asarray(curve["FLUX_ERROR"], float)
    return "NET", np.asarray(curve["NET"], float), np.asarray(curve["ERROR"], float)


# --- continuum ----------------------------------------------------------------------------------


def _spline_basis(x: np.ndarray, knots: np.ndarray) -> np.ndarray:
    """Cubic B-spline design matrix on ``knots`` (clamped at the ends), values outside clipped."""
    lo, hi = float(knots[0]), float(knots[-1])
    t = np.concatenate([[lo] * 3, knots, [hi] * 3])
    inside = np.clip(x, lo, hi - 1e-9 * (hi - lo))
    return np.asarray(BSpline.design_matrix(inside, t, 3).toarray())


def _fit_log_continuum(
    basis: np.ndarray, log_power: np.ndarray, usable: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Penalised least squares of ``ln P + γ`` on the basis, clipping outliers.

    Returns the coefficients and their covariance.
    """
    n = basis.shape[1]
    difference = np.diff(np.eye(n), 2, axis=0)
    penalty = _PENALTY * difference.T @ difference
    target = log_power + _EULER
    mask = usable.copy()
    beta = np.zeros(n)
    for _ in range(10):
        b = basis[mask]
        beta = np.linalg.solve(b.T @ b + penalty, b.T @ target[mask])
        residual = (target - basis @ beta) / _LOG_SD
        new = usable & (residual < _CLIP_HIGH) & (residual > -_CLIP_LOW)
        if np.array_equal(new, mask):
            break
        mask = new
    b = basis[mask]
    return beta, np.linalg.inv(b.T @ b + penalty) * _LOG_SD**2


def _false_alarm(z: float, sigma: np.ndarray, t_eff: float, df: float) -> float:
    """Rice bound on P(max z > ``z``) over the band, averaged over the continuum uncertainty.

    For a χ²₂ field the expected number of upcrossings of ``z`` per unit frequency is
    ``T_eff √z e^(−z)``; an error ``s`` of ln S scales the ratio by ``e^s``.
    """
    scale = np.exp(np.clip(_GH_NODES[None, :] * sigma[:, None], -30.0, 30.0))
    zz = z * scale
    crossings = (np.sqrt(zz) * np.exp(-zz)) @ _GH_WEIGHTS
    at_start = float(np.exp(-zz[0]) @ _GH_WEIGHTS)
    return float(min(1.0, at_start + t_eff * df * float(np.sum(crossings))))


# --- harmonics ----------------------------------------------------------------------------------


def _harmonic_model(
    time: np.ndarray, values: np.ndarray, weights: np.ndarray, frequency: float, terms: int
) -> np.ndarray:
    """Weighted least-squares fit of a mean and ``terms`` harmonics of ``frequency`` (values)."""
    phase = 2 * np.pi * frequency * time
    columns = [np.ones_like(time)]
    for h in range(1, terms + 1):
        columns += [np.sin(h * phase), np.cos(h * phase)]
    plain = np.column_stack(columns)
    design = plain * weights[:, None]
    target = values * weights
    normal = design.T @ design
    try:
        coefficients = np.linalg.solve(normal, design.T @ target)
    except np.linalg.LinAlgError:
        coefficients = np.linalg.lstsq(design, target, rcond=None)[0]
    return np.asarray(plain @ coefficients)


def _harmonic_chi2(
    time: np.ndarray, values: np.ndarray, weights: np.ndarray, frequency: float, terms: int
) -> float:
    """χ² of the weighted least-squares fit of a mean and ``terms`` harmonics of ``frequency``."""
    model = _harmonic_model(time, values, weights, frequency, terms)
    return float(np.sum(((values - model) * weights) ** 2))


def _present_in_both_halves(
    time: np.ndarray, values: np.ndarray, errors: np.ndarray, frequency: float, terms: int
) -> bool:
    """Whether the periodic model at ``frequency`` is detected in each half of the data.

    The bins are split at the median time; in each half the χ² improvement of the
    ``terms``-harmonic model over a constant must exceed the 3σ point of its χ² distribution
    (2·terms degrees of freedom). A flare, an eclipse or a burst of flickering sits in one half;
    a period repeats.
    """
    order = np.argsort(time)
    halves = np.array_split(order, 2)
    critical = float(scipy_stats.chi2.isf(scipy_stats.norm.sf(3.0), 2 * terms))
    for half in halves:
        if len(half) < 2 * terms + 3:
            return False
        w = 1.0 / errors[half]
        constant = _harmonic_chi2(time[half], values[half], w, frequency, 0)
        periodic = _harmonic_chi2(time[half], values[half], w, frequency, terms)
        if constant - periodic < critical:
            return False
    return True


def _harmonic_terms(base: float, m: int, f_nyquist: float, top: int = _HARMONICS) -> int:
    """Terms of the multi-harmonic model with base frequency ``base`` = (candidate / ``m``).

    Every model reaches the same top frequency, ``top`` times the candidate's (and at most the
    Nyquist frequency), so that the models for m and 2m are nested.
    """
    return max(1, min(top * m, int(f_nyquist / base)))


def _bic(chi2: float, parameters: int, n: int) -> float:
    """Bayesian information criterion of a least-squares fit whose noise scale is fitted.

    ``n ln(χ²/n) + k ln n``: a model that misses part of the signal (too few harmonics) has
    residuals above the noise, and its χ² differences are judged against them, not against the
    bin errors — otherwise any extra terms (a multiple of the period) absorb some of the
    unmodelled signal and win.
    """
    return n * math.log(max(chi2, 1e-300) / n) + parameters * math.log(n)


def _harmonic_number(
    time: np.ndarray,
    values: np.ndarray,
    weights: np.ndarray,
    frequency: float,
    f_min: float,
    f_nyquist: float,
    df: float,
) -> tuple[int, int]:
    """Which harmonic m of the true period a peak at ``frequency`` is, and the model's top.

    First the number of harmonics of ``frequency`` the signal needs (``top``, 1 to
    :data:`_MAX_HARMONICS`, below the Nyquist frequency and with at most a quarter as many
    parameters as bins) is chosen by BIC; then base frequencies ``frequency / m`` with
    harmonics up to the same top frequency are compared by BIC (see module doc). The
    frequency is first refined within ±``df`` (the grid step): off the peak, the phase drift
    of a strong signal over the data favours a model with a subharmonic.
    """
    n = len(time)
    frequency = float(
        minimize_scalar(
            lambda f: _harmonic_chi2(time, values, weights, f, 1),
            bounds=(frequency - df, frequency + df),
            method="bounded",
            options={"xatol": df * 1e-3},
        ).x
    )
    most = max(1, min(_MAX_HARMONICS, int(f_nyquist / frequency), (n // 4 - 1) // 2))
    top, best_bic = 1, math.inf
    for h in range(1, most + 1):
        bic = _bic(_harmonic_chi2(time, values, weights, frequency, h), 2 * h + 1, n)
        if bic < best_bic:
            top, best_bic = h, bic
    best_m = 1
    chi2_one = _harmonic_chi2(time, values, weights, frequency, top)
    for m in range(2, _MAX_SUBHARMONIC + 1):
        base = frequency / m
        if base < f_min * (1 - 1e-9):
            break
        terms = _harmonic_terms(base, m, f_nyquist, top)
        if 2 * terms + 1 > n // 4:
            break
        chi2 = _harmonic_chi2(time, values, weights, base, terms)
        bic = _bic(chi2, 2 * terms + 1, n)
        # the subharmonic terms must be real, not one chance improvement among the m tried
        extra, rest = 2 * (terms - top), n - 2 * terms - 1
        f_ratio = (chi2_one - chi2) / extra / max(chi2 / rest, 1e-300) if extra > 0 else 0.0
        if bic < best_bic and float(scipy_stats.f.sf(f_ratio, extra, rest)) < _SUBHARMONIC_P:
            best_m, best_bic = m, bic
    return best_m, top


def _refine_base(
    time: np.ndarray,
    values: np.ndarray,
    weights: np.ndarray,
    base: float,
    m: int,
    f_nyquist: float,
    df: float,
    top: int = _HARMONICS,
) -> float:
    """Refine a base frequency: minimise its multi-harmonic model's χ² near ``base`` [Hz]."""
    terms = _harmonic_terms(base, m, f_nyquist, top)
    refined = minimize_scalar(
        lambda f: _harmonic_chi2(time, values, weights, f, terms),
        bounds=(base - df / m, base + df / m),
        method="bounded",
        options={"xatol": df * 1e-4 / m},
    )
    return float(refined.x)


# --- search -------------------------------------------------------------------------------------


def search_period(
    time: np.ndarray,
    values: np.ndarray,
    errors: np.ndarray,
    *,
    good_time: float,
    step: float,
    threshold: float = FALSE_ALARM_THRESHOLD,
) -> tuple[Periodogram | None, str]:
    """Search a binned light curve for a period significant against its aperiodic variability.

    Parameters
    ----------
    time : ndarray
        Bin times [s].
    values, errors : ndarray
        Measurements and their 1σ errors (bins with non-finite values or errors ≤ 0 are left
        out).
    good_time : float
        Total good time covered by the bins [s] (sets the longest period: two cycles).
    step : float
        Bin width [s] (sets the shortest period: 2.5 bins).
    threshold : float
        False-alarm probability below which the period is significant.

    Returns
    -------
    periodogram : Periodogram or None
        The search (None when it could not be made).
    note : str
        Why it could not be made, or "".
    """
    good = np.isfinite(values) & np.isfinite(errors) & (errors > 0) & np.isfinite(time)
    time, values, errors = time[good], values[good], errors[good]
    if len(time) < 2 * MIN_FIT_FREQUENCIES or not good_time > 0:
        return None, f"too few bins for a period search ({len(time)})"
    span = float(time.max() - time.min())
    f_nyquist = 0.5 / step if step > 0 else 0.5 / float(np.median(np.diff(np.sort(time))))
    f_min = max(MIN_CYCLES / good_time, 1.0 / MAX_PERIOD)
    f_max = min(1.0 / MIN_PERIOD, f_nyquist * 2.0 / MIN_PERIOD_BINS)
    d_fit = 1.0 / good_time
    fit_frequencies = np.arange(1, int(f_max / d_fit) + 1) * d_fit
    if not f_max > f_min or len(fit_frequencies) < MIN_FIT_FREQUENCIES:
        return None, (
            f"too little good time ({good_time:.0f} s) for two cycles of any period "
            f"above {1 / f_max:.1f} s with a continuum"
        )
    model = LombScargle(time, values, errors, normalization="psd")
    df = max(1.0 / (OVERSAMPLE * max(span, good_time)), (f_max - f_min) / MAX_FREQUENCIES)
    frequency = np.arange(f_min - 2 * df, f_max + 2 * df, df)
    frequency = frequency[frequency > 0]
    power = np.asarray(model.power(frequency, method="fast"))
    fit_power = np.maximum(np.asarray(model.power(fit_frequencies, method="fast")), 1e-300)
    x_fit = np.log(fit_frequencies)
    n_knots = max(2, math.ceil((x_fit[-1] - x_fit[0]) / _KNOT_STEP) + 1)
    knots = np.linspace(x_fit[0], x_fit[-1], n_knots)
    fit_basis = _spline_basis(x_fit, knots)
    band_basis = _spline_basis(np.log(frequency), knots)
    inside = (frequency >= f_min) & (frequency <= f_max)
    log_fit = np.log(fit_power)

    fit_weights = 1.0 / errors

    def continuum(
        base: float | None, m: int = 1, top: int = _HARMONICS
    ) -> tuple[np.ndarray, np.ndarray]:
        """Continuum at ``frequency`` and the Cholesky factor of its coefficients' covariance."""
        usable = np.ones(len(fit_frequencies), dtype=bool)
        log_power = log_fit
        terms = 0
        if base is not None:
            terms = _harmonic_terms(base, m, f_nyquist, top)
            harmonics = np.arange(1, terms + 1) * base
            near = np.abs(fit_frequencies[:, None] - harmonics[None, :]) <= _EXCLUDE * d_fit
            far = np.asarray(~near.any(axis=1), dtype=bool)
            if int(far.sum()) >= MIN_FIT_FREQUENCIES:
                usable = far
        if base is not None and terms > 1:
            # the continuum of what a non-sinusoidal model leaves: its many harmonics' window
            # leakage does not raise its own continuum (for one sinusoid the leakage is small,
            # and subtracting it would mostly lower the noise's own power next to it)
            residual = values - _harmonic_model(time, values, fit_weights, base, terms)
            log_power = np.log(
                np.maximum(
                    np.asarray(
                        LombScargle(time, residual, errors, normalization="psd").power(
                            fit_frequencies, method="fast"
                        )
                    ),
                    1e-300,
                )
            )
        beta, covariance = _fit_log_continuum(fit_basis, log_power, usable)
        return np.exp(band_basis @ beta), np.linalg.cholesky(covariance)

    def interior_peaks(z: np.ndarray) -> np.ndarray:
        peaks = np.flatnonzero((z[1:-1] > z[:-2]) & (z[1:-1] >= z[2:])) + 1
        return peaks[inside[peaks]]

    first, _ = continuum(None)
    peaks = interior_peaks(power / first)
    if len(peaks) == 0:
        return Periodogram(
            1 / f_max, 1 / f_min, None, 0.0, 0.0, 0.0, 1.0, False, 1, frequency, power, first
        ), ""
    weights = 1.0 / errors**2
    weights = weights / weights.sum()
    t_eff = math.sqrt(
        4 * math.pi * max(float(np.sum(weights * time**2) - np.sum(weights * time) ** 2), 0.0)
    )
    best: tuple[float, int, int, int, np.ndarray] | None = None
    starts = [
        int(peaks[np.argmax(power[peaks])]),
        int(peaks[np.argmax(power[peaks] / first[peaks])]),
    ]
    for start in dict.fromkeys(starts):
        k, seen = start, set()
        while True:
            seen.add(k)
            m, top = _harmonic_number(time, values, fit_weights, frequency[k], f_min, f_nyquist, df)
            s, factor = continuum(frequency[k] / m, m, top)
            z = power / s
            candidates = interior_peaks(z)
            k_next = int(candidates[np.argmax(z[candidates])]) if len(candidates) else k
            if k_next in seen:
                break
            k = k_next
        # the uncertainty of ln S over the band: rows of (basis · Cholesky factor)
        sigma = np.sqrt(np.sum((band_basis[inside] @ factor) ** 2, axis=1) + _SYSTEMATIC**2)
        fap = _false_alarm(float(z[k]), sigma, t_eff, df)
        if best is None or fap < best[0]:
            best = (fap, k, m, top, s)
    assert best is not None
    fap, k, harmonic, top, s = best
    refined = minimize_scalar(
        lambda f: -float(model.power(np.atleast_1d(f), method="slow")[0]),
        bounds=(frequency[k] - df, frequency[k] + df),
        method="bounded",
        options={"xatol": df * 1e-4},
    )
    f_best = float(refined.x)
    p_best = float(-refined.fun)
    s_best = float(np.interp(f_best, frequency, s))
    f_period = _refine_base(
        time, values, fit_weights, f_best / harmonic, harmonic, f_nyquist, df, top
    )
    repeats = fap < threshold and _present_in_both_halves(
        time, values, errors, f_period, _harmonic_terms(f_period, harmonic, f_nyquist, top)
    )
    return Periodogram(
        1 / f_max,
        1 / f_min,
        1 / f_period,
        p_best,
        s_best,
        p_best / s_best,
        fap,
        repeats,
        harmonic,
        frequency,
        power,
        s,
    ), ""


def variability_statistics(
    curve: LightCurve, *, threshold: float = FALSE_ALARM_THRESHOLD
) -> VariabilityStatistics:
    """Statistics and period search of a light curve (see the module docstring).

    Parameters
    ----------
    curve : LightCurve
        The light curve.
    threshold : float
        False-alarm probability below which a period is significant.
    """
    name, values, errors = _quantity(curve)
    finite = np.isfinite(values)
    mean = float(np.mean(values[finite])) if finite.any() else float("nan")
    std = float(np.std(values[finite], ddof=1)) if finite.sum() > 1 else float("nan")
    step = float(curve.header.get("STEP", 0) or 0)
    exposure = np.asarray(curve["BIN_EXPTIME"], float)
    full = exposure >= 0.99 * step if step > 0 else np.ones(len(exposure), dtype=bool)
    counts = np.asarray(curve["COUNTS"], float)[full]
    poisson = (
        float(np.std(counts, ddof=1) / np.sqrt(np.mean(counts)))
        if len(counts) > 1 and np.mean(counts) > 0
        else float("nan")
    )
    seconds = (
        np.asarray(curve["MJD"], float) - float(np.min(np.asarray(curve["MJD"], float)))
    ) * 86400.0
    if finite.sum() > 2 and np.std(values[finite]) > 0:
        r, p = scipy_stats.pearsonr(seconds[finite], values[finite])
        pearson_r, pearson_p = float(r), float(p)
    else:
        pearson_r = pearson_p = float("nan")
    usable = finite & np.isfinite(errors) & (errors > 0)
    periodogram, note = search_period(
        seconds,
        values,
        errors,
        good_time=float(np.sum(exposure[usable])),
        step=step,
        threshold=threshold,
    )
    significant = periodogram is not None and periodogram.significant
    return VariabilityStatistics(
        name,
        mean,
        std,
        poisson,
        pearson_r,
        pearson_p,
        periodogram,
        significant,
        periodogram.peak_period if significant and periodogram is not None else None,
        note,
    )
