"""Bad frames fail with a clear error naming the file; nothing half-written; the rest goes on."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from astropy.io import fits
from click.testing import CliRunner

from photonpipe.cli.main import cli
from photonpipe.echelle.formats import read_raw
from photonpipe.echelle.pipeline import reduce_night
from photonpipe.echelle.science import reduce_files
from photonpipe.echelle.simulate import NightPlan, simulate_night
from photonpipe.errors import InputFileError
from photonpipe.platform.archive import Archive
from photonpipe.platform.db import Database

from .conftest import ReducedNight


def _science(night: ReducedNight) -> Path:
    return next(p for p in night.simulated.frames if p.name.endswith("e00.fits.fz"))


def _rewrite_header(source: Path, target: Path, **changes: object) -> Path:
    with fits.open(source) as hdul:
        header = hdul[1].header.copy()
        data = hdul[1].data
    for key, value in changes.items():
        if value is None:
            del header[key]
        else:
            header[key] = value
    fits.HDUList(
        [fits.PrimaryHDU(), fits.CompImageHDU(data, header=header, compression_type="RICE_1")]
    ).writeto(target)
    return target


def test_truncated_file(reduced_night: ReducedNight, tmp_path: Path) -> None:
    source = _science(reduced_night)
    broken = tmp_path / source.name
    broken.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    with pytest.raises(InputFileError) as info:
        read_raw(broken)
    assert str(broken) in str(info.value)
    assert "corrupt or truncated" in str(info.value)


def test_garbage_file(tmp_path: Path) -> None:
    path = tmp_path / "lscnrs01-fl09-20260301-0099-e00.fits.fz"
    path.write_bytes(b"SIMPLE  = not really a FITS file")
    with pytest.raises(InputFileError, match="lscnrs01-fl09-20260301-0099-e00"):
        read_raw(path)


def test_other_instrument(reduced_night: ReducedNight, tmp_path: Path) -> None:
    path = _rewrite_header(
        _science(reduced_night), tmp_path / "other.fits.fz", TELESCOP="1m0-05", INSTRUME="fa03"
    )
    with pytest.raises(InputFileError, match="not an NRES frame"):
        read_raw(path)


def test_missing_keyword(reduced_night: ReducedNight, tmp_path: Path) -> None:
    path = _rewrite_header(_science(reduced_night), tmp_path / "nokey.fits.fz", EXPTIME=None)
    with pytest.raises(InputFileError, match=r"missing keyword.*EXPTIME"):
        read_raw(path)


def test_batch_records_failures_and_goes_on(reduced_night: ReducedNight, tmp_path: Path) -> None:
    """A bad frame among good ones: it fails with its reason, the good one is reduced."""
    night = reduced_night
    raw = night.simulated.raw_dir
    broken = raw.parent / "broken" / _science(night).name
    broken.parent.mkdir(exist_ok=True)
    broken.write_bytes(_science(night).read_bytes()[:5000])
    good = sorted(raw.glob("*e00.fits.fz"))[-1]
    report = reduce_files(night.archive, night.database, [broken, good], workers=1, progress=False)
    assert str(good.resolve()) in report.done or str(good.resolve()) in report.already_done
    assert "truncated" in report.failed[str(broken.resolve())]
    shutil.rmtree(broken.parent)


def test_no_calibration_fails_cleanly(reduced_night: ReducedNight, tmp_path: Path) -> None:
    """A science frame in an archive with no masters: clear error, frame failed, no products."""
    archive = Archive(tmp_path / "archive")
    archive.create()
    database = Database(f"sqlite:///{tmp_path / 'empty.db'}")
    database.upgrade()
    science = archive.path("lsc", "nres01", "20260301", "raw", _science(reduced_night).name)
    science.parent.mkdir(parents=True)
    shutil.copy(_science(reduced_night), science)
    report = reduce_files(archive, database, [science], workers=1, progress=False)
    error = report.failed[str(science.resolve())]
    assert "no usable BIAS calibration for nres01" in error
    assert science.name in error
    assert not list(archive.root.glob("lsc/nres01/reduced/spec/*")), "no product may be written"


def test_cli_reduce_reports_failure(reduced_night: ReducedNight, tmp_path: Path) -> None:
    bad = tmp_path / "lscnrs01-fl09-20260301-0098-e00.fits.fz"
    bad.write_bytes(b"\0" * 100)
    result = CliRunner().invoke(
        cli,
        [
            "--archive",
            str(tmp_path / "archive"),
            "--set",
            "executor.workers=1",
            "echelle",
            "reduce",
            str(bad),
        ],
    )
    assert result.exit_code == 1
    assert "failed" in result.output
    assert bad.name in result.output


def test_night_goes_on_past_bad_frames(tmp_path: Path) -> None:
    """A truncated bias and a frame of another instrument in the night: both recorded as failed,
    the masters are made from the rest and the science frame is reduced."""
    plan = NightPlan(biases=4, darks=3, flats_per_pair=2, arcs_per_pair=1, science=1)
    night = simulate_night(tmp_path, site="lsc", night="2026-03-03", small=True, seed=8, plan=plan)
    bias = night.frames[0]
    bias.write_bytes(bias.read_bytes()[: bias.stat().st_size // 3])
    foreign = _rewrite_header(
        night.frames[5],
        night.raw_dir / "lscnrs01-fl09-20260303-0099-d00.fits.fz",
        TELESCOP="2m0-01",
    )
    database = Database(f"sqlite:///{tmp_path / 'photonpipe.db'}")
    database.upgrade()
    report = reduce_night(Archive(tmp_path), database, "lsc", "nres01", "20260303", workers=1)
    assert set(report.failed) == {str(bias.resolve()), str(foreign)}, report.failed
    assert "truncated" in report.failed[str(bias.resolve())]
    assert "not an NRES frame" in report.failed[str(foreign)]
    assert len(report.products) == 1
    with fits.open(next(tmp_path.glob("lsc/nres01/reduced/bias/*.fits"))) as hdul:
        assert hdul[0].header["NINPUTS"] == 3
