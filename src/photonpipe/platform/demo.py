"""The parts of ``photonpipe demo`` that applications share: a page section and a step registry.

Each application's ``demo`` module defines a *demo step* (simulate its instrument's data into the
archive, run its pipeline, return a :class:`DemoSection`) and registers it here with
:func:`register_demo_step`, the way settings sections are registered with
:func:`photonpipe.platform.config.register_section`. The ``photonpipe demo`` command
(:mod:`photonpipe.demo`) imports the applications' demo modules and runs the registered steps in
page order, so no application imports the command's module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from photonpipe.platform.archive import Archive
from photonpipe.platform.config import Settings
from photonpipe.platform.db import Database


@dataclass
class DemoSection:
    """One application's part of the demo page.

    Attributes
    ----------
    title : str
        Heading.
    summary : str
        One paragraph of plain text: what was simulated, what was run, key numbers.
    links : list of (str, str)
        Label and archive-relative path of each product.
    images : list of str
        Archive-relative paths of quicklook PNGs shown inline.
    table : list of (str, str)
        Name/value rows shown as a table.
    ok : bool
        False when the step failed (``summary`` then says why).
    """

    title: str
    summary: str = ""
    links: list[tuple[str, str]] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    table: list[tuple[str, str]] = field(default_factory=list)
    ok: bool = True


#: A demo step: (archive, database, settings, seed) → the application's section of the page.
DemoStep = Callable[[Archive, Database, Settings, int], DemoSection]

_STEPS: dict[str, tuple[int, DemoStep]] = {}


def _identity(entry: tuple[int, DemoStep]) -> tuple[int, str, str]:
    # A module imported again (importlib.reload) registers a new function object of the same name.
    order, step = entry
    return order, step.__module__, step.__qualname__


def register_demo_step(name: str, step: DemoStep, *, order: int) -> None:
    """Declare an application's demo step (called when its ``demo`` module is imported).

    Parameters
    ----------
    name : str
        The application's name on the page and in the log (e.g. ``"sky"``).
    step : DemoStep
        The function that runs the application's part of the demo.
    order : int
        Position on the page: steps run and are shown in increasing ``order``.

    Raises
    ------
    ValueError
        If another step is already registered under ``name``.
    """
    known = _STEPS.get(name)
    if known is not None and _identity(known) != _identity((order, step)):
        raise ValueError(f"demo step {name!r} is already registered")
    _STEPS[name] = (order, step)


def registered_demo_steps() -> list[tuple[str, DemoStep]]:
    """Return the registered demo steps as (name, step), in page order."""
    ranked = sorted(_STEPS.items(), key=lambda item: item[1][0])
    return [(name, step) for name, (_, step) in ranked]
