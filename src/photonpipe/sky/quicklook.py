"""Quicklooks of the sky analysis.

A mean spectrum with its fitted lines and continuum, and a page of the metadata distributions
(what SkyModelling's MetaDataEval notebook showed).
"""

from __future__ import annotations

import html
import os
from pathlib import Path

import numpy as np

from photonpipe.platform.archive import Archive
from photonpipe.platform.plots import new_figure, save_figure
from photonpipe.sky.analysis import MEAN_DIR, read_mean
from photonpipe.sky.storage import read_metadata

#: Metadata columns shown on the distributions page (those present are plotted).
DISTRIBUTION_COLUMNS = (
    "AIRMASS",
    "EXPTIME",
    "SEEING50",
    "MOON_ILLUMINATION",
    "MOON_ALT",
    "MOON_SEP",
    "SUN_ALT",
    "SUN_MOON_SEP",
    "ECL_LAT",
    "GAL_B",
    "ZODI",
    "ISL",
    "SOLAR_FLUX_OBS",
    "HOURS_SINCE_SUNSET",
    "MONTH",
    "OI_FLUX",
    "OIr1_FLUX",
    "NaD_FLUX",
    "HgIc_FLUX",
    "O2b_FLUX",
    "cont_b_460",
    "cont_r_710",
    "SKY_g",
    "SKY_V_VEGA",
)


def plot_mean_separation(
    archive: Archive,
    dataset: str | os.PathLike[str],
    plate: int,
    exposure: int,
    camera: str,
    *parts: str,
) -> os.PathLike[str]:
    """Plot one mean spectrum with its fitted lines and the separated continuum.

    Parameters
    ----------
    archive : Archive
        Where the PNG goes (``parts`` inside it).
    dataset : path
        Dataset root (``mean/{plate}.h5``).
    plate, exposure : int
        Plate and exposure.
    camera : str
        Camera.
    *parts : str
        Destination inside ``archive``.

    Returns
    -------
    os.PathLike
        The PNG written.
    """
    mean = read_mean(str(Path(dataset) / MEAN_DIR / f"{plate:04d}.h5"), exposure, camera)
    wave = mean["wavelength"]
    figure = new_figure(12.0, 6.0)
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=[2, 1])
    top.plot(wave, mean["flux"], lw=0.5, color="k", label="mean of sky fibres")
    if "lines" in mean:
        top.plot(
            wave,
            mean["lines"] + mean["smooth_continuum"],
            lw=0.5,
            color="tab:red",
            label="fitted lines + continuum",
        )
        top.plot(
            wave, mean["continuum"], lw=0.6, color="tab:blue", label="continuum (data − lines)"
        )
        top.plot(
            wave,
            mean["smooth_continuum"],
            lw=1.0,
            color="tab:orange",
            label="smooth continuum (spline)",
        )
        residual = (mean["flux"] - mean["lines"] - mean["smooth_continuum"]) / np.sqrt(
            mean["variance"]
        )
        bottom.plot(wave, residual, lw=0.4, color="k")
    continuum = mean.get("continuum", mean["flux"])
    top.set_ylim(0, 4.0 * float(np.nanpercentile(continuum, 90)) + 0.5)
    top.set_ylabel("flux per fibre [1e-17 erg/s/cm²/Å]")
    top.legend(loc="upper right", fontsize=8)
    top.set_title(
        f"plate {plate} exposure {exposure} camera {camera}: "
        f"{int(np.sum(mean['accepted']))} of {mean['accepted'].size} fibres"
    )
    bottom.set_ylabel("(data − model)/σ")
    bottom.set_ylim(-8, 8)
    bottom.set_xlabel("vacuum wavelength [nm]")
    return save_figure(figure, archive, *parts)


def metadata_distributions(
    archive: Archive, dataset: str | os.PathLike[str], *parts: str
) -> tuple[Path, os.PathLike[str]]:
    """Write a page of histograms of the metadata (conditions, line strengths, brightness).

    Parameters
    ----------
    archive : Archive
        Destination archive.
    dataset : path
        Dataset root.
    *parts : str
        Destination of the HTML page inside ``archive`` (the PNG goes beside it).

    Returns
    -------
    (pathlib.Path, os.PathLike)
        The HTML page and the PNG.
    """
    meta = read_metadata(dataset).to_pandas()
    columns = [c for c in DISTRIBUTION_COLUMNS if c in meta.columns]
    ncol = 4
    nrow = max(1, int(np.ceil(len(columns) / ncol)))
    figure = new_figure(14.0, 2.4 * nrow)
    axes = np.atleast_1d(figure.subplots(nrow, ncol)).ravel()
    rows = []
    for ax, name in zip(axes, columns, strict=False):
        values = meta[name].to_numpy(dtype=np.float64)
        finite = values[np.isfinite(values)]
        if finite.size:
            ax.hist(finite, bins=30, color="tab:blue")
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
        rows.append(
            (
                name,
                finite.size,
                values.size - finite.size,
                *(np.percentile(finite, [5, 50, 95]) if finite.size else (np.nan,) * 3),
            )
        )
    for ax in axes[len(columns) :]:
        ax.set_visible(False)
    page = Path(*parts)
    png = save_figure(figure, archive, *page.parent.parts, page.stem + ".png")
    table = "\n".join(
        f"<tr><td>{html.escape(n)}</td><td>{k}</td><td>{m}</td>"
        f"<td>{a:.4g}</td><td>{b:.4g}</td><td>{c:.4g}</td></tr>"
        for n, k, m, a, b, c in rows
    )
    body = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Sky metadata distributions</title></head>
<body><h1>Sky metadata distributions</h1>
<p>{len(meta)} sky spectra from {meta["PLATE"].nunique()} plate(s), {meta["IMG"].nunique()}
exposure(s). Line fluxes in 1e-17 erg/s/cm² per fibre, continuum levels in 1e-17 erg/s/cm²/Å
per fibre, magnitudes per arcsec².</p>
<img src="{html.escape(page.stem)}.png" alt="histograms" style="max-width:100%">
<table border="1" cellpadding="3"><tr><th>column</th><th>values</th><th>null/NaN</th>
<th>5%</th><th>median</th><th>95%</th></tr>
{table}
</table></body></html>
"""
    with archive.open_atomic(*parts, mode="w") as handle:
        handle.write(body)
    return archive.path(*parts), png
