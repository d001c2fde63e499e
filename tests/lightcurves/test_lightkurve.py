"""LightCurve ↔ lightkurve.LightCurve: the round trip, and lightkurve's science on our curves."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import lightkurve
import numpy as np
import pytest
from astropy import units as u

from helpers.lightcurves import event_files, simulate
from photonpipe.errors import MissingExtraError
from photonpipe.lightcurves import ExtractionParameters, LightCurve, extract, read_dataset
from photonpipe.lightcurves.curve import COLUMNS, LightCurveConversionError
from photonpipe.lightcurves.simulate import Exposure, Variability

PERIOD = 300.0  # s, the simulator's sinusoid


@pytest.fixture(scope="module")
def sinusoid(tmp_path_factory: pytest.TempPathFactory) -> LightCurve:
    """COS FUV, 30 % sinusoid of 300 s over 3000 s, flux-calibrated by its x1d, 10 s bins."""
    tmp = tmp_path_factory.mktemp("lk_sinusoid")
    exposure = Exposure(
        "lksn01abq",
        exptime=3000.0,
        gaps=((1200.0, 1290.0),),
        variability=Variability("sinusoid", amplitude=0.3, period=PERIOD),
    )
    dataset = read_dataset(*event_files(simulate(tmp, exposure)))
    curve = extract(dataset, ExtractionParameters(step=10.0))
    path = curve.to_fits(tmp / "lksn01abq_curve.fits")
    return LightCurve.read(path)


def _assert_same_curve(a: LightCurve, b: LightCurve) -> None:
    assert a.colnames == b.colnames
    for name, (_, unit, _) in COLUMNS.items():
        np.testing.assert_array_equal(np.asarray(a[name]), np.asarray(b[name]), err_msg=name)
        assert getattr(a[name], "unit", None) == getattr(b[name], "unit", None) == unit
    assert a.time.scale == b.time.scale == "utc"
    assert a.time.format == b.time.format == "mjd"
    np.testing.assert_array_equal(a.time.mjd, b.time.mjd)
    assert a.meta == b.meta


def test_round_trip_calibrated(sinusoid: LightCurve) -> None:
    lk = sinusoid.to_lightkurve()
    assert isinstance(lk, lightkurve.LightCurve)
    # time: the bin centres, UTC, as the product has them
    assert lk.time.scale == "utc"
    assert lk.time.format == "mjd"
    np.testing.assert_array_equal(lk.time.mjd, sinusoid["MJD"].to_value(u.d))
    # flux and its error: FLUX / FLUX_ERROR with their unit
    assert lk.meta["FLUX_ORIGIN"] == "FLUX"
    assert lk.flux.unit == u.erg / u.s / u.cm**2
    np.testing.assert_array_equal(lk.flux.value, sinusoid["FLUX"].value)
    np.testing.assert_array_equal(lk.flux_err.value, sinusoid["FLUX_ERROR"].value)
    # every product column, its unit, and the integer DATASET flags
    assert lk["NET"].unit == u.ct / u.s
    np.testing.assert_array_equal(np.asarray(lk["DATASET"]), 1)
    # the product keywords, flat, as lightkurve users read them
    assert lk.meta["TARGNAME"] == lk.meta["LABEL"] == "SIM-STAR"
    assert lk.meta["STEP"] == 10.0
    assert lk.meta["PHOTONPIPE"]["datasets"] == ["lksn01abq"]
    back = LightCurve.from_lightkurve(lk)
    assert isinstance(back, LightCurve)
    _assert_same_curve(back, sinusoid)
    # and the product written again is the same product
    assert back.is_calibrated


def test_round_trip_uncalibrated(sinusoid: LightCurve) -> None:
    raw = copy.deepcopy(sinusoid)
    raw.header["FLUXCAL"] = "NONE"
    for name in ("FLUX", "FLUX_ERROR", "FLUX_DENSITY"):
        raw[name] = np.full(len(raw), np.nan) * raw[name].unit
    lk = raw.to_lightkurve()
    assert lk.meta["FLUX_ORIGIN"] == "NET"
    assert lk.flux.unit == u.ct / u.s
    np.testing.assert_array_equal(lk.flux.value, raw["NET"].value)
    np.testing.assert_array_equal(lk.flux_err.value, raw["ERROR"].value)
    _assert_same_curve(LightCurve.from_lightkurve(lk), raw)


def test_lightkurve_operations_keep_the_product_consistent(sinusoid: LightCurve) -> None:
    lk = sinusoid.to_lightkurve()
    cut = lk[lk.flux < np.nanpercentile(lk.flux, 90)]  # drop the brightest tenth of the bins
    back = LightCurve.from_lightkurve(cut)
    assert len(back) == len(cut) < len(sinusoid)
    keep = np.isin(sinusoid["MJD"].value, back["MJD"].value)
    np.testing.assert_array_equal(back["COUNTS"].value, sinusoid["COUNTS"].value[keep])
    # lightkurve's normalize() changes its flux, not the product columns
    normalized = lk.normalize()
    assert normalized.flux.unit == u.dimensionless_unscaled
    _assert_same_curve(LightCurve.from_lightkurve(normalized), sinusoid)


def test_lightkurve_periodogram_finds_the_simulated_period(sinusoid: LightCurve) -> None:
    """lightkurve's Lomb-Scargle on to_lightkurve() against the simulator's truth."""
    periodogram = sinusoid.to_lightkurve().to_periodogram(
        minimum_period=60 * u.s, maximum_period=1500 * u.s, oversample_factor=20
    )
    found = periodogram.period_at_max_power.to_value(u.s)
    assert found == pytest.approx(PERIOD, rel=0.02)


def test_from_lightkurve_refuses_a_foreign_curve() -> None:
    foreign = lightkurve.LightCurve(time=np.arange(10.0), flux=np.ones(10) * u.electron / u.s)
    with pytest.raises(LightCurveConversionError, match=r"no TIME, MJD, .* column\(s\)"):
        LightCurve.from_lightkurve(foreign)


def test_wrong_unit_is_refused(sinusoid: LightCurve) -> None:
    lk = sinusoid.to_lightkurve()
    lk["NET"] = lk["NET"].value * u.m
    with pytest.raises(LightCurveConversionError, match="column NET"):
        LightCurve.from_lightkurve(lk)


def test_missing_lightkurve_names_the_extra(
    sinusoid: LightCurve, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "lightkurve", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'photonpipe\[lightkurve\]'"):
        sinusoid.to_lightkurve()
