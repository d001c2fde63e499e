"""Simulated NRES nights: raw fpacked frames in LCO's layout, with a truth file.

The physics lives here and nowhere else (the reduction has its own code for everything it
measures), so a test that compares the reduction with this truth does not share its bugs.

Model of one frame, in full-detector coordinates (x column, y row, 0-based):

* **Geometry.** Order index i is physical order m = 52 + i. Along the dispersion the grating
  equation m λ = d cos γ (sin α + sin β), β = α + atan((x − x_c − δx_f − δx(m)) p / f), with the
  site's groove spacing d, incidence α, focal length f and pixel size p from spectrographs.csv,
  perturbed by the "true" state of the night (α + dα, f + df, a fibre offset δx_f and a small
  order-dependent shift δx(m), standing in for the prism's distortion). Across the dispersion the
  order centres follow the site's hand trace (a cubic spline through its listed orders, a quartic
  in x through its five columns), fibre 2 one fibre spacing beyond fibre 1, the whole pattern
  shifted by dy (the night's flexure); the truth keeps each trace as a quartic in x.
* **Light.** Per order and fibre a 1-D spectrum f(x) [e⁻ per column]: tungsten lamp (a 3000 K
  black body), Th-Ar lines (Redman et al. 2014 vacuum wavelengths and brightnesses), or a star
  (black body at its Teff with synthetic absorption lines, Doppler-shifted by its catalogue RV);
  times a throughput curve and the blaze sinc²(m (λ − λ_b)/λ). Lines are Gaussians with the
  line-spread FWHM 3.9–4.4 px varying along the order (NRES: ≈ 4.15 px), integrated over pixels.
  The spatial profile is a pixel-integrated Gaussian of σ 1.4–1.6 px.
* **Detector.** Bias level with a fixed column pattern, a per-frame offset seen in the overscan,
  dark current with hot pixels, a dead column segment, cosmic rays, Poisson and read noise, gain,
  16-bit saturation.

* **Exposure meter.** A science frame carries an ``EXPOSURE_METER`` binary table (LCO's
  layout: MJD_START [MJD, UTC], EXP_TIME [s], FIB0COUNTS/FIB1COUNTS/FIB2COUNTS, EMFLAGS), one row
  per :data:`EXPMETER_SAMPLE_S` s sample, with Poisson counts at :data:`EXPMETER_RATE` (star
  fibre: times the sky's transparency; Th-Ar fibre: constant; unlit fibre: 0). The counts are
  drawn from their own random stream, so the detector frames do not depend on them. By default
  the transparency is 1. A transparency curve (``NightPlan.science_transparency``, e.g. a
  :class:`Cloud`) scales the star's counts by its mean over the exposure. Either way the star is
  shifted with the flux-weighted mean of the barycentric correction,
  Σ T(t) v_b(t) / Σ T(t) on a 1 s grid. One shift at the mean stands for the sum of spectra
  shifted by v_b(t): v_b changes by ≤ 0.03 m/s per second (Earth's rotation), so over 300–2000 s
  the spread is ≤ 20 m/s rms, which only broadens lines symmetrically; the line centroid moves
  by the mean shift, exact far below 1 mm/s. The truth records the flux-weighted mid-time
  (``midtime``, ISO UTC) and that correction.

* **Drift.** The spectrograph drifts along the dispersion during the night, as from a change of
  temperature or pressure: every fibre and order of a frame is shifted by the same δx(t) [px]
  (``Truth.drift_px``, added to the fibre and order offsets of the grating equation), growing
  linearly at ``NightPlan.drift_px_per_hour`` from the start of the night (the first frame's
  DATE-OBS), evaluated at the frame's mid-exposure time. At NRES 1 px ≈ 2.4 km/s, so 0.05 px per
  hour is ≈ 120 m/s per hour. Arcs, flats and science frames all see the drift of their time,
  so the TRIPLE made from the night's arcs holds the arcs' drift, and a science frame differs
  from it by δx(science) − δx(arcs): what the simultaneous Th-Ar fibre measures. The drift
  moves the spectrum only (wavelength ↔ column, blaze and lines alike), not the traces across
  the dispersion. The frame's whole exposure is rendered at its mid-exposure drift (the change
  during one exposure, ≤ 0.03 px at 0.05 px/hour and 2000 s, only broadens the lines
  symmetrically). The default rate is 0: nights are then the same, bit for bit, as without a
  drift model. The truth records each frame's drift (``drift_px`` in :attr:`Truth.frames`, table
  ``DRIFT`` of truth.fits and column DRIFT of its ``RV`` table); the noise-free star spectra
  (``SCI_`` tables) are those of the drifted frame, and :func:`frame_truth` returns the
  state of one frame, whose :func:`true_wavelength` is that frame's true wavelength scale.

``small=True`` reads out a 1024 × 1024 window of the detector (``DETSEC``) that holds about 15
orders: the same physics on fewer pixels, for fast tests.
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.coordinates import EarthLocation, SkyCoord
from astropy.io import fits
from astropy.time import Time
from numpy.typing import NDArray
from scipy.interpolate import CubicSpline
from scipy.special import erf

from photonpipe import __version__
from photonpipe.echelle import instrument
from photonpipe.platform.archive import atomic_output
from photonpipe.platform.progress import Progress
from photonpipe.spectra.barycentric import offline_earth_orientation

log = logging.getLogger("photonpipe.echelle.simulate")

#: Overscan columns appended to each row of a raw frame.
OVERSCAN_COLUMNS = 32
#: Window of the full detector read out in small mode: (x0, y0, size) [px].
SMALL_WINDOW = (1536, 1100, 1024)
SATURATION_ADU = 65535
BIAS_LEVEL_ADU = 800.0
DARK_CURRENT = 0.01  # e⁻/s/px
HOT_PIXEL_CURRENT = 3.0  # e⁻/s
COSMIC_RATE = 1.5 / 60.0  # hits per cm² per s
C_KMS = 299_792.458
#: Geodetic position of the NRES telescopes (longitude east [deg], latitude [deg], height [m]),
#: rounded from Las Cumbres Observatory's published site coordinates.
SITE_COORDINATES = {
    "lsc": (-70.8049, -30.1673, 2198.0),
    "elp": (-104.0152, 30.6801, 2027.0),
    "cpt": (20.8101, -32.3806, 1804.0),
}
#: Length [s] of one exposure-meter sample.
EXPMETER_SAMPLE_S = 5.0
#: Exposure-meter count rate [counts/s] of a fibre by its light (star: at full transparency).
EXPMETER_RATE = {"star": 1.0e6, "thar": 2.0e4}
#: Step [s] of the grid on which transparency and barycentric correction are averaged.
TRANSPARENCY_STEP_S = 1.0
#: Sky transparency (0–1) as a function of the time since the start of the exposure [s].
Transparency = Callable[[NDArray[np.float64]], NDArray[np.float64]]
SUFFIX = {"BIAS": "b00", "DARK": "d00", "LAMPFLAT": "w00", "DOUBLE": "a00", "TARGET": "e00"}


@dataclass(frozen=True)
class Cloud:
    """A cloud: transparency ``transmission`` from ``start`` to ``end`` [s], else 1.

    Times are seconds after the start of the exposure (DATE-OBS).
    """

    start: float
    end: float
    transmission: float

    def __call__(self, seconds: NDArray[np.float64]) -> NDArray[np.float64]:
        """Transparency (0–1) at times [s since the start of the exposure]."""
        inside = (seconds >= self.start) & (seconds < self.end)
        return np.where(inside, self.transmission, 1.0)


@dataclass
class NightPlan:
    """How many frames of each kind a simulated night holds, and their exposure times [s]."""

    biases: int = 5
    darks: int = 3
    flats_per_pair: int = 3
    arcs_per_pair: int = 2
    #: Science frames of the night's star, at its catalogue RV by default: a standard-star
    #: sequence from which ``echelle night`` builds the star's ZERO (each frame's RV measured
    #: against the ZERO of the other frames), so at least 2; 4 by default.
    science: int = 4
    dark_exptime: float = 300.0
    flat_exptime: float = 60.0
    arc_exptime: float = 120.0
    science_exptime: float = 900.0
    #: Barycentric radial velocities [km/s] of the science frames, one per frame (their number
    #: then replaces ``science``); default: the star's catalogue RV in every frame.
    science_rv_kms: Sequence[float] | None = None
    #: Exposure times [s] of the science frames, one per frame (default ``science_exptime``).
    science_exptimes: Sequence[float] | None = None
    #: Name of the star (targets.csv) observed; default: one drawn at random.
    target: str | None = None
    #: Sky transparency during each science frame, one per frame (None: clear, 1 throughout);
    #: default: clear in every frame.
    science_transparency: Sequence[Transparency | None] | None = None
    #: Drift of the spectrograph along the dispersion [px per hour], common to every fibre and
    #: order, from the start of the night (0: none, the nights of earlier versions bit for bit).
    drift_px_per_hour: float = 0.0


@dataclass
class Truth:
    """The true state of a simulated night (what the reduction should recover)."""

    site: str
    x0: int
    y0: int
    nx: int
    ny: int
    incidence_deg: float
    focal_length_mm: float
    fibre_dx: tuple[float, float, float]
    order_dx: tuple[float, float, float]
    dy: float
    trace_coeffs: NDArray[np.float64]  # (67, 3, 5): y(x) = Σ c_k u^k, u = (x − 2047.5)/2047.5
    gamma_deg: float = instrument.OFF_PLANE_ANGLE_DEG
    groove_spacing_um: float = 24.0442
    pixel_mm: float = 0.015
    detector_nx: int = 4096
    frames: list[dict[str, object]] = field(default_factory=list)
    #: Shift [px] along the dispersion of the frame being rendered, common to all fibres and
    #: orders (0 for the night's reference state; see :func:`frame_truth`).
    drift_px: float = 0.0


def frame_truth(truth: Truth, file: str) -> Truth:
    """Return the true state of the night during one frame (its drift applied).

    Parameters
    ----------
    truth : Truth
        The night's truth (``truth.frames`` lists every frame with its ``drift_px`` [px]).
    file : str
        Raw file name of the frame (as in ``truth.frames``).

    Raises
    ------
    KeyError
        The frame is not in the night.
    """
    for frame in truth.frames:
        if frame["file"] == file:
            return replace(truth, drift_px=float(frame.get("drift_px", 0.0)))  # type: ignore[arg-type]
    raise KeyError(f"{file} is not a frame of the simulated night")


def _physical_orders() -> NDArray[np.int64]:
    return 52 + np.arange(67)


def true_wavelength(
    truth: Truth, x: NDArray[np.float64], order_index: int, fibre: int
) -> NDArray[np.float64]:
    """Return the true vacuum wavelength [Å] at full-detector columns ``x`` (order, fibre).

    The state includes the frame's drift ``truth.drift_px`` [px] (see :func:`frame_truth`).
    """
    m = 52 + order_index
    u = (m - 85.0) / 33.0
    shift = (
        truth.fibre_dx[fibre]
        + truth.order_dx[0]
        + truth.order_dx[1] * u
        + truth.order_dx[2] * u * u
        + truth.drift_px  # last: adding 0.0 leaves the sum unchanged bit for bit
    )
    centre = (truth.detector_nx - 1) / 2.0
    beta_offset = np.arctan(
        (np.asarray(x, float) - centre - shift) * truth.pixel_mm / truth.focal_length_mm
    )
    alpha = math.radians(truth.incidence_deg)
    d = truth.groove_spacing_um * 1.0e4 * math.cos(math.radians(truth.gamma_deg))
    return np.asarray(d * (math.sin(alpha) + np.sin(alpha + beta_offset)) / m)


def true_trace(
    truth: Truth, x: NDArray[np.float64], order_index: int, fibre: int
) -> NDArray[np.float64]:
    """Return the true trace centre row [px, full detector] at columns ``x``."""
    u = (np.asarray(x, float) - 2047.5) / 2047.5
    return np.asarray(np.polynomial.polynomial.polyval(u, truth.trace_coeffs[order_index, fibre]))


def _trace_model(site: str, dy: float) -> NDArray[np.float64]:
    hand = instrument.hand_trace(site)
    all_orders = np.arange(67, dtype=float)
    centres = {}
    for fibre in (0, 1):
        rows = hand.y[fibre]
        centres[fibre] = np.stack(
            [
                CubicSpline(hand.orders.astype(float), rows[:, k])(all_orders)
                for k in range(hand.x_nodes.size)
            ],
            axis=1,
        )
    centres[2] = 2.0 * centres[1] - centres[0]
    u_nodes = (hand.x_nodes - 2047.5) / 2047.5
    coeffs = np.empty((67, 3, 5))
    for fibre in range(3):
        for order in range(67):
            coeffs[order, fibre] = np.polynomial.polynomial.polyfit(
                u_nodes, centres[fibre][order] + dy, 4
            )
    return coeffs


def make_truth(site: str, rng: np.random.Generator, small: bool, mjd: float) -> Truth:
    """Draw the true instrument state of a night around the site's nominal model."""
    model = instrument.spectrograph(site, mjd)
    x0, y0, size = SMALL_WINDOW if small else (0, 0, 4096)
    return Truth(
        site=site,
        x0=x0,
        y0=y0,
        nx=size,
        ny=size,
        incidence_deg=model.incidence_deg + float(rng.normal(0.0, 0.003)),
        focal_length_mm=model.focal_length_mm + float(rng.normal(0.0, 0.02)),
        fibre_dx=(-0.8, 0.0, 0.8),
        order_dx=(
            float(rng.normal(0.0, 1.0)),
            float(rng.normal(0.0, 0.5)),
            float(rng.normal(0.0, 0.5)),
        ),
        dy=float(rng.uniform(-2.0, 2.0)),
        trace_coeffs=_trace_model(site, float(rng.uniform(-2.0, 2.0))),
        groove_spacing_um=model.groove_spacing_um,
        pixel_mm=model.pixel_mm,
        detector_nx=model.nx,
    )


