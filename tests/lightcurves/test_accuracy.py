"""Science accuracy of the light-curve extraction against the simulator's truth and against
values derived independently of the extraction code."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from helpers.lightcurves import event_files, flat_of, simulate
from photonpipe.lightcurves.dataset import assemble_dataset, read_datasets
from photonpipe.lightcurves.extract import (
    GEOCORONAL_WINDOWS,
    ExtractionParameters,
    extract,
    poisson_sigma,
)
from photonpipe.lightcurves.simulate import (
    Exposure,
    SimulatedDataset,
    Variability,
    band_truth,
    cos_fuv_g130m,
)
from photonpipe.lightcurves.stats import variability_statistics


def _curve(simulated: SimulatedDataset, **parameters: object):  # type: ignore[no-untyped-def]
    dataset = assemble_dataset(event_files(simulated), flat=flat_of(simulated))
    return extract(dataset, ExtractionParameters(**parameters))  # type: ignore[arg-type]


def _truth_per_bin(simulated: SimulatedDataset, curve, column: str = "rate") -> np.ndarray:  # type: ignore[no-untyped-def]
    """Mean of the 1-s truth over each bin's good time."""
    truth = Table.read(simulated.truth)
    time = np.asarray(truth["time"])
    good = np.asarray(truth["good"])
    values = np.asarray(truth[column])
    step = float(curve.header["STEP"])
    out = []
    for start in np.asarray(curve["TIME"]):
        inside = good & (time >= start) & (time < start + step)
        out.append(values[inside].mean())
    return np.asarray(out)


def test_constant_source_rate_within_poisson_errors(cos_constant: SimulatedDataset) -> None:
    curve = _curve(cos_constant, step=5.0)
    truth = _truth_per_bin(cos_constant, curve)
    pull = (np.asarray(curve["NET"]) - truth) / np.asarray(curve["ERROR"])
    assert len(pull) > 500
    assert np.mean(np.abs(pull) <= 1) >= 0.60
    assert np.mean(np.abs(pull) <= 3) >= 0.99
    # and the errors are honest, not inflated: the pulls have unit scatter
    assert 0.85 < np.std(pull) < 1.15


def test_gti_gaps_never_make_zero_flux_bins(cos_constant: SimulatedDataset) -> None:
    curve = _curve(cos_constant, step=10.0)
    exposure = np.asarray(curve["BIN_EXPTIME"])
    start = np.asarray(curve["TIME"])
    gti = np.asarray(Table.read(cos_constant.truth).meta["gti"])
    assert np.all(exposure > 0)
    # every bin overlaps good time, and its exposure is exactly that overlap
    overlap = np.zeros(len(start))
    for a, b in gti:
        overlap += np.clip(np.minimum(start + 10.0, b) - np.maximum(start, a), 0, None)
    np.testing.assert_allclose(exposure, overlap, rtol=0, atol=1e-6)
    partial = exposure < 9.99
    assert partial.sum() == 3  # cut by the gap ending at 2033 s, the bad time and the burst
    truth = _truth_per_bin(cos_constant, curve)
    pull = (np.asarray(curve["NET"]) - truth) / np.asarray(curve["ERROR"])
    assert np.all(np.abs(pull[partial]) < 4)
    assert np.all(np.asarray(curve["FLUX"]) > 0.5 * np.median(np.asarray(curve["FLUX"])))


def _x1d_band_flux(x1d: Path, low: float, high: float, exclude) -> float:  # type: ignore[no-untyped-def]
    """Band flux straight from the x1d: sum of FLUX × pixel width over the band [erg/s/cm²]."""
    total = 0.0
    with fits.open(x1d) as hdul:
        for row in hdul["SCI"].data:
            wavelength = np.asarray(row["WAVELENGTH"], float)
            width = np.abs(np.gradient(wavelength))
            keep = (row["DQ"] == 0) & (wavelength >= low) & (wavelength <= high)
            for w0, w1 in exclude:
                keep &= ~((wavelength >= w0) & (wavelength <= w1))
            total += float(np.sum(np.asarray(row["FLUX"], float)[keep] * width[keep]))
    return total


