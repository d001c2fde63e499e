"""Stellar physics: model-atmosphere grid, an abundance pass over 250 lines, a parameter solve.

Run from the repository root: ``.venv/bin/python benchmarks/bench_stellar_physics.py`` (needs
MOOG: ``photonpipe session install-moog``). Prints median times over ``--repeat`` runs and
ratios to baselines measured in the same run:

* loading the bundled Kurucz grid (2230 models) and interpolating one model; baseline: reading
  the package-data file's bytes;
* an abundance pass (MOOG ``abfind``) over the first 250 lines of the Frebel et al. (2013)
  HD 122563 list with their published EWs; baseline: a MOOG run of one line (the fixed cost of
  starting MOOG, reading the model and solving the molecular equilibrium);
* a full excitation/ionisation solve of HD 122563 from those EWs (its 248 Fe lines), from
  5000 K / 3.0 / 1.5 km/s / −1.0; baseline: one abundance pass over the same Fe lines.
"""

from __future__ import annotations

import argparse
from importlib import resources

from _common import median_time
from photonpipe.stellar.linelist import read_linelist_bytes
from photonpipe.stellar.moog import Moog, find_moog
from photonpipe.stellar.parameters import solve_excitation_ionisation
from photonpipe.stellar.photospheres import BUNDLED_GRID_FILE, bundled_grid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    executable = find_moog(build=True)
    if executable is None:
        raise SystemExit("MOOG is not available: run `photonpipe session install-moog`")
    moog = Moog(executable)
    data = resources.files("photonpipe.stellar") / "data"
    lines = read_linelist_bytes(
        (data / "frebel2013_hd122563_ew.moog2").read_bytes(), "frebel2013_hd122563_ew.moog2"
    )
    rows: list[tuple[str, float, str]] = []

    t_bytes = median_time((data / BUNDLED_GRID_FILE).read_bytes, args.repeat)

    def load() -> None:
        bundled_grid.cache_clear()
        bundled_grid()

    t_load = median_time(load, args.repeat)
    grid = bundled_grid()
    t_interp = median_time(lambda: grid.interpolate(4587.0, 1.61, -2.64), args.repeat * 10)
    rows += [
        ("read grid file bytes (baseline)", t_bytes, ""),
        ("load bundled grid (2230 models)", t_load, f"{t_load / t_bytes:.0f}x"),
        ("interpolate one model (8 nodes)", t_interp, f"{t_interp / t_bytes:.2f}x"),
    ]

    model = grid.interpolate(4450.0, 0.6, -2.7)
    chosen = list(lines)[:250]
    ews = [ln.reference_ew for ln in chosen]
    t_one = median_time(lambda: moog.abundances(model, 2.4, chosen[:1], ews[:1]), args.repeat)
    t_pass = median_time(lambda: moog.abundances(model, 2.4, chosen, ews), args.repeat)
    rows += [
        ("MOOG abfind, 1 line (baseline)", t_one, ""),
        ("MOOG abfind, 250 lines", t_pass, f"{t_pass / t_one:.1f}x"),
    ]

    iron = [ln for ln in lines if int(ln.species) == 26]
    iron_ews = [ln.reference_ew for ln in iron]
    t_iron = median_time(lambda: moog.abundances(model, 2.4, iron, iron_ews), args.repeat)
    results = []

    def solve() -> None:
        results.append(solve_excitation_ionisation(moog, grid, iron, iron_ews))

    t_solve = median_time(solve, args.repeat)
    last = results[-1]
    rows += [
        (f"abundance pass, {len(iron)} Fe lines (baseline)", t_iron, ""),
        (
            f"full solve ({last['evaluations']} MOOG runs)",
            t_solve,
            f"{t_solve / t_iron:.0f}x",
        ),
    ]
    width = max(len(r[0]) for r in rows)
    for name, seconds, ratio in rows:
        print(f"{name:<{width}}  {seconds:9.3f} s  {ratio}")
    print(
        f"solution: Teff {last['teff']:.0f} K, log g {last['logg']:.2f}, vt {last['vt']:.2f} km/s, "
        f"[Fe/H] {last['feh']:.2f}"
    )


if __name__ == "__main__":
    main()
