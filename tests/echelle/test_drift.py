"""Simultaneous Th-Ar drift correction of science frames, against the simulator's drift.

One small simulated night (``drift_night``) drifts by 0.05 px per hour (≈ 70 m/s per hour at
this dispersion): the TRIPLE is made from the arcs at the start of the night, and four 900 s
science frames five hours later have drifted ≈ 0.23–0.27 px (≈ 330–390 m/s) from it. The
zero-drift night of conftest.py (``reduced_night``) must measure a drift consistent with 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from photonpipe.echelle import instrument
from photonpipe.echelle.drift import fit_shift, match_lines, measure_drift
from photonpipe.echelle.extract import ExtractedSpectra
from photonpipe.echelle.pipeline import reduce_night
from photonpipe.echelle.products import read_triple
from photonpipe.echelle.science import reduce_science
from photonpipe.echelle.settings import Options
from photonpipe.echelle.simulate import (
    NightPlan,
    SimulatedNight,
    frame_truth,
    simulate_night,
    true_wavelength,
)
from photonpipe.echelle.wavecal import ArcLines, WavelengthSolution
from photonpipe.platform.archive import Archive
from photonpipe.platform.db import Database

from .conftest import ReducedNight

NIGHT = "2026-03-01"
RATE = 0.05  # px per hour
C_MS = 299_792_458.0
#: |measured − true| drift [px]: ≈ 3.5 σ of one frame (σ ≈ 0.0016 px from ≈ 160 lines, plus the
#: arc stack's own centroid noise, common to the night's frames).
DRIFT_TOLERANCE_PX = 0.006


@dataclass
class DriftNight:
    """The drifting night, its archive and database, and its 1-D products."""

    root: Path
    archive: Archive
    database: Database
    simulated: SimulatedNight
    spectra: list[Path]


@pytest.fixture(scope="module")
def drift_night(tmp_path_factory: pytest.TempPathFactory) -> DriftNight:
    root = tmp_path_factory.mktemp("nres-drift")
    simulated = simulate_night(
        root,
        site="lsc",
        night=NIGHT,
        small=True,
        seed=31,
        plan=NightPlan(science=4, science_exptime=900.0, drift_px_per_hour=RATE),
    )
    archive = Archive(root)
    database = Database(f"sqlite:///{root / 'photonpipe.db'}")
    database.upgrade()
    report = reduce_night(archive, database, "lsc", "nres01", NIGHT, workers=1, progress=False)
    assert report.ok, report.failed
    spectra = sorted((root / "lsc" / "nres01" / "reduced" / "spec").glob("*-1d.fits"))
    assert len(spectra) == 4
    return DriftNight(root, archive, database, simulated, spectra)


def _arc_drift(simulated: SimulatedNight) -> float:
    """True drift [px] of the TRIPLE's fibre 0 and 1 solutions: the mean of their arc frames."""
    return float(
        np.mean(
            [
                float(f["drift_px"])  # type: ignore[arg-type]
                for f in simulated.truth.frames
                if f["objects"] == "thar&thar&none"
            ]
        )
    )


def _velocity_rms(
    table: fits.FITS_rec,
    simulated: SimulatedNight,
    raw: str,
    fibre: int,
    solution: WavelengthSolution | None = None,
) -> float:
    """RMS [m/s] of a fibre's WAVELENGTH (or ``solution``'s) against the frame's truth."""
    truth = frame_truth(simulated.truth, raw)
    x = truth.x0 + np.arange(truth.nx, dtype=float)
    velocity = []
    for row in table[table["FIBRE"] == fibre]:
        true_wave = true_wavelength(truth, x, int(row["ORDER"]), fibre)
        wave = row["WAVELENGTH"] if solution is None else solution(x, int(row["ORDER"]))
        velocity.append((wave - true_wave) / true_wave * C_MS)
    return float(np.sqrt(np.mean(np.concatenate(velocity) ** 2)))


