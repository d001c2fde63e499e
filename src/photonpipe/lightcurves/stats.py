"""Variability statistics and Lomb–Scargle periodograms of a light curve.

Statistics follow hstlc: mean and standard deviation of the flux (of NET when uncalibrated), the
Poisson factor (standard deviation of the gross counts per full bin over the square root of
their mean: ≈ 1 for a constant source, > 1 for excess variability) and Pearson's r of flux
against time. Periodograms (astropy ``LombScargle`` with the bin errors) cover three period
ranges — 5 s–10 min, 10 min–1 h, 1–10 h — each clipped to what the sampling can show (≥ 2 bins,
≤ the time span); a range outside it is skipped. A peak is significant when its false-alarm
probability (Baluev 2008 approximation) is below the threshold (default 1%).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from astropy.timeseries import LombScargle
from scipy import stats as scipy_stats

from photonpipe.lightcurves.curve import LightCurve

#: Period ranges searched: name, minimum, maximum [s].
PERIOD_RANGES: tuple[tuple[str, float, float], ...] = (
    ("5s-10min", 5.0, 600.0),
    ("10min-1h", 600.0, 3600.0),
    ("1h-10h", 3600.0, 36000.0),
)
FALSE_ALARM_THRESHOLD = 0.01
MAX_FREQUENCIES = 200_000


@dataclass
class Periodogram:
    """Lomb–Scargle result for one period range.

    Attributes
    ----------
    name : str
        Range label.
    min_period, max_period : float
        Periods searched [s] (after clipping to the sampling).
    best_period : float
        Period of the highest peak [s].
    power : float
        Normalised power of that peak.
    false_alarm_probability : float
        Probability that noise gives a peak this high.
    significant : bool
        ``false_alarm_probability`` below the threshold.
    periods, powers : ndarray
        The periodogram [s], [-] (not serialised).
    """

    name: str
    min_period: float
    max_period: float
    best_period: float
    power: float
    false_alarm_probability: float
    significant: bool
    periods: np.ndarray = field(repr=False)
    powers: np.ndarray = field(repr=False)


@dataclass
class VariabilityStatistics:
    """Summary statistics of a light curve (units of the quantity used, see ``quantity``)."""

    quantity: str
    mean: float
    std: float
    poisson_factor: float
    pearson_r: float
    pearson_p: float
    periodograms: list[Periodogram]
    significant_period: bool
    best_period: float | None

    def to_dict(self) -> dict[str, Any]:
        """Plain values (periodogram arrays left out)."""
        out = asdict(self)
        out["periodograms"] = [
            {k: v for k, v in asdict(p).items() if k not in ("periods", "powers")}
            for p in self.periodograms
        ]
        return out


def _quantity(curve: LightCurve) -> tuple[str, np.ndarray, np.ndarray]:
    if curve.is_calibrated:
        return "FLUX", np.asarray(curve["FLUX"], float), np.asarray(curve["FLUX_ERROR"], float)
    return "NET", np.asarray(curve["NET"], float), np.asarray(curve["ERROR"], float)


def periodogram(
    time: np.ndarray,
    values: np.ndarray,
    errors: np.ndarray,
    min_period: float,
    max_period: float,
    *,
    name: str = "",
    threshold: float = FALSE_ALARM_THRESHOLD,
) -> Periodogram | None:
    """Lomb–Scargle periodogram between two periods [s]; None when the range is empty.

    Parameters
    ----------
    time : ndarray
        Sample times [s].
    values, errors : ndarray
        Measurements and their 1σ errors.
    min_period, max_period : float
        Period range [s].
    """
    good = np.isfinite(values) & np.isfinite(errors) & (errors > 0)
    time, values, errors = time[good], values[good], errors[good]
    if len(time) < 8:
        return None
    span = float(time.max() - time.min())
    spacing = float(np.median(np.diff(np.sort(time))))
    low = max(min_period, 2.0 * spacing)
    high = min(max_period, span)
    if not high > low:
        return None
    df = 1.0 / (5.0 * span)
    n = int(min(max((1.0 / low - 1.0 / high) / df, 10), MAX_FREQUENCIES))
    frequency = np.linspace(1.0 / high, 1.0 / low, n)
    model = LombScargle(time, values, errors)
    power = model.power(frequency)
    best = int(np.argmax(power))
    fap = float(
        model.false_alarm_probability(
            power[best], minimum_frequency=frequency[0], maximum_frequency=frequency[-1]
        )
    )
    return Periodogram(
        name,
        low,
        high,
        float(1.0 / frequency[best]),
        float(power[best]),
        fap,
        fap < threshold,
        1.0 / frequency,
        power,
    )


def variability_statistics(
    curve: LightCurve, *, threshold: float = FALSE_ALARM_THRESHOLD
) -> VariabilityStatistics:
    """Statistics and periodograms of a light curve (see the module docstring).

    Parameters
    ----------
    curve : LightCurve
        The light curve.
    threshold : float
        False-alarm probability below which a period is significant.
    """
    name, values, errors = _quantity(curve)
    finite = np.isfinite(values)
    mean = float(np.mean(values[finite])) if finite.any() else float("nan")
    std = float(np.std(values[finite], ddof=1)) if finite.sum() > 1 else float("nan")
    step = float(curve.header.get("STEP", 0) or 0)
    exposure = np.asarray(curve["BIN_EXPTIME"], float)
    full = exposure >= 0.99 * step if step > 0 else np.ones(len(exposure), dtype=bool)
    counts = np.asarray(curve["COUNTS"], float)[full]
    poisson = (
        float(np.std(counts, ddof=1) / np.sqrt(np.mean(counts)))
        if len(counts) > 1 and np.mean(counts) > 0
        else float("nan")
    )
    seconds = (
        np.asarray(curve["MJD"], float) - float(np.min(np.asarray(curve["MJD"], float)))
    ) * 86400.0
    if finite.sum() > 2 and np.std(values[finite]) > 0:
        r, p = scipy_stats.pearsonr(seconds[finite], values[finite])
        pearson_r, pearson_p = float(r), float(p)
    else:
        pearson_r = pearson_p = float("nan")
    periodograms = [
        result
        for label, low, high in PERIOD_RANGES
        if (
            result := periodogram(
                seconds, values, errors, low, high, name=label, threshold=threshold
            )
        )
        is not None
    ]
    significant = [p for p in periodograms if p.significant]
    best = min(significant, key=lambda p: p.false_alarm_probability) if significant else None
    return VariabilityStatistics(
        name,
        mean,
        std,
        poisson,
        pearson_r,
        pearson_p,
        periodograms,
        bool(significant),
        best.best_period if best else None,
    )
