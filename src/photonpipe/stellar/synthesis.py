"""Synthesis measurements: abundances fitted to a spectrum region with a synthetic spectrum.

:func:`fit_synthesis` fits, over a wavelength region of a normalised rest-frame spectrum, one or
more abundances (log ε), a residual radial velocity, a Gaussian smoothing kernel (FWHM, for the
instrument and macroturbulence together) and a continuum (a constant or a linear function of
wavelength) by weighted least squares (``scipy.optimize.least_squares``, trust-region
reflective). Isotope ratios (``{"C12/C13": 10}``) are inputs, passed to the radiative-transfer
code; they matter only for molecular lines.

Model: the code's normalised synthetic flux on a uniform grid (``step`` Å) over the region
widened by a margin (0.3 Å + 2.2 × the largest FWHM allowed + the largest RV shift),
convolved with a Gaussian of the FWHM, shifted by (1 + v/c) and interpolated to the observed
pixels, times the continuum
c₀ + c₁ (λ − λ_mid). One synthesis per trial abundance vector (cached): the Jacobian of the
abundances is by forward differences of 0.02 dex, that of the other parameters by differences
of the cached synthesis.

Uncertainties: the covariance (JᵀJ)⁻¹ of the weighted residuals. When the spectrum's noise is
not known (its ``ivar`` is an estimate, ``meta["noise_known"]`` false), it is scaled by the
reduced χ² (``error_scale``).

Detection and upper limits: for each fitted element, χ² is profiled (the other parameters
refitted) with that element's abundance lowered by 5 dex (its lines gone). When this raises
χ² by less than ``detection_delta_chi2`` (default 9, "3σ") the element is not detected and the
result is an upper limit: the abundance above the best fit at which the profiled χ² exceeds its
minimum by that Δχ² (Brent's method).

:func:`synth_measurement` does this for a session: ``--line HASH`` (the line's element over
± ``half_width`` Å) or a region and elements, at the adopted (or given) stellar parameters,
and stores the result as ``<hash>|synth`` (the line's hash, or the group hash of the fitted
elements' lines in the region) next to the EW measurement ``<hash>|ew``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import brentq, least_squares

from photonpipe.errors import EXIT_USAGE, PhotonpipeError
from photonpipe.stellar.abundances import SOLAR_ASPLUND2009, species_key
from photonpipe.stellar.linelist import ELEMENTS, Line, group_hash
from photonpipe.stellar.photospheres import Photosphere
from photonpipe.stellar.radiative_transfer import RadiativeTransfer, species_name

if TYPE_CHECKING:
    from photonpipe.spectra.spectrum import Spectrum
    from photonpipe.stellar.analysis import Physics
    from photonpipe.stellar.session import Session

C_KMS = 299792.458
#: Δχ² below which an element counts as not detected, and which sets its upper limit.
DETECTION_DELTA_CHI2 = 9.0
#: Abundance step of the finite-difference Jacobian [dex].
ABUNDANCE_STEP = 0.02
#: Lowering of an abundance that removes its lines, for the detection test [dex].
ABSENT_OFFSET = 5.0
CONTINUA = ("constant", "linear")


class SynthesisError(PhotonpipeError):
    """A synthesis fit cannot be done with these inputs (names the region and the problem).

    An input error (exit code 2); a radiative-transfer run that fails raises the driver's own
    error instead.
    """

    exit_code = EXIT_USAGE


def parse_isotopes(text: str | Mapping[str, float] | None) -> dict[str, float]:
    """Read isotope ratios: ``"C12/C13=10,N14/N15=100"`` or a mapping → ``{"C12/C13": 10.0}``.

    Raises
    ------
    SynthesisError
        Not ``NAME=RATIO`` items with a positive ratio.
    """
    if text is None:
        return {}
    items = text.items() if isinstance(text, Mapping) else _pairs(str(text))
    out: dict[str, float] = {}
    for name, value in items:
        try:
            ratio = float(value)
        except (TypeError, ValueError):
            raise SynthesisError(f"isotope ratio {name}={value!r} is not a number") from None
        if not (math.isfinite(ratio) and ratio > 0):
            raise SynthesisError(f"isotope ratio {name}={value!r} must be positive")
        if name not in ISOTOPE_SPECIES:
            raise SynthesisError(
                f"unknown isotope ratio {name!r} (known: {', '.join(sorted(ISOTOPE_SPECIES))})"
            )
        out[name] = ratio
    return out


def _pairs(text: str) -> list[tuple[str, str]]:
    pairs = []
    for item in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep:
            raise SynthesisError(f"isotope ratio {item!r} is not NAME=RATIO (e.g. C12/C13=10)")
        pairs.append((name.strip(), value.strip()))
    return pairs


#: Isotope ratios understood, and the MOOG isotope codes of the minor isotope's molecules
#: (ratio = major/minor; MOOG wants the inverse fraction for each isotopic species).
ISOTOPE_SPECIES: dict[str, tuple[str, ...]] = {
    "C12/C13": ("106.00113", "607.01213", "606.01213"),
    "N14/N15": ("607.01215",),
    "Mg24/Mg25": ("112.00125",),
    "Mg24/Mg26": ("112.00126",),
}


def parse_elements(text: str | Sequence[str]) -> list[int]:
    """Atomic numbers of element symbols: ``"C,N"`` → ``[6, 7]``."""
    names = [t.strip() for t in (text.split(",") if isinstance(text, str) else text)]
    out = []
    for name in filter(None, names):
        symbol = name.capitalize()
        if symbol not in ELEMENTS:
            raise SynthesisError(f"unknown element {name!r}")
        z = ELEMENTS.index(symbol) + 1
        if z not in out:
            out.append(z)
    if not out:
        raise SynthesisError("no element to fit")
    return out


@dataclass
class _Observed:
    wavelength: np.ndarray
    flux: np.ndarray
    weight: np.ndarray  # 1/σ


def gaussian_smooth(flux: np.ndarray, fwhm: float, step: float) -> np.ndarray:
    """Convolve a uniformly sampled flux with a Gaussian of ``fwhm`` [Å] (grid ``step`` [Å]).

    The ends are padded with their edge values. A FWHM below a tenth of the step returns the
    flux unchanged.
    """
    sigma = fwhm / (2.0 * math.sqrt(2.0 * math.log(2.0))) / step
    if sigma < 0.1:
        return flux
    half = max(1, math.ceil(5.0 * sigma))
    x = np.arange(-half, half + 1, dtype=float)
    kernel = np.exp(-0.5 * (x / sigma) ** 2)
    kernel /= kernel.sum()
    padded = np.concatenate([np.full(half, flux[0]), flux, np.full(half, flux[-1])])
    return np.convolve(padded, kernel, mode="valid")


class _Model:
    """Synthetic spectra of one region, cached by abundance vector."""

    def __init__(
        self,
        code: RadiativeTransfer,
        photosphere: Photosphere,
        microturbulence: float,
        lines: Sequence[Line],
        synth_range: tuple[float, float],
        step: float,
        base: Mapping[int, float],
        elements: Sequence[int],
        isotopes: Mapping[str, float],
    ) -> None:
        self.code, self.photosphere, self.vt = code, photosphere, microturbulence
        self.lines, self.range, self.step = list(lines), synth_range, step
        self.base, self.elements, self.isotopes = dict(base), list(elements), dict(isotopes)
        self.cache: dict[tuple[float, ...], tuple[np.ndarray, np.ndarray]] = {}
        self.syntheses = 0

    def synthesis(self, abundances: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        key = tuple(round(float(a), 6) for a in np.atleast_1d(abundances))
        if key not in self.cache:
            values = dict(self.base)
            values.update(zip(self.elements, key, strict=True))
            result = self.code.synthesize(
                self.photosphere, self.vt, self.lines, self.range, self.step, values,
                self.isotopes or None,
            )  # fmt: skip
            self.syntheses += 1
            self.cache[key] = (np.asarray(result.wavelength), np.asarray(result.flux))
        return self.cache[key]

    def flux(
        self,
        abundances: ArrayLike,
        rv: float,
        fwhm: float,
        continuum: Sequence[float],
        wavelength: np.ndarray,
        centre: float,
    ) -> np.ndarray:
        wave, flux = self.synthesis(abundances)
        smooth = gaussian_smooth(flux, fwhm, self.step)
        shifted = wave * (1.0 + rv / C_KMS)
        level = continuum[0] + (continuum[1] if len(continuum) > 1 else 0.0) * (wavelength - centre)
        return np.interp(wavelength, shifted, smooth) * level


class _Objective:
    """Weighted residuals of a region's synthesis fit and their Jacobian.

    The parameter vector is the fitted abundances (log ε), then the residual RV [km s⁻¹] (when
    fitted), the FWHM [Å] (when fitted) and the continuum coefficients; with the abundances
    held fixed (profiled χ²) it holds the parameters after the abundances only.
    """

    def __init__(
        self,
        model: _Model,
        data: _Observed,
        centre: float,
        n_ab: int,
        fit_rv: bool,
        fit_smoothing: bool,
        fwhm0: float,
    ) -> None:
        self.model, self.data, self.centre = model, data, centre
        self.n_ab, self.fit_rv, self.fit_smoothing, self.fwhm0 = n_ab, fit_rv, fit_smoothing, fwhm0

    def unpack(
        self, x: np.ndarray, fixed: np.ndarray | None
    ) -> tuple[np.ndarray, float, float, list[float]]:
        """Split a parameter vector into abundances, RV [km s⁻¹], FWHM [Å] and continuum.

        Parameters
        ----------
        x : ndarray
            Parameter vector (without the abundances when ``fixed`` is given).
        fixed : ndarray or None
            Abundances held fixed [log ε], or None when they lead ``x``.

        Returns
        -------
        tuple
            Abundances, RV (0 when not fitted), FWHM (the start value when not fitted) and the
            continuum coefficients.
        """
        ab, rest = (x[: self.n_ab], x[self.n_ab :]) if fixed is None else (fixed, x)
        k = 0
        rv = float(rest[k]) if self.fit_rv else 0.0
        k += int(self.fit_rv)
        width = float(rest[k]) if self.fit_smoothing else self.fwhm0
        k += int(self.fit_smoothing)
        return ab, rv, width, [float(v) for v in rest[k:]]

    def residual_for(self, ab_fixed: np.ndarray | None) -> Callable[[np.ndarray], np.ndarray]:
        """Return the weighted residuals (observed − model)/σ as a function of the parameters.

        Parameters
        ----------
        ab_fixed : ndarray or None
            Abundances held fixed [log ε], or None to fit them.

        Returns
        -------
        callable
            Parameter vector → residuals at the used pixels.
        """

        def residual(x: np.ndarray) -> np.ndarray:
            ab, rv, width, cont = self.unpack(x, ab_fixed)
            predicted = self.model.flux(ab, rv, width, cont, self.data.wavelength, self.centre)
            return (self.data.flux - predicted) * self.data.weight

        return residual

    def jacobian_for(self, ab_fixed: np.ndarray | None) -> Callable[[np.ndarray], np.ndarray]:
        """Return the forward-difference Jacobian of :meth:`residual_for` (steps: :func:`_step`).

        Parameters
        ----------
        ab_fixed : ndarray or None
            Abundances held fixed [log ε], or None to fit them.

        Returns
        -------
        callable
            Parameter vector → Jacobian (pixels × parameters).
        """
        residual = self.residual_for(ab_fixed)
        n_skip = 0 if ab_fixed is None else self.n_ab

        def jacobian(x: np.ndarray) -> np.ndarray:
            r0 = residual(x)
            jac = np.empty((r0.size, x.size))
            for j in range(x.size):
                h = _step(j + n_skip, self.n_ab, self.fit_rv, self.fit_smoothing)
                moved = x.copy()
                moved[j] += h
                jac[:, j] = (residual(moved) - r0) / h
            return jac

        return jacobian


def _region_pixels(
    wavelength: ArrayLike,
    flux: ArrayLike,
    ivar: ArrayLike,
    lo: float,
    hi: float,
    n_free: int,
    label: str,
) -> _Observed:
    """Select the usable pixels of the region (finite, positive ivar): ``n_free`` + 3 or more.

    Parameters
    ----------
    wavelength, flux, ivar : array-like
        Spectrum: wavelength [Å], normalised flux, inverse variance.
    lo, hi : float
        Region [Å].
    n_free : int
        Number of fitted parameters.
    label : str
        The region, for error messages.

    Returns
    -------
    _Observed
        Wavelength [Å], flux and weight (1/σ) of the pixels used.

    Raises
    ------
    SynthesisError
        Too few usable pixels.
    """
    wave = np.asarray(wavelength, dtype=float)
    obs = np.asarray(flux, dtype=float)
    inv = np.asarray(ivar, dtype=float)
    use = (wave >= lo) & (wave <= hi) & np.isfinite(obs) & np.isfinite(inv) & (inv > 0)
    if use.sum() < n_free + 3:
        raise SynthesisError(f"{label}: {int(use.sum())} usable pixels are too few to fit")
    return _Observed(wave[use], obs[use], np.sqrt(inv[use]))


def _base_abundances(
    photosphere: Photosphere,
    abundances: Mapping[int, float] | None,
    elements: Sequence[int],
    label: str,
) -> dict[int, float]:
    """Return the abundances of the synthesis: scaled solar, or those given [log ε].

    Parameters
    ----------
    photosphere : Photosphere
        Model atmosphere (its [M/H] scales the solar abundances of metals).
    abundances : mapping of int to float, optional
        log ε by atomic number that replace the scaled solar values.
    elements : sequence of int
        Fitted atomic numbers (each needs a starting value).
    label : str
        The region, for error messages.

    Returns
    -------
    dict of int to float
        log ε by atomic number.

    Raises
    ------
    SynthesisError
        A fitted element has no starting abundance.
    """
    base = {
        z: v + (photosphere.metallicity if z > 2 else 0.0) for z, v in SOLAR_ASPLUND2009.items()
    }
    base.update({int(z): float(v) for z, v in (abundances or {}).items()})
    for z in elements:
        if z not in base:
            raise SynthesisError(f"{label}: no solar abundance of {ELEMENTS[z - 1]} to start from")
    return base


def _start_and_bounds(
    start: np.ndarray,
    data: _Observed,
    fwhm0: float,
    fwhm_max: float,
    *,
    fit_rv: bool,
    fit_smoothing: bool,
    continuum: str,
    step: float,
    max_rv: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Build the starting parameter vector and its bounds (layout: :class:`_Objective`).

    Abundances may move 4 dex down and 3 dex up, the RV by ± ``max_rv`` [km s⁻¹], the FWHM
    from a fifth of the grid step to ``fwhm_max`` [Å], the continuum level in 0.5–1.5 and its
    slope in ± 1 Å⁻¹. The continuum starts at the median of the brightest 40 % of the pixels.

    Parameters
    ----------
    start : ndarray
        Starting abundances [log ε].
    data : _Observed
        Pixels used.
    fwhm0, fwhm_max : float
        Starting and largest FWHM [Å].
    fit_rv, fit_smoothing : bool
        Whether the RV and the FWHM are fitted.
    continuum : {"constant", "linear"}
        Continuum model.
    step : float
        Synthesis grid step [Å].
    max_rv : float
        Bound of the residual RV [km s⁻¹].

    Returns
    -------
    tuple of ndarray
        Start (inside the bounds), lower and upper bounds.
    """
    cont0 = [float(np.median(data.flux[data.flux > np.percentile(data.flux, 60)]))]
    if continuum == "linear":
        cont0.append(0.0)
    nuisance0 = ([0.0] if fit_rv else []) + ([fwhm0] if fit_smoothing else []) + cont0
    nuisance_lo = ([-max_rv] if fit_rv else []) + ([0.2 * step] if fit_smoothing else [])
    nuisance_hi = ([max_rv] if fit_rv else []) + ([fwhm_max] if fit_smoothing else [])
    nuisance_lo += [0.5] + ([-1.0] if continuum == "linear" else [])
    nuisance_hi += [1.5] + ([1.0] if continuum == "linear" else [])
    x0 = np.concatenate([start, nuisance0])
    lower = np.concatenate([start - 4.0, nuisance_lo])
    upper = np.concatenate([start + 3.0, nuisance_hi])
    return np.clip(x0, lower + 1e-9, upper - 1e-9), lower, upper


