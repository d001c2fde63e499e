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
from dataclasses import dataclass, field
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
    _lookup: PiecewiseLinear | None = field(default=None, init=False, repr=False, compare=False)

    def __call__(self, wavelength: np.ndarray) -> np.ndarray:
        """D/S at each wavelength [(erg s⁻¹ cm⁻²) / (counts s⁻¹)]; 0 outside the grid.

        Linear interpolation in the table, as ``numpy.interp`` but in constant time per event
        (see :class:`PiecewiseLinear`); events outside the tabulated range get no flux.
        """
        return self.lookup(wavelength)

    @property
    def lookup(self) -> PiecewiseLinear:
        """The interpolator of :meth:`__call__` (made on first use)."""
        if self._lookup is None:
            self._lookup = PiecewiseLinear(self.wavelength, self.conversion)
        return self._lookup


class PiecewiseLinear:
    """Linear interpolation in an increasing table, in constant time per point; 0 outside it.

    ``numpy.interp`` finds each point's interval by a binary search of the table (about 14
    dependent, unpredictable comparisons per point for a 14 000-point x1d), which dominated the
    extraction of 10⁷ events. Here the table's range is cut into equal buckets half as wide as its
    narrowest interval, so a bucket holds at most one table point: a point's interval is the
    number of table points before its bucket, plus one if it is at or beyond the table point in
    its bucket. The bucket number ``trunc(w · scale − offset)`` is a non-decreasing function of
    ``w`` in floating point, and the table points are bucketed by the same expression, so the
    count is exact even where rounding moves a point across a bucket edge. Values agree with
    ``numpy.interp`` to a few units of rounding.

    Parameters
    ----------
    x : ndarray
        Increasing abscissae (equal neighbours allowed).
    y : ndarray
        Values at ``x``.
    max_buckets : int
        Upper limit on the number of buckets; a table with very narrow intervals gets buckets
        holding several table points, each costing one more comparison per point.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, max_buckets: int = 1 << 22) -> None:
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if x.ndim != 1 or x.shape != y.shape or len(x) < 2:
            raise ValueError("PiecewiseLinear needs two 1-D arrays of equal length >= 2")
        steps = np.diff(x)
        if not np.all(np.isfinite(x)) or np.any(steps < 0):
            raise ValueError("PiecewiseLinear needs finite, increasing abscissae")
        low, high = float(x[0]), float(x[-1])
        positive = steps[steps > 0]
        if len(positive) == 0:
            raise ValueError("PiecewiseLinear needs a table spanning a positive range")
        n_buckets = int(min(max_buckets, np.ceil(2.0 * (high - low) / positive.min()) + 1))
        self._scale = n_buckets / (high - low)
        # bucket 0 is below the table, n_buckets + 1 above it
        self._offset = low * self._scale - 1.0
        self._top = float(n_buckets + 1)
        # split points: the table's abscissae and the first number above its end
        splits = np.append(x, np.nextafter(high, np.inf))
        split_bucket = self._bucket(splits)
        self._first = np.searchsorted(split_bucket, np.arange(n_buckets + 2), side="left")
        per_bucket = np.bincount(split_bucket, minlength=n_buckets + 2)
        self._splits = []
        for rank in range(int(per_bucket.max())):
            table = np.full(n_buckets + 2, np.nan)  # NaN: never <= a point, even +inf
            has = per_bucket > rank
            table[has] = splits[self._first[has] + rank]
            self._splits.append(table)
        # value = y0 + slope · (w − x0) on each interval, as numpy.interp computes it; index 0 is
        # below the table, k + 1 the interval [x[k], x[k+1]), len(x) the end point itself and
        # len(x) + 1 above the table
        with np.errstate(divide="ignore", invalid="ignore"):
            slope = np.where(steps > 0, np.diff(y) / steps, 0.0)
        self._slope = np.concatenate([[0.0], slope, [0.0, 0.0]])
        self._x0 = np.concatenate([[low], x[:-1], [high, high]])
        self._y0 = np.concatenate([[0.0], y[:-1], [y[-1], 0.0]])

    def _bucket(self, w: np.ndarray) -> np.ndarray:
        t = w * self._scale
        t -= self._offset
        # fmax/fmin rather than clip: they send NaN to bucket 0, below the table
        np.fmax(t, 0.0, out=t)
        np.fmin(t, self._top, out=t)
        return t.astype(np.intp)

    def evaluate_into(
        self,
        w: np.ndarray,
        out: np.ndarray,
        work: np.ndarray,
        bucket: np.ndarray,
        index: np.ndarray,
        flags: np.ndarray,
    ) -> np.ndarray:
        """Compute the values of a call into arrays given by the caller.

        For a caller that evaluates many chunks of points: a fresh temporary array per
        operation costs page faults that, on chunks of 10⁵ points, take longer than the
        arithmetic.

        Parameters
        ----------
        w : ndarray of float64
            Points.
        out, work : ndarray of float64
            The values are written to ``out``; ``work`` is scratch. Both of ``w``'s length.
        bucket, index : ndarray of intp
            Scratch of ``w``'s length.
        flags : ndarray of bool
            Scratch of ``w``'s length.

        Returns
        -------
        ndarray
            ``out``.
        """
        np.multiply(w, self._scale, out=work)
        work -= self._offset
        np.fmax(work, 0.0, out=work)  # NaN goes to bucket 0, below the table
        np.fmin(work, self._top, out=work)
        np.copyto(bucket, work, casting="unsafe")  # truncation, as astype(intp)
        np.take(self._first, bucket, out=index)
        for table in self._splits:
            np.take(table, bucket, out=work)
            np.less_equal(work, w, out=flags)
            index += flags
        np.take(self._x0, index, out=out)
        np.subtract(w, out, out=out)
        np.take(self._slope, index, out=work)
        with np.errstate(invalid="ignore"):  # 0 · ±inf outside the table; set to 0 below
            out *= work
        np.take(self._y0, index, out=work)
        out += work
        np.isnan(out, out=flags)
        if flags.any():
            out[flags] = 0.0
        return out

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """Interpolated values at ``points``; 0 outside [x[0], x[-1]] and at NaN."""
        w = np.asarray(points, dtype=np.float64)
        bucket = self._bucket(w)
        index = self._first[bucket]
        for table in self._splits:
            index += table[bucket] <= w
        values = w - self._x0[index]
        with np.errstate(invalid="ignore"):  # 0 · ±inf outside the table; set to 0 below
            values *= self._slope[index]
        values += self._y0[index]
        nan = np.isnan(values)
        if nan.any():
            values[nan] = 0.0
        return values


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
