"""PySME driver: the worker (no network, its own HOME), SME closed loop, MOOG against SME."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from helpers.stellar_physics import moog_or_skip
from photonpipe.stellar.linelist import Line, read_linelist
from photonpipe.stellar.photospheres import bundled_grid
from photonpipe.stellar.radiative_transfer import RadiativeTransferError
from photonpipe.stellar.sme import Sme, sme_available

DATA = Path(__file__).parent.parent / "data" / "stellar"

pytestmark = pytest.mark.skipif(
    not sme_available(), reason="pysme-astro is not installed (pip install photonpipe[sme])"
)


@pytest.fixture(scope="module")
def sme() -> Sme:
    driver = Sme()
    yield driver
    driver.close()


@pytest.fixture(scope="module")
def iron() -> list[Line]:
    lines = read_linelist(DATA / "frebel2013_hd122563_ew.moog2")
    return [ln for ln in lines if int(ln.species) == 26][::8]


def test_worker_is_isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    driver = Sme()
    try:
        assert driver.version.startswith("PySME ")
        assert "SME Library version" in driver.version
        assert driver._ask({"op": "network"}) == {"blocked": True}
    finally:
        driver.close()
    # pysme's first-import setup went to photonpipe's cache, not to the user's home
    assert (tmp_path / "cache" / "photonpipe" / "sme-home" / ".sme").is_dir()
    assert not (tmp_path / "home" / ".sme").exists()
    assert driver.record()["settings"]["window"] == 3.0


def test_sme_closed_loop(sme: Sme, iron: list[Line]) -> None:
    model = bundled_grid().interpolate(4600.0, 1.6, -2.6)
    ews = sme.equivalent_widths(model, 1.9, iron, {26: 4.90})
    assert np.all(ews > 0)
    abundances = sme.abundances(model, 1.9, iron, ews)
    assert np.max(np.abs(abundances - 4.90)) < 0.005


def test_moog_against_sme_per_fe_line(sme: Sme, iron: list[Line]) -> None:
    # same atmosphere, lines (no damping constants: both use Unsöld) and EWs
    from photonpipe.stellar.moog import Moog

    moog = Moog(moog_or_skip().executable, damping=0)
    model = bundled_grid().interpolate(4600.0, 1.6, -2.6)
    ews = moog.equivalent_widths(model, 1.9, iron, {26: 4.90})
    difference = sme.abundances(model, 1.9, iron, ews) - moog.abundances(model, 1.9, iron, ews)
    # measured (31 lines): SME higher by +0.030 ... +0.094 dex, median +0.055 (docs/stellar.md);
    # the 0.05 dex per line is met by the weaker and redder lines only
    assert 0.02 < np.median(difference) < 0.08
    assert np.all(difference > 0.0)
    assert np.max(difference) < 0.12
    weak = (ews < 40) & (np.array([ln.wavelength for ln in iron]) > 4500)
    assert np.all(difference[weak] < 0.05)


def test_bad_input(sme: Sme) -> None:
    model = bundled_grid().interpolate(4600.0, 1.6, -2.6)
    with pytest.raises(RadiativeTransferError, match="takes atoms"):
        sme.equivalent_widths(model, 1.9, [Line(4300.0, 106.0, 0.1, -1.0)], {})
    with pytest.raises(RadiativeTransferError, match="unknown SME setting"):
        Sme(windw=2.0)


def test_synthesis_of_a_region(sme: Sme) -> None:
    model = bundled_grid().interpolate(4600.0, 1.6, -2.6)
    line = Line(5250.646, 26.0, 2.198, -2.180)
    neighbour = Line(5247.050, 26.0, 0.087, -4.946)
    synthesis = sme.synthesize(model, 1.9, [line, neighbour], (5244.0, 5254.0), 0.005, {26: 4.9})
    assert synthesis.wavelength[0] == pytest.approx(5244.0)
    assert np.all(synthesis.flux <= 1.0 + 1e-6)
    # both lines are there, at their wavelengths
    for ln in (line, neighbour):
        near = np.abs(synthesis.wavelength - ln.wavelength) < 0.05
        assert synthesis.flux[near].min() < 0.9
    # the synthesised EW of the isolated line is the driver's EW
    part = np.abs(synthesis.wavelength - line.wavelength) < 1.5
    ew = np.trapezoid(1.0 - synthesis.flux[part], synthesis.wavelength[part]) * 1000.0
    (expected,) = sme.equivalent_widths(model, 1.9, [line], {26: 4.9})
    assert ew == pytest.approx(expected, rel=0.03)


def test_moog_against_sme_weak_lines(sme: Sme) -> None:
    # weak lines (linear curve of growth: no damping or vt dependence); docs/stellar.md table
    from photonpipe.stellar.moog import Moog

    moog = Moog(moog_or_skip().executable, damping=0)
    model = bundled_grid().interpolate(4600.0, 1.6, -2.6)
    lines = []
    for w in (3900.0, 5200.0, 7500.0):
        lines += [Line(w + ep, 26.0, ep, -5.5 + 0.9 * ep) for ep in (0.0, 4.0)]
        lines.append(Line(w + 7.0, 26.1, 3.0, -4.0))
    ratio = np.log10(
        moog.equivalent_widths(model, 1.9, lines, {26: 4.9})
        / sme.equivalent_widths(model, 1.9, lines, {26: 4.9})
    ).reshape(3, 3)
    fe1, fe2 = ratio[:, :2], ratio[:, 2]
    # measured: Fe I +0.029 ... +0.052, Fe II +0.036 (3900 Å) falling to +0.006 (7500 Å)
    assert np.all((fe1 > 0.02) & (fe1 < 0.07))
    assert abs(fe1[:, 0] - fe1[:, 1]).max() < 0.01  # independent of excitation potential
    assert fe2[0] > fe2[1] > fe2[2] > 0.0  # grows to the blue
    assert np.all(fe1.mean(axis=1) - fe2 > 0.01)  # Fe I only: the ionisation balance
