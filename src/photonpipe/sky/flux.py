"""Sky-fibre spectra from spFrame electrons to flux, as SkyModelling did.

For every fibre whose plug-map OBJTYPE is ``SKY``:

* electrons = sky model (spFrame HDU 6) + sky-subtracted residual (HDU 0) [e⁻ per pixel];
* flux = electrons × (10⁻⁴ / Δlog10λ) / C  [10⁻¹⁷ erg s⁻¹ cm⁻² Å⁻¹], where C is the
  spFluxcalib calibration image (e⁻ per 10⁻⁴-dex pixel per unit flux) and Δlog10λ the width of
  the native pixel in dex, from the wavelength trace set (central differences; SkyModelling used
  a backward difference and left the first pixel undefined);
* inverse variance in flux units: invvar × (C · Δlog10λ / 10⁻⁴)²;
* pixels flagged with any of the rejection bits (default FULLREJECT, COMBINEREJ, BADSKYFIBER,
  NOSKY, BADTRACE, NOPLUG, BADFLAT, in the spFrame mask or the spCFrame mask) and pixels outside
  the camera's wavelength window (blue 365–635 nm, red 565–1040 nm by default) are NaN with
  inverse variance 0. The native pixel grid is kept: nothing is resampled.

SkyModelling multiplied its fluxes by 1.027356 ("missing flux") because it applied one
calibration file to every exposure; photonpipe uses each exposure's own spFluxcalib and keeps the
factor as the ``sky.flux_scale`` setting (default 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from photonpipe.errors import InputFileError
from photonpipe.sky.formats import SpCFrame, SpCFrameMask, SpFrame
from photonpipe.sky.pixmask import DEFAULT_REJECT_FLAGS, flagged

#: Default wavelength windows per arm [nm].
DEFAULT_WAVE_RANGES_NM: dict[str, tuple[float, float]] = {
    "b": (365.0, 635.0),
    "r": (565.0, 1040.0),
}
#: spCFrame wavelengths may differ from the spFrame trace set by at most this [dex].
LOGLAM_TOLERANCE = 1e-5


@dataclass
class SkyFibreSpectra:
    """Flux-calibrated sky spectra of one camera of one exposure.

    Attributes
    ----------
    rows : numpy.ndarray
        Row of each sky fibre in the frame (0-based), shape ``(nsky,)``.
    fiberid : numpy.ndarray
        Plug-map FIBERID (1–1000) of each sky fibre.
    wavelength_nm : numpy.ndarray
        Vacuum wavelength of each native pixel [nm], ``(nsky, npix)`` float64.
    flux : numpy.ndarray
        Sky flux [10⁻¹⁷ erg s⁻¹ cm⁻² Å⁻¹ per fibre], NaN where rejected or outside the window.
    ivar : numpy.ndarray
        Inverse variance of ``flux`` [flux⁻²], 0 where ``flux`` is NaN.
    mask : numpy.ndarray
        SPPIXMASK bits (spFrame OR spCFrame), int64.
    dispersion : numpy.ndarray
        Line-spread-function sigma [native pixels].
    """

    rows: npt.NDArray[np.int64]
    fiberid: npt.NDArray[np.int64]
    wavelength_nm: npt.NDArray[np.float64]
    flux: npt.NDArray[np.float64]
    ivar: npt.NDArray[np.float64]
    mask: npt.NDArray[np.int64]
    dispersion: npt.NDArray[np.float64]


def sky_fibre_rows(frame: SpFrame) -> npt.NDArray[np.int64]:
    """Rows of the fibres whose plug-map OBJTYPE is ``SKY`` (0-based, ascending)."""
    objtype = np.char.upper(np.asarray(frame.plugmap["OBJTYPE"]).astype(str))
    return np.flatnonzero(objtype == "SKY").astype(np.int64)


def calibrate_sky_fibres(
    frame: SpFrame,
    calibration: npt.NDArray[np.float64],
    cframe: SpCFrame | SpCFrameMask | None = None,
    *,
    wave_range_nm: tuple[float, float] | None = None,
    reject_flags: Sequence[str] = DEFAULT_REJECT_FLAGS,
    flux_scale: float = 1.0,
) -> SkyFibreSpectra:
    """Convert the sky fibres of one spFrame to flux.

    Parameters
    ----------
    frame : SpFrame
        The spFrame.
    calibration : numpy.ndarray
        spFluxcalib image of the same camera and exposure
        [e⁻ per 10⁻⁴-dex pixel per 10⁻¹⁷ erg s⁻¹ cm⁻² Å⁻¹], same shape as the flux.
    cframe : SpCFrame or SpCFrameMask, optional
        The matching spCFrame (or its mask and wavelengths): its mask is OR-ed in (it
        carries COMBINEREJ) and its wavelengths are checked against the trace set.
    wave_range_nm : (float, float), optional
        Wavelength window [nm]; default by arm, see :data:`DEFAULT_WAVE_RANGES_NM`.
    reject_flags : sequence of str
        SPPIXMASK flags whose pixels become NaN.
    flux_scale : float
        Factor applied to the flux (SkyModelling's 1.027356 "missing flux"; default 1).

    Returns
    -------
    SkyFibreSpectra

    Raises
    ------
    InputFileError
        When the frame has no sky fibres, the calibration image does not match the frame, or
        the spCFrame disagrees with the spFrame (shape, fibres or wavelengths).
    """
    rows = sky_fibre_rows(frame)
    if rows.size == 0:
        raise InputFileError(frame.path, "no sky fibres (OBJTYPE == 'SKY') in the plug map")
    if calibration.shape != frame.flux.shape:
        raise InputFileError(
            frame.path,
            f"calibration image has shape {calibration.shape}, the frame {frame.flux.shape}",
        )
    loglam = frame.loglam(rows)
    mask = frame.mask[rows].copy()
    if cframe is not None:
        if cframe.mask.shape != frame.flux.shape:
            raise InputFileError(
                cframe.path, f"shape {cframe.mask.shape} differs from the spFrame's"
            )
        worst = float(np.max(np.abs(cframe.loglam[rows] - loglam)))
        if worst > LOGLAM_TOLERANCE:
            raise InputFileError(
                cframe.path,
                f"wavelengths differ from the spFrame trace set by up to {worst:.2e} dex",
            )
        mask |= cframe.mask[rows]
    electrons = frame.flux[rows].astype(np.float64) + frame.sky[rows].astype(np.float64)
    invvar = frame.invvar[rows].astype(np.float64)
    calib = calibration[rows].astype(np.float64)
    width_dex = np.gradient(loglam, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        # flux per electron: (1e-4 / Δlog10λ) / C
        per_electron = (1e-4 / width_dex) / calib
        flux = electrons * per_electron * flux_scale
        ivar = invvar / (per_electron * flux_scale) ** 2
    wavelength_nm = 10.0**loglam / 10.0
    arm = frame.camera[0]
    low, high = wave_range_nm or DEFAULT_WAVE_RANGES_NM[arm]
    bad = (
        flagged(mask, reject_flags)
        | (wavelength_nm < low)
        | (wavelength_nm > high)
        | ~np.isfinite(per_electron)
        | (calib <= 0)
        | (width_dex <= 0)
        | ~np.isfinite(electrons)
    )
    flux[bad] = np.nan
    ivar[bad | ~np.isfinite(ivar)] = 0.0
    fiberid = np.asarray(frame.plugmap["FIBERID"], dtype=np.int64)[rows]
    return SkyFibreSpectra(
        rows=rows,
        fiberid=fiberid,
        wavelength_nm=wavelength_nm,
        flux=flux,
        ivar=ivar,
        mask=mask,
        dispersion=frame.dispersion(rows),
    )
