"""Sensitivity for the flux calibration of events.

From the dataset's own x1d, or from the COS FLUXTAB and TDSTAB reference tables.

An event at wavelength λ counted in a bin of good time *t* contributes
``EPSILON · D(λ) / (S(λ) · t)`` to the band-integrated flux [erg s⁻¹ cm⁻²], where
S = NET / FLUX is the sensitivity [(counts s⁻¹ pixel⁻¹) / (erg s⁻¹ cm⁻² Å⁻¹)] and D the
dispersion [Å pixel⁻¹]. :class:`RegionCalibration` tabulates ``D / S`` against wavelength.

COS reference tables (CALCOS formats):

* FLUXTAB (``_phot.fits``): rows SEGMENT, OPT_ELEM, CENWAVE, APERTURE with array columns
  WAVELENGTH [Å] and SENSITIVITY [(counts s⁻¹ pixel⁻¹) / (erg s⁻¹ cm⁻² Å⁻¹)].
* TDSTAB (``_tds.fits``): header REF_TIME [MJD]; rows SEGMENT, OPT_ELEM, APERTURE with NWL, NT,
  WAVELENGTH[NWL] [Å], TIME[NT] [MJD], SLOPE[NT, NWL] [% yr⁻¹] and INTERCEPT[NT, NWL]. At time
  *t* in interval *i* (TIME[i] ≤ t < TIME[i+1]) the relative sensitivity is
  ``(t − REF_TIME) / 365.25 · SLOPE[i] / 100 + INTERCEPT[i]``, interpolated in wavelength; the
  sensitivity used is FLUXTAB × that factor at EXPSTART.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits

from photonpipe.lightcurves.formats import LightCurveInputError, MissingColumnError, X1DRow


@dataclass
class RegionCalibration:
    """Flux conversion of one region: ``D/S`` on a wavelength grid.

    Attributes
    ----------
    wavelength : ndarray
        Increasing wavelengths [Å].
    conversion : ndarray
        Dispersion over sensitivity, D/S [(erg s⁻¹ cm⁻²) / (counts s⁻¹)].
    source : str
        ``x1d`` or ``FLUXTAB+TDSTAB``.
    tds_factor : float
        Mean TDS factor applied (1 for x1d).
    """

    wavelength: np.ndarray
    conversion: np.ndarray
    source: str
    tds_factor: float = 1.0

    def __call__(self, wavelength: np.ndarray) -> np.ndarray:
        """D/S at each wavelength [(erg s⁻¹ cm⁻²) / (counts s⁻¹)]; NaN outside the grid."""
        return np.interp(wavelength, self.wavelength, self.conversion, left=np.nan, right=np.nan)


def dispersion(wavelength: np.ndarray) -> np.ndarray:
    """Pixel width in wavelength of a per-pixel wavelength array [Å pixel⁻¹]."""
    return np.abs(np.gradient(np.asarray(wavelength, dtype=np.float64)))


def _increasing(wavelength: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(wavelength, kind="stable")
    return wavelength[order], values[order]


def from_x1d_row(row: X1DRow) -> RegionCalibration:
    """Calibration from an x1d row: S = NET / FLUX where both are finite and non-zero.

    Raises
    ------
    ValueError
        No pixel has both NET and FLUX (the x1d is not flux calibrated).
    """
    valid = np.isfinite(row.net) & np.isfinite(row.flux) & (row.net != 0) & (row.flux != 0)
    if int(valid.sum()) < 2:
        raise ValueError(f"x1d row {row.name} has no pixel with both NET and FLUX")
    wavelength = row.wavelength[valid]
    sensitivity = row.net[valid] / row.flux[valid]
    conversion = dispersion(row.wavelength)[valid] / sensitivity
    wavelength, conversion = _increasing(wavelength, conversion)
    return RegionCalibration(wavelength, conversion, "x1d")


def _match_rows(table: fits.FITS_rec, wanted: dict[str, str], path: Path) -> fits.FITS_rec:
    mask = np.ones(len(table), dtype=bool)
    names = {n.upper() for n in table.columns.names}
    for column, value in wanted.items():
        if column not in names:
            continue
        values = np.char.strip(np.char.upper(np.asarray(table[column]).astype(str)))
        mask &= (values == value.upper()) | (values == "ANY")
    if not mask.any():
        raise LightCurveInputError(path, f"no row for {wanted}")
    return table[mask]


def from_reference_tables(
    fluxtab: str | os.PathLike[str],
    tdstab: str | os.PathLike[str],
    *,
    segment: str,
    opt_elem: str,
    cenwave: int,
    aperture: str,
    mjd: float,
    pixel_wavelength: np.ndarray,
) -> RegionCalibration:
    """Calibration from COS FLUXTAB and TDSTAB at time ``mjd``.

    Parameters
    ----------
    fluxtab, tdstab : path-like
        Reference tables (formats in the module docstring).
    segment, opt_elem, cenwave, aperture : str, str, int, str
        Row selection (SEGMENT such as ``FUVA``).
    mjd : float
        Time for the TDS correction (EXPSTART) [MJD].
    pixel_wavelength : ndarray
        Wavelength of each detector column of the region [Å] (for the dispersion).

    Raises
    ------
    LightCurveInputError
        Unreadable table, missing columns, no matching row, time before the TDS table.
    """
    fluxtab, tdstab = Path(fluxtab), Path(tdstab)
    try:
        with fits.open(fluxtab) as hdul:
            table = hdul[1].data
            for column in ("WAVELENGTH", "SENSITIVITY"):
                if column not in table.columns.names:
                    raise MissingColumnError(fluxtab, f"FLUXTAB lacks {column}")
            row = _match_rows(
                table,
                {
                    "SEGMENT": segment,
                    "OPT_ELEM": opt_elem,
                    "CENWAVE": str(cenwave),
                    "APERTURE": aperture,
                },
                fluxtab,
            )[0]
            flux_wavelength = np.asarray(row["WAVELENGTH"], dtype=np.float64)
            sensitivity = np.asarray(row["SENSITIVITY"], dtype=np.float64)
        with fits.open(tdstab) as hdul:
            ref_time = float(hdul[1].header.get("REF_TIME", hdul[0].header.get("REF_TIME", np.nan)))
            if not np.isfinite(ref_time):
                raise LightCurveInputError(tdstab, "TDSTAB lacks REF_TIME")
            table = hdul[1].data
            for column in ("WAVELENGTH", "TIME", "SLOPE", "INTERCEPT"):
                if column not in table.columns.names:
                    raise MissingColumnError(tdstab, f"TDSTAB lacks {column}")
            row = _match_rows(
                table, {"SEGMENT": segment, "OPT_ELEM": opt_elem, "APERTURE": aperture}, tdstab
            )[0]
            tds_wavelength = np.asarray(row["WAVELENGTH"], dtype=np.float64).ravel()
            times = np.asarray(row["TIME"], dtype=np.float64).ravel()
            nwl = len(tds_wavelength)
            slope = np.asarray(row["SLOPE"], dtype=np.float64).reshape(len(times), nwl)
            intercept = np.asarray(row["INTERCEPT"], dtype=np.float64).reshape(len(times), nwl)
    except OSError as exc:
        raise LightCurveInputError(fluxtab, f"reference table unreadable ({exc})") from exc
    interval = int(np.searchsorted(times, mjd, side="right")) - 1
    if interval < 0:
        raise LightCurveInputError(tdstab, f"EXPSTART {mjd} precedes the first TDS time {times[0]}")
    factor_grid = (mjd - ref_time) / 365.25 * slope[interval] / 100.0 + intercept[interval]
    wavelength, sens = _increasing(flux_wavelength, sensitivity)
    factor = np.interp(wavelength, *_increasing(tds_wavelength, factor_grid))
    effective = sens * factor
    pixel_wavelength = np.asarray(pixel_wavelength, dtype=np.float64)
    pixel_dispersion = np.interp(
        wavelength, *_increasing(pixel_wavelength, dispersion(pixel_wavelength))
    )
    good = effective > 0
    return RegionCalibration(
        wavelength[good],
        pixel_dispersion[good] / effective[good],
        "FLUXTAB+TDSTAB",
        float(np.mean(factor[good])),
    )
