"""Demo step of the echelle application: a simulated small NRES night through ``echelle night``."""

from __future__ import annotations

import numpy as np
from astropy.io import fits

from photonpipe.demo import DemoSection
from photonpipe.echelle.pipeline import reduce_night
from photonpipe.echelle.products import read_triple
from photonpipe.echelle.simulate import simulate_night
from photonpipe.echelle.traces import TraceSet
from photonpipe.platform.archive import Archive
from photonpipe.platform.config import Settings
from photonpipe.platform.db import Database

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
    links = [(p.name, str(p.relative_to(archive.root))) for p in report.masters]
    images = []
    for products in report.products.values():
        links.append((products["1d"].rsplit("/", 1)[-1], f"nres/{products['1d']}"))
        images.append(f"nres/{products['quicklook']}")
    images += [str(p.relative_to(archive.root)) for p in sorted((reduced / "diag").glob("*.png"))]
    summary = (
        "A simulated night of NRES frames at LCO Cerro Tololo (lsc, nres01; a 1024×1024 read-out "
        "window holding ~16 orders): biases, darks, lamp flats (fibres 0+1 and 1+2), Th-Ar arcs, "
        "two science frames. `echelle night` stacked the masters, refined the hand trace on the "
        "flats, fitted the Th-Ar wavelength solution of each fibre and optimally extracted the "
        f"science frames. {report.summary()}."
    )
    return DemoSection(
        "Echelle (NRES)", summary, links=links, images=images[:3], table=table, ok=report.ok
    )
