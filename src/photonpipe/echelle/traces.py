"""Order tracing: a starting trace from a hand trace file, refined on lamp flats.

A trace is, per order index and fibre, a quartic y(x) in u = (x − 2047.5)/2047.5 in full-detector
coordinates. :func:`initial_traces` turns a hand trace (order centres at five columns for
listed orders) into such polynomials; :func:`refine_traces` measures the flux-weighted centre of
each lit fibre in bins of columns of a master flat, following the order outwards from the
middle of the read-out window, and fits the polynomial with outlier rejection. Fibre 1 is lit
in both flats (0+1 and 1+2) and is taken as the mean of the two measurements.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits
from numpy.typing import NDArray

from photonpipe.echelle.instrument import HandTrace
from photonpipe.echelle.preprocess import ProcessedImage
from photonpipe.errors import InputFileError
from photonpipe.spectra.profiles import gaussian_peak
from photonpipe.spectra.robust import robust_sigma

TRACE_DEGREE = 4
X_SCALE = 2047.5
BIN_COLUMNS = 8
HALF_WINDOW = 4
#: Fewest signal-to-noise of a bin's trace flux for its centre to be used.
MIN_SNR = 20.0


def _u(x: NDArray[np.float64]) -> NDArray[np.float64]:
    return (np.asarray(x, float) - X_SCALE) / X_SCALE


@dataclass
class TraceSet:
    """Polynomial order centres per (order index, fibre), full-detector coordinates.

    Attributes
    ----------
    coeffs : dict[(int, int), ndarray]
        Polynomial coefficients (increasing power) of y(u), u = (x − 2047.5)/2047.5.
    rms : dict[(int, int), float]
        RMS of the centre measurements about the fit [px] (0 for starting traces).
    """

    coeffs: dict[tuple[int, int], NDArray[np.float64]]
    rms: dict[tuple[int, int], float] = field(default_factory=dict)

    def centre(self, order: int, fibre: int, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """Trace centre row [px, full detector] at columns ``x``."""
        return np.asarray(np.polynomial.polynomial.polyval(_u(x), self.coeffs[(order, fibre)]))

    def keys(self) -> list[tuple[int, int]]:
        """Return the (order, fibre) pairs, sorted."""
        return sorted(self.coeffs)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        """Iterate over the (order, fibre) pairs, sorted."""
        return iter(self.keys())

    def write(self, path: Path, header: fits.Header | None = None) -> None:
        """Write as a FITS table TRACE (ORDER, FIBRE, COEFFS, RMS)."""
        keys = self.keys()
        table = fits.BinTableHDU.from_columns(
            [
                fits.Column("ORDER", "J", array=[k[0] for k in keys]),
                fits.Column("FIBRE", "J", array=[k[1] for k in keys]),
                fits.Column(
                    "COEFFS", f"{TRACE_DEGREE + 1}D", array=np.array([self.coeffs[k] for k in keys])
                ),
                fits.Column("RMS", "D", unit="pixel", array=[self.rms.get(k, 0.0) for k in keys]),
            ],
            name="TRACE",
        )
        table.header["TRACEU"] = (
            "(x-2047.5)/2047.5",
            "polynomial variable, x full-detector column",
        )
        fits.HDUList([fits.PrimaryHDU(header=header), table]).writeto(path)

    @classmethod
    def read(cls, path: str | Path) -> TraceSet:
        """Read a file written by :meth:`write`."""
        try:
            with fits.open(path) as hdul:
                table = hdul["TRACE"].data
                return cls(
                    {
                        (int(o), int(f)): np.array(c, float)
                        for o, f, c in zip(
                            table["ORDER"], table["FIBRE"], table["COEFFS"], strict=True
                        )
                    },
                    {
                        (int(o), int(f)): float(r)
                        for o, f, r in zip(
                            table["ORDER"], table["FIBRE"], table["RMS"], strict=True
                        )
                    },
                )
        except (OSError, KeyError, ValueError) as exc:
            raise InputFileError(path, f"unreadable trace file ({exc})") from None


def initial_traces(hand: HandTrace, n_orders: int = 67) -> TraceSet:
    """Make starting traces from a hand trace: fibres 0 and 1 as listed, 2 extrapolated.

    Fibre 2 lies one fibre spacing beyond fibre 1 (the fibres are equally spaced on the slit).
    """
    centres = {fibre: hand.centres(fibre, n_orders) for fibre in (0, 1)}
    centres[2] = 2.0 * centres[1] - centres[0]
    u = _u(hand.x_nodes)
    coeffs = {}
    for fibre, table in centres.items():
        for order in range(n_orders):
            fit = np.polynomial.polynomial.polyfit(u, table[order], min(TRACE_DEGREE, u.size - 1))
            coeffs[(order, fibre)] = np.pad(fit, (0, TRACE_DEGREE + 1 - fit.size))
    return TraceSet(coeffs)


def _binned_columns(
    image: ProcessedImage,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Median of each bin of columns, its 1σ noise, and the bins' centre columns."""
    ny, nx = image.data.shape
    n_bins = nx // BIN_COLUMNS
    good = image.mask == 0
    data = np.where(good, image.data, np.nan)[:, : n_bins * BIN_COLUMNS]
    error = np.where(good, image.uncertainty, np.nan)[:, : n_bins * BIN_COLUMNS]
    binned = np.nanmedian(data.reshape(ny, n_bins, BIN_COLUMNS), axis=2)
    # The median of n values scatters √(π/2) more than their mean.
    noise = (
        1.2533 * np.nanmedian(error.reshape(ny, n_bins, BIN_COLUMNS), axis=2) / np.sqrt(BIN_COLUMNS)
    )
    x = image.x0 + np.arange(n_bins) * BIN_COLUMNS + (BIN_COLUMNS - 1) / 2.0
    return x, np.nan_to_num(binned, nan=0.0), np.nan_to_num(noise, nan=np.inf)


