"""A simulated small NRES night, and the same night after the nightly tasks, per session.

Tests get their own copy (:func:`helpers.echelle_ops.copy_night`) so that they can reduce, change
and add frames.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from helpers.echelle_ops import MORNING, NIGHT
from photonpipe.echelle.operations import OpsContext, run_nightly
from photonpipe.echelle.settings import Options
from photonpipe.echelle.simulate import NightPlan, simulate_night
from photonpipe.platform.db import Database


@pytest.fixture(scope="session")
def raw_night(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """lsc, small, seed 5: 5 biases, 3 darks, 6 flats, 4 arcs, 2 science frames (20 files)."""
    root = tmp_path_factory.mktemp("ops-raw")
    # two science frames, as the operations tests count them (the default night has four)
    simulate_night(root, site="lsc", night=NIGHT, small=True, seed=5, plan=NightPlan(science=2))
    return root


@pytest.fixture(scope="session")
def calibrated_night(raw_night: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The raw night after ``run_nightly`` stack and traces (masters, trace, TRIPLE recorded)."""
    root = tmp_path_factory.mktemp("ops-calibrated") / "root"
    shutil.copytree(raw_night, root)
    database = Database(f"sqlite:///{root / 'photonpipe.db'}")
    database.upgrade()
    context = OpsContext(str(root), database, Options())
    for task in ("stack", "traces"):
        run_nightly(context, "lsc", task, MORNING)
    database.dispose()
    return root
