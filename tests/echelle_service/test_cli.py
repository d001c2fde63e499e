"""The operations commands: setup-site, nightly, watch --once, status, post without a broker."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest

from helpers.echelle_ops import copy_night
from photonpipe.cli.main import main
from photonpipe.echelle import instrument
from photonpipe.echelle.traces import TraceSet


def _run(root: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    database = f"sqlite:///{root / 'photonpipe.db'}"
    code = main(["--archive", str(root), "--database-url", database, *args])
    out, err = capsys.readouterr()
    return code, out + err


def _ccd_row(camera: str) -> dict[str, str]:
    """The camera's row of ccds.csv, read here with the csv module, not through instrument.py."""
    path = instrument.hand_trace_path("lsc").parents[1] / "ccds.csv"
    with path.open() as handle:
        return next(r for r in csv.DictReader(handle) if r["camera"].strip('"') == camera)


def test_setup_site(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "archive"
    args = ("echelle", "setup-site", "--site", "elp", "--instrument", "nres02", "--camera", "fl17")
    code, out = _run(root, capsys, *args)
    assert code == 0, out
    reduced = root / "elp/nres02/reduced"
    for sub in ("bias", "dark", "flat", "trace", "trip", "spec", "csv", "config", "zero", "rv"):
        assert (reduced / sub).is_dir()
    config = json.loads((reduced / "config/instrument.json").read_text())
    row = _ccd_row("fl17")
    assert config["ccd"]["gain_e_per_adu"] == pytest.approx(float(row["gain"]))
    assert config["ccd"]["read_noise_e"] == pytest.approx(float(row["rdnois"]))
    assert config["spectrograph"]["n_orders"] == 67
    assert config["spectrograph"]["order0"] == 52
    traces = TraceSet.read(next((reduced / "trace").glob("*-initial.fits")))
    assert len(traces.coeffs) >= 2 * 67  # fibres 0 and 1 of every order at least
    for name in ("standards.csv", "zeros.csv", "rv.csv"):
        lines = (reduced / "csv" / name).read_text().splitlines()
        assert len(lines) == 1  # header only: empty registry
    # A second set-up of the same site is refused and changes nothing.
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    code, out = _run(root, capsys, *args)
    assert code != 0
    assert "set up already" in out
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before


def test_setup_site_after_the_simulator(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # `simulate nres` registers its star in reduced/csv/targets.csv: the site is not set up yet
    from photonpipe.echelle.instrument import targets_csv_rows
    from photonpipe.echelle.simulate import register_targets

    root = tmp_path / "archive"
    targets = register_targets(root, "lsc", "nres01", targets_csv_rows()[:1])
    before = targets.read_bytes()
    args = ("echelle", "setup-site", "--site", "lsc", "--instrument", "nres01", "--camera", "fl09")
    code, out = _run(root, capsys, *args)
    assert code == 0, out
    assert (root / "lsc/nres01/reduced/config/instrument.json").is_file()
    assert targets.read_bytes() == before
    code, out = _run(root, capsys, *args)
    assert code != 0
    assert "set up already" in out


def test_setup_site_refuses_unknown_camera(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _run(
        tmp_path / "archive",
        capsys,
        *("echelle", "setup-site", "--site", "lsc", "--instrument", "nres01", "--camera", "fl17"),
    )
    assert code != 0
    assert "not nres01/fl17" in out
    assert not (tmp_path / "archive/lsc").exists()


def test_watch_once_nightly_and_status(
    calibrated_night: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    night = copy_night(calibrated_night, tmp_path / "root")
    for path in night.raw:
        os.utime(path, (1.0e9, 1.0e9))
    code, out = _run(
        night.root,
        capsys,
        *(
            "--workers",
            "2",
            "echelle",
            "watch",
            str(night.root / "lsc"),
            "--once",
            "--interval",
            "0.1",
        ),
    )
    assert code == 0, out
    assert out.count("done lsc/nres01/20260301/raw/") == 20
    assert len(list((night.root / "lsc/nres01/reduced/spec").glob("*-1d.fits"))) == 2
    # A night with no frames: nothing made, the reasons listed, exit code 1.
    code, out = _run(
        night.root,
        capsys,
        *("echelle", "nightly", "--site", "lsc", "--task", "stack", "--end", "2027-01-01T12:00:00"),
    )
    assert code == 1, out
    assert "lsc stack: 0 products, 4 not made" in out
    assert "not made BIAS: no BIAS frames of lsc/nres01/fl09" in out
    code, out = _run(night.root, capsys, "echelle", "status", "--no-broker")
    assert code == 0, out
    assert "processed files: 20 done" in out
    assert "nightly lsc stack: failed at" in out  # the newest run of the stack task
    assert "nightly lsc traces: done at" in out


def test_post_to_unreachable_broker(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    frame = tmp_path / "lscnrs01-fl09-20260301-0001-b00.fits.fz"
    frame.write_bytes(b"x")
    code, out = _run(
        tmp_path,
        capsys,
        "echelle",
        "post",
        str(frame),
        "--broker",
        "amqp://guest:guest@127.0.0.1:1//",
    )
    assert code == 2
    assert "cannot reach the broker at amqp://guest:**@127.0.0.1:1//" in out


def test_watch_marker_must_be_a_suffix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for marker in ("", "a/b", ".."):
        code, out = _run(tmp_path, capsys, "echelle", "watch", str(tmp_path), "--marker", marker)
        assert code == 2, (marker, out)
        assert "--marker" in out
        assert "is not a file-name suffix such as .done" in out


def test_watch_once_with_a_marker(
    calibrated_night: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only the frame whose completion marker exists is read; the marker itself is no frame."""
    night = copy_night(calibrated_night, tmp_path / "root")
    incoming = night.root / "lsc/nres01/20260302/raw"
    incoming.mkdir(parents=True)
    bias = [p for p in night.raw if "-b00." in p.name][:2]
    arrived = []
    for source in bias:
        target = incoming / source.name.replace("20260301", "20260302")
        target.write_bytes(source.read_bytes())
        os.utime(target, (1.0e9, 1.0e9))
        arrived.append(target)
    (incoming / (arrived[0].name + ".done")).write_bytes(b"")
    code, out = _run(
        night.root,
        capsys,
        *("echelle", "watch", str(incoming), "--once", "--interval", "0.1", "--marker", ".done"),
    )
    assert code == 0, out
    assert out.splitlines() == [f"done {arrived[0].relative_to(night.root).as_posix()}"]
