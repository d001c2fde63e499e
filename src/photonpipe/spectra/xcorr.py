"""Radial velocities by cross-correlation against a template.

The observed spectrum is interpolated onto a grid uniform in ln λ (step = its median velocity
step, so a lag of k pixels is a Doppler factor exp(k·Δ)), the template onto the same grid
extended by the largest lag searched on both sides, so that at every lag the whole observed
range faces template. Both are optionally divided by a clipped continuum, turned into
line-depth signals (1 − F) and high-pass filtered (the signal minus itself smoothed with a
Gaussian of σ = ``highpass`` km/s: what the continuum fit leaves of the blaze would otherwise
lower the peak). Strong lines (``masks``, rest frame; default Ca II H & K, the Balmer lines,
Mg b, Na D, the Ca II triplet), whose broad wings differ most between stars and which, being
few and deep, make aliases, are set to the continuum in the template and left out of the
observed spectrum at the velocity of a first pass. With w the cosine taper (``apodize``) of
the observed range times 0 on its masked pixels, the CCF at each lag k is the correlation
coefficient

    C(k) = Σ w (o − ō) t(·+k) / √(Σ w (o − ō)² · Σ w (t(·+k) − t̄ₖ)²)

(ō and t̄ₖ means weighted with w), computed with FFTs. The peak is fitted with a Gaussian
plus a constant over the points above half its height; velocities are relativistic,
β = tanh(ln(λ_obs/λ_rest)).

Uncertainty: the larger of

* σ_Zucker, the maximum-likelihood uncertainty of Zucker (2003, MNRAS 342, 1291),
  σ²(v) = −[N · C''/C · C²/(1 − C²)]⁻¹ at the peak, N = Σ w pixels. It knows the noise and,
  through a lower C, part of the template mismatch;
* σ_chunks: the range is cut into ``chunks`` pieces of equal weight and the peak measured in
  each (near the peak of the whole range); σ_chunks is the scatter of the chunk velocities
  about their mean, weighted by 1/σ_Zucker² of each chunk, divided by √(n − 1). Chunks see
  different lines, so this includes line-by-line mismatch between star and template.

Checks (``CrossCorrelation.warnings``; the velocity is then not to be trusted): the peak lies
within two CCF widths (Gaussian σ) of the edge of the search range; the Tonry & Davis (1979,
AJ 84, 1511) ratio r of the peak height to √2 × the rms of the antisymmetric part of the CCF
about the peak is below :data:`MIN_TONRY_DAVIS_R`; another CCF maximum (beyond 3 widths)
reaches :data:`MAX_SECONDARY_RATIO` of the peak; fewer than three quarters of the chunks find
a peak near the main one, or the chunk velocities scatter by more than
:data:`MAX_CHUNK_SPREAD` CCF widths. On simulated orders against real templates (see
docs/stellar.md) every error above 2 km/s raised at least one warning.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy.ndimage import gaussian_filter1d
from scipy.optimize import OptimizeWarning, curve_fit
from scipy.signal import fftconvolve

from photonpipe.errors import PhotonpipeError
from photonpipe.spectra.continuum import STRONG_LINE_MASKS, ContinuumError, fit_continuum
from photonpipe.spectra.profiles import gaussian_peak
from photonpipe.spectra.spectrum import C_KMS, Spectrum

#: Rest-frame ranges left out by default [Å]: the strong lines (Ca II H & K, Balmer lines, Mg b,
#: Na D, Ca II triplet), whose broad, gravity-sensitive wings differ most between stars.
DEFAULT_MASKS: tuple[tuple[float, float], ...] = tuple((a, b) for a, b, _ in STRONG_LINE_MASKS)
#: σ of the Gaussian smoothing subtracted from both signals [km/s] (a high-pass filter).
HIGHPASS_KMS = 50.0
#: Below this Tonry & Davis r the CCF peak is not significant.
MIN_TONRY_DAVIS_R = 5.0
#: A second CCF maximum this high relative to the peak makes the velocity ambiguous.
MAX_SECONDARY_RATIO = 0.8
#: Chunk velocities scattering more than this many CCF σ-widths disagree.
MAX_CHUNK_SPREAD = 0.5


# Also a ValueError, as it was before PhotonpipeError: code that catches ValueError still does.
class CrossCorrelationError(PhotonpipeError, ValueError):
    """The spectra cannot be cross-correlated (no overlap, no signal, no peak)."""


@dataclass
class CrossCorrelation:
    """Result of :func:`cross_correlate`.

    Attributes
    ----------
    velocity : float
        Radial velocity of the observed spectrum relative to the template [km/s].
    uncertainty : float
        1σ uncertainty [km/s]: the larger of ``zucker_uncertainty`` and ``chunk_uncertainty``.
    peak : float
        Normalised CCF height at the peak (correlation coefficient).
    ccf_velocity, ccf : ndarray
        The CCF [km/s, dimensionless] within ±``max_velocity``.
    n_pixels : int
        Pixels correlated.
    step_kms : float
        Velocity step of the common grid [km/s].
    zucker_uncertainty : float
        Zucker (2003) maximum-likelihood 1σ [km/s] (noise only, template assumed to match).
    chunk_velocities : ndarray
        Velocity of the peak in each chunk of the range [km/s] (NaN where a chunk found none).
    chunk_uncertainty : float
        Standard deviation of the chunk velocities / √(number found) [km/s].
    width_kms : float
        σ of the Gaussian fitted to the CCF peak [km/s].
    tonry_davis_r : float
        Peak height / (√2 × rms of the antisymmetric part of the CCF about the peak).
    secondary_ratio : float
        Height of the highest other CCF maximum (beyond 3 widths) relative to the peak.
    warnings : list of str
        Reasons not to trust the velocity (empty when none).
    wavelength_range : (float, float)
        Observed range correlated [Å].
    """

    velocity: float
    uncertainty: float
    peak: float
    ccf_velocity: NDArray[np.float64]
    ccf: NDArray[np.float64]
    n_pixels: int
    step_kms: float
    zucker_uncertainty: float = math.nan
    chunk_velocities: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    chunk_uncertainty: float = math.nan
    width_kms: float = math.nan
    tonry_davis_r: float = math.nan
    secondary_ratio: float = math.nan
    warnings: list[str] = field(default_factory=list)
    wavelength_range: tuple[float, float] = (math.nan, math.nan)

    @property
    def reliable(self) -> bool:
        """True when no check raised a warning."""
        return not self.warnings


def _beta_from_ratio(ratio: NDArray[np.float64] | float) -> NDArray[np.float64]:
    r2 = np.asarray(ratio, dtype=np.float64) ** 2
    return np.asarray((r2 - 1.0) / (r2 + 1.0), dtype=np.float64)


def _velocity(log_ratio: NDArray[np.float64] | float) -> NDArray[np.float64]:
    """Relativistic velocity [km/s] of ln(λ_obs/λ_rest)."""
    return np.asarray(C_KMS * np.tanh(np.asarray(log_ratio, dtype=np.float64)), dtype=np.float64)


def _prepare(
    spectrum: Spectrum, grid: NDArray[np.float64], normalize: bool, smooth: float
) -> NDArray[np.float64]:
    """Line-depth signal 1 − F/continuum of ``spectrum`` on ``grid``, high-pass filtered.

    ``smooth`` is the σ [pixels] of the Gaussian-smoothed signal subtracted (0: none).
    """
    good = spectrum.ivar > 0
    if good.sum() < 10:
        raise CrossCorrelationError("fewer than 10 usable pixels")
    flux = np.interp(grid, spectrum.wavelength[good], spectrum.flux[good])
    if normalize:
        try:
            cont = fit_continuum(
                grid, flux, function="legendre", order=3, low_sigma=1.5, high_sigma=3.0
            ).continuum
        except ContinuumError as exc:
            raise CrossCorrelationError(str(exc)) from None
        flux = flux / np.where(cont > 0, cont, np.nan)
    else:
        flux = flux / np.median(flux)
    signal = 1.0 - np.nan_to_num(flux, nan=1.0)
    if smooth > 0:
        signal = signal - gaussian_filter1d(signal, smooth, mode="nearest")
    return np.asarray(signal, dtype=np.float64)


def _taper(n: int, apodize: float) -> NDArray[np.float64]:
    taper = np.ones(n)
    if apodize > 0:
        m = min(max(int(apodize * n), 1), n // 2)
        ramp = 0.5 * (1.0 - np.cos(np.pi * (np.arange(m) + 0.5) / m))
        taper[:m], taper[n - m :] = ramp, ramp[::-1]
    return taper


def _windowed_ccf(
    obs: NDArray[np.float64], tmpl: NDArray[np.float64], window: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Correlation coefficient at every lag of ``obs`` (length n) within ``tmpl`` (n + 2K).

    Element j is lag j − K: observed pixel i against template pixel i + j. ``window`` (length
    n) holds the weights w² of the observed pixels (0 outside the part used).
    """
    wsum = float(window.sum())
    if wsum <= 0:
        return np.full(tmpl.size - obs.size + 1, np.nan)
    centred = obs - float(np.sum(window * obs)) / wsum
    a2 = float(np.sum(window * centred**2))
    kernel = (window * centred)[::-1]
    numerator = fftconvolve(tmpl, kernel, mode="valid")
    s1 = fftconvolve(tmpl, window[::-1], mode="valid")
    s2 = fftconvolve(tmpl**2, window[::-1], mode="valid")
    variance = np.maximum(s2 - s1**2 / wsum, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ccf = numerator / np.sqrt(a2 * variance)
    return np.asarray(np.where(np.isfinite(ccf), ccf, 0.0), dtype=np.float64)


def _peak_lag(
    ccf: NDArray[np.float64], max_lag: int, step: float, max_velocity: float
) -> int | None:
    """Lag of the highest CCF point within ±``max_velocity`` (None if none is positive)."""
    lag = np.arange(-max_lag, max_lag + 1, dtype=np.float64)
    inside = np.abs(_velocity(lag * step)) <= max_velocity
    best = int(np.argmax(np.where(inside, ccf, -np.inf)))
    return int(lag[best]) if ccf[best] > 0 else None


def _fit_peak(
    lag: NDArray[np.float64], ccf: NDArray[np.float64], ipeak: int
) -> tuple[float, float, float, float, bool] | None:
    """Gaussian + constant over the points above half the peak: (a, μ, σ, c, touches edge)."""
    half = ccf[ipeak] / 2.0
    left = ipeak
    while left > 0 and ccf[left - 1] > half:
        left -= 1
    right = ipeak
    while right < ccf.size - 1 and ccf[right + 1] > half:
        right += 1
    edge = left == 0 or right == ccf.size - 1
    left, right = max(left - 2, 0), min(right + 2, ccf.size - 1)
    x = lag[left : right + 1]
    y = ccf[left : right + 1]
    if x.size < 5:
        return None
    width0 = max((right - left) / 4.0, 1.0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)  # its covariance is not used
            (a, mu, s, c), _ = curve_fit(
                gaussian_peak, x, y, p0=[ccf[ipeak], lag[ipeak], width0, 0.0], maxfev=5000
            )
    except (RuntimeError, ValueError):
        return None
    if not (x[0] <= mu <= x[-1]) or a <= 0:
        return None
    return float(a), float(mu), abs(float(s)), float(c), edge


def _zucker(a: float, s: float, c: float, n_eff: float, step: float) -> float:
    """Zucker (2003) σ [km/s] of a Gaussian CCF peak (a, σ = s pixels, constant c).

    ``n_eff`` is the number of pixels (tapered and masked ones counted by their weight).
    """
    peak = a + c
    curvature = -a / s**2  # C'' at the peak [per pixel²]
    if not (0 < peak < 1 and curvature < 0 and n_eff > 0):
        return math.nan
    var_lag = -1.0 / (n_eff * curvature / peak * peak**2 / (1.0 - peak**2))
    return float(np.sqrt(var_lag) * step * C_KMS)


def cross_correlate(
    observed: Spectrum,
    template: Spectrum,
    wavelength_range: tuple[float, float] | None = None,
    apodize: float = 0.1,
    normalize: bool = True,
    max_velocity: float = 500.0,
    chunks: int = 4,
    masks: Sequence[tuple[float, float]] = DEFAULT_MASKS,
    highpass: float = HIGHPASS_KMS,
) -> CrossCorrelation:
    """Measure the radial velocity of ``observed`` relative to ``template``.

    Parameters
    ----------
    observed : Spectrum
        Observed spectrum (one order, or a region of a spectrum).
    template : Spectrum
        Template at rest (its velocity is the zero point). It must cover the observed range
        extended by ``max_velocity`` on both sides; the observed range is cut to what it covers.
    wavelength_range : (float, float), optional
        Observed wavelengths to use [Å]; default all of ``observed`` that the template covers.
    apodize : float
        Fraction of the range tapered with a cosine at each end (0 = none).
    normalize : bool
        Divide both by a clipped Legendre continuum first (else by their medians).
    max_velocity : float
        Largest |velocity| searched [km/s].
    chunks : int
        Pieces the range is cut into for the chunk uncertainty and consistency check (0 or 1:
        none).
    masks : sequence of (float, float)
        Rest-frame wavelength ranges left out [Å] (default :data:`DEFAULT_MASKS`): set to the
        continuum in the template, and left out of the observed spectrum at the velocity found
        by a first correlation.
    highpass : float
        σ of the Gaussian smoothing subtracted from both signals [km/s] (0: no filter).

    Returns
    -------
    CrossCorrelation
        Velocity, uncertainties, checks and the CCF.

    Raises
    ------
    CrossCorrelationError
        No overlap, too few pixels, no spectral features, or no peak within ±``max_velocity``.
    """
    lo, hi = observed.wavelength_range
    if wavelength_range is not None:
        lo, hi = max(lo, wavelength_range[0]), min(hi, wavelength_range[1])
    inside = (observed.wavelength >= lo) & (observed.wavelength <= hi)
    if inside.sum() < 20:
        raise CrossCorrelationError("fewer than 20 observed pixels in the range")
    step = float(np.median(np.diff(np.log(observed.wavelength[inside]))))
    if not step > 0:
        raise CrossCorrelationError("observed wavelengths do not increase")
    max_lag = math.ceil(math.atanh(min(max_velocity / C_KMS, 0.999)) / step) + 3
    t_lo, t_hi = template.wavelength_range
    lo = max(lo, t_lo * math.exp(max_lag * step))
    hi = min(hi, t_hi * math.exp(-max_lag * step))
    if hi <= lo:
        raise CrossCorrelationError(
            f"observed range and template (allowing ±{max_velocity:g} km/s) do not overlap"
        )
    n = int(math.log(hi / lo) / step) + 1
    if n < 20:
        raise CrossCorrelationError("fewer than 20 observed pixels overlap the template")
    n_pix = int(np.sum((observed.wavelength >= lo) & (observed.wavelength <= hi)))
    grid = lo * np.exp(step * np.arange(-max_lag, n + max_lag))
    smooth = highpass / (step * C_KMS) if highpass > 0 else 0.0
    tmpl = _prepare(template, grid, normalize, smooth)
    for start, end in masks:
        tmpl[(grid >= start) & (grid <= end)] = 0.0
    obs_grid = grid[max_lag : max_lag + n]
    obs = _prepare(observed, obs_grid, normalize, smooth)
    if np.std(obs) < 1e-9 or np.std(tmpl) < 1e-9:
        raise CrossCorrelationError("no spectral features to correlate")
    window = _taper(n, apodize) ** 2
    if masks:
        first = _peak_lag(_windowed_ccf(obs, tmpl, window)[::-1], max_lag, step, max_velocity)
        if first is not None:
            shift = math.exp(first * step)
            for start, end in masks:
                window[(obs_grid >= start * shift) & (obs_grid <= end * shift)] = 0.0
    # element j of the CCF: observed pixel i against template pixel i + j, i.e. a template
    # shifted by j − max_lag pixels to the blue matches: ln(λ_obs/λ_rest) = (max_lag − j)·Δ
    ccf_all = _windowed_ccf(obs, tmpl, window)[::-1]
    lag = np.arange(-max_lag, max_lag + 1, dtype=np.float64)
    velocity = _velocity(lag * step)
    keep = np.abs(velocity) <= max_velocity
    v, ccf, lag = velocity[keep], ccf_all[keep], lag[keep]
    ipeak = int(np.argmax(ccf))
    if ipeak in (0, ccf.size - 1) or ccf[ipeak] <= 0:
        raise CrossCorrelationError(f"no CCF peak within ±{max_velocity:g} km/s")
    fitted = _fit_peak(lag, ccf, ipeak)
    if fitted is None:
        raise CrossCorrelationError("CCF peak fit did not converge")
    a, mu, s, c, touches_edge = fitted
    peak = a + c
    v_peak = float(_velocity(mu * step))
    width_kms = s * step * C_KMS
    sigma_zucker = _zucker(a, s, c, float(window.sum()), step)
    notes: list[str] = []
    # the peak at the edge of the search range
    if touches_edge or abs(v_peak) > max_velocity - 2.0 * width_kms:
        notes.append(f"CCF peak at the edge of the ±{max_velocity:g} km/s search range")
    # Tonry & Davis r: peak height against the antisymmetric part of the CCF about the peak
    reach = min(ipeak, ccf.size - 1 - ipeak)
    far = np.arange(1, reach + 1)
    antisym = 0.5 * (ccf[ipeak + far] - ccf[ipeak - far]) if reach else np.zeros(1)
    noise = float(np.sqrt(np.mean(antisym**2)))
    r_td = ccf[ipeak] / (math.sqrt(2.0) * noise) if noise > 0 else math.inf
    if r_td < MIN_TONRY_DAVIS_R:
        notes.append(f"CCF peak not significant (Tonry-Davis r = {r_td:.1f})")
    # another maximum of comparable height
    maxima = (ccf[1:-1] > ccf[:-2]) & (ccf[1:-1] >= ccf[2:])
    others = np.flatnonzero(maxima) + 1
    others = others[np.abs(lag[others] - mu) > 3.0 * s]
    secondary = float(ccf[others].max() / ccf[ipeak]) if others.size else 0.0
    if secondary > MAX_SECONDARY_RATIO:
        notes.append(f"a second CCF peak reaches {secondary:.0%} of the highest")
    # chunks
    chunk_v = np.zeros(0)
    sigma_chunks = math.nan
    if chunks > 1:
        near = np.abs(lag - mu) <= max(3.0 * s, 3.0)
        found, weights = [], []
        # equal shares of the unmasked window weight
        cumulative = np.cumsum(window)
        edges = np.searchsorted(cumulative, np.linspace(0, cumulative[-1], chunks + 1)[1:-1])
        edges = np.concatenate([[0], edges, [n]]).astype(int)
        for start, end in itertools.pairwise(edges):
            w = np.zeros(n)
            w[start:end] = _taper(end - start, apodize) ** 2 * (window[start:end] > 0)
            part = _windowed_ccf(obs, tmpl, w)[::-1][keep]
            local = np.flatnonzero(near)
            best = local[int(np.argmax(part[local]))]
            fit_c = _fit_peak(lag, part, best) if part[best] > 0 else None
            sigma_c = math.nan
            if fit_c is not None:
                sigma_c = _zucker(fit_c[0], fit_c[2], fit_c[3], float(w.sum()), step)
            if fit_c is None or abs(fit_c[1] - mu) > max(3.0 * s, 3.0) or not sigma_c > 0:
                found.append(math.nan)
                weights.append(0.0)
            else:
                found.append(float(_velocity(fit_c[1] * step)))
                weights.append(1.0 / sigma_c**2)
        chunk_v = np.array(found)
        good = np.isfinite(chunk_v)
        if good.sum() >= 2:
            # scatter of the chunks about their weighted mean, weights 1/σ_Zucker² of each
            wt = np.array(weights)[good]
            mean = float(np.sum(wt * chunk_v[good]) / wt.sum())
            scatter = float(np.sum(wt * (chunk_v[good] - mean) ** 2) / wt.sum())
            sigma_chunks = math.sqrt(scatter / (good.sum() - 1))
        if good.sum() < max(2, math.ceil(0.75 * chunks)):
            notes.append(f"only {int(good.sum())} of {chunks} chunks find the CCF peak")
        elif np.std(chunk_v[good], ddof=1) > MAX_CHUNK_SPREAD * width_kms:
            notes.append("the chunks of the range disagree on the velocity")
    candidates = [x for x in (sigma_zucker, sigma_chunks) if math.isfinite(x)]
    sigma = max(candidates) if candidates else math.nan
    return CrossCorrelation(
        v_peak,
        sigma,
        peak,
        v,
        ccf,
        n_pix,
        step * C_KMS,
        zucker_uncertainty=sigma_zucker,
        chunk_velocities=chunk_v,
        chunk_uncertainty=sigma_chunks,
        width_kms=width_kms,
        tonry_davis_r=float(r_td),
        secondary_ratio=secondary,
        warnings=notes,
        wavelength_range=(float(lo), float(obs_grid[-1])),
    )
