"""Cost of the period search per light curve, against one plain Lomb–Scargle periodogram.

Light curves of 1500 s with 10-s bins (150 bins), 3000 s with 5-s bins (600 bins) and a
three-dataset composite with 1-s bins (~5000 bins), simulated with the binned light-curve
simulator. For each: the median time of ``variability_statistics`` (statistics + the full
period search) and of one astropy Lomb–Scargle periodogram (fast method) over the same band,
and their ratio.

Run: ``.venv/bin/python benchmarks/bench_periods.py [--repeat 5]``.
"""

from __future__ import annotations

import argparse

import numpy as np
from astropy.timeseries import LombScargle

from _common import median_time
from photonpipe.lightcurves.curve import LightCurve
from photonpipe.lightcurves.simulate import Exposure, Variability, binned_light_curve
from photonpipe.lightcurves.stats import variability_statistics


def _curves() -> dict[str, LightCurve]:
    flicker = Variability("red_noise", amplitude=0.1, alpha=1.5, period=300.0, seed=3)
    single = binned_light_curve(
        Exposure("lben01abq", exptime=1500.0, variability=flicker), 10.0, 50.0, seed=1
    )
    longer = binned_light_curve(
        Exposure("lben02abq", exptime=3000.0, variability=flicker), 5.0, 50.0, seed=2
    )
    parts = [
        binned_light_curve(
            Exposure(
                f"lben1{i}abq",
                exptime=1800.0,
                expstart=58000.0 + i * 5760.0 / 86400.0,
                variability=flicker,
            ),
            1.0,
            50.0,
            seed=i,
            dataset_number=i + 1,
            reference_mjd=58000.0,
        )
        for i in range(3)
    ]
    return {
        "1 dataset, 150 bins": single,
        "1 dataset, 600 bins": longer,
        "composite, 3 datasets, 1-s bins": LightCurve.stack(parts),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"{'light curve':34s} {'bins':>6s} {'search [s]':>11s} {'one LS [s]':>11s} {'ratio':>6s}")
    for name, curve in _curves().items():
        mjd = np.asarray(curve["MJD"], float)
        t = (mjd - mjd.min()) * 86400.0
        y, dy = np.asarray(curve["NET"]), np.asarray(curve["ERROR"])
        search = variability_statistics(curve).periodogram
        assert search is not None
        frequency = search.frequencies

        def plain(t=t, y=y, dy=dy, frequency=frequency) -> None:
            LombScargle(t, y, dy, normalization="psd").power(frequency, method="fast")

        full = median_time(lambda curve=curve: variability_statistics(curve), args.repeat)
        base = median_time(plain, args.repeat)
        print(f"{name:34s} {len(curve):6d} {full:11.3f} {base:11.3f} {full / base:6.1f}")


if __name__ == "__main__":
    main()
