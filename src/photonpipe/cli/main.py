"""Entry point of the ``photonpipe`` command and its error handling.

Exit codes: 0 everything succeeded, 1 some work failed, 2 usage, configuration or input
error, 130 interrupted. Every error is one line on stderr, ``photonpipe: error: ...``, naming
the file, key or URL at fault, whether click found it (an unknown option, a missing file) or
photonpipe did; ``-v`` adds the traceback.
"""

from __future__ import annotations

import importlib
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

import click

from photonpipe.cli.common import (
    GLOBAL_SETTINGS,
    STATE,
    CliContext,
    PhotonpipeGroup,
    global_options,
    parse_set,
    pass_cli,
    simulate_group,
)
from photonpipe.errors import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    PhotonpipeError,
)

__all__ = ["EXIT_INTERRUPTED", "CliContext", "cli", "entry_point", "main", "pass_cli"]


def _show_version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        import photonpipe

        click.echo(f"photonpipe, version {photonpipe.__version__}")
        ctx.exit()


@click.group(
    cls=PhotonpipeGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--version",
    is_flag=True,
    is_eager=True,
    expose_value=False,
    callback=_show_version,
    help="Show the version and exit.",
)
@click.pass_context
def cli(ctx: click.Context, **options: Any) -> None:
    """photonpipe: photons to science products for spectroscopic data.

    Settings come from defaults < photonpipe.toml < PHOTONPIPE_* environment < these flags;
    `photonpipe config show` prints each effective setting and its source. These options are
    also accepted after a sub-command (`photonpipe echelle night --archive data ...`).
    """
    verbose = int(options["verbose"])
    STATE["verbose"] = verbose
    overrides: dict[str, Any] = parse_set(options["assignments"])
    for name, setting in GLOBAL_SETTINGS.items():
        value = options[name]
        if value is not None:
            overrides[setting] = str(value) if isinstance(value, Path) else value
    ctx.obj = CliContext(options["config_file"], overrides, verbose, options["log_format"])
    ctx.obj.configure_logging()


cli.params[:0] = global_options()

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

#: Modules that register the applications' settings sections. Imported before any command
#: runs, so that ``--set lightcurve.step=3 config show`` and ``config template`` know every
#: setting whichever command is run (they import nothing but the settings machinery).
SETTINGS_MODULES: tuple[str, ...] = (
    "photonpipe.lightcurves.settings",
    "photonpipe.sky.settings",
    "photonpipe.echelle.settings",
    "photonpipe.stellar.settings",
)


def _register_commands() -> None:
    for module_name in SETTINGS_MODULES:
        importlib.import_module(module_name)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(cli)
    if simulate_group.commands:
        cli.add_command(simulate_group)


_register_commands()


#: click >= 8.2 raises this for a group called without its sub-command (8.1 exits with help).
_NO_ARGS_IS_HELP: Any = getattr(click.exceptions, "NoArgsIsHelpError", ())


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def error_line(message: str) -> str:
    """Return the one line an error is reported as: ``photonpipe: error: <message>``."""
    return "photonpipe: error: " + " ".join(str(message).split())


def _usage_message(exc: click.UsageError) -> str:
    text = exc.format_message().strip().rstrip(".")
    ctx = exc.ctx
    if ctx is None:
        return text
    path = ctx.command_path
    sub = path.split(" ", 1)[1] + ": " if " " in path else ""
    return f"{sub}{text} (see '{path} --help')"


def _os_error_message(exc: OSError) -> str | None:
    """``path: OS reason`` for an error about a file or directory; None for other OS errors."""
    if exc.filename is None:
        return None
    reason = exc.strerror or type(exc).__name__
    if exc.filename2 is not None:
        return f"{exc.filename} -> {exc.filename2}: {reason}"
    return f"{exc.filename}: {reason}"


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
    STATE["verbose"] = 0
    try:
        result = cli.main(args=argv, prog_name="photonpipe", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except _NO_ARGS_IS_HELP as exc:
        exc.show()  # a group without its sub-command: its help, as git does
        return EXIT_USAGE
    except click.UsageError as exc:
        click.echo(error_line(_usage_message(exc)), err=True)
        return EXIT_USAGE
    except click.ClickException as exc:
        click.echo(error_line(exc.format_message()), err=True)
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("photonpipe: aborted", err=True)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        click.echo("photonpipe: interrupted; re-run the same command to resume", err=True)
        return EXIT_INTERRUPTED
    except PhotonpipeError as exc:
        if STATE["verbose"]:
            traceback.print_exc()
        click.echo(error_line(str(exc)), err=True)
        return exc.exit_code
    except OSError as exc:
        # A file or directory the command was given or told to write: missing, a directory,
        # not writable, on a full disk... The user's to fix (exit 2), not a bug.
        message = _os_error_message(exc)
        if STATE["verbose"]:
            traceback.print_exc()
        if message is not None:
            click.echo(error_line(message), err=True)
            return EXIT_USAGE
        click.echo(
            error_line(
                f"internal error: {type(exc).__name__}: {exc} (run with -v for the traceback)"
            ),
            err=True,
        )
        return EXIT_FAILED
    except Exception as exc:
        if STATE["verbose"]:
            traceback.print_exc()
        click.echo(
            error_line(
                f"internal error: {type(exc).__name__}: {exc} (run with -v for the traceback)"
            ),
            err=True,
        )
        return EXIT_FAILED
    finally:
        signal.signal(signal.SIGTERM, previous)


def entry_point() -> None:
    """Console-script entry point."""
    sys.exit(main())
