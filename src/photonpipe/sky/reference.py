"""Reference data shipped with the sky application (see ``data/README.md`` for sources).

Every loader is cached: the files are read once per process.
"""

from __future__ import annotations

import csv
import gzip
from dataclasses import dataclass
from functools import cache
from importlib import resources

import numpy as np
import numpy.typing as npt
from scipy.interpolate import RegularGridInterpolator

from photonpipe.spectra.airvac import air_to_vacuum

FloatArray = npt.NDArray[np.float64]

_DATA = resources.files("photonpipe.sky") / "data"


def _read_text(name: str) -> list[str]:
    raw = (_DATA / name).read_bytes()
    if name.endswith(".gz"):
        raw = gzip.decompress(raw)
    return [line for line in raw.decode().splitlines() if line and not line.startswith("#")]


def _read_csv(name: str) -> list[dict[str, str]]:
    lines = _read_text(name)
    reader = csv.reader(lines, skipinitialspace=True)
    header = [h.strip() for h in next(reader)]
    return [dict(zip(header, (v.strip() for v in row), strict=True)) for row in reader]


@dataclass(frozen=True)
class Plate:
    """One plate-MJD of the BOSS plate list.

    Attributes
    ----------
    plate, mjd : int
        Plate number and MJD of the observation.
    ra, dec : float
        Plate centre (J2000) [deg].
    tai_beg, tai_end : float
        First and last exposure times, TAI seconds on the MJD·86400 scale; 0 when unknown.
    nexp : int
        Number of exposures.
    exptime : float
        Total exposure time [s].
    airmass : float
        Mean airmass (0 when unknown).
    quality : str
        ``good`` or ``bad``.
    """

    plate: int
    mjd: int
    ra: float
    dec: float
    tai_beg: float
    tai_end: float
    nexp: int
    exptime: float
    airmass: float
    quality: str


@cache
def boss_plates() -> tuple[Plate, ...]:
    """Return the BOSS plate list (2647 plate-MJDs), in file order."""
    return tuple(
        Plate(
            int(r["plate"]),
            int(r["mjd"]),
            float(r["racen"]),
            float(r["deccen"]),
            float(r["tai_beg"]),
            float(r["tai_end"]),
            int(r["nexp"]),
            float(r["exptime"]),
            float(r["airmass"]),
            r["platequality"],
        )
        for r in _read_csv("boss_platelist.csv.gz")
    )


@cache
def airglow_lines_nm(arm: str) -> FloatArray:
    """Airglow (+ light-pollution) line positions for one arm [nm, vacuum].

    Parameters
    ----------
    arm : {"blue", "red"}
        Spectrograph arm.
    """
    if arm not in ("blue", "red"):
        raise ValueError(f"arm must be 'blue' or 'red', not {arm!r}")
    return np.array(
        sorted(float(line) for line in _read_text(f"airglow_lines_{arm}_vacuum_nm.csv")[1:])
    )


@dataclass(frozen=True)
class ArtificialLine:
    """A light-pollution line.

    Attributes
    ----------
    source : str
        Lamp type (``Mercury``, ``Sod. HP``, ``Sod. LP`` or empty).
    species : str
        Emitting species (``HgI``, ``NaI``, ``NaD``).
    wave_air_angstrom : float
        Air wavelength [Å].
    wave_vacuum_nm : float
        Vacuum wavelength [nm] (Ciddor 1996, :func:`photonpipe.spectra.airvac.air_to_vacuum`).
    """

    source: str
    species: str
    wave_air_angstrom: float
    wave_vacuum_nm: float


@cache
def artificial_lines() -> tuple[ArtificialLine, ...]:
    """Mercury and sodium light-pollution lines (SkyModelling ``artificial_lines.csv``)."""
    rows = _read_csv("artificial_lines.csv")
    return tuple(
        ArtificialLine(
            r["type"],
            r["name"],
            float(r["wave"]),
            float(air_to_vacuum(float(r["wave"]) / 10.0)),
        )
        for r in rows
    )


@cache
def _zodi_table() -> tuple[FloatArray, FloatArray]:
    rows = _read_csv("zodiacal_vs_ecliptic_latitude.csv")
    return (
        np.array([float(r["abs_ecl_lat_deg"]) for r in rows]),
        np.array([float(r["zodi"]) for r in rows]),
    )


def zodiacal_brightness(ecliptic_latitude_deg: npt.ArrayLike) -> FloatArray:
    """Zodiacal-light brightness at an ecliptic latitude (SkyModelling's S10-like table).

    Linear interpolation in |β|; beyond the last tabulated latitude (75°) the last value is
    used.

    Parameters
    ----------
    ecliptic_latitude_deg : array_like
        Ecliptic latitude β [deg].

    Returns
    -------
    numpy.ndarray
        Brightness in the table's relative (S10-like) units.
    """
    lat, value = _zodi_table()
    return np.interp(np.abs(np.asarray(ecliptic_latitude_deg, dtype=np.float64)), lat, value)


