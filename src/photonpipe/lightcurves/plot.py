"""Quicklook PNG of a light curve.

Flux against time with errors (gaps left open, datasets in colours) above the Lomb–Scargle
periodogram and its fitted aperiodic continuum.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from photonpipe.lightcurves.curve import LightCurve
from photonpipe.lightcurves.stats import VariabilityStatistics, variability_statistics
from photonpipe.platform.archive import atomic_output
from photonpipe.platform.plots import QUICKLOOK_DPI, new_figure


def _broken(x: np.ndarray, y: np.ndarray, gap: float) -> tuple[np.ndarray, np.ndarray]:
    """Insert NaN between samples further apart than ``gap`` so lines do not bridge gaps."""
    if len(x) < 2:
        return x, y
    breaks = np.flatnonzero(np.diff(x) > gap) + 1
    return np.insert(x, breaks, np.nan), np.insert(y, breaks, np.nan)


def quicklook(
    curve: LightCurve,
    path: str | os.PathLike[str] | None = None,
    *,
    statistics: VariabilityStatistics | None = None,
) -> Figure:
    """Draw (and optionally save, atomically) the quicklook of a light curve.

    Parameters
    ----------
    curve : LightCurve
        The light curve.
    path : path-like, optional
        PNG to write.
    statistics : VariabilityStatistics, optional
        Precomputed statistics (computed when absent).

    Returns
    -------
    matplotlib.figure.Figure
    """
    statistics = statistics or variability_statistics(curve)
    figure = new_figure(10.0, 7.0)
    top, bottom = figure.subplots(2, 1, height_ratios=[3, 2])
    header = curve.header
    mjd = np.asarray(curve["MJD"], float)
    origin = float(mjd.min())
    hours = (mjd - origin) * 24.0
    if curve.is_calibrated:
        values, errors = np.asarray(curve["FLUX"], float), np.asarray(curve["FLUX_ERROR"], float)
        label = "flux [erg s$^{-1}$ cm$^{-2}$]"
    else:
        values, errors = np.asarray(curve["NET"], float), np.asarray(curve["ERROR"], float)
        label = "net count rate [counts s$^{-1}$] (flux uncalibrated)"
    step_hours = float(header.get("STEP", 1.0) or 1.0) / 3600.0
    datasets = np.asarray(curve["DATASET"])
    colours = [f"C{i % 10}" for i in range(len(np.unique(datasets)))]
    for colour, number in zip(colours, np.unique(datasets), strict=True):
        mine = datasets == number
        x, y = _broken(hours[mine], values[mine], 1.5 * step_hours)
        top.plot(x, y, "-", color=colour, lw=0.6, alpha=0.6)
        top.errorbar(
            hours[mine],
            values[mine],
            yerr=errors[mine],
            fmt="o",
            ms=2.5,
            color=colour,
            elinewidth=0.6,
            label=f"dataset {number}",
        )
    if len(np.unique(datasets)) > 1:
        top.legend(fontsize="small", ncol=4)
    top.set_xlabel(f"time since MJD {origin:.5f} [h]")
    top.set_ylabel(label)
    wave = f"{header.get('WAVEMIN', float('nan')):.1f}–{header.get('WAVEMAX', float('nan')):.1f} Å"
    name = header.get("ROOTNAME") or "composite"
    top.set_title(
        f"{header.get('TARGNAME', '')}  {header.get('INSTRUME', '')}/{header.get('DETECTOR', '')} "
        f"{header.get('OPT_ELEM', '')} {header.get('CENWAVE', '')} {header.get('APERTURE', '')}"
        f"  —  {name}, {header.get('STEP', '')} s bins, {wave}"
    )
    search = statistics.periodogram
    if search is not None and len(search.frequencies):
        band = (search.periods >= search.min_period) & (search.periods <= search.max_period)
        bottom.plot(
            search.periods[band],
            search.powers[band],
            color="C0",
            lw=0.7,
            label="Lomb–Scargle power",
        )
        bottom.plot(search.periods[band], search.continuum_powers[band], color="C1", lw=1.0,
                    label="aperiodic continuum")  # fmt: skip
        if statistics.significant_period and statistics.best_period is not None:
            bottom.axvline(statistics.best_period, color="C3", ls="--", lw=0.8,
                           label=f"period {statistics.best_period:.1f} s")  # fmt: skip
        bottom.set_xscale("log")
        bottom.set_yscale("log")
        bottom.legend(fontsize="small")
    else:
        bottom.text(
            0.5,
            0.5,
            statistics.period_note or "no period search",
            ha="center",
            transform=bottom.transAxes,
        )
    bottom.set_xlabel("period [s]")
    bottom.set_ylabel("Lomb–Scargle power")
    verdict = statistics.period_verdict
    bottom.set_title(
        f"mean {statistics.mean:.3g}, std {statistics.std:.3g}, Poisson factor "
        f"{statistics.poisson_factor:.2f}, Pearson r {statistics.pearson_r:.2f}; {verdict}",
        fontsize="medium",
    )
    if path is not None:
        _save(figure, Path(path))
    return figure


def _save(figure: Figure, path: Path, **kwargs: Any) -> None:
    with atomic_output(path) as temporary:
        figure.savefig(temporary, format="png", dpi=QUICKLOOK_DPI, **kwargs)
