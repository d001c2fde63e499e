"""Resets of the light-curve archive (hstlc's ``reset_database`` and ``reset_filesystem``).

Both plan first and act second: :func:`plan_database_reset` and :func:`plan_filesystem_reset`
return what would change (the ``--dry-run`` output), :func:`reset_database` and
:func:`reset_filesystem` do it. Nothing outside the archive's ``lightcurves/`` directory is
touched: every path goes through the platform archive's confinement, and symbolic links are
never followed (a link is reported and left alone).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from photonpipe.errors import ConfigError
from photonpipe.lightcurves.ingest import (
    BAD_DATA,
    FILESYSTEM,
    KIND_COMPOSITE,
    KIND_INGEST,
    OUTPUTS,
    ArchiveLayout,
    finish_move,
)
from photonpipe.lightcurves.models import BadData, Composite, Metadata, Output, Stats, TargetAlias
from photonpipe.platform.db import Base, Database
from photonpipe.platform.ledger import WorkUnitRecord

#: Tables ``reset-database --table`` accepts, in deletion order (children first).
TABLES: dict[str, type[Base]] = {
    "outputs": Output,
    "stats": Stats,
    "composite": Composite,
    "metadata": Metadata,
    "bad_data": BadData,
    "target_alias": TargetAlias,
}
#: What ``--all`` empties: everything but the alias table, which is configuration.
ALL_TABLES = ("outputs", "stats", "composite", "metadata", "bad_data")


@dataclass
class DatabaseResetPlan:
    """Rows each table would lose (and the light-curve ledger entries)."""

    rows: dict[str, int] = field(default_factory=dict)
    ledger_rows: int = 0

    def describe(self) -> list[str]:
        """One line per table."""
        lines = [f"delete {n} rows from {table}" for table, n in self.rows.items()]
        lines.append(f"delete {self.ledger_rows} light-curve work units from the ledger")
        return lines


def _tables(tables: list[str] | None, keep_bad_data: bool) -> list[str]:
    chosen = list(ALL_TABLES) if not tables else list(tables)
    unknown = [t for t in chosen if t not in TABLES]
    if unknown:
        raise ConfigError(
            f"unknown light-curve table(s) {', '.join(unknown)}; choose from {', '.join(TABLES)}"
        )
    if "metadata" in chosen and "outputs" not in chosen:
        chosen.append("outputs")  # outputs rows belong to metadata rows
    if keep_bad_data:
        chosen = [t for t in chosen if t != "bad_data"]
    return [t for t in TABLES if t in chosen]


def _ledger_filter() -> sa.ColumnElement[bool]:
    return WorkUnitRecord.kind.in_([KIND_INGEST, KIND_COMPOSITE])


def plan_database_reset(
    database: Database, tables: list[str] | None = None, *, keep_bad_data: bool = False
) -> DatabaseResetPlan:
    """Count what :func:`reset_database` would delete.

    Parameters
    ----------
    tables : list of str, optional
        Tables to empty (default: all but ``target_alias``); emptying ``metadata`` empties
        ``outputs`` too.
    keep_bad_data : bool
        Leave ``bad_data`` alone.
    """
    plan = DatabaseResetPlan()
    with database.session() as session:
        for name in _tables(tables, keep_bad_data):
            count = sa.select(sa.func.count()).select_from(TABLES[name])
            plan.rows[name] = int(session.scalar(count) or 0)
        plan.ledger_rows = int(
            session.scalar(sa.select(sa.func.count()).where(_ledger_filter())) or 0
        )
    return plan


def reset_database(
    database: Database, tables: list[str] | None = None, *, keep_bad_data: bool = False
) -> DatabaseResetPlan:
    """Empty the light-curve tables (and forget the light-curve work units of the ledger).

    The ledger entries go too, so that files put back into the ingest directory are ingested
    again. Returns what was deleted.
    """
    plan = plan_database_reset(database, tables, keep_bad_data=keep_bad_data)
    with database.session() as session:
        for name in plan.rows:
            session.execute(sa.delete(TABLES[name]))
        session.execute(sa.delete(WorkUnitRecord).where(_ledger_filter()))
    return plan


@dataclass
class FilesystemResetPlan:
    """Files to move back to the ingest directory, products to remove, links left alone."""

    restore: list[Path] = field(default_factory=list)
    remove: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    directories: list[Path] = field(default_factory=list)

    def describe(self, layout: ArchiveLayout) -> list[str]:
        """One line per action, paths relative to the archive root."""
        rel = layout.archive.relative
        lines = [f"move {rel(p)} -> {layout.ingest_dir}/{p.name}" for p in self.restore]
        lines += [f"remove {rel(p)}" for p in self.remove]
        lines += [f"leave symbolic link {p} alone" for p in self.skipped]
        lines += [f"remove empty directory {rel(p)}" for p in self.directories]
        return lines


def _walk(directory: Path, plan: FilesystemResetPlan) -> list[Path]:
    """Regular files below ``directory`` without following links (links go to ``skipped``)."""
    files: list[Path] = []
    if directory.is_symlink():
        plan.skipped.append(directory)
        return files
    if not directory.is_dir():
        return files
    for entry in sorted(directory.iterdir()):
        if entry.is_symlink():
            plan.skipped.append(entry)
        elif entry.is_dir():
            files.extend(_walk(entry, plan))
            plan.directories.append(entry)
        elif entry.is_file():
            files.append(entry)
    return files


def plan_filesystem_reset(layout: ArchiveLayout) -> FilesystemResetPlan:
    """List what :func:`reset_filesystem` would move back, remove and leave alone."""
    archive = layout.archive
    plan = FilesystemResetPlan()
    area = layout.area
    for sub in (FILESYSTEM, BAD_DATA):
        plan.restore.extend(_walk(archive.path(area.name, sub), plan))
    plan.remove.extend(_walk(archive.path(area.name, OUTPUTS), plan))
    return plan


def reset_filesystem(
    layout: ArchiveLayout, database: Database | None = None
) -> FilesystemResetPlan:
    """Move archived and rejected files back to the ingest directory and remove the products.

    When a database is given, its light-curve work units are forgotten too (they describe work
    on files that are back in the ingest directory). The database tables are left alone: use
    :func:`reset_database` for them.
    """
    archive = layout.archive
    plan = plan_filesystem_reset(layout)
    archive.makedirs(layout.ingest_dir)
    for path in plan.restore:
        finish_move(archive, archive.confine(path), layout.ingest_dir)
    for path in plan.remove:
        archive.remove(archive.relative(path), missing_ok=True)
    for directory in sorted(plan.directories, key=lambda p: len(p.parts), reverse=True):
        target = archive.confine(directory)
        if target.is_dir() and not target.is_symlink() and not any(target.iterdir()):
            target.rmdir()
    if database is not None:
        with database.session() as session:
            session.execute(sa.delete(WorkUnitRecord).where(_ledger_filter()))
    return plan
