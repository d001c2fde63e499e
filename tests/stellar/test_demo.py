"""The stellar demo step runs, writes its products and recovers its simulated RV."""

from __future__ import annotations

import shutil
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


def test_demo_solves_the_star_or_says_how(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from photonpipe.stellar import moog

    archive = Archive(tmp_path / "archive")
    archive.create()
    settings = load_settings(None, env={})
    database = Database(f"sqlite:///{tmp_path / 'demo.db'}")
    if moog.installed_moog() is None and shutil.which("gfortran") is None:
        section = step(archive, database, settings, seed=3)
        assert "run `photonpipe session install-moog`" in section.summary
        return
    section = step(archive, database, settings, seed=3)
    rows = dict(section.table)
    teff = float(rows["Teff [K]"].split()[0])
    # 1-D LTE excitation balance of a metal-poor giant: below the Gaia benchmark (4587 K)
    assert 4200 < teff < 4700
    assert -2.9 < float(rows["[Fe/H]"].split()[0]) < -2.4
    assert (archive.root / "stellar" / "hd122563_sim_abund.tex").is_file()
    session = Session.load(archive.root / "stellar" / "hd122563_sim.smh")
    assert session.state["stellar_parameters"]["adopted"] == "excitation-ionisation"

    # without a code the demo still runs and says how to get one
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "no-cache"))
    monkeypatch.setattr("photonpipe.stellar.sme.sme_available", lambda: False)
    settings = load_settings(None, env={"PHOTONPIPE_STELLAR_MOOG_AUTO_BUILD": "false"})
    other = Archive(tmp_path / "other")
    other.create()
    section = step(other, database, settings, seed=3)
    assert section.ok
    assert "no radiative-transfer code: run `photonpipe session install-moog`" in section.summary
