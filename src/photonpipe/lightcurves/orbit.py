"""HST's position from the orbital elements in a dataset's support file (``_spt.fits``).

The primary header of every HST support file carries the coefficients of the flight software's
model of the orbit (HST Keyword Dictionary, "ephemeris keywords"; Ake 1995, ADASS IV, 464):

========  ==========================================================  ===========
keyword   meaning                                                     unit
========  ==========================================================  ===========
EPCHTIME  epoch of the elements, since 1985 Jan 1 0h (MJD 46066)      s
SEMILREC  semi-latus rectum p                                         m
ECCENTRY  eccentricity e (ECCENTX2 = 2e, ECBDX3 = 3e³,                –
          ECBDX4D3 = 4e³/3, ESQDX5D2 = 5e²/2: equation-of-centre
          coefficients)
MEANANOM  mean anomaly at the epoch                                   rad
FDMEANAN  first derivative of the mean anomaly (mean motion)          rev/s
SDMEANAN  second derivative of the mean anomaly                       rev/s²
ARGPERIG  argument of perigee at the epoch                            rev
RCARGPER  rate of change of the argument of perigee                   rev/s
RASCASCN  right ascension of the ascending node at the epoch          rev
RCASCNRV  rate of change of the right ascension of the node           rev/s
COSINCLI  cosine of the inclination (SINEINCL its sine)               –
CIRVELOC  circular orbit velocity √(GM/p)                             m/s
HSTHORB   half the orbital period                                     s
========  ==========================================================  ===========

Propagation (as the flight software does it): mean anomaly M = M₀ + 2π(ṅΔt + ½n̈Δt²); true
anomaly from the equation of the centre to third order in e; r = p / (1 + e cos v); the node and
the perigee drift linearly; the position follows from the three rotations of the orbital plane.
The frame is the Earth's equator and equinox of J2000 (GCRS to the accuracy that matters for
light travel times: a 7000 km vector rotated by 0.1° changes them by 0.04 ms). Times are taken
as UTC MJD, as CALCOS does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

from photonpipe.lightcurves.formats import (
    LightCurveInputError,
    MissingKeywordError,
    UnreadableFileError,
    rootname_of,
)
from photonpipe.platform.headers import check_fits_structure, malformed_fits

#: MJD of 1985 January 1, 0h: the zero of EPCHTIME.
MJD_1985 = 46066.0
#: Orbital-element keywords of an HST support file, in the order of :class:`HSTOrbit`'s fields.
ORBIT_KEYWORDS = (
    "EPCHTIME",
    "SEMILREC",
    "ECCENTRY",
    "ECCENTX2",
    "ECBDX3",
    "ECBDX4D3",
    "ESQDX5D2",
    "MEANANOM",
    "FDMEANAN",
    "SDMEANAN",
    "ARGPERIG",
    "RCARGPER",
    "RASCASCN",
    "RCASCNRV",
    "COSINCLI",
    "SINEINCL",
    "CIRVELOC",
    "HSTHORB",
)
_TWO_PI = 2.0 * np.pi


@dataclass(frozen=True)
class HSTOrbit:
    """HST's orbital elements from a support file (units: see the module table)."""

    epchtime: float
    semilrec: float
    eccentry: float
    eccentx2: float
    ecbdx3: float
    ecbdx4d3: float
    esqdx5d2: float
    meananom: float
    fdmeanan: float
    sdmeanan: float
    argperig: float
    rcargper: float
    rascascn: float
    rcascnrv: float
    cosincli: float
    sineincl: float
    cirveloc: float
    hsthorb: float
    #: The support file they were read from ("" when made in memory).
    source: str = ""

    @classmethod
    def from_header(cls, header: Any, path: str | os.PathLike[str] = "") -> HSTOrbit:
        """Read the elements from a primary header.

        Raises
        ------
        MissingKeywordError
            A keyword is absent or not a number (the message names it and the file).
        """
        values = []
        missing = [k for k in ORBIT_KEYWORDS if k not in header]
        if missing:
            raise MissingKeywordError(
                Path(path), f"support file lacks orbital element(s) {', '.join(missing)}"
            )
        for key in ORBIT_KEYWORDS:
            try:
                values.append(float(header[key]))
            except (TypeError, ValueError):
                raise MissingKeywordError(
                    Path(path), f"orbital element {key} = {header[key]!r} is not a number"
                ) from None
        if not values[1] > 0 or not 0 <= values[2] < 1:
            raise LightCurveInputError(
                Path(path), f"implausible orbit: SEMILREC = {values[1]}, ECCENTRY = {values[2]}"
            )
        elements = dict(
            zip([f.name for f in fields(cls) if f.name != "source"], values, strict=True)
        )
        return cls(**elements, source=Path(path).name if path else "")

    def to_header(self) -> dict[str, float]:
        """Return the keywords and values (for writing a support file)."""
        names = [f.name for f in fields(self) if f.name != "source"]
        return {
            key: float(getattr(self, name)) for key, name in zip(ORBIT_KEYWORDS, names, strict=True)
        }

    @property
    def period(self) -> float:
        """Orbital period 2·HSTHORB [s]."""
        return 2.0 * self.hsthorb

    def _angles(self, mjd: np.ndarray) -> tuple[np.ndarray, ...]:
        dt = (np.asarray(mjd, dtype=np.float64) - MJD_1985) * 86400.0 - self.epchtime
        m = self.meananom + _TWO_PI * (self.fdmeanan * dt + 0.5 * self.sdmeanan * dt * dt)
        sin_m, cos_m = np.sin(m), np.cos(m)
        v = m + sin_m * (
            self.eccentx2
            + self.ecbdx3 * cos_m * cos_m
            - self.ecbdx4d3 * sin_m * sin_m
            + self.esqdx5d2 * cos_m
        )
        r = self.semilrec / (1.0 + self.eccentry * np.cos(v))
        perigee = _TWO_PI * (self.argperig + self.rcargper * dt)
        node = _TWO_PI * (self.rascascn + self.rcascnrv * dt)
        return v, r, perigee + v, node

    def position(self, mjd: np.ndarray | float) -> np.ndarray:
        """Geocentric position at UTC MJD ``mjd``, shape (..., 3) [km] (equator of J2000)."""
        _, r, u, node = self._angles(np.asarray(mjd))
        cos_u, sin_u = np.cos(u), np.sin(u)
        cos_n, sin_n = np.cos(node), np.sin(node)
        x = r * (cos_n * cos_u - self.cosincli * sin_n * sin_u)
        y = r * (sin_n * cos_u + self.cosincli * cos_n * sin_u)
        z = r * self.sineincl * sin_u
        return np.stack([x, y, z], axis=-1) / 1000.0

    def velocity(self, mjd: np.ndarray | float) -> np.ndarray:
        """Geocentric velocity at UTC MJD ``mjd``, shape (..., 3) [km/s].

        Radial speed ``√(GM/p)·e·sin v`` and transverse speed ``√(GM/p)(1 + e cos v)`` plus the
        drift of the perigee (in the orbital plane) and of the node (about the pole).
        """
        v, r, u, node = self._angles(np.asarray(mjd))
        cos_u, sin_u = np.cos(u), np.sin(u)
        cos_n, sin_n = np.cos(node), np.sin(node)
        radial_unit = np.stack(
            [
                cos_n * cos_u - self.cosincli * sin_n * sin_u,
                sin_n * cos_u + self.cosincli * cos_n * sin_u,
                self.sineincl * sin_u,
            ],
            axis=-1,
        )
        along_unit = np.stack(
            [
                -cos_n * sin_u - self.cosincli * sin_n * cos_u,
                -sin_n * sin_u + self.cosincli * cos_n * cos_u,
                self.sineincl * cos_u,
            ],
            axis=-1,
        )
        radial = self.cirveloc * self.eccentry * np.sin(v)
        along = self.cirveloc * (1.0 + self.eccentry * np.cos(v)) + _TWO_PI * self.rcargper * r
        node_rate = _TWO_PI * self.rcascnrv
        position = radial_unit * r[..., None]
        about_pole = node_rate * np.stack(
            [-position[..., 1], position[..., 0], np.zeros_like(r)], axis=-1
        )
        return (
            radial_unit * radial[..., None] + along_unit * along[..., None] + about_pole
        ) / 1000.0


