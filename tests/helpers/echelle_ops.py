"""Copies of simulated NRES nights for the operations tests (fixtures in tests/echelle_service)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from photonpipe.echelle.operations import OpsContext
from photonpipe.echelle.settings import Options
from photonpipe.platform.db import Database

NIGHT = "2026-03-01"
#: The morning after the simulated night: its 24-hour window holds every frame.
MORNING = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
RAW = Path("lsc/nres01/20260301/raw")


@dataclass
class Night:
    """A copy of a simulated night: its root, raw frames and database URL."""

    root: Path
    url: str

    @property
    def raw(self) -> list[Path]:
        """Return the raw frames, sorted."""
        return sorted((self.root / RAW).glob("*.fits.fz"))

    @property
    def database(self) -> Database:
        """Return the night's database."""
        return Database(self.url)

    def context(self, **changes: object) -> OpsContext:
        """Return the operations context of this night."""
        values: dict[str, object] = {
            "root": str(self.root),
            "database": self.database,
            "options": Options(),
        }
        values.update(changes)
        return OpsContext(**values)  # type: ignore[arg-type]


def copy_night(source: Path, destination: Path) -> Night:
    """Copy a night (with its SQLite database, if any) to ``destination``."""
    shutil.copytree(source, destination)
    url = f"sqlite:///{destination / 'photonpipe.db'}"
    Database(url).upgrade()
    return Night(destination, url)
