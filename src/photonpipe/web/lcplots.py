"""Interactive light-curve and periodogram plots (Bokeh) for the archive pages.

Each product becomes one time-zoomable plot whose data can be switched in the browser between
FLUX, NET and BACKGROUND and between bin widths: every variant is computed here with the
light-curve library (:meth:`LightCurve.bin`, :func:`variability_statistics`) and shipped with
the page, so a static copy of the page (``photonpipe lightcurve site``) works without a server.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from bokeh.embed import json_item
from bokeh.layouts import column
from bokeh.models import ColumnDataSource, CustomJS, HoverTool, Range1d
from bokeh.plotting import figure

from photonpipe.errors import PhotonpipeError
from photonpipe.lightcurves.curve import LightCurve
from photonpipe.lightcurves.stats import variability_statistics

#: Bin widths offered, as multiples of the product's own STEP.
BIN_FACTORS = (1, 2, 5, 10, 30)
#: Quantities offered: column, its error column (None: no error), label, unit.
QUANTITIES = (
    ("FLUX", "FLUX_ERROR", "flux", "erg s⁻¹ cm⁻²"),
    ("NET", "ERROR", "net count rate", "count s⁻¹"),
    ("BACKGROUND", None, "background count rate", "count s⁻¹"),
)
_MJD_UNIX_EPOCH = 40587.0
_MS_PER_DAY = 86_400_000.0


@dataclass
class CurvePlot:
    """A product's plot for a page.

    Attributes
    ----------
    name : str
        Name of the plot on the page (element ids and Bokeh model names derive from it).
    item : dict
        Bokeh ``json_item`` of the light curve and its periodogram.
    variants : dict
        ``{quantity: {bin width [s] as text: {"x", "y", "lo", "hi"}}}`` for the controls.
    quantities : list of (str, str)
        Quantities available (column, label with unit); FLUX only when the product is
        calibrated.
    bins : list of float
        Bin widths available [s].
    periodograms : list of dict
        Per period range: name, range [s], best period [s], false-alarm probability and
        whether it is significant.
    significant_period : float or None
        The most significant period [s], None when no period is significant.
    """

    name: str
    item: dict[str, Any]
    variants: dict[str, dict[str, dict[str, list[float]]]]
    quantities: list[tuple[str, str]]
    bins: list[float]
    periodograms: list[dict[str, Any]]
    significant_period: float | None


def _finite_list(values: np.ndarray) -> list[float]:
    return [float(v) if math.isfinite(v) else float("nan") for v in values]


def _variant(curve: LightCurve, column_name: str, error_name: str | None) -> dict[str, list]:
    mjd = np.asarray(curve["MJD"], dtype=np.float64)
    x = (mjd - _MJD_UNIX_EPOCH) * _MS_PER_DAY
    y = np.asarray(curve[column_name], dtype=np.float64)
    err = np.asarray(curve[error_name], dtype=np.float64) if error_name else np.zeros_like(y)
    return {
        "x": _finite_list(x),
        "y": _finite_list(y),
        "lo": _finite_list(y - err),
        "hi": _finite_list(y + err),
    }


def _peaks(periods: np.ndarray, powers: np.ndarray, points: int = 1500) -> tuple[list, list]:
    """Thin a periodogram for display, keeping the highest power of each of ``points`` runs."""
    order = np.argsort(periods)
    periods, powers = np.asarray(periods)[order], np.asarray(powers)[order]
    if len(periods) <= points:
        return periods.tolist(), powers.tolist()
    edges = np.linspace(0, len(periods), points + 1).astype(int)
    keep = [a + int(np.argmax(powers[a:b])) for a, b in itertools.pairwise(edges)]
    return periods[keep].tolist(), powers[keep].tolist()


def _json_safe(values: list[float]) -> list[float | None]:
    return [v if math.isfinite(v) else None for v in values]


def curve_plot(path: Path, name: str, title: str) -> CurvePlot:
    """Build the plot of one light-curve product.

    Parameters
    ----------
    path : Path
        The product FITS file.
    name : str
        Page-unique name (letters, digits, ``-``).
    title : str
        Plot title.

    Returns
    -------
    CurvePlot

    Raises
    ------
    PhotonpipeError
        The product cannot be read (the reader's error).
    """
    curve = LightCurve.read(path)
    if len(curve) == 0:
        raise PhotonpipeError(f"{path}: the light curve has no bins")
    step = float(curve.header.get("STEP", 0) or 0) or float(
        np.median(np.asarray(curve["BIN_EXPTIME"]))
    )
    quantities = [
        (c, f"{label} [{unit}]")
        for c, _, label, unit in QUANTITIES
        if c != "FLUX" or curve.is_calibrated
    ]
    variants: dict[str, dict[str, dict[str, list]]] = {c: {} for c, _ in quantities}
    bins: list[float] = []
    for factor in BIN_FACTORS:
        binned = curve if factor == 1 else curve.bin(step * factor)
        if factor > 1 and len(binned) < 3:
            break
        width = step * factor
        bins.append(width)
        for column_name, error_name, _, _ in QUANTITIES:
            if column_name in variants:
                variants[column_name][f"{width:g}"] = _variant(binned, column_name, error_name)
    first = quantities[0][0]
    initial = variants[first][f"{bins[0]:g}"]
    source = ColumnDataSource(
        {k: np.asarray(v, dtype=np.float64) for k, v in initial.items()}, name=f"{name}-source"
    )
    plot = figure(
        title=title,
        x_axis_type="datetime",
        height=300,
        sizing_mode="stretch_width",
        tools="xpan,xwheel_zoom,box_zoom,reset,save",
        active_drag="xpan",
        active_scroll="xwheel_zoom",
        name=f"{name}-curve",
    )
    plot.x_range = Range1d(
        start=float(np.nanmin(initial["x"])),
        end=float(np.nanmax(initial["x"])),
        name=f"{name}-xrange",
    )
    plot.segment("x", "lo", "x", "hi", source=source, color="#9ab", line_width=1)
    points = plot.scatter("x", "y", source=source, size=4, color="#1f4e79")
    plot.add_tools(
        HoverTool(
            renderers=[points],
            tooltips=[("time", "@x{%F %T}"), ("value", "@y{0.000e}")],
            formatters={"@x": "datetime"},
        )
    )
    plot.xaxis.axis_label = "time (UTC)"
    plot.yaxis.axis_label = dict(quantities)[first]
    plot.yaxis.name = f"{name}-yaxis"
    plot.x_range.js_on_change(
        "end",
        CustomJS(
            args={"r": plot.x_range},
            code=f"if (window.photonpipeZoomed) window.photonpipeZoomed({name!r}, r.start, r.end);",
        ),
    )
    statistics = variability_statistics(curve)
    gram = statistics.periodogram
    period_plot = figure(
        title="Lomb–Scargle periodogram and its aperiodic continuum"
        + ("" if gram is not None else f": {statistics.period_note or 'no period search'}"),
        x_axis_type="log",
        height=220,
        sizing_mode="stretch_width",
        tools="pan,wheel_zoom,box_zoom,reset,save",
        name=f"{name}-periodogram",
    )
    period_plot.xaxis.axis_label = "period [s]"
    period_plot.yaxis.axis_label = "power"
    rows = []
    if gram is not None and gram.frequencies.size:
        periods = 1.0 / gram.frequencies
        shown_periods, shown_powers = _peaks(periods, gram.powers)
        period_plot.line(shown_periods, shown_powers, color="#1f4e79", legend_label="periodogram")
        order = np.argsort(periods)
        period_plot.line(
            periods[order],
            gram.continuum_powers[order],
            color="#b35806",
            line_dash="dashed",
            legend_label="aperiodic continuum",
        )
        if gram.peak_period is not None:
            period_plot.scatter(
                [gram.peak_period / gram.harmonic], [gram.power], color="#1f4e79", size=8,
                marker="x",
            )  # fmt: skip
        period_plot.legend.location = "top_left"
    if gram is not None:
        rows.append(
            {
                "name": "red-noise test",
                "min_period": gram.min_period,
                "max_period": gram.max_period,
                "best_period": gram.peak_period,
                "false_alarm_probability": gram.false_alarm_probability,
                "significant": bool(gram.significant),
            }
        )
    layout = column(plot, period_plot, sizing_mode="stretch_width")
    clean = {
        q: {b: {k: _json_safe(v) for k, v in data.items()} for b, data in per_bin.items()}
        for q, per_bin in variants.items()
    }
    return CurvePlot(
        name=name,
        item=dict(json_item(layout)),
        variants=clean,  # type: ignore[arg-type]
        quantities=quantities,
        bins=bins,
        periodograms=rows,
        significant_period=statistics.best_period if statistics.significant_period else None,
    )
