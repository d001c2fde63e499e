"""Stellar sessions: equivalent-width fitting rate and save/load time of a 70-order session.

Run from the repository root: ``.venv/bin/python benchmarks/bench_stellar.py``. Prints median
times over ``--repeat`` runs and ratios to baselines measured in the same run:

* EW fitting (Gaussian and Voigt, with iterative neighbour masking) on a simulated S/N-100
  spectrum with random lines; baseline: a direct-integration EW (Σ (1 − F) Δλ over ±2 FWHM) of
  the same lines, i.e. the cost of merely visiting each line's pixels.
* Session save and load of a 70-order echelle spectrum (4096 pixels per order, every order
  normalised, so the state holds 70 continua); baseline: writing / reading the same input file
  and the same continua as one plain ``np.savez`` archive (no tarball, no pickle checks).
"""

from __future__ import annotations

import argparse
import io
import tempfile
from pathlib import Path

import numpy as np

from _common import median_time
from photonpipe.spectra.linefit import fit_absorption_line
from photonpipe.stellar.session import Session
from photonpipe.stellar.simulate import (
    SimulatedLine,
    normalized_flux,
    random_lines,
    simulate_echelle,
    write_multispec,
)


def bench_ew(repeat: int, n_lines: int) -> list[tuple[str, float, str, str]]:
    rng = np.random.default_rng(1)
    x = np.arange(5000.0, 5000.0 + 0.02 * 200_000, 0.02)
    lines = random_lines(rng, x[0] + 5, x[-1] - 5, 0.15, (10.0, 150.0), 31_000)
    voigt_lines = [SimulatedLine(ln.wavelength, ln.ew_milliangstrom, ln.fwhm, 0.02) for ln in lines]
    targets = [ln.wavelength for ln in lines[:n_lines]]
    flux = normalized_flux(x, lines) + rng.normal(0, 0.01, x.size)
    vflux = normalized_flux(x, voigt_lines) + rng.normal(0, 0.01, x.size)
    ivar = np.full(x.size, 1e4)

    def direct() -> None:
        for c in targets:
            lo, hi = np.searchsorted(x, [c - 0.35, c + 0.35])
            float(np.sum(1.0 - flux[lo:hi]) * 0.02)

    def gaussian() -> None:
        for c in targets:
            fit_absorption_line(x, flux, ivar, c, window=2.0)

    def voigt() -> None:
        for c in targets[: n_lines // 2]:
            fit_absorption_line(x, vflux, ivar, c, profile="voigt", window=2.0)

    base = median_time(direct, repeat)
    t_g = median_time(gaussian, repeat)
    t_v = median_time(voigt, repeat) * 2
    n = len(targets)
    return [
        ("EW direct integration (baseline)", base, f"{n / base:,.0f} lines/s", ""),
        ("EW Gaussian fit + masking", t_g, f"{n / t_g:,.0f} lines/s", f"{t_g / base:.0f}×"),
        ("EW Voigt fit + masking", t_v, f"{n / t_v:,.0f} lines/s", f"{t_v / base:.0f}×"),
    ]


def bench_session(repeat: int, n_orders: int) -> list[tuple[str, float, str, str]]:
    rng = np.random.default_rng(2)
    ranges = [(4000.0 + 40.0 * i, 4050.0 + 40.0 * i) for i in range(n_orders)]
    lines = random_lines(rng, 3990.0, ranges[-1][1] + 10, 0.2, (10.0, 150.0), 40_000)
    star = simulate_echelle(ranges, lines, 20.0, snr=100.0, pixels_per_order=4096, seed=2)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        spectrum = write_multispec(root / "star70.fits", star.orders, "legendre")
        session = Session.new([spectrum])
        session.apply_rv(20.0)
        session.normalize_all(use_default_masks=False)
        target = root / "star70.smh"
        continua = {
            f"c{i}": r["continuum"] for i, r in enumerate(session.state["normalization"]["orders"])
        }

        def plain_save() -> None:
            buffer = io.BytesIO()
            np.savez(buffer, spectrum=np.frombuffer(spectrum.read_bytes(), np.uint8), **continua)
            (root / "plain.npz").write_bytes(buffer.getvalue())

        def plain_load() -> None:
            with np.load(root / "plain.npz") as data:
                {k: data[k] for k in data.files}

        t_plain_save = median_time(plain_save, repeat)
        t_plain_load = median_time(plain_load, repeat)
        t_save = median_time(lambda: session.save(target), repeat)
        t_load = median_time(lambda: Session.load(target), repeat)
        size = target.stat().st_size / 1e6
    return [
        (f"plain npz save, {n_orders} orders (baseline)", t_plain_save, "", ""),
        (
            f"session save, {n_orders} orders ({size:.1f} MB)",
            t_save,
            "",
            f"{t_save / t_plain_save:.1f}×",
        ),
        (f"plain npz load, {n_orders} orders (baseline)", t_plain_load, "", ""),
        (f"session load, {n_orders} orders", t_load, "", f"{t_load / t_plain_load:.1f}×"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--lines", type=int, default=500)
    parser.add_argument("--orders", type=int, default=70)
    args = parser.parse_args()
    rows = bench_ew(args.repeat, args.lines) + bench_session(args.repeat, args.orders)
    print(f"{'measurement':<48} {'median':>9} {'rate':>16} {'ratio':>8}")
    for name, seconds, rate, ratio in rows:
        print(f"{name:<48} {seconds:>8.3f}s {rate:>16} {ratio:>8}")


if __name__ == "__main__":
    main()
