"""TIME_BJD_TDB of light-curve products, and HST's position from support-file elements.

Checked against computations the code does not share: the orbit against an exact Kepler
solution with rotation matrices and the vis-viva law; the product's barycentric dates against
astropy's ``Time.light_travel_time`` with HST placed as an ``EarthLocation`` (ITRS, through
astropy's own GCRS→ITRS transformation and observatory code path), and against a JPL kernel
(DE421 from skyfield-data) instead of astropy's built-in ephemeris.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import GCRS, ITRS, CartesianRepresentation, EarthLocation, SkyCoord
from astropy.io import fits
from astropy.table import Table
from astropy.time import Time
from scipy.spatial.transform import Rotation

from helpers.lightcurves import event_files, simulate
from photonpipe.cli.main import main
from photonpipe.lightcurves.curve import LightCurve
from photonpipe.lightcurves.dataset import assemble_dataset
from photonpipe.lightcurves.extract import ExtractionParameters, extract, extract_composite
from photonpipe.lightcurves.formats import MissingKeywordError
from photonpipe.lightcurves.orbit import (
    GEOCENTRE_ERROR,
    HSTOrbit,
    barycentric_dates,
    read_spt,
)
from photonpipe.lightcurves.simulate import Exposure, hst_orbit
from photonpipe.spectra.barycentric import offline_earth_orientation

GM_EARTH = 3.986004418e14  # m^3 s^-2 (IERS)


@pytest.fixture(scope="module")
def orbit() -> HSTOrbit:
    return hst_orbit(58000.25, np.random.default_rng(5))


def _kepler_position(orbit: HSTOrbit, mjd: np.ndarray) -> np.ndarray:
    """Exact Kepler solution and three rotations: an independent formulation [km]."""
    dt = (mjd - 46066.0) * 86400.0 - orbit.epchtime
    mean = orbit.meananom + 2 * np.pi * (orbit.fdmeanan * dt + 0.5 * orbit.sdmeanan * dt**2)
    e = orbit.eccentry
    eccentric = mean.copy()
    for _ in range(20):  # Newton on E - e sin E = M
        eccentric -= (eccentric - e * np.sin(eccentric) - mean) / (1 - e * np.cos(eccentric))
    true = 2 * np.arctan2(np.sqrt(1 + e) * np.sin(eccentric / 2),
                          np.sqrt(1 - e) * np.cos(eccentric / 2))  # fmt: skip
    a = orbit.semilrec / (1 - e**2)
    r = a * (1 - e * np.cos(eccentric))
    node = 2 * np.pi * (orbit.rascascn + orbit.rcascnrv * dt)
    perigee = 2 * np.pi * (orbit.argperig + orbit.rcargper * dt)
    inclination = np.arctan2(orbit.sineincl, orbit.cosincli)
    out = []
    for k in range(len(mjd)):
        rotation = Rotation.from_euler("ZXZ", [node[k], inclination, perigee[k] + true[k]])
        out.append(rotation.apply([r[k], 0.0, 0.0]))
    return np.asarray(out) / 1000.0


def test_orbit_matches_an_exact_kepler_solution(orbit: HSTOrbit) -> None:
    mjd = 58000.25 + np.linspace(0, 0.2, 300)
    difference = np.linalg.norm(orbit.position(mjd) - _kepler_position(orbit, mjd), axis=1)
    assert difference.max() < 1e-3  # km: the equation of the centre to e³ is exact here
    radius = np.linalg.norm(orbit.position(mjd), axis=1)
    assert np.all((radius > 6880) & (radius < 6960))


def test_orbit_velocity_and_elements_are_consistent(orbit: HSTOrbit) -> None:
    mjd = 58000.25 + np.linspace(0, 0.1, 50)
    # five-point derivative; steps of seconds, since an MJD resolves only ~1 µs
    h = 2.0 / 86400.0
    p = [orbit.position(mjd + k * h) for k in (-2, -1, 1, 2)]
    numeric = (p[0] - 8 * p[1] + 8 * p[2] - p[3]) / (12 * h * 86400.0)
    np.testing.assert_allclose(orbit.velocity(mjd), numeric, atol=2e-6)  # km/s
    # the keywords' meaning: CIRVELOC = sqrt(GM/p), period = 2 HSTHORB = 1 / mean motion,
    # and vis-viva v² = GM (2/r - 1/a)
    assert orbit.cirveloc**2 * orbit.semilrec == pytest.approx(GM_EARTH, rel=1e-9)
    assert orbit.period == pytest.approx(1 / orbit.fdmeanan, rel=1e-9)
    r = np.linalg.norm(orbit.position(mjd), axis=1) * 1e3
    a = orbit.semilrec / (1 - orbit.eccentry**2)
    speed = np.linalg.norm(orbit.velocity(mjd), axis=1) * 1e3
    # the drifts of node and perigee add ~1e-4 of the speed
    np.testing.assert_allclose(speed**2, GM_EARTH * (2 / r - 1 / a), rtol=2e-3)


def _astropy_bjd(mjd: np.ndarray, ra: float, dec: float, gcrs_km: np.ndarray | None) -> np.ndarray:
    """BJD_TDB through astropy's observatory path: HST as an EarthLocation (ITRS)."""
    times = Time(mjd, format="mjd", scale="utc")
    target = SkyCoord(ra * u.deg, dec * u.deg)
    with offline_earth_orientation():
        if gcrs_km is None:
            location = EarthLocation.from_geocentric(0, 0, 0, unit=u.m)
        else:
            gcrs = GCRS(CartesianRepresentation(gcrs_km.T * u.km), obstime=times)
            itrs = gcrs.transform_to(ITRS(obstime=times))
            location = EarthLocation.from_geocentric(itrs.x, itrs.y, itrs.z)
        located = Time(times, location=location)
        return np.asarray((located.tdb + located.light_travel_time(target)).jd)


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("bjd")
    return simulate(tmp, Exposure("lbjd01abq", exptime=1500.0, ra=83.6, dec=22.0))