def test_truth_records_a_linear_drift(drift_night: DriftNight) -> None:
    truth = drift_night.simulated.truth
    with fits.open(drift_night.simulated.truth_path) as hdul:
        table = hdul["DRIFT"].data
        rv = hdul["RV"].data
        assert hdul[0].header["DRIFTRAT"] == RATE
    assert len(table) == len(truth.frames)
    headers = [fits.getheader(path, 1) for path in drift_night.simulated.frames]
    start = min(h["MJD-OBS"] for h in headers)
    for row, header in zip(table, headers, strict=True):
        hours = (header["MJD-OBS"] - start) * 24.0 + header["EXPTIME"] / 7200.0
        assert row["DRIFT"] == pytest.approx(RATE * hours, abs=1e-5)
    science = table[table["OBSTYPE"] == "TARGET"]
    assert np.array_equal(rv["DRIFT"], science["DRIFT"])
    assert np.all(science["DRIFT"] > 0.2)
    assert _arc_drift(drift_night.simulated) < 0.05
    # a frame's geometry is the night's, shifted: λ(x + δx) during the frame = λ(x) of the night
    name = str(science["FILE"][0])
    shift = float(science["DRIFT"][0])
    x = np.linspace(1600.0, 2500.0, 7)
    during = true_wavelength(frame_truth(truth, name), x + shift, 40, 0)
    assert np.allclose(during, true_wavelength(truth, x, 40, 0), rtol=0, atol=1e-9)


def test_measured_drift_matches_the_truth(drift_night: DriftNight) -> None:
    arc = _arc_drift(drift_night.simulated)
    errors = []
    for path in drift_night.spectra:
        header = fits.getheader(path)
        true_shift = float(frame_truth(drift_night.simulated.truth, header["RAWFILE"]).drift_px)
        expected = true_shift - arc  # the science frame's drift since the TRIPLE's arcs
        print(
            f"drift error {(header['DRIFTPX'] - expected) * 1e3:+.2f} mpx,"
            f" DRIFTERR {header['DRIFTERR'] * 1e3:.2f} mpx, {header['DRIFTNL']} lines"
        )
        assert header["DRIFTCOR"] is True, header["DRIFTWHY"]
        assert header["DRIFTWHY"] == "corrected"
        assert header["DRIFTFIB"] == 1
        assert header["DRIFTNL"] >= 100
        assert 0.0 < header["DRIFTERR"] < 0.003
        assert header["DRIFTCHI"] < 2.0  # one shift describes every line
        assert abs(header["DRIFTPX"] - expected) < DRIFT_TOLERANCE_PX
        assert abs(header["DRIFTPX"] - expected) < 4.0 * math.hypot(header["DRIFTERR"], 0.001)
        # velocity equivalent: ≈ 1.45 km/s per pixel at the centre of this sample of orders
        assert header["DRIFTMS"] / header["DRIFTPX"] == pytest.approx(1450.0, rel=0.1)
        errors.append(header["DRIFTPX"] - expected)
    assert abs(float(np.mean(errors))) < 0.004


def test_corrected_wavelengths_follow_the_frame(drift_night: DriftNight) -> None:
    solutions = read_triple(
        next((drift_night.root / "lsc" / "nres01" / "reduced" / "trip").glob("*.fits"))
    )
    for path in drift_night.spectra:
        with fits.open(path) as hdul:
            header = hdul[0].header
            table = hdul["SPECTRUM"].data
        raw = str(header["RAWFILE"])
        corrected = _velocity_rms(table, drift_night.simulated, raw, 0)
        thar = _velocity_rms(table, drift_night.simulated, raw, 1)
        # the TRIPLE's wavelengths, as before the correction
        before = _velocity_rms(table, drift_night.simulated, raw, 0, solutions[0])
        assert before > 250.0  # ≈ 0.24 px of drift
        assert corrected < 15.0, (raw, corrected, before)
        assert thar < 15.0
        assert corrected < before / 20.0


