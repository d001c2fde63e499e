"""Teff from the wings of Balmer lines (H-alpha, H-beta) by synthesis (method ``balmer-wings``).

The wings of the hydrogen lines of FGK stars depend on Teff and little on log g and [Fe/H]
(Fuhrmann et al. 1993; Barklem et al. 2002). At fixed log g, vt and [M/H], each line is
synthesised (a driver that computes hydrogen profiles: SME, which uses its own Stark + self
broadening theory) at Teff steps of ``coarse_step`` K over the grid, then of ``fine_step`` K
within one coarse step of the best coarse value, smoothed to the spectrum's resolution and
compared with the normalised spectrum in the wing windows (``wings``: distances from the line
centre [Å]; the core, formed outside LTE, is left out). Per Teff, the continuum scale is fitted
(weighted least squares, linear), and pixels of metal lines are masked: pixels more than 3σ
below the model in a first pass at the best coarse Teff are left out of every χ². Teff and its
error come from a parabola through the χ² values of the five fine points nearest the minimum
(Δχ² = 1; scaled by the reduced χ² when the noise is not known).

The error is the statistical one only: it ignores the continuum normalisation of the spectrum
across the broad line (the dominant systematic of Balmer-line temperatures, ~50–100 K), the
line-broadening theory and 1-D LTE.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from photonpipe.errors import EXIT_USAGE, PhotonpipeError
from photonpipe.stellar.linelist import Line
from photonpipe.stellar.photospheres import AtmosphereGrid, AtmosphereGridError
from photonpipe.stellar.radiative_transfer import RadiativeTransfer
from photonpipe.stellar.synthesis import gaussian_smooth

if TYPE_CHECKING:
    from photonpipe.stellar.analysis import Physics
    from photonpipe.stellar.session import Session

METHOD = "balmer-wings"

#: The Balmer lines (air wavelengths [Å], lower-level EP [eV], log gf of the whole transition).
BALMER_LINES: dict[str, Line] = {
    "H-alpha": Line(6562.797, 1.0, 10.199, 0.710),
    "H-beta": Line(4861.323, 1.0, 10.199, -0.020),
}
#: Wing windows: distances from the line centre [Å] used in the χ².
DEFAULT_WINGS: dict[str, tuple[float, float]] = {"H-alpha": (2.5, 12.0), "H-beta": (2.0, 9.0)}


class BalmerError(PhotonpipeError):
    """A Balmer-line temperature cannot be measured (names the line and the problem).

    An input or configuration error (exit code 2).
    """

    exit_code = EXIT_USAGE


def _profile(
    code: RadiativeTransfer,
    grid: AtmosphereGrid,
    teff: float,
    logg: float,
    feh: float,
    vt: float,
    line: Line,
    half: float,
    step: float,
    fwhm: float,
) -> tuple[np.ndarray, np.ndarray]:
    model = grid.interpolate(teff, logg, feh)
    syn = code.synthesize(
        model, vt, [line], (line.wavelength - half, line.wavelength + half), step, {}
    )
    return np.asarray(syn.wavelength), gaussian_smooth(np.asarray(syn.flux), fwhm, step)


def _wing_pixels(
    spectra: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    wings: Mapping[str, tuple[float, float]],
    resolution: float,
) -> dict[str, dict[str, Any]]:
    """Select the wing pixels of each Balmer line (at least 20 per line).

    Parameters
    ----------
    spectra : mapping
        Line name → (wavelength [Å], normalised flux, ivar).
    wings : mapping
        Line name → (inner, outer) distance from the centre [Å].
    resolution : float
        Spectral resolution λ/Δλ.

    Returns
    -------
    dict
        Line name → ``wave`` [Å], ``flux``, ``weight`` (1/σ) and ``keep`` (all True) of the
        wing pixels, the smoothing ``fwhm`` [Å] and the synthesis half width ``half`` [Å].

    Raises
    ------
    BalmerError
        An unknown line, or a line the spectrum does not cover.
    """
    data: dict[str, dict[str, Any]] = {}
    for name, (wave, flux, ivar) in spectra.items():
        if name not in BALMER_LINES:
            raise BalmerError(f"unknown Balmer line {name!r} ({', '.join(BALMER_LINES)})")
        centre = BALMER_LINES[name].wavelength
        inner, outer = wings[name]
        distance = np.abs(np.asarray(wave) - centre)
        use = (distance >= inner) & (distance <= outer) & (np.asarray(ivar) > 0)
        use &= np.isfinite(flux)
        if use.sum() < 20:
            raise BalmerError(
                f"{name}: {int(use.sum())} pixels in the wings ({inner:g}-{outer:g} Å from "
                f"{centre:.2f} Å); the spectrum does not cover the line"
            )
        data[name] = {
            "wave": np.asarray(wave)[use], "flux": np.asarray(flux)[use],
            "weight": np.sqrt(np.asarray(ivar)[use]), "keep": np.ones(int(use.sum()), bool),
            "fwhm": centre / resolution, "half": outer + 3.0,
        }  # fmt: skip
    return data


class _WingFit:
    """χ² of synthetic Balmer wings against the wing pixels, the syntheses cached by Teff.

    Parameters
    ----------
    code : RadiativeTransfer
        A driver that synthesises hydrogen lines.
    grid : AtmosphereGrid
        Model atmospheres.
    data : dict
        Wing pixels by line name (see :func:`_wing_pixels`); ``keep`` is updated by
        :meth:`mask_metal_lines`.
    logg, feh, vt : float
        Held surface gravity, [M/H] and microturbulence [km s⁻¹].
    step : float
        Synthesis step [Å].
    """

    def __init__(
        self,
        code: RadiativeTransfer,
        grid: AtmosphereGrid,
        data: dict[str, dict[str, Any]],
        logg: float,
        feh: float,
        vt: float,
        step: float,
    ) -> None:
        self.code, self.grid, self.data = code, grid, data
        self.logg, self.feh, self.vt, self.step = logg, feh, vt, step
        self.cache: dict[tuple[str, float], tuple[np.ndarray, np.ndarray]] = {}
        self.syntheses = 0

    def model_flux(self, name: str, teff: float) -> np.ndarray:
        """Return the smoothed synthetic flux of line ``name`` at ``teff`` [K] at its wing pixels.

        Raises
        ------
        BalmerError
            No model atmosphere at these parameters.
        """
        key = (name, round(teff, 3))
        if key not in self.cache:
            d = self.data[name]
            try:
                self.cache[key] = _profile(
                    self.code, self.grid, teff, self.logg, self.feh, self.vt, BALMER_LINES[name],
                    d["half"], self.step, d["fwhm"],
                )  # fmt: skip
            except AtmosphereGridError as exc:
                raise BalmerError(f"{name}: {exc}") from None
            self.syntheses += 1
        wave, flux = self.cache[key]
        return np.interp(self.data[name]["wave"], wave, flux)

    def chi2(self, teff: float) -> tuple[float, dict[str, float]]:
        """Return χ² over the kept wing pixels of all lines at ``teff`` [K], and the scales.

        Each line's continuum scale is fitted by weighted linear least squares; the scales are
        returned by line name.
        """
        total, scales = 0.0, {}
        for name, d in self.data.items():
            m = self.model_flux(name, teff)
            k, w = d["keep"], d["weight"] ** 2
            scale = float(np.sum(w[k] * m[k] * d["flux"][k]) / np.sum(w[k] * m[k] ** 2))
            scales[name] = scale
            total += float(np.sum(w[k] * (d["flux"][k] - scale * m[k]) ** 2))
        return total, scales

    def coarse_chi2(self, teff: float) -> float:
        """Return χ² at ``teff`` [K], infinite where the grid has no model (a hole of the grid)."""
        try:
            return self.chi2(teff)[0]
        except BalmerError:
            return math.inf

    def mask_metal_lines(self, teff: float) -> None:
        """Leave out the pixels more than 3σ below the model at ``teff`` [K] (metal lines)."""
        for name, d in self.data.items():
            _, scales = self.chi2(teff)
            m = scales[name] * self.model_flux(name, teff)
            d["keep"] = (d["flux"] - m) * d["weight"] > -3.0


def _parabola_minimum(
    fine: np.ndarray, curve: np.ndarray, lo_t: float, hi_t: float
) -> tuple[float, float, float]:
    """Find the minimum of a parabola through the five χ² points nearest the lowest one.

    Parameters
    ----------
    fine : ndarray
        Teff values [K] (uniform steps).
    curve : ndarray
        χ² at ``fine``.
    lo_t, hi_t : float
        Teff range searched [K].

    Returns
    -------
    tuple of float
        Teff at the minimum [K], χ² there and the curvature a of χ² ≈ a (T − T₀)² + … [K⁻²].

    Raises
    ------
    BalmerError
        The lowest point at the edge of the range, or a χ² curve with no minimum.
    """
    i = int(np.argmin(curve))
    if i in (0, len(fine) - 1) and (fine[i] <= lo_t or fine[i] >= hi_t):
        raise BalmerError(f"the best Teff {fine[i]:.0f} K is at the edge of the grid")
    pick = np.argsort(np.abs(np.arange(len(fine)) - i))[:5]
    a, b, c = np.polyfit(fine[pick] - fine[i], curve[pick], 2)
    if a <= 0:
        raise BalmerError("the χ² of the Balmer wings has no minimum")
    return float(fine[i] - b / (2 * a)), float(c - b * b / (4 * a)), float(a)


def fit_balmer_teff(
    code: RadiativeTransfer,
    grid: AtmosphereGrid,
    spectra: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    logg: float,
    feh: float,
    vt: float,
    *,
    wings: Mapping[str, tuple[float, float]] | None = None,
    resolution: float = 40000.0,
    coarse_step: float = 250.0,
    fine_step: float = 50.0,
    teff_range: tuple[float, float] | None = None,
    noise_known: bool = True,
    step: float = 0.1,
) -> dict[str, Any]:
    """Teff from the wings of one or more Balmer lines (see the module documentation).

    Parameters
    ----------
    code : RadiativeTransfer
        A driver that synthesises hydrogen lines (SME).
    grid : AtmosphereGrid
        Model atmospheres.
    spectra : mapping
        Line name ("H-alpha", "H-beta") → (wavelength [Å], normalised flux, ivar) of the
        rest-frame spectrum around it.
    logg, feh, vt : float
        Held surface gravity, [M/H] and microturbulence [km s⁻¹].
    wings : mapping, optional
        Line name → (inner, outer) distance from the centre [Å] (default :data:`DEFAULT_WINGS`).
    resolution : float
        Spectral resolution λ/Δλ of the Gaussian smoothing.
    coarse_step, fine_step : float
        Teff steps [K] of the two passes.
    teff_range : (float, float), optional
        Teff range searched [K] (default: the grid's, from 4500 K: cooler stars have
        too weak wings).
    noise_known : bool
        Whether the ivar is the true noise (else errors are scaled by the reduced χ²).
    step : float
        Synthesis step [Å].

    Returns
    -------
    dict
        ``teff``, ``teff_error`` [K], ``chi2``/``dof`` at the minimum, ``curve`` (Teff, χ²),
        ``lines`` (per line: window, pixels used, masked pixels, continuum scale),
        ``syntheses`` and ``seconds``.
    """
    started = time.perf_counter()
    wings = {**DEFAULT_WINGS, **dict(wings or {})}
    if not spectra:
        raise BalmerError("no Balmer line to fit")
    grid_lo, grid_hi = grid.ranges["teff"]
    lo_t, hi_t = teff_range or (max(grid_lo, 4500.0), grid_hi)
    data = _wing_pixels(spectra, wings, resolution)
    wing_fit = _WingFit(code, grid, data, logg, feh, vt, step)
    coarse = np.arange(lo_t, hi_t + 0.5, coarse_step)
    values = [wing_fit.coarse_chi2(t) for t in coarse]
    if not np.isfinite(values).any():
        raise BalmerError(f"no model atmosphere at log g {logg:g}, [M/H] {feh:g} in the grid")
    best = float(coarse[int(np.argmin(values))])
    wing_fit.mask_metal_lines(best)
    fine = np.arange(max(lo_t, best - coarse_step + fine_step),
                     min(hi_t, best + coarse_step - fine_step) + 0.5, fine_step)  # fmt: skip
    curve = np.array([wing_fit.chi2(t)[0] for t in fine])
    teff, chi2_min, curvature = _parabola_minimum(fine, curve, lo_t, hi_t)
    dof = sum(int(d["keep"].sum()) for d in data.values()) - len(data) - 1
    scale2 = 1.0 if noise_known else max(chi2_min / max(dof, 1), 1e-12)
    error = math.sqrt(scale2 / curvature)
    _, scales = wing_fit.chi2(teff)
    return {
        "teff": teff,
        "teff_error": error,
        "chi2": chi2_min,
        "dof": dof,
        "error_scale": math.sqrt(scale2),
        "curve": {"teff": fine.tolist(), "chi2": curve.tolist()},
        "coarse_curve": {"teff": coarse.tolist(), "chi2": [float(v) for v in values]},
        "lines": {
            name: {
                "wavelength": BALMER_LINES[name].wavelength,
                "wings": list(wings[name]),
                "pixels": int(d["keep"].sum()),
                "masked": int((~d["keep"]).sum()),
                "continuum_scale": scales[name],
                "fwhm": d["fwhm"],
            }
            for name, d in data.items()
        },
        "held": {"logg": logg, "feh": feh, "vt": vt},
        "syntheses": wing_fit.syntheses,
        "seconds": time.perf_counter() - started,
    }


def solve_balmer(
    session: Session,
    physics: Physics,
    parameters: Mapping[str, float],
    lines: Sequence[str] = ("H-alpha", "H-beta"),
    **options: Any,
) -> dict[str, Any]:
    """Teff of a session's star from its Balmer wings, as a stellar-parameter result.

    Parameters
    ----------
    session : Session
        The session (rest-frame, normalised spectrum covering the lines).
    physics : Physics
        Grid and a code that synthesises hydrogen lines.
    parameters : mapping
        ``logg``, ``vt`` and ``feh`` held (``*_error`` kept when given).
    lines : sequence of str
        Balmer lines to use; those the spectrum does not cover are left out (at least one
        must be covered).
    **options
        Options of :func:`fit_balmer_teff`.

    Returns
    -------
    dict
        ``teff``, ``teff_error``, the held ``logg``, ``vt``, ``feh`` (and errors), ``inputs``
        and the fit details.
    """
    where = str(session.path or "session")
    if physics.code.name != "SME":
        raise BalmerError(
            f"{where}: the Balmer-wing method needs a code that computes hydrogen profiles: "
            "set stellar.radiative_transfer = sme (pip install photonpipe[sme])"
        )
    spectra: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    skipped = []
    noise_known = True
    for name in lines:
        if name not in BALMER_LINES:
            raise BalmerError(f"{where}: unknown Balmer line {name!r} ({', '.join(BALMER_LINES)})")
        centre = BALMER_LINES[name].wavelength
        outer = DEFAULT_WINGS[name][1]
        try:
            spectrum = session.measurement_spectrum(centre)
        except PhotonpipeError:
            skipped.append(name)
            continue
        if spectrum.wavelength[0] > centre - outer or spectrum.wavelength[-1] < centre + outer:
            skipped.append(name)
            continue
        spectra[name] = (spectrum.wavelength, spectrum.flux, spectrum.ivar)
        noise_known &= bool(spectrum.meta.get("noise_known", False))
    if not spectra:
        raise BalmerError(f"{where}: the spectrum covers none of {', '.join(lines)}")
    try:
        fit = fit_balmer_teff(
            physics.code, physics.grid, spectra, float(parameters["logg"]),
            float(parameters["feh"]), float(parameters["vt"]), noise_known=noise_known, **options,
        )  # fmt: skip
    except PhotonpipeError as exc:
        raise BalmerError(f"{where}: {exc}") from None
    held = {k: float(parameters[k]) for k in ("logg", "vt", "feh")}
    return {
        "method": METHOD,
        "teff": fit["teff"],
        "teff_error": fit["teff_error"],
        **held,
        **{f"{k}_error": float(parameters.get(f"{k}_error", 0.0)) for k in held},
        "converged": True,
        "message": "χ² minimum of the Balmer wings",
        "inputs": {
            "lines": sorted(spectra),
            "skipped_lines": skipped,
            "held": held,
            "options": dict(options),
        },
        "fit": {k: v for k, v in fit.items() if k not in ("teff", "teff_error")},
        "seconds": fit["seconds"],
        "evaluations": fit["syntheses"],
    }
