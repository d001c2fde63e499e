"""What a reduced NRES science frame says for its RV: star, fibres, barycentric times, orders."""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import astropy.units as u
import numpy as np
from astropy.io import fits

from photonpipe.errors import InputFileError
from photonpipe.spectra.barycentric import (
    ObservationMetadataError,
    bjd_tdb,
    observation_from_header,
    velocity_corrections,
)
from photonpipe.spectra.spectrum import Spectrum

log = logging.getLogger("photonpipe.echelle.rv")  # one logger for the RV modules

# --------------------------------------------------------------------------- spectra and headers


def science_name(objects: str) -> str | None:
    """Return the target name in OBJECTS (the part not none/thar/tung), or None."""
    for part in objects.split("&"):
        if part.strip().lower() not in ("none", "thar", "tung", ""):
            return part.strip()
    return None


def fibre_flag(fibres: str) -> str:
    """Return the lit-fibre character of a ZERO flag (``110`` → 1, ``011`` → 2, ``111`` → 3)."""
    codes = {"110": "1", "011": "2", "111": "3"}
    if fibres not in codes:
        raise ValueError(f"no ZERO flag for lit fibres {fibres!r}")
    return codes[fibres]


@dataclass
class Barycentric:
    """Barycentric correction and time of an exposure's mid-point."""

    correction_kms: float
    bjd_tdb: float
    midpoint: str  # ISO UTC
    midtype: str  # "geometric" or "flux-weighted"


def frame_barycentric(path: str | Path, header: fits.Header) -> Barycentric:
    """Barycentric correction [km/s] and BJD_TDB at the exposure mid-point of a frame.

    Uses RA/DEC (the pointing) and the telescope's LONG1/LAT1/HT1. The mid-point is the
    flux-weighted mid-time ``EMMIDTIM`` (ISO UTC) that the reduction derived from the raw frame's
    exposure-meter record (:mod:`photonpipe.echelle.expmeter`), ``midtype`` "flux-weighted";
    without it, the geometric DATE-OBS + EXPTIME/2, ``midtype`` "geometric". With a flux-weighted
    mid-time t̄ and its flux-weighted rms σ_t (``EMTRMS`` [s]) the correction is the mean of the
    corrections at t̄ − σ_t and t̄ + σ_t: the flux-weighted mean of v_b(t) to second order, which
    is what shifts the spectrum (v_b(t̄) alone misses ½ v_b'' σ_t², up to ≈ 3 cm/s for a 600 s
    exposure); BJD_TDB is that of t̄.

    Raises
    ------
    InputFileError
        A keyword is missing or malformed (named in the message).
    """
    midtime = header.get("EMMIDTIM")
    values = {
        "RA": header.get("RA"),
        "DEC": header.get("DEC"),
        "DATE-OBS": header.get("DATE-OBS") if midtime is None else midtime,
        # the flux-weighted time is already the mid-point: no EXPTIME/2 to add
        "EXPTIME": header.get("EXPTIME") if midtime is None else None,
        "SITELONG": header.get("LONG1"),
        "SITELAT": header.get("LAT1"),
        "SITEALT": header.get("HT1"),
    }
    if values["RA"] in (None, "N/A") or values["DEC"] in (None, "N/A"):
        raise InputFileError(path, "no target coordinates (RA/DEC) for the barycentric correction")
    if midtime is not None and "T" not in str(midtime):
        raise InputFileError(path, f"EMMIDTIM {midtime!r} is not an ISO date-time")
    try:
        spread = float(header.get("EMTRMS", 0.0)) if midtime is not None else 0.0
    except (TypeError, ValueError):
        raise InputFileError(path, f"EMTRMS {header.get('EMTRMS')!r} is not a number") from None
    if not math.isfinite(spread) or spread < 0.0:
        raise InputFileError(path, f"EMTRMS {spread!r} is not a time spread [s]")
    try:
        correction, bjd, isot = _corrections(tuple(values.items()), spread)
    except ObservationMetadataError as exc:
        raise InputFileError(path, f"barycentric correction impossible: {exc}") from None
    midtype = "geometric" if midtime is None else "flux-weighted"
    return Barycentric(correction, bjd, isot, midtype)


@functools.lru_cache(maxsize=256)
def _corrections(items: tuple[tuple[str, Any], ...], spread: float) -> tuple[float, float, str]:
    """Barycentric correction [km/s], BJD_TDB and ISO mid-time of header values (cached).

    A frame's correction is asked for more than once (ZERO stacking, then its RV); the
    ephemeris and Earth-rotation computation is ≈ 0.15 s.
    """
    observation = observation_from_header(dict(items))
    correction, _ = velocity_corrections(observation)
    bjd = bjd_tdb(observation)
    if spread > 0.0:
        # the flux-weighted mean of v_b(t), not v_b at the mean time: averaging v_b at
        # t̄ ± σ_t adds the second-order term ½ v_b'' σ_t² (≈ cm/s for 600 s)
        both = [
            velocity_corrections(replace(observation, time=observation.time + d * u.s))[0]
            for d in (-spread, spread)
        ]
        correction = 0.5 * (both[0] + both[1])
    return correction, bjd, str(observation.time.isot)


def pointing(header: fits.Header) -> tuple[float, float] | None:
    """Return the telescope's pointing (RA, Dec [deg]) from a header, or None without one."""
    from astropy.coordinates import SkyCoord

    ra, dec = header.get("RA"), header.get("DEC")
    if ra in (None, "N/A") or dec in (None, "N/A"):
        return None
    try:
        coord = SkyCoord(str(ra), str(dec), unit=("hourangle", "deg"))
    except ValueError:
        return None
    return float(coord.ra.deg), float(coord.dec.deg)


def science_orders(table: fits.FITS_rec, fibre: int) -> dict[int, Spectrum]:
    """Blaze-normalised orders of one fibre from a SPECTRUM table, masked pixels with ivar 0."""
    out = {}
    for row in table[table["FIBRE"] == fibre]:
        sigma = np.asarray(row["NORMUNCERTAINTY"], float)
        good = (np.asarray(row["MASK"]) == 0) & (sigma > 0) & np.isfinite(row["NORMFLUX"])
        ivar = np.where(good, 1.0 / np.where(good, sigma, 1.0) ** 2, 0.0)
        out[int(row["ORDER"])] = Spectrum(
            np.asarray(row["WAVELENGTH"], float), np.asarray(row["NORMFLUX"], float), ivar
        )
    return out


def signal_to_noise(table: fits.FITS_rec, fibre: int) -> float:
    """Median over orders of the 95th percentile of FLUX/UNCERTAINTY (≈ S/N at blaze peak)."""
    values = []
    for row in table[table["FIBRE"] == fibre]:
        good = (np.asarray(row["MASK"]) == 0) & (np.asarray(row["UNCERTAINTY"]) > 0)
        if good.sum() > 10:
            values.append(np.percentile(row["FLUX"][good] / row["UNCERTAINTY"][good], 95))
    return float(np.median(values)) if values else 0.0