def _formal_errors(fit: Any, noise_known: bool) -> tuple[float, int, float, np.ndarray]:
    """Compute χ², degrees of freedom, error scale and formal errors of a least-squares fit.

    Parameters
    ----------
    fit : scipy.optimize.OptimizeResult
        Result of ``least_squares`` (weighted residuals ``fun`` and Jacobian ``jac``).
    noise_known : bool
        Whether the weights are the true noise (else the errors are scaled by √(χ²/dof)).

    Returns
    -------
    tuple
        χ², dof, error scale and the errors of the parameters (NaN when JᵀJ is singular).
    """
    chi2 = float(np.sum(fit.fun**2))
    dof = max(1, fit.fun.size - fit.x.size)
    scale = 1.0 if noise_known else math.sqrt(max(chi2 / dof, 1e-12))
    try:
        covariance = np.linalg.inv(fit.jac.T @ fit.jac) * scale**2
        errors = np.sqrt(np.clip(np.diag(covariance), 0.0, None))
    except np.linalg.LinAlgError:
        errors = np.full(fit.x.size, np.nan)
    return chi2, dof, scale, errors


def _detections(
    objective: _Objective,
    best: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    scale: float,
    chi2_min: float,
    elements: Sequence[int],
    detection_delta_chi2: float,
) -> tuple[dict[str, float], dict[str, float]]:
    """Test each fitted element for detection (Δχ²); give upper limits of those not detected.

    Parameters
    ----------
    objective : _Objective
        The fit's residuals.
    best : ndarray
        Best-fit parameter vector.
    lower, upper : ndarray
        Bounds of the parameter vector.
    scale : float
        Error scale (χ² values are divided by its square).
    chi2_min : float
        Scaled χ² of the best fit.
    elements : sequence of int
        Fitted atomic numbers.
    detection_delta_chi2 : float
        Δχ² threshold for detection and upper limits.

    Returns
    -------
    tuple of dict
        Δχ² of removing each element's lines (by symbol), and the upper limits [log ε] of the
        elements not detected (NaN when not constrained within 3 dex of the best fit).
    """
    n_ab = objective.n_ab

    def profiled_chi2(index: int, value: float) -> float:
        """χ² with abundance ``index`` held at ``value``, the nuisance parameters refitted."""
        fixed = best[:n_ab].copy()
        fixed[index] = value
        sub = least_squares(
            objective.residual_for(fixed), best[n_ab:], jac=objective.jacobian_for(fixed),
            bounds=(lower[n_ab:], upper[n_ab:]), method="trf", x_scale="jac", max_nfev=30,
        )  # fmt: skip
        return float(np.sum(sub.fun**2)) / scale**2

    limits: dict[str, float] = {}
    deltas: dict[str, float] = {}
    for i, z in enumerate(elements):
        symbol = ELEMENTS[z - 1]
        delta = profiled_chi2(i, best[i] - ABSENT_OFFSET) - chi2_min
        deltas[symbol] = float(delta)
        if delta < detection_delta_chi2:
            target = chi2_min + detection_delta_chi2
            a, b = float(best[i]), float(best[i]) + 3.0
            if profiled_chi2(i, b) < target:
                limits[symbol] = math.nan  # the lines are too weak to constrain it at all
            else:
                limits[symbol] = float(
                    brentq(lambda v, i=i, t=target: profiled_chi2(i, v) - t, a, b, xtol=0.005)
                )
    return deltas, limits


