"""Radial velocities by cross-correlation against a template.

Both spectra are interpolated onto one grid uniform in ln λ (step = the observed spectrum's
median velocity step, so a lag of k pixels is a Doppler factor exp(k·Δ)), optionally divided by
a clipped continuum, turned into line-depth signals (1 − F), mean-subtracted, apodised with a
cosine taper and correlated by FFT. The CCF is normalised to a correlation coefficient. The peak
is fitted with a Gaussian plus a constant over the points above half the peak height; the
velocity uncertainty is the maximum-likelihood one of Zucker (2003, MNRAS 342, 1291):
σ²(v) = −[N · C''/C · C²/(1 − C²)]⁻¹ at the peak, N the number of pixels.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import OptimizeWarning, curve_fit

from photonpipe.spectra.continuum import ContinuumError, fit_continuum
from photonpipe.spectra.spectrum import C_KMS, Spectrum


class CrossCorrelationError(ValueError):
    """The spectra cannot be cross-correlated (no overlap, no signal, no peak)."""


@dataclass
class CrossCorrelation:
    """Result of :func:`cross_correlate`.

    Attributes
    ----------
    velocity : float
        Radial velocity of the observed spectrum relative to the template [km/s].
    uncertainty : float
        1σ uncertainty [km/s] (Zucker 2003).
    peak : float
        Normalised CCF height at the peak (correlation coefficient).
    ccf_velocity, ccf : ndarray
        The CCF [km/s, dimensionless] within ±``max_velocity``.
    n_pixels : int
        Pixels correlated.
    step_kms : float
        Velocity step of the common grid [km/s].
    """

    velocity: float
    uncertainty: float
    peak: float
    ccf_velocity: NDArray[np.float64]
    ccf: NDArray[np.float64]
    n_pixels: int
    step_kms: float


def _beta_from_ratio(ratio: NDArray[np.float64] | float) -> NDArray[np.float64]:
    r2 = np.asarray(ratio, dtype=np.float64) ** 2
    return np.asarray((r2 - 1.0) / (r2 + 1.0), dtype=np.float64)


def _prepare(spectrum: Spectrum, grid: NDArray[np.float64], normalize: bool) -> NDArray[np.float64]:
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
    return np.asarray(signal - signal.mean(), dtype=np.float64)


def _gauss(x: NDArray[np.float64], a: float, mu: float, s: float, c: float) -> NDArray[np.float64]:
    return np.asarray(a * np.exp(-0.5 * ((x - mu) / s) ** 2) + c, dtype=np.float64)


def cross_correlate(
    observed: Spectrum,
    template: Spectrum,
    wavelength_range: tuple[float, float] | None = None,
    apodize: float = 0.1,
    normalize: bool = True,
    max_velocity: float = 500.0,
) -> CrossCorrelation:
    """Measure the radial velocity of ``observed`` relative to ``template``.

    Parameters
    ----------
    observed : Spectrum
        Observed spectrum (one order, or a region of a spectrum).
    template : Spectrum
        Template at rest (its velocity is the zero point).
    wavelength_range : (float, float), optional
        Observed wavelengths to use [Å]; default the overlap of both spectra allowing for
        ``max_velocity``.
    apodize : float
        Fraction of the range tapered with a cosine at each end (0 = none).
    normalize : bool
        Divide both by a clipped Legendre continuum first (else by their medians).
    max_velocity : float
        Largest |velocity| searched [km/s].

    Returns
    -------
    CrossCorrelation
        Velocity, uncertainty and the CCF.

    Raises
    ------
    CrossCorrelationError
        No overlap, too few pixels, or no peak within ±``max_velocity``.
    """
    lo, hi = observed.wavelength_range
    if wavelength_range is not None:
        lo, hi = max(lo, wavelength_range[0]), min(hi, wavelength_range[1])
    margin = 1.0 + max_velocity / C_KMS
    t_lo, t_hi = template.wavelength_range
    lo, hi = max(lo, t_lo * margin), min(hi, t_hi / margin)
    if hi <= lo:
        raise CrossCorrelationError("observed range and template do not overlap")
    inside = (observed.wavelength >= lo) & (observed.wavelength <= hi)
    if inside.sum() < 20:
        raise CrossCorrelationError("fewer than 20 observed pixels in the range")
    step = float(np.median(np.diff(np.log(observed.wavelength[inside]))))
    n = int(np.log(hi / lo) / step) + 1
    grid = lo * np.exp(step * np.arange(n))
    obs = _prepare(observed, grid, normalize)
    # template over a range wide enough for every lag
    tmpl = _prepare(template, grid, normalize)
    if apodize > 0:
        taper = np.ones(n)
        m = max(int(apodize * n), 1)
        ramp = 0.5 * (1.0 - np.cos(np.pi * np.arange(m) / m))
        taper[:m], taper[-m:] = ramp, ramp[::-1]
        obs, tmpl = obs * taper, tmpl * taper
    norm = np.sqrt(np.sum(obs**2) * np.sum(tmpl**2))
    if np.std(obs) < 1e-9 or np.std(tmpl) < 1e-9:
        raise CrossCorrelationError("no spectral features to correlate")
    size = 1 << int(np.ceil(np.log2(2 * n)))
    ccf_full = np.fft.irfft(np.fft.rfft(obs, size) * np.conj(np.fft.rfft(tmpl, size)), size)
    ccf_full = np.fft.fftshift(ccf_full) / norm
    lags = np.arange(size) - size // 2
    velocity = C_KMS * _beta_from_ratio(np.exp(lags * step))
    keep = np.abs(velocity) <= max_velocity
    v, ccf = velocity[keep], ccf_full[keep]
    lag = lags[keep].astype(np.float64)
    ipeak = int(np.argmax(ccf))
    if ipeak in (0, ccf.size - 1) or ccf[ipeak] <= 0:
        raise CrossCorrelationError(f"no CCF peak within ±{max_velocity} km/s")
    half = ccf[ipeak] / 2.0
    left = ipeak
    while left > 0 and ccf[left - 1] > half:
        left -= 1
    right = ipeak
    while right < ccf.size - 1 and ccf[right + 1] > half:
        right += 1
    left, right = max(left - 2, 0), min(right + 2, ccf.size - 1)
    x = lag[left : right + 1]
    y = ccf[left : right + 1]
    width0 = max((right - left) / 4.0, 1.0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)  # its covariance is not used
            (a, mu, s, c), _ = curve_fit(
                _gauss, x, y, p0=[ccf[ipeak], lag[ipeak], width0, 0.0], maxfev=5000
            )
    except (RuntimeError, ValueError):
        raise CrossCorrelationError("CCF peak fit did not converge") from None
    if not x[0] <= mu <= x[-1]:
        raise CrossCorrelationError("CCF peak fit left the peak")
    peak = float(a + c)
    curvature = -a / s**2  # C'' at the peak [per pixel²]
    n_pix = int(inside.sum())
    if 0 < peak < 1 and curvature < 0:
        var_lag = -1.0 / (n_pix * curvature / peak * peak**2 / (1.0 - peak**2))
        sigma_v = float(np.sqrt(var_lag) * step * C_KMS)
    else:
        sigma_v = float("nan")
    v_peak = float(C_KMS * _beta_from_ratio(np.exp(mu * step)))
    return CrossCorrelation(v_peak, sigma_v, peak, v, ccf, n_pix, step * C_KMS)
