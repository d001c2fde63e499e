"""Mean sky spectra per exposure and camera, and their airglow/continuum separation.

Mean spectrum (:func:`mean_sky_spectrum`): every sky fibre of one camera of one exposure is
resampled onto a common grid of constant log-wavelength step (the fibres' median native step,
over the camera's window) with the flux-conserving resampler of
:mod:`photonpipe.spectra.resample`, and the fibres are combined with inverse-variance weights
after rejecting outlier fibres (:func:`photonpipe.spectra.combine.combine_spectra`). The
variance is propagated from the fibres' variances; the scatter of the fibres about the mean is
kept alongside as a check.

Separation (:func:`separate_airglow`): the airglow line list of the arm (SkyModelling's, from the
UVES sky atlas) plus the light-pollution lines (their air wavelengths converted with Ciddor
1996; a listed line within 0.15 nm of a lamp line is the same line and takes the lamp's
laboratory position) are fitted region by region with one Gaussian width and one wavelength
shift per region, free fluxes and a quadratic continuum
(:func:`photonpipe.spectra.multiline.separate_lines`). The shift absorbs the list's small
systematic air→vacuum error (0.01–0.05 nm) and any calibration offset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from photonpipe.spectra.airvac import air_to_vacuum
from photonpipe.spectra.combine import combine_spectra
from photonpipe.spectra.multiline import Separation, merge_close_lines, separate_lines
from photonpipe.spectra.resample import resample
from photonpipe.spectra.spectrum import Spectrum

FloatArray = npt.NDArray[np.float64]

#: A listed line this close to a lamp line is that lamp line [nm].
SAME_LINE_NM = 0.15
#: A listed line this close to an atomic airglow line is that line [nm].
SAME_ATOMIC_NM = 0.3
#: Laboratory air wavelengths of the atomic airglow lines [nm] (NIST ASD): [O I] 557.7,
#: 630.0, 636.4; Na D2, D1; [N I] 519.8, 520.0.
ATOMIC_AIRGLOW_AIR_NM = (557.7339, 630.0304, 636.3776, 588.9950, 589.5924, 519.790, 520.026)


@dataclass
class MeanSpectrum:
    """Mean sky spectrum of one camera of one exposure (per 2″ fibre).

    Attributes
    ----------
    camera : str
        ``b1``, ``b2``, ``r1`` or ``r2``.
    exposure : int
        Exposure number.
    wavelength : numpy.ndarray
        Common grid, vacuum [nm].
    flux : numpy.ndarray
        Mean flux [10⁻¹⁷ erg s⁻¹ cm⁻² Å⁻¹], NaN where no fibre has data.
    variance : numpy.ndarray
        Propagated variance of ``flux`` [flux²], inf where no data.
    scatter_variance : numpy.ndarray
        Variance of the mean from the fibres' scatter [flux²].
    n_fibres : numpy.ndarray
        Fibres contributing per pixel.
    fiberid : numpy.ndarray
        Input fibres.
    accepted : numpy.ndarray
        Whether each input fibre was used.
    reasons : list of str or None
        Why a fibre was rejected.
    sigma_pix : float
        Median LSF sigma of the fibres [native pixels].
    step_dex : float
        Grid step (the median native pixel) [dex].
    sum_variance_factor : float
        Resampling shares each native pixel between neighbouring grid pixels: the per-pixel
        variance is right, but a sum over many pixels (a line flux) has this many times the
        variance that independent pixels would give (median over fibres of Σ σ²_native /
        Σ σ²_resampled per unit wavelength; 1 without resampling, up to 2).
    """

    camera: str
    exposure: int
    wavelength: FloatArray
    flux: FloatArray
    variance: FloatArray
    scatter_variance: FloatArray
    n_fibres: npt.NDArray[np.int64]
    fiberid: npt.NDArray[np.int64]
    accepted: npt.NDArray[np.bool_]
    reasons: list[str | None] = field(default_factory=list)
    sigma_pix: float = 1.0
    step_dex: float = 1e-4
    sum_variance_factor: float = 1.0


def common_grid_nm(wave_range_nm: tuple[float, float], step_dex: float) -> FloatArray:
    """Pixel centres of constant log10 step covering a window [nm]."""
    lo, hi = np.log10(wave_range_nm[0]), np.log10(wave_range_nm[1])
    n = int(np.floor((hi - lo) / step_dex)) + 1
    return np.asarray(10.0 ** (lo + step_dex * np.arange(n)))


def mean_sky_spectrum(
    camera: str,
    exposure: int,
    fiberid: npt.ArrayLike,
    wavelength_nm: FloatArray,
    flux: FloatArray,
    ivar: FloatArray,
    dispersion: FloatArray,
    wave_range_nm: tuple[float, float],
) -> MeanSpectrum:
    """Mean of one camera's sky fibres on a common grid.

    Parameters
    ----------
    camera : str
        Camera name.
    exposure : int
        Exposure number.
    fiberid : array_like
        ``(nfib,)`` fibre numbers.
    wavelength_nm, flux, ivar, dispersion : numpy.ndarray
        ``(nfib, npix)`` native spectra (vacuum nm; 10⁻¹⁷ erg s⁻¹ cm⁻² Å⁻¹; flux⁻²; pixels).
    wave_range_nm : (float, float)
        Window of the common grid [nm].

    Returns
    -------
    MeanSpectrum
    """
    loglam = np.log10(np.asarray(wavelength_nm, dtype=np.float64))
    steps = np.diff(loglam, axis=1)
    step_dex = float(np.nanmedian(steps)) if np.isfinite(steps).any() else 1e-4
    grid = common_grid_nm(wave_range_nm, step_dex)
    nfib = np.asarray(flux).shape[0]
    resampled = np.full((nfib, grid.size), np.nan)
    variance = np.full((nfib, grid.size), np.inf)
    factors = np.full(nfib, np.nan)
    for i in range(nfib):
        wave = np.asarray(wavelength_nm[i], dtype=np.float64)
        ok = np.isfinite(wave)
        if not ok.all():
            continue
        part = resample(Spectrum(wave, flux[i], ivar[i]), grid, min_coverage=0.99)
        inside = (grid >= wave[0]) & (grid <= wave[-1]) & (part.ivar > 0)
        resampled[i] = np.where(inside, part.flux, np.nan)
        variance[i] = np.where(inside, 1.0 / np.where(inside, part.ivar, 1.0), np.inf)
        native = np.asarray(ivar[i]) > 0
        if native.sum() > 2 and inside.any():
            native_var = np.interp(grid[inside], wave[native], 1.0 / np.asarray(ivar[i])[native])
            factors[i] = float(np.median(native_var / variance[i][inside]))
    combined = combine_spectra(resampled, variance)
    disp = np.asarray(dispersion, dtype=np.float64)
    sigma_pix = float(np.nanmedian(disp)) if np.isfinite(disp).any() else 1.0
    return MeanSpectrum(
        camera,
        int(exposure),
        grid,
        combined.flux,
        combined.variance,
        combined.scatter_variance,
        combined.n_used,
        np.asarray(fiberid, dtype=np.int64),
        combined.accepted,
        combined.reasons,
        sigma_pix,
        step_dex,
        float(np.nanmedian(factors[combined.accepted])) if np.isfinite(factors).any() else 1.0,
    )


def airglow_line_positions(arm: str) -> FloatArray:
    """Lines fitted in the separation of an arm [nm, vacuum].

    The arm's airglow list, where the atomic lines ([O I], Na D, [N I]) take their laboratory
    positions (a listed entry within 0.3 nm of one is that line: the list's [O I] 630.0 is
    0.24 nm off), and the light-pollution lines (a listed entry within 0.15 nm of one is that
    lamp line).
    """
    from photonpipe.sky.reference import airglow_lines_nm, artificial_lines

    listed = airglow_lines_nm("blue" if arm == "b" else "red")
    atomic = air_to_vacuum(ATOMIC_AIRGLOW_AIR_NM)
    listed = listed[np.min(np.abs(listed[:, None] - atomic[None, :]), axis=1) >= SAME_ATOMIC_NM]
    lamps = np.array([line.wave_vacuum_nm for line in artificial_lines()])
    lab = np.concatenate([atomic, lamps])
    return merge_close_lines(listed, SAME_LINE_NM, prefer=lab)


def separate_airglow(mean: MeanSpectrum) -> tuple[Separation, list[dict[str, Any]]]:
    """Separate the airglow lines of a mean spectrum from its continuum.

    Parameters
    ----------
    mean : MeanSpectrum
        Mean spectrum of one camera.

    Returns
    -------
    separation : Separation
        Continuum (data minus lines), smooth continuum and line model on the common grid
        [10⁻¹⁷ erg s⁻¹ cm⁻² Å⁻¹].
    rows : list of dict
        One per fitted line: ``CAMERA``, ``IMG``, ``WAVE_NM`` (listed), ``FLUX`` and
        ``FLUX_ERR`` [10⁻¹⁷ erg s⁻¹ cm⁻²; the error scaled by √``sum_variance_factor``],
        ``SIGMA_NM``, ``SHIFT_NM``, ``REGION_LO``, ``REGION_HI``, ``CHI2_RED``, ``FLAG``
        (None when fitted).

    Raises
    ------
    ValueError
        The mean spectrum has no valid pixel.
    """
    arm = mean.camera[0]
    wave = mean.wavelength
    centre = float(np.median(wave))
    sigma0 = mean.sigma_pix * centre * np.log(10.0) * mean.step_dex
    lines = airglow_line_positions(arm)
    sep = separate_lines(
        wave,
        mean.flux,
        mean.variance,
        lines,
        sigma0,
        box_per_wavelength=np.log(10.0) * mean.step_dex,
    )
    rows: list[dict[str, Any]] = []
    inflate = float(np.sqrt(max(1.0, mean.sum_variance_factor)))
    for region in sep.regions:
        for k, w in enumerate(region.centres):
            rows.append(
                {
                    "CAMERA": mean.camera,
                    "IMG": mean.exposure,
                    "WAVE_NM": float(w),
                    # flux density per Å × nm → × 10 Å/nm
                    "FLUX": float(region.flux[k]) * 10.0,
                    "FLUX_ERR": float(region.flux_error[k]) * 10.0 * inflate,
                    "SIGMA_NM": region.sigma,
                    "SHIFT_NM": region.shift,
                    "REGION_LO": region.lo,
                    "REGION_HI": region.hi,
                    "CHI2_RED": region.chi2_reduced,
                    "FLAG": region.flag or None,
                }
            )
    return sep, rows
