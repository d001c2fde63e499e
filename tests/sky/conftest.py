"""Small simulated BOSS plates shared by the sky tests (simulated once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from photonpipe.platform.archive import Archive
from photonpipe.sky.reference import boss_plates
from photonpipe.sky.simulate import SimulatedPlate, simulate_plate


def _plate(number: int, mjd: int):  # type: ignore[no-untyped-def]
    return next(p for p in boss_plates() if p.plate == number and p.mjd == mjd)


@pytest.fixture(scope="session")
def noiseless_plate(tmp_path_factory: pytest.TempPathFactory) -> SimulatedPlate:
    """Plate 6627 (MJD 56369), 30 fibres per spectrograph, 2 exposures, no noise."""
    root = tmp_path_factory.mktemp("sky-noiseless")
    return simulate_plate(
        Archive(root), _plate(6627, 56369), 3, fibres_per_spectrograph=30, exposures=2, noise=False
    )


@pytest.fixture(scope="session")
def noisy_plate(tmp_path_factory: pytest.TempPathFactory) -> SimulatedPlate:
    """Plate 4055 (MJD 55359), 60 fibres per spectrograph, 1 exposure, with noise."""
    root = tmp_path_factory.mktemp("sky-noisy")
    return simulate_plate(
        Archive(root), _plate(4055, 55359), 5, fibres_per_spectrograph=60, exposures=1
    )


@pytest.fixture
def plate_copy(noiseless_plate: SimulatedPlate, tmp_path: Path) -> Path:
    """A writable copy of the noiseless plate's input directory (for corruption tests)."""
    import shutil

    target = tmp_path / "input" / noiseless_plate.directory.name
    shutil.copytree(noiseless_plate.directory, target)
    return target


@pytest.fixture(scope="session")
def analysis_plate(tmp_path_factory: pytest.TempPathFactory) -> SimulatedPlate:
    """Plate 6627 (MJD 56369), 150 fibres per spectrograph (15 sky fibres), 1 exposure, noise."""
    root = tmp_path_factory.mktemp("sky-analysis")
    return simulate_plate(
        Archive(root), _plate(6627, 56369), 5, fibres_per_spectrograph=150, exposures=1
    )
