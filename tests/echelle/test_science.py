"""Accuracy of the reduced night against the simulator's truth (and independent expectations)."""

from __future__ import annotations

import numpy as np
from astropy.io import fits

from photonpipe.echelle.preprocess import MASK_COSMIC, read_image
from photonpipe.echelle.products import read_triple
from photonpipe.echelle.simulate import order_spectrum
from photonpipe.echelle.traces import TraceSet

from .conftest import ReducedNight

C_MS = 299_792_458.0


def _reduced(night: ReducedNight, sub: str, suffix: str) -> list:  # type: ignore[type-arg]
    return sorted((night.root / "lsc" / "nres01" / "reduced" / sub).glob(f"*{suffix}"))


def test_night_completes_with_every_product(reduced_night: ReducedNight) -> None:
    report = reduced_night.report
    assert report.ok, report.failed
    reduced = reduced_night.root / "lsc" / "nres01" / "reduced"
    subdirs = "bias blaz ccor class config csv dark dble diag expm extr flat plot rv spec tar temp"
    for sub in (subdirs + " thar trace trip zero").split():
        assert (reduced / sub).is_dir()
    assert len(_reduced(reduced_night, "flat", ".fits")) == 2
    # the default night's standard-star sequence: four science frames, one ZERO made of them
    assert len(report.products) == 4
    assert len(_reduced(reduced_night, "plot", ".png")) == 4
    assert len(_reduced(reduced_night, "spec", "-1d.fits")) == 4
    assert len(report.zeros) == 1


def test_traces_within_005_px_of_truth(reduced_night: ReducedNight) -> None:
    traces = TraceSet.read(_reduced(reduced_night, "trace", "-trace.fits")[0])
    truth = reduced_night.simulated.truth
    x = truth.x0 + np.arange(truth.nx, dtype=float)
    with fits.open(reduced_night.simulated.truth_path) as hdul:
        table = hdul["TRACE"].data
        inside = [int(o) for o in hdul[0].header["ORDERS"].split(",")]
    residuals = []
    for order, fibre in traces:
        if order not in inside:
            continue
        row = (table["ORDER"] == order) & (table["FIBRE"] == fibre)
        true_y = np.polynomial.polynomial.polyval((x - 2047.5) / 2047.5, table["COEFFS"][row][0])
        residuals.append(traces.centre(order, fibre, x) - true_y)
    assert len(residuals) >= 30  # ≈ 15 orders × 2–3 fibres
    rms = float(np.sqrt(np.mean(np.concatenate(residuals) ** 2)))
    assert rms < 0.05


def test_wavelength_solution_residuals_and_truth(reduced_night: ReducedNight) -> None:
    solutions = read_triple(_reduced(reduced_night, "trip", ".fits")[0])
    assert sorted(solutions) == [0, 1, 2]
    with fits.open(reduced_night.simulated.truth_path) as hdul:
        table = hdul["WAVELENGTH"].data
    truth = reduced_night.simulated.truth
    x = truth.x0 + np.arange(truth.nx, dtype=float)
    for fibre, solution in solutions.items():
        assert solution.n_lines >= 50
        assert solution.rms_angstrom <= 0.005
        # Independent check of the quality figures from the stored line residuals.
        assert np.isclose(solution.rms_angstrom, np.sqrt(np.mean(solution.lines["residual"] ** 2)))
        orders = range(int(solution.m_domain[0]) - 52, int(solution.m_domain[1]) - 52 + 1)
        velocity = []
        expected = []
        for order in orders:
            row = (table["ORDER"] == order) & (table["FIBRE"] == fibre)
            if not row.any():
                continue
            true_wave = table["WAVELENGTH"][row][0]
            velocity.append((solution(x, order) - true_wave) / true_wave * C_MS)
            # the reported expected error, recomputed from the stored covariance
            expected.append(C_MS * solution.uncertainty(x, order) / true_wave)
            assert np.isclose(
                solution.orders[order].precision_ms, solution.expected_error_ms(order), rtol=0.02
            )
        rms_ms = float(np.sqrt(np.mean(np.concatenate(velocity) ** 2)))
        reported_ms = float(np.sqrt(np.mean(np.concatenate(expected) ** 2)))
        print(f"fibre {fibre}: true {rms_ms:.2f} m/s, reported {reported_ms:.2f} m/s")
        assert rms_ms < 10.0, (fibre, rms_ms)
        # the reported precision is the true error within a factor 2, both ways
        assert 0.5 < reported_ms / rms_ms < 2.0, (fibre, rms_ms, reported_ms)


