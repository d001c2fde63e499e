"""A small simulated NRES night, reduced once per session, shared by the echelle tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from photonpipe.echelle.pipeline import NightReport, reduce_night
from photonpipe.echelle.simulate import SimulatedNight, simulate_night
from photonpipe.platform.archive import Archive
from photonpipe.platform.db import Database

NIGHT = "2026-03-01"


@dataclass
class ReducedNight:
    """A simulated small night and what the pipeline made of it."""

    root: Path
    archive: Archive
    database: Database
    simulated: SimulatedNight
    report: NightReport


@pytest.fixture(scope="session")
def reduced_night(tmp_path_factory: pytest.TempPathFactory) -> ReducedNight:
    """lsc, small (1024² window, ~16 orders), seed 11, reduced through ``reduce_night``."""
    root = tmp_path_factory.mktemp("nres-night")
    simulated = simulate_night(root, site="lsc", night=NIGHT, small=True, seed=11)
    archive = Archive(root)
    database = Database(f"sqlite:///{root / 'photonpipe.db'}")
    database.upgrade()
    report = reduce_night(archive, database, "lsc", "nres01", NIGHT, workers=1, progress=False)
    return ReducedNight(root, archive, database, simulated, report)
