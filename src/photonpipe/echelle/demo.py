"""Demo step of the echelle application: a simulated small NRES night through ``echelle night``.

The night is a standard-star sequence (four 900 s frames of a star at its catalogue RV): the
night makes the star's ZERO from its frames and measures each frame's RV against the ZERO of
the other three; the page compares those RVs with the simulator's truth (table and plot).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits

from photonpipe.echelle.pipeline import NightReport, reduce_night
from photonpipe.echelle.products import read_triple
from photonpipe.echelle.simulate import simulate_night
from photonpipe.echelle.traces import TraceSet
from photonpipe.platform.archive import Archive
from photonpipe.platform.config import Settings
from photonpipe.platform.db import Database
from photonpipe.platform.demo import DemoSection, register_demo_step
from photonpipe.platform.plots import new_figure, save_figure

NIGHT = "2026-03-01"
C_MS = 299_792_458.0


def step(archive: Archive, database: Database, settings: Settings, seed: int) -> DemoSection:
    """Simulate a small lsc night (1024² window), reduce it, compare with the truth.

    Parameters
    ----------
    archive : Archive
        Demo archive; the NRES data tree goes under ``nres/``.
    database : Database
        Demo database (calibration records, ledger).
    settings : Settings
        Demo settings.
    seed : int
        Simulator seed.

    Returns
    -------
    DemoSection
    """
    root = archive.path("nres")
    night = simulate_night(root, site="lsc", night=NIGHT, small=True, seed=seed)
    nres = Archive(root)
    report = reduce_night(nres, database, "lsc", "nres01", NIGHT, settings, progress=False)
    if not report.products:
        return DemoSection("Echelle (NRES)", f"night failed: {report.failed}", ok=False)
    reduced = root / "lsc" / "nres01" / "reduced"
    truth = night.truth
    x = truth.x0 + np.arange(truth.nx, dtype=float)
    with fits.open(night.truth_path) as hdul:
        trace_table = hdul["TRACE"].data
        waves = hdul["WAVELENGTH"].data
        inside = [int(o) for o in hdul[0].header["ORDERS"].split(",")]
    traces = TraceSet.read(next((reduced / "trace").glob("*-trace.fits")))
    trace_residuals = [
        traces.centre(o, f, x)
        - np.polynomial.polynomial.polyval(
            (x - 2047.5) / 2047.5,
            trace_table["COEFFS"][(trace_table["ORDER"] == o) & (trace_table["FIBRE"] == f)][0],
        )
        for o, f in traces
        if o in inside
    ]
    table = [
        ("orders × fibres traced", str(len(trace_residuals))),
        (
            "trace RMS vs truth [px]",
            f"{np.sqrt(np.mean(np.concatenate(trace_residuals) ** 2)):.4f}",
        ),
    ]
    for fibre, solution in sorted(read_triple(next((reduced / "trip").glob("*.fits"))).items()):
        velocity = []
        for order in range(int(solution.m_domain[0]) - 52, int(solution.m_domain[1]) - 51):
            row = (waves["ORDER"] == order) & (waves["FIBRE"] == fibre)
            if row.any():
                true_wave = waves["WAVELENGTH"][row][0]
                velocity.append((solution(x, order) - true_wave) / true_wave * C_MS)
        table.append(
            (
                f"fibre {fibre} wavelength solution",
                (
                    f"{solution.n_lines} lines, {solution.rms_angstrom * 1e3:.2f} mÅ RMS, "
                    f"expected error {solution.precision_ms:.1f} m/s, vs truth "
                    f"{np.sqrt(np.mean(np.concatenate(velocity) ** 2)):.1f} m/s RMS"
                ),
            )
        )
    rv_rows, rv_plot, rv_ok = _velocities_against_truth(archive, night.truth_path, report)
    table += rv_rows
    links = [(p.name, str(p.relative_to(archive.root))) for p in report.masters + report.zeros]
    images = [] if rv_plot is None else [rv_plot]
    for products in report.products.values():
        links.append((products["1d"].rsplit("/", 1)[-1], f"nres/{products['1d']}"))
    quicklooks = [f"nres/{products['quicklook']}" for products in report.products.values()]
    images += quicklooks[:1]
    images += [str(p.relative_to(archive.root)) for p in sorted((reduced / "diag").glob("*.png"))]
    summary = (
        "A simulated night of NRES frames at LCO Cerro Tololo (lsc, nres01; a 1024×1024 read-out "
        "window holding ~16 orders): biases, darks, lamp flats (fibres 0+1 and 1+2), Th-Ar arcs, "
        f"and a standard-star sequence of {len(report.velocities)} science frames of "
        f"{night.target} at its catalogue RV (the simulator registered the star in "
        "reduced/csv/targets.csv). `echelle night` stacked the masters, refined the hand trace "
        "on the flats, fitted the Th-Ar wavelength solution of each fibre, optimally extracted "
        "the science frames, corrected their drift on the simultaneous Th-Ar fibre, made the "
        "star's ZERO template from the night's frames and measured each frame's RV against "
        "the ZERO of the other frames (leave one out, so no frame is compared with its own "
        "photons). The RVs are compared with the simulator's truth below; this small window "
        "holds ~1/18 of a full frame's Doppler information, hence errors of a few m/s (over "
        "eight such simulated nights, 32 frames: RMS 4.9 m/s against a median reported σ of "
        "5.1 m/s; docs/echelle.md, 'Radial velocities out of the box'). "
        f"{report.summary()}."
    )
    return DemoSection(
        "Echelle (NRES)",
        summary,
        links=links,
        images=images[:3],
        table=table,
        ok=report.ok and rv_ok,
    )


def _velocities_against_truth(
    archive: Archive, truth_path: Path, report: NightReport
) -> tuple[list[tuple[str, str]], str | None, bool]:
    """Table rows and a plot of the night's RVs against the simulator's (RV table of the truth).

    Returns the rows, the plot's archive-relative path (None without RVs) and whether every
    science frame has an RV.
    """
    with fits.open(truth_path) as hdul:
        truth = {str(r["FILE"]).strip(): float(r["RV"]) for r in hdul["RV"].data}
    rows: list[tuple[str, str]] = []
    names, errors, sigmas = [], [], []
    for key, velocity in sorted(report.velocities.items()):
        raw = Path(key).name
        short = raw.split("-")[3]  # the frame number
        if velocity.rv_kms is None or velocity.error_kms is None:
            rows.append((f"RV frame {short}", f"none: {velocity.reason}"))
            continue
        error_ms = (velocity.rv_kms - truth[raw]) * 1000.0
        sigma_ms = velocity.error_kms * 1000.0
        names.append(short)
        errors.append(error_ms)
        sigmas.append(sigma_ms)
        rows.append(
            (
                f"RV frame {short} ({velocity.target})",
                (
                    f"{velocity.rv_kms:.5f} ± {velocity.error_kms:.5f} km/s; truth "
                    f"{truth[raw]:.5f}; error {error_ms:+.1f} m/s = {error_ms / sigma_ms:+.2f} σ"
                ),
            )
        )
    ok = bool(report.velocities) and len(errors) == len(report.velocities)
    if not errors:
        return rows, None, ok
    e, s = np.array(errors), np.array(sigmas)
    rows.append(
        (
            "RVs vs truth",
            (
                f"{e.size} frames: error RMS {np.sqrt(np.mean(e**2)):.1f} m/s "
                f"(mean {e.mean():+.1f}), "
                f"median reported σ {np.median(s):.1f} m/s, RMS of error/σ "
                f"{np.sqrt(np.mean((e / s) ** 2)):.2f}"
            ),
        )
    )
    figure = new_figure(7.0, 3.5)
    axes = figure.add_subplot()
    axes.axhline(0.0, color="0.6", lw=1)
    axes.errorbar(range(e.size), e, yerr=s, fmt="o", capsize=4, label="measured − true ± σ")
    axes.set_xticks(range(e.size), [f"frame {n}" for n in names])
    axes.set_ylabel("RV − true RV [m/s]")
    axes.set_title("NRES small night: RVs (each against the ZERO of the other frames) vs truth")
    axes.legend(loc="best", fontsize="small")
    plot = save_figure(figure, archive, "nres", "rv-vs-truth.png")
    return rows, str(Path(plot).relative_to(archive.root)), ok


register_demo_step("echelle", step, order=4)
