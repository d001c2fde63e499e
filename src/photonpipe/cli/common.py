"""What every command module shares: the context, the global options, shared groups and options.

``photonpipe simulate`` has one sub-command per instrument, each added by the application that
owns the simulator; the group is shown only once at least one simulator is registered.

The global options (``--archive``, ``--database-url``, ``--config``, ``--set``, ``-v``,
``--log-format``, ``--executor``, ``--workers``) are options of ``photonpipe`` itself and are
also accepted after any sub-command (``photonpipe echelle night --archive data ...``); there
they are hidden from the sub-command's ``--help``. A value given later on the command line wins.

This module imports nothing heavy: ``photonpipe --help`` must stay fast, so command modules
import their application inside the command functions.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from photonpipe.errors import ConfigError

if TYPE_CHECKING:
    from photonpipe.platform.config import Settings

F = TypeVar("F", bound=Callable[..., Any])

#: Verbosity of the running command, read by the error handler of ``photonpipe.cli.main``.
STATE = {"verbose": 0}

#: Global option → the setting it sets (``None``: not a setting).
GLOBAL_SETTINGS = {
    "archive": "archive.root",
    "database_url": "database.url",
    "executor": "executor.backend",
    "workers": "executor.workers",
    "log_format": "logging.format",
}


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
            from photonpipe.platform.config import load_settings
            from photonpipe.platform.logs import configure_logging

            self._settings = load_settings(self.config_file, overrides=self.overrides)
            fmt = self.log_format or self._settings["logging.format"]
            level = "DEBUG" if self.verbose > 1 else self._settings["logging.level"]
            configure_logging(fmt, level)
        return self._settings

    def configure_logging(self) -> None:
        """Set up logging from the flags alone (settings are read when a command needs them)."""
        from photonpipe.platform.logs import configure_logging

        configure_logging(self.log_format or "text", "DEBUG" if self.verbose > 1 else "INFO")

    def apply(self, name: str, value: Any) -> None:
        """Apply one global option given after a sub-command (it overrides an earlier one).

        Parameters
        ----------
        name : str
            The option's parameter name (``archive``, ``verbose``, ``assignments``...).
        value
            Its parsed value.
        """
        self._settings = None
        if name == "verbose":
            self.verbose += int(value)
            STATE["verbose"] = self.verbose
        elif name == "config_file":
            self.config_file = value
        elif name == "assignments":
            self.overrides.update(parse_set(value))
        else:
            if name == "log_format":
                self.log_format = value
            setting = GLOBAL_SETTINGS[name]
            self.overrides[setting] = str(value) if isinstance(value, Path) else value
        if name in ("verbose", "log_format"):
            self.configure_logging()


pass_cli = click.make_pass_decorator(CliContext)


def parse_set(values: tuple[str, ...]) -> dict[str, str]:
    """Parse ``--set SECTION.KEY=VALUE`` options into ``{"section.key": "value"}``.

    Raises
    ------
    ConfigError
        An item is not ``SECTION.KEY=VALUE``.
    """
    out = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or "." not in name:
            raise ConfigError(f"--set expects SECTION.KEY=VALUE, got {item!r}", "command line")
        out[name.strip()] = value
    return out


def global_options(*, hidden: bool = False) -> list[click.Option]:
    """Make the global options, for ``photonpipe`` (shown) or for a sub-command (hidden).

    Parameters
    ----------
    hidden : bool
        Make the copies a sub-command accepts: hidden from its ``--help``, not passed to its
        function, applied to the :class:`CliContext` as they are parsed.

    Returns
    -------
    list of click.Option
        In ``--help`` order.
    """

    def option(*decls: str, **attrs: Any) -> click.Option:
        if hidden:
            attrs.update(hidden=True, expose_value=False, callback=_apply_global)
        return click.Option(list(decls), **attrs)

    return [
        option("-v", "--verbose", count=True, help="More detail; -v also shows tracebacks."),
        option(
            "--log-format",
            type=click.Choice(["text", "json"]),
            default=None,
            help="Log lines as text (default) or JSON lines.",
        ),
        option(
            "--config",
            "config_file",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            help="Settings file (default: $PHOTONPIPE_CONFIG or ./photonpipe.toml).",
        ),
        option(
            "--archive",
            type=click.Path(file_okay=False, path_type=Path),
            default=None,
            help="Archive root (setting archive.root).",
        ),
        option("--database-url", default=None, help="Database URL (setting database.url)."),
        option(
            "--executor",
            type=click.Choice(["local", "dask"]),
            default=None,
            help="Where work units run (setting executor.backend).",
        ),
        option(
            "--workers",
            type=click.IntRange(min=0),
            default=None,
            help="Worker processes (setting executor.workers).",
        ),
        option(
            "--set",
            "assignments",
            multiple=True,
            metavar="SECTION.KEY=VALUE",
            help="Any other setting; may be repeated.",
        ),
    ]


def _apply_global(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    if value is None or value == () or (param.name == "verbose" and not value):
        return
    cli_ctx = ctx.find_object(CliContext)
    if cli_ctx is not None and param.name is not None:
        cli_ctx.apply(param.name, value)


def accept_global_options(command: click.Command) -> None:
    """Let ``command`` accept the global options (hidden), and the sub-commands it resolves.

    The options are added when a command is about to parse its arguments (a group adds them
    to the sub-command it resolves), not to every command at start-up: building them for each
    of the ~70 commands would cost ``--help`` tens of milliseconds. An option a command
    already has under the same flag (``demo --archive``) is left as it is.
    """
    if command.__dict__.get("_photonpipe_global_options"):
        return
    taken = {flag for param in command.params for flag in param.opts + param.secondary_opts}
    for option in global_options(hidden=True):
        if not taken.intersection(option.opts):
            command.params.append(option)
    command.__dict__["_photonpipe_global_options"] = True
    if isinstance(command, click.Group) and not isinstance(command, _ResolvesWithGlobalOptions):
        command.__class__ = _with_global_options(type(command))


class _ResolvesWithGlobalOptions(click.Group):
    """Mixed into a group's class: the sub-command it resolves accepts the global options."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        if command is not None:
            accept_global_options(command)
        return name, command, rest


