"""A minimal one-dimensional spectrum container used across applications.

The arrays stay plain ``float64`` (wavelength in Å, flux in :attr:`Spectrum.unit`) so that hot
loops use them directly; :attr:`Spectrum.spectral_axis` and :attr:`Spectrum.flux_quantity` are
the same data as astropy Quantities, and :meth:`Spectrum.to_specutils` /
:meth:`Spectrum.from_specutils` convert to and from a specutils ``Spectrum`` (``Spectrum1D``
before specutils 2; the ``specutils`` extra).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from astropy import units as u
from numpy.typing import ArrayLike, NDArray

from photonpipe.errors import PhotonpipeError, import_extra

#: Speed of light [km/s].
C_KMS = 299_792.458


class SpectrumConversionError(PhotonpipeError):
    """A foreign spectrum object cannot be represented as a :class:`Spectrum`."""


def _specutils_class() -> Any:
    """Return specutils' 1-D spectrum class (``Spectrum``; ``Spectrum1D`` before 2.0)."""
    specutils = import_extra("specutils", "specutils", "converting spectra to specutils")
    return getattr(specutils, "Spectrum", None) or specutils.Spectrum1D


def _as_unit(unit: Any) -> u.UnitBase:
    if unit is None:
        return u.dimensionless_unscaled
    return u.Unit(unit)


