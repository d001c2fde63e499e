"""Synthetic broad-band magnitudes of spectra through speclite's filter curves.

AB magnitude of a photon-counting detector behind a filter of response R(λ) (Fukugita et al.
1996; the convention speclite and SDSS use):

    m_AB = −2.5 log10 [ ∫ f_λ R λ dλ / ∫ (c / λ²) f_ν,AB R λ dλ ],   f_ν,AB = 3631 Jy.

The integrals are done here on the spectrum's own grid (the response interpolated linearly), for
many spectra at once; speclite provides the curves (``sdss2010-ugriz``, ``bessell-UBVRI``).
Vega magnitudes are AB magnitudes minus the AB − Vega offsets of Blanton & Roweis (2007,
AJ 133, 734, table 1) for the Bessell filters: U 0.79, B −0.09, V 0.02, R 0.21, I 0.45.

A filter whose response is not covered by the spectrum (≥ 99 % of ∫ R λ dλ) gives NaN and a
reason; so does one with more than 2 % of that weight in rejected pixels (interpolating across a
long gap in a spectrum full of emission lines is not safe); fewer rejected pixels are
interpolated over.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]

#: Speed of light [Å/s].
C_ANGSTROM_PER_S = 2.99792458e18
#: AB zero point [erg s⁻¹ cm⁻² Hz⁻¹].
AB_ZERO_FNU = 3631e-23
#: AB − Vega [mag] of the Bessell filters (Blanton & Roweis 2007).
AB_MINUS_VEGA = {
    "bessell-U": 0.79,
    "bessell-B": -0.09,
    "bessell-V": 0.02,
    "bessell-R": 0.21,
    "bessell-I": 0.45,
}
SDSS_FILTERS = tuple(f"sdss2010-{b}" for b in "ugriz")
BESSELL_FILTERS = tuple(f"bessell-{b}" for b in "UBVRI")
MIN_COVERAGE = 0.99
MAX_REJECTED = 0.02


@dataclass(frozen=True)
class FilterCurve:
    """A filter response on its own grid.

    Attributes
    ----------
    name : str
        speclite name.
    wavelength : numpy.ndarray
        [Å].
    response : numpy.ndarray
        Dimensionless throughput.
    """

    name: str
    wavelength: FloatArray
    response: FloatArray


@cache
def filter_curve(name: str) -> FilterCurve:
    """Load a speclite filter curve by name (e.g. ``sdss2010-r``, ``bessell-V``)."""
    import speclite.filters

    f = speclite.filters.load_filter(name)
    return FilterCurve(
        name,
        np.asarray(f.wavelength, dtype=np.float64),
        np.asarray(f.response, dtype=np.float64),
    )


def ab_magnitudes(
    wavelength_angstrom: FloatArray,
    flux_flam: FloatArray,
    name: str,
) -> tuple[FloatArray, list[str | None]]:
    """AB magnitudes of spectra through one filter.

    Parameters
    ----------
    wavelength_angstrom : numpy.ndarray
        ``(npix,)`` or ``(nspec, npix)`` pixel centres [Å], increasing.
    flux_flam : numpy.ndarray
        ``(nspec, npix)`` flux density [erg s⁻¹ cm⁻² Å⁻¹] (any solid angle), NaN where rejected.
    name : str
        speclite filter name.

    Returns
    -------
    magnitudes : numpy.ndarray
        ``(nspec,)`` AB magnitudes, NaN where not measurable.
    flags : list of str or None
        Why a magnitude is NaN (None when measured).
    """
    curve = filter_curve(name)
    flux = np.atleast_2d(np.asarray(flux_flam, dtype=np.float64))
    wave = np.broadcast_to(np.asarray(wavelength_angstrom, dtype=np.float64), flux.shape)
    mags = np.full(flux.shape[0], np.nan)
    flags: list[str | None] = []
    for i in range(flux.shape[0]):
        w, f = wave[i], flux[i]
        r = np.interp(w, curve.wavelength, curve.response, left=0.0, right=0.0)
        good = np.isfinite(f) & np.isfinite(w)
        if good.sum() < 2:
            flags.append(f"{name}: no valid pixels")
            continue
        # Coverage: response-weighted fraction of the filter inside the valid data's span.
        lo, hi = w[good][0], w[good][-1]
        full = np.trapezoid(curve.response * curve.wavelength, curve.wavelength)
        inside = (curve.wavelength >= lo) & (curve.wavelength <= hi)
        part = np.trapezoid((curve.response * curve.wavelength)[inside], curve.wavelength[inside])
        if part < MIN_COVERAGE * full:
            flags.append(f"{name}: spectrum covers {part / full:.0%} of the filter")
            continue
        weight = r * w * np.gradient(w)
        lost = float(np.sum(weight[~good]) / np.sum(weight))
        if lost > MAX_REJECTED:
            flags.append(f"{name}: {lost:.0%} of the filter's weight in rejected pixels")
            continue
        filled = np.interp(w, w[good], f[good])
        sel = r > 0
        numerator = np.trapezoid((filled * r * w)[sel], w[sel])
        reference = np.trapezoid((C_ANGSTROM_PER_S * AB_ZERO_FNU / w**2 * r * w)[sel], w[sel])
        if not numerator > 0:
            flags.append(f"{name}: non-positive flux in the filter")
            continue
        mags[i] = -2.5 * np.log10(numerator / reference)
        flags.append(None)
    return mags, flags


def vega_magnitudes(
    wavelength_angstrom: FloatArray, flux_flam: FloatArray, name: str
) -> tuple[FloatArray, list[str | None]]:
    """Vega magnitudes through a Bessell filter (AB minus Blanton & Roweis 2007's offset).

    Parameters
    ----------
    wavelength_angstrom, flux_flam : numpy.ndarray
        As in :func:`ab_magnitudes`.
    name : str
        One of ``bessell-U``, ``-B``, ``-V``, ``-R``, ``-I``.
    """
    if name not in AB_MINUS_VEGA:
        raise ValueError(f"no AB − Vega offset for filter {name!r}")
    mags, flags = ab_magnitudes(wavelength_angstrom, flux_flam, name)
    return mags - AB_MINUS_VEGA[name], flags
