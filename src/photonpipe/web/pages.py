"""HTML pages of the archive and the workbench, rendered from package templates (Jinja2).

The light-curve pages are rendered once here and used both by the server and by the static
site writer: every link is relative (``files/...``, ``targets/...``, ``static/...``), so the
same page works under ``/lightcurves/`` of ``photonpipe serve`` and as a file of
``photonpipe lightcurve site``.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from typing import Any

import bokeh
import jinja2

from photonpipe import __version__
from photonpipe.lightcurves.catalog import Catalog, DatasetEntry, TargetEntry
from photonpipe.web.lcplots import CurvePlot

#: Bokeh's JavaScript files the pages load, from the installed bokeh package.
BOKEH_SCRIPTS = ("bokeh.min.js",)

_environment = jinja2.Environment(
    loader=jinja2.PackageLoader("photonpipe.web", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def script_json(value: Any) -> str:
    """JSON for a ``<script type="application/json">`` element (cannot close the element).

    NaN and infinities are refused: the browser's JSON parser would not read them.
    """
    text = json.dumps(value, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _number(value: Any, spec: str = ".4g") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return format(value, spec)


_environment.filters["number"] = _number
_environment.filters["script_json"] = script_json


def render(template: str, **context: Any) -> str:
    """Render one of the package templates.

    Parameters
    ----------
    template : str
        Template file name.
    **context
        Template variables.
    """
    context.setdefault("version", __version__)
    context.setdefault("bokeh_version", bokeh.__version__)
    context.setdefault("bokeh_scripts", BOKEH_SCRIPTS)
    return _environment.get_template(template).render(**context)


def _status_by_dataset(catalog: Catalog) -> dict[str, str]:
    status: dict[str, str] = {}
    for unit in catalog.ingest_status:
        if unit["dataset"]:
            status[unit["dataset"]] = unit["status"]
    return status


def archive_index(catalog: Catalog, *, live: bool, root_label: str) -> str:
    """Render the archive's front page: targets, datasets, ingest status, bad data.

    Parameters
    ----------
    catalog : Catalog
        What the archive holds.
    live : bool
        Served by ``photonpipe serve`` (True) or written as a static site.
    root_label : str
        How to name the archive on the page (its root directory).
    """
    counts = Counter(u["status"] for u in catalog.ingest_status if u["kind"].endswith("ingest"))
    reasons = Counter(row["reason"] for row in catalog.bad_data)
    return render(
        "archive_index.html",
        rel="",
        live=live,
        root_label=root_label,
        catalog=catalog,
        status=_status_by_dataset(catalog),
        ingest_counts=sorted(counts.items()),
        failed_units=[u for u in catalog.ingest_status if u["status"] == "failed"],
        bad_reasons=sorted(reasons.items()),
    )


def target_page(
    catalog: Catalog,
    target: TargetEntry,
    plots: dict[str, CurvePlot],
    problems: dict[str, str],
    *,
    live: bool,
) -> str:
    """Render the page of one target: composites, then every dataset's light curve.

    Parameters
    ----------
    catalog : Catalog
        What the archive holds.
    target : TargetEntry
        The target.
    plots : dict of str to CurvePlot
        Product path → its plot.
    problems : dict of str to str
        Product path → why it has no plot.
    live : bool
        Served (True) or static.
    """
    status = _status_by_dataset(catalog)
    datasets: list[DatasetEntry] = target.datasets
    return render(
        "target.html",
        rel="../",
        live=live,
        target=target,
        datasets=datasets,
        plots=plots,
        problems=problems,
        status=status,
    )
