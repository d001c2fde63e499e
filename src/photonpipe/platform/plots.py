"""Quicklook plots: matplotlib with the Agg backend, saved atomically into the archive.

Figures are created with :func:`new_figure` (never through ``pyplot``'s global state, so that
plotting is safe in worker processes and leaks no figures) and written with
:func:`save_figure`, which goes through :meth:`Archive.atomic_path`.
"""

from __future__ import annotations

import os
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from photonpipe.platform.archive import Archive

QUICKLOOK_DPI = 100


def new_figure(width: float = 10.0, height: float = 5.0, **kwargs: Any) -> Figure:
    """Return a figure bound to an Agg canvas.

    Parameters
    ----------
    width, height : float
        Size [inch].
    **kwargs
        Passed to :class:`matplotlib.figure.Figure` (e.g. ``layout="constrained"``).
    """
    kwargs.setdefault("layout", "constrained")
    figure = Figure(figsize=(width, height), **kwargs)
    FigureCanvasAgg(figure)
    return figure


def save_figure(
    figure: Figure, archive: Archive, *parts: str | os.PathLike[str], dpi: int = QUICKLOOK_DPI
) -> os.PathLike[str]:
    """Write a figure as PNG to a path inside the archive, atomically.

    Parameters
    ----------
    figure : matplotlib.figure.Figure
        The figure.
    archive : Archive
        Archive to write into.
    *parts : str or PathLike
        Destination relative to the archive root (``.png``).
    dpi : int
        Resolution [dots per inch].

    Returns
    -------
    Path
        The PNG written.
    """
    with archive.atomic_path(*parts) as temp:
        figure.savefig(temp, format="png", dpi=dpi)
    return archive.path(*parts)