def fit_synthesis(
    code: RadiativeTransfer,
    photosphere: Photosphere,
    microturbulence: float,
    lines: Sequence[Line],
    wavelength: ArrayLike,
    flux: ArrayLike,
    ivar: ArrayLike,
    region: tuple[float, float],
    elements: Sequence[int],
    abundances: Mapping[int, float] | None = None,
    *,
    isotopes: Mapping[str, float] | None = None,
    fwhm: float | None = None,
    fit_rv: bool = True,
    fit_smoothing: bool = True,
    continuum: str = "constant",
    step: float = 0.01,
    max_rv: float = 10.0,
    noise_known: bool = True,
    detection_delta_chi2: float = DETECTION_DELTA_CHI2,
) -> dict[str, Any]:
    """Fit abundances, residual RV, Gaussian smoothing and continuum over a region.

    Parameters
    ----------
    code : RadiativeTransfer
        Driver that can synthesise.
    photosphere : Photosphere
        Model atmosphere.
    microturbulence : float
        Microturbulence [km s⁻¹].
    lines : sequence of Line
        Lines in and near the region (atomic lines for SME; MOOG also takes molecules).
    wavelength, flux, ivar : array-like
        Normalised rest-frame spectrum: wavelength [Å], flux, inverse variance.
    region : (float, float)
        Fitted wavelength range [Å].
    elements : sequence of int
        Atomic numbers whose abundances are fitted.
    abundances : mapping of int to float, optional
        log ε of other elements and the starting values of the fitted ones (default:
        Asplund et al. 2009 + the model [M/H]).
    isotopes : mapping of str to float, optional
        Isotope ratios (see :data:`ISOTOPE_SPECIES`).
    fwhm : float, optional
        Starting (or, with ``fit_smoothing=False``, fixed) Gaussian FWHM [Å]; default λ/30 000.
    fit_rv, fit_smoothing : bool
        Fit the residual RV [km s⁻¹] and the FWHM (else hold them at 0 and ``fwhm``).
    continuum : {"constant", "linear"}
        Continuum model (multiplies the synthesis).
    step : float
        Synthesis grid step [Å].
    max_rv : float
        Bound of the residual RV [km s⁻¹].
    noise_known : bool
        Whether ``ivar`` is the true noise (else the errors are scaled by the reduced χ²).
    detection_delta_chi2 : float
        Δχ² threshold for detection and upper limits.

    Returns
    -------
    dict
        ``abundances``, ``abundance_uncertainties`` (formal), ``abundance_upper_limits``
        (elements not detected), ``detection_delta_chi2`` (per element), ``rv``/``rv_error``
        [km s⁻¹], ``fwhm``/``fwhm_error`` [Å], ``continuum`` and its errors, ``chi2``, ``dof``,
        ``n_pixels``, ``error_scale``, ``syntheses``, ``seconds``, ``model`` (the best-fit
        flux at the pixels) and ``wavelength``/``flux`` (the pixels used).
    """
    started = time.perf_counter()
    if continuum not in CONTINUA:
        raise SynthesisError(f"continuum must be one of {', '.join(CONTINUA)}, not {continuum!r}")
    lo, hi = float(min(region)), float(max(region))
    label = f"region {lo:.3f}-{hi:.3f} Å"
    if not hi - lo > 0:
        raise SynthesisError(f"{label} is empty")
    elements = [int(z) for z in elements]
    n_free = len(elements) + int(fit_rv) + int(fit_smoothing) + (2 if continuum == "linear" else 1)
    data = _region_pixels(wavelength, flux, ivar, lo, hi, n_free, label)
    centre = 0.5 * (lo + hi)
    fwhm0 = float(fwhm) if fwhm is not None and fwhm > 0 else centre / 30000.0
    fwhm_max = max(4.0 * fwhm0, 0.5)
    margin = 0.3 + 2.2 * fwhm_max + hi * max_rv / C_KMS
    base = _base_abundances(photosphere, abundances, elements, label)
    start = np.array([base[z] for z in elements])
    model = _Model(
        code, photosphere, microturbulence, lines, (lo - margin, hi + margin), step, base,
        elements, parse_isotopes(isotopes),
    )  # fmt: skip
    n_ab = len(elements)
    objective = _Objective(model, data, centre, n_ab, fit_rv, fit_smoothing, fwhm0)
    x0, lower, upper = _start_and_bounds(
        start, data, fwhm0, fwhm_max, fit_rv=fit_rv, fit_smoothing=fit_smoothing,
        continuum=continuum, step=step, max_rv=max_rv,
    )  # fmt: skip
    fit = least_squares(
        objective.residual_for(None), x0, jac=objective.jacobian_for(None), bounds=(lower, upper),
        method="trf", x_scale="jac", xtol=1e-6, ftol=1e-8, max_nfev=60,
    )  # fmt: skip
    chi2, dof, scale, errors = _formal_errors(fit, noise_known)
    best = fit.x.copy()
    deltas, limits = _detections(
        objective, best, lower, upper, scale, chi2 / scale**2, elements, detection_delta_chi2
    )
    _, rv, width, cont = objective.unpack(best, None)
    k = n_ab
    rv_error = float(errors[k]) if fit_rv else math.nan
    k += int(fit_rv)
    fwhm_error = float(errors[k]) if fit_smoothing else math.nan
    k += int(fit_smoothing)
    predicted = model.flux(best[:n_ab], rv, width, cont, data.wavelength, centre)
    return {
        "region": [lo, hi],
        "elements": [ELEMENTS[z - 1] for z in elements],
        "abundances": {ELEMENTS[z - 1]: float(best[i]) for i, z in enumerate(elements)},
        "abundance_uncertainties": {
            ELEMENTS[z - 1]: float(errors[i]) for i, z in enumerate(elements)
        },
        "abundance_upper_limits": limits,
        "detection_delta_chi2": deltas,
        "is_limit": bool(limits),
        "rv": rv,
        "rv_error": rv_error,
        "fit_rv": fit_rv,
        "fwhm": width,
        "fwhm_error": fwhm_error,
        "fit_smoothing": fit_smoothing,
        "continuum_model": continuum,
        "continuum": cont,
        "continuum_errors": [float(e) for e in errors[k:]],
        "isotopes": dict(model.isotopes),
        "fixed_abundances": {
            ELEMENTS[z - 1]: float(v) for z, v in (abundances or {}).items() if z not in elements
        },
        "chi2": chi2,
        "dof": int(dof),
        "n_pixels": int(fit.fun.size),
        "error_scale": scale,
        "converged": bool(fit.status > 0),
        "message": str(fit.message),
        "syntheses": model.syntheses,
        "step": step,
        "seconds": time.perf_counter() - started,
        "wavelength": data.wavelength,
        "flux": data.flux,
        "model": predicted,
    }


