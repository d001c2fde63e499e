import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from photonpipe.cli.main import main
from photonpipe.platform.config import Settings, load_settings
from photonpipe.platform.db import Database
from photonpipe.sky.conditions import exposure_conditions
from photonpipe.sky.pipeline import build_sky_dataset, plate_fingerprint
from photonpipe.sky.simulate import SimulatedPlate
from photonpipe.sky.storage import (
    export_metadata_fits,
    metadata_dask,
    read_metadata,
    read_plate_spectra,
    spectra_dask,
)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(env={}, overrides={"archive.root": str(tmp_path / "archive")})


def _build(input_dir: Path, output: Path, database: Database, settings: Settings):  # type: ignore[no-untyped-def]
    return build_sky_dataset(
        input_dir,
        output,
        database=database,
        settings=settings,
        backend="local",
        workers=1,
        progress=False,
    )


def test_build_writes_spectra_and_metadata_matching_the_truth(
    noiseless_plate: SimulatedPlate, tmp_path: Path, sqlite_database: Database, settings: Settings
) -> None:
    inputs = tmp_path / "in"
    shutil.copytree(noiseless_plate.directory, inputs / "6627")
    output = tmp_path / "out"
    report = _build(inputs, output, sqlite_database, settings)
    assert report.ok, report.failed
    assert len(report.done) == 1
    meta = read_metadata(output).to_pandas()
    # 3 sky fibres per spectrograph x 2 spectrographs x 2 arms x 2 exposures
    assert len(meta) == 24
    assert (meta["OBJTYPE"] == "SKY").all()
    assert meta["SPECNO"].is_unique
    assert set(meta["CAMERAS"]) == {"b1", "b2", "r1", "r2"}
    with fits.open(noiseless_plate.truth) as truth:
        for arm in ("b", "r"):
            arrays = read_plate_spectra(output / "spectra" / "6627.h5", arm)
            rows = meta[meta["ARM"] == arm]
            assert arrays["flux"].shape[0] == len(rows)
            for _, row in rows.iterrows():
                tag = f"{row['CAMERAS']}-{row['IMG']:08d}"
                spectrum = arrays["flux"][row["ROW"]]
                assert arrays["specno"][row["ROW"]] == row["SPECNO"]
                ids = np.array(
                    [
                        r["FIBERID"]
                        for r in truth["COMPONENTS"].data
                        if r["CAMERA"] == row["CAMERAS"] and r["EXPOSURE"] == row["IMG"]
                    ]
                )
                expected = truth[f"FLUX_{tag}"].data[np.flatnonzero(ids == row["FIB"])[0]]
                good = np.isfinite(spectrum)
                if good.any():
                    assert np.max(np.abs(spectrum[good] / expected[good] - 1)) < 1e-3
    # conditions equal a direct computation for the exposure; missing keywords are null
    first = meta.iloc[0]
    direct = exposure_conditions([first["TAI-BEG"]], [first["TAI-END"]])
    assert first["MOON_ALT"] == pytest.approx(direct["moon_alt"][0], abs=1e-9)
    assert first["MONTH"] == 3
    headers = [fits.getheader(p) for p in sorted((inputs / "6627").glob("spFrame-b1-*"))]
    for header in headers:
        rows = meta[(meta["IMG"] == header["EXPOSURE"])]
        if "DUSTA" in header:
            assert (rows["DUSTA"] == header["DUSTA"]).all()
        else:
            assert rows["DUSTA"].isna().all()
    assert meta["SEEING50"].notna().all()


def test_rerun_skips_done_plates_and_redoes_changed_ones(
    noiseless_plate: SimulatedPlate, tmp_path: Path, sqlite_database: Database, settings: Settings
) -> None:
    inputs = tmp_path / "in"
    shutil.copytree(noiseless_plate.directory, inputs / "6627")
    output = tmp_path / "out"
    assert len(_build(inputs, output, sqlite_database, settings).done) == 1
    again = _build(inputs, output, sqlite_database, settings)
    assert len(again.already_done) == 1
    assert not again.done
    changed = next((inputs / "6627").glob("spFrame-r1-*"))
    before = plate_fingerprint(inputs / "6627")
    with fits.open(changed, mode="update") as hdus:
        hdus[0].header["SEEING50"] = 2.5
    os.utime(changed, ns=(1, 2))  # a different mtime even on coarse clocks
    assert plate_fingerprint(inputs / "6627") != before
    third = _build(inputs, output, sqlite_database, settings)
    assert len(third.done) == 1
    meta = read_metadata(output).to_pandas()
    exposure = fits.getheader(changed)["EXPOSURE"]
    assert (meta[(meta["CAMERAS"] == "r1") & (meta["IMG"] == exposure)]["SEEING50"] == 2.5).all()