def test_optimal_extraction_flux_within_1_percent(reduced_night: ReducedNight) -> None:
    night = reduced_night
    product = _reduced(night, "spec", "-1d.fits")[0]
    frame_number = product.name.split("-")[3]
    with fits.open(night.simulated.truth_path) as hdul:
        truth = hdul[f"SCI_{frame_number}"].data
    with fits.open(product) as hdul:
        table = hdul["SPECTRUM"].data
        header = hdul[0].header
    assert header["RAWFILE"].startswith(f"lscnrs01-fl09-20260301-{frame_number}")
    for key in ("BIASFILE", "DARKFILE", "FLATFILE", "TRACFILE", "TRIPFILE", "SOFTWARE", "RAWSHA"):
        assert key in header
    checked = 0
    for row in table[table["FIBRE"] == 0]:
        expected = truth["FLUX"][(truth["ORDER"] == row["ORDER"]) & (truth["FIBRE"] == 0)][0]
        good = (row["MASK"] == 0) & (expected / np.maximum(row["UNCERTAINTY"], 1e-9) >= 100)
        if good.sum() < 200:
            continue
        ratio = row["FLUX"][good] / expected[good]
        assert abs(np.median(ratio) - 1.0) < 0.01
        assert abs(np.median(row["BOXFLUX"][good] / expected[good]) - 1.0) < 0.01
        pull = (row["FLUX"][good] - expected[good]) / row["UNCERTAINTY"][good]
        # The uncertainties are right: pulls have unit spread (robust σ), and cosmic rays are
        # rejected: at most 1 pixel in 500 beyond 5σ (a ray lying over half of a column's core
        # cannot be told from flux by the column alone).
        assert 0.85 < 1.4826 * np.median(np.abs(pull - np.median(pull))) < 1.2
        assert np.mean(np.abs(pull) > 5.0) < 0.002
        checked += 1
    assert checked >= 10


def test_cosmic_rays_flagged_in_2d_product(reduced_night: ReducedNight) -> None:
    image = read_image(_reduced(reduced_night, "spec", "-2d.fits")[0])
    assert (image.mask & MASK_COSMIC).sum() > 0


def test_wavelengths_in_product_are_vacuum_angstrom(reduced_night: ReducedNight) -> None:
    product = _reduced(reduced_night, "spec", "-1d.fits")[0]
    with fits.open(product) as hdul:
        table = hdul["SPECTRUM"].data
        assert hdul["SPECTRUM"].columns["WAVELENGTH"].unit == "Angstrom"
    for row in table:
        wave = row["WAVELENGTH"]
        assert np.all(np.diff(wave) > 0)
        # physical order m = 52 + index covers λ ≈ 4.48e5 Å / m
        assert abs(np.median(wave) * (52 + row["ORDER"]) / 4.48e5 - 1.0) < 0.02


def test_blaze_is_the_smooth_lamp_shape(reduced_night: ReducedNight) -> None:
    # BLAZE is a spline fitted to the extracted master flat: it follows the true lamp × blaze ×
    # throughput shape (the simulator's noiseless flat spectrum) to far better than the flat's
    # own pixel noise (≈ 0.3 %), which a division by the raw flat would imprint on every frame
    truth = reduced_night.simulated.truth
    product = _reduced(reduced_night, "spec", "-1d.fits")[0]
    with fits.open(product) as hdul:
        table = hdul["SPECTRUM"].data
    inside = {
        int(o) for o in fits.getheader(reduced_night.simulated.truth_path)["ORDERS"].split(",")
    }
    checked = 0
    for row in table[table["FIBRE"] == 0]:
        if int(row["ORDER"]) not in inside:
            continue
        expected = order_spectrum(truth, int(row["ORDER"]), 0, "tung", 60.0)
        use = row["BLAZE"] > 0.2
        ratio = row["BLAZE"][use] / (expected[use] / expected[use].max())
        ratio /= np.median(ratio)
        # column-to-column: no flat noise left (the raw flat's would give ≈ 0.003)
        assert np.std(np.diff(ratio)) / np.sqrt(2.0) < 0.0002
        # and the shape itself, to a few tenths of a per cent across the order
        assert np.max(np.abs(ratio - 1.0)) < 0.005
        checked += 1
    assert checked >= 10