def test_product_bjd_agrees_with_astropy_light_travel_time(simulated, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    spt = next(p for p in simulated.files if p.name.endswith("_spt.fits"))
    dataset = assemble_dataset(event_files(simulated))
    assert dataset.orbit is not None
    assert dataset.orbit.source == spt.name
    curve = extract(dataset, ExtractionParameters(step=30.0))
    mjd = np.asarray(curve["MJD"], float)
    expected = _astropy_bjd(mjd, 83.6, 22.0, read_spt(spt).position(mjd))
    difference = (np.asarray(curve["TIME_BJD_TDB"], float) - expected) * 86400.0
    assert np.max(np.abs(difference)) < 1e-3  # s
    assert curve.header["BJDORIG"] == "HST"
    assert curve.header["BJDSPT"] == spt.name
    assert "builtin" in curve.header["BJDEPHEM"]
    # HST's position matters: the geocentric dates differ by up to ~23 ms, here by > 1 ms
    geocentric = _astropy_bjd(mjd, 83.6, 22.0, None)
    shift = (np.asarray(curve["TIME_BJD_TDB"], float) - geocentric) * 86400.0
    assert 1e-3 < np.max(np.abs(shift)) <= GEOCENTRE_ERROR
    # through the file: column, unit and keywords survive
    path = curve.to_fits(tmp_path / "c.fits")
    back = LightCurve.read(path)
    np.testing.assert_array_equal(back["TIME_BJD_TDB"], curve["TIME_BJD_TDB"])
    assert back["TIME_BJD_TDB"].unit == u.d
    header = fits.getheader(path)
    assert header["BJDORIG"] == "HST"
    assert header["BJDERR"] < 1e-3


def test_without_support_file_the_geocentre_is_used_and_said(tmp_path: Path) -> None:
    simulated = simulate(tmp_path, Exposure("lbjd02abq", exptime=800.0, support_file=False))
    assert not any(p.name.endswith("_spt.fits") for p in simulated.files)
    curve = extract(assemble_dataset(event_files(simulated)), ExtractionParameters(step=50.0))
    assert curve.header["BJDORIG"] == "GEOCENTRE"
    assert curve.header["BJDERR"] == pytest.approx(0.02335, abs=1e-4)
    mjd = np.asarray(curve["MJD"], float)
    expected = _astropy_bjd(mjd, 150.0, 2.0, None)
    assert np.max(np.abs(np.asarray(curve["TIME_BJD_TDB"]) - expected)) * 86400.0 < 1e-3


def test_a_support_file_beside_the_data_is_found(simulated) -> None:  # type: ignore[no-untyped-def]
    corrtags = [p for p in simulated.files if "corrtag" in p.name]
    dataset = assemble_dataset(corrtags)  # no spt, no x1d given
    assert dataset.orbit is not None
    assert any(p.name.endswith("_spt.fits") for p in dataset.inputs)


def test_jpl_kernel_agrees_with_the_builtin_ephemeris() -> None:
    skyfield_data = pytest.importorskip("skyfield_data")
    pytest.importorskip("jplephem")
    kernel = next(Path(skyfield_data.__file__).parent.rglob("de421.bsp"))
    mjd = 58000.25 + np.linspace(0, 1, 7)
    orbit = hst_orbit(58000.25, np.random.default_rng(1))
    builtin, h1 = barycentric_dates(mjd, 266.4, -29.0, orbit)
    jpl, h2 = barycentric_dates(mjd, 266.4, -29.0, orbit, str(kernel))
    assert np.max(np.abs(builtin - jpl)) * 86400.0 < 1e-4
    assert "de421.bsp" in h2["BJDEPHEM"]
    assert h1["BJDEPHEM"] != h2["BJDEPHEM"]


def test_composite_carries_each_datasets_bjd(tmp_path: Path) -> None:
    a = simulate(tmp_path, Exposure("lcbj01abq", exptime=600.0, expstart=58000.25))
    b = simulate(tmp_path, Exposure("lcbj02abq", exptime=600.0, expstart=58000.32,
                                    support_file=False))  # fmt: skip
    datasets = [assemble_dataset(event_files(s)) for s in (a, b)]
    composite = extract_composite(datasets, ExtractionParameters(step=60.0))
    assert composite.header["BJDORIG"] == "GEOCENTRE+HST"
    assert composite.header["BJDERR"] == pytest.approx(GEOCENTRE_ERROR)
    bjd = np.asarray(composite["TIME_BJD_TDB"], float)
    mjd = np.asarray(composite["MJD"], float)
    # BJD - JD(UTC): 69.184 s TT-UTC + Rømer delay (|delay| < 500 s)
    offset = (bjd - (mjd + 2400000.5)) * 86400.0
    assert np.all(np.abs(offset - 69.184) < 500)
    binned = composite.bin(120.0)
    assert np.all(np.isfinite(np.asarray(binned["TIME_BJD_TDB"])))


def test_truth_table_of_the_simulator_is_untouched(simulated) -> None:  # type: ignore[no-untyped-def]
    # the simulated photon times are HST's clock: the truth has no barycentric column
    assert "time" in Table.read(simulated.truth).colnames


def test_a_support_file_without_elements_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "lbad01abq_spt.fits"
    header = fits.Header({"INSTRUME": "COS", "EPCHTIME": 1.0, "SEMILREC": 6.9e6, "FDMEANAN": 1e-4})
    fits.PrimaryHDU(header=header).writeto(path)
    with pytest.raises(MissingKeywordError, match=r"lbad01abq_spt.fits.*ECCENTRY"):
        read_spt(path)


def test_unusable_ephemeris_setting_is_a_one_line_error(
    simulated,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    monkeypatch.setenv("PHOTONPIPE_LIGHTCURVE_EPHEMERIS", str(tmp_path / "de440.bsp"))
    files = [str(p) for p in event_files(simulated)]
    code = main(["lightcurve", "make", *files, "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert "lightcurve.ephemeris" in err
    assert "de440.bsp" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_orbit_header_round_trip(orbit: HSTOrbit) -> None:
    header = fits.Header(orbit.to_header())
    assert dataclasses.replace(HSTOrbit.from_header(header), source="") == orbit
