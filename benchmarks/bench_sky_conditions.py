"""Observing conditions per sky spectrum: photonpipe against a plain astroplan script.

For ``--plates`` N simulated BOSS plate visits (2 exposures of 900 s each, on N/2 nights drawn
over the survey's years, two plates a night) it times, medians of ``--repeat`` R:

* photonpipe: ``exposure_conditions`` once per plate (both exposures at once), starting each
  repetition with an empty twilight cache, as a new worker process does;
* the anchor, a plain astroplan per-exposure script (astroplan is an optional benchmark extra:
  ``pip install astroplan``; without it the anchor is skipped with a line): for every exposure
  the previous sunset and next sunrise at −0.8333° (``Observer.sun_set_time`` /
  ``sun_rise_time``), the Moon's and the Sun's altitude/azimuth and the Moon's illumination.

Times are given per sky spectrum (400 per plate: 10 % sky fibres of 1000, 2 exposures, 2
spectrographs... as ``bench_sky.py``'s plates), and the ratio anchor / photonpipe. The largest
difference of the two in Moon and Sun altitude [deg] and in sunset/sunrise [s] is printed.

Run as ``python benchmarks/bench_sky_conditions.py [--plates N] [--repeat R]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings

import numpy as np
from astropy.time import Time

from photonpipe.sky import conditions
from photonpipe.spectra.barycentric import offline_earth_orientation

SPECTRA_PER_PLATE = 400
EXPOSURE_S = 900.0


def plate_times(plates: int, seed: int = 3) -> list[tuple[np.ndarray, np.ndarray]]:
    """TAI-BEG, TAI-END [s] of the 2 exposures of each plate visit; two plates a night."""
    rng = np.random.default_rng(seed)
    first = Time("2010-01-01T00:00:00", scale="tai").mjd * 86400.0
    last = Time("2019-12-31T00:00:00", scale="tai").mjd * 86400.0
    out = []
    for night in np.floor(rng.uniform(first, last, (plates + 1) // 2) / 86400.0):
        for start_h in (5.0, 8.0):  # ≈ 22:00 and 01:00 local time at APO
            begin = night * 86400.0 + start_h * 3600.0 + np.array([0.0, EXPOSURE_S + 120.0])
            out.append((begin, begin + EXPOSURE_S))
    return out[:plates]


def photonpipe_run(visits: list[tuple[np.ndarray, np.ndarray]]) -> list[dict[str, np.ndarray]]:
    conditions._day_crossings.cache_clear()
    return [conditions.exposure_conditions(beg, end) for beg, end in visits]


def astroplan_run(visits: list[tuple[np.ndarray, np.ndarray]]) -> list[dict[str, float]]:
    import astropy.units as u
    from astroplan import Observer  # type: ignore[import-untyped]

    observer = Observer(location=conditions.APACHE_POINT, pressure=0 * u.hPa)
    horizon = conditions.SUNSET_ALTITUDE_DEG * u.deg
    rows = []
    for beg, end in visits:
        for b, e in zip(beg, end, strict=True):
            t = conditions.tai_seconds_to_time(0.5 * (b + e))
            sunset = observer.sun_set_time(t, which="previous", horizon=horizon)
            sunrise = observer.sun_rise_time(t, which="next", horizon=horizon)
            moon = observer.moon_altaz(t)
            sun = observer.sun_altaz(t)
            rows.append(
                {
                    "moon_alt": float(moon.alt.deg),
                    "sun_alt": float(sun.alt.deg),
                    "illumination": float(observer.moon_illumination(t)),
                    "since_s": float((t - sunset).to_value(u.s)),
                    "until_s": float((sunrise - t).to_value(u.s)),
                }
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plates", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    visits = plate_times(args.plates)
    n_spectra = SPECTRA_PER_PLATE * len(visits)
    print(f"load average at the start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    try:
        import astroplan  # type: ignore[import-untyped]  # noqa: F401

        have_anchor = True
    except ImportError:
        have_anchor = False
        print("astroplan not installed: anchor skipped (pip install astroplan)")
    times: dict[str, list[float]] = {"photonpipe": [], "astroplan": []}
    ours: list[dict[str, np.ndarray]] = []
    theirs: list[dict[str, float]] = []
    with offline_earth_orientation(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(args.repeat):
            start = time.perf_counter()
            ours = photonpipe_run(visits)
            times["photonpipe"].append(time.perf_counter() - start)
            if have_anchor:
                start = time.perf_counter()
                theirs = astroplan_run(visits)
                times["astroplan"].append(time.perf_counter() - start)
    print(
        f"{len(visits)} plate visits, {2 * len(visits)} exposures, {n_spectra} sky spectra, "
        f"medians of {args.repeat}"
    )
    mine = statistics.median(times["photonpipe"])
    print(f"photonpipe exposure_conditions per plate: {1e3 * mine / n_spectra:.3f} ms/spectrum")
    if have_anchor:
        anchor = statistics.median(times["astroplan"])
        print(f"astroplan per-exposure script: {1e3 * anchor / n_spectra:.3f} ms/spectrum")
        print(f"ratio astroplan / photonpipe: {anchor / mine:.1f}x (target >= 5x)")
        flat = {k: np.concatenate([c[k] for c in ours]) for k in ours[0]}

        def worst(ours_key: str, theirs_key: str, scale: float = 1.0) -> float:
            other = np.array([r[theirs_key] for r in theirs])
            return float(np.max(np.abs(scale * flat[ours_key] - other)))

        print(
            f"largest differences: Moon altitude {worst('moon_alt', 'moon_alt'):.4f} deg, "
            f"Sun altitude {worst('sun_alt', 'sun_alt'):.4f} deg, "
            f"sunset {worst('hours_since_sunset', 'since_s', 3600.0):.1f} s, "
            f"sunrise {worst('hours_until_sunrise', 'until_s', 3600.0):.1f} s"
        )
    print(f"load average now: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
