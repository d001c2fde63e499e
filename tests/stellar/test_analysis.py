"""Session physics: solve, abundances, their storage, the commands and the abundance tables."""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table

from helpers.stellar_physics import moog_or_skip
from photonpipe.cli.main import main
from photonpipe.stellar.linelist import LineList, read_linelist
from photonpipe.stellar.photospheres import bundled_grid
from photonpipe.stellar.session import Session
from photonpipe.stellar.sessionfile import SESSION_PICKLE, read_session_file

DATA = Path(__file__).parent.parent / "data" / "stellar"
TRUTH = {"teff": 4600.0, "logg": 1.6, "vt": 1.9, "feh": -2.6}
GRID_SHA256 = "da7c6472feccb747afb7c40ada158475f1609f9bcd8f5d796dc45cc927788ebf"


def _measurement(line_hash: str, wavelength: float, ew: float, error: float) -> dict:
    """An EW measurement as Session.measure stores it (the fields the physics uses)."""
    return {
        "line_hash": line_hash, "line_hashes": [line_hash], "method": "ew",
        "profile": "gaussian", "wavelength": wavelength, "ew": ew, "ew_uncertainty": error,
        "ew_noise_uncertainty": error, "reduced_ew": math.log10(ew * 1e-3 / wavelength),
        "is_limit": False, "upper_limit": math.nan, "acceptable": True, "comments": [],
        "abundances": {"Fe": math.nan}, "abundance_uncertainties": {"Fe": math.nan},
    }  # fmt: skip