def lsf_fwhm(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """Line-spread FWHM [px] along the order (3.9 px at the centre, 4.4 px at the ends)."""
    return np.asarray(3.9 + 0.5 * ((np.asarray(x, float) - 2047.5) / 2047.5) ** 2)


def spatial_sigma(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """Gaussian σ [px] of the fibre image across the order."""
    return np.asarray(1.5 + 0.1 * (np.asarray(x, float) - 2047.5) / 2047.5)


def blaze(wavelength: NDArray[np.float64], m: int, truth: Truth) -> NDArray[np.float64]:
    """Echelle blaze: sinc²(m (λ − λ_b)/λ), λ_b the order's wavelength at β = α."""
    alpha = math.radians(truth.incidence_deg)
    d = truth.groove_spacing_um * 1.0e4 * math.cos(math.radians(truth.gamma_deg))
    centre = 2.0 * d * math.sin(alpha) / m
    return np.asarray(np.sinc(m * (wavelength - centre) / wavelength) ** 2)


def throughput(wavelength: NDArray[np.float64]) -> NDArray[np.float64]:
    """Relative throughput of telescope, fibres and CCD (smooth, peaking near 600 nm)."""
    return np.asarray(0.25 + 0.75 * np.exp(-(((wavelength - 6000.0) / 2200.0) ** 2)))


def planck(wavelength: NDArray[np.float64], temperature: float) -> NDArray[np.float64]:
    """Black body photon spectrum shape, normalised to 1 at 5500 Å."""
    c2 = 1.4387769e8  # hc/k [Å K]

    def shape(lam: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.asarray(lam**-4 / np.expm1(c2 / (lam * temperature)))

    return np.asarray(shape(wavelength) / shape(np.array(5500.0)))


def _line_sum(
    x: NDArray[np.float64],
    centres: NDArray[np.float64],
    fluxes: NDArray[np.float64],
    sigmas: NDArray[np.float64],
) -> NDArray[np.float64]:
    """Sum of pixel-integrated Gaussians [flux per pixel] at pixel centres ``x``."""
    out = np.zeros_like(x)
    if centres.size == 0:
        return out
    step = x[1] - x[0]
    for centre, flux, sigma in zip(centres, fluxes, sigmas, strict=True):
        lo = int(max(0, np.floor((centre - 8 * sigma - x[0]) / step)))
        hi = int(min(x.size, np.ceil((centre + 8 * sigma - x[0]) / step) + 1))
        if hi <= lo:
            continue
        edges = np.concatenate([x[lo:hi] - 0.5, [x[hi - 1] + 0.5]])
        cdf = 0.5 * (1.0 + erf((edges - centre) / (math.sqrt(2.0) * sigma)))
        out[lo:hi] += flux * np.diff(cdf)
    return out


@dataclass
class StarModel:
    """Synthetic absorption-line star: line centres [Å, rest, vacuum], depths, widths [Å]."""

    teff: float
    rv_kms: float
    centres: NDArray[np.float64]
    depths: NDArray[np.float64]
    widths: NDArray[np.float64]


def make_star(rng: np.random.Generator, teff: float, rv_kms: float) -> StarModel:
    """Draw ≈ 0.3 absorption lines per Å between 3700 and 8800 Å (depths 0.05–0.7)."""
    n = int(0.3 * (8800 - 3700))
    return StarModel(
        teff=teff,
        rv_kms=rv_kms,
        centres=np.sort(rng.uniform(3700.0, 8800.0, n)),
        depths=rng.uniform(0.05, 0.7, n),
        widths=rng.uniform(0.04, 0.12, n),
    )


def star_spectrum(
    star: StarModel, wavelength: NDArray[np.float64], lsf_sigma_angstrom: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Normalised stellar spectrum seen through the LSF at observed wavelengths [Å].

    Gaussian lines convolved with the Gaussian LSF stay Gaussian (widths add in quadrature,
    depth scales so the equivalent width is kept), which gives the observed profile exactly.
    """
    doppler = 1.0 + star.rv_kms / 299792.458
    centres = star.centres * doppler
    absorption = np.zeros_like(wavelength)
    window = (centres > wavelength.min() - 5) & (centres < wavelength.max() + 5)
    for centre, depth, width in zip(
        centres[window], star.depths[window], star.widths[window], strict=True
    ):
        sigma = np.sqrt(width**2 + lsf_sigma_angstrom**2)
        near = np.abs(wavelength - centre) < 8 * sigma
        # the simulator's own Gaussian, deliberately not spectra.profiles (which it tests)
        absorption[near] += (
            depth
            * width
            / sigma[near]
            * np.exp(-0.5 * ((wavelength[near] - centre) / sigma[near]) ** 2)
        )
    return np.asarray(np.clip(1.0 - absorption, 0.0, None))


def order_spectrum(
    truth: Truth,
    order_index: int,
    fibre: int,
    light: str,
    exptime: float,
    star: StarModel | None = None,
    attenuation: float = 1.0,
) -> NDArray[np.float64]:
    """Return the expected spectrum [e⁻ per column] of one order and fibre (read-out columns).

    ``attenuation`` scales a Th-Ar or star spectrum (a ND filter, the sky's mean transparency).
    """
    x = truth.x0 + np.arange(truth.nx, dtype=float)
    m = 52 + order_index
    wavelength = true_wavelength(truth, x, order_index, fibre)
    shape = blaze(wavelength, m, truth) * throughput(wavelength)
    if light == "tung":
        return np.asarray(
            exptime * 1500.0 * planck(wavelength, 3000.0) / planck(np.array(7000.0), 3000.0) * shape
        )
    if light == "thar":
        lines, brightness = instrument.thar_lines()
        pixel = np.interp(lines, wavelength, x, left=np.nan, right=np.nan)
        keep = np.isfinite(pixel)
        fwhm = lsf_fwhm(pixel[keep])
        # Blaze and throughput scale each (infinitely narrow) line before the camera blurs it,
        # so they set the line's flux and do not skew its profile.
        efficiency = np.interp(pixel[keep], x, shape)
        fluxes = brightness[keep] * 0.2 * exptime * attenuation * efficiency
        return np.asarray(_line_sum(x, pixel[keep], fluxes, fwhm / 2.3548))
    if light == "star" and star is not None:
        dispersion = np.gradient(wavelength, x)
        sigma_angstrom = lsf_fwhm(x) / 2.3548 * dispersion
        continuum = exptime * 40.0 * attenuation * planck(wavelength, star.teff) * shape
        return np.asarray(continuum * star_spectrum(star, wavelength, sigma_angstrom))
    raise ValueError(f"unknown light source {light!r}")


def _orders_in_window(truth: Truth) -> list[int]:
    x = truth.x0 + np.arange(truth.nx, dtype=float)
    inside = []
    for order in range(67):
        ys = np.concatenate([true_trace(truth, x, order, fibre) for fibre in range(3)])
        if ys.min() - 10 >= truth.y0 and ys.max() + 10 <= truth.y0 + truth.ny - 1:
            inside.append(order)
    return inside


def render(
    truth: Truth,
    lights: Sequence[str],
    exptime: float,
    star: StarModel | None,
    transparency: float = 1.0,
) -> tuple[NDArray[np.float64], dict[tuple[int, int], NDArray[np.float64]]]:
    """Noise-free image [e⁻] of the lit fibres and the 1-D spectra that went into it.

    ``transparency`` is the sky's mean transparency over the exposure (scales the star).
    """
    image = np.zeros((truth.ny, truth.nx))
    x = truth.x0 + np.arange(truth.nx, dtype=float)
    sigma = spatial_sigma(x)
    columns = np.arange(truth.nx)
    spectra: dict[tuple[int, int], NDArray[np.float64]] = {}
    half = 9
    for order in range(67):
        for fibre, light in enumerate(lights):
            if light == "none":
                continue
            yc = true_trace(truth, x, order, fibre) - truth.y0
            if yc.max() < -half or yc.min() > truth.ny + half:
                continue
            # the calibration fibre of a science frame sees the lamp through a ND filter
            attenuation = 0.05 if (light == "thar" and "star" in lights) else 1.0
            if light == "star":
                attenuation = transparency
            flux = order_spectrum(truth, order, fibre, light, exptime, star, attenuation)
            spectra[(order, fibre)] = flux
            start = np.floor(yc).astype(int) - half
            rows = start[None, :] + np.arange(2 * half + 2)[:, None]
            lower = (rows - 0.5 - yc[None, :]) / (math.sqrt(2.0) * sigma[None, :])
            upper = (rows + 0.5 - yc[None, :]) / (math.sqrt(2.0) * sigma[None, :])
            weight = 0.5 * (erf(upper) - erf(lower)) * flux[None, :]
            ok = (rows >= 0) & (rows < truth.ny)
            image[rows[ok], np.broadcast_to(columns, rows.shape)[ok]] += weight[ok]
    return image, spectra


@dataclass
class Detector:
    """Fixed detector defects and bias structure of one camera (the same all night)."""

    column_pattern: NDArray[np.float64]
    hot: tuple[NDArray[np.intp], NDArray[np.intp]]
    dead: tuple[int, int, int]  # column, first row, last row (window coordinates)


def make_detector(rng: np.random.Generator, nx: int, ny: int) -> Detector:
    """Draw a column bias pattern (±3 ADU), 0.01 % hot pixels and one dead column segment."""
    n_hot = max(5, nx * ny // 10000)
    hot = (rng.integers(0, ny, n_hot), rng.integers(0, nx, n_hot))
    column = int(rng.integers(nx // 8, 7 * nx // 8))
    first = int(rng.integers(0, ny // 2))
    return Detector(rng.normal(0.0, 3.0, nx), hot, (column, first, first + ny // 5))


def expose(
    rng: np.random.Generator,
    truth: Truth,
    detector: Detector,
    signal: NDArray[np.float64],
    exptime: float,
    gain: float,
    read_noise: float,
    cosmics: bool,
) -> tuple[NDArray[np.int32], int]:
    """Raw ADU image with overscan: signal + dark + cosmics, Poisson, read noise, bias.

    Returns
    -------
    raw : ndarray of int32, shape (ny, nx + OVERSCAN_COLUMNS)
    n_cosmics : int
    """
    electrons = signal.copy()
    electrons += DARK_CURRENT * exptime
    electrons[detector.hot] += HOT_PIXEL_CURRENT * exptime
    column, first, last = detector.dead
    electrons[first:last, column] = 0.0
    n_cosmics = 0
    if cosmics and exptime > 0:
        area_cm2 = truth.nx * truth.ny * (truth.pixel_mm / 10.0) ** 2
        n_cosmics = int(rng.poisson(COSMIC_RATE * area_cm2 * exptime))
        ys = rng.integers(1, truth.ny - 3, n_cosmics)
        xs = rng.integers(1, truth.nx - 3, n_cosmics)
        energy = rng.uniform(2000.0, 20000.0, n_cosmics)
        length = rng.integers(1, 4, n_cosmics)
        horizontal = rng.random(n_cosmics) < 0.5
        for y, x, e, n, h in zip(ys, xs, energy, length, horizontal, strict=True):
            for k in range(int(n)):
                electrons[y + (0 if h else k), x + (k if h else 0)] += e / n
    detected = rng.poisson(np.clip(electrons, 0.0, None)).astype(float)
    detected += rng.normal(0.0, read_noise, detected.shape)
    offset = float(rng.normal(0.0, 5.0))
    data = detected / gain + BIAS_LEVEL_ADU + offset + detector.column_pattern[None, :]
    overscan = (
        BIAS_LEVEL_ADU + offset + rng.normal(0.0, read_noise / gain, (truth.ny, OVERSCAN_COLUMNS))
    )
    raw = np.concatenate([data, overscan], axis=1)
    return np.clip(np.rint(raw), 0, SATURATION_ADU).astype(np.int32), n_cosmics


def raw_header(
    site: instrument.Site,
    truth: Truth,
    obstype: str,
    objects: str,
    start: datetime,
    exptime: float,
    day_obs: str,
    name: str,
    gain: float,
    read_noise: float,
    ra: float | None,
    dec: float | None,
) -> fits.Header:
    """Build a raw NRES header with the keywords of a real frame (raw_header_example.txt)."""
    header = fits.Header()
    nx, ny = truth.nx, truth.ny
    cards: list[tuple[str, object, str]] = [
        ("ORIGIN", "LCOGT", "Organization responsible for the data"),
        ("SITEID", site.site, "ID code of the Observatory site"),
        (
            "SITE",
            {
                "lsc": "LCOGT node at Cerro Tololo",
                "elp": "LCOGT node at McDonald Observatory",
                "cpt": "LCOGT node at SAAO",
            }[site.site],
            "Site",
        ),
        ("TELID", "igla", "ID code of telescope"),
        ("TELESCOP", f"{site.instrument}", "Telescope/spectrograph"),
        ("OBSTYPE", obstype, "Type of observation"),
        ("OBJECTS", objects, "Light in fibres 0&1&2"),
        ("FRAMENUM", int(name.split("-")[3]), "Running frame number"),
        ("ORIGNAME", name.replace(".fits.fz", ""), "Filename at acquisition"),
        ("TIMESYS", "UTC", "Time system"),
        ("DATE", datetime.utcnow().strftime("%Y-%m-%d"), "File creation date"),
        ("DATE-OBS", start.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3], "Start of exposure (UTC)"),
        ("DAY-OBS", day_obs, "Observing night (YYYYMMDD)"),
        ("UTSTART", start.strftime("%H:%M:%S.%f")[:-3], "Exposure start time (UTC)"),
        (
            "UTSTOP",
            (start + timedelta(seconds=exptime)).strftime("%H:%M:%S.%f")[:-3],
            "Exposure stop time (UTC)",
        ),
        ("MJD-OBS", float(Time(start, scale="utc").mjd), "Start of exposure [MJD]"),
        ("EXPTIME", float(exptime), "[s] Exposure length"),
        ("INSTRUME", site.camera, "Camera of the spectrograph"),
        ("DETECTOR", "Fairchild CCD486 BI", "Detector type"),
        ("GAIN", float(gain), "[e-/ADU] Pixel gain"),
        ("RDNOISE", float(read_noise), "[e-/pixel] Read noise"),
        ("DARKCURR", 0.0, "[e-/pixel/s] Dark current"),
        ("SATURATE", float(SATURATION_ADU), "[ADU] Saturation level used"),
        ("MAXLIN", float(SATURATION_ADU), "[ADU] Non-linearity level"),
        ("DETSIZE", "[1:4096,1:4096]", "[pixel] Detector size"),
        ("CCDSUM", "1 1", "CCD on-chip summing/binning"),
        (
            "BIASSEC",
            f"[{nx + 1}:{nx + OVERSCAN_COLUMNS},1:{ny}]",
            "[binned pixel] Overscan section",
        ),
        ("DATASEC", f"[1:{nx},1:{ny}]", "[binned pixel] Data section"),
        ("TRIMSEC", f"[1:{nx},1:{ny}]", "[binned pixel] Section of useful data"),
        (
            "DETSEC",
            f"[{truth.x0 + 1}:{truth.x0 + nx},{truth.y0 + 1}:{truth.y0 + ny}]",
            "[pixel] Section of detector read out",
        ),
        ("RLEVEL", 0, "Reduction level"),
        ("RADESYS", "ICRS", "Equatorial coordinate system"),
    ]
    for key, value, comment in cards:
        header[key] = (value, comment)
    if ra is not None and dec is not None:
        header["RA"] = (_sexagesimal(ra / 15.0), "[HH:MM:SS.sss] RA")
        header["DEC"] = (_sexagesimal(dec), "[sDD:MM:SS.ss] Dec")
        lon, lat, height = SITE_COORDINATES[site.site]
        header["LONG1"] = (lon, "[deg] Telescope 1 E. longitude (WGS84)")
        header["LAT1"] = (lat, "[deg] Telescope 1 latitude (WGS84)")
        header["HT1"] = (height, "[m] Telescope 1 elevation (WGS84)")
    else:
        header["RA"] = ("N/A", "[HH:MM:SS.sss] RA")
        header["DEC"] = ("N/A", "[sDD:MM:SS.ss] Dec")
    return header


def target_position(target: instrument.Target, when: datetime) -> tuple[float, float]:
    """Position [deg] of a catalogue star (J2000.0) moved by its proper motion to ``when``."""
    # A flat-sky step, deliberately independent of the pipeline's proper-motion code
    years = Time(when, scale="utc").jyear - 2000.0
    dec = target.dec_deg + target.pmde_mas_yr * years / 3.6e6
    ra = target.ra_deg + target.pmra_mas_yr * years / 3.6e6 / math.cos(math.radians(dec))
    return ra % 360.0, dec


def barycentric_correction(site: str, ra: float, dec: float, when: datetime) -> float:
    """Barycentric correction [km/s] (astropy) for a star seen from a site at ``when`` (UTC)."""
    lon, lat, height = SITE_COORDINATES[site]
    location = EarthLocation.from_geodetic(lon * u.deg, lat * u.deg, height * u.m)
    coord = SkyCoord(ra * u.deg, dec * u.deg, frame="icrs")
    with offline_earth_orientation():
        correction = coord.radial_velocity_correction(
            kind="barycentric", obstime=Time(when, scale="utc"), location=location
        )
    return float(correction.to_value(u.km / u.s))


def barycentric_corrections(site: str, ra: float, dec: float, times: Time) -> NDArray[np.float64]:
    """Barycentric corrections [km/s] (astropy) for a star seen from a site at several times."""
    lon, lat, height = SITE_COORDINATES[site]
    location = EarthLocation.from_geodetic(lon * u.deg, lat * u.deg, height * u.m)
    coord = SkyCoord(ra * u.deg, dec * u.deg, frame="icrs")
    with offline_earth_orientation():
        correction = coord.radial_velocity_correction(
            kind="barycentric", obstime=times, location=location
        )
    return np.asarray(correction.to_value(u.km / u.s), dtype=float)


@dataclass
class ExposureHistory:
    """How the starlight arrived during a science exposure.

    ``mean_transparency`` scales the star's counts; ``barycorr`` [km/s] is the flux-weighted
    mean barycentric correction; ``midtime`` the flux-weighted mid-time (UTC); ``samples`` the
    sky's mean transparency in each exposure-meter sample (``sample_starts`` [s], ``sample_
    lengths`` [s] after DATE-OBS).
    """

    mean_transparency: float
    barycorr: float
    midtime: datetime
    sample_starts: NDArray[np.float64]
    sample_lengths: NDArray[np.float64]
    samples: NDArray[np.float64]


def _grid(exptime: float, step: float) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Return starts and lengths [s] of steps tiling [0, exptime] (the last one may be short)."""
    starts = np.arange(0.0, exptime, step)
    lengths = np.minimum(step, exptime - starts)
    return starts, lengths


def _clear(seconds: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.ones_like(np.asarray(seconds, dtype=float))


def exposure_history(
    site: str,
    ra: float,
    dec: float,
    start: datetime,
    exptime: float,
    transparency: Transparency | None,
) -> ExposureHistory:
    """Transparency and barycentric correction of a science exposure, flux-weighted.

    Clear sky (``transparency`` None) is a constant transparency of 1: the correction is still
    the mean over the exposure, which differs from the one at the geometric mid-point by the
    curvature of the correction in time (up to a few cm/s in 2000 s).
    """
    sample_starts, sample_lengths = _grid(exptime, EXPMETER_SAMPLE_S)
    if transparency is None:
        transparency = _clear
    fine_starts, fine_lengths = _grid(exptime, TRANSPARENCY_STEP_S)
    centres = fine_starts + 0.5 * fine_lengths
    weights = np.clip(np.asarray(transparency(centres), dtype=float), 0.0, 1.0) * fine_lengths
    if not weights.sum() > 0:
        raise ValueError("the transparency is zero throughout the exposure")
    times = Time(start, scale="utc") + centres * u.s
    corrections = barycentric_corrections(site, ra, dec, times)
    offset = float(np.sum(weights * centres) / weights.sum())
    # mean transparency in each exposure-meter sample, from the fine grid
    sample_of = np.minimum((centres // EXPMETER_SAMPLE_S).astype(int), sample_starts.size - 1)
    light = np.bincount(sample_of, weights=weights, minlength=sample_starts.size)
    return ExposureHistory(
        float(weights.sum() / exptime),
        float(np.sum(weights * corrections) / weights.sum()),
        start + timedelta(seconds=offset),
        sample_starts,
        sample_lengths,
        light / sample_lengths,
    )


def exposure_meter_hdu(
    rng: np.random.Generator, lights: Sequence[str], start: datetime, history: ExposureHistory
) -> fits.BinTableHDU:
    """Build the ``EXPOSURE_METER`` table of a science frame: Poisson counts per sample, fibre."""
    counts = []
    for light in lights:
        rate = EXPMETER_RATE.get(light, 0.0)
        seen = history.samples if light == "star" else np.ones(history.samples.size)
        counts.append(rng.poisson(rate * seen * history.sample_lengths).astype(np.int64))
    mjd0 = float(Time(start, scale="utc").mjd)
    return fits.BinTableHDU.from_columns(
        [
            fits.Column("MJD_START", "D", unit="d", array=mjd0 + history.sample_starts / 86400.0),
            fits.Column("EXP_TIME", "D", unit="s", array=history.sample_lengths),
            *(
                fits.Column(f"FIB{f}COUNTS", "K", unit="count", array=c)
                for f, c in enumerate(counts)
            ),
            fits.Column("EMFLAGS", "J", array=np.zeros(history.samples.size, dtype=np.int32)),
        ],
        name="EXPOSURE_METER",
    )


def _sexagesimal(value: float) -> str:
    sign = "-" if value < 0 else ""
    value = abs(value)
    degrees = int(value)
    minutes = int((value - degrees) * 60)
    seconds = (value - degrees - minutes / 60) * 3600
    return f"{sign}{degrees:02d}:{minutes:02d}:{seconds:06.3f}"


def write_raw(
    path: Path,
    raw: NDArray[np.int32],
    header: fits.Header,
    exposure_meter: fits.BinTableHDU | None = None,
) -> None:
    """Write an fpacked raw frame atomically.

    Empty primary, RICE-compressed image ``SCI``, and (science frames) the ``EXPOSURE_METER``
    table.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    hdu = fits.CompImageHDU(raw, header=header, compression_type="RICE_1", name="SCI")
    extra = [] if exposure_meter is None else [exposure_meter]
    with atomic_output(path) as temp:
        fits.HDUList([fits.PrimaryHDU(), hdu, *extra]).writeto(temp)


@dataclass
class SimulatedNight:
    """Paths of a simulated night: raw directory, frame files in observing order, truth file.

    ``targets_path`` is the instrument's ``reduced/csv/targets.csv`` in which the simulator
    registered the star it observed, ``target`` (see :func:`register_targets`).
    """

    raw_dir: Path
    frames: list[Path]
    truth_path: Path
    truth: Truth
    targets_path: Path | None = None
    target: str = ""  # name of the star observed (targets.csv)


def register_targets(
    out: str | Path, site: str, instrument_name: str, rows: Sequence[dict[str, str]]
) -> Path:
    """Add stars to the instrument's targets file ``{out}/{site}/{nresNN}/reduced/csv/targets.csv``.

    nres-pipe keeps its targets registry in ``reduced/csv/targets.csv``; ``echelle night`` adds
    the stars listed there that the database registry does not know yet. The file is in
    targets.csv format (RA/Dec in degrees); rows of the same name are replaced, other rows
    kept. Written atomically.

    Parameters
    ----------
    out : path-like
        Root of the data tree.
    site, instrument_name : str
        Site code and instrument (``lsc``, ``nres01``).
    rows : sequence of dict
        targets.csv rows (column → text), e.g. from :func:`~photonpipe.echelle.instrument.
        targets_csv_rows`.

    Returns
    -------
    pathlib.Path
        The targets file.
    """
    path = Path(out) / site / instrument_name / "reduced" / "csv" / "targets.csv"
    columns = list(rows[0]) if rows else []
    kept: list[dict[str, str]] = []
    if path.is_file():
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            columns = list(reader.fieldnames or columns)
            kept = list(reader)
    names = {row["Name"] for row in rows}
    merged = [row for row in kept if row.get("Name") not in names] + list(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as temp, temp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(merged)
    return path


def simulate_night(
    out: str | Path,
    site: str = "lsc",
    night: str = "2026-03-01",
    small: bool = False,
    seed: int = 1,
    plan: NightPlan | None = None,
    progress: bool | None = None,
) -> SimulatedNight:
    """Write a night of raw NRES frames under ``{out}/{site}/nresNN/{YYYYMMDD}/raw/`` and a truth.

    The star observed is registered in ``{out}/{site}/nresNN/reduced/csv/targets.csv``
    (:func:`register_targets`), where ``echelle night`` finds it.

    Parameters
    ----------
    out : path-like
        Root of the data tree.
    site : str
        Site code (lsc, elp, cpt).
    night : str
        Observing night ``YYYY-MM-DD`` (DAY-OBS).
    small : bool
        Read out a 1024 × 1024 window (about 15 orders) instead of 4096 × 4096.
    seed : int
        Random seed: the same seed gives the same files.
    plan : NightPlan, optional
        Numbers of frames, exposure times, injected RVs, the sky's transparency and the
        spectrograph's drift [px/hour].
    progress : bool, optional
        A progress bar of the frames written (default: on a terminal; otherwise one summary
        line in the log, see :mod:`photonpipe.platform.progress`).

    Returns
    -------
    SimulatedNight
    """
    plan = plan or NightPlan()
    info = instrument.site_info(site)
    cam = instrument.camera(info.camera)
    day = date.fromisoformat(night)
    day_obs = day.strftime("%Y%m%d")
    rng = np.random.default_rng(seed)
    start = datetime(day.year, day.month, day.day, 20, 0, 0)
    truth = make_truth(site, rng, small, float(Time(start, scale="utc").mjd))
    detector = make_detector(rng, truth.nx, truth.ny)
    drawn = int(rng.integers(0, 40))
    stars = instrument.targets()
    if plan.target is None:
        target = stars[drawn]
    else:
        named = [t for t in stars if t.name == plan.target]
        if not named:
            raise ValueError(f"target {plan.target!r} is not in targets.csv with an RV and Teff")
        target = named[0]
    target_row = instrument.targets_csv_rows()[stars.index(target)]
    star = make_star(rng, target.teff, target.rv_kms)
    science_rvs = (
        list(plan.science_rv_kms)
        if plan.science_rv_kms is not None
        else [target.rv_kms] * plan.science
    )
    raw_dir = Path(out) / site / info.instrument / day_obs / "raw"
    schedule: list[tuple[str, str, float]] = []
    schedule += [("BIAS", "none&none&none", 0.0)] * plan.biases
    schedule += [("DARK", "none&none&none", plan.dark_exptime)] * plan.darks
    schedule += [("LAMPFLAT", "tung&tung&none", plan.flat_exptime)] * plan.flats_per_pair
    schedule += [("LAMPFLAT", "none&tung&tung", plan.flat_exptime)] * plan.flats_per_pair
    schedule += [("DOUBLE", "thar&thar&none", plan.arc_exptime)] * plan.arcs_per_pair
    schedule += [("DOUBLE", "none&thar&thar", plan.arc_exptime)] * plan.arcs_per_pair
    exptimes = (
        list(plan.science_exptimes)
        if plan.science_exptimes is not None
        else [plan.science_exptime] * len(science_rvs)
    )
    if len(exptimes) != len(science_rvs):
        raise ValueError("science_exptimes and science_rv_kms must have the same length")
    transparencies: list[Transparency | None] = (
        list(plan.science_transparency)
        if plan.science_transparency is not None
        else [None] * len(science_rvs)
    )
    if len(transparencies) != len(science_rvs):
        raise ValueError("science_transparency needs one entry per science frame")
    schedule += [("TARGET", f"{target.name}&thar&none", t) for t in exptimes]
    frames: list[Path] = []
    cache: dict[
        tuple[str, float, float, float, float],
        tuple[NDArray[np.float64], dict[tuple[int, int], NDArray[np.float64]]],
    ] = {}
    when = start
    science_truth: dict[str, dict[str, list[float]]] = {}
    with Progress(len(schedule), "simulate nres", "frame", enabled=progress, logger=log) as bar:
        for number, (obstype, objects, exptime) in enumerate(schedule, start=1):
            if obstype == "TARGET" and when < start + timedelta(hours=5):
                when = start + timedelta(hours=5)  # science after dark (01:00 UTC)
            lights = [
                ("star" if part not in ("none", "tung", "thar") else part)
                for part in objects.split("&")
            ]
            frame_star: StarModel | None = None
            truth_rv: dict[str, object] = {}
            ra = dec = None
            meter: fits.BinTableHDU | None = None
            mean_transparency = 1.0
            if "star" in lights:
                rv = science_rvs.pop(0)
                ra, dec = target_position(target, when)
                history = exposure_history(site, ra, dec, when, exptime, transparencies.pop(0))
                barycorr = history.barycorr
                mean_transparency = history.mean_transparency
                # topocentric c·z: (1 + z_obs) = (1 + z_rv) / (1 + z_bary)
                observed = C_KMS * ((1.0 + rv / C_KMS) / (1.0 + barycorr / C_KMS) - 1.0)
                frame_star = replace(star, rv_kms=observed)
                midtime = Time(history.midtime, scale="utc")
                midtime.precision = 6
                truth_rv = {
                    "rv": rv,
                    "barycorr": barycorr,
                    "observed_rv": observed,
                    "midtime": midtime.isot,
                    "transparency": mean_transparency,
                }
                # its own random stream: the detector frames stay those of a night without a meter
                meter = exposure_meter_hdu(
                    np.random.default_rng([seed, number]), lights, when, history
                )
            # the spectrograph's drift at mid-exposure, the same for every fibre and order
            mid_seconds = (when - start).total_seconds() + exptime / 2.0
            drift = plan.drift_px_per_hour * mid_seconds / 3600.0
            key = (
                objects,
                exptime,
                frame_star.rv_kms if frame_star else 0.0,
                mean_transparency,
                drift,
            )
            if key not in cache:
                cache[key] = render(
                    replace(truth, drift_px=drift), lights, exptime, frame_star, mean_transparency
                )
            signal, spectra = cache[key]
            raw, n_cosmics = expose(
                rng,
                truth,
                detector,
                signal,
                exptime,
                cam.gain,
                cam.read_noise,
                cosmics=obstype != "BIAS",
            )
            stem = f"{site}nrs{info.nres:02d}-{info.camera}-{day_obs}-{number:04d}"
            name = f"{stem}-{SUFFIX[obstype]}.fits.fz"
            header = raw_header(
                info,
                truth,
                obstype,
                objects,
                when,
                exptime,
                day_obs,
                name,
                cam.gain,
                cam.read_noise,
                ra,
                dec,
            )
            write_raw(raw_dir / name, raw, header, meter)
            frames.append(raw_dir / name)
            truth.frames.append(
                {
                    "file": name,
                    "obstype": obstype,
                    "objects": objects,
                    "cosmics": n_cosmics,
                    "drift_px": drift,
                    **truth_rv,
                }
            )
            if obstype == "TARGET":
                science_truth[name] = {
                    f"{o}_{f}": flux.tolist() for (o, f), flux in spectra.items() if f == 0
                }
            when += timedelta(seconds=exptime + 60.0)
            bar.update(1, status=f"{obstype} {name}")
        truth_path = Path(out) / site / info.instrument / day_obs / "truth.fits"
        write_truth(
            truth_path, truth, star, target, detector, science_truth, plan.drift_px_per_hour
        )
        targets_path = register_targets(out, site, info.instrument, [target_row])
    return SimulatedNight(raw_dir, frames, truth_path, truth, targets_path, target.name)


def write_truth(
    path: Path,
    truth: Truth,
    star: StarModel,
    target: instrument.Target,
    detector: Detector,
    science: dict[str, dict[str, list[float]]],
    drift_px_per_hour: float = 0.0,
) -> None:
    """Write the truth file: header, TRACE, WAVELENGTH, SCI_*, DEFECTS, DRIFT and RV tables.

    WAVELENGTH is the night's reference state (no drift); a frame's true wavelengths are those of
    :func:`frame_truth`. DRIFT: per frame FILE, OBSTYPE and DRIFT [px], the shift along the
    dispersion of every fibre and order at mid-exposure. RV: per science frame FILE, RV [km/s],
    BARYCORR [km/s] (flux-weighted mean), MIDTIME (flux-weighted mid-time, MJD UTC) and DRIFT
    [px].
    """
    inside = _orders_in_window(truth)
    x = truth.x0 + np.arange(truth.nx, dtype=float)
    primary = fits.PrimaryHDU()
    h = primary.header
    h["SITE"] = truth.site
    h["X0"], h["Y0"], h["NX"], h["NY"] = truth.x0, truth.y0, truth.nx, truth.ny
    h["ALPHA"] = (truth.incidence_deg, "[deg] true incidence angle")
    h["FOCAL"] = (truth.focal_length_mm, "[mm] true focal length")
    h["GAMMA"] = (truth.gamma_deg, "[deg] off-plane angle")
    h["TARGET"] = target.name
    h["RV"] = (star.rv_kms, "[km/s] Doppler shift applied to the star")
    h["TEFF"] = (star.teff, "[K]")
    h["ORDERS"] = ",".join(str(o) for o in inside)  # order indices wholly read out
    h["DRIFTRAT"] = (drift_px_per_hour, "[px/h] drift along the dispersion")
    h["SOFTWARE"] = f"photonpipe {__version__}"
    h["TRACEU"] = ("(x-2047.5)/2047.5", "trace polynomial variable")
    trace_rows = [(o, f, truth.trace_coeffs[o, f]) for o in range(67) for f in range(3)]
    traces = fits.BinTableHDU.from_columns(
        [
            fits.Column("ORDER", "J", array=[r[0] for r in trace_rows]),
            fits.Column("FIBRE", "J", array=[r[1] for r in trace_rows]),
            fits.Column("COEFFS", "5D", array=np.array([r[2] for r in trace_rows])),
        ],
        name="TRACE",
    )
    wave_rows = [(o, f, true_wavelength(truth, x, o, f)) for o in inside for f in range(3)]
    waves = fits.BinTableHDU.from_columns(
        [
            fits.Column("ORDER", "J", array=[r[0] for r in wave_rows]),
            fits.Column("FIBRE", "J", array=[r[1] for r in wave_rows]),
            fits.Column(
                "WAVELENGTH",
                f"{truth.nx}D",
                unit="Angstrom",
                array=np.array([r[2] for r in wave_rows]),
            ),
        ],
        name="WAVELENGTH",
    )
    hdus: list[fits.hdu.base.ExtensionHDU] = [traces, waves]
    for name, spectra in science.items():
        keys = sorted(spectra, key=lambda k: tuple(int(v) for v in k.split("_")))
        hdus.append(
            fits.BinTableHDU.from_columns(
                [
                    fits.Column("ORDER", "J", array=[int(k.split("_")[0]) for k in keys]),
                    fits.Column("FIBRE", "J", array=[int(k.split("_")[1]) for k in keys]),
                    fits.Column(
                        "FLUX",
                        f"{truth.nx}D",
                        unit="ct",  # photo-electrons (FITS has no electron unit)
                        array=np.array([spectra[k] for k in keys]),
                    ),
                ],
                name="SCI_" + name.split("-")[3],
            )
        )
    column, first, last = detector.dead
    defects = fits.BinTableHDU.from_columns(
        [
            fits.Column("KIND", "8A", array=["hot"] * detector.hot[0].size + ["dead"]),
            fits.Column("Y", "J", array=[*list(detector.hot[0]), first]),
            fits.Column("X", "J", array=[*list(detector.hot[1]), column]),
            fits.Column("Y_END", "J", array=[*list(detector.hot[0]), last - 1]),
        ],
        name="DEFECTS",
    )
    hdus.append(defects)
    hdus.append(
        fits.BinTableHDU.from_columns(
            [
                fits.Column("FILE", "40A", array=[str(f["file"]) for f in truth.frames]),
                fits.Column("OBSTYPE", "10A", array=[str(f["obstype"]) for f in truth.frames]),
                fits.Column(
                    "DRIFT",
                    "D",
                    unit="pixel",
                    array=[float(f.get("drift_px", 0.0)) for f in truth.frames],  # type: ignore[arg-type]
                ),
            ],
            name="DRIFT",
        )
    )
    rv_frames = [f for f in truth.frames if "rv" in f]
    if rv_frames:
        hdus.append(
            fits.BinTableHDU.from_columns(
                [
                    fits.Column("FILE", "40A", array=[str(f["file"]) for f in rv_frames]),
                    fits.Column(
                        "RV",
                        "D",
                        unit="km/s",
                        array=[float(f["rv"]) for f in rv_frames],  # type: ignore[arg-type]
                    ),
                    fits.Column(
                        "BARYCORR",
                        "D",
                        unit="km/s",
                        array=[float(f["barycorr"]) for f in rv_frames],  # type: ignore[arg-type]
                    ),
                    fits.Column(
                        "MIDTIME",
                        "D",
                        unit="d",
                        array=[Time(str(f["midtime"]), scale="utc").mjd for f in rv_frames],
                    ),
                    fits.Column(
                        "DRIFT",
                        "D",
                        unit="pixel",
                        array=[float(f.get("drift_px", 0.0)) for f in rv_frames],  # type: ignore[arg-type]
                    ),
                ],
                name="RV",
            )
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as temp:
        fits.HDUList([primary, *hdus]).writeto(temp)
