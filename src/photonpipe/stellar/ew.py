"""Equivalent-width measurements of lines in a (normalised, rest-frame) spectrum.

A measurement is plain data (a dict, stored in ``session.pkl``), keyed by the line (or blend
group) hash and the method ``"ew"``: a new EW fit of a line, Gaussian or Voigt, replaces the
previous EW fit of that line; measurements by other methods are kept.

Fields of a measurement:

* ``line_hash`` (the line, or the blend group), ``line_hashes`` (members), ``method`` ("ew"),
  ``profile`` ("gaussian"/"voigt"), ``wavelength`` [Å] of the line;
* ``ew`` and ``ew_uncertainty`` [mÅ] from the fit covariance (noise from the spectrum's inverse
  variance, or from the residuals when the spectrum has no noise estimate),
  ``ew_noise_uncertainty`` [mÅ] the noise-limited uncertainty of a line of the fitted width at
  the fitted position (EW as the only line parameter), ``reduced_ew`` = log10(EW/λ);
* ``is_limit`` and ``upper_limit`` [mÅ]: when EW < 3σ the line is not detected and the limit is
  3 × ``ew_noise_uncertainty``;
* ``acceptable`` and ``comments`` (reasons when not acceptable);
* ``parameters``, ``uncertainties``, ``covariance``, ``parameter_names``;
* the fit window ``window_wavelength`` [Å], the ``mask`` used (True = pixel used), the best-fit
  ``model`` spectrum on the window, ``chi2``, ``dof``, ``options``;
* ``abundances``: an empty dict (EW measurements carry no abundance until the physics step).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from photonpipe.errors import PhotonpipeError
from photonpipe.spectra.linefit import (
    PROFILES,
    LineFitError,
    fit_absorption_line,
    fixed_line_ew_uncertainty,
)
from photonpipe.spectra.spectrum import Spectrum
from photonpipe.stellar.linelist import Line, group_hash

#: Default fit options (see :func:`measure_equivalent_width`), chosen on half of the Frebel et
#: al. (2013) lines of the real HD 122563 MIKE spectrum and checked on the other half and on
#: simulated lines (docs/stellar.md): a ±2.5 Å window with a linear local continuum, pixel
#: weights raised up to 4× at the line centre (as SMH does), neighbours = runs of ≥ 3 pixels
#: below −1.5 robust σ, masked ±1 FWHM.
DEFAULT_OPTIONS: dict[str, Any] = {
    "profile": "gaussian",
    "window": 2.5,
    "max_center_shift": 0.15,
    "mask_neighbours": True,
    "neighbour_sigma": 1.5,
    "neighbour_pixels": 3,
    "mask_margin": 1.0,
    "robust_masking": True,
    "max_iterations": 5,
    "detection_sigma": 3.0,
    "continuum": "linear",
    "central_weighting": True,
}


class LineOutsideSpectrumError(PhotonpipeError):
    """The line is not covered by (enough) usable pixels of the spectrum."""


def measurement_key(line_hash: str, method: str = "ew") -> str:
    """Return the key of a measurement in the session: ``"<hash>|<method>"``."""
    return f"{line_hash}|{method}"


def measure_equivalent_width(
    spectrum: Spectrum,
    lines: Line | Sequence[Line],
    noise_known: bool = True,
    **options: Any,
) -> dict[str, Any]:
    """Fit the equivalent width of one line (or one blend group, fitted as one profile).

    Parameters
    ----------
    spectrum : Spectrum
        Rest-frame spectrum (normalised or not: the local continuum is fitted).
    lines : Line or sequence of Line
        The line, or the members of a blend group (fitted at their gf-weighted mean
        wavelength).
    noise_known : bool
        Whether ``spectrum.ivar`` is a real noise estimate.
    **options
        Overrides of :data:`DEFAULT_OPTIONS`: ``profile`` ("gaussian"/"voigt"), ``window``
        (half-width [Å]), ``max_center_shift`` [Å], ``mask_neighbours``, ``neighbour_sigma``,
        ``neighbour_pixels``, ``mask_margin`` [FWHM], ``robust_masking``, ``max_iterations``,
        ``continuum`` ("linear"/"constant"/"fixed"), ``central_weighting``,
        ``detection_sigma``, ``fwhm_range`` ((min, max) FWHM [Å] for the ``acceptable``
        flag), ``fwhm_bounds`` ((min, max) FWHM [Å] allowed in the fit), ``max_gamma``
        (largest Voigt γ [Å]), ``exclude`` (list of (start, end) [Å]), ``comment``.
        See :func:`~photonpipe.spectra.linefit.fit_absorption_line`.

    Returns
    -------
    dict
        The measurement (see the module documentation).

    Raises
    ------
    LineOutsideSpectrumError
        The line is outside the spectrum or has too few usable pixels.
    """
    members = [lines] if isinstance(lines, Line) else list(lines)
    if not members:
        raise ValueError("no line to measure")
    opts = {**DEFAULT_OPTIONS, **options}
    if opts["profile"] not in PROFILES:
        raise ValueError(f"unknown profile {opts['profile']!r} (use one of {PROFILES})")
    if len(members) == 1:
        center = members[0].wavelength
    else:
        weights = np.array([10.0**ln.loggf for ln in members])
        center = float(np.sum(weights * [ln.wavelength for ln in members]) / weights.sum())
    lo, hi = spectrum.wavelength_range
    if not lo + 0.2 < center < hi - 0.2:
        raise LineOutsideSpectrumError(
            f"line at {center:.3f} Å is outside the spectrum ({lo:.2f}-{hi:.2f} Å)"
        )
    try:
        fit = fit_absorption_line(
            spectrum.wavelength,
            spectrum.flux,
            spectrum.ivar,
            center,
            profile=opts["profile"],
            window=opts["window"],
            max_center_shift=opts["max_center_shift"],
            mask_neighbours=opts["mask_neighbours"],
            neighbour_sigma=opts["neighbour_sigma"],
            max_iterations=opts["max_iterations"],
            noise_known=noise_known,
            exclude=opts.get("exclude"),
            continuum=opts["continuum"],
            central_weighting=opts["central_weighting"],
            mask_margin=opts["mask_margin"],
            robust_masking=opts["robust_masking"],
            fwhm_bounds=opts.get("fwhm_bounds"),
            neighbour_pixels=opts["neighbour_pixels"],
            max_gamma=opts.get("max_gamma"),
        )
    except LineFitError as exc:
        raise LineOutsideSpectrumError(str(exc)) from None
    ew = fit.ew * 1000.0
    ew_err = fit.ew_uncertainty * 1000.0
    masked = spectrum.ivar.copy()
    masked[np.searchsorted(spectrum.wavelength, fit.wavelength[~fit.mask])] = 0.0
    try:
        _, noise_err = fixed_line_ew_uncertainty(
            spectrum.wavelength,
            spectrum.flux,
            masked,
            fit.parameters["center"],
            fit.fwhm,
            window=opts["window"],
            noise_known=noise_known,
        )
    except LineFitError as exc:
        raise LineOutsideSpectrumError(str(exc)) from None
    noise_err *= 1000.0
    comments: list[str] = []
    detected = ew > opts["detection_sigma"] * ew_err and ew > 0
    if not fit.success:
        comments.append(f"fit did not converge ({fit.message})")
    if abs(fit.parameters["center"] - center) > 0.95 * opts["max_center_shift"]:
        comments.append("fitted centre at the allowed-shift limit")
    fwhm_range = opts.get("fwhm_range")
    if fwhm_range is not None and not fwhm_range[0] <= fit.fwhm <= fwhm_range[1]:
        comments.append(f"FWHM {fit.fwhm:.3f} Å outside {fwhm_range[0]:.3f}-{fwhm_range[1]:.3f} Å")
    if not math.isfinite(ew_err):
        comments.append("no finite uncertainty")
    if opts.get("comment"):
        comments.append(str(opts["comment"]))
    acceptable = not [c for c in comments if c != opts.get("comment")]
    hashes = [ln.hash for ln in members]
    return {
        "line_hash": group_hash(hashes),
        "line_hashes": hashes,
        "method": "ew",
        "profile": fit.profile,
        "wavelength": float(center),
        "ew": float(ew),
        "ew_uncertainty": float(ew_err),
        "ew_noise_uncertainty": float(noise_err),
        "reduced_ew": float(math.log10(fit.ew / center)) if fit.ew > 0 else math.nan,
        "is_limit": not detected,
        "upper_limit": float(opts["detection_sigma"] * noise_err) if not detected else math.nan,
        "acceptable": bool(acceptable),
        "comments": comments,
        "fwhm": float(fit.fwhm),
        "parameters": dict(fit.parameters),
        "uncertainties": dict(fit.uncertainties),
        "covariance": np.asarray(fit.covariance, dtype=np.float64),
        "parameter_names": list(fit.parameter_names),
        "reference_wavelength": fit.reference_wavelength,
        "window_wavelength": fit.wavelength.copy(),
        "mask": fit.mask.copy(),
        "model": fit.model.copy(),
        "chi2": fit.chi2,
        "dof": fit.dof,
        "noise_known": bool(noise_known),
        "options": {k: v for k, v in opts.items() if k != "exclude"}
        | {"exclude": [tuple(map(float, r)) for r in opts.get("exclude") or []]},
        "abundances": {},
        "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def count_measurements(measurements: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Count measurements in three disjoint classes (one definition for every report).

    Returns ``acceptable_detections`` (acceptable, not a limit), ``upper_limits`` (acceptable
    limits: EW below the detection threshold) and ``not_acceptable`` (everything else).
    """
    detections = sum(bool(m["acceptable"]) and not m["is_limit"] for m in measurements)
    limits = sum(bool(m["acceptable"]) and bool(m["is_limit"]) for m in measurements)
    return {
        "acceptable_detections": detections,
        "upper_limits": limits,
        "not_acceptable": len(measurements) - detections - limits,
    }


def flag_resolution_outliers(
    measurements: Sequence[dict[str, Any]], tolerance: float = 1.6
) -> float:
    """Mark detected lines whose FWHM/λ is far from the median of the others as not acceptable.

    All lines in a spectrum share the instrumental resolution, so a fit much broader or
    narrower than the rest has latched onto a blend or noise.

    Parameters
    ----------
    measurements : sequence of dict
        Measurements from :func:`measure_equivalent_width` (changed in place).
    tolerance : float
        Factor allowed either side of the median FWHM/λ.

    Returns
    -------
    float
        The median resolving power λ/FWHM of the detected, acceptable lines (NaN if none).
    """
    good = [
        m["fwhm"] / m["wavelength"] for m in measurements if m["acceptable"] and not m["is_limit"]
    ]
    if len(good) < 5:
        return math.nan
    median = float(np.median(good))
    for m in measurements:
        if m["is_limit"]:
            continue
        ratio = m["fwhm"] / m["wavelength"] / median
        if not 1.0 / tolerance <= ratio <= tolerance and m["acceptable"]:
            m["acceptable"] = False
            m["comments"].append(
                f"FWHM/wavelength {ratio:.2f} times the median of the spectrum's lines "
                "(blend or noise?)"
            )
    return 1.0 / median