def test_zero_drift_night_measures_zero(reduced_night: ReducedNight) -> None:
    spectra = sorted((reduced_night.root / "lsc" / "nres01" / "reduced" / "spec").glob("*-1d.fits"))
    assert spectra
    for path in spectra:
        header = fits.getheader(path)
        assert header["DRIFTCOR"] is True, header["DRIFTWHY"]
        assert abs(header["DRIFTPX"]) < DRIFT_TOLERANCE_PX
        assert abs(header["DRIFTPX"]) < 4.0 * math.hypot(header["DRIFTERR"], 0.001)
        print(f"zero drift {header['DRIFTPX'] * 1e3:+.2f} DRIFTERR {header['DRIFTERR'] * 1e3:.2f}")


def _solution(lines_x: list[float], orders: list[int]) -> WavelengthSolution:
    return WavelengthSolution(
        instrument.spectrograph("lsc", 61000.0),
        1,
        np.zeros((2, 1)),
        (1536.0, 2559.0),
        (90.0, 104.0),
        lines={"x": np.array(lines_x), "order": np.array(orders, float)},
    )


def test_matching_and_fit_reject_outliers() -> None:
    rng = np.random.default_rng(3)
    arc_x = np.tile(np.linspace(1600.0, 2500.0, 30), 2) + rng.uniform(-3.0, 3.0, 60)
    shift = 0.731
    errors = np.full(arc_x.size, 0.02)
    science = arc_x + shift + rng.normal(0.0, 0.02, arc_x.size)
    science[::10] += 0.3  # blends and cosmic rays: far beyond their errors
    lines = {
        40: ArcLines(science[:30], errors[:30], np.ones(30)),
        41: ArcLines(science[30:], errors[30:], np.ones(30)),
    }
    reference = _solution(list(arc_x), [40] * 30 + [41] * 30)
    x_science, x_error, x_arc, x_arc_error = match_lines(lines, reference)
    assert x_science.size == 60
    assert np.all(x_arc_error == 0.0)  # this reference records no arc-line errors
    fitted, error, n, chi2 = fit_shift(x_science, x_error, x_arc)
    assert n == 54
    assert abs(fitted - shift) < 3.0 * error
    assert error == pytest.approx(0.02 / math.sqrt(54), rel=0.2)
    assert chi2 < 2.0
    # the arcs' own centroid errors add in quadrature to each line's
    _, with_arc, _, _ = fit_shift(x_science, x_error, x_arc, x_arc_error=np.full(60, 0.02))
    assert with_arc == pytest.approx(error * math.sqrt(2.0), rel=0.05)


def test_no_correction_without_thar_or_enough_lines() -> None:
    spectra = ExtractedSpectra(
        [(40, 0)],
        np.arange(1536.0, 2560.0),
        np.ones((1, 1024)),
        np.ones((1, 1024)),
        np.zeros((1, 1024), np.uint8),
    )
    solutions = {0: _solution([], []), 1: _solution([2000.0], [40])}
    drift = measure_drift(spectra, solutions, None, 0)
    assert not drift.applied
    assert drift.reason == "no Th-Ar fibre lit"
    drift = measure_drift(spectra, solutions, 1, 0)
    assert not drift.applied
    assert "not extracted" in drift.reason
    flat = ExtractedSpectra([(40, 1)], spectra.x, spectra.flux, spectra.variance, spectra.mask)
    drift = measure_drift(flat, solutions, 1, 0)
    assert not drift.applied
    assert drift.reason.startswith("only 0 Th-Ar lines")


def test_too_few_lines_keeps_the_triple(drift_night: DriftNight) -> None:
    """A frame whose drift cannot be measured is reduced, uncorrected, with the reason."""
    path = drift_night.spectra[0]
    raw = drift_night.simulated.raw_dir / str(fits.getheader(path)["RAWFILE"])
    try:
        reduce_science(
            drift_night.archive, drift_night.database, raw, Options(drift_min_lines=10_000)
        )
        with fits.open(path) as hdul:
            header = hdul[0].header
            table = hdul["SPECTRUM"].data
        assert header["DRIFTCOR"] is False
        assert header["DRIFTWHY"].startswith("only ")
        assert header["DRIFTNL"] >= 100  # measured, but not applied
        assert _velocity_rms(table, drift_night.simulated, raw.name, 0) > 250.0
    finally:
        reduce_science(drift_night.archive, drift_night.database, raw)
    assert fits.getheader(path)["DRIFTCOR"] is True
