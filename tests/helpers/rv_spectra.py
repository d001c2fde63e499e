"""Analytic stellar spectra sampled like an echelle spectrograph, for radial-velocity tests.

The spectrum is a product of Gaussian absorption lines, S(λ) = Π (1 − dₖ exp(−½((λ − λₖ)/σₖ)²)),
evaluated exactly at every wavelength asked for: an observed order at velocity v is S(λ / (1 + z))
at its pixels, independently of how any code under test interpolates a template.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from photonpipe.spectra.spectrum import C_KMS, Spectrum

RESOLUTION = 53_000.0
PIXELS_PER_RESOLUTION_ELEMENT = 2.4


@dataclass(frozen=True)
class LineSpectrum:
    """Absorption lines: centres [Å], depths (0–1) and Gaussian σ [Å]."""

    centres: NDArray[np.float64]
    depths: NDArray[np.float64]
    sigmas: NDArray[np.float64]

    def __call__(self, wavelength: NDArray[np.float64]) -> NDArray[np.float64]:
        """Normalised flux at ``wavelength`` [Å]."""
        wavelength = np.asarray(wavelength, dtype=np.float64)
        order = np.argsort(wavelength)
        w = wavelength[order]
        log_flux = np.zeros_like(w)
        for centre, depth, sigma in zip(self.centres, self.depths, self.sigmas, strict=True):
            lo, hi = np.searchsorted(w, [centre - 7 * sigma, centre + 7 * sigma])
            if hi > lo:
                g = np.exp(-0.5 * ((w[lo:hi] - centre) / sigma) ** 2)
                log_flux[lo:hi] += np.log1p(-depth * g)
        out = np.empty_like(w)
        out[order] = np.exp(log_flux)
        return out


def random_lines(
    seed: int, start: float = 4300.0, end: float = 6900.0, density: float = 0.6
) -> LineSpectrum:
    """Lines at random positions (``density`` per Å), depths 0.03–0.7, R = 53 000 widths."""
    rng = np.random.default_rng(seed)
    n = int(density * (end - start))
    centres = np.sort(rng.uniform(start, end, n))
    depths = 0.03 + 0.67 * rng.power(0.5, n)
    # instrumental FWHM c/R plus 2-4 km/s of intrinsic broadening, in quadrature [km/s]
    sigma_kms = np.sqrt((C_KMS / RESOLUTION / 2.3548) ** 2 + rng.uniform(2.0, 4.0, n) ** 2)
    return LineSpectrum(centres, depths, centres * sigma_kms / C_KMS)


def order_wavelengths(
    n_orders: int = 24, start: float = 4500.0, pixels: int = 2048
) -> list[NDArray[np.float64]]:
    """Pixel-centre wavelengths of echelle orders, uniform in ln λ within an order [Å]."""
    step = C_KMS / RESOLUTION / PIXELS_PER_RESOLUTION_ELEMENT / C_KMS  # Δ ln λ per pixel
    orders = []
    low = start
    for _ in range(n_orders):
        wavelength = low * np.exp(step * np.arange(pixels))
        orders.append(wavelength)
        low = wavelength[-1] * np.exp(step * 40)  # small gaps between orders
    return orders


def observe(
    lines: LineSpectrum,
    velocity_kms: float,
    rng: np.random.Generator,
    peak_snr: float = 100.0,
    orders: list[NDArray[np.float64]] | None = None,
    telluric: LineSpectrum | None = None,
) -> list[Spectrum]:
    """Blaze-normalised orders of a star at ``velocity_kms`` (c·z), photon noise at ``peak_snr``.

    The blaze (peak counts ``peak_snr²``) sets the noise; the flux returned is divided by it, as
    an extraction pipeline's normalised spectra are. ``telluric`` lines stay at rest.
    """
    z = velocity_kms / C_KMS
    out = []
    for wavelength in orders or order_wavelengths():
        x = np.linspace(-1.0, 1.0, len(wavelength))
        blaze = np.cos(0.5 * np.pi * 0.8 * x) ** 2  # 0.35 at the order edges
        counts = peak_snr**2 * blaze * lines(wavelength / (1.0 + z))
        if telluric is not None:
            counts *= telluric(wavelength)
        sigma = np.sqrt(counts)
        noisy = counts + rng.normal(0.0, 1.0, len(counts)) * sigma
        norm = peak_snr**2 * blaze
        out.append(Spectrum(wavelength, noisy / norm, (norm / sigma) ** 2))
    return out


def template_spectrum(
    lines: LineSpectrum, start: float = 4400.0, end: float = 6800.0, step_kms: float = 0.5
) -> Spectrum:
    """Noiseless template at rest on a grid uniform in ln λ with ``step_kms`` per pixel."""
    n = int(np.log(end / start) / (step_kms / C_KMS)) + 1
    wavelength = start * np.exp(step_kms / C_KMS * np.arange(n))
    return Spectrum(wavelength, lines(wavelength))