def _step(j: int, n_ab: int, fit_rv: bool, fit_smoothing: bool) -> float:
    if j < n_ab:
        return ABUNDANCE_STEP
    j -= n_ab
    if fit_rv:
        if j == 0:
            return 0.05  # km/s
        j -= 1
    if fit_smoothing:
        if j == 0:
            return 0.002  # Å
        j -= 1
    return 1e-4


# --- sessions -------------------------------------------------------------------------------


def synth_measurement(
    session: Session,
    physics: Physics,
    line_hash: str | None = None,
    region: tuple[float, float] | None = None,
    elements: Sequence[str] | str | None = None,
    parameters: Mapping[str, float] | None = None,
    half_width: float = 1.5,
    isotopes: Mapping[str, float] | str | None = None,
    parameter_errors: bool = False,
    **options: Any,
) -> dict[str, Any]:
    """Fit a synthesis to a session's spectrum and store it as ``<hash>|synth``.

    Parameters
    ----------
    session : Session
        The session (normalised, rest-frame spectrum; lines added).
    physics : Physics
        Grid and code (one that synthesises).
    line_hash : str, optional
        Fit this line's element over the line ± ``half_width`` [Å].
    region : (float, float), optional
        Or fit ``elements`` over this region [Å].
    elements : str or sequence of str, optional
        Element symbols (``"C,N"``); default (with ``line_hash``) the line's element.
    parameters : mapping, optional
        ``teff``, ``logg``, ``vt``, ``feh``; default the adopted stellar parameters.
    half_width : float
        Half width of the region of a ``line_hash`` fit [Å].
    isotopes : mapping or str, optional
        Isotope ratios (``"C12/C13=10"``).
    parameter_errors : bool
        Also refit with each of Teff, log g, vt and [M/H] moved by its σ (the parameters'
        ``*_error``; −σ where +σ leaves the grid) and store the abundance changes
        (``abundance_parameter_errors``, signed for +σ) and their quadrature sum with the
        formal error (``abundance_total_uncertainties``); correlations are ignored.
    **options
        Options of :func:`fit_synthesis` (``continuum``, ``fit_rv``, ``fit_smoothing``,
        ``fwhm``, ``step``, ``detection_delta_chi2``).

    Returns
    -------
    dict
        The stored measurement.
    """
    where = str(session.path or "session")
    key_hash, lo, hi, z_list = _fit_target(session, line_hash, region, elements, half_width, where)
    parameters = _stellar_parameters(session, parameters, where)
    params = {k: float(parameters[k]) for k in ("teff", "logg", "vt", "feh")}
    near = [ln for ln in session.lines if lo - 2.0 <= ln.wavelength <= hi + 2.0]
    fitted = [ln for ln in near if int(ln.species) in z_list and lo <= ln.wavelength <= hi]
    if not fitted:
        names = ",".join(ELEMENTS[z - 1] for z in z_list)
        raise SynthesisError(f"{where}: no {names} line of the session in {lo:.3f}-{hi:.3f} Å")
    if key_hash is None:
        key_hash = group_hash(ln.hash for ln in fitted)
    spectrum = _region_spectrum(session, lo, hi, where)
    start = _session_abundances(session, params["feh"])
    options.setdefault("fwhm", _session_fwhm(session, 0.5 * (lo + hi)))
    model = physics.grid.interpolate(params["teff"], params["logg"], params["feh"])
    try:
        result = fit_synthesis(
            physics.code, model, params["vt"], near, spectrum.wavelength, spectrum.flux,
            spectrum.ivar, (lo, hi), z_list, start, isotopes=parse_isotopes(isotopes),
            noise_known=bool(spectrum.meta.get("noise_known", False)), **options,
        )  # fmt: skip
    except SynthesisError as exc:
        raise SynthesisError(f"{where}: {exc}") from None
    sensitivities: dict[str, dict[str, float]] = {}
    if parameter_errors:
        sensitivities = _parameter_sensitivities(
            physics, params, parameters, near, spectrum, (lo, hi), z_list,
            {**start, **{z: result["abundances"][ELEMENTS[z - 1]] for z in z_list}},
            parse_isotopes(isotopes), result, options,
        )  # fmt: skip
    measurement = {
        "method": "synth",
        "line_hash": key_hash,
        "line_hashes": [ln.hash for ln in fitted],
        "region_line_hashes": [ln.hash for ln in near],
        "wavelength": float(fitted[0].wavelength) if line_hash else 0.5 * (lo + hi),
        "species": sorted({species_key(ln.species) for ln in fitted}),
        "acceptable": bool(result["converged"]),
        "comments": [],
        "spectrum": spectrum.meta.get("label", ""),
        "parameters": params,
        "physics": physics.record(),
        "fitted": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "options": {"half_width": half_width, **options},
        **{k: v for k, v in result.items() if k not in ("wavelength", "flux", "model")},
        "fit_wavelength": result["wavelength"].tolist(),
        "fit_flux": result["flux"].tolist(),
        "fit_model": result["model"].tolist(),
    }
    if parameter_errors:
        measurement["abundance_parameter_errors"] = sensitivities
        measurement["abundance_total_uncertainties"] = _total_uncertainties(result, sensitivities)
    measurement["comments"].extend(
        _limit_comments(result, options.get("detection_delta_chi2", DETECTION_DELTA_CHI2))
    )
    _store_measurement(session, physics, f"{key_hash}|synth", measurement, result)
    return measurement