def _centroid(
    column: NDArray[np.float64], noise: NDArray[np.float64], guess: float
) -> tuple[float, float]:
    """Return the flux-weighted centre [row] near ``guess`` (iterated) and its signal-to-noise."""
    centre = guess
    rows = np.arange(column.size)
    snr = 0.0
    for _ in range(4):
        lo = int(np.floor(centre)) - HALF_WINDOW
        hi = int(np.floor(centre)) + HALF_WINDOW + 2
        if lo < 1 or hi > column.size - 1:
            return np.nan, 0.0
        window = column[lo:hi]
        background = min(float(column[lo - 1]), float(column[hi]))
        weight = np.clip(window - background, 0.0, None)
        # Fractional edge weights keep the centroid continuous as the window moves.
        frac = centre - np.floor(centre)
        edges = np.ones(window.size)
        edges[0] = 1.0 - frac
        edges[-1] = frac
        weight = weight * edges
        total = weight.sum()
        if total <= 0:
            return np.nan, 0.0
        snr = float(total / np.sqrt(np.sum(noise[lo:hi] ** 2)))
        centre = float((weight * rows[lo:hi]).sum() / total)
    return centre, snr


def measure_trace(
    x_bins: NDArray[np.float64],
    binned: NDArray[np.float64],
    noise: NDArray[np.float64],
    y0: int,
    guess: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Follow one lit trace across the column bins, starting in the middle.

    Returns the columns and measured centre rows [px, full detector] (NaN where not measured).
    """
    n = x_bins.size
    centres = np.full(n, np.nan)
    middle = n // 2
    start_offset = 0.0
    for direction in (1, -1):
        offset = start_offset
        for k in range(
            middle if direction == 1 else middle - 1, n if direction == 1 else -1, direction
        ):
            expected = guess[k] - y0 + offset
            value, snr = _centroid(binned[:, k], noise[:, k], expected)
            # Wide tolerance for the first bin (the starting trace), then follow smoothly.
            tolerance = 3.0 if k == middle else 0.75
            if np.isfinite(value) and snr >= MIN_SNR and abs(value - expected) < tolerance:
                centres[k] = value + y0
                offset = value - (guess[k] - y0)
                if k == middle:
                    start_offset = offset
    return x_bins, centres


def global_offset(image: ProcessedImage, traces: TraceSet, lit: Sequence[int]) -> float:
    """Row shift [px] that best aligns the starting traces with a flat (cross-correlation)."""
    x_bins, binned, _ = _binned_columns(image)
    profile = binned[:, x_bins.size // 2 - 4 : x_bins.size // 2 + 4].mean(axis=1)
    xc = x_bins[x_bins.size // 2 - 4 : x_bins.size // 2 + 4].mean()
    predicted = []
    for order, fibre in traces:
        if fibre in lit:
            predicted.append(float(traces.centre(order, fibre, np.array([xc]))[0]) - image.y0)
    predicted_arr = np.array(predicted)
    shifts = np.arange(-15.0, 15.01, 0.25)
    rows = np.arange(profile.size)
    scores = []
    for shift in shifts:
        model = np.zeros(profile.size)
        for y in predicted_arr + shift:
            model += gaussian_peak(rows, 1.0, y, 1.5)
        scores.append(float((model * profile).sum()))
    return float(shifts[int(np.argmax(scores))])


def refine_traces(
    start: TraceSet,
    flats: Sequence[tuple[ProcessedImage, str]],
    min_points: int = 20,
) -> TraceSet:
    """Measure every lit trace on master flats and fit quartics.

    Parameters
    ----------
    start : TraceSet
        Starting traces (from a hand trace or an earlier night).
    flats : sequence of (ProcessedImage, fibres_lit)
        Master flats and their lit fibres (``"110"``, ``"011"``).
    min_points : int
        Fewest good column bins for an order to be traced.

    Returns
    -------
    TraceSet
        Orders whose traces lie wholly on the read-out window, for each fibre lit in some flat.
    """
    measured: dict[tuple[int, int], list[tuple[NDArray[np.float64], NDArray[np.float64]]]] = {}
    for image, lit in flats:
        fibres = [f for f, c in enumerate(lit) if c == "1"]
        shift = global_offset(image, start, fibres)
        x_bins, binned, noise = _binned_columns(image)
        ny = image.data.shape[0]
        for order, fibre in start:
            if fibre not in fibres:
                continue
            guess = start.centre(order, fibre, x_bins) + shift
            if (
                guess.min() - image.y0 < HALF_WINDOW + 4
                or guess.max() - image.y0 > ny - HALF_WINDOW - 5
            ):
                continue
            xs, ys = measure_trace(x_bins, binned, noise, image.y0, guess)
            measured.setdefault((order, fibre), []).append((xs, ys))
    coeffs: dict[tuple[int, int], NDArray[np.float64]] = {}
    rms: dict[tuple[int, int], float] = {}
    for key, runs in measured.items():
        xs = runs[0][0]
        stacked = np.stack([r[1] for r in runs])
        counts = np.isfinite(stacked).sum(axis=0)
        ys = np.where(counts > 0, np.nansum(stacked, axis=0) / np.maximum(counts, 1), np.nan)
        good = np.isfinite(ys)
        if good.sum() < min_points:
            continue
        u = _u(xs)
        fit: NDArray[np.float64] = np.zeros(TRACE_DEGREE + 1)
        for _ in range(4):
            fit = np.asarray(
                np.polynomial.polynomial.polyfit(u[good], ys[good], TRACE_DEGREE), float
            )
            residual = ys - np.polynomial.polynomial.polyval(u, fit)
            sigma = robust_sigma(residual[good], center=0.0, ignore_nan=True)
            new_good = np.isfinite(ys) & (np.abs(residual) < max(4.0 * sigma, 0.02))
            if new_good.sum() == good.sum():
                break
            good = new_good
        coeffs[key] = fit
        rms[key] = float(np.sqrt(np.mean(residual[good] ** 2)))
    return TraceSet(coeffs, rms)
