"""The stellar demo step runs, writes its products and recovers its simulated RV."""

from __future__ import annotations

from pathlib import Path

import pytest

from photonpipe.platform.archive import Archive
from photonpipe.platform.config import load_settings
from photonpipe.platform.db import Database
from photonpipe.stellar.demo import step
from photonpipe.stellar.session import Session


def test_demo_step(tmp_path: Path) -> None:
    archive = Archive(tmp_path / "archive")
    archive.create()
    settings = load_settings(None, env={})
    database = Database(f"sqlite:///{tmp_path / 'demo.db'}")
    section = step(archive, database, settings, seed=3)
    assert section.ok
    for _, relative in section.links:
        assert (archive.root / relative).is_file()
    rows = dict(section.table)
    true_rv = float(rows["true RV [km/s]"])
    measured = float(rows["measured RV [km/s]"].split()[0])
    assert measured == pytest.approx(true_rv, abs=0.2)
    session = Session.load(archive.root / "stellar" / "hd122563_sim.smh")
    assert session.summary()["ew_measurements"] == int(rows["lines measured"])
