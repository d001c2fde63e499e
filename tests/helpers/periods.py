"""A labelled battery of simulated light curves for the period search.

Every light curve comes from the light-curve simulator's physics
(:class:`~photonpipe.lightcurves.simulate.Variability` and its good time) binned by
:func:`~photonpipe.lightcurves.simulate.binned_light_curve` with Poisson counts. Aperiodic
classes have no period; periodic classes carry the true one. Parameters are drawn at random
within the ranges below from a seed, so a battery is reproducible.

"Amplitude/noise" is the semi-amplitude of the signal's fundamental (for an eclipsing binary with
box-like eclipses of depth d and duty cycle δ: (2d/π)·sin(πδ)) over the relative noise of one
bin (1/√counts per bin); "cycles" count the good time only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from photonpipe.lightcurves.curve import LightCurve
from photonpipe.lightcurves.simulate import Exposure, Variability, binned_light_curve

APERIODIC = ("white", "flare", "eclipse", "transit", "red_noise")
PERIODIC = ("sinusoid", "eclipsing")
#: HST's orbital period [s]: the spacing of the datasets of a simulated composite.
HST_ORBIT = 5760.0


@dataclass
class Case:
    """One labelled light curve."""

    label: str
    curve: LightCurve
    period: float | None
    description: str


def _gaps(rng: np.random.Generator, exptime: float) -> tuple[tuple[float, float], ...]:
    """Zero to two data gaps of 30–300 s inside the exposure."""
    gaps = []
    for _ in range(int(rng.integers(0, 3))):
        start = float(rng.uniform(0.1, 0.8) * exptime)
        gaps.append((start, start + float(rng.uniform(30, 300))))
    return tuple(sorted(gaps))


def _exposure(rng: np.random.Generator, name: str, variability: Variability) -> Exposure:
    exptime = float(rng.uniform(1200.0, 3000.0))
    return Exposure(
        name,
        exptime=exptime,
        variability=variability,
        gaps=_gaps(rng, exptime),
        bad_time=None,
        burst=None,
    )


def _good_time(curve: LightCurve) -> float:
    return float(np.sum(np.asarray(curve["BIN_EXPTIME"], float)))


def aperiodic_case(label: str, rng: np.random.Generator, index: int) -> Case:
    """A light curve of class ``label`` (one of :data:`APERIODIC`) with random parameters."""
    name = f"lbat{index:05d}"
    step = float(rng.choice([5.0, 10.0, 20.0]))
    rate = float(rng.uniform(5.0, 100.0))  # counts/s: 25–2000 counts per bin
    also: list[Variability] = []
    if label == "white":
        variability = Variability("constant")
        text = "constant source"
    elif label == "flare":
        flares = [
            Variability(
                "flare",
                amplitude=float(rng.uniform(0.3, 3.0)),
                rise=float(rng.uniform(3.0, 30.0)),
                decay=float(rng.uniform(20.0, 300.0)),
                peak=float(rng.uniform(0.05, 0.95) * 3000.0),
            )
            for _ in range(int(rng.integers(1, 4)))
        ]
        variability, also = flares[0], flares[1:]
        text = f"{len(flares)} flare(s)"
    elif label == "eclipse":
        duration = float(rng.uniform(100.0, 600.0))
        variability = Variability(
            "eclipse",
            start=float(rng.uniform(0.0, 1200.0 - duration / 2)),
            duration=duration,
            depth=float(rng.uniform(0.2, 0.95)),
            edge=float(rng.uniform(5.0, 0.3 * duration)),
        )
        text = "single eclipse"
    elif label == "transit":
        duration = float(rng.uniform(200.0, 900.0))
        variability = Variability(
            "transit",
            start=float(rng.uniform(0.0, 1200.0 - duration / 2)),
            duration=duration,
            depth=float(rng.uniform(0.01, 0.1)),
        )
        text = "single transit"
    elif label == "red_noise":
        variability = Variability(
            "red_noise",
            amplitude=float(rng.uniform(0.03, 0.3)),
            alpha=float(rng.uniform(1.0, 2.5)),
            period=float(rng.choice([0.0, 100.0, 300.0, 1000.0])),
            seed=int(rng.integers(0, 2**31)),
        )
        text = (
            f"red noise rms {variability.amplitude:.2f}, slope {variability.alpha:.2f}, "
            f"break {variability.period:.0f} s"
        )
    else:
        raise ValueError(f"not an aperiodic class: {label}")
    if label in ("white", "red_noise") and rng.uniform() < 0.3:
        curve = _composite(rng, name, variability, step, rate)
        text += ", composite of datasets one HST orbit apart"
    else:
        exposure = _exposure(rng, name, variability)
        curve = binned_light_curve(
            exposure, step, rate, seed=int(rng.integers(0, 2**31)), also=also
        )
    return Case(label, curve, None, text)


def _composite(
    rng: np.random.Generator, name: str, variability: Variability, step: float, rate: float
) -> LightCurve:
    curves = []
    first = 58000.0
    for i in range(int(rng.integers(2, 4))):
        exposure = _exposure(rng, f"{name[:-1]}{i}", variability)
        exposure.expstart = first + i * HST_ORBIT / 86400.0
        # a red-noise process runs on: each dataset sees its own stretch of it
        if variability.kind == "red_noise":
            exposure.variability = Variability(
                "red_noise",
                amplitude=variability.amplitude,
                alpha=variability.alpha,
                period=variability.period,
                seed=variability.seed + i,
            )
        curves.append(
            binned_light_curve(
                exposure,
                step,
                rate,
                seed=int(rng.integers(0, 2**31)),
                dataset_number=i + 1,
                reference_mjd=first,
            )
        )
    return LightCurve.stack(curves)


def periodic_case(
    label: str,
    rng: np.random.Generator,
    index: int,
    *,
    cycles: tuple[float, float] = (3.0, 10.0),
    amplitude_to_noise: float = 5.0,
) -> Case:
    """A light curve of class ``label`` (one of :data:`PERIODIC`) with a known period.

    The period gives ``cycles`` (drawn uniformly in the range) in the good time; the
    fundamental's semi-amplitude is ``amplitude_to_noise`` times the relative noise of a bin.
    """
    name = f"lper{index:05d}"
    step = float(rng.choice([5.0, 10.0]))
    exposure = _exposure(rng, name, Variability("constant"))
    # the good time of the exposure, computed like the product's BIN_EXPTIME sum
    probe = binned_light_curve(exposure, step, 1.0, seed=0)
    good_time = _good_time(probe)
    n_cycles = float(rng.uniform(*cycles))
    period = good_time / n_cycles
    phase = float(rng.uniform(0.0, period))
    if label == "sinusoid":
        amplitude = 0.2
        rate = (amplitude_to_noise / amplitude) ** 2 / step
        variability = Variability("sinusoid", amplitude=amplitude, period=period)
        exposure.variability = _shifted(variability, phase)
        text = f"sinusoid P = {period:.1f} s, {n_cycles:.1f} cycles"
    elif label == "eclipsing":
        duty = float(rng.uniform(0.1, 0.3))
        depth = 0.8
        fundamental = 2 * depth / math.pi * math.sin(math.pi * duty)
        rate = (amplitude_to_noise / fundamental) ** 2 / step
        exposure.variability = Variability(
            "eclipsing",
            period=period,
            start=phase,
            duration=duty * period,
            depth=depth,
            edge=0.15 * duty * period,
        )
        text = f"eclipsing binary P = {period:.1f} s, duty {duty:.2f}, {n_cycles:.1f} cycles"
    else:
        raise ValueError(f"not a periodic class: {label}")
    curve = binned_light_curve(exposure, step, rate, seed=int(rng.integers(0, 2**31)))
    return Case(label, curve, period, text)


@dataclass
class _Shifted(Variability):
    shift: float = 0.0

    def modulation(self, time: np.ndarray) -> np.ndarray:
        return super().modulation(np.asarray(time, dtype=np.float64) + self.shift)


def _shifted(variability: Variability, shift: float) -> Variability:
    return _Shifted(**vars(variability), shift=shift)


def battery(label: str, n: int, seed: int) -> list[Case]:
    """``n`` light curves of class ``label`` from ``seed``."""
    rng = np.random.default_rng([seed, sum(map(ord, label))])
    make = aperiodic_case if label in APERIODIC else periodic_case
    return [make(label, rng, i) for i in range(n)]
