"""Command groups and click options shared by several applications' command modules.

``photonpipe simulate`` has one sub-command per instrument, each added by the application that
owns the simulator; the group is shown only once at least one simulator is registered.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


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
