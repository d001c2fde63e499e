"""Helpers of the web tests: a small ingested light-curve archive and a measured session."""

from __future__ import annotations

from pathlib import Path

from helpers.lightcurve_archive import SMALL_PLAN, fast_settings
from photonpipe.lightcurves.extract import ExtractionParameters
from photonpipe.lightcurves.ingest import ArchiveLayout, ingest
from photonpipe.lightcurves.simulate import Variability
from photonpipe.lightcurves.simulate_archive import deliver
from photonpipe.platform.archive import Archive
from photonpipe.platform.db import Database
from photonpipe.stellar.linelist import read_linelist
from photonpipe.stellar.session import Session
from photonpipe.stellar.simulate import write_simulated_star

#: The simulated star of the session fixture: radial velocity [km/s].
SESSION_RV = 25.0


def build_archive(root: Path) -> tuple[Archive, Database]:
    """Ingest :data:`SMALL_PLAN` (two targets, one bad dataset) into a fresh archive."""
    archive = Archive(root)
    archive.create()
    database = Database(f"sqlite:///{root / 'photonpipe.db'}")
    database.upgrade()
    layout = ArchiveLayout(archive)
    deliver(
        layout.inbox, root.parent / f"{root.name}-truth", SMALL_PLAN, seed=5, exptime=300.0,
        events=1500, variability=Variability("sinusoid", 0.3, 60.0),
    )  # fmt: skip
    report = ingest(
        layout, database, ExtractionParameters(step=10.0), settings=fast_settings(), progress=False
    )
    assert report.ok, report.summary()
    return archive, database


def build_session(directory: Path) -> Path:
    """Write a two-order simulated star, normalised, with its true lines measured, saved as .smh."""
    spectrum, truth = write_simulated_star(directory, n_orders=2, rv_kms=SESSION_RV, seed=3)
    session = Session.new([spectrum])
    session.apply_rv(SESSION_RV)
    session.normalize_all(function="spline", knot_spacing=8.0, use_default_masks=False)
    session.measure(read_linelist(truth))
    return session.save(directory / "star.smh")


def build_demo_session(directory: Path, solved: bool = False) -> Path:
    """The demo's stellar session (two orders from the real MIKE spectrum of HD 122563).

    RV measured, orders normalised, the Frebel et al. (2013) lines in range measured: enough
    Fe I and Fe II lines for the excitation-ionisation solve. ``solved=False`` (the default)
    leaves the solve undone, as the demo does when its code is not MOOG; ``solved=True`` runs
    the demo's solve (needs MOOG). Returns ``directory/stellar/hd122563_sim.smh``.
    """
    from photonpipe.platform.config import load_settings
    from photonpipe.stellar.demo import step

    archive = Archive(directory)
    archive.create()
    env = {} if solved else {"PHOTONPIPE_STELLAR_RADIATIVE_TRANSFER": "sme"}
    database = Database(f"sqlite:///{directory / 'demo.db'}")
    step(archive, database, load_settings(None, env=env), seed=3)
    return directory / "stellar" / "hd122563_sim.smh"