def _fit_target(
    session: Session,
    line_hash: str | None,
    region: tuple[float, float] | None,
    elements: Sequence[str] | str | None,
    half_width: float,
    where: str,
) -> tuple[str | None, float, float, list[int]]:
    """Find the region and elements of a session fit: a line ± ``half_width``, or a region.

    Parameters
    ----------
    session : Session
        The session.
    line_hash : str, optional
        Hash of a session line (a ``|method`` suffix is ignored).
    region : (float, float), optional
        Or a wavelength region [Å].
    elements : str or sequence of str, optional
        Element symbols; needed with ``region``, default the line's element.
    half_width : float
        Half width of the region around the line [Å].
    where : str
        The session, for error messages.

    Returns
    -------
    tuple
        The line's hash (None for a region), the region's ends [Å] and the fitted atomic
        numbers.

    Raises
    ------
    SynthesisError
        Neither or both of a line and a region, an unknown line, or a region without elements.
    """
    if (line_hash is None) == (region is None):
        raise SynthesisError(f"{where}: give a line hash or a region (not both)")
    if line_hash is not None:
        key_hash = line_hash.split("|", 1)[0]
        if key_hash not in session.state["spectral_lines"]:
            raise SynthesisError(f"{where}: no line {key_hash!r} in the session")
        target = Line.from_dict(session.state["spectral_lines"][key_hash])
        lo, hi = target.wavelength - half_width, target.wavelength + half_width
        return key_hash, lo, hi, parse_elements(elements) if elements else [int(target.species)]
    assert region is not None
    lo, hi = float(min(region)), float(max(region))
    if elements is None:
        raise SynthesisError(f"{where}: a region fit needs --elements")
    return None, lo, hi, parse_elements(elements)