@pytest.fixture(scope="module")
def star(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A session whose Fe and Ti EWs are MOOG's for a star at TRUTH (Ti at [Ti/Fe] = +0.3)."""
    moog = moog_or_skip()
    lines = [
        ln
        for ln in read_linelist(DATA / "frebel2013_hd122563_ew.moog2")
        if ln.species in (26.0, 26.1, 22.1)
    ]
    model = bundled_grid().interpolate(TRUTH["teff"], TRUTH["logg"], TRUTH["feh"])
    ews = moog.equivalent_widths(
        model, TRUTH["vt"], lines, {26: 7.50 + TRUTH["feh"], 22: 4.95 + TRUTH["feh"] + 0.3}
    )
    session = Session.new([DATA / "hd122563_mike_linewindows.fits.gz"])
    keep = [(ln, ew) for ln, ew in zip(lines, ews, strict=True) if ew > 5.0]
    session.add_lines(LineList(ln for ln, _ in keep))
    for ln, ew in keep:
        m = _measurement(ln.hash, ln.wavelength, float(ew), 0.02 * float(ew))
        if ln.species == 22.1:
            m["abundances"] = {"Ti": math.nan}
        session.state["measurements"][f"{ln.hash}|ew"] = m
    path = tmp_path_factory.mktemp("star") / "star.smh"
    session.save(path)
    return path


def test_solve_and_abundances_through_the_commands(
    star: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    smh = tmp_path / "star.smh"
    smh.write_bytes(star.read_bytes())
    before = Session.load(smh)
    assert all(math.isnan(v) for m in before.measurements("ew") for v in m["abundances"].values())

    assert main(["session", "physics", str(smh), "--json"]) == 0
    physics = json.loads(capsys.readouterr().out)
    assert physics["model_atmospheres"]["grid_sha256"] == GRID_SHA256
    assert physics["model_atmospheres"]["ads_reference"] == "1993KurCD..13.....K"
    assert physics["radiative_transfer"]["code"] == "MOOG"

    assert main(["session", "solve", str(smh), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["converged"]
    assert abs(result["teff"] - TRUTH["teff"]) < 10
    assert abs(result["logg"] - TRUTH["logg"]) < 0.03
    assert abs(result["vt"] - TRUTH["vt"]) < 0.03
    assert abs(result["feh"] - TRUTH["feh"]) < 0.01
    for key in ("teff_error", "logg_error", "vt_error", "feh_error"):
        assert result[key] > 0
    ti = result["abundances"]["Ti II"]
    assert ti["x_fe"] == pytest.approx(0.3, abs=0.02)
    assert ti["parameter_error"] > 0

    session = Session.load(smh)
    parameters = session.state["stellar_parameters"]
    assert parameters["adopted"] == "excitation-ionisation"
    stored = parameters["methods"]["excitation-ionisation"]
    assert stored["physics"]["model_atmospheres"]["grid_sha256"] == GRID_SHA256
    assert len(stored["inputs"]["line_hashes"]) == result["fe1"]["n"] + result["fe2"]["n"]
    measured = [
        m for m in session.measurements("ew") if m["line_hash"] in stored["line_abundances"]
    ]
    assert all(np.isfinite(m["abundances"]["Fe"]) for m in measured)
    # the abundances use every measured line (the solve leaves out the strongest and outliers)
    n_fe1 = sum(session._line(m["line_hash"]).species == 26.0 for m in session.measurements("ew"))
    assert session.state["abundances"]["species"]["Fe I"]["n"] == n_fe1 >= result["fe1"]["n"]

    # abundances at given parameters, and the tables
    table_tex = tmp_path / "abund.tex"
    assert (
        main(["session", "abundances", str(smh), "--teff", "4700", "--logg", "1.6", "--vt", "1.9",
              "--feh", "-2.6", "-o", str(table_tex)])
        == 0
    )  # fmt: skip
    text = capsys.readouterr().out
    assert "at Teff 4700 K" in text
    assert "Ti II" in text
    tex = table_tex.read_text()
    assert r"\begin{deluxetable}" in tex
    assert r"\tablenotetext{a}{[X/Fe] relative to Fe II}" in tex
    assert main(["session", "abundances", str(smh), "-o", str(tmp_path / "abund.ecsv")]) == 0
    table = Table.read(tmp_path / "abund.ecsv", format="ascii.ecsv")
    row = table[list(table["species"]).index("Fe I")]
    assert row["x_h"] == pytest.approx(TRUTH["feh"], abs=0.01)
    assert table.meta["model_atmospheres_sha256"] == GRID_SHA256
    assert table.meta["solar_reference"].startswith("Asplund et al. 2009")


def test_usage_errors(star: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    smh = tmp_path / "star.smh"
    smh.write_bytes(star.read_bytes())
    assert main(["session", "abundances", str(smh), "--teff", "4700"]) == 2
    assert "missing --logg, --vt, --feh" in capsys.readouterr().err
    assert main(["session", "abundances", str(smh)]) == 1
    err = capsys.readouterr().err
    assert "no stellar parameters: run `photonpipe session solve` first" in err
    assert err.count("\n") == 1


def test_no_radiative_transfer_code(
    star: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    smh = tmp_path / "star.smh"
    smh.write_bytes(star.read_bytes())
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("PHOTONPIPE_STELLAR_MOOG_AUTO_BUILD", "false")
    monkeypatch.setattr("photonpipe.stellar.sme.sme_available", lambda: False)
    assert main(["session", "solve", str(smh)]) == 2
    err = capsys.readouterr().err
    assert err == (
        "photonpipe: error: no radiative-transfer code: run `photonpipe session install-moog` "
        "(needs gfortran) or pip install photonpipe[sme]\n"
    )
    assert main(["--set", "stellar.radiative_transfer=moog", "session", "solve", str(smh)]) == 2
    assert "MOOG is not installed: run `photonpipe session install-moog`" in capsys.readouterr().err
    assert main(["--set", "stellar.radiative_transfer=sme", "session", "solve", str(smh)]) == 2
    assert "PySME is not installed: pip install photonpipe[sme]" in capsys.readouterr().err


def test_schema_2_sessions_migrate(star: Path, tmp_path: Path) -> None:
    state, files = read_session_file(star)
    # write the state as schema 2 had it: stellar_parameters {}, no abundances, EWs with {}
    state["schema_version"] = 2
    state["stellar_parameters"] = {}
    del state["abundances"]
    for m in state["measurements"].values():
        m["abundances"] = {}
        del m["abundance_uncertainties"]
    import io
    import tarfile

    old = tmp_path / "old.smh"
    with tarfile.open(old, "w:gz") as tar:
        for name, data in [(SESSION_PICKLE, pickle.dumps(state, protocol=2)), *files.items()]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    migrated, _ = read_session_file(old)
    assert migrated["schema_version"] == 3
    assert migrated["stellar_parameters"] == {"adopted": None, "methods": {}}
    assert migrated["abundances"] == {}
    m = next(iter(migrated["measurements"].values()))
    assert set(m["abundances"]) in ({"Fe"}, {"Ti"})
    assert all(math.isnan(v) for v in m["abundances"].values())
    assert migrated["history"][-1]["action"] == "migrated 2->3"
