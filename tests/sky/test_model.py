"""Sky model: the regression on a known generative model, its files and commands, and (slow)
its held-out accuracy on simulated plates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits
from click.testing import CliRunner

from helpers.fits_units import assert_fits_units
from photonpipe.sky.model import (
    BIN_EDGES_NM,
    CONDITIONS,
    SkyModel,
    TrainingSet,
    evaluate,
    fit_sky_model,
    moon_phase_angle_deg,
    predicted_spectrum,
    regressors,
    write_prediction,
)


def _synthetic(
    n: int, seed: int
) -> tuple[TrainingSet, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Dark sky log-linear in the regressors plus Krisciunas & Schaefer moonlight.

    The moonlight is computed with :func:`photonpipe.sky.moonlight.moon_brightness_nl` (the
    simulator's implementation of the paper, not the model's code), per bin with its own
    extinction coefficient k (falling with wavelength) and flux per nanoLambert.
    """
    from photonpipe.sky.moonlight import moon_brightness_nl

    rng = np.random.default_rng(seed)
    conditions = pd.DataFrame(
        {
            "AIRMASS": rng.uniform(1.0, 1.6, n),
            "ZODI": rng.uniform(1.5, 5.5, n),
            "ISL": rng.uniform(0.9, 2.1, n),
            "SOLAR_FLUX_OBS": rng.uniform(70, 150, n),
            "HOURS_SINCE_SUNSET": rng.uniform(1, 11, n),
            "MONTH": rng.integers(1, 13, n).astype(float),
            "MOON_ILLUMINATION": rng.uniform(0, 1, n),
            "MOON_ALT": np.where(rng.uniform(size=n) < 0.7, -20.0, rng.uniform(5, 60, n)),
            "MOON_SEP": rng.uniform(30, 150, n),
        }
    )
    nbin = BIN_EDGES_NM.size - 1
    beta = np.column_stack(
        [
            np.linspace(-0.5, 0.5, nbin),
            np.full(nbin, -0.15),
            np.full(nbin, 0.05),
            np.full(nbin, 0.03),
            np.full(nbin, 0.3),
            np.full(nbin, 0.2),
            np.full(nbin, 0.05),
            np.full(nbin, -0.03),
        ]
    )
    centres = 0.5 * (BIN_EDGES_NM[1:] + BIN_EDGES_NM[:-1])
    k_true = 0.07 + 0.25 * (centres / 400.0) ** -4  # Rayleigh-like: 0.32 at 400 nm, 0.09 at 1 µm
    per_nl = np.linspace(0.05, 0.02, nbin)
    alpha = np.degrees(np.arccos(2.0 * conditions["MOON_ILLUMINATION"].to_numpy() - 1.0))
    target_z = np.degrees(np.arccos(1.0 / conditions["AIRMASS"].to_numpy()))
    moon = np.column_stack(
        [
            moon_brightness_nl(
                alpha,
                conditions["MOON_SEP"].to_numpy(),
                90.0 - conditions["MOON_ALT"].to_numpy(),
                target_z,
                extinction_v=float(k),
            )
            for k in k_true
        ]
    )
    truth = np.exp(regressors(conditions) @ beta.T) + moon * per_nl
    observed = truth * np.exp(rng.normal(0.0, 0.02, truth.shape))
    keys = pd.DataFrame(
        {"PLATE": np.arange(n) // 2 + 4000, "MJD": 55500, "IMG": np.arange(n), "SPECTROGRAPH": 1}
    )
    lines = pd.DataFrame({"OI_FLUX": 300 * np.exp(0.4 * regressors(conditions)[:, 4])})
    return TrainingSet(keys, conditions, observed, lines), beta, per_nl, k_true, moon * per_nl


def test_phase_angle_from_illumination() -> None:
    # illuminated fraction (1 + cos α)/2: full, quarter, new
    np.testing.assert_allclose(moon_phase_angle_deg([1.0, 0.5, 0.0]), [0.0, 90.0, 180.0])


def test_regression_recovers_a_known_sky_and_predicts_held_out_nights() -> None:
    data, beta, per_nl, k_true, moonlight = _synthetic(240, 1)
    model = fit_sky_model(data)
    np.testing.assert_allclose(model.continuum_coeff, beta, atol=0.03)
    np.testing.assert_allclose(model.moon_extinction, k_true, atol=0.03)
    # Both scattering terms carry the bin's flux per nL (the paper's Rayleigh/Mie balance). In
    # the red, where k is small, the amplitude and k are nearly degenerate (1 − 10^(−0.4kX) ≈
    # 0.92 kX): only the blue bins' amplitudes are tested; the moonlight itself everywhere.
    blue = k_true > 0.15
    np.testing.assert_allclose(
        model.moon_coeff[blue], np.column_stack([per_nl, per_nl])[blue], rtol=0.1
    )
    up = moonlight[:, 0] > 0
    predicted = model.moonlight(data.conditions)
    assert np.all(predicted[~up] == 0.0)
    relative = np.abs(predicted[up] / moonlight[up] - 1.0)
    assert np.median(relative) < 0.02
    assert np.percentile(relative, 95) < 0.05
    assert model.line_coeff[0, 4] == pytest.approx(0.4, abs=1e-6)
    _, quality = evaluate(data)
    assert quality["continuum_median_abs"] < 0.03  # 2 % noise
    assert quality["continuum_median_abs_dark"] < 0.03
    assert quality["continuum_median_abs_moon"] < 0.03
    assert quality["n_test"] > 40
    assert quality["n_test_moon"] > 10


def test_model_round_trips_and_predicts_files(tmp_path: Path) -> None:
    from photonpipe.cli.main import cli

    data, *_ = _synthetic(120, 2)
    model = fit_sky_model(data)
    model.to_json(tmp_path / "model.json")
    again = SkyModel.from_json(tmp_path / "model.json")
    np.testing.assert_array_equal(again.continuum_coeff, model.continuum_coeff)
    conditions = {k: float(data.conditions[k].iloc[0]) for k in CONDITIONS}
    spectrum, lines = predicted_spectrum(again, conditions)
    cont_bins, _ = model.predict({k: [v] for k, v in conditions.items()})
    centre = 0.5 * (BIN_EDGES_NM[3] + BIN_EDGES_NM[4])
    i = int(np.argmin(np.abs(spectrum["wavelength"].value - centre)))
    assert spectrum["continuum"].value[i] == pytest.approx(cont_bins[0, 3], rel=1e-3)
    assert list(lines["name"]) == ["OI"]
    # the line's flux is in the spectrum: ∫ (flux − continuum) dλ over [O I]
    w = spectrum["wavelength"].value
    near = np.abs(w - 557.89) < 1.5
    excess = np.sum((spectrum["flux"].value - spectrum["continuum"].value)[near]) * 0.05 * 10
    assert excess == pytest.approx(lines["flux"].value[0], rel=1e-3)
    written = write_prediction(spectrum, lines, tmp_path / "pred")
    assert [p.name for p in written] == [
        "sky_prediction.fits",
        "sky_prediction.ecsv",
        "sky_prediction_lines.ecsv",
        "sky_prediction.png",
    ]
    assert "TUNIT2=10**-17 erg Angstrom-1 s-1 cm-2" in assert_fits_units(written[0])
    with fits.open(written[0]) as hdus:
        assert hdus["SPECTRUM"].data["flux"].size == w.size
        assert hdus[0].header["AIRMASS"] == pytest.approx(conditions["AIRMASS"])
    result = CliRunner().invoke(
        cli,
        [
            "sky",
            "predict",
            "--model",
            str(tmp_path / "model.json"),
            "--airmass",
            "1.3",
            "--moon-alt",
            "40",
            "--moon-illumination",
            "0.8",
            "--moon-sep",
            "60",
            "--out",
            str(tmp_path / "cli"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "cli" / "sky_prediction.png").exists()
    moonlit = pd.read_csv(tmp_path / "cli" / "sky_prediction.ecsv", comment="#", sep=" ")
    dark = pd.read_csv(tmp_path / "pred" / "sky_prediction.ecsv", comment="#", sep=" ")
    assert moonlit["continuum"].median() > dark["continuum"].median()


def test_bad_model_file_is_refused(tmp_path: Path) -> None:
    from photonpipe.errors import InputFileError

    (tmp_path / "m.json").write_text("{not json")
    with pytest.raises(InputFileError, match=r"m\.json"):
        SkyModel.from_json(tmp_path / "m.json")


@pytest.mark.slow
def test_sky_model_predicts_held_out_simulated_plates_within_five_percent(tmp_path: Path) -> None:
    """24 random plates (mostly dark: BOSS observed in dark time) + 24 with the Moon up.

    Held-out plates over four random splits, dark and moon-up observations separately.
    """
    from photonpipe.sky.flux import DEFAULT_WAVE_RANGES_NM
    from photonpipe.sky.model import training_set
    from photonpipe.sky.pipeline import BuildOptions, build_plate
    from photonpipe.sky.pixmask import DEFAULT_REJECT_FLAGS
    from photonpipe.sky.simulate import simulate_boss

    plates = simulate_boss(
        tmp_path / "in", 24, 3, fibres_per_spectrograph=10, exposures=2, moon_up=24
    )
    options = BuildOptions(dict(DEFAULT_WAVE_RANGES_NM), tuple(DEFAULT_REJECT_FLAGS))
    for plate in plates:
        build_plate(
            {
                "plate_dir": str(plate.directory),
                "output_dir": str(tmp_path / "ds"),
                "options": options,
            }
        )
    data = training_set(tmp_path / "ds")
    up = data.conditions["MOON_ALT"] > 0
    assert up.sum() >= 80
    assert (~up).sum() >= 80
    # the moon-up nights span crescent to gibbous Moons (BOSS: illuminated fraction ≤ 0.6)
    assert data.conditions["MOON_ILLUMINATION"][up].min() < 0.15
    assert data.conditions["MOON_ILLUMINATION"][up].max() > 0.5
    for seed in range(4):
        _, quality = evaluate(data, seed=seed)
        assert quality["n_test_moon"] >= 15
        assert quality["continuum_median_abs_dark"] < 0.05
        assert quality["continuum_median_abs_moon"] < 0.05
        assert quality["continuum_p90_abs_moon"] < 0.15
    model = fit_sky_model(data)
    # The simulator's moonlight uses K&S with k = 0.172 mag/airmass at all wavelengths
    # (photonpipe.sky.moonlight's default) and the paper's Rayleigh/Mie balance: the model,
    # free in both per bin, finds them.
    assert np.nanmedian(model.moon_extinction) == pytest.approx(0.172, abs=0.02)
    ratio = model.moon_coeff[:, 1] / model.moon_coeff[:, 0]
    assert np.median(ratio) == pytest.approx(1.0, abs=0.1)