def _stellar_parameters(
    session: Session, parameters: Mapping[str, float] | None, where: str
) -> Mapping[str, Any]:
    """Return the stellar parameters of a fit: those given, else the session's adopted ones.

    Parameters
    ----------
    session : Session
        The session.
    parameters : mapping, optional
        ``teff`` [K], ``logg`` [dex, cgs], ``vt`` [km s⁻¹], ``feh`` [dex] (and ``*_error``).
    where : str
        The session, for error messages.

    Returns
    -------
    mapping
        The parameters.

    Raises
    ------
    AnalysisError
        None given and none adopted.
    """
    from photonpipe.stellar.analysis import AnalysisError, adopted_parameters

    if parameters is not None:
        return parameters
    adopted = adopted_parameters(session)
    if adopted is None:
        raise AnalysisError(
            f"{where}: no stellar parameters: run `photonpipe session solve` first or "
            "give --teff/--logg/--vt/--feh"
        )
    return adopted


def _region_spectrum(session: Session, lo: float, hi: float, where: str) -> Spectrum:
    """Return the session spectrum a region [Å] is measured on (it must cover the region).

    Parameters
    ----------
    session : Session
        The session.
    lo, hi : float
        Region [Å].
    where : str
        The session, for error messages.

    Returns
    -------
    Spectrum
        Normalised rest-frame spectrum.

    Raises
    ------
    SynthesisError
        No spectrum covers the region.
    """
    try:
        spectrum = session.measurement_spectrum(0.5 * (lo + hi))
    except PhotonpipeError as exc:
        raise SynthesisError(f"{where}: {exc}") from None
    if not (spectrum.wavelength[0] <= lo and spectrum.wavelength[-1] >= hi):
        raise SynthesisError(f"{where}: region {lo:.3f}-{hi:.3f} Å is not inside one spectrum")
    return spectrum


