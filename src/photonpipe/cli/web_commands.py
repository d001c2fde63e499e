"""``photonpipe serve`` and ``photonpipe lightcurve site``: the browser views.

Thin: parse → :mod:`photonpipe.web` → print. The web stack is imported only when a command
runs, so ``--help`` stays fast.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import click

from photonpipe.cli.common import CliContext, pass_cli
from photonpipe.errors import ConfigError

DEFAULT_PORT = 8000
#: Where ``photonpipe demo`` writes its archive, and the default archive root.
DEMO_ARCHIVE = "photonpipe-demo"
DEFAULT_ARCHIVE = "photonpipe-archive"


def _database_url(settings: Any) -> str | None:
    """Return the configured database URL, or None when it is the default SQLite file and absent."""
    if settings["database.url"]:
        return str(settings["database.url"])
    from photonpipe.platform.archive import Archive

    sqlite_file = Archive.from_settings(settings).root / "photonpipe.db"
    return settings.database_url if sqlite_file.is_file() else None


def _demo_archive_settings(settings: Any) -> Any:
    """Return the settings with the demo's archive when no archive is set and one is here.

    ``photonpipe demo`` writes its archive (and its SQLite database) to ``./photonpipe-demo``;
    a plain ``photonpipe serve`` in the same directory, with no archive root set anywhere and
    no ``./photonpipe-archive``, serves that.
    """
    from photonpipe.demo import DEMO_MARKER

    if settings.source("archive.root") != "default" or settings["database.url"]:
        return settings
    if Path(settings["archive.root"]).exists():
        return settings
    demo = Path.cwd() / DEMO_ARCHIVE
    if not (demo / DEMO_MARKER).is_file():
        return settings
    return settings.replace({"archive.root": str(demo)}, "photonpipe demo's archive")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.command("serve")
@click.option(
    "--host", default="127.0.0.1", show_default=True,
    help="Address to listen on; anything but a loopback address exposes the archive.",
)  # fmt: skip
@click.option("--port", type=click.IntRange(0, 65535), default=DEFAULT_PORT, show_default=True)
@click.option("--read-only", is_flag=True, help="Refuse every change: no edits, saves or uploads.")
@click.option(
    "--session", "sessions", multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Session file (.smh) to offer in the workbench; may be repeated. Saved versions go "
    "beside it.",
)  # fmt: skip
@click.option(
    "--max-upload", type=click.IntRange(1, 4096), default=256, show_default=True,
    metavar="MIB", help="Largest session file accepted by upload [MiB].",
)  # fmt: skip
@pass_cli
def serve_command(
    cli_ctx: CliContext,
    host: str,
    port: int,
    read_only: bool,
    sessions: tuple[Path, ...],
    max_upload: int,
) -> None:
    """Serve the light-curve archive pages and the stellar-session workbench.

    Open the printed address in a browser. Only files under the archive root (and the
    sessions given with --session) are served; writes need the page's token; Ctrl-C stops.
    """
    from photonpipe.platform.archive import Archive

    settings = _demo_archive_settings(cli_ctx.settings)
    if settings is not cli_ctx.settings:
        click.echo(
            f"photonpipe serve: no archive.root set and no {DEFAULT_ARCHIVE}/ here: serving "
            f"the demo archive {settings['archive.root']}",
            err=True,
        )
    archive = Archive.from_settings(settings)
    url = _database_url(settings)
    stellar = settings.section("stellar")
    serve(
        archive,
        url,
        host=host,
        port=port,
        read_only=read_only,
        sessions=[p.absolute() for p in sessions],
        max_upload=max_upload << 20,
        physics={
            k: stellar[k] for k in ("atmospheres", "radiative_transfer", "moog", "moog_auto_build")
        },
    )


def serve(
    archive: Any,
    database_url: str | None,
    *,
    host: str,
    port: int,
    read_only: bool = False,
    sessions: list[Path] | None = None,
    max_upload: int = 256 << 20,
    physics: dict[str, Any] | None = None,
) -> None:
    """Run the server until interrupted (see :func:`photonpipe.web.app.create_app`)."""
    import uvicorn

    from photonpipe.stellar.session import Session
    from photonpipe.web.app import LOOPBACK_HOSTS, ServeConfig, create_app

    for path in sessions or []:
        Session.load(path)  # refuse a missing or unreadable session now, not in the browser
    if _is_loopback(host):
        allowed: tuple[str, ...] = LOOPBACK_HOSTS
    else:
        click.echo(
            f"photonpipe serve: warning: listening on {host}: anyone who can reach this "
            "address can read the archive" + ("" if read_only else " and edit sessions"),
            err=True,
        )
        allowed = ("*",) if host in ("0.0.0.0", "::") else (*LOOPBACK_HOSTS, host)
    config = ServeConfig(
        archive=archive,
        database_url=database_url,
        read_only=read_only,
        sessions=sessions or [],
        max_upload=max_upload,
        allowed_hosts=allowed,
        physics=dict(physics or {}),
    )
    shown = f"[{host}]" if ":" in host else host
    click.echo(
        f"photonpipe serve: http://{shown}:{port}/ (archive {archive.root}"
        + (", read-only" if read_only else "")
        + "); Ctrl-C stops"
    )
    uvicorn.run(create_app(config), host=host, port=port, log_level="warning")


@click.command("site")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@pass_cli
def site_command(cli_ctx: CliContext, out: Path) -> None:
    """Write the light-curve archive pages as a static site in OUT (for publishing HLSPs).

    The same pages as `photonpipe serve` shows under /lightcurves/, with the FITS products
    and quicklooks they link copied in, and the scripts they need; no server is needed.
    """
    url = _database_url(cli_ctx.settings)
    if url is None:
        raise ConfigError(
            f"no light-curve archive database in {cli_ctx.settings['archive.root']} "
            "(ingest first, or set database.url)",
            "archive.root",
        )
    from photonpipe.cli.platform_commands import open_database
    from photonpipe.platform.archive import Archive
    from photonpipe.web.site import write_site

    report = write_site(
        out, open_database(cli_ctx.settings), Archive.from_settings(cli_ctx.settings)
    )
    click.echo(
        f"wrote {report.directory}: {report.pages} pages, {report.files} products and quicklooks"
    )
    for path, problem in sorted(report.problems.items()):
        click.echo(f"  no plot for {path}: {problem}", err=True)


def register(cli: click.Group) -> None:
    """Add ``serve``, and ``site`` to the ``lightcurve`` group."""
    cli.add_command(serve_command)
    lightcurve = cli.commands.get("lightcurve")
    if isinstance(lightcurve, click.Group):
        lightcurve.add_command(site_command)