class Spectrum:
    """One spectrum (or one echelle order) on its own pixel grid.

    Parameters
    ----------
    wavelength : array_like or Quantity
        Pixel-centre wavelengths [Å], strictly increasing. A Quantity in any spectral unit
        (nm, µm, Hz, ...) is converted to Å.
    flux : array_like or Quantity
        Flux per pixel in ``unit``. A Quantity gives its unit (converted to ``unit`` when
        both are given).
    ivar : array_like or Quantity, optional
        Inverse variance of ``flux`` [unit⁻²]; 0 marks a pixel without information. Default:
        1 everywhere the flux is finite.
    meta : dict, optional
        Free-form metadata (source file, order label, header keywords...).
    unit : str or astropy unit, optional
        Unit of ``flux``. Default: the unit of a Quantity ``flux``, else dimensionless (which is
        also what a file that states no flux unit gives).
    """

    def __init__(
        self,
        wavelength: ArrayLike,
        flux: ArrayLike,
        ivar: ArrayLike | None = None,
        meta: dict[str, Any] | None = None,
        *,
        unit: str | u.UnitBase | None = None,
    ) -> None:
        if isinstance(wavelength, u.Quantity):
            wavelength = wavelength.to_value(u.AA, equivalencies=u.spectral())
        if isinstance(flux, u.Quantity):
            flux_unit = flux.unit if unit is None else _as_unit(unit)
            flux = flux.to_value(flux_unit)
        else:
            flux_unit = _as_unit(unit)
        if isinstance(ivar, u.Quantity):
            ivar = ivar.to_value(flux_unit**-2)
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
        self.unit: u.UnitBase = flux_unit

    def __repr__(self) -> str:
        lo, hi = self.wavelength_range if len(self) else (float("nan"), float("nan"))
        unit = f", {self.unit}" if self.unit != u.dimensionless_unscaled else ""
        return f"Spectrum({len(self)} px, {lo:.3f}-{hi:.3f} Å{unit})"

    def __len__(self) -> int:
        return int(self.wavelength.size)

    @property
    def uncertainty(self) -> NDArray[np.float64]:
        """1σ flux uncertainty (``inf`` where ``ivar`` is 0), same unit as ``flux``."""
        with np.errstate(divide="ignore"):
            return np.where(self.ivar > 0, 1.0 / np.sqrt(np.maximum(self.ivar, 1e-300)), np.inf)

    @property
    def spectral_axis(self) -> u.Quantity:
        """Pixel-centre wavelengths as a Quantity [Å] (a view of :attr:`wavelength`)."""
        return u.Quantity(self.wavelength, u.AA, copy=False)

    @property
    def flux_quantity(self) -> u.Quantity:
        """Flux as a Quantity in :attr:`unit` (a view of :attr:`flux`)."""
        return u.Quantity(self.flux, self.unit, copy=False)

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
        return Spectrum(self.wavelength / factor, self.flux, self.ivar, self.meta, unit=self.unit)

    def slice(self, start: float, end: float) -> Spectrum:
        """Return the pixels with ``start <= wavelength <= end`` [Å] (a copy)."""
        keep = (self.wavelength >= start) & (self.wavelength <= end)
        return Spectrum(
            self.wavelength[keep], self.flux[keep], self.ivar[keep], self.meta, unit=self.unit
        )

    # --- specutils ----------------------------------------------------------------------------

    def to_specutils(self) -> Any:
        """Return a specutils ``Spectrum`` (``Spectrum1D`` before specutils 2).

        The spectral axis is :attr:`wavelength` [Å], the flux :attr:`flux` in :attr:`unit`, the
        uncertainty an ``InverseVariance`` of :attr:`ivar` [unit⁻²], the mask ``ivar == 0``
        (True = no information, specutils' convention) and the meta a copy of :attr:`meta`.

        Raises
        ------
        MissingExtraError
            specutils is not installed (the ``specutils`` extra).
        """
        cls = _specutils_class()
        from astropy.nddata import InverseVariance

        return cls(
            flux=u.Quantity(self.flux, self.unit, copy=True),
            spectral_axis=u.Quantity(self.wavelength, u.AA, copy=True),
            uncertainty=InverseVariance(self.ivar.copy(), unit=self.unit**-2),
            mask=self.ivar == 0,
            meta=dict(self.meta),
        )

    @classmethod
    def from_specutils(cls, spectrum: Any, meta: dict[str, Any] | None = None) -> Spectrum:
        """Build from a 1-D specutils ``Spectrum``/``Spectrum1D``.

        The spectral axis is converted to Å (from any length, frequency, energy or wavenumber
        unit; a decreasing axis, e.g. from frequencies, is reversed). The uncertainty
        (standard deviation, variance or inverse variance) becomes :attr:`ivar`; masked pixels
        (``mask`` True) get ``ivar`` 0; no uncertainty gives ``ivar`` 1 for finite flux and
        ``meta["noise_known"] = False``.

        Parameters
        ----------
        spectrum : specutils.Spectrum
            A spectrum with a 1-D flux.
        meta : dict, optional
            Metadata to use instead of a copy of ``spectrum.meta``.

        Raises
        ------
        SpectrumConversionError
            The flux is not 1-D, the spectral axis is not a spectral unit (e.g. pixels) or not
            monotonic, or the uncertainty is of another kind.
        """
        flux = u.Quantity(spectrum.flux)
        if flux.ndim != 1:
            raise SpectrumConversionError(
                f"a Spectrum holds one 1-D spectrum; this one has a flux of shape {flux.shape}"
            )
        axis = u.Quantity(spectrum.spectral_axis)
        try:
            wave = axis.to_value(u.AA, equivalencies=u.spectral())
        except u.UnitConversionError:
            raise SpectrumConversionError(
                f"the spectral axis is in {axis.unit}, not a wavelength, frequency or energy"
            ) from None
        ivar = _ivar_of(spectrum.uncertainty, flux.unit)
        if spectrum.mask is not None and ivar is not None:
            ivar = np.where(np.asarray(spectrum.mask, dtype=bool), 0.0, ivar)
        elif spectrum.mask is not None:
            ivar = np.where(np.asarray(spectrum.mask, dtype=bool), 0.0, 1.0)
        info = dict(spectrum.meta) if meta is None else dict(meta)
        info.setdefault("noise_known", spectrum.uncertainty is not None)
        flux_values = np.asarray(flux.value, dtype=np.float64)
        step = np.diff(wave)
        if wave.size > 1 and np.all(step < 0):
            wave, flux_values = wave[::-1], flux_values[::-1]
            ivar = None if ivar is None else ivar[::-1]
        elif wave.size > 1 and not np.all(step > 0):
            raise SpectrumConversionError("the spectral axis is not monotonic")
        return cls(wave, flux_values, ivar, info, unit=flux.unit)


def _ivar_of(uncertainty: Any, unit: u.UnitBase) -> NDArray[np.float64] | None:
    """Inverse variance [unit⁻²] of an astropy NDUncertainty (None if there is none)."""
    if uncertainty is None:
        return None
    from astropy.nddata import InverseVariance, StdDevUncertainty, VarianceUncertainty

    array = np.asarray(uncertainty.array, dtype=np.float64)
    own = uncertainty.unit
    with np.errstate(divide="ignore", invalid="ignore"):
        if isinstance(uncertainty, StdDevUncertainty):
            sigma = array if own is None else (array * own).to_value(unit)
            return np.where(sigma > 0, 1.0 / sigma**2, 0.0)
        if isinstance(uncertainty, VarianceUncertainty):
            var = array if own is None else (array * own).to_value(unit**2)
            return np.where(var > 0, 1.0 / var, 0.0)
        if isinstance(uncertainty, InverseVariance):
            return array if own is None else (array * own).to_value(unit**-2)
    raise SpectrumConversionError(
        f"uncertainty of type {type(uncertainty).__name__} (not a standard deviation, variance "
        "or inverse variance)"
    )