@cache
def _isl_interpolator() -> RegularGridInterpolator:
    rows = _read_csv("integrated_starlight_map.csv")
    ls = np.unique([float(r["gal_l_deg"]) for r in rows])
    bs = np.unique([float(r["gal_b_deg"]) for r in rows])
    grid = np.full((ls.size + 1, bs.size), np.nan)
    for r in rows:
        i = np.searchsorted(ls, float(r["gal_l_deg"]))
        j = np.searchsorted(bs, float(r["gal_b_deg"]))
        grid[i, j] = float(r["isl"])
    grid[-1] = grid[0]  # wrap l = 360° onto l = 0° so longitudes 350°–360° interpolate
    return RegularGridInterpolator((np.append(ls, 360.0), bs), grid, method="linear")


def integrated_starlight(gal_l_deg: npt.ArrayLike, gal_b_deg: npt.ArrayLike) -> FloatArray:
    """Integrated starlight at galactic coordinates (bilinear in the SkyModelling map).

    Parameters
    ----------
    gal_l_deg, gal_b_deg : array_like
        Galactic longitude and latitude [deg]; latitudes beyond ±80° are clipped to the grid.

    Returns
    -------
    numpy.ndarray
        ISL in the map's (S10-like, undocumented) units.
    """
    lon = np.mod(np.asarray(gal_l_deg, dtype=np.float64), 360.0)
    lat = np.clip(np.asarray(gal_b_deg, dtype=np.float64), -80.0, 80.0)
    lon, lat = np.broadcast_arrays(lon, lat)
    points = np.stack([lon.ravel(), lat.ravel()], axis=-1)
    return np.asarray(_isl_interpolator()(points), dtype=np.float64).reshape(lon.shape)


@cache
def _solar_flux_table() -> tuple[FloatArray, FloatArray, FloatArray]:
    rows = _read_csv("solar_flux_10cm_penticton.csv.gz")
    return (
        np.array([float(r["mjd"]) for r in rows]),
        np.array([float(r["obsflux"]) for r in rows]),
        np.array([float(r["adjflux"]) for r in rows]),
    )


def solar_flux_10cm(mjd: npt.ArrayLike, max_gap_days: float = 1.5) -> tuple[FloatArray, FloatArray]:
    """Observed and 1-AU-adjusted 10.7 cm solar flux of the measurement nearest in time.

    Parameters
    ----------
    mjd : array_like
        Times [MJD].
    max_gap_days : float
        Farther than this from any measurement the value is NaN [day].

    Returns
    -------
    observed, adjusted : numpy.ndarray
        Solar flux [sfu = 10⁻²² W m⁻² Hz⁻¹].
    """
    table_mjd, observed, adjusted = _solar_flux_table()
    mjd = np.asarray(mjd, dtype=np.float64)
    right = np.clip(np.searchsorted(table_mjd, mjd), 1, table_mjd.size - 1)
    left = right - 1
    nearest = np.where(np.abs(table_mjd[left] - mjd) <= np.abs(table_mjd[right] - mjd), left, right)
    far = np.abs(table_mjd[nearest] - mjd) > max_gap_days
    return np.where(far, np.nan, observed[nearest]), np.where(far, np.nan, adjusted[nearest])


@cache
def _photometric_table() -> tuple[FloatArray, FloatArray, FloatArray]:
    rows = _read_csv("photometric_windows.csv.gz")
    start = np.array([float(r["start_tai"]) for r in rows])
    order = np.argsort(start)
    return (
        start[order],
        np.array([float(r["end_tai"]) for r in rows])[order],
        np.array([float(r["photometric"]) for r in rows])[order],
    )


def photometric_flag(tai_seconds: npt.ArrayLike) -> FloatArray:
    """Photometricity at APO from the SkyModelling record of windows.

    Parameters
    ----------
    tai_seconds : array_like
        Times, TAI seconds on the MJD·86400 scale.

    Returns
    -------
    numpy.ndarray
        1.0 (photometric), 0.0 (not photometric) or NaN (no window covers the time).
    """
    start, end, flag = _photometric_table()
    tai = np.asarray(tai_seconds, dtype=np.float64)
    index = np.searchsorted(start, tai, side="right") - 1
    safe = np.clip(index, 0, start.size - 1)
    inside = (index >= 0) & (tai <= end[safe])
    return np.where(inside, flag[safe], np.nan)