def test_bad_plates_fail_alone_with_their_reason(
    noiseless_plate: SimulatedPlate, tmp_path: Path, sqlite_database: Database, settings: Settings
) -> None:
    inputs = tmp_path / "in"
    names = ["good", "corrupt", "nohdu", "nosky", "nocamera", "nocframe"]
    for name in names:
        shutil.copytree(noiseless_plate.directory, inputs / name)
    corrupt = next((inputs / "corrupt").glob("spFrame-b2-*"))
    corrupt.write_bytes(corrupt.read_bytes()[:30000])
    nohdu = next((inputs / "nohdu").glob("spFrame-r2-*"))
    with fits.open(nohdu) as hdus:
        fits.HDUList([h.copy() for h in hdus[:3]]).writeto(nohdu, overwrite=True)
    for path in (inputs / "nosky").glob("spFrame-*"):
        with fits.open(path, mode="update") as hdus:
            hdus[5].data["OBJTYPE"] = "QSO"
    next((inputs / "nocamera").glob("spFrame-r1-*")).unlink()
    next((inputs / "nocframe").glob("spCFrame-b1-*")).unlink()
    report = _build(inputs, tmp_path / "out", sqlite_database, settings)
    failed = {key.rsplit(":", 1)[1]: error for key, error in report.failed.items()}
    assert [k.rsplit(":", 1)[1] for k in report.done] == ["good"]
    assert set(failed) == {"corrupt", "nohdu", "nosky", "nocamera", "nocframe"}
    assert "corrupt FITS file" in failed["corrupt"]
    assert corrupt.name in failed["corrupt"]
    assert "missing HDU 3" in failed["nohdu"]
    assert "no sky fibres" in failed["nosky"]
    assert "lacks camera(s) r1" in failed["nocamera"]
    assert "no matching spCFrame file" in failed["nocframe"]
    # nothing of the failed plates was written; the good one is complete
    assert sorted(p.name for p in (tmp_path / "out" / "spectra").iterdir()) == ["6627.h5"]


def test_lazy_dask_readers_and_fits_export(
    noiseless_plate: SimulatedPlate, tmp_path: Path, sqlite_database: Database, settings: Settings
) -> None:
    inputs = tmp_path / "in"
    shutil.copytree(noiseless_plate.directory, inputs / "6627")
    output = tmp_path / "out"
    _build(inputs, output, sqlite_database, settings)
    frame = metadata_dask(output)
    assert int(frame.shape[0].compute()) == 24
    flux = spectra_dask(output, "r")
    assert flux.shape == (12, 4128)
    eager = read_plate_spectra(output / "spectra" / "6627.h5", "r")["flux"]
    np.testing.assert_array_equal(flux.compute(), eager)
    path = export_metadata_fits(output, tmp_path / "meta.fits")
    table = Table.read(path)
    assert len(table) == 24
    assert "MOON_ILLUMINATION" in table.colnames
    nulls = read_metadata(output).column("DUSTA").null_count
    assert int(np.ma.count_masked(table["DUSTA"])) == nulls


def test_cli_simulate_and_build(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    sim = tmp_path / "sim"
    code = main(
        [
            "simulate",
            "boss",
            "--plates",
            "1",
            "--out",
            str(sim),
            "--seed",
            "2",
            "--fibres",
            "10",
            "--exposures",
            "1",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "plate" in out
    code = main(
        [
            "--archive",
            str(tmp_path / "archive"),
            "--workers",
            "1",
            "sky",
            "build",
            "--input",
            str(sim),
            "--output",
            str(tmp_path / "ds"),
            "--fits",
            str(tmp_path / "meta.fits"),
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "1 done" in out
    assert (tmp_path / "meta.fits").is_file()
    code = main(["sky", "inspect", str(next(sim.glob("*/spFrame-b1-*")))])
    out, _ = capsys.readouterr()
    assert code == 0
    assert "sky fibres" in out