def test_flux_calibration_reproduces_x1d_band_flux(cos_constant: SimulatedDataset) -> None:
    curve = _curve(cos_constant, step=30.0)
    t = np.asarray(curve["BIN_EXPTIME"])
    mean_flux = float(np.sum(np.asarray(curve["FLUX"]) * t) / t.sum())
    x1d = next(p for p in cos_constant.files if p.name.endswith("_x1d.fits"))
    expected = _x1d_band_flux(
        x1d, curve.header["WAVEMIN"], curve.header["WAVEMAX"], GEOCORONAL_WINDOWS
    )
    assert mean_flux == pytest.approx(expected, rel=0.01)
    # the flux density is the band flux over the band width, not a silent factor
    np.testing.assert_allclose(
        np.asarray(curve["FLUX_DENSITY"]) * curve.header["BANDWID"],
        np.asarray(curve["FLUX"]),
        rtol=1e-12,
    )
    assert curve.header["FLUXCAL"] == "x1d"
    # a narrower window: flux against the truth spectrum computed independently
    narrow = _curve(cos_constant, step=30.0, wave_min=1320.0, wave_max=1420.0)
    spectrum = Table.read(cos_constant.truth_spectrum)
    _, truth_flux, truth_width = band_truth(spectrum, 1320.0, 1420.0)
    t = np.asarray(narrow["BIN_EXPTIME"])
    assert float(np.sum(np.asarray(narrow["FLUX"]) * t) / t.sum()) == pytest.approx(
        truth_flux, rel=0.01
    )
    assert narrow.header["BANDWID"] == pytest.approx(truth_width, rel=0.005)


def test_sinusoid_period_recovered(tmp_path: Path) -> None:
    simulated = simulate(
        tmp_path,
        Exposure("lsin01abq", exptime=2400.0, variability=Variability("sinusoid", 0.15, 137.0)),
    )
    statistics = variability_statistics(_curve(simulated, step=5.0))
    assert statistics.significant_period
    assert statistics.best_period == pytest.approx(137.0, rel=0.01)


def test_flare_peak_time_within_one_bin(tmp_path: Path) -> None:
    simulated = simulate(
        tmp_path,
        Exposure("lfla01abq", variability=Variability("flare", amplitude=1.5, peak=803.0)),
    )
    step = 10.0
    curve = _curve(simulated, step=step)
    peak_bin_centre = float(np.asarray(curve["TIME"])[np.argmax(curve["NET"])]) + step / 2
    assert abs(peak_bin_centre - 803.0) <= step


def test_background_only_gives_zero_net(tmp_path: Path) -> None:
    simulated = simulate(tmp_path, Exposure("lbkg01abq", flux=0.0, exptime=2000.0))
    curve = _curve(simulated, step=50.0)
    net = np.asarray(curve["NET"])
    error = np.asarray(curve["ERROR"])
    assert np.all(np.asarray(curve["BACKGROUND"]) > 0)
    weights = 1 / error**2
    mean = np.sum(net * weights) / weights.sum()
    assert abs(mean) < 3 / np.sqrt(weights.sum())
    assert np.mean((net / error) ** 2) < 1.5  # consistent with zero, bin by bin


def test_geocoronal_windows_are_excluded(tmp_path: Path) -> None:
    simulated = simulate(tmp_path, Exposure("lgeo01abq", exptime=1500.0))
    excluded = _curve(simulated, step=50.0)
    included = _curve(simulated, step=50.0, exclude=())
    truth_rate = Table.read(simulated.truth).meta["band_rate"]
    t = np.asarray(excluded["BIN_EXPTIME"])
    assert float(np.sum(np.asarray(excluded["NET"]) * t) / t.sum()) == pytest.approx(
        truth_rate, rel=0.01
    )
    # without the exclusion the airglow (≈ 15 counts/s of Lyα at night-time minimum 20%) leaks in
    assert float(np.mean(np.asarray(included["NET"]))) > truth_rate + 3.0


@pytest.mark.parametrize("mode", ["G185M", "G140L", "E140M"])
def test_other_modes_recover_the_source_rate(tmp_path: Path, mode: str) -> None:
    simulated = simulate(
        tmp_path, Exposure(f"osim{mode[1:4]}q", mode=mode, exptime=1500.0, flat_file=True)
    )
    curve = _curve(simulated, step=50.0)
    truth = Table.read(simulated.truth)
    t = np.asarray(curve["BIN_EXPTIME"])
    mean_net = float(np.sum(np.asarray(curve["NET"]) * t) / t.sum())
    error = float(np.sqrt(np.sum((np.asarray(curve["ERROR"]) * t) ** 2)) / t.sum())
    assert abs(mean_net - truth.meta["band_rate"]) < 4 * error + 0.003 * truth.meta["band_rate"]
    mean_flux = float(np.sum(np.asarray(curve["FLUX"]) * t) / t.sum())
    assert mean_flux == pytest.approx(truth.meta["band_flux"], rel=0.02)