def is_support_file(header: Any) -> bool:
    """Whether a primary header is an HST support file's (it carries the orbital elements)."""
    return all(key in header for key in ("EPCHTIME", "SEMILREC", "FDMEANAN"))


def read_spt(path: str | os.PathLike[str]) -> HSTOrbit:
    """Read HST's orbital elements from a support file ``<rootname>_spt.fits``.

    Raises
    ------
    LightCurveInputError
        Unreadable file, or a header without (valid) orbital elements.
    """
    path = Path(path)
    if not path.is_file():
        raise UnreadableFileError(path, "no such file")
    check_fits_structure(path, path, error=UnreadableFileError)
    with malformed_fits(path, UnreadableFileError):
        with fits.open(path, memmap=False) as hdul:  # getheader leaks the file on bad input
            header = hdul[0].header.copy()
        return HSTOrbit.from_header(header, path)


def support_file_beside(event_path: str | os.PathLike[str]) -> Path | None:
    """Find the support file ``<rootname>_spt.fits`` beside an event file (None if absent)."""
    event_path = Path(event_path)
    candidate = event_path.with_name(f"{rootname_of(event_path)}_spt.fits")
    return candidate if candidate.is_file() else None


#: Light travel time over HST's largest distance from the geocentre (≈ 7000 km) [s]: the
#: error bound of barycentric times computed for the geocentre.
GEOCENTRE_ERROR = 7000.0 / 299792.458