def _total_uncertainties(
    result: Mapping[str, Any], sensitivities: Mapping[str, Mapping[str, float]]
) -> dict[str, float]:
    """Add each element's formal error and its stellar-parameter errors in quadrature [dex].

    Parameters
    ----------
    result : mapping
        Result of :func:`fit_synthesis`.
    sensitivities : mapping
        Element symbol → stellar parameter → abundance change [dex].

    Returns
    -------
    dict of str to float
        Total uncertainty by element symbol [dex].
    """
    return {
        symbol: math.sqrt(
            result["abundance_uncertainties"][symbol] ** 2
            + sum(v**2 for v in sensitivities.get(symbol, {}).values())
        )
        for symbol in result["elements"]
    }


def _limit_comments(result: Mapping[str, Any], threshold: float) -> list[str]:
    """Write comments that say which elements are upper limits (or not constrained).

    Parameters
    ----------
    result : mapping
        Result of :func:`fit_synthesis`.
    threshold : float
        The detection Δχ² used.

    Returns
    -------
    list of str
        One comment per element not detected.
    """
    notes = []
    for symbol, value in result["abundance_upper_limits"].items():
        note = (
            f"{symbol} not detected (Δχ² {result['detection_delta_chi2'][symbol]:.1f} < "
            f"{threshold:g}): upper limit"
        )
        if not math.isfinite(value):
            note += " not constrained"
        notes.append(note)
    return notes


