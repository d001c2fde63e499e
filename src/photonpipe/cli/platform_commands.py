"""Platform commands: ``config``, ``db``, ``work`` and ``demo``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from photonpipe.cli.common import CliContext, pass_cli, seed_option
from photonpipe.errors import EXIT_FAILED

if TYPE_CHECKING:  # imported where used: `photonpipe --help` must not load SQLAlchemy
    from photonpipe.platform.config import Settings
    from photonpipe.platform.db import Database


def open_database(settings: Settings, *, read_only: bool = False) -> Database:
    """Open the configured database, checked reachable and migrated.

    The archive root is created first when the database is the default SQLite file inside it.

    Parameters
    ----------
    settings : Settings
        Effective settings (``database.url``, ``archive.root``).
    read_only : bool
        For commands that only read: create nothing. A SQLite file that does not exist, or a
        database without photonpipe's tables, is an error (exit 2) naming it, instead of a new
        empty archive and database.

    Raises
    ------
    DatabaseError
        Unreachable, or (``read_only``) missing or empty.
    """
    from photonpipe.errors import DatabaseError
    from photonpipe.platform.archive import Archive
    from photonpipe.platform.db import Database, masked_url

    database = Database.from_settings(settings)
    if read_only:
        require_sqlite_file(database)
        database.check_connection()
        if database.current_revision() is None:
            raise DatabaseError(
                f"{masked_url(database.url)} has no photonpipe tables: nothing has been "
                "recorded there yet (check --archive or --database-url)"
            )
    else:
        if not settings["database.url"]:
            Archive.from_settings(settings).create()
        database.check_connection()
    database.ensure_schema()
    return database


def require_sqlite_file(database: Database) -> None:
    """Refuse to let a read-only command create a SQLite database by connecting to it.

    Raises
    ------
    DatabaseError
        The database is a SQLite file that does not exist.
    """
    from photonpipe.errors import DatabaseError

    path = database.sqlite_path
    if path is not None and not path.is_file():
        raise DatabaseError(
            f"no database at {path}: nothing has been recorded in this archive yet "
            "(check --archive or --database-url)"
        )


def _display(value: Any) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@click.group("config")
def config_group() -> None:
    """Inspect settings."""


@config_group.command("show")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@pass_cli
def config_show(cli_ctx: CliContext, fmt: str) -> None:
    """Print every effective setting, its value and where it came from."""
    from photonpipe.platform.db import masked_url

    settings = cli_ctx.settings
    rows = []
    for setting in settings:
        value = setting.value
        if setting.option.kind == "mode":
            value = oct(value)
        if setting.name == "database.url" and value:
            value = masked_url(value)
        rows.append((setting.name, value, setting.source))
    if fmt == "json":
        click.echo(
            json.dumps(
                [
                    {"name": n, "value": v if not isinstance(v, Path) else str(v), "source": s}
                    for n, v, s in rows
                ],
                indent=2,
            )
        )
        return
    width = max(len(r[0]) for r in rows)
    vwidth = min(max(len(_display(r[1])) for r in rows), 60)
    for name, value, source in rows:
        click.echo(f"{name:<{width}}  {_display(value):<{vwidth}}  [{source}]")
    click.echo(f"{'(database in use)':<{width}}  {masked_url(settings.database_url)}")


@config_group.command("template")
def config_template() -> None:
    """Print a photonpipe.toml with every setting commented out at its default."""
    from photonpipe.platform.config import registered_sections

    for section, options in registered_sections().items():
        click.echo(f"[{section}]")
        for key, option in options.items():
            default = option.default
            if option.kind == "mode":
                text = f"0o{default:o}"
            elif default is None:
                text = '""'
            elif isinstance(default, bool):
                text = "true" if default else "false"
            elif isinstance(default, str):
                text = json.dumps(default)
            else:
                text = repr(default)
            click.echo(f"# {option.help}")
            click.echo(f"# {key} = {text}")
        click.echo()


@click.group("db")
def db_group() -> None:
    """Create, migrate and inspect the database."""


@db_group.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Target revision.")
@pass_cli
def db_upgrade(cli_ctx: CliContext, revision: str) -> None:
    """Apply pending migrations (also done automatically on first use)."""
    from photonpipe.platform.archive import Archive
    from photonpipe.platform.db import Database, masked_url

    settings = cli_ctx.settings
    if not settings["database.url"]:
        Archive.from_settings(settings).create()
    database = Database.from_settings(settings, auto_upgrade=False)
    database.check_connection()
    before = database.current_revision()
    database.upgrade(revision)
    after = database.current_revision()
    if before == after:
        click.echo(f"{masked_url(database.url)}: already at {after}")
    else:
        click.echo(f"{masked_url(database.url)}: upgraded {before or '(empty)'} -> {after}")


@db_group.command("status")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@pass_cli
def db_status(cli_ctx: CliContext, fmt: str) -> None:
    """Show the database, its migration state and the work-unit ledger."""
    from photonpipe.platform.db import Database, masked_url
    from photonpipe.platform.ledger import ledger_counts

    settings = cli_ctx.settings
    database = Database.from_settings(settings, auto_upgrade=False)
    require_sqlite_file(database)
    database.check_connection()
    current, head = database.current_revision(), database.head_revision()
    pending = database.pending_revisions()
    counts = ledger_counts(database) if current is not None else {}
    if fmt == "json":
        click.echo(
            json.dumps(
                {
                    "url": masked_url(database.url),
                    "dialect": database.dialect,
                    "current": current,
                    "head": head,
                    "pending": pending,
                    "work_units": counts,
                },
                indent=2,
            )
        )
        return
    click.echo(f"database  {masked_url(database.url)} ({database.dialect})")
    click.echo(f"revision  {current or '(empty: no tables yet)'}")
    click.echo(f"newest    {head}")
    click.echo("pending   " + (", ".join(pending) if pending else "none: schema up to date"))
    if counts:
        click.echo("work units:")
        for kind, by_status in sorted(counts.items()):
            text = ", ".join(f"{n} {s}" for s, n in sorted(by_status.items()))
            click.echo(f"  {kind}: {text}")


@db_group.command("downgrade")
@click.argument("revision")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_cli
def db_downgrade(cli_ctx: CliContext, revision: str, yes: bool) -> None:
    """Revert migrations down to REVISION ('base' drops every photonpipe table)."""
    from photonpipe.platform.db import Database, masked_url

    database = Database.from_settings(cli_ctx.settings, auto_upgrade=False)
    require_sqlite_file(database)
    database.check_connection()
    if not yes:
        click.confirm(
            f"Revert {masked_url(database.url)} to {revision}? Tables may be dropped", abort=True
        )
    database.downgrade(revision)
    click.echo(f"{masked_url(database.url)}: now at {database.current_revision() or '(empty)'}")


@click.group("work")
def work_group() -> None:
    """Inspect the work-unit ledger of batch runs."""


@work_group.command("failures")
@click.option("--kind", default=None, help="Only this kind of work unit.")
@pass_cli
def work_failures(cli_ctx: CliContext, kind: str | None) -> None:
    """List failed work units with their errors (exit 1 when there are any)."""
    import sqlalchemy as sa

    from photonpipe.platform.ledger import FAILED, WorkUnitRecord

    database = open_database(cli_ctx.settings, read_only=True)
    table = WorkUnitRecord.__table__
    query = sa.select(table.c.kind, table.c.key, table.c.tries, table.c.error).where(
        table.c.status == FAILED
    )
    if kind:
        query = query.where(table.c.kind == kind)
    with database.session() as session:
        rows = list(session.execute(query.order_by(table.c.kind, table.c.key)))
    for row in rows:
        click.echo(f"{row.kind}  {row.key}  (tries {row.tries}): {row.error}")
    if not rows:
        click.echo("no failed work units")
    click.get_current_context().exit(EXIT_FAILED if rows else 0)


@click.command("demo")
@click.option(
    "--archive",
    "archive_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("photonpipe-demo"),
    show_default=True,
    help="Directory for the demo archive (recreated if it holds an earlier demo).",
)
@seed_option("Simulator seed.")
@pass_cli
def demo_command(cli_ctx: CliContext, archive_dir: Path, seed: int) -> None:
    """Simulate data, run every application on it, write index.html in a fresh archive."""
    from photonpipe.demo import run_demo

    # The demo never touches the configured archive or database: it gets its own of each.
    settings = cli_ctx.settings.replace(
        {"archive.root": str(archive_dir), "database.url": ""}, "demo"
    )
    result = run_demo(settings, seed=seed)
    click.echo(f"demo archive: {result.archive.root}")
    click.echo(f"open {result.index}")
    if not result.ok:
        click.get_current_context().exit(EXIT_FAILED)


def register(cli: click.Group) -> None:
    """Add the platform commands to the ``photonpipe`` group."""
    for command in (config_group, db_group, work_group, demo_command):
        cli.add_command(command)
