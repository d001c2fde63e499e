"""Demo step of the sky application: one simulated BOSS plate through ``sky build``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from astropy.io import fits

from photonpipe.platform.archive import Archive
from photonpipe.platform.config import Settings
from photonpipe.platform.db import Database
from photonpipe.platform.demo import DemoSection, register_demo_step
from photonpipe.platform.plots import new_figure, save_figure
from photonpipe.sky.catalog import build_catalog
from photonpipe.sky.pipeline import build_sky_dataset
from photonpipe.sky.quicklook import metadata_distributions, plot_mean_separation
from photonpipe.sky.reference import boss_plates
from photonpipe.sky.simulate import simulate_plate
from photonpipe.sky.storage import export_metadata_fits, read_metadata, read_plate_spectra

DEMO_PLATE = (6627, 56369)


def step(archive: Archive, database: Database, settings: Settings, seed: int) -> DemoSection:
    """Simulate one plate (40 fibres per spectrograph, 1 exposure), build, plot, compare.

    Parameters
    ----------
    archive : Archive
        Demo archive; everything goes under ``sky/``.
    database : Database
        Demo database (ledger).
    settings : Settings
        Demo settings.
    seed : int
        Simulator seed.

    Returns
    -------
    DemoSection
    """
    plate = next(p for p in boss_plates() if (p.plate, p.mjd) == DEMO_PLATE)
    simulated = simulate_plate(
        Archive(archive.path("sky", "input")), plate, seed, fibres_per_spectrograph=40, exposures=1
    )
    dataset = archive.path("sky", "dataset")
    report = build_sky_dataset(
        archive.path("sky", "input"), dataset, database=database, settings=settings, progress=False
    )
    if not report.ok:
        return DemoSection("Sky (BOSS sky fibres)", f"build failed: {report.failed}", ok=False)
    meta = read_metadata(dataset).to_pandas()
    fits_path = export_metadata_fits(dataset, archive.path("sky", "metadata.fits"))

    figure = new_figure(11.0, 4.5)
    axes = figure.add_subplot(1, 1, 1)
    pulls = []
    with fits.open(simulated.truth) as truth:
        components = truth["COMPONENTS"].data
        for arm, colour in (("b", "tab:blue"), ("r", "tab:red")):
            arrays = read_plate_spectra(dataset / "spectra" / f"{plate.plate:04d}.h5", arm)
            rows = meta[meta["ARM"] == arm]
            for _, row in rows.iterrows():
                spectrum = arrays["flux"][row["ROW"]]
                ivar = arrays["ivar"][row["ROW"]]
                selected = (components["CAMERA"] == row["CAMERAS"]) & (
                    components["EXPOSURE"] == row["IMG"]
                )
                index = int(np.flatnonzero(components["FIBERID"][selected] == row["FIB"])[0])
                expected = truth[f"FLUX_{row['CAMERAS']}-{row['IMG']:08d}"].data[index]
                good = np.isfinite(spectrum) & (ivar > 0)
                pulls.append((spectrum[good] - expected[good]) * np.sqrt(ivar[good]))
            finite = np.isfinite(arrays["flux"][rows["ROW"].to_numpy()]).sum(axis=1)
            first = rows.iloc[int(np.argmax(finite))]
            axes.plot(
                arrays["wavelength"][first["ROW"]],
                arrays["flux"][first["ROW"]],
                lw=0.4,
                color=colour,
                label=f"{first['CAMERAS']} fibre {first['FIB']}",
            )
    axes.set_xlabel("vacuum wavelength [nm]")
    axes.set_ylabel("sky flux [1e-17 erg/s/cm²/Å]")
    axes.set_ylim(0, 30)
    axes.legend(loc="upper left")
    axes.set_title(f"BOSS plate {plate.plate} MJD {plate.mjd} (simulated): sky fibres")
    image = save_figure(figure, archive, "sky", "sky_spectra.png")
    mean_pngs = [
        plot_mean_separation(
            archive,
            dataset,
            plate.plate,
            int(meta["IMG"].iloc[0]),
            camera,
            "sky",
            f"mean_{camera}.png",
        )
        for camera in ("b1", "r1")
    ]
    page, _ = metadata_distributions(archive, dataset, "sky", "metadata_distributions.html")
    catalog = build_catalog(dataset, archive.path("sky", "catalog"), "full")
    airglow = pq.read_table(dataset / "airglow" / f"{plate.plate:04d}.parquet").to_pandas()
    oi = meta[meta["ARM"] == "b"]["OI_FLUX"]
    oi_truth = _oi_truth(simulated.truth, meta)
    pull = np.concatenate(pulls)
    moon = meta.iloc[0]
    table = [
        ("plate / MJD", f"{plate.plate} / {plate.mjd}"),
        ("exposures × cameras", f"{meta['IMG'].nunique()} × {meta['CAMERAS'].nunique()}"),
        ("sky spectra", str(len(meta))),
        ("(flux − truth)·√ivar: mean, std", f"{pull.mean():+.3f}, {pull.std():.3f}"),
        (
            "Moon altitude, illuminated fraction",
            f"{moon['MOON_ALT']:.1f}°, {moon['MOON_ILLUMINATION']:.2f}",
        ),
        (
            "hours since sunset / until sunrise",
            f"{moon['HOURS_SINCE_SUNSET']:.2f} / {moon['HOURS_UNTIL_SUNRISE']:.2f}",
        ),
        ("10.7 cm solar flux [sfu]", f"{moon['SOLAR_FLUX_OBS']:.1f}"),
        (
            "O I 557.7 line strength / truth (median over fibres)",
            f"{np.nanmedian(oi.to_numpy() / oi_truth):.4f}",
        ),
        ("airglow lines fitted in the mean spectra", str(len(airglow))),
        ("sky brightness V (Vega) [mag/arcsec²], median", f"{meta['SKY_V_VEGA'].median():.2f}"),
        ("sky brightness r (AB) [mag/arcsec²], median", f"{meta['SKY_r'].median():.2f}"),
    ]
    summary = (
        "One real BOSS plate simulated (spFrame, spCFrame, spFluxcalib; 40 fibres per "
        "spectrograph, 1 exposure), then `sky build`: sky fibres converted to flux, masked "
        "pixels NaN, observing conditions from the Moon/Sun ephemeris, stored as HDF5 + Parquet. "
        "The normalised residuals against the simulator's truth should have mean 0 and std 1. "
        "The analysis measured line strengths and sky brightness per spectrum, combined the "
        "fibres of each camera into a mean spectrum and separated its airglow lines from the "
        "continuum (plots below: fitted lines in red, separated continuum in blue)."
    )
    return DemoSection(
        "Sky (BOSS sky fibres)",
        summary,
        links=[
            ("metadata (FITS)", str(fits_path.relative_to(archive.root))),
            ("metadata distributions", str(page.relative_to(archive.root))),
            (
                "catalogue good_clean (FITS)",
                str(catalog["good_clean"][1].relative_to(archive.root)),
            ),
            ("removed rows (FITS)", str(catalog["removed"][1].relative_to(archive.root))),
            ("truth file", str(simulated.truth.relative_to(archive.root))),
        ],
        images=[str(Path(p).relative_to(archive.root)) for p in (image, *mean_pngs)],
        table=table,
    )


def _oi_truth(truth_path: Path, meta: pd.DataFrame) -> np.ndarray:
    """Return the true O I 557.7 flux at each blue-arm row of ``meta`` [10⁻¹⁷ erg s⁻¹ cm⁻²]."""
    out = []
    with fits.open(truth_path) as truth:
        components = truth["COMPONENTS"].data
        for _, row in meta[meta["ARM"] == "b"].iterrows():
            tag = f"{row['CAMERAS']}-{row['IMG']:08d}"
            selected = (components["CAMERA"] == row["CAMERAS"]) & (
                components["EXPOSURE"] == row["IMG"]
            )
            index = int(np.flatnonzero(components["FIBERID"][selected] == row["FIB"])[0])
            waves = truth[f"LINEWAVE_{tag}"].data
            out.append(
                float(truth[f"LINEFLUX_{tag}"].data[index][np.abs(waves - 557.889) < 0.05].sum())
            )
    return np.array(out)


register_demo_step("sky", step, order=2)
