"""Master stacks (noise, clipping, minimum counts) and best-calibration selection."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from photonpipe.echelle.calibrations import best_calibration, record_calibration
from photonpipe.echelle.formats import read_raw
from photonpipe.echelle.models import CalibrationRecord
from photonpipe.echelle.preprocess import preprocess
from photonpipe.echelle.simulate import NightPlan, simulate_night
from photonpipe.echelle.stacking import CalibrationError, sigma_clipped_mean, stack_images
from photonpipe.platform.archive import Archive
from photonpipe.platform.db import Database

READ_NOISE = 10.0  # e⁻, camera fl09 in nres-pipe's ccds.csv


@pytest.fixture(scope="module")
def biases(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    plan = NightPlan(biases=9, darks=0, flats_per_pair=0, arcs_per_pair=0, science=0)
    return simulate_night(tmp_path_factory.mktemp("biases"), small=True, seed=21, plan=plan).frames


def test_master_bias_noise_drops_as_inverse_sqrt_n(biases: list[Path]) -> None:
    images = [preprocess(read_raw(p)) for p in biases]
    single = images[0].data - images[1].data  # noise √2 σ_read
    three_a = stack_images(images[0:3], "BIAS")
    three_b = stack_images(images[3:6], "BIAS")
    nine = stack_images(images, "BIAS")
    sigma_single = np.std(single) / np.sqrt(2)
    sigma_three = np.std(three_a.data - three_b.data) / np.sqrt(2)
    assert sigma_single == pytest.approx(READ_NOISE, rel=0.05)
    assert sigma_three == pytest.approx(READ_NOISE / np.sqrt(3), rel=0.05)
    # Propagated uncertainties agree with the measured scatter.
    assert np.median(three_a.uncertainty) == pytest.approx(READ_NOISE / np.sqrt(3), rel=0.05)
    assert np.median(nine.uncertainty) == pytest.approx(READ_NOISE / 3.0, rel=0.05)
    assert nine.inputs == [p.name for p in biases]


def test_clipping_removes_an_outlier_frame_value() -> None:
    rng = np.random.default_rng(0)
    data = rng.normal(100.0, 1.0, (5, 20, 20)).astype(np.float32)
    data[2, 5, 5] = 5000.0  # a cosmic ray in one frame
    error = np.ones_like(data)
    mean, mean_error, used = sigma_clipped_mean(data, error)
    assert used[5, 5] == 4
    assert abs(mean[5, 5] - 100.0) < 2.0
    assert mean_error[5, 5] == pytest.approx(0.5)
    assert used.sum() == 5 * 400 - 1


def test_too_few_frames_is_an_error(biases: list[Path]) -> None:
    images = [preprocess(read_raw(p)) for p in biases[:2]]
    with pytest.raises(CalibrationError, match="BIAS stack needs at least 3 frames, got 2"):
        stack_images(images, "BIAS")


def _record(
    database: Database, archive: Archive, name: str, ctype: str, fibres: str, when: datetime
) -> None:
    path = archive.path(name)
    record_calibration(
        database, archive, ctype=ctype, site="lsc", instrument_name="nres01", camera="fl09",
        fibres=fibres, dateobs=when, path=path, n_frames=3, validity=timedelta(days=1),
    )  # fmt: skip


def test_best_calibration_selection(database: Database, tmp_path: Path) -> None:
    archive = Archive(tmp_path)
    t0 = datetime(2026, 3, 1, 22, 0, tzinfo=UTC)
    _record(database, archive, "flat-a.fits", "FLAT", "110", t0)
    _record(database, archive, "flat-b.fits", "FLAT", "110", t0 + timedelta(hours=10))
    _record(database, archive, "flat-c.fits", "FLAT", "011", t0 + timedelta(hours=3))
    _record(database, archive, "bias.fits", "BIAS", "000", t0)
    when = t0 + timedelta(hours=4)
    best = best_calibration(database, "nres01", "FLAT", when, "110")
    assert best is not None
    assert best.path == "flat-a.fits"
    assert best_calibration(database, "nres01", "FLAT", when, "011").path == "flat-c.fits"  # type: ignore[union-attr]
    assert best_calibration(database, "nres02", "FLAT", when, "110") is None  # other instrument
    # Marking the nearest bad selects the next one.
    with database.session() as session:
        record = session.query(CalibrationRecord).filter_by(path="flat-a.fits").one()
        record.is_bad = True
    assert best_calibration(database, "nres01", "FLAT", when, "110").path == "flat-b.fits"  # type: ignore[union-attr]
    # Outside every validity window (±1 day): nothing.
    assert best_calibration(database, "nres01", "BIAS", t0 + timedelta(days=3)) is None
    # Re-recording the same path updates instead of duplicating.
    _record(database, archive, "bias.fits", "BIAS", "000", t0 + timedelta(days=3))
    assert best_calibration(database, "nres01", "BIAS", t0 + timedelta(days=3)).path == "bias.fits"  # type: ignore[union-attr]
