"""A real Th-Ar lamp spectrum rendered onto NRES orders with a known λ(x).

The lamp is the KPNO coudé-feed Th-Ar atlas spectrum shipped in PyReduce's wheel (cut-outs in
``tests/data/echelle/thar_atlas_kpno.fits.gz``; how they were made, the byte repair and the
tie of its wavelength scale to Redman et al. 2014: ``tests/data/echelle/make_thar_atlas.py``).
Each order is rendered as an optimally extracted 1-D spectrum would be:

* λ(x) is the simulator's true NRES state (:func:`photonpipe.echelle.simulate.make_truth`, the
  grating equation of ``spectrographs.csv`` perturbed), so the truth is known at every column;
* the atlas (R ≈ 64 000–87 000) is blurred to the NRES line-spread function of the simulator
  (FWHM 3.9 px at the order centre, 4.4 px at the ends: R ≈ 53 000, varying along the order) by
  a Gaussian of the quadrature difference, and integrated over pixels;
* its counts per order are scaled so that its bright lines (the 99th percentile of the
  columns) match the simulator's Th-Ar arc of the same order and exposure (blaze and
  throughput included), with photon noise and the read noise of an optimal
  extraction (≈ 5.3 pixels across the fibre); columns whose detector peak would saturate are
  masked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from astropy.io import fits
from numpy.typing import NDArray
from scipy.interpolate import CubicSpline
from scipy.ndimage import gaussian_filter1d
from scipy.optimize import curve_fit

from photonpipe.echelle import instrument, simulate

ATLAS_PATH = Path(__file__).resolve().parents[1] / "data" / "echelle" / "thar_atlas_kpno.fits.gz"
#: Effective number of pixels across the fibre in an optimal extraction (2√π σ, σ = 1.5 px).
EFFECTIVE_PIXELS = 2.0 * math.sqrt(math.pi) * 1.5
#: Extracted column flux [e⁻] above which the brightest detector pixel saturates (16 bit, gain 1).
SATURATION_E = 65535.0 * math.sqrt(2.0 * math.pi) * 1.5


def air_to_vacuum(air: NDArray[np.float64]) -> NDArray[np.float64]:
    """Edlén (1966) air → vacuum wavelength [Å] (as the cut-outs' tie was made)."""
    vacuum = np.asarray(air, float).copy()
    for _ in range(5):
        s2 = (1.0e4 / vacuum) ** 2
        n = 1.0 + 8.34254e-5 + 2.406147e-2 / (130.0 - s2) + 1.5998e-4 / (38.9 - s2)
        vacuum = air * n
    return np.asarray(vacuum)


@dataclass(frozen=True)
class AtlasOrder:
    """One cut-out: vacuum wavelength [Å] tied to Redman et al. 2014, flux, atlas σ [Å].

    ``ties`` are the Redman wavelengths [Å] of the tie lines in the cut-out.
    """

    index: int
    wavelength: NDArray[np.float64]
    flux: NDArray[np.float64]
    sigma: NDArray[np.float64]
    ties: NDArray[np.float64]


@cache
def atlas_orders() -> dict[int, AtlasOrder]:
    """The atlas over each NRES order (index 0–66, the lsc nominal model's range ± 3 Å)."""
    with fits.open(ATLAS_PATH) as hdus:
        tie = hdus["TIE"].data
        tie_atlas = np.asarray(tie["ATLAS_VACUUM"], float)
        order = np.argsort(tie_atlas)
        tie_atlas = tie_atlas[order]
        tie_offset = np.asarray(tie["REDMAN_VACUUM"], float)[order] - tie_atlas
        tie_sigma = np.asarray(tie["ATLAS_SIGMA"], float)[order]
        # the atlas's resolution: running median of the tie lines' σ/λ over ±150 Å
        relative = tie_sigma / tie_atlas
        smooth = np.array([np.median(relative[np.abs(tie_atlas - w) < 150.0]) for w in tie_atlas])
        flux = np.asarray(hdus["FLUX"].data, float)
        header = hdus["FLUX"].header
        ties = np.sort(np.asarray(tie["REDMAN_VACUUM"], float))
    air = header["CRVAL1"] + header["CDELT1"] * np.arange(flux.size)
    vacuum = air_to_vacuum(air)
    wavelength = vacuum + np.interp(vacuum, tie_atlas, tie_offset)
    sigma = np.interp(vacuum, tie_atlas, smooth) * vacuum
    model = instrument.spectrograph("lsc")
    out = {}
    for index in range(model.n_orders):
        ends = model.nominal_wavelength(np.array([0.0, model.nx - 1.0]), model.order0 + index)
        sel = (wavelength > ends.min() - 3.0) & (wavelength < ends.max() + 3.0)
        inside = (ties > ends.min() - 3.0) & (ties < ends.max() + 3.0)
        out[index] = AtlasOrder(index, wavelength[sel], flux[sel], sigma[sel], ties[inside])
    return out


@dataclass
class RenderedOrder:
    """An extracted arc order: columns [px], flux [e⁻], variance [e⁻²], mask, true λ [Å]."""

    index: int
    x: NDArray[np.float64]
    flux: NDArray[np.float64]
    variance: NDArray[np.float64]
    mask: NDArray[np.uint8]
    true_wavelength: NDArray[np.float64]


def _blurred_counts(
    atlas_wave: NDArray[np.float64],
    atlas: AtlasOrder,
    wave_fine: NDArray[np.float64],
    fine: NDArray[np.float64],
    oversample: int,
) -> NDArray[np.float64]:
    """Atlas counts per column at the NRES line-spread function, integrated over pixels."""
    density = CubicSpline(atlas_wave, atlas.flux)(wave_fine)
    dispersion = np.gradient(wave_fine, fine)
    counts = density * dispersion  # per unit column
    target = simulate.lsf_fwhm(fine) / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    own = np.interp(wave_fine, atlas_wave, atlas.sigma) / dispersion
    kernel = np.sqrt(np.clip(target**2 - own**2, 0.05, None)) * oversample
    levels = np.linspace(kernel.min(), kernel.max() + 1e-9, 6)
    blurred = np.stack([gaussian_filter1d(counts, s, mode="nearest") for s in levels])
    position = np.interp(kernel, levels, np.arange(levels.size))
    low = np.clip(np.floor(position).astype(int), 0, levels.size - 2)
    weight = position - low
    rows = np.arange(fine.size)
    smooth = (1 - weight) * blurred[low, rows] + weight * blurred[low + 1, rows]
    return np.asarray(smooth.reshape(-1, oversample).mean(axis=1))


def _gaussian_centre(
    x: NDArray[np.float64], y: NDArray[np.float64], sigma: NDArray[np.float64], guess: float
) -> float:
    """Centre [px] of a Gaussian plus constant fitted to a noise-free line (NaN if no fit)."""

    def model(
        t: NDArray[np.float64], a: float, c: float, s: float, b: float
    ) -> NDArray[np.float64]:
        return np.asarray(a * np.exp(-0.5 * ((t - c) / s) ** 2) + b)

    try:
        p, _ = curve_fit(
            model, x, y, p0=(float(np.ptp(y)), guess, 1.7, float(y.min())), sigma=sigma
        )
    except RuntimeError:
        return math.nan
    return float(p[1]) if abs(p[1] - guess) < 1.0 else math.nan


def render_order(
    truth: simulate.Truth,
    index: int,
    fibre: int,
    rng: np.random.Generator,
    exptime: float = 120.0,
    oversample: int = 10,
) -> RenderedOrder:
    """Render the atlas onto one NRES order and fibre of ``truth`` (see the module notes).

    The tie lines of the cut-out are centred (Gaussian plus constant on ±5 columns about the
    peak, weighted by the noise, as an arc line is measured) on the noise-free rendered
    order and the atlas's wavelengths are corrected, piecewise linearly between them, until
    each lies at its Redman wavelength to < 0.1 m/s: the atlas's own instrumental profile is
    asymmetric, which moves its lines by ≈ +25 m/s between the atlas's resolution and NRES's.
    """
    atlas = atlas_orders()[index]
    x = truth.x0 + np.arange(truth.nx, dtype=float)
    fine = x[0] - 0.5 + (np.arange(truth.nx * oversample) + 0.5) / oversample
    wave_fine = simulate.true_wavelength(truth, fine, index, fibre)
    if wave_fine[0] < atlas.wavelength[0] or wave_fine[-1] > atlas.wavelength[-1]:
        raise ValueError(f"order {index} is not covered by its atlas cut-out")
    true_wave = simulate.true_wavelength(truth, x, index, fibre)
    dispersion = np.gradient(true_wave, x)
    ties = atlas.ties[(atlas.ties > true_wave[8]) & (atlas.ties < true_wave[-9])]
    guess = np.interp(ties, true_wave, x)
    atlas_wave = atlas.wavelength
    shape = simulate.blaze(true_wave, 52 + index, truth) * simulate.throughput(true_wave)
    expected = simulate.order_spectrum(truth, index, fibre, "thar", exptime)
    read_noise = instrument.camera("fl09").read_noise
    for _ in range(4):
        scaled = (
            np.clip(_blurred_counts(atlas_wave, atlas, wave_fine, fine, oversample), 0.0, None)
            * shape
        )
        # scale the bright lines (99th percentile of the columns) to the simulator's arc
        flux_model = scaled * (np.percentile(expected, 99) / np.percentile(scaled, 99))
        noise = np.sqrt(flux_model + EFFECTIVE_PIXELS * read_noise**2)
        centres = np.full(ties.size, np.nan)
        for k, g in enumerate(guess):
            near = round(g - x[0])
            peak = near - 2 + int(np.argmax(flux_model[near - 2 : near + 3]))
            window = slice(peak - 5, peak + 6)
            centres[k] = _gaussian_centre(x[window], flux_model[window], noise[window], g)
        good = np.isfinite(centres)
        error = (centres[good] - guess[good]) * np.interp(guess[good], x, dispersion)
        atlas_wave = atlas_wave - np.interp(atlas_wave, ties[good], error)
        if np.max(np.abs(error / ties[good])) * 299_792_458.0 < 0.1:
            break
    variance = flux_model + EFFECTIVE_PIXELS * read_noise**2
    flux = flux_model + rng.normal(0.0, np.sqrt(variance)) * float(
        __import__("os").environ.get("NOISE", "1")
    )
    mask = (flux_model > SATURATION_E).astype(np.uint8)
    return RenderedOrder(index, x, flux, variance, mask, true_wave)


def corpus_truth(seed: int = 5, site: str = "lsc") -> simulate.Truth:
    """A full-size NRES instrument state (the simulator's night-to-night perturbations)."""
    return simulate.make_truth(site, np.random.default_rng(seed), small=False, mjd=61100.0)


def velocity_error(solution_wave: NDArray[np.float64], true_wave: NDArray[np.float64]) -> float:
    """RMS of c (λ_solution − λ_true)/λ_true over the columns [m/s]."""
    error = (solution_wave - true_wave) / true_wave * 299_792_458.0
    return float(np.sqrt(np.mean(error**2)))
