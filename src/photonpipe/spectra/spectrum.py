"""A minimal one-dimensional spectrum container used across applications."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

#: Speed of light [km/s].
C_KMS = 299_792.458


class Spectrum:
    """One spectrum (or one echelle order) on its own pixel grid.

    Parameters
    ----------
    wavelength : array_like
        Pixel-centre wavelengths [Å], strictly increasing.
    flux : array_like
        Flux per pixel (any consistent unit; normalised spectra are dimensionless).
    ivar : array_like, optional
        Inverse variance of ``flux`` [flux⁻²]; 0 marks a pixel without information. Default:
        1 everywhere the flux is finite.
    meta : dict, optional
        Free-form metadata (source file, order label, header keywords...).
    """

    def __init__(
        self,
        wavelength: ArrayLike,
        flux: ArrayLike,
        ivar: ArrayLike | None = None,
        meta: dict[str, Any] | None = None,
    ) -> None:
        wave = np.asarray(wavelength, dtype=np.float64)
        flx = np.asarray(flux, dtype=np.float64)
        if wave.ndim != 1 or wave.shape != flx.shape:
            raise ValueError("wavelength and flux must be 1-D arrays of the same length")
        if ivar is None:
            inv = np.where(np.isfinite(flx), 1.0, 0.0)
        else:
            inv = np.asarray(ivar, dtype=np.float64)
            if inv.shape != flx.shape:
                raise ValueError("ivar must have the shape of flux")
        bad = ~np.isfinite(flx) | ~np.isfinite(inv) | (inv < 0)
        self.wavelength = wave
        self.flux = np.where(bad, 0.0, flx)
        self.ivar = np.where(bad, 0.0, inv)
        self.meta = dict(meta or {})

    def __repr__(self) -> str:
        lo, hi = self.wavelength_range if len(self) else (float("nan"), float("nan"))
        return f"Spectrum({len(self)} px, {lo:.3f}-{hi:.3f} Å)"

    def __len__(self) -> int:
        return int(self.wavelength.size)

    @property
    def uncertainty(self) -> NDArray[np.float64]:
        """1σ flux uncertainty (``inf`` where ``ivar`` is 0), same unit as ``flux``."""
        with np.errstate(divide="ignore"):
            return np.where(self.ivar > 0, 1.0 / np.sqrt(np.maximum(self.ivar, 1e-300)), np.inf)

    @property
    def wavelength_range(self) -> tuple[float, float]:
        """(first, last) pixel-centre wavelength [Å]."""
        return float(self.wavelength[0]), float(self.wavelength[-1])

    def doppler_shifted(self, velocity_kms: float) -> Spectrum:
        """Return a copy whose wavelengths are moved to the rest frame of a source at ``velocity``.

        Parameters
        ----------
        velocity_kms : float
            Radial velocity of the source [km/s] (positive = receding). Wavelengths are divided
            by the relativistic Doppler factor ``sqrt((1+β)/(1-β))``; pixels are not rebinned.
        """
        beta = velocity_kms / C_KMS
        factor = np.sqrt((1.0 + beta) / (1.0 - beta))
        return Spectrum(self.wavelength / factor, self.flux, self.ivar, self.meta)

    def slice(self, start: float, end: float) -> Spectrum:
        """Return the pixels with ``start <= wavelength <= end`` [Å] (a copy)."""
        keep = (self.wavelength >= start) & (self.wavelength <= end)
        return Spectrum(self.wavelength[keep], self.flux[keep], self.ivar[keep], self.meta)
