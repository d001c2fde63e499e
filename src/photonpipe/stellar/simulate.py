"""Simulated high-resolution stellar spectra with a known truth, written in real formats.

:func:`simulate_echelle` makes echelle orders of a star with absorption lines of known
equivalent width, shifted by a known radial velocity, under a blaze-shaped continuum with
Gaussian noise of a given S/N. :func:`write_simulated_star` (``photonpipe simulate stellar``)
puts the lines of a real star at their laboratory wavelengths (:func:`reference_lines`), so that
the bundled RV templates, real spectra, match it. :func:`write_multispec` writes orders as an
IRAF multispec FITS file (the format of MIKE, HIRES-IRAF and many other echelle reductions) with
linear, log-linear, Legendre or Chebyshev dispersion in the ``WAT2`` cards.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from numpy.polynomial import chebyshev, legendre
from numpy.typing import NDArray

from photonpipe.platform.progress import Progress
from photonpipe.spectra.profiles import GAUSSIAN_FWHM_PER_SIGMA, gaussian, voigt
from photonpipe.spectra.spectrum import C_KMS, Spectrum
from photonpipe.stellar.linelist import Line, LineList, read_linelist_bytes

#: Line list of :func:`reference_lines` (package data): Frebel et al. (2013), HD 122563.
REFERENCE_LINELIST = "frebel2013_hd122563_ew.moog2"

log = logging.getLogger("photonpipe.stellar.simulate")


@dataclass(frozen=True)
class SimulatedLine:
    """An absorption line of the simulated star.

    Attributes
    ----------
    wavelength : float
        Rest wavelength [Å].
    ew_milliangstrom : float
        Equivalent width [mÅ].
    fwhm : float
        Gaussian FWHM [Å] (instrumental ⊗ thermal/macro broadening).
    gamma : float
        Lorentzian HWHM [Å]; 0 for a pure Gaussian.
    """

    wavelength: float
    ew_milliangstrom: float
    fwhm: float
    gamma: float = 0.0

    def depth_profile(self, wavelength: NDArray[np.float64]) -> NDArray[np.float64]:
        """Return 1 − normalised flux of this line alone at ``wavelength`` [Å]."""
        sigma = self.fwhm / GAUSSIAN_FWHM_PER_SIGMA
        ew = self.ew_milliangstrom / 1000.0
        if self.gamma > 0:
            return ew * voigt(wavelength, self.wavelength, sigma, self.gamma)
        return ew * gaussian(wavelength, self.wavelength, sigma)


@dataclass
class SimulatedStar:
    """A simulated observation and its truth.

    Attributes
    ----------
    orders : list of Spectrum
        Observed-frame orders (flux in counts, with ``ivar``).
    rv_kms : float
        True radial velocity [km/s].
    lines : list of SimulatedLine
        True lines (rest frame).
    continuum : list of ndarray
        True continuum of each order [counts].
    snr : float
        S/N per pixel at the continuum peak.
    """

    orders: list[Spectrum]
    rv_kms: float
    lines: list[SimulatedLine]
    continuum: list[NDArray[np.float64]] = field(default_factory=list)
    snr: float = 100.0


def normalized_flux(
    wavelength: NDArray[np.float64], lines: Sequence[SimulatedLine]
) -> NDArray[np.float64]:
    """Return the normalised rest-frame flux max(1 − Σ depth of ``lines``, 0) at ``wavelength``."""
    depth = np.zeros_like(wavelength)
    for line in lines:
        near = np.abs(wavelength - line.wavelength) < 30 * line.fwhm + 200 * line.gamma
        if np.any(near):
            depth[near] += line.depth_profile(wavelength[near])
    return np.asarray(np.clip(1.0 - depth, 0.0, None), dtype=np.float64)


def random_lines(
    rng: np.random.Generator,
    start: float,
    end: float,
    density_per_angstrom: float = 0.3,
    ew_range: tuple[float, float] = (10.0, 150.0),
    resolution: float = 40_000.0,
) -> list[SimulatedLine]:
    """Draw lines at random positions with log-uniform equivalent widths.

    Parameters
    ----------
    rng : numpy.random.Generator
        Random numbers.
    start, end : float
        Wavelength range [Å].
    density_per_angstrom : float
        Mean number of lines per Å.
    ew_range : (float, float)
        Equivalent-width range [mÅ].
    resolution : float
        λ/FWHM of the lines.
    """
    count = rng.poisson(density_per_angstrom * (end - start))
    centres = np.sort(rng.uniform(start, end, count))
    ews = np.exp(rng.uniform(np.log(ew_range[0]), np.log(ew_range[1]), count))
    return [
        SimulatedLine(float(c), float(e), float(c / resolution))
        for c, e in zip(centres, ews, strict=True)
    ]


def simulate_echelle(
    order_ranges: Sequence[tuple[float, float]],
    lines: Sequence[SimulatedLine],
    rv_kms: float,
    snr: float = 100.0,
    pixels_per_order: int = 2048,
    seed: int = 1,
    blaze: bool = True,
    peak_counts: float = 10_000.0,
    progress: Progress | None = None,
) -> SimulatedStar:
    """Simulate echelle orders of a star with known lines and radial velocity.

    Parameters
    ----------
    order_ranges : sequence of (float, float)
        Observed wavelength range of each order [Å].
    lines : sequence of SimulatedLine
        Rest-frame lines.
    rv_kms : float
        Radial velocity [km/s]; lines are shifted by the relativistic Doppler factor.
    snr : float
        S/N per pixel at the continuum peak of each order.
    pixels_per_order : int
        Pixels in each order, log-uniformly spaced (constant velocity step).
    seed : int
        Random seed of the noise.
    blaze : bool
        Multiply by a sinc²-shaped blaze (else a flat continuum).
    peak_counts : float
        Continuum level at the blaze peak [counts].
    progress : Progress, optional
        Counts one item per order.

    Returns
    -------
    SimulatedStar
        Orders with ``ivar`` and the truth.
    """
    rng = np.random.default_rng(seed)
    beta = rv_kms / C_KMS
    doppler = np.sqrt((1.0 + beta) / (1.0 - beta))
    orders: list[Spectrum] = []
    continua: list[NDArray[np.float64]] = []
    for index, (start, end) in enumerate(order_ranges):
        wave = np.geomspace(start, end, pixels_per_order)
        rest = wave / doppler
        x = np.linspace(-1.0, 1.0, pixels_per_order)
        shape = np.sinc(0.55 * x) ** 2 * (1.0 + 0.1 * x) if blaze else np.ones_like(x)
        continuum = peak_counts * shape / shape.max()
        model = continuum * normalized_flux(rest, lines)
        # photon noise, S/N = snr at the peak (a floor keeps saturated line cores noisy)
        sigma = np.sqrt(np.maximum(model, 0.01 * peak_counts) * peak_counts) / snr
        flux = model + rng.normal(0.0, 1.0, wave.size) * sigma
        orders.append(Spectrum(wave, flux, 1.0 / sigma**2, meta={"label": f"order {index}"}))
        continua.append(continuum)
        if progress is not None:
            progress.update(1, status=f"order {index}")
    return SimulatedStar(orders, rv_kms, list(lines), continua, snr)


def _wat_cards(text: str, axis: int) -> list[tuple[str, str]]:
    """Split a WAT string into 68-character ``WATn_nnn`` cards (IRAF's layout)."""
    chunks = [text[i : i + 68] for i in range(0, len(text), 68)]
    return [(f"WAT{axis}_{i + 1:03d}", chunk) for i, chunk in enumerate(chunks)]


def multispec_header(
    orders: Sequence[Spectrum], dispersion: str = "legendre", degree: int = 5
) -> tuple[fits.Header, list[str]]:
    """Build a multispec header describing the wavelengths of ``orders``.

    Parameters
    ----------
    orders : sequence of Spectrum
        Orders of equal length.
    dispersion : {"linear", "log", "legendre", "chebyshev"}
        Dispersion function: linear and log are exact only for linearly / log-uniformly spaced
        orders; legendre and chebyshev are fitted (``degree``) to the wavelengths.
    degree : int
        Polynomial degree for legendre/chebyshev (order = degree + 1 coefficients).

    Returns
    -------
    header : astropy.io.fits.Header
        WCS keywords (``WAT0_001``, ``WAT1_001``, ``WAT2_nnn``, ``CTYPE``...).
    specs : list of str
        The ``specN`` strings (for inspection).
    """
    npix = len(orders[0])
    pixel = np.arange(1, npix + 1, dtype=np.float64)
    specs: list[str] = []
    for row, order in enumerate(orders):
        if len(order) != npix:
            raise ValueError("multispec orders must all have the same number of pixels")
        wave = order.wavelength
        aperture = row + 1
        common = f"{aperture} {aperture}"
        if dispersion == "linear":
            dw = (wave[-1] - wave[0]) / (npix - 1)
            spec = f"{common} 0 {wave[0]:.15g} {dw:.15g} {npix} 0. 0. 0."
        elif dispersion == "log":
            lw = np.log10(wave)
            dw = (lw[-1] - lw[0]) / (npix - 1)
            spec = f"{common} 1 {lw[0]:.15g} {dw:.15g} {npix} 0. 0. 0."
        elif dispersion in ("legendre", "chebyshev"):
            x = (2.0 * pixel - (npix + 1.0)) / (npix - 1.0)
            fit = legendre.legfit if dispersion == "legendre" else chebyshev.chebfit
            coeffs = fit(x, wave, degree)
            ftype = 2 if dispersion == "legendre" else 1
            terms = " ".join(f"{c:.15g}" for c in coeffs)
            w1 = wave[0]
            dw = (wave[-1] - wave[0]) / (npix - 1)
            spec = (
                f"{common} 2 {w1:.15g} {dw:.15g} {npix} 0. 0. 0. "
                f"1. 0. {ftype} {degree + 1} 1. {float(npix):.1f} {terms}"
            )
        else:
            raise ValueError(f"unknown dispersion {dispersion!r}")
        specs.append(spec)
    wat2 = "wtype=multispec " + " ".join(f'spec{i + 1} = "{s}"' for i, s in enumerate(specs))
    header = fits.Header()
    header["WCSDIM"] = 2
    header["CTYPE1"] = "MULTISPE"
    header["CTYPE2"] = "MULTISPE"
    header["CDELT1"] = 1.0
    header["CDELT2"] = 1.0
    header["CD1_1"] = 1.0
    header["CD2_2"] = 1.0
    header["LTM1_1"] = 1.0
    header["LTM2_2"] = 1.0
    header["WAT0_001"] = "system=multispec"
    header["WAT1_001"] = "wtype=multispec label=Wavelength units=angstroms"
    for key, chunk in _wat_cards(wat2, 2):
        header[key] = chunk
    return header, specs


def write_multispec(
    path: str | os.PathLike[str],
    orders: Sequence[Spectrum],
    dispersion: str = "legendre",
    degree: int = 5,
    extra_header: dict[str, Any] | None = None,
) -> Path:
    """Write orders as a 3-band IRAF multispec FITS file (object flux, σ, S/N).

    Parameters
    ----------
    path : str or PathLike
        Output file (written atomically).
    orders : sequence of Spectrum
        Orders of equal length.
    dispersion : {"linear", "log", "legendre", "chebyshev"}
        Dispersion function in ``WAT2`` (see :func:`multispec_header`).
    degree : int
        Polynomial degree for legendre/chebyshev.
    extra_header : dict, optional
        More primary-header keywords (e.g. site, time and coordinates).

    Returns
    -------
    Path
        The file written.
    """
    header, _ = multispec_header(orders, dispersion, degree)
    flux = np.array([o.flux for o in orders], dtype=np.float32)
    sigma = np.array([np.where(o.ivar > 0, o.uncertainty, 0.0) for o in orders], np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = np.where(sigma > 0, flux / sigma, 0.0).astype(np.float32)
    header["BANDID1"] = "spectrum - background fit, weights variance, clean no"
    header["BANDID2"] = "sigma - background fit, weights variance, clean no"
    header["BANDID3"] = "S/N"
    for key, value in (extra_header or {}).items():
        header[key] = value
    hdu = fits.PrimaryHDU(np.array([flux, sigma, snr]), header=header)
    destination = Path(path)
    temp = destination.with_name(f".{destination.name}.tmp-{os.getpid()}")
    try:
        hdu.writeto(temp, overwrite=True)
        temp.replace(destination)
    finally:
        temp.unlink(missing_ok=True)
    return destination


def reference_lines(
    start: float,
    end: float,
    ew_range: tuple[float, float] = (5.0, 150.0),
    min_separation: float = 1.0,
) -> list[Line]:
    """Lines of the metal-poor giant HD 122563 (Frebel et al. 2013) for a simulated star.

    Laboratory (air) wavelengths and atomic data as listed, with the published equivalent
    width as ``reference_ew`` [mÅ]. Lines closer than ``min_separation`` to a stronger line are
    left out, so that each line's EW is that of an isolated line.

    Parameters
    ----------
    start, end : float
        Wavelength range [Å].
    ew_range : (float, float)
        Published EWs kept [mÅ] (above ~150 mÅ a Gaussian line of R = 31 000 would be
        saturated).
    min_separation : float
        Least distance to a stronger kept line [Å].

    Returns
    -------
    list of Line
        In wavelength order.
    """
    data = (resources.files("photonpipe.stellar") / "data" / REFERENCE_LINELIST).read_bytes()
    candidates = [
        line
        for line in read_linelist_bytes(data, REFERENCE_LINELIST)
        if start <= line.wavelength <= end and ew_range[0] <= line.reference_ew <= ew_range[1]
    ]
    kept: list[Line] = []
    for line in sorted(candidates, key=lambda ln: -ln.reference_ew):
        if all(abs(line.wavelength - k.wavelength) >= min_separation for k in kept):
            kept.append(line)
    return sorted(kept, key=lambda ln: ln.wavelength)


def write_simulated_star(
    directory: str | os.PathLike[str],
    n_orders: int = 10,
    rv_kms: float = 25.0,
    snr: float = 100.0,
    seed: int = 1,
    dispersion: str = "legendre",
    start: float = 4900.0,
    resolution: float = 31_000.0,
    progress: bool | None = None,
) -> tuple[Path, Path]:
    """Write a simulated echelle observation and its truth.

    The star has the lines of :func:`reference_lines` (HD 122563's lines of 5-150 mÅ at their
    laboratory wavelengths, at least 1 Å from a stronger one) as Gaussians of FWHM λ/R,
    shifted by ``rv_kms``. Orders are 60 Å long and overlap by 15 Å, 4096 pixels each; the
    noise is drawn from ``seed``.

    Parameters
    ----------
    directory : str or PathLike
        Output directory (created).
    n_orders : int
        Number of orders.
    rv_kms : float
        Radial velocity [km/s].
    snr : float
        S/N per pixel at the blaze peak.
    seed : int
        Random seed of the noise.
    dispersion : {"linear", "log", "legendre", "chebyshev"}
        Multispec dispersion function.
    start : float
        Start of the first order [Å].
    resolution : float
        Resolving power λ/FWHM of the lines.
    progress : bool, optional
        A progress bar of the orders and files written (default: on a terminal, otherwise
        one summary line in the log).

    Returns
    -------
    spectrum, truth : Path
        ``simulated_star.fits`` (IRAF multispec) and ``simulated_star_truth.ecsv`` (the lines
        with their atomic data; ``reference_ew`` is the true EW [mÅ]; the true RV, S/N, seed
        and resolution in its metadata).
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    ranges = [(start + 45.0 * i, start + 45.0 * i + 60.0) for i in range(n_orders)]
    truth_lines = reference_lines(start + 2.0, ranges[-1][1] - 2.0)
    lines = [
        SimulatedLine(ln.wavelength, ln.reference_ew, ln.wavelength / resolution)
        for ln in truth_lines
    ]
    with Progress(n_orders + 2, "simulate stellar", "step", enabled=progress, logger=log) as bar:
        star = simulate_echelle(
            ranges, lines, rv_kms, snr=snr, pixels_per_order=4096, seed=seed, progress=bar
        )
        spectrum = write_multispec(out / "simulated_star.fits", star.orders, dispersion)
        bar.update(1, status=spectrum.name)
        truth_path = _write_truth(out, truth_lines, rv_kms, snr, seed, resolution)
        bar.update(1, status=truth_path.name)
    return spectrum, truth_path


def _write_truth(
    out: Path, truth_lines: Sequence[Line], rv_kms: float, snr: float, seed: int, resolution: float
) -> Path:
    truth = LineList(truth_lines).to_table()
    truth.meta["rv_kms"] = rv_kms
    truth.meta["snr"] = snr
    truth.meta["seed"] = seed
    truth.meta["resolution"] = resolution
    truth.meta["lines"] = f"{REFERENCE_LINELIST} (Frebel et al. 2013), laboratory wavelengths"
    truth_path = out / "simulated_star_truth.ecsv"
    temp = out / ".simulated_star_truth.ecsv.tmp"
    truth.write(temp, format="ascii.ecsv", overwrite=True)
    temp.replace(truth_path)
    return truth_path
