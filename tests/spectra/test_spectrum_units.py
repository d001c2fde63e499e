"""Units on the shared Spectrum container and its conversion to and from specutils."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import specutils
from astropy import units as u
from astropy.constants import c
from astropy.nddata import InverseVariance, StdDevUncertainty, VarianceUncertainty

from photonpipe.errors import MissingExtraError
from photonpipe.spectra.resample import coadd, resample
from photonpipe.spectra.spectrum import Spectrum, SpectrumConversionError

SPECUTILS_SPECTRUM = getattr(specutils, "Spectrum", None) or specutils.Spectrum1D


def _spectrum(unit: u.UnitBase = u.Jy) -> Spectrum:
    wave = np.linspace(5000.0, 5010.0, 21)
    flux = 1.0 + 0.1 * np.sin(wave)
    ivar = np.linspace(100.0, 400.0, 21)
    ivar[3] = 0.0
    return Spectrum(
        wave, flux, ivar, meta={"label": "order 7", "header": {"OBJECT": "HD1"}}, unit=unit
    )


def test_float_api_unchanged() -> None:
    s = Spectrum([1.0, 2.0, 3.0], [1.0, np.nan, 3.0])
    assert s.unit == u.dimensionless_unscaled
    assert s.wavelength.dtype == np.float64
    assert s.flux.dtype == np.float64
    np.testing.assert_array_equal(s.ivar, [1.0, 0.0, 1.0])
    assert repr(s) == "Spectrum(3 px, 1.000-3.000 Å)"


def test_quantities_in_and_views_out() -> None:
    s = Spectrum(
        np.array([500.0, 500.1, 500.2]) * u.nm,
        np.array([1.0, 2.0, 3.0]) * u.mJy,
        np.array([4.0, 4.0, 1.0]) / u.mJy**2,
    )
    np.testing.assert_allclose(s.wavelength, [5000.0, 5001.0, 5002.0])
    assert s.unit == u.mJy
    np.testing.assert_allclose(s.ivar, [4.0, 4.0, 1.0])
    assert s.spectral_axis.unit == u.AA
    assert np.shares_memory(s.spectral_axis.value, s.wavelength)
    assert np.shares_memory(s.flux_quantity.value, s.flux)
    assert s.flux_quantity[1] == 2.0 * u.mJy
    # An explicit unit converts a Quantity flux (and its inverse variance) to it.
    j = Spectrum([1.0, 2.0] * u.AA, [1.0, 2.0] * u.mJy, [1.0, 4.0] / u.mJy**2, unit="Jy")
    np.testing.assert_allclose(j.flux, [1e-3, 2e-3])
    np.testing.assert_allclose(j.ivar, [1e6, 4e6])
    assert j.doppler_shifted(10.0).unit == u.Jy
    assert j.slice(0.0, 1.5).unit == u.Jy


def test_resample_and_coadd_keep_the_unit() -> None:
    s = _spectrum(u.erg / u.s / u.cm**2 / u.AA)
    grid = np.linspace(5001.0, 5009.0, 9)
    assert resample(s, grid).unit == s.unit
    assert coadd([s, s], grid).unit == s.unit
    with pytest.raises(ValueError, match="different flux units"):
        coadd([s, _spectrum(u.Jy)], grid)


def test_to_specutils_and_back() -> None:
    s = _spectrum()
    spec = s.to_specutils()
    assert isinstance(spec, SPECUTILS_SPECTRUM)
    assert spec.spectral_axis.unit == u.AA
    assert spec.flux.unit == u.Jy
    np.testing.assert_array_equal(spec.spectral_axis.value, s.wavelength)
    np.testing.assert_array_equal(spec.flux.value, s.flux)
    assert isinstance(spec.uncertainty, InverseVariance)
    assert spec.uncertainty.unit == u.Jy**-2
    np.testing.assert_array_equal(spec.uncertainty.array, s.ivar)
    np.testing.assert_array_equal(spec.mask, s.ivar == 0)
    assert spec.meta["label"] == "order 7"
    back = Spectrum.from_specutils(spec)
    np.testing.assert_array_equal(back.wavelength, s.wavelength)
    np.testing.assert_array_equal(back.flux, s.flux)
    np.testing.assert_array_equal(back.ivar, s.ivar)
    assert back.unit == u.Jy
    assert back.meta == {**s.meta, "noise_known": True}
    # The copy is independent of the original arrays.
    spec.flux[0] = 99.0 * u.Jy
    assert s.flux[0] != 99.0


def test_from_specutils_uncertainty_kinds_mask_and_frequency_axis() -> None:
    nu = np.linspace(5.0e14, 6.0e14, 11) * u.Hz  # increasing frequency = decreasing wavelength
    flux = np.linspace(1.0, 2.0, 11) * u.Jy
    mask = np.zeros(11, dtype=bool)
    mask[4] = True
    sigma = StdDevUncertainty(np.full(11, 200.0) * u.mJy)  # 0.2 Jy
    s = Spectrum.from_specutils(
        SPECUTILS_SPECTRUM(flux=flux, spectral_axis=nu, uncertainty=sigma, mask=mask)
    )
    # Independent: λ = c / ν, reversed into increasing order, flux and weights along with it.
    expected = (c / nu).to_value(u.AA)[::-1]
    np.testing.assert_allclose(s.wavelength, expected, rtol=1e-12)
    np.testing.assert_allclose(s.flux, flux.value[::-1])
    ivar = np.full(11, 25.0)
    ivar[10 - 4] = 0.0
    np.testing.assert_allclose(s.ivar, ivar)
    variance = VarianceUncertainty(np.full(11, 0.04) * u.Jy**2)
    v = Spectrum.from_specutils(
        SPECUTILS_SPECTRUM(flux=flux, spectral_axis=nu, uncertainty=variance)
    )
    np.testing.assert_allclose(v.ivar, 25.0)
    none = Spectrum.from_specutils(SPECUTILS_SPECTRUM(flux=flux, spectral_axis=nu))
    assert none.meta["noise_known"] is False
    np.testing.assert_array_equal(none.ivar, 1.0)


def test_from_specutils_refuses_what_is_not_one_spectrum() -> None:
    two = SPECUTILS_SPECTRUM(flux=np.ones((2, 5)) * u.Jy, spectral_axis=np.arange(1.0, 6.0) * u.AA)
    with pytest.raises(SpectrumConversionError, match=r"shape \(2, 5\)"):
        Spectrum.from_specutils(two)
    pixels = SPECUTILS_SPECTRUM(flux=np.ones(5) * u.Jy, spectral_axis=np.arange(5.0) * u.pix)
    with pytest.raises(SpectrumConversionError, match="spectral axis is in pix"):
        Spectrum.from_specutils(pixels)


def test_missing_specutils_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "specutils", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'photonpipe\[specutils\]'"):
        _spectrum().to_specutils()
