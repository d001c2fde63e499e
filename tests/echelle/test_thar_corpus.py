"""Wavelength solutions on a real Th-Ar lamp spectrum rendered onto NRES orders.

The lamp is the KPNO coudé-feed Th-Ar atlas spectrum shipped in PyReduce's wheel
(``tests/data/echelle``; the helper ``tests/helpers/thar_corpus.py`` renders it with a known
λ(x), NRES's line-spread function and photon + read noise). Unlike the simulator's arcs, its
lines have real shapes, blends and unlisted neighbours, and the pipeline's line list is not
the one that made the spectrum. Numbers quoted are from 6 truths × 2 fibres (docs/echelle.md);
the tests use 2 × 2.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from helpers import thar_corpus
from helpers.thar_corpus import RenderedOrder
from photonpipe.echelle import instrument
from photonpipe.echelle.products import read_triple, write_triple
from photonpipe.echelle.wavecal import (
    WavelengthSolution,
    WavelengthSolutionError,
    detect_lines,
    solve_wavelength,
)

C_MS = 299_792_458.0


Corpus = dict[tuple[int, int], dict[int, RenderedOrder]]


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    """All 67 orders of fibres 0 and 1 of two NRES states (seeds 1, 2), rendered with noise."""
    out = {}
    for seed in (1, 2):
        truth = thar_corpus.corpus_truth(seed)
        for fibre in (0, 1):
            rng = np.random.default_rng(10 * seed + fibre)
            out[(seed, fibre)] = {
                index: thar_corpus.render_order(truth, index, fibre, rng) for index in range(67)
            }
    return out


@pytest.fixture(scope="module")
def solutions(corpus: Corpus) -> dict[tuple[int, int], WavelengthSolution]:
    spectrograph = instrument.spectrograph("lsc", 61100.0)
    out = {}
    for (seed, fibre), orders in corpus.items():
        lines = {i: detect_lines(o.x, o.flux, o.variance, o.mask, 20.0) for i, o in orders.items()}
        out[(seed, fibre)] = solve_wavelength(
            spectrograph, fibre, lines, instrument.thar_reference(), (0.0, 4095.0), 2, 2
        )
    return out


def _true_error(solution: WavelengthSolution, order: RenderedOrder) -> float:
    return thar_corpus.velocity_error(solution(order.x, order.index), order.true_wavelength)


def test_atlas_cutout_is_the_real_spectrum_with_its_source() -> None:
    with fits.open(thar_corpus.ATLAS_PATH) as hdul:
        header = hdul[0].header
        flux = hdul["FLUX"].data
        tie = hdul["TIE"].data
        assert "PyReduce" in header["ORIGIN"]
        assert header["LICENSE"].startswith("GPL-3.0")
        assert header["OBSERVAT"].strip() == "KPNO"
        assert header["REPAIRED"] is True
        # the byte repair left only plain numbers (misaligned floats decode as ±1e38 or NaN)
        assert np.isfinite(flux).all()
        assert np.abs(flux).max() < 1e7
        assert len(tie) >= 500
    atlas = thar_corpus.atlas_orders()
    assert sorted(atlas) == list(range(67))
    # the atlas resolves more than NRES does (R ≈ 64 000–87 000 against ≈ 53 000)
    for order in atlas.values():
        resolving_power = order.wavelength / (2.3548 * order.sigma)
        assert resolving_power.min() > 58_000


def test_reference_list_is_redman_vetted_by_the_eso_atlas() -> None:
    reference = instrument.thar_reference()
    redman, _ = instrument.thar_lines()
    assert reference.wavelength.size == 1485  # of 1734: 249 disagree with the ESO atlas
    assert np.all(np.isin(reference.wavelength, redman))
    assert reference.vetted.sum() == 158  # of nres-pipe's 188 vetted lines
    assert np.all(reference.uncertainty > 0)
    # dropped lines and the ESO atlas's own lines stay as neighbours (they blend)
    assert np.all(np.isin(redman, reference.neighbours))
    assert reference.neighbours.size == 1734 + 1293


def test_tie_lines_sit_at_their_redman_wavelengths(corpus: Corpus) -> None:
    """The truth: a tie line's measured centre is where Redman et al. put it, within noise."""
    order = corpus[(1, 1)][30]
    ties = thar_corpus.atlas_orders()[30].ties
    lines = detect_lines(order.x, order.flux, order.variance, order.mask, 20.0)
    true_x = np.interp(ties, order.true_wavelength, order.x)
    nearest = np.abs(lines.x[:, None] - true_x[None, :])
    close = nearest.min(axis=0) < 0.5
    assert close.sum() >= 10
    offset = lines.x[nearest.argmin(axis=0)][close] - true_x[close]
    error = lines.x_error[nearest.argmin(axis=0)][close]
    # with photon noise, the offsets are the centroid errors
    assert np.sqrt(np.mean((offset / error) ** 2)) < 2.0