def _with_global_options(cls: type[click.Group]) -> type[click.Group]:
    if issubclass(cls, _ResolvesWithGlobalOptions):
        return cls
    return type(cls.__name__, (_ResolvesWithGlobalOptions, cls), {})


class PhotonpipeGroup(_ResolvesWithGlobalOptions):
    """The class of the ``photonpipe`` group: its sub-commands accept the global options."""


@click.group("simulate")
def simulate_group() -> None:
    """Write simulated instrument data in the real file formats, with a truth file."""


def option_group(*options: Callable[[Any], Any]) -> Callable[[F], F]:
    """Combine click option decorators into one, shown in ``--help`` in the order given.

    Parameters
    ----------
    *options
        ``click.option(...)`` (or other parameter) decorators, first shown first.

    Returns
    -------
    callable
        A decorator that applies every option to a command function.
    """

    def decorate(function: F) -> F:
        for option in reversed(options):
            function = option(function)
        return function

    return decorate


def output_directory_option(
    help: str, *, flag: str = "--out", name: str = "out_dir"
) -> Callable[[F], F]:
    """Make a required option naming a directory to write into (it need not exist yet).

    Parameters
    ----------
    help
        Help text of the option.
    flag
        The option's flag on the command line.
    name
        The name of the command function's parameter that receives the `~pathlib.Path`.

    Returns
    -------
    callable
        The ``click.option`` decorator.
    """
    return click.option(
        flag,
        name,
        required=True,
        type=click.Path(file_okay=False, path_type=Path),
        help=help,
    )


def seed_option(help: str | None = "Random seed.") -> Callable[[F], F]:
    """Make the ``--seed`` option of the simulators: an integer, 1 by default.

    Parameters
    ----------
    help
        Help text of the option (None: no help text).

    Returns
    -------
    callable
        The ``click.option`` decorator.
    """
    return click.option("--seed", type=int, default=1, show_default=True, help=help)


class DayObs(click.ParamType):
    """An observing night (DAY-OBS) as ``YYYY-MM-DD`` or ``YYYYMMDD``, given as ``YYYY-MM-DD``.

    Anything else (``03/01/2026``, ``2026-02-30``) is a usage error naming the formats.
    """

    name = "YYYY-MM-DD"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        """Check ``value`` is a real date in one of the two formats; return it as YYYY-MM-DD."""
        import datetime as dt
        import re

        text = str(value).strip()
        match = re.fullmatch(r"(\d{4})-?(\d{2})-?(\d{2})", text)
        day = None
        if match and text.count("-") in (0, 2):
            with contextlib.suppress(ValueError):
                day = dt.date(int(match[1]), int(match[2]), int(match[3]))
        if day is None:
            self.fail(f"{text!r} is not a date as YYYY-MM-DD or YYYYMMDD", param, ctx)
        return day.isoformat()


DAY_OBS = DayObs()
