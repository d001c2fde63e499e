"""NRES exposure meter: the raw frame's ``EXPOSURE_METER`` table and the flux-weighted mid-time.

During a science exposure NRES's exposure meter counts the light of each fibre in short samples.
A raw frame carries the record as a binary table extension ``EXPOSURE_METER``, one row per
sample, with the columns LCO's tools read (nres-pipe's ``ingest.pro``; LCO's commissioning
script that plots the exposure meter):

========== ====== ===================================================================
column     unit   meaning
========== ====== ===================================================================
MJD_START  d      start of the sample, MJD (UTC)
EXP_TIME   s      length of the sample
FIB0COUNTS count  counts of fibre 0 (fibre order of OBJECTS: ``fibre0&fibre1&fibre2``)
FIB1COUNTS count  counts of fibre 1 (the calibration fibre)
FIB2COUNTS count  counts of fibre 2
EMFLAGS           sample flags (read, not used: their meaning is not documented)
========== ====== ===================================================================

The flux-weighted mid-time of a fibre is t̄ = Σ cᵢ tᵢ / Σ cᵢ, with tᵢ the middle of sample i
(MJD_START + EXP_TIME/2) and cᵢ its counts; all samples are used (the meter integrates while
the shutter is open). It is the time at which the barycentric correction and BJD_TDB of a
radial velocity are evaluated (:func:`photonpipe.echelle.observation.frame_barycentric`).

A record is *usable* with at least :data:`MIN_SAMPLES` samples and a positive total count in the
science fibre; an unusable one (a closed dome, a fibre the meter did not see) leaves the
geometric mid-point. A *malformed* record (missing column, non-finite or negative values, a
mid-time outside the exposure) raises :class:`~photonpipe.errors.InputFileError` naming the raw
file and the problem: a broken record is a broken raw frame, and silently falling back to the
geometric mid-point would hide an error of up to metres per second in the RV.

The reduction stores the result in the 1-D product's primary header (:func:`midpoint_cards`),
so that re-measuring an RV later needs only the 1-D product: ``EMMIDTIM`` (flux-weighted mid-time,
ISO UTC), ``EMFIBRE``, ``EMNSAMP``, ``EMCOUNTS``; the record itself stays in the raw frame
(``RAWFILE``).
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.time import Time
from astropy.utils.exceptions import AstropyUserWarning
from numpy.typing import NDArray

from photonpipe.errors import InputFileError

log = logging.getLogger("photonpipe.echelle.expmeter")

#: Name of the exposure-meter binary table extension of a raw frame.
EXTENSION = "EXPOSURE_METER"
#: Count columns, one per fibre (index = fibre number).
COUNT_COLUMNS = ("FIB0COUNTS", "FIB1COUNTS", "FIB2COUNTS")
#: Fewest samples for a usable record.
MIN_SAMPLES = 2
#: Slack [s] allowed between the flux-weighted mid-time and the shutter's open interval.
TIME_SLACK_S = 1.0


@dataclass
class ExposureMeter:
    """An exposure-meter record: sample starts [MJD, UTC], lengths [s], counts per fibre."""

    mjd_start: NDArray[np.float64]  # (n,)
    exp_time: NDArray[np.float64]  # (n,) [s]
    counts: NDArray[np.float64]  # (n, 3) [counts]

    @property
    def n_samples(self) -> int:
        """Number of samples."""
        return int(self.mjd_start.size)


def flux_weighted_midpoint(
    mjd_start: NDArray[np.float64], exp_time: NDArray[np.float64], counts: NDArray[np.float64]
) -> float | None:
    """Flux-weighted mid-time [MJD, UTC] of an exposure from its exposure-meter samples.

    Parameters
    ----------
    mjd_start : ndarray, shape (n,)
        Start of each sample [MJD, UTC].
    exp_time : ndarray, shape (n,)
        Length of each sample [s].
    counts : ndarray, shape (n,)
        Counts of one fibre in each sample.

    Returns
    -------
    float or None
        Σ cᵢ tᵢ / Σ cᵢ with tᵢ = MJD_START + EXP_TIME/2 [MJD]; None when the record is not usable
        (fewer than :data:`MIN_SAMPLES` samples or no positive total count).
    """
    start = np.asarray(mjd_start, dtype=float)
    length = np.asarray(exp_time, dtype=float)
    weight = np.asarray(counts, dtype=float)
    total = float(weight.sum())
    if start.size < MIN_SAMPLES or not total > 0.0:
        return None
    # seconds from the first sample: an MJD holds only ~1e-11 d of precision to spare
    seconds = (start - start[0]) * 86400.0 + 0.5 * length
    return float(start[0] + float(np.sum(weight * seconds)) / total / 86400.0)


def flux_weighted_spread(
    mjd_start: NDArray[np.float64], exp_time: NDArray[np.float64], counts: NDArray[np.float64]
) -> float:
    """Flux-weighted rms [s] of the sample mid-times about the flux-weighted mid-time.

    Parameters
    ----------
    mjd_start, exp_time, counts : ndarray, shape (n,)
        As :func:`flux_weighted_midpoint` (a usable record).

    Returns
    -------
    float
        σ_t = √(Σ cᵢ (tᵢ − t̄)² / Σ cᵢ) [s]; each sample counted as its uniform spread
        (EXP_TIME²/12) too.
    """
    start = np.asarray(mjd_start, dtype=float)
    length = np.asarray(exp_time, dtype=float)
    weight = np.asarray(counts, dtype=float)
    seconds = (start - start[0]) * 86400.0 + 0.5 * length
    mean = float(np.sum(weight * seconds) / weight.sum())
    variance = np.sum(weight * ((seconds - mean) ** 2 + length**2 / 12.0)) / weight.sum()
    return float(math.sqrt(variance))


def read_exposure_meter(path: str | Path) -> ExposureMeter | None:
    """Read the ``EXPOSURE_METER`` table of a raw frame (None when the frame has none).

    Raises
    ------
    InputFileError
        The table lacks a column, or holds non-finite or negative values.
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AstropyUserWarning)
            with fits.open(path) as hdul:
                if EXTENSION not in hdul:
                    return None
                hdu = hdul[EXTENSION]
                if not isinstance(hdu, fits.BinTableHDU) or hdu.data is None:
                    raise InputFileError(path, f"{EXTENSION} is not a binary table")
                names = set(hdu.columns.names)
                missing = [c for c in ("MJD_START", "EXP_TIME", *COUNT_COLUMNS) if c not in names]
                if missing:
                    raise InputFileError(path, f"{EXTENSION} lacks column(s) {', '.join(missing)}")
                data = hdu.data
                record = ExposureMeter(
                    np.asarray(data["MJD_START"], dtype=float),
                    np.asarray(data["EXP_TIME"], dtype=float),
                    np.stack([np.asarray(data[c], dtype=float) for c in COUNT_COLUMNS], axis=1),
                )
    except InputFileError:
        raise
    except (OSError, ValueError, TypeError, KeyError, IndexError) as exc:
        raise InputFileError(path, f"unreadable {EXTENSION} table ({exc})") from None
    values = np.concatenate([record.mjd_start, record.exp_time, record.counts.ravel()])
    if not np.all(np.isfinite(values)):
        raise InputFileError(path, f"{EXTENSION} holds non-finite values")
    if np.any(record.exp_time < 0) or np.any(record.counts < 0):
        raise InputFileError(path, f"{EXTENSION} holds negative sample lengths or counts")
    return record


