"""The echelle commands on the reduced small night: stack, trace, trace-refine."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
from astropy.io import fits

from photonpipe.cli.main import main
from photonpipe.echelle.instrument import hand_trace_path
from photonpipe.echelle.traces import TraceSet

from .conftest import ReducedNight

STACK = ("echelle", "stack", "--site", "lsc", "--camera", "fl09", "--instrument", "nres01")


def _run(night: ReducedNight, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    database = f"sqlite:///{night.root / 'photonpipe.db'}"
    code = main(["--archive", str(night.root), "--database-url", database, *args])
    out, err = capsys.readouterr()
    return code, out + err


def test_stack_bias(reduced_night: ReducedNight, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _run(
        reduced_night,
        capsys,
        *STACK,
        "--calibration-type",
        "BIAS",
        "--start",
        "2026-03-01T00:00:00",
        "--end",
        "2026-03-02T12:00:00",
    )
    assert code == 0, out
    assert "master: lsc/nres01/reduced/bias/lscnrs01-fl09-20260301-bias.fits" in out


def test_stack_without_frames_is_an_error(
    reduced_night: ReducedNight, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _run(
        reduced_night,
        capsys,
        *STACK,
        "--calibration-type",
        "DARK",
        "--start",
        "2025-01-01T00:00:00",
        "--end",
        "2025-01-02T00:00:00",
    )
    assert code == 1
    assert "no DARK frames of lsc/nres01/fl09" in out


def test_trace_and_trace_refine(
    reduced_night: ReducedNight, capsys: pytest.CaptureFixture[str]
) -> None:
    hand = hand_trace_path("lsc")
    code, out = _run(
        reduced_night,
        capsys,
        "echelle",
        "trace",
        "--initial",
        str(hand),
        "--site",
        "lsc",
        "--instrument",
        "nres01",
    )
    assert code == 0, out
    initial = reduced_night.root / out.strip()
    assert len(TraceSet.read(initial).keys()) == 67 * 3
    flats = sorted((reduced_night.root / "lsc" / "nres01" / "reduced" / "flat").glob("*.fits"))
    code, out = _run(
        reduced_night,
        capsys,
        "echelle",
        "trace-refine",
        "--flat1",
        str(flats[1]),
        "--flat2",
        str(flats[0]),
        "--initial",
        str(initial),
    )
    assert code == 0, out
    refined = TraceSet.read(reduced_night.root / out.strip())
    assert 30 <= len(refined.keys()) < 67 * 3
    assert max(refined.rms.values()) < 0.05


def test_simulate_nres_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "simulate",
            "nres",
            "--site",
            "cpt",
            "--night",
            "2026-04-02",
            "--out",
            str(tmp_path),
            "--small",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    raw = tmp_path / "cpt" / "nres03" / "20260402" / "raw"
    assert f"22 raw frames in {raw}" in out
    assert len(list(raw.glob("cptnrs03-fl13-20260402-*.fits.fz"))) == 22
    assert (tmp_path / "cpt" / "nres03" / "20260402" / "truth.fits").is_file()
    # the star observed is registered where `echelle night` looks for it
    targets = tmp_path / "cpt" / "nres03" / "reduced" / "csv" / "targets.csv"
    name = fits.getheader(raw.parent / "truth.fits")["TARGET"]
    assert f"target {name} registered in {targets}" in out
    assert [row["Name"] for row in csv.DictReader(targets.read_text().splitlines())] == [name]


def test_quick_start_prints_radial_velocities(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """docs/echelle.md's quick start as a user types it: RVs with uncertainties, near the truth."""
    monkeypatch.chdir(tmp_path)
    simulate = "simulate nres --site lsc --night 2026-03-01 --out data --small --seed 1"
    assert main(simulate.split()) == 0
    night = "--archive data echelle night --site lsc --instrument nres01 --date 2026-03-01"
    assert main(night.split()) == 0
    out = capsys.readouterr().out
    truth = fits.getdata("data/lsc/nres01/20260301/truth.fits", "RV")
    true_rv = {str(row["FILE"]).strip(): float(row["RV"]) for row in truth}
    assert "target HR7913 added from reduced/csv/targets.csv" in out
    assert re.search(r"ZERO: lsc/nres01/reduced/zero/zero_HR7913_\S+ \(from this night", out)
    printed = re.findall(r"(\S+-e00\.fits\.fz): \S+-1d\.fits  HR7913 RV (\S+) ± (\S+) km/s", out)
    assert {name for name, _, _ in printed} == set(true_rv)
    for name, rv, error in printed:
        assert float(error) < 0.010  # km/s: a few m/s in this small window
        assert abs(float(rv) - true_rv[name]) < 4.0 * float(error)
    # run again: nothing to redo, no second ZERO, the same RVs
    assert main(night.split()) == 0
    out = capsys.readouterr().out
    assert "ZERO:" not in out
    assert len(list(Path("data/lsc/nres01/reduced/zero").glob("*.fits"))) == 1
    again = re.findall(r"(\S+-e00\.fits\.fz): HR7913 RV (\S+) ± (\S+) km/s", out)
    assert sorted(again) == sorted(printed)