def barycentric_dates(
    mjd: np.ndarray,
    ra: float | None,
    dec: float | None,
    orbit: HSTOrbit | None,
    ephemeris: str = "builtin",
) -> tuple[np.ndarray, dict[str, Any]]:
    """BJD_TDB of UTC MJDs seen by HST, and the product keywords that describe them.

    Parameters
    ----------
    mjd : ndarray
        Times [MJD, UTC].
    ra, dec : float or None
        Target coordinates (RA_TARG, DEC_TARG) [deg, ICRS]; None gives NaN dates.
    orbit : HSTOrbit or None
        HST's orbital elements; None: the geocentre (error ≤ :data:`GEOCENTRE_ERROR`).
    ephemeris : str
        ``builtin`` or a local JPL kernel path (see
        :func:`photonpipe.spectra.barycentric.barycentric_julian_dates`).

    Returns
    -------
    bjd : ndarray
        BJD_TDB [d].
    header : dict
        BJDEPHEM (ephemeris), BJDORIG (``HST`` or ``GEOCENTRE``), BJDERR (bound on the error
        from the observer's position [s]), BJDSPT (support file).
    """
    import astropy.units as u
    from astropy.coordinates import SkyCoord
    from astropy.time import Time

    from photonpipe.spectra.barycentric import barycentric_julian_dates, ephemeris_label

    mjd = np.asarray(mjd, dtype=np.float64)
    header: dict[str, Any] = {"BJDEPHEM": ephemeris_label(ephemeris)}
    if orbit is None:
        header.update({"BJDORIG": "GEOCENTRE", "BJDERR": GEOCENTRE_ERROR, "BJDSPT": None})
    else:
        # the flight software's orbit model is good to ~ a few km over a day: < 0.05 ms
        header.update({"BJDORIG": "HST", "BJDERR": 1e-4, "BJDSPT": orbit.source or None})
    try:
        ra_deg, dec_deg = float(ra), float(dec)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        header.update({"BJDORIG": "NONE", "BJDERR": None})
        return np.full(len(mjd), np.nan), header
    if len(mjd) == 0 or not (np.isfinite(ra_deg) and np.isfinite(dec_deg)):
        return np.full(len(mjd), np.nan), header
    target = SkyCoord(ra_deg * u.deg, dec_deg * u.deg, frame="icrs")
    times = Time(mjd, format="mjd", scale="utc")
    position = orbit.position(mjd) if orbit is not None else None
    return barycentric_julian_dates(times, target, position, ephemeris=ephemeris), header
