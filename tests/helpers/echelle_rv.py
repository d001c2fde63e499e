"""Simulated NRES nights for radial-velocity tests: simulate, load the targets, reduce."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from astropy.io import fits

from photonpipe.echelle import templates as etemplates
from photonpipe.echelle.pipeline import reduce_night
from photonpipe.echelle.simulate import NightPlan, SimulatedNight, simulate_night
from photonpipe.platform.archive import Archive
from photonpipe.platform.db import Database

TARGETS_CSV = Path(__file__).parents[2] / "src/photonpipe/echelle/data/targets.csv"
NIGHT = "2026-03-01"


@dataclass
class ReducedRVNight:
    """A reduced simulated night with the targets registry loaded."""

    root: Path
    archive: Archive
    database: Database
    simulated: SimulatedNight
    spectra: list[Path]  # reduced 1-D science spectra, in time order


def cli(root: Path, *args: str) -> tuple[int, str]:
    """Run ``photonpipe`` on the archive at ``root`` with its SQLite database: (code, output)."""
    from click.testing import CliRunner

    from photonpipe.cli.main import cli as photonpipe

    database = f"sqlite:///{root / 'photonpipe.db'}"
    result = CliRunner().invoke(
        photonpipe,
        ["--archive", str(root), "--database-url", database, *args],
        catch_exceptions=False,
    )
    return result.exit_code, result.output


def reduced_rv_night(
    root: Path, plan: NightPlan, *, seed: int, small: bool = True, workers: int = 1
) -> ReducedRVNight:
    """Simulate an lsc night, import the targets with the CLI, reduce it; every frame must pass."""
    simulated = simulate_night(root, site="lsc", night=NIGHT, small=small, seed=seed, plan=plan)
    archive = Archive(root)
    database = Database(f"sqlite:///{root / 'photonpipe.db'}")
    database.upgrade()
    code, out = cli(root, "echelle", "targets", "import", str(TARGETS_CSV))
    assert code == 0, out
    report = reduce_night(
        archive, database, "lsc", "nres01", NIGHT, workers=workers, progress=False
    )
    assert report.ok, report.failed
    spectra = etemplates.spectrum_files(archive, "lsc", "nres01")
    return ReducedRVNight(root, archive, database, simulated, spectra)


def stack_zero(root: Path, first: Path, last: Path) -> str:
    """Stack a ZERO of HD 1461 from the spectra observed from ``first`` to ``last`` (CLI output)."""
    start = fits.getheader(first)["DATE-OBS"][:19]
    end = fits.getheader(last)["DATE-OBS"][:19]
    code, out = cli(
        root,
        *("echelle", "stack", "--site", "lsc", "--camera", "fl09", "--instrument", "nres01"),
        *("--calibration-type", "TEMPLATE", "--target", "HD 1461", "--start", start, "--end", end),
    )
    assert code == 0, out
    return out
