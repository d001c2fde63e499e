"""Full-size (4096², 67 orders) accuracy against the truth. Slow: run with ``-m slow``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from photonpipe.echelle.pipeline import reduce_night
from photonpipe.echelle.products import read_triple
from photonpipe.echelle.simulate import NightPlan, simulate_night
from photonpipe.echelle.traces import TraceSet
from photonpipe.platform.archive import Archive
from photonpipe.platform.db import Database

C_MS = 299_792_458.0


@pytest.mark.slow
def test_full_size_night(tmp_path: Path) -> None:
    plan = NightPlan(biases=3, darks=3, flats_per_pair=2, arcs_per_pair=1, science=1)
    night = simulate_night(tmp_path, site="lsc", night="2026-03-01", small=False, seed=7, plan=plan)
    database = Database(f"sqlite:///{tmp_path / 'photonpipe.db'}")
    database.upgrade()
    report = reduce_night(Archive(tmp_path), database, "lsc", "nres01", "20260301", workers=2)
    assert report.ok, report.failed
    reduced = tmp_path / "lsc" / "nres01" / "reduced"
    x = np.arange(4096.0)
    with fits.open(night.truth_path) as hdul:
        trace_table = hdul["TRACE"].data
        waves = hdul["WAVELENGTH"].data
        inside = [int(o) for o in hdul[0].header["ORDERS"].split(",")]
        science = hdul[next(h.name for h in hdul if h.name.startswith("SCI_"))].data
    traces = TraceSet.read(next(reduced.glob("trace/*-trace.fits")))
    residuals = [
        traces.centre(o, f, x)
        - np.polynomial.polynomial.polyval(
            (x - 2047.5) / 2047.5,
            trace_table["COEFFS"][(trace_table["ORDER"] == o) & (trace_table["FIBRE"] == f)][0],
        )
        for o, f in traces
        if o in inside
    ]
    assert len(residuals) > 180
    assert np.sqrt(np.mean(np.concatenate(residuals) ** 2)) < 0.05
    for fibre, solution in read_triple(next(reduced.glob("trip/*.fits"))).items():
        assert solution.rms_angstrom < 0.005
        velocity = []
        for order in range(int(solution.m_domain[0]) - 52, int(solution.m_domain[1]) - 51):
            row = (waves["ORDER"] == order) & (waves["FIBRE"] == fibre)
            if row.any():
                true_wave = waves["WAVELENGTH"][row][0]
                velocity.append((solution(x, order) - true_wave) / true_wave * C_MS)
        assert np.sqrt(np.mean(np.concatenate(velocity) ** 2)) < 10.0, fibre
    with fits.open(next(reduced.glob("spec/*-1d.fits"))) as hdul:
        table = hdul["SPECTRUM"].data
    checked = 0
    for row in table[table["FIBRE"] == 0]:
        expected = science["FLUX"][(science["ORDER"] == row["ORDER"]) & (science["FIBRE"] == 0)][0]
        good = (row["MASK"] == 0) & (expected / np.maximum(row["UNCERTAINTY"], 1e-9) >= 100)
        if good.sum() > 200:
            assert abs(np.median(row["FLUX"][good] / expected[good]) - 1.0) < 0.01
            checked += 1
    assert checked > 30
