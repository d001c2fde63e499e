"""``photonpipe simulate boss``: BOSS spFrame, spCFrame and spFluxcalib files with a known sky.

Plates, pointings and observing times come from the real BOSS plate list. For every exposure the
simulator computes the real Moon and Sun geometry at Apache Point and gives each fibre a
physical night sky (per fibre of 2″ diameter, π arcsec²), in 10⁻¹⁷ erg s⁻¹ cm⁻² Å⁻¹:

* airglow lines at the positions of SkyModelling's line lists (O I 557.7, 630.0/636.4 nm,
  Na D, OH bands, O₂ near 865 nm, N I 520 nm), in five groups whose strengths vary per
  exposure and slightly per fibre;
* light-pollution lines (Hg I, high- and low-pressure Na) from ``artificial_lines.csv``;
* continua: zodiacal light (SkyModelling's table at the fibre's ecliptic latitude, taken as
  30 S10 per table unit — the table's units are undocumented — with a 5778 K solar shape),
  integrated starlight (map at the fibre's galactic position, same scale, 4500 K shape),
  scattered moonlight (Krisciunas & Schaefer 1991 at the fibre's Moon separation, solar shape)
  and airglow continuum (a weak power law);
* airglow line groups and continuum scaled by :func:`airglow_activity` of the exposure's
  10.7 cm solar flux, hours since sunset and month, with 5 % log-normal scatter;
* extinction at the exposure's airmass (Rayleigh at APO pressure, aerosol, ozone) on everything
  but moonlight (whose model includes its own extinction).

Lines have Gaussian profiles with the dispersion trace set's sigma, integrated over pixels.
The flux is turned into electrons with a calibration vector (telescope area, exposure time,
throughput, per-fibre throughput; the units of :mod:`photonpipe.sky.formats`), given Poisson and
read noise, and split into the sky model (HDU 6, a smoothly wrong model) and the residual
(HDU 0). Masked pixels carry corrupted values: cosmic rays (FULLREJECT), pixels rejected only by
the co-addition (COMBINEREJ, only in the spCFrame mask), a bad sky fibre (BADSKYFIBER), a
stretch of bad trace (BADTRACE), plus harmless NEARBADPIXEL flags that must not be rejected.

Wavelength solutions are cubic in the natural pixel coordinate (with the BOSS readout jump);
the trace sets written are Legendre fits of them (numpy ``legfit``), and the truth file keeps
the exact log10 λ of every sky-fibre pixel and the exact flux each pixel received, the
continuum alone (``CONT_*``), and the flux of every line as it arrived at each sky fibre
(``LINEFLUX_*``, at the vacuum positions ``LINEWAVE_*`` [nm], 10⁻¹⁷ erg s⁻¹ cm⁻²).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import astropy.units as u
import numpy as np
import numpy.typing as npt
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.table import Table
from scipy.special import ndtr

from photonpipe.errors import InputFileError
from photonpipe.platform.archive import Archive
from photonpipe.platform.progress import Progress
from photonpipe.sky.conditions import (
    APACHE_POINT,
    _altaz,
    _offline_iers,
    angular_separation_deg,
    exposure_conditions,
    exposure_ephemeris,
    fibre_coordinates,
    tai_seconds_to_time,
)
from photonpipe.sky.formats import (
    CAMERAS,
    FIBRES_PER_SPECTROGRAPH,
    frame_name,
    write_spcframe,
    write_spfluxcalib,
    write_spframe,
)
from photonpipe.sky.moonlight import moon_brightness_nl, nanolambert_to_v_mag
from photonpipe.sky.pixmask import mask_value
from photonpipe.sky.reference import (
    Plate,
    airglow_lines_nm,
    artificial_lines,
    boss_plates,
)
from photonpipe.sky.traceset import fit_traceset

FloatArray = npt.NDArray[np.float64]
log = logging.getLogger("photonpipe.sky.simulate")

NPIX = {"b": 4112, "r": 4128}
WAVE_LIMITS_ANGSTROM = {"b": (3555.0, 6340.0), "r": (5610.0, 10410.0)}
FIBRE_AREA_ARCSEC2 = np.pi  # 2″ fibres
PLATE_SCALE_MM_PER_DEG = 217.7358
TELESCOPE_AREA_CM2 = 3.65e4  # 2.5 m primary less the central obstruction
HC_ERG_ANGSTROM = 1.98644586e-8
V_ZERO_FLUX = 3.63e-9  # erg s⁻¹ cm⁻² Å⁻¹ of V = 0 at 5500 Å
S10_V_MAG_PER_ARCSEC2 = 10.0 + 2.5 * np.log10(3600.0**2)  # one 10th-mag star per deg²
S10_PER_TABLE_UNIT = 30.0
READ_NOISE_E = 4.0
EXPTIME_S = 900.0
LINE_GROUPS = ("oi_green", "oi_red", "nad", "oh", "o2", "other")
BASE_LINE_FLUX = {  # per fibre, 10⁻¹⁷ erg s⁻¹ cm⁻², before the per-exposure scale
    "oi_green": 500.0,
    "oi_red": 150.0,
    "nad": 40.0,
    "oh": 60.0,
    "o2": 120.0,
    "other": 15.0,
}
#: Laboratory air wavelengths of the atomic airglow lines [Å] (NIST): [O I] 5577, 6300, 6364;
#: Na D2, D1; [N I] 5198, 5200.
LAB_LINES_AIR_ANGSTROM = np.array(
    [5577.339, 6300.304, 6363.776, 5889.950, 5895.924, 5197.90, 5200.26]
)


#: Log-normal scatter of the airglow strengths about their dependence on the conditions.
AIRGLOW_SCATTER = 0.05


def airglow_activity(
    solar_flux_sfu: float, hours_since_sunset: float, month: float
) -> dict[str, float]:
    """Airglow strength of each line group and of the continuum for the conditions (× base).

    A simple, smooth dependence (not a fitted model of APO's sky), so that a sky model has
    something to learn: brighter with the 10.7 cm solar flux (+50 % per 100 sfu, the size of
    the solar-cycle change of the green line), fading through the night (the red [O I] lines
    after sunset fastest, e-folding in 1.5 h; green and OH more slowly) and a semi-annual
    oscillation of ±15 % peaking in April and October. Missing values (NaN) count as the
    typical 100 sfu, 4 h and March.
    """
    flux = 100.0 if not np.isfinite(solar_flux_sfu) else solar_flux_sfu
    hours = 4.0 if not np.isfinite(hours_since_sunset) else max(0.0, hours_since_sunset)
    season = 1.0 + 0.15 * np.cos(
        4.0 * np.pi * ((3.0 if not np.isfinite(month) else month) - 4.0) / 12.0
    )
    solar = max(0.2, 1.0 + 0.5 * (flux - 100.0) / 100.0)
    decay = {"oi_green": 3.0, "oi_red": 1.5, "nad": 4.0, "oh": 4.0, "o2": 3.0, "other": 4.0}
    amplitude = {"oi_green": 0.6, "oi_red": 2.0, "nad": 0.3, "oh": 0.5, "o2": 0.5, "other": 0.3}
    out = {
        g: float(solar * season * (1.0 + amplitude[g] * np.exp(-hours / decay[g])))
        for g in LINE_GROUPS
    }
    out["continuum"] = float(solar * season * (1.0 + 0.4 * np.exp(-hours / 3.0)))
    return out


@dataclass
class SimulatedPlate:
    """What the simulator wrote for one plate-MJD.

    Attributes
    ----------
    plate, mjd : int
        Plate and MJD (from the BOSS plate list).
    directory : pathlib.Path
        Directory holding the plate's files.
    truth : pathlib.Path
        Truth file.
    exposures : list of int
        Exposure numbers.
    """

    plate: int
    mjd: int
    directory: Path
    truth: Path
    exposures: list[int] = field(default_factory=list)


def _blackbody_shape(wave_angstrom: FloatArray, temperature_k: float) -> FloatArray:
    """B_λ(T) normalised to 1 at 5500 Å (dimensionless)."""
    c2 = 1.438777e8  # hc/k [Å K]

    def planck(w: FloatArray) -> FloatArray:
        return np.asarray(w**-5 / np.expm1(c2 / (w * temperature_k)))

    return planck(wave_angstrom) / planck(np.array(5500.0))


def _extinction_mag_per_airmass(wave_angstrom: FloatArray) -> FloatArray:
    """APO-like extinction: Rayleigh (730 hPa), aerosol and ozone (Chappuis) [mag/airmass]."""
    micron = wave_angstrom / 1e4
    rayleigh = 0.00879 * micron**-4.09 * (730.0 / 1013.25)
    aerosol = 0.05 * micron**-1.3
    ozone = 0.03 * np.exp(-0.5 * ((micron - 0.6) / 0.05) ** 2)
    return np.asarray(rayleigh + aerosol + ozone)


def _v_mag_to_flux(v_mag_arcsec2: FloatArray) -> FloatArray:
    """Per-fibre flux density at 5500 Å [10⁻¹⁷ erg s⁻¹ cm⁻² Å⁻¹] of a V surface brightness."""
    return np.asarray(V_ZERO_FLUX * 10.0 ** (-0.4 * v_mag_arcsec2) * 1e17 * FIBRE_AREA_ARCSEC2)


def air_to_vacuum_angstrom(wave_air: npt.ArrayLike) -> FloatArray:
    """Air to vacuum wavelength with the IAU standard refractive index (Morton 2000, eq. 3).

    The simulator's own conversion, deliberately not the analysis' Ciddor (1996) formula
    (:func:`photonpipe.spectra.airvac.air_to_vacuum`): the tests check that one against this.

    Parameters
    ----------
    wave_air : array_like
        Air wavelength [Å], > 2000 Å.

    Returns
    -------
    numpy.ndarray
        Vacuum wavelength [Å].
    """
    wave_air = np.asarray(wave_air, dtype=np.float64)
    vacuum = wave_air.copy()
    for _ in range(3):  # the index depends on the vacuum wave number: fixed-point iteration
        s2 = (1e4 / vacuum) ** 2
        n = 1.0 + 8.34254e-5 + 2.406147e-2 / (130.0 - s2) + 1.5998e-4 / (38.9 - s2)
        vacuum = wave_air * n
    return vacuum


def _line_catalogue(arm: str) -> tuple[FloatArray, list[str], FloatArray]:
    """Line positions [nm, vacuum], their group and relative strength for one arm.

    The relative strengths of OH and other lines within their group are log-normal (σ = 0.7),
    fixed per line (independent of the seed), so that bands are not flat combs.
    """
    artificial = (
        air_to_vacuum_angstrom([line.wave_air_angstrom for line in artificial_lines()]) / 10.0
    )
    lab = air_to_vacuum_angstrom(LAB_LINES_AIR_ANGSTROM) / 10.0
    waves = []
    groups = []
    for listed in airglow_lines_nm("blue" if arm == "b" else "red"):
        if np.min(np.abs(artificial - listed)) < 0.15:
            continue  # light-pollution lines are added from their own list
        # The list's atomic lines carry its air→vacuum error (up to 0.24 nm for [O I] 630):
        # they go at their laboratory positions.
        nearest = int(np.argmin(np.abs(lab - listed)))
        wave = float(lab[nearest]) if abs(lab[nearest] - listed) < 0.3 else float(listed)
        waves.append(wave)
        if abs(wave - 557.89) < 0.2:
            groups.append("oi_green")
        elif abs(wave - 630.1) < 0.3 or abs(wave - 636.45) < 0.3:
            groups.append("oi_red")
        elif 588.5 < wave < 590.5:
            groups.append("nad")
        elif 860.0 < wave < 872.0:
            groups.append("o2")
        elif wave > 600.0:
            groups.append("oh")
        else:
            groups.append("other")
    spread = np.random.default_rng(20170303 + ord(arm)).normal(0.0, 0.7, len(waves))
    relative = np.where(np.isin(groups, ["oh", "other"]), np.exp(spread), 1.0)
    return np.array(waves), groups, relative


def _wavelength_truth(
    rng: np.random.Generator, arm: str, nfib: int
) -> tuple[FloatArray, FloatArray, tuple[float, float, float]]:
    """Exact log10 λ of every pixel and the natural coordinate's jump.

    Returns the ``(nfib, npix)`` log10(λ/Å) array, the per-pixel width in dex (central
    difference of the exact function at the neighbouring pixel centres) and the jump.
    """
    npix = NPIX[arm]
    jump = (npix / 2 - 1.0, npix / 2 + 1.0, 0.6)
    x = np.arange(npix, dtype=np.float64)
    x_ext = np.arange(-1, npix + 1, dtype=np.float64)

    def natural(xx: FloatArray) -> FloatArray:
        lo, hi, val = jump
        return np.asarray(xx + val * np.clip((xx - lo) / (hi - lo), 0.0, 1.0))

    half = (npix - 1) / 2.0
    lo_w, hi_w = (np.log10(w) for w in WAVE_LIMITS_ANGSTROM[arm])
    c1 = (hi_w - lo_w) / 2.0
    pixel_dex = 2.0 * c1 / npix
    c0 = (lo_w + hi_w) / 2.0 + rng.normal(0.0, 0.4 * pixel_dex, nfib)
    c2 = -0.004 * c1 * (1.0 + rng.normal(0.0, 0.05, nfib))
    c3 = 0.002 * c1 * (1.0 + rng.normal(0.0, 0.05, nfib))

    def loglam(xx: FloatArray) -> FloatArray:
        uu = (natural(xx) - half) / half
        return np.asarray(c0[:, None] + c1 * uu + c2[:, None] * uu**2 + c3[:, None] * uu**3)

    exact = loglam(x)
    around = loglam(x_ext)
    width = (around[:, 2:] - around[:, :-2]) / 2.0
    return exact, width, jump


def _header(
    plate: Plate,
    exposure: int,
    camera: str,
    tai_beg: float,
    tai_end: float,
    pointing: dict[str, float],
    weather: dict[str, float | str],
) -> fits.Header:
    header = fits.Header()
    header["TELESCOP"] = ("SDSS 2-5m", "simulated by photonpipe")
    header["FLAVOR"] = "science"
    header["PLATEID"] = (plate.plate, "Plate ID")
    header["MJD"] = (plate.mjd, "MJD of observation")
    header["EXPOSURE"] = (exposure, "Exposure number")
    header["CAMERAS"] = (camera, "Camera")
    header["TAI-BEG"] = (tai_beg, "TAI at start of exposure [s]")
    header["TAI-END"] = (tai_end, "TAI at end of exposure [s]")
    header["DATE-OBS"] = tai_seconds_to_time(tai_beg).utc.isot[:19]
    header["EXPTIME"] = (tai_end - tai_beg, "Exposure time [s]")
    header["RA"] = (plate.ra, "Telescope RA [deg]")
    header["DEC"] = (plate.dec, "Telescope Dec [deg]")
    header["AIRMASS"] = (pointing["airmass"], "Airmass at mid-exposure")
    header["ALT"] = (pointing["alt"], "Telescope altitude [deg]")
    header["AZ"] = (pointing["az"], "Telescope azimuth [deg]")
    for key, value in weather.items():
        header[key] = value
    header["BUNIT"] = "electrons"
    return header


def _plugmap(
    rng: np.random.Generator,
    plate: Plate,
    fiberid: npt.NDArray[np.int64],
    sky: npt.NDArray[np.bool_],
) -> Table:
    n = fiberid.size
    radius = 1.49 * np.sqrt(rng.uniform(0.0, 1.0, n))
    angle = rng.uniform(0.0, 2 * np.pi, n)
    xi, eta = radius * np.cos(angle), radius * np.sin(angle)
    centre = SkyCoord(plate.ra * u.deg, plate.dec * u.deg)
    position = centre.spherical_offsets_by(xi * u.deg, eta * u.deg)
    objtype = np.where(sky, "SKY", np.where(rng.uniform(size=n) < 0.6, "GALAXY", "QSO"))
    return Table(
        {
            "HOLETYPE": np.full(n, "BOSS"),
            "RA": position.ra.deg,
            "DEC": position.dec.deg,
            "MAG": np.where(sky[:, None], 0.0, rng.uniform(18, 22, (n, 5))).astype(np.float32),
            "OBJTYPE": objtype,
            "XFOCAL": (PLATE_SCALE_MM_PER_DEG * xi).astype(np.float64),
            "YFOCAL": (PLATE_SCALE_MM_PER_DEG * eta).astype(np.float64),
            "SPECTROGRAPHID": np.where(fiberid <= FIBRES_PER_SPECTROGRAPH, 1, 2).astype(np.int32),
            "FIBERID": fiberid.astype(np.int32),
            "THROUGHPUT": np.ones(n, dtype=np.int32),
        }
    )


def _weather(rng: np.random.Generator, with_dust: bool) -> dict[str, float | str]:
    seeing50 = float(np.exp(rng.normal(np.log(1.4), 0.2)))
    airtemp = float(rng.normal(8.0, 6.0))
    weather: dict[str, float | str] = {
        "SEEING20": round(0.85 * seeing50, 3),
        "SEEING50": round(seeing50, 3),
        "SEEING80": round(1.2 * seeing50, 3),
        "RMSOFF20": round(float(rng.uniform(0.01, 0.05)), 4),
        "RMSOFF50": round(float(rng.uniform(0.03, 0.08)), 4),
        "RMSOFF80": round(float(rng.uniform(0.06, 0.15)), 4),
        "AIRTEMP": round(airtemp, 2),
        "DEWPOINT": round(airtemp - float(rng.uniform(3.0, 20.0)), 2),
        "HUMIDITY": round(float(rng.uniform(10.0, 80.0)), 1),
        "PRESSURE": round(float(rng.normal(21.55, 0.1)), 3),
        "WINDD": round(float(rng.uniform(0.0, 360.0)), 1),
        "WINDS": round(float(rng.uniform(0.0, 25.0)), 1),
        "GUSTD": round(float(rng.uniform(0.0, 360.0)), 1),
        "GUSTS": round(float(rng.uniform(0.0, 35.0)), 1),
        "QUALITY": "excellent",
    }
    for i in range(1, 6):
        weather[f"REDDEN0{i}"] = round(float(rng.uniform(0.0, 0.3)), 4)
    if with_dust:
        for key in ("DUSTA", "DUSTB", "DUSTC", "DUSTD"):
            weather[key] = round(float(rng.uniform(0.0, 5000.0)), 1)
    return weather


def _line_flux_image(
    exact: FloatArray,
    width: FloatArray,
    sigma_pix: FloatArray,
    waves_nm: FloatArray,
    line_flux: FloatArray,
) -> FloatArray:
    """Pixel-averaged flux density of Gaussian lines [flux per Å] on every fibre.

    ``line_flux`` has shape ``(nfib, nline)`` [10⁻¹⁷ erg s⁻¹ cm⁻²].
    """
    nfib, npix = exact.shape
    image = np.zeros_like(exact)
    pixels = np.arange(npix, dtype=np.float64)
    offsets = np.arange(-8, 9)
    rows = np.repeat(np.arange(nfib), offsets.size)
    for j, wave in enumerate(waves_nm):
        target = np.log10(wave * 10.0)
        x0 = np.array(
            [np.interp(target, exact[i], pixels, left=-100, right=-100) for i in range(nfib)]
        )
        inside = x0 > 0
        if not inside.any():
            continue
        centre = np.clip(np.round(x0).astype(np.int64), 0, npix - 1)
        index = centre[:, None] + offsets[None, :]
        valid = (index >= 0) & (index < npix) & inside[:, None]
        index = np.clip(index, 0, npix - 1)
        sigma = sigma_pix[np.arange(nfib), centre][:, None]
        fraction = ndtr((index + 0.5 - x0[:, None]) / sigma) - ndtr(
            (index - 0.5 - x0[:, None]) / sigma
        )
        dlambda = (
            10.0 ** exact[np.arange(nfib)[:, None], index]
            * np.log(10)
            * width[np.arange(nfib)[:, None], index]
        )
        values = np.where(valid, line_flux[:, j : j + 1] * fraction / dlambda, 0.0)
        np.add.at(image, (rows, index.ravel()), values.ravel())
    return image


def simulate_plate(
    archive: Archive,
    plate: Plate,
    seed: int,
    *,
    fibres_per_spectrograph: int = FIBRES_PER_SPECTROGRAPH,
    exposures: int | None = None,
    noise: bool = True,
    cameras: tuple[str, ...] = CAMERAS,
    progress: Progress | None = None,
) -> SimulatedPlate:
    """Write one plate's spFrame, spCFrame and spFluxcalib files and its truth file.

    Parameters
    ----------
    archive : Archive
        Output root; files go to ``{plate:04d}/`` inside it, written atomically.
    plate : Plate
        Plate-MJD from the plate list (must have a start time).
    seed : int
        Random seed (combined with the plate number).
    fibres_per_spectrograph : int
        Fibres written per spectrograph (BOSS: 500); fewer make small test files.
    exposures : int, optional
        Exposures (default: the plate list's, at most 4).
    noise : bool
        Add photon and read noise (False: the data equal the truth).
    cameras : tuple of str
        Cameras written.
    progress : Progress, optional
        Counts one item per exposure and camera written.

    Returns
    -------
    SimulatedPlate
    """
    if plate.tai_beg <= 0:
        raise InputFileError(f"plate {plate.plate}", "no observation time in the plate list")
    rng = np.random.default_rng([seed, plate.plate, plate.mjd])
    nexp = exposure_count(plate, exposures)
    tai_beg = plate.tai_beg + np.arange(nexp) * (EXPTIME_S + 120.0)
    tai_end = tai_beg + EXPTIME_S + rng.uniform(0.0, 5.0, nexp)
    tai_mid = 0.5 * (tai_beg + tai_end)
    eph = exposure_ephemeris(tai_mid)
    conditions = exposure_conditions(tai_beg, tai_end)
    with _offline_iers():
        times = tai_seconds_to_time(tai_mid)
        centre = SkyCoord(plate.ra * u.deg, plate.dec * u.deg).transform_to(_altaz(times))
    plate_alt = np.asarray(centre.alt.deg)
    plate_az = np.asarray(centre.az.deg)
    airmass = 1.0 / np.sin(np.radians(plate_alt))
    expids = [100000 + (plate.mjd - 55000) * 20 + i for i in range(nexp)]

    nper = fibres_per_spectrograph
    fiberid = np.concatenate([np.arange(1, nper + 1), np.arange(501, 501 + nper)]).astype(np.int64)
    nsky_per = max(3, round(0.1 * nper))
    sky = np.zeros(fiberid.size, dtype=bool)
    for spec in range(2):
        sky[spec * nper + rng.choice(nper, nsky_per, replace=False)] = True
    plug = _plugmap(rng, plate, fiberid, sky)
    coords = fibre_coordinates(plug["RA"], plug["DEC"])
    zodi_s10 = coords.zodiacal * S10_PER_TABLE_UNIT
    isl_s10 = coords.isl * S10_PER_TABLE_UNIT
    object_mag = rng.uniform(19.0, 22.0, fiberid.size)
    fibre_throughput = rng.normal(1.0, 0.04, fiberid.size)

    directory = archive.path(f"{plate.plate:04d}")
    directory.mkdir(parents=True, exist_ok=True)
    truth_hdus: list[fits.ImageHDU | fits.BinTableHDU] = []
    component_rows: list[dict[str, float | int | str]] = []
    line_rows: list[dict[str, float | str]] = []
    truth_name = f"truth-{plate.plate:04d}-{plate.mjd}.fits"

    for k, expid in enumerate(expids):
        weather = _weather(rng, with_dust=bool(rng.uniform() < 0.7))
        pointing = {
            "airmass": round(float(airmass[k]), 5),
            "alt": round(float(plate_alt[k]), 5),
            "az": round(float(plate_az[k]), 5),
        }
        moon_sep = angular_separation_deg(plug["RA"], plug["DEC"], eph.moon_ra[k], eph.moon_dec[k])
        sky_zenith = 90.0 - plate_alt[k]
        moon_nl = moon_brightness_nl(
            eph.moon_phase_angle[k], moon_sep, 90.0 - eph.moon_alt[k], sky_zenith
        )
        moon_v = nanolambert_to_v_mag(np.maximum(moon_nl, 1e-30))
        activity = airglow_activity(
            float(conditions["solar_flux_obs"][k]),
            float(conditions["hours_since_sunset"][k]),
            float(conditions["month"][k]),
        )
        group_scale = {
            g: activity[g] * float(np.exp(rng.normal(0.0, AIRGLOW_SCATTER))) for g in LINE_GROUPS
        }
        lp_scale = float(np.exp(rng.normal(0.0, 0.4)))
        cont_scale = activity["continuum"] * float(np.exp(rng.normal(0.0, AIRGLOW_SCATTER)))
        for camera in cameras:
            arm, spec = camera[0], int(camera[1])
            rows = slice((spec - 1) * nper, spec * nper)
            nfib = nper
            crng = np.random.default_rng([seed, plate.plate, plate.mjd, expid, ord(arm), spec])
            exact, width, jump = _wavelength_truth(crng, arm, nfib)
            npix = NPIX[arm]
            wset = fit_traceset(exact, 6, xmin=0.0, xmax=npix - 1.0, jump=jump)
            u_pix = (np.arange(npix) - (npix - 1) / 2) / ((npix - 1) / 2)
            sigma_pix = (1.05 + 0.08 * u_pix - 0.05 * u_pix**2)[None, :] * crng.normal(
                1.0, 0.02, (nfib, 1)
            )
            dispset = fit_traceset(sigma_pix, 3, xmin=0.0, xmax=npix - 1.0)
            wave = 10.0**exact  # Å
            ext_shape = _extinction_mag_per_airmass(wave)
            extinction = 10.0 ** (-0.4 * ext_shape * airmass[k])
            solar = _blackbody_shape(wave, 5778.0)
            cool = _blackbody_shape(wave, 4500.0)
            zodi = _v_mag_to_flux(S10_V_MAG_PER_ARCSEC2 - 2.5 * np.log10(zodi_s10[rows]))
            isl = _v_mag_to_flux(S10_V_MAG_PER_ARCSEC2 - 2.5 * np.log10(isl_s10[rows]))
            moon = _v_mag_to_flux(moon_v[rows]) * (moon_nl[rows] > 0)
            airglow_cont = 0.6 * cont_scale * (wave / 5500.0) ** 0.8
            continuum = (
                zodi[:, None] * solar + isl[:, None] * cool + airglow_cont
            ) * extinction + moon[:, None] * solar
            # the (fibres × pixels) float64 images are ~17 MB each: drop each one when it is no
            # longer needed, so that a camera's peak memory stays a few hundred MB
            del ext_shape, extinction, solar, cool, airglow_cont
            sky_rows = np.flatnonzero(sky[rows])
            waves_nm, groups, relative = _line_catalogue(arm)
            per_fibre = np.exp(crng.normal(0.0, 0.03, (nfib, 1)))
            base = relative * np.array([BASE_LINE_FLUX[g] * group_scale[g] for g in groups])
            line_base = per_fibre * base[None, :]
            art = list(artificial_lines())
            art_waves = air_to_vacuum_angstrom([line.wave_air_angstrom for line in art]) / 10.0
            art_flux = np.array([8.0 if line.species == "HgI" else 5.0 for line in art]) * lp_scale
            all_waves = np.concatenate([waves_nm, art_waves])
            all_flux = np.concatenate(
                [line_base, np.broadcast_to(art_flux, (nfib, art_flux.size))], axis=1
            )
            ext_at_line = 10.0 ** (
                -0.4 * _extinction_mag_per_airmass(all_waves * 10.0) * airmass[k]
            )
            lines = _line_flux_image(exact, width, sigma_pix, all_waves, all_flux * ext_at_line)
            truth_flux = continuum + lines
            continuum_sky = continuum[sky_rows]
            del continuum, lines

            throughput_peak = {"b": (4800.0, 0.06), "r": (7800.0, 0.07)}[arm]
            throughput = 0.28 * np.exp(
                -0.5 * ((exact - np.log10(throughput_peak[0])) / throughput_peak[1]) ** 2
            )
            photons_per_flux = 1e-17 * wave / HC_ERG_ANGSTROM  # photons s⁻¹ cm⁻² Å⁻¹ per unit
            dlambda_1e4 = wave * np.log(10.0) * 1e-4  # Å in a 10⁻⁴-dex pixel
            calib = (
                EXPTIME_S
                * TELESCOPE_AREA_CM2
                * throughput
                * fibre_throughput[rows, None]
                * photons_per_flux
                * dlambda_1e4
            ).astype(np.float32)
            del throughput, photons_per_flux, dlambda_1e4
            to_electrons = calib.astype(np.float64) * width / 1e-4
            objects = ~sky[rows]
            obj_flux = np.where(
                objects[:, None],
                _v_mag_to_flux(object_mag[rows])[:, None] * (wave / 5500.0) ** -1.0,
                0.0,
            )
            sky_e = truth_flux * to_electrons
            truth_sky = truth_flux[sky_rows]
            del truth_flux
            total_e = sky_e + obj_flux * to_electrons
            del obj_flux
            variance = np.maximum(total_e, 0.0) + READ_NOISE_E**2
            observed = total_e + (
                crng.normal(0.0, 1.0, total_e.shape) * np.sqrt(variance) if noise else 0.0
            )
            del total_e
            phase = crng.uniform(0, 2 * np.pi, (nfib, 1))
            model = sky_e * (1.0 + 0.03 * np.sin(2 * np.pi * np.arange(npix) / 1500.0 + phase))
            del sky_e
            residual = observed - model
            del observed
            invvar = 1.0 / variance
            del variance
            mask = np.zeros((nfib, npix), dtype=np.int64)
            cmask_extra = np.zeros((nfib, npix), dtype=np.int64)
            cosmic = crng.uniform(size=(nfib, npix)) < 0.002
            residual[cosmic] += crng.uniform(500.0, 5000.0, cosmic.sum())
            invvar[cosmic] = 0.0
            mask[cosmic] |= mask_value(["FULLREJECT"])
            combine = (crng.uniform(size=(nfib, npix)) < 0.001) & ~cosmic
            residual[combine] += crng.uniform(300.0, 3000.0, combine.sum())
            cmask_extra[combine] |= mask_value(["COMBINEREJ"])
            harmless = crng.uniform(size=(nfib, npix)) < 0.002
            mask[harmless] |= mask_value(["NEARBADPIXEL"])
            if sky_rows.size >= 3:
                bad_fibre = sky_rows[0]
                mask[bad_fibre] |= mask_value(["BADSKYFIBER"])
                residual[bad_fibre] *= 3.0
                trace_fibre = sky_rows[1]
                start = int(crng.integers(100, npix - 200))
                mask[trace_fibre, start : start + 60] |= mask_value(["BADTRACE"])
                residual[trace_fibre, start : start + 60] = -1000.0
            ximg = (50.0 + 8.0 * np.arange(nfib)[:, None] + 0.5 * u_pix[None, :] ** 2) * np.ones(
                (1, npix)
            )
            superflat = 1.0 + 0.02 * np.cos(np.pi * u_pix)[None, :] * np.ones((nfib, 1))
            header = _header(
                plate, expid, camera, float(tai_beg[k]), float(tai_end[k]), pointing, weather
            )
            header["FLATFILE"] = f"spFlat-{camera}-{expid - 1:08d}.fits.gz"
            header["ARCFILE"] = f"spArc-{camera}-{expid - 2:08d}.fits.gz"
            plug_cam = plug[rows]
            with archive.atomic_path(directory.name, frame_name("spFrame", camera, expid)) as tmp:
                write_spframe(
                    tmp,
                    header,
                    flux=residual,
                    invvar=invvar,
                    mask=mask,
                    wset=wset,
                    dispset=dispset,
                    plugmap=plug_cam,
                    sky=model,
                    ximg=ximg,
                    superflat=superflat,
                )
            per_electron = 1.0 / to_electrons
            cheader = header.copy()
            cheader["BUNIT"] = "1E-17 erg/s/cm^2/Ang"
            with archive.atomic_path(directory.name, frame_name("spCFrame", camera, expid)) as tmp:
                write_spcframe(
                    tmp,
                    cheader,
                    flux=residual * per_electron,
                    invvar=invvar / per_electron**2,
                    mask=mask | cmask_extra,
                    loglam=exact,
                    dispersion=sigma_pix,
                    plugmap=plug_cam,
                    sky=model * per_electron,
                    ximg=ximg,
                )
            fheader = fits.Header()
            fheader["CAMERAS"] = camera
            fheader["EXPOSURE"] = expid
            fheader["PLATEID"] = plate.plate
            fheader["BUNIT"] = ("electrons/(1E-17 erg/s/cm^2/Ang)", "per 1e-4 dex pixel")
            with archive.atomic_path(
                directory.name, frame_name("spFluxcalib", camera, expid)
            ) as tmp:
                write_spfluxcalib(tmp, fheader, calib)

            tag = f"{camera}-{expid:08d}"
            truth_hdus.append(fits.ImageHDU(truth_sky, name=f"FLUX_{tag}"))
            truth_hdus.append(fits.ImageHDU(exact[sky_rows], name=f"LOGLAM_{tag}"))
            # Continuum alone, and every line's flux as it arrives (extinguished, per fibre).
            truth_hdus.append(fits.ImageHDU(continuum_sky, name=f"CONT_{tag}"))
            truth_hdus.append(fits.ImageHDU(all_waves, name=f"LINEWAVE_{tag}"))
            truth_hdus.append(
                fits.ImageHDU((all_flux * ext_at_line)[sky_rows], name=f"LINEFLUX_{tag}")
            )
            for i in sky_rows:
                component_rows.append(
                    {
                        "EXPOSURE": expid,
                        "CAMERA": camera,
                        "FIBERID": int(plug_cam["FIBERID"][i]),
                        "ZODI_S10": float(zodi_s10[rows][i]),
                        "ISL_S10": float(isl_s10[rows][i]),
                        "MOON_V_MAG": float(moon_v[rows][i]) if moon_nl[rows][i] > 0 else np.nan,
                        "MOON_SEP": float(moon_sep[rows][i]),
                        "AIRGLOW_CONT_5500": 0.6 * cont_scale,
                        "AIRMASS": float(airmass[k]),
                        "LP_SCALE": lp_scale,
                        "FIBRE_LINE_SCALE": float(per_fibre[i, 0]),
                        **{f"SCALE_{g.upper()}": group_scale[g] for g in LINE_GROUPS},
                    }
                )
            if progress is not None:
                progress.update(1, status=f"plate {plate.plate} exposure {expid} {camera}")
            if camera[1] == "1":  # one line list per arm and exposure
                for wave_nm, group, strength in zip(waves_nm, groups, relative, strict=True):
                    line_rows.append(
                        {
                            "EXPOSURE": expid,
                            "ARM": arm,
                            "WAVE_NM": float(wave_nm),
                            "GROUP": group,
                            "FLUX": BASE_LINE_FLUX[group] * group_scale[group] * strength,
                        }
                    )
    truth = fits.HDUList(
        [
            fits.PrimaryHDU(),
            fits.table_to_hdu(Table(rows=component_rows)) if component_rows else fits.BinTableHDU(),
            fits.table_to_hdu(Table(rows=line_rows)) if line_rows else fits.BinTableHDU(),
            *truth_hdus,
        ]
    )
    truth[0].header["PLATEID"] = plate.plate
    truth[0].header["MJD"] = plate.mjd
    truth[0].header["NOISE"] = noise
    truth[1].header["EXTNAME"] = "COMPONENTS"
    truth[2].header["EXTNAME"] = "LINES"
    with archive.atomic_path(truth_name) as tmp:
        truth.writeto(tmp)
    return SimulatedPlate(plate.plate, plate.mjd, directory, archive.path(truth_name), expids)


def exposure_count(plate: Plate, exposures: int | None = None) -> int:
    """Exposures simulated for a plate: ``exposures``, else the plate list's / 4, 1 to 4."""
    return exposures or int(np.clip(plate.nexp // 4, 1, 4))


#: Lowest Moon altitude [deg] of the plates :func:`simulate_boss` adds with ``moon_up``.
MOON_UP_MIN_ALT_DEG = 10.0


def observable_plates() -> list[Plate]:
    """Plates of the list with a recorded start time and at least one exposure."""
    return [p for p in boss_plates() if p.tai_beg > 0 and p.nexp > 0 and p.quality == "good"]


def _moon_at_apo(tai: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Moon altitude [deg] and illuminated fraction at APO at TAI seconds.

    :func:`exposure_ephemeris` without its Sun-crossing search (slow over years of plates).
    """
    from astropy.coordinates import get_body

    with _offline_iers():
        times = tai_seconds_to_time(tai)
        moon = get_body("moon", times, APACHE_POINT)
        sun = get_body("sun", times, APACHE_POINT)
        alt = np.asarray(moon.transform_to(_altaz(times)).alt.deg)
    elongation = sun.separation(moon).rad
    r_sun, r_moon = sun.distance.to_value(u.km), moon.distance.to_value(u.km)
    phase = np.arctan2(r_sun * np.sin(elongation), r_moon - r_sun * np.cos(elongation))
    return alt, np.asarray((1.0 + np.cos(phase)) / 2.0)


def choose_plates(n_plates: int, seed: int = 1, moon_up: int = 0) -> list[Plate]:
    """Choose the plates :func:`simulate_boss` simulates (see there), in plate-list order.

    Raises
    ------
    ValueError
        ``n_plates`` < 1 or ``moon_up`` < 0.
    """
    if n_plates < 1:
        raise ValueError("n_plates must be at least 1")
    if moon_up < 0:
        raise ValueError("moon_up must not be negative")
    candidates = observable_plates()
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(candidates), size=min(n_plates, len(candidates)), replace=False)
    if moon_up:
        moon_alt, moon_illumination = _moon_at_apo(np.array([p.tai_beg for p in candidates]))
        free = ~np.isin(np.arange(len(candidates)), chosen)
        up = np.flatnonzero(free & (moon_alt >= MOON_UP_MIN_ALT_DEG))
        illumination = moon_illumination[up]
        halves = [
            up[illumination < np.median(illumination)],
            up[illumination >= np.median(illumination)],
        ]
        extra = [
            rng.choice(half, size=min(count, half.size), replace=False)
            for half, count in zip(halves, (moon_up // 2, moon_up - moon_up // 2), strict=True)
        ]
        chosen = np.concatenate([chosen, *extra])
    return [candidates[i] for i in sorted(chosen)]


def iter_simulate_boss(
    out_dir: str | os.PathLike[str],
    n_plates: int,
    seed: int = 1,
    *,
    fibres_per_spectrograph: int = FIBRES_PER_SPECTROGRAPH,
    exposures: int | None = None,
    noise: bool = True,
    moon_up: int = 0,
    progress: bool | None = None,
) -> Iterator[SimulatedPlate]:
    """Simulate plates one at a time, yielding each as soon as its files are written.

    The plates and their data are those of :func:`simulate_boss` (same arguments). Memory is
    that of one plate, whatever ``n_plates`` is: nothing of a plate is kept once it is
    written. ``progress`` shows a bar of the exposures × cameras written (default: on a
    terminal; otherwise one summary line at the end, see :mod:`photonpipe.platform.progress`).
    """
    plates = choose_plates(n_plates, seed, moon_up)
    archive = Archive(Path(out_dir))
    archive.create()
    total = sum(exposure_count(p, exposures) for p in plates) * len(CAMERAS)
    with Progress(total, "simulate boss", "frame", enabled=progress, logger=log) as bar:
        for plate in plates:
            yield simulate_plate(
                archive,
                plate,
                seed,
                fibres_per_spectrograph=fibres_per_spectrograph,
                exposures=exposures,
                noise=noise,
                progress=bar,
            )


def simulate_boss(
    out_dir: str | os.PathLike[str],
    n_plates: int,
    seed: int = 1,
    *,
    fibres_per_spectrograph: int = FIBRES_PER_SPECTROGRAPH,
    exposures: int | None = None,
    noise: bool = True,
    moon_up: int = 0,
    progress: bool | None = None,
) -> list[SimulatedPlate]:
    """Simulate ``n_plates`` real BOSS plates chosen at random (reproducibly from ``seed``).

    BOSS observed mostly in dark time, so few random plates have the Moon up; ``moon_up`` adds
    plates drawn at random among those with the Moon at least :data:`MOON_UP_MIN_ALT_DEG` above
    the horizon at the plate's start time, in equal numbers from the lower and upper half of
    their illuminated fractions (so that both crescent and gibbous Moons are seen). Plates are
    written one after the other (:func:`iter_simulate_boss`), so memory does not grow with
    ``n_plates``.

    Parameters
    ----------
    out_dir : path
        Output directory (created); one sub-directory per plate plus truth files.
    n_plates : int
        Number of plates (≥ 1).
    seed : int
        Random seed.
    fibres_per_spectrograph : int
        Fibres per spectrograph (BOSS: 500).
    exposures : int, optional
        Exposures per plate (default from the plate list, at most 4).
    noise : bool
        Add noise.
    moon_up : int
        Extra plates observed with the Moon up (≥ 0).
    progress : bool, optional
        Progress bar of the frames written (default: on a terminal).

    Returns
    -------
    list of SimulatedPlate
    """
    return list(
        iter_simulate_boss(
            out_dir,
            n_plates,
            seed,
            fibres_per_spectrograph=fibres_per_spectrograph,
            exposures=exposures,
            noise=noise,
            moon_up=moon_up,
            progress=progress,
        )
    )