def _reference_tables(tmp: Path, expstart: float) -> tuple[Path, Path]:
    """FLUXTAB with the simulator's sensitivity / 0.9 and a TDSTAB giving 0.9 at EXPSTART."""
    mode = cos_fuv_g130m()
    rows = []
    for region in mode.regions:
        wavelength = np.linspace(
            region.wavelength(region.x_min), region.wavelength(region.x_max), 500
        )
        rows.append((region.name, wavelength, region.sensitivity(wavelength) / 0.9))
    fluxtab = tmp / "sim_phot.fits"
    fits.BinTableHDU.from_columns(
        [
            fits.Column("SEGMENT", "4A", array=[r[0] for r in rows]),
            fits.Column("OPT_ELEM", "5A", array=["G130M"] * 2),
            fits.Column("CENWAVE", "J", array=[1291] * 2),
            fits.Column("APERTURE", "3A", array=["PSA"] * 2),
            fits.Column("WAVELENGTH", "500D", array=[r[1] for r in rows]),
            fits.Column("SENSITIVITY", "500D", array=[r[2] for r in rows]),
        ]
    ).writeto(fluxtab)
    # factor = (t - REF_TIME)/365.25 * SLOPE/100 + INTERCEPT = 1 yr * (-10 %/yr) + 1 = 0.9
    tdstab = tmp / "sim_tds.fits"
    times = np.array([expstart - 2000.0, expstart - 1.0, expstart + 500.0])
    slope = np.tile([[-10.0, -10.0], [-10.0, -10.0], [0.0, 0.0]], 1)
    intercept = np.tile([[0.5, 0.5], [1.0, 1.0], [0.3, 0.3]], 1)
    table = fits.BinTableHDU.from_columns(
        [
            fits.Column("SEGMENT", "4A", array=["FUVA", "FUVB"]),
            fits.Column("OPT_ELEM", "5A", array=["G130M"] * 2),
            fits.Column("APERTURE", "3A", array=["PSA"] * 2),
            fits.Column("NWL", "J", array=[2, 2]),
            fits.Column("NT", "J", array=[3, 3]),
            fits.Column("WAVELENGTH", "2D", array=[[1000.0, 2000.0]] * 2),
            fits.Column("TIME", "3D", array=[times] * 2),
            fits.Column("SLOPE", "6D", array=[slope.ravel()] * 2),
            fits.Column("INTERCEPT", "6D", array=[intercept.ravel()] * 2),
        ]
    )
    table.header["REF_TIME"] = expstart - 365.25
    table.writeto(tdstab)
    return fluxtab, tdstab


def test_reference_tables_with_tds_replace_the_x1d(tmp_path: Path) -> None:
    simulated = simulate(tmp_path, Exposure("lref01abq", exptime=1500.0))
    fluxtab, tdstab = _reference_tables(tmp_path, 58000.25)
    curve = _curve(simulated, step=50.0, fluxtab=fluxtab, tdstab=tdstab)
    assert curve.header["FLUXCAL"] == "FLUXTAB+TDSTAB"
    assert curve.header["TDSFACT"] == pytest.approx(0.9, rel=1e-9)
    t = np.asarray(curve["BIN_EXPTIME"])
    truth = Table.read(simulated.truth).meta["band_flux"]
    assert float(np.sum(np.asarray(curve["FLUX"]) * t) / t.sum()) == pytest.approx(truth, rel=0.01)


def test_without_x1d_the_flux_is_uncalibrated_not_scaled(cos_constant: SimulatedDataset) -> None:
    corrtags = [p for p in cos_constant.files if "corrtag" in p.name]
    curve = extract(read_datasets(corrtags)[0], ExtractionParameters(step=30.0))
    assert curve.header["FLUXCAL"] == "NONE"
    assert np.all(np.isnan(curve["FLUX"]))
    assert np.all(np.isnan(curve["FLUX_DENSITY"]))
    assert np.all(np.asarray(curve["NET"]) > 0)


def test_poisson_sigma_uses_gehrels_below_20_counts() -> None:
    # Gehrels (1986) eq. 7 with S = 1: upper limit N + 1 + sqrt(N + 3/4)
    np.testing.assert_allclose(
        poisson_sigma(np.array([0, 4, 19])), 1 + np.sqrt([0.75, 4.75, 19.75])
    )
    np.testing.assert_allclose(poisson_sigma(np.array([20, 100])), [np.sqrt(20), 10.0])
