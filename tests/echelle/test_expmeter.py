"""Exposure meter: the raw frames' EXPOSURE_METER table and the flux-weighted mid-point of RVs.

One small simulated night (``cloud_night``): HD 1461 observed 2 × 600 s, the second frame under
a cloud that lets 30 % of the light through during its first 300 s. The simulator shifts that
star with the flux-weighted mean barycentric correction; the pipeline must find the
flux-weighted mid-time in the exposure meter and evaluate its correction there. Both frames are
reduced, stacked into a ZERO and measured with ``photonpipe echelle rv``, which writes BARYCORR,
BJD, MIDTIME and MIDTYPE into the 1-D products.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from astropy.time import Time

from helpers.echelle_rv import cli, reduced_rv_night, stack_zero
from photonpipe.echelle import expmeter
from photonpipe.echelle import observation as eobs
from photonpipe.echelle import templates as etemplates
from photonpipe.echelle.formats import read_raw
from photonpipe.echelle.science import reduce_science
from photonpipe.echelle.simulate import Cloud, NightPlan, SimulatedNight
from photonpipe.errors import InputFileError
from photonpipe.platform.archive import Archive
from photonpipe.platform.db import Database
from photonpipe.spectra.barycentric import (
    bjd_tdb,
    observation_from_header,
    offline_earth_orientation,
    velocity_corrections,
)

EXPTIME = 600.0
CLOUD = Cloud(0.0, 300.0, 0.3)


@dataclass
class CloudNight:
    """The simulated night, its archive and database, and the reduced 1-D headers by raw file."""

    root: Path
    archive: Archive
    database: Database
    simulated: SimulatedNight
    truth: dict[str, dict[str, object]]  # raw file → truth of the science frame
    headers: dict[str, fits.Header]  # raw file → header of the 1-D product (after the RV)


@pytest.fixture(scope="module")
def cloud_night(tmp_path_factory: pytest.TempPathFactory) -> CloudNight:
    root = tmp_path_factory.mktemp("nres-expm")
    night = reduced_rv_night(
        root,
        NightPlan(
            science=2,
            science_exptime=EXPTIME,
            target="HD1461",
            science_transparency=[None, CLOUD],
        ),
        seed=31,
    )
    archive, database, simulated, spectra = (
        night.archive,
        night.database,
        night.simulated,
        night.spectra,
    )
    assert len(spectra) == 2
    out = stack_zero(root, spectra[0], spectra[1])
    assert re.search(r"ZERO: (\S+)", out), out
    code, out = cli(root, "echelle", "rv", *map(str, spectra))
    assert code == 0, out
    headers = {}
    for spectrum in spectra:
        header = fits.getheader(spectrum)
        headers[str(header["RAWFILE"])] = header
    truth = {str(f["file"]): f for f in simulated.truth.frames if "rv" in f}
    return CloudNight(root, archive, database, simulated, truth, headers)


def _geometric(header: fits.Header) -> tuple[float, float]:
    """Barycentric correction [km/s] and BJD_TDB at DATE-OBS + EXPTIME/2, computed here."""
    observation = observation_from_header(
        {
            "RA": header["RA"],
            "DEC": header["DEC"],
            "DATE-OBS": header["DATE-OBS"],
            "EXPTIME": header["EXPTIME"],
            "SITELONG": header["LONG1"],
            "SITELAT": header["LAT1"],
            "SITEALT": header["HT1"],
        }
    )
    return velocity_corrections(observation)[0], bjd_tdb(observation)


def test_flux_weighted_midpoint_by_hand() -> None:
    # samples of 10 s starting at 0, 10, 20 s; mid-times 5, 15, 25 s; counts 1, 2, 7:
    # (1·5 + 2·15 + 7·25) / 10 = 21 s after the first sample's start
    start = 61100.0
    mjd = expmeter.flux_weighted_midpoint(
        start + np.array([0.0, 10.0, 20.0]) / 86400.0,
        np.array([10.0, 10.0, 10.0]),
        np.array([1.0, 2.0, 7.0]),
    )
    assert mjd is not None
    assert (mjd - start) * 86400.0 == pytest.approx(21.0, abs=1e-5)
    # unusable: one sample, or no light
    assert expmeter.flux_weighted_midpoint(np.array([start]), np.array([5.0]), np.ones(1)) is None
    assert expmeter.flux_weighted_midpoint(np.full(3, start), np.ones(3), np.zeros(3)) is None


def test_raw_frames_carry_the_exposure_meter(cloud_night: CloudNight) -> None:
    science = [p for p in cloud_night.simulated.frames if p.name.endswith("-e00.fits.fz")]
    assert len(science) == 2
    for path in science:
        frame = read_raw(path)  # the reader still finds the image
        assert frame.data.shape == (1024, 1024 + 32)
        record = expmeter.read_exposure_meter(path)
        assert record is not None
        assert record.n_samples == 120  # 600 s in 5 s samples
        assert record.counts[:, 2].sum() == 0  # fibre 2 unlit
    clear, cloudy = (expmeter.read_exposure_meter(p) for p in science)
    assert clear is not None
    assert cloudy is not None
    # the star fibre sees the cloud (30 % for the first half), the Th-Ar fibre does not
    assert cloudy.counts[:60, 0].mean() / cloudy.counts[60:, 0].mean() == pytest.approx(0.3, 0.01)
    assert cloudy.counts[:60, 1].mean() == pytest.approx(cloudy.counts[60:, 1].mean(), 0.01)
    calibration = [p for p in cloud_night.simulated.frames if not p.name.endswith("-e00.fits.fz")]
    assert all(expmeter.read_exposure_meter(p) is None for p in calibration)


def test_cloudy_frame_uses_the_flux_weighted_midpoint(cloud_night: CloudNight) -> None:
    cloudy = next(
        h for raw, h in cloud_night.headers.items() if cloud_night.truth[raw]["transparency"] != 1.0
    )
    truth = cloud_night.truth[str(cloudy["RAWFILE"])]
    assert truth["transparency"] == pytest.approx(0.65)
    assert cloudy["MIDTYPE"] == "flux-weighted"
    assert cloudy["EMFIBRE"] == 0
    assert cloudy["EMNSAMP"] == 120
    # the simulator's flux-weighted mean correction, to 1 mm/s
    assert cloudy["BARYCORR"] == pytest.approx(float(truth["barycorr"]), abs=1e-6)  # type: ignore[arg-type]
    # flux-weighted mid-time: (0.3·300·150 + 300·450) / (0.3·300 + 300) = 380.77 s after DATE-OBS
    start = Time(cloudy["DATE-OBS"], scale="utc")
    offset = (Time(cloudy["MIDTIME"], scale="utc") - start).sec
    assert offset == pytest.approx(380.77, abs=0.05)
    truth_offset = (Time(str(truth["midtime"]), scale="utc") - start).sec
    assert offset == pytest.approx(truth_offset, abs=0.05)
    # measurably different from the correction at the geometric mid-point
    geometric, geometric_bjd = _geometric(cloudy)
    difference = cloudy["BARYCORR"] - geometric
    assert abs(difference) > 2e-4  # > 0.2 m/s; measured ≈ 0.93 m/s
    # BJD_TDB at the flux-weighted time: 80.8 s after the geometric one
    assert (cloudy["BJD"] - geometric_bjd) * 86400.0 == pytest.approx(offset - 300.0, abs=0.01)


def exposure_mean_correction(header: fits.Header) -> float:
    """Mean barycentric correction [km/s] over a clear exposure (1 s grid), computed here."""
    observation = observation_from_header(
        {
            "RA": header["RA"],
            "DEC": header["DEC"],
            "DATE-OBS": header["DATE-OBS"],
            "SITELONG": header["LONG1"],
            "SITELAT": header["LAT1"],
            "SITEALT": header["HT1"],
        }
    )
    times = observation.time + (np.arange(float(header["EXPTIME"])) + 0.5) * u.s
    with offline_earth_orientation():
        corrections = observation.target.radial_velocity_correction(
            kind="barycentric", obstime=times, location=observation.location
        )
    return float(np.mean(corrections.to_value(u.km / u.s)))


def test_clear_frame_midpoint_is_the_geometric_one(cloud_night: CloudNight) -> None:
    clear = next(
        h for raw, h in cloud_night.headers.items() if cloud_night.truth[raw]["transparency"] == 1.0
    )
    truth = cloud_night.truth[str(clear["RAWFILE"])]
    assert clear["MIDTYPE"] == "flux-weighted"
    start = Time(clear["DATE-OBS"], scale="utc")
    offset = (Time(clear["MIDTIME"], scale="utc") - start).sec
    assert abs(offset - EXPTIME / 2) < 1.0
    assert clear["EMTRMS"] == pytest.approx(EXPTIME / 12**0.5, abs=0.5)
    # the pipeline's correction is the mean over the exposure, as the simulator's shift; the
    # correction at the geometric mid-point differs from it by the second-order term
    # ½ v_b'' σ_t² (measured 3.2 cm/s here)
    assert clear["BARYCORR"] == pytest.approx(exposure_mean_correction(clear), abs=1e-6)
    assert clear["BARYCORR"] == pytest.approx(float(truth["barycorr"]), abs=1e-6)  # type: ignore[arg-type]
    geometric, _ = _geometric(clear)
    assert clear["BARYCORR"] == pytest.approx(geometric, abs=5e-5)


def test_unusable_record_keeps_the_geometric_midpoint(cloud_night: CloudNight) -> None:
    raw = next(p for p in cloud_night.simulated.frames if p.name.endswith("-e00.fits.fz"))
    record = expmeter.read_exposure_meter(raw)
    assert record is not None
    header = read_raw(raw).header
    start = Time(header["DATE-OBS"], scale="utc")
    # fibre 2 is unlit: no counts, no flux-weighted time, no keywords
    cards = fits.Header()
    assert expmeter.midpoint_cards(cards, raw, record, 2, start, EXPTIME) is None
    assert "EMMIDTIM" not in cards
    bary = eobs.frame_barycentric(raw, header)
    assert bary.midtype == "geometric"
    assert bary.correction_kms == pytest.approx(_geometric(header)[0], abs=1e-9)


def _rewrite_meter(source: Path, destination: Path, columns: list[fits.Column]) -> None:
    with fits.open(source) as hdul:
        image = fits.CompImageHDU(
            np.asarray(hdul[1].data), header=hdul[1].header, compression_type="RICE_1", name="SCI"
        )
        table = fits.BinTableHDU.from_columns(columns, name="EXPOSURE_METER")
        fits.HDUList([fits.PrimaryHDU(), image, table]).writeto(destination)


def test_bad_records_are_input_errors(cloud_night: CloudNight, tmp_path: Path) -> None:
    raw = next(p for p in cloud_night.simulated.frames if p.name.endswith("-e00.fits.fz"))
    with fits.open(raw) as hdul:
        good = hdul["EXPOSURE_METER"].data.copy()
    seconds = (good["MJD_START"] - good["MJD_START"][0]) * 86400.0

    def column(name: str, array: np.ndarray) -> fits.Column:
        return fits.Column(name, "D", array=array)

    counts = [column(f"FIB{f}COUNTS", good[f"FIB{f}COUNTS"]) for f in range(3)]
    missing = tmp_path / "missing.fits.fz"
    _rewrite_meter(raw, missing, [column("MJD_START", good["MJD_START"]), *counts])
    with pytest.raises(InputFileError, match=r"lacks column.*EXP_TIME") as caught:
        expmeter.read_exposure_meter(missing)
    assert caught.value.path == missing
    negative = tmp_path / "negative.fits.fz"
    _rewrite_meter(
        raw,
        negative,
        [
            column("MJD_START", good["MJD_START"]),
            column("EXP_TIME", good["EXP_TIME"]),
            column("FIB0COUNTS", -good["FIB0COUNTS"]),
            *counts[1:],
        ],
    )
    with pytest.raises(InputFileError, match="negative"):
        expmeter.read_exposure_meter(negative)
    # times in seconds instead of MJD: the mid-time falls outside the exposure; the reduction
    # of the frame fails with an error naming the file and the table
    wrong_unit = raw.with_name(raw.name.replace(raw.name.split("-")[3], "0999"))
    _rewrite_meter(
        raw,
        wrong_unit,
        [column("MJD_START", seconds), column("EXP_TIME", good["EXP_TIME"]), *counts],
    )
    try:
        with pytest.raises(InputFileError, match=r"EXPOSURE_METER.*outside") as caught:
            reduce_science(cloud_night.archive, cloud_night.database, wrong_unit)
        assert caught.value.path == wrong_unit
    finally:
        wrong_unit.unlink()
    # a header whose EMMIDTIM is not a time
    header = fits.getheader(
        next(iter(etemplates.spectrum_files(cloud_night.archive, "lsc", "nres01")))
    )
    header["EMMIDTIM"] = "yesterday"
    with pytest.raises(InputFileError, match="EMMIDTIM"):
        eobs.frame_barycentric("broken-1d.fits", header)


def test_rv_products_record_the_midpoint(cloud_night: CloudNight) -> None:
    products = sorted((cloud_night.root / "lsc/nres01/reduced/rv").glob("*-rv.fits"))
    assert len(products) == 2
    for product in products:
        header = fits.getheader(product)
        assert header["MIDTYPE"] == "flux-weighted"
        assert header["EMMIDTIM"][:19] == header["MIDTIME"][:19]
