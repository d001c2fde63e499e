"""Sky analysis against the simulator's truth: line strengths, continuum points, mean spectra,
airglow/continuum separation, sky brightness, and bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from scipy.special import ndtr

from photonpipe.errors import InputFileError
from photonpipe.sky.analysis import CameraSpectra, analyse_plate_spectra, sky_brightness
from photonpipe.sky.flux import DEFAULT_WAVE_RANGES_NM, calibrate_sky_fibres
from photonpipe.sky.formats import read_spcframe, read_spfluxcalib, read_spframe
from photonpipe.sky.lines import WINDOW_SIGMA, _sigma_nm, measure_line_strengths, read_features
from photonpipe.sky.mean import mean_sky_spectrum, separate_airglow
from photonpipe.sky.simulate import SimulatedPlate


def _camera(plate: SimulatedPlate, camera: str) -> tuple[CameraSpectra, dict[str, np.ndarray]]:
    path = next(plate.directory.glob(f"spFrame-{camera}-*.fits"))
    frame = read_spframe(path)
    _, calib = read_spfluxcalib(path.with_name(path.name.replace("spFrame", "spFluxcalib")))
    cframe = read_spcframe(path.with_name(path.name.replace("spFrame", "spCFrame")))
    window = DEFAULT_WAVE_RANGES_NM[camera[0]]
    sp = calibrate_sky_fibres(frame, calib, cframe, wave_range_nm=window)
    tag = f"{camera}-{frame.exposure:08d}"
    with fits.open(plate.truth) as truth:
        t = {
            key: np.asarray(truth[f"{key}_{tag}"].data, dtype=np.float64)
            for key in ("FLUX", "CONT", "LINEWAVE", "LINEFLUX")
        }
    spectra = CameraSpectra(
        frame.exposure,
        camera,
        sp.fiberid,
        sp.wavelength_nm,
        sp.flux,
        sp.ivar,
        sp.dispersion,
        window,
    )
    return spectra, t


def _truth_in_window(
    spectra: CameraSpectra, truth: dict[str, np.ndarray], i: int, components: tuple[float, ...]
) -> float:
    """Σ line flux × the fraction of its Gaussian inside the measurement window (the sim's σ)."""
    wave = spectra.wavelength_nm[i]
    sigma = _sigma_nm(wave, spectra.dispersion[i], 0.5 * (components[0] + components[-1]))
    lo, hi = components[0] - WINDOW_SIGMA * sigma, components[-1] + WINDOW_SIGMA * sigma
    mu = truth["LINEWAVE"]
    fraction = ndtr((hi - mu) / sigma) - ndtr((lo - mu) / sigma)
    return float(np.sum(truth["LINEFLUX"][i] * fraction))


@pytest.mark.parametrize("camera", ["b1", "r2"])
def test_line_strengths_match_the_truth(analysis_plate: SimulatedPlate, camera: str) -> None:
    spectra, truth = _camera(analysis_plate, camera)
    features = read_features()
    result = measure_line_strengths(
        spectra.wavelength_nm, spectra.flux, spectra.ivar, spectra.dispersion, camera[0], features
    )
    pulls, high_sn = [], 0
    for f in features:
        if f.kind != "line" or f.arm != camera[0]:
            continue
        for i in range(len(spectra.fiberid)):
            measured, error = result[f"{f.name}_FLUX"][i], result[f"{f.name}_ERR"][i]
            if not np.isfinite(measured):
                assert result[f"{f.name}_FLAG"][i]  # never a silent NaN
                continue
            expected = _truth_in_window(spectra, truth, i, f.wave_vacuum_nm)
            pulls.append((measured - expected) / error)
            if result[f"{f.name}_FLAG"][i]:  # a caveat: a rejected pixel in the line core
                assert "core" in result[f"{f.name}_FLAG"][i]
                continue
            if expected / error >= 50:
                high_sn += 1
                assert abs(measured / expected - 1) < max(0.02, 4 * error / expected)
    pulls_arr = np.array(pulls)
    assert len(pulls_arr) > 50
    assert abs(np.mean(pulls_arr)) < 0.3
    assert 0.8 < np.std(pulls_arr) < 1.25
    if camera == "b1":
        assert high_sn >= 10  # O I 557.7 in every good fibre


def test_continuum_points_match_the_truth(analysis_plate: SimulatedPlate) -> None:
    for camera in ("b2", "r1"):
        spectra, truth = _camera(analysis_plate, camera)
        features = tuple(f for f in read_features() if f.kind == "cont")
        result = measure_line_strengths(
            spectra.wavelength_nm,
            spectra.flux,
            spectra.ivar,
            spectra.dispersion,
            camera[0],
            features,
        )
        pulls = []
        for f in features:
            if f.arm != camera[0]:
                continue
            for i in range(len(spectra.fiberid)):
                level, error = result[f.name][i], result[f"{f.name}_ERR"][i]
                if not np.isfinite(level):
                    continue
                expected = np.interp(
                    f.wave_vacuum_nm[0], spectra.wavelength_nm[i], truth["CONT"][i]
                )
                pulls.append((level - expected) / error)
        assert 0.7 < np.std(pulls) < 1.3
        assert abs(np.mean(pulls)) < 0.3


def test_continuum_points_are_exact_without_noise(noiseless_plate: SimulatedPlate) -> None:
    spectra, truth = _camera(noiseless_plate, "r1")
    features = tuple(f for f in read_features() if f.kind == "cont" and f.arm == "r")
    result = measure_line_strengths(
        spectra.wavelength_nm, spectra.flux, spectra.ivar, spectra.dispersion, "r", features
    )
    for f in features:
        for i in range(len(spectra.fiberid)):
            if np.isfinite(result[f.name][i]):
                expected = np.interp(
                    f.wave_vacuum_nm[0], spectra.wavelength_nm[i], truth["CONT"][i]
                )
                assert result[f.name][i] == pytest.approx(expected, rel=0.01)


def test_mean_spectrum_variance_matches_the_scatter_of_fibres(
    analysis_plate: SimulatedPlate,
) -> None:
    spectra, truth = _camera(analysis_plate, "r1")
    flux = spectra.flux.copy()
    good_fibres = np.flatnonzero(np.isfinite(flux).sum(axis=1) > 1000)
    outlier = good_fibres[2]
    flux[outlier] *= 1.3  # a target in a sky fibre
    mean = mean_sky_spectrum(
        "r1",
        spectra.exposure,
        spectra.fiberid,
        spectra.wavelength_nm,
        flux,
        spectra.ivar,
        spectra.dispersion,
        spectra.wave_range_nm,
    )
    assert not mean.accepted[outlier]
    assert "scale" in (mean.reasons[outlier] or "")
    dead = [i for i, r in enumerate(mean.reasons) if r == "no valid pixels"]
    assert dead  # the simulator's BADSKYFIBER fibre is all NaN
    assert mean.accepted.sum() >= 12
    # away from lines the fibres differ only by noise: scatter ≈ propagated variance
    lines = np.mean(
        [
            np.interp(
                mean.wavelength, spectra.wavelength_nm[i], truth["FLUX"][i] - truth["CONT"][i]
            )
            for i in good_fibres
        ],
        axis=0,
    )
    cont = np.mean(
        [
            np.interp(mean.wavelength, spectra.wavelength_nm[i], truth["CONT"][i])
            for i in good_fibres
        ],
        axis=0,
    )
    away = (lines < 0.002 * cont) & (mean.n_fibres >= 10)
    ratio = mean.scatter_variance[away] / mean.variance[away]
    assert away.sum() > 1000
    assert 0.85 < np.median(ratio) / 0.934 < 1.15  # median of χ²(ν)/ν for ν ≈ 13
    # and the mean itself is right within its errors
    pulls = (mean.flux[away] - cont[away]) / np.sqrt(mean.variance[away])
    assert abs(np.mean(pulls)) < 0.1
    assert 0.9 < np.std(pulls) < 1.1


def test_separated_continuum_is_within_one_percent_away_from_lines(
    noiseless_plate: SimulatedPlate,
) -> None:
    for camera in ("b1", "r2"):
        spectra, truth = _camera(noiseless_plate, camera)
        mean = mean_sky_spectrum(
            camera,
            spectra.exposure,
            spectra.fiberid,
            spectra.wavelength_nm,
            spectra.flux,
            spectra.ivar,
            spectra.dispersion,
            spectra.wave_range_nm,
        )
        sep, rows = separate_airglow(mean)
        used = np.flatnonzero(mean.accepted)
        cont, total = (
            np.mean(
                [np.interp(mean.wavelength, spectra.wavelength_nm[i], truth[key][i]) for i in used],
                axis=0,
            )
            for key in ("CONT", "FLUX")
        )
        away = ((total - cont) < 0.002 * cont) & np.isfinite(sep.continuum)
        assert away.sum() > 1500
        assert np.max(np.abs(sep.continuum[away] / cont[away] - 1)) < 0.01
        smooth = away & np.isfinite(sep.smooth_continuum)
        assert smooth.sum() > 1500
        assert np.max(np.abs(sep.smooth_continuum[smooth] / cont[smooth] - 1)) < 0.01
        # and the line model takes the lines out: near lines the continuum is within 1 % (median)
        near = (
            ((total - cont) > 0.002 * cont)
            & ((total - cont) < 1.0 * cont)
            & np.isfinite(sep.continuum)
        )
        assert np.median(np.abs(sep.continuum[near] / cont[near] - 1)) < 0.01
        assert all(r["FLAG"] is None for r in rows)


def test_airglow_line_fluxes_match_the_truth(analysis_plate: SimulatedPlate) -> None:
    pulls = []
    high = 0
    for camera in ("b1", "r1"):
        spectra, truth = _camera(analysis_plate, camera)
        mean = mean_sky_spectrum(
            camera,
            spectra.exposure,
            spectra.fiberid,
            spectra.wavelength_nm,
            spectra.flux,
            spectra.ivar,
            spectra.dispersion,
            spectra.wave_range_nm,
        )
        _, rows = separate_airglow(mean)
        expected_all = np.mean(truth["LINEFLUX"][mean.accepted], axis=0)
        fitted = np.array([r["WAVE_NM"] for r in rows])
        sigma = np.median([r["SIGMA_NM"] for r in rows])
        for r in rows:
            w = r["WAVE_NM"]
            near_truth = np.abs(truth["LINEWAVE"] - w) < 3 * sigma
            if near_truth.sum() != 1 or (np.abs(fitted - w) < 3 * sigma).sum() != 1:
                continue  # blends are shared differently between lines; compare isolated ones
            expected = float(expected_all[near_truth][0])
            pulls.append((r["FLUX"] - expected) / r["FLUX_ERR"])
            if expected / r["FLUX_ERR"] >= 50:
                high += 1
                assert abs(r["FLUX"] / expected - 1) < max(0.02, 4 * r["FLUX_ERR"] / expected)
    assert high > 50
    assert abs(np.mean(pulls)) < 0.3
    assert 0.8 < np.std(pulls) < 1.25


def test_sky_brightness_agrees_with_speclite_on_the_true_spectrum(
    noiseless_plate: SimulatedPlate,
) -> None:
    import astropy.units as u
    import speclite.filters

    blue, tb = _camera(noiseless_plate, "b1")
    red, tr = _camera(noiseless_plate, "r1")
    # fibre 1 has the simulated BADTRACE stretch in r1: too much of r, R, i, I is rejected
    j = int(np.flatnonzero(red.fiberid == blue.fiberid[1])[0])
    _, bad_flag = sky_brightness(
        blue.wavelength_nm[1], blue.flux[1], red.wavelength_nm[j], red.flux[j]
    )
    assert "rejected pixels" in (bad_flag or "")
    i = 2
    j = int(np.flatnonzero(red.fiberid == blue.fiberid[i])[0])
    mags, flag = sky_brightness(
        blue.wavelength_nm[i], blue.flux[i], red.wavelength_nm[j], red.flux[j]
    )
    # BOSS spectra start at 365 nm: u and U are only partly covered (z ends at 1040 nm, where
    # the z response has < 1 % of its integral left)
    assert "sdss2010-u" in (flag or "")
    assert "bessell-U" in (flag or "")
    assert np.isfinite(mags["SKY_z"])
    assert np.isnan(mags["SKY_u"])
    assert np.isnan(mags["SKY_U_VEGA"])
    # truth spectrum, joined at 600 nm, per arcsec², through speclite's own integration
    wb, wr = blue.wavelength_nm[i], red.wavelength_nm[j]
    wave = np.concatenate([wb[wb < 600], wr[wr >= 600]]) * 10
    flam = np.concatenate([tb["FLUX"][i][wb < 600], tr["FLUX"][j][wr >= 600]]) * 1e-17 / np.pi
    for column, name, offset in (
        ("SKY_g", "sdss2010-g", 0),
        ("SKY_r", "sdss2010-r", 0),
        ("SKY_i", "sdss2010-i", 0),
        ("SKY_V_VEGA", "bessell-V", 0.02),
        ("SKY_B_VEGA", "bessell-B", -0.09),
    ):
        reference = (
            speclite.filters.load_filter(name).get_ab_magnitude(
                flam * u.erg / (u.s * u.cm**2 * u.AA), wave * u.AA
            )
            - offset
        )
        assert mags[column] == pytest.approx(float(reference), abs=0.01)
    assert 19.0 < mags["SKY_V_VEGA"] < 23.0  # a dark-sky V brightness, as APO's ~21.5


def test_all_nan_spectra_and_cameras_are_flagged_not_zero(noiseless_plate: SimulatedPlate) -> None:
    spectra, _ = _camera(noiseless_plate, "b1")
    dead = CameraSpectra(
        spectra.exposure,
        "b1",
        spectra.fiberid,
        spectra.wavelength_nm,
        np.full_like(spectra.flux, np.nan),
        np.zeros_like(spectra.ivar),
        spectra.dispersion,
        spectra.wave_range_nm,
    )
    red, _ = _camera(noiseless_plate, "r1")
    columns, means, rows = analyse_plate_spectra([dead, red], read_features())
    cols = columns[(spectra.exposure, "b1")]
    assert all(np.isnan(v) for v in cols["OI_FLUX"])
    assert all(f == "no valid pixels (all NaN)" for f in cols["OI_FLAG"])
    assert all(np.isnan(v) for v in cols["cont_b_460"])
    assert all(np.isnan(v) for v in cols["SKY_g"])  # g lies in the dead blue camera
    assert all("sdss2010-g" in (f or "") for f in cols["SKY_MAG_FLAG"])
    flags = {m.camera: flag for m, _, flag in means}
    assert "no valid pixels" in (flags["b1"] or "")
    assert flags["r1"] is None
    assert rows
    assert all(r["CAMERA"] == "r1" for r in rows)


def test_window_outside_the_spectrum_is_flagged(noiseless_plate: SimulatedPlate) -> None:
    spectra, _ = _camera(noiseless_plate, "b1")
    cut = spectra.wavelength_nm < 550.0  # a blue spectrum cut short of O I 557.7
    wave = np.where(cut, spectra.wavelength_nm, np.nan)[:, : int(cut[0].sum())]
    n = wave.shape[1]
    result = measure_line_strengths(
        wave,
        spectra.flux[:, :n],
        spectra.ivar[:, :n],
        spectra.dispersion[:, :n],
        "b",
        read_features(),
    )
    assert all(np.isnan(v) for v in result["OI_FLUX"])
    assert all("outside" in f for f in result["OI_FLAG"])


def test_line_list_in_the_wrong_unit_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "lines.csv"
    path.write_text("arm,name,kind,medium,wavelength_nm\nb,OI,line,air,5577.339\n")
    with pytest.raises(InputFileError, match=r"lines.csv.*looks like Å"):
        read_features(path)
    path.write_text("arm,name,kind,medium,wavelength_nm\nb,OI,line,air,0.5577\n")
    with pytest.raises(InputFileError, match="looks like µm"):
        read_features(path)


def test_configured_lines_are_at_their_vacuum_positions() -> None:
    features = {f.name: f for f in read_features()}
    assert features["OI"].wave_vacuum_nm[0] == pytest.approx(557.8888, abs=2e-4)
    assert features["OIr1"].wave_vacuum_nm[0] == pytest.approx(630.2046, abs=2e-4)
    assert features["NaD"].wave_vacuum_nm == pytest.approx((589.1583, 589.7558), abs=2e-4)
    from photonpipe.sky.simulate import air_to_vacuum_angstrom  # Morton (2000), independent

    assert features["HgIc"].wave_vacuum_nm[0] == pytest.approx(
        air_to_vacuum_angstrom(5460.735) / 10, abs=1e-4
    )


@pytest.fixture(scope="module")
def built_dataset(
    noiseless_plate: SimulatedPlate, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The noiseless plate built (with the analysis) into a dataset."""
    from photonpipe.sky.pipeline import BuildOptions, build_plate
    from photonpipe.sky.pixmask import DEFAULT_REJECT_FLAGS

    out = tmp_path_factory.mktemp("sky-analysis-dataset")
    options = BuildOptions(dict(DEFAULT_WAVE_RANGES_NM), tuple(DEFAULT_REJECT_FLAGS))
    build_plate(
        {"plate_dir": str(noiseless_plate.directory), "output_dir": str(out), "options": options}
    )
    return out


def test_build_stores_line_strengths_brightness_and_mean_spectra(built_dataset: Path) -> None:
    import pyarrow.parquet as pq

    from photonpipe.sky.analysis import read_mean

    tmp_path = built_dataset
    meta = pq.read_table(tmp_path / "metadata" / "6627.parquet").to_pandas()
    blue = meta[meta["ARM"] == "b"]
    red = meta[meta["ARM"] == "r"]
    assert blue["OI_FLUX"].notna().sum() >= 8
    assert blue["OIr1_FLUX"].isna().all()
    assert red["OIr1_FLUX"].notna().sum() >= 8
    assert red["OI_FLUX"].isna().all()
    assert red["OI_FLAG"].isna().all()  # not applicable, not a failure
    dead = blue[blue["OI_FLUX"].isna()]
    assert (dead["OI_FLAG"] == "no valid pixels (all NaN)").all()  # the BADSKYFIBER fibre
    assert meta["SKY_V_VEGA"].between(19, 23).sum() >= 8
    mean = read_mean(str(tmp_path / "mean" / "6627.h5"), int(meta["IMG"].iloc[0]), "b1")
    assert mean["flux"].shape == mean["continuum"].shape == mean["wavelength"].shape
    assert mean["separation_flag"] == ""
    airglow = pq.read_table(tmp_path / "airglow" / "6627.parquet").to_pandas()
    assert set(airglow["CAMERA"]) == {"b1", "b2", "r1", "r2"}
    assert airglow["FLAG"].isna().all()
    assert (airglow["FLUX_ERR"] > 0).all()


def test_catalogues_drop_bad_plates_and_empty_rows_with_reasons(
    built_dataset: Path, tmp_path: Path
) -> None:
    import shutil

    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq
    from click.testing import CliRunner

    from photonpipe.cli.main import cli
    from photonpipe.sky.reference import boss_plates

    dataset = tmp_path / "dataset"
    shutil.copytree(built_dataset, dataset)
    # a second plate: the same rows relabelled as a plate-MJD the plate list flags bad
    bad = next(p for p in boss_plates() if p.quality == "bad")
    arrow = pq.read_table(dataset / "metadata" / "6627.parquet")
    n = arrow.num_rows
    for name, value in (("PLATE", bad.plate), ("MJD", bad.mjd)):
        column = arrow.schema.get_field_index(name)
        arrow = arrow.set_column(
            column, name, pa.array([value] * n, type=arrow.schema.field(name).type)
        )
    pq.write_table(arrow, dataset / "metadata" / f"{bad.plate:04d}.parquet")
    result = CliRunner().invoke(cli, ["sky", "catalog", str(dataset), "--out", str(tmp_path / "c")])
    assert result.exit_code == 0, result.output
    every = pd.read_parquet(tmp_path / "c" / "sky_full_all.parquet")
    good = pd.read_parquet(tmp_path / "c" / "sky_full_good.parquet")
    clean = pd.read_parquet(tmp_path / "c" / "sky_full_good_clean.parquet")
    removed = pd.read_parquet(tmp_path / "c" / "sky_full_removed.parquet")
    assert len(every) == 2 * n
    assert len(good) == n
    assert (good["PLATE"] == 6627).all()
    empty = good[good[["OI_FLUX", "OIr1_FLUX", "cont_b_460", "cont_r_710"]].isna().all(axis=1)]
    assert len(empty) >= 2  # the simulated BADSKYFIBER fibres (one per camera)
    assert len(clean) == n - len(empty)
    reasons = removed.groupby("REASON").size()
    assert reasons["plate quality 'bad' in the BOSS plate list"] == n
    assert reasons["line and continuum values all zero or NaN"] == len(empty)
    from astropy.table import Table

    assert len(Table.read(tmp_path / "c" / "sky_full_removed.fits")) == len(removed)
    result = CliRunner().invoke(
        cli, ["sky", "catalog", str(dataset), "--out", str(tmp_path / "m"), "--mean"]
    )
    assert result.exit_code == 0, result.output
    means = pd.read_parquet(tmp_path / "m" / "sky_mean_good_clean.parquet")
    assert len(means) == 8  # 2 exposures × 4 cameras
    assert (means["N_FIBRES"] == 3).all()


def test_build_refuses_a_line_list_in_angstrom_before_any_plate(tmp_path: Path) -> None:
    from photonpipe.platform.config import load_settings
    from photonpipe.platform.db import Database
    from photonpipe.sky.pipeline import build_sky_dataset

    lines = tmp_path / "lines.csv"
    lines.write_text("arm,name,kind,medium,wavelength_nm\nb,OI,line,air,5577.339\n")
    (tmp_path / "input").mkdir()
    settings = load_settings(None, env={}, overrides={"sky.line_windows": str(lines)})
    database = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with pytest.raises(InputFileError, match="looks like Å"):
        build_sky_dataset(
            tmp_path / "input", tmp_path / "out", database=database, settings=settings
        )


def test_dataset_and_catalog_fits_read_without_unit_warnings(
    built_dataset: Path, tmp_path: Path
) -> None:
    from helpers.fits_units import assert_all_fits_units
    from photonpipe.sky.catalog import build_catalog
    from photonpipe.sky.storage import export_metadata_fits

    products = [export_metadata_fits(built_dataset, tmp_path / "metadata.fits")]
    for kind in ("full", "mean"):
        written = build_catalog(built_dataset, tmp_path / kind, kind)
        products += [p for paths in written.values() for p in paths if p.suffix == ".fits"]
    assert len(products) == 9
    assert_all_fits_units(products)