def _store_measurement(
    session: Session,
    physics: Physics,
    key: str,
    measurement: dict[str, Any],
    result: Mapping[str, Any],
) -> None:
    """Store a synthesis measurement in the session, with the physics and a history entry.

    Parameters
    ----------
    session : Session
        The session (changed in place).
    physics : Physics
        Grid and code of the fit.
    key : str
        Measurement key (``<hash>|synth``).
    measurement : dict
        The measurement.
    result : mapping
        Result of :func:`fit_synthesis` (elements and abundances for the history).
    """
    session.state["measurements"][key] = measurement
    session.state["physics"] = physics.record()
    session.state["history"].append(
        {
            "time": measurement["fitted"],
            "action": "synthesis fit",
            "measurement": key,
            "elements": result["elements"],
            "abundances": result["abundances"],
        }
    )


def _parameter_sensitivities(
    physics: Physics,
    params: Mapping[str, float],
    given: Mapping[str, Any],
    lines: Sequence[Line],
    spectrum: Any,
    region: tuple[float, float],
    elements: Sequence[int],
    start: Mapping[int, float],
    isotopes: Mapping[str, float],
    best: Mapping[str, Any],
    options: Mapping[str, Any],
) -> dict[str, dict[str, float]]:
    """Change of each fitted abundance with each stellar parameter moved by its σ [dex]."""
    from photonpipe.stellar.photospheres import AtmosphereGridError

    out: dict[str, dict[str, float]] = {ELEMENTS[z - 1]: {} for z in elements}
    refit = {**options, "fwhm": best["fwhm"]}
    for name in ("teff", "logg", "vt", "feh"):
        sigma = float(given.get(f"{name}_error", math.nan) or math.nan)
        if not (math.isfinite(sigma) and sigma > 0):
            continue
        for sign in (1.0, -1.0):
            moved = dict(params)
            moved[name] += sign * sigma
            try:
                model = physics.grid.interpolate(moved["teff"], moved["logg"], moved["feh"])
            except AtmosphereGridError:
                continue
            r = fit_synthesis(
                physics.code, model, moved["vt"], lines, spectrum.wavelength, spectrum.flux,
                spectrum.ivar, region, elements, start, isotopes=isotopes,
                noise_known=bool(spectrum.meta.get("noise_known", False)), **refit,
            )  # fmt: skip
            for symbol, changes in out.items():
                changes[name] = sign * (r["abundances"][symbol] - best["abundances"][symbol])
            break
    return out


def _session_abundances(session: Session, feh: float) -> dict[int, float]:
    """Start/fixed abundances: the session's species means (neutral first), else scaled solar."""
    out: dict[int, float] = {}
    species = (session.state.get("abundances") or {}).get("species", {})
    for entry in sorted(species.values(), key=lambda e: -float(e.get("species", 0.0))):
        mean = entry.get("mean", math.nan)
        if isinstance(mean, float) and math.isfinite(mean):
            out[int(entry["species"])] = mean
    return out


def _session_fwhm(session: Session, wavelength: float) -> float:
    """FWHM [Å] at ``wavelength`` from the EW fits (median R of acceptable detections)."""
    ratios = [
        m["fwhm"] / m["wavelength"]
        for m in session.measurements("ew")
        if m.get("acceptable") and not m.get("is_limit") and m.get("fwhm", 0) > 0
    ]
    if not ratios:
        return wavelength / 30000.0
    return float(np.median(ratios)) * wavelength


__all__ = [
    "DETECTION_DELTA_CHI2",
    "SynthesisError",
    "fit_synthesis",
    "gaussian_smooth",
    "parse_elements",
    "parse_isotopes",
    "species_name",
    "synth_measurement",
]