def midpoint_cards(
    header: fits.Header,
    path: str | Path,
    record: ExposureMeter | None,
    fibre: int,
    start: Time,
    exptime: float,
) -> str | None:
    """Add the flux-weighted mid-time of ``fibre`` (``EMMIDTIM`` …) to a 1-D product's header.

    Parameters
    ----------
    header : astropy.io.fits.Header
        Header to complete (nothing is added for a missing or unusable record).
    path : path-like
        Raw frame the record came from (for the error message).
    record : ExposureMeter or None
        The frame's exposure-meter record.
    fibre : int
        Fibre carrying the star (0–2).
    start : astropy.time.Time
        Start of the exposure (DATE-OBS, UTC).
    exptime : float
        Exposure time [s].

    Returns
    -------
    str or None
        The flux-weighted mid-time (ISO UTC), or None when the record is missing or unusable.

    Raises
    ------
    InputFileError
        The flux-weighted mid-time lies outside the exposure by more than
        :data:`TIME_SLACK_S` (a malformed record, e.g. times in the wrong unit).
    """
    if record is None:
        return None
    counts = record.counts[:, fibre]
    mjd = flux_weighted_midpoint(record.mjd_start, record.exp_time, counts)
    if mjd is None:
        log.info(
            "%s: exposure meter unusable (%d samples, %.0f counts in fibre %d): geometric mid",
            Path(path).name,
            record.n_samples,
            float(counts.sum()),
            fibre,
        )
        return None
    offset = (mjd - float(start.utc.mjd)) * 86400.0
    if not (-TIME_SLACK_S <= offset <= exptime + TIME_SLACK_S) or not math.isfinite(offset):
        raise InputFileError(
            path,
            f"{EXTENSION}: flux-weighted mid-time {offset:.1f} s after DATE-OBS lies outside "
            f"the {exptime:g} s exposure",
        )
    midpoint = Time(mjd, format="mjd", scale="utc")
    midpoint.precision = 6
    header["EMMIDTIM"] = (midpoint.isot, "exp. meter flux-weighted mid-time UTC")
    header["EMFIBRE"] = (fibre, "exp. meter fibre used")
    header["EMNSAMP"] = (record.n_samples, "exp. meter samples")
    header["EMCOUNTS"] = (float(counts.sum()), "exp. meter counts of the fibre")
    spread = flux_weighted_spread(record.mjd_start, record.exp_time, counts)
    header["EMTRMS"] = (round(spread, 4), "[s] exp. meter flux-weighted rms time")
    return str(midpoint.isot)