def test_solution_on_the_real_lamp_is_accurate_and_honest(
    corpus: Corpus, solutions: dict[tuple[int, int], WavelengthSolution]
) -> None:
    true, reported, lines = [], [], []
    for key, solution in solutions.items():
        assert solution.n_lines > 700  # ≈ 920 of ≈ 1700 detected
        for index, order in corpus[key].items():
            true.append(_true_error(solution, order))
            reported.append(solution.orders[index].precision_ms)
            lines.append(solution.orders[index].n_lines)
    true_a = np.array(true).reshape(len(solutions), 67)
    reported_a = np.array(reported).reshape(len(solutions), 67)
    lines_a = np.array(lines).reshape(len(solutions), 67)
    overall = float(np.sqrt(np.mean(true_a**2)))
    ratio = float(np.sqrt(np.mean(reported_a**2)) / overall)
    print(f"true {overall:.1f} m/s, reported/true {ratio:.2f}")
    # 12 solutions: 10.0 m/s; 23.7 m/s with the code before (docs/echelle.md)
    assert overall < 13.0
    assert true_a.max() < 35.0
    assert np.sqrt(np.mean(true_a[lines_a >= 20] ** 2)) < 10.0
    # reported vs true within a factor 2 both ways; one solution's error in one order is one
    # draw of a few error modes, so orders are compared as the RMS over the 4 solutions and
    # in thirds of the orders (over 12 solutions every order's ratio is 0.8–1.7)
    assert 0.5 < ratio < 2.0
    for part in (slice(0, 22), slice(22, 45), slice(45, 67)):
        third = np.sqrt(np.mean(reported_a[:, part] ** 2) / np.mean(true_a[:, part] ** 2))
        assert 0.5 < third < 2.0, (part, third)
    per_order = np.sqrt(np.mean(reported_a**2, axis=0) / np.mean(true_a**2, axis=0))
    assert per_order.min() > 0.4, per_order
    assert per_order.max() < 2.5, per_order


def test_line_list_and_model_beat_the_old_defaults(corpus: Corpus) -> None:
    """The unvetted Redman list with a quartic in x (the old defaults) is worse."""
    orders = corpus[(1, 1)]
    lines = {i: detect_lines(o.x, o.flux, o.variance, o.mask, 20.0) for i, o in orders.items()}
    spectrograph = instrument.spectrograph("lsc", 61100.0)
    old = solve_wavelength(spectrograph, 1, lines, instrument.thar_lines(), (0.0, 4095.0), 4, 2)
    new = solve_wavelength(spectrograph, 1, lines, instrument.thar_reference(), (0.0, 4095.0), 2, 2)

    def overall(solution: WavelengthSolution) -> float:
        errors = [_true_error(solution, o) for o in orders.values()]
        return float(np.sqrt(np.mean(np.square(errors))))

    assert overall(new) < 0.8 * overall(old)


def test_one_order_solutions_where_the_order_has_lines(corpus: Corpus) -> None:
    """Each order solved alone (a read-out window on one order): slope only, ≥ 8 lines."""
    spectrograph = instrument.spectrograph("lsc", 61100.0)
    true, reported, failed = [], [], []
    for index, order in corpus[(1, 1)].items():
        lines = detect_lines(order.x, order.flux, order.variance, order.mask, 20.0)
        try:
            solution = solve_wavelength(
                spectrograph,
                1,
                {index: lines},
                instrument.thar_reference(),
                (0.0, 4095.0),
                1,
                0,
            )
        except WavelengthSolutionError as exc:
            failed.append((index, str(exc)))
            continue
        if solution.orders[index].n_lines >= 20:
            true.append(_true_error(solution, order))
            reported.append(solution.orders[index].precision_ms)
    assert len(failed) <= 15, failed  # the reddest and bluest orders hold too few lines
    assert all("arc lines" in message for _, message in failed)
    assert len(true) >= 10
    true_a, reported_a = np.array(true), np.array(reported)
    ratio = float(np.sqrt(np.mean(reported_a**2) / np.mean(true_a**2)))
    print(f"one-order: true {np.sqrt(np.mean(true_a**2)):.1f}, reported ratio {ratio:.2f}")
    assert np.sqrt(np.mean(true_a**2)) < 80.0
    assert 0.5 < ratio < 2.0


def test_triple_round_trip_keeps_the_errors_and_reads_older_files(
    solutions: dict[tuple[int, int], WavelengthSolution], tmp_path: Path
) -> None:
    solution = solutions[(1, 1)]
    path = tmp_path / "triple.fits"
    write_triple(path, {1: solution}, fits.Header())
    back = read_triple(path)[1]
    x = np.linspace(0.0, 4095.0, 9)
    assert np.allclose(back(x, 30), solution(x, 30), rtol=0, atol=1e-9)
    assert np.allclose(back.uncertainty(x, 30), solution.uncertainty(x, 30), rtol=1e-9)
    assert back.orders[30] == solution.orders[30]
    assert back.model_scale == pytest.approx(solution.model_scale)
    assert np.array_equal(back.arc_lines["x"], solution.arc_lines["x"])
    assert np.array_equal(back.lines["x_error"], solution.lines["x_error"])
    # a TRIPLE written before the errors were stored: no covariance, no per-order table
    with fits.open(path) as hdul:
        tables = []
        for name, new in (("SOLUTION", "COVAR"), ("LINES", "XERR")):
            columns = [c for c in hdul[name].columns if c.name not in (new, "SIGMA")]
            table = fits.BinTableHDU.from_columns(columns, name=name)
            for key in ("XDEGREE", "MDEGREE"):
                if key in hdul[name].header:
                    table.header[key] = hdul[name].header[key]
            tables.append(table)
        fits.HDUList([fits.PrimaryHDU(header=hdul[0].header), *tables]).writeto(
            tmp_path / "old.fits"
        )
    older = read_triple(tmp_path / "old.fits")[1]
    assert np.allclose(older(x, 30), solution(x, 30), rtol=0, atol=1e-9)
    assert older.covariance is None
    assert np.isnan(older.uncertainty(x, 30)).all()
    assert older.arc_lines == {}
    assert "x_error" not in older.lines
