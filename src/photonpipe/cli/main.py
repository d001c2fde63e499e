"""Entry point of the ``photonpipe`` command and its shared options.

Exit codes: 0 everything succeeded, 1 some work failed, 2 usage or configuration error,
130 interrupted. Errors print one line on stderr; ``-v`` adds the traceback.
"""

from __future__ import annotations

import importlib
import signal
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from photonpipe import __version__
from photonpipe.cli.common import simulate_group
from photonpipe.errors import EXIT_FAILED, EXIT_USAGE, ConfigError, PhotonpipeError
from photonpipe.platform.config import Settings, load_settings
from photonpipe.platform.logs import configure_logging

EXIT_INTERRUPTED = 130
_state = {"verbose": 0}


@dataclass
class CliContext:
    """What every sub-command gets: lazily loaded settings and the global flags."""

    config_file: Path | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    verbose: int = 0
    log_format: str | None = None
    _settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        """Effective settings (loaded on first use, so ``--help`` works with a bad config)."""
        if self._settings is None:
            self._settings = load_settings(self.config_file, overrides=self.overrides)
            fmt = self.log_format or self._settings["logging.format"]
            level = "DEBUG" if self.verbose > 1 else self._settings["logging.level"]
            configure_logging(fmt, level)
        return self._settings


pass_cli = click.make_pass_decorator(CliContext)


def _parse_set(values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or "." not in name:
            raise ConfigError(f"--set expects SECTION.KEY=VALUE, got {item!r}", "command line")
        out[name.strip()] = value
    return out


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="photonpipe")
@click.option("-v", "--verbose", count=True, help="More detail; -v also shows tracebacks.")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default=None,
    help="Log lines as text (default) or JSON lines.",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Settings file (default: $PHOTONPIPE_CONFIG or ./photonpipe.toml).",
)
@click.option(
    "--archive",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Archive root (setting archive.root).",
)
@click.option("--database-url", default=None, help="Database URL (setting database.url).")
@click.option(
    "--executor",
    type=click.Choice(["local", "dask"]),
    default=None,
    help="Where work units run (setting executor.backend).",
)
@click.option("--workers", type=int, default=None, help="Worker processes (executor.workers).")
@click.option(
    "--set",
    "assignments",
    multiple=True,
    metavar="SECTION.KEY=VALUE",
    help="Any other setting; may be repeated.",
)
@click.pass_context
def cli(
    ctx: click.Context,
    verbose: int,
    log_format: str | None,
    config_file: Path | None,
    archive: Path | None,
    database_url: str | None,
    executor: str | None,
    workers: int | None,
    assignments: tuple[str, ...],
) -> None:
    """photonpipe: photons to science products for spectroscopic data.

    Settings come from defaults < photonpipe.toml < PHOTONPIPE_* environment < these flags;
    `photonpipe config show` prints each effective setting and its source.
    """
    _state["verbose"] = verbose
    overrides: dict[str, Any] = _parse_set(assignments)
    for name, value in (
        ("archive.root", archive),
        ("database.url", database_url),
        ("executor.backend", executor),
        ("executor.workers", workers),
        ("logging.format", log_format),
    ):
        if value is not None:
            overrides[name] = str(value) if isinstance(value, Path) else value
    configure_logging(log_format or "text", "DEBUG" if verbose > 1 else "INFO")
    ctx.obj = CliContext(config_file, overrides, verbose, log_format)


#: Modules whose ``register(cli)`` adds a command group; each application adds one line.
COMMAND_MODULES: tuple[str, ...] = (
    "photonpipe.cli.platform_commands",
    "photonpipe.cli.lightcurve_commands",
    "photonpipe.cli.sky_commands",
    "photonpipe.cli.session_commands",
    "photonpipe.cli.echelle_commands",
    "photonpipe.cli.echelle_ops_commands",
    "photonpipe.cli.web_commands",
)


def _register_commands() -> None:
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(cli)
    if simulate_group.commands:
        cli.add_command(simulate_group)


_register_commands()


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Run the ``photonpipe`` command and return its exit code.

    Parameters
    ----------
    argv : list of str, optional
        Arguments (default ``sys.argv[1:]``).
    """
    # A service manager stops a batch with SIGTERM: treat it like Ctrl-C so that unfinished
    # work units are handed back to the ledger.
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    _state["verbose"] = 0
    try:
        result = cli.main(args=argv, prog_name="photonpipe", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return EXIT_USAGE if isinstance(exc, click.UsageError) else exc.exit_code
    except click.exceptions.Abort:
        click.echo("photonpipe: aborted", err=True)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        click.echo("photonpipe: interrupted; re-run the same command to resume", err=True)
        return EXIT_INTERRUPTED
    except PhotonpipeError as exc:
        if _state["verbose"]:
            traceback.print_exc()
        click.echo(f"photonpipe: error: {exc}", err=True)
        return exc.exit_code
    except Exception as exc:
        if _state["verbose"]:
            traceback.print_exc()
        click.echo(
            f"photonpipe: internal error: {type(exc).__name__}: {exc} "
            "(run with -v for the traceback)",
            err=True,
        )
        return EXIT_FAILED
    finally:
        signal.signal(signal.SIGTERM, previous)


def entry_point() -> None:
    """Console-script entry point."""
    sys.exit(main())
