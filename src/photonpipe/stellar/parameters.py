"""Stellar parameters by excitation and ionisation balance of iron lines.

Four conditions on the line-by-line abundances, solved for (Teff, log g, vt, [M/H]) with
:func:`scipy.optimize.least_squares` (trust-region reflective, bounded by the model grid):

1. Fe I abundance flat against excitation potential (OLS slope [dex/eV]) -- mostly Teff;
2. Fe I abundance flat against reduced EW log10(W/λ) (OLS slope [dex/dex]) -- mostly vt;
3. Fe I = Fe II (mean abundances) -- mostly log g;
4. the model [M/H] equals the derived [Fe/H] = ⟨Fe I⟩ − 7.50 (Asplund et al. 2009).

The Jacobian is by forward differences with fixed steps (20 K, 0.04 dex, 0.04 km/s, 0.03 dex),
large enough to stay above the ±0.25 % EW tolerance of MOOG's ``abfind``. Lines more than
``clip_sigma`` robust σ from their species' mean are left out and the solve repeated until no
line changes (at most 3 rounds); lines stronger than ``max_reduced_ew`` are not used.

**Uncertainties.** The four conditions are linear in the line abundances A_i (r = G A + c).
Each A_i has a variance σ_i² = σ_EW,i² + s², the first from its EW error (propagated through
the curve of growth), the second the line-to-line scatter the EW errors do not explain
(oscillator strengths, blends; estimated per ion from the scatter about the mean). The
parameters' covariance is J⁻¹ (G diag σ² Gᵀ) J⁻ᵀ with J = ∂r/∂p at the solution. The closed-loop
test checks these errors against the scatter of solutions from noisy EWs (pulls).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import least_squares

from photonpipe.errors import PhotonpipeError
from photonpipe.spectra.robust import robust_sigma
from photonpipe.stellar.abundances import SOLAR_ASPLUND2009, line_abundances
from photonpipe.stellar.linelist import Line
from photonpipe.stellar.photospheres import AtmosphereGrid
from photonpipe.stellar.radiative_transfer import RadiativeTransfer

METHOD = "excitation-ionisation"
NAMES = ("teff", "logg", "vt", "feh")
FE_SOLAR = SOLAR_ASPLUND2009[26]

#: The condition that sets each parameter (index into the conditions).
PAIRED = {"teff": 0, "vt": 1, "logg": 2, "feh": 3}
#: Forward-difference steps of the Jacobian, per parameter.
STEPS = np.array([20.0, 0.04, 0.04, 0.03])
#: How far (per parameter) a Jacobian is reused before it is computed again.
JACOBIAN_REUSE = np.array([150.0, 0.3, 0.3, 0.3])
#: Typical sizes of the four conditions (scales of the least-squares residuals).
RESIDUAL_SCALES = np.array([0.005, 0.02, 0.01, 0.01])
#: Microturbulence bounds [km/s].
VT_BOUNDS = (0.2, 4.5)

DEFAULT_OPTIONS: dict[str, Any] = {
    "max_reduced_ew": -4.5,
    "clip_sigma": 3.0,
    "max_clip_rounds": 3,
    "max_evaluations": 80,
}


class ParameterSolveError(PhotonpipeError):
    """The stellar parameters cannot be solved for (too few lines, no convergence...)."""


def balance_matrix(
    lines: Sequence[Line], ews: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the linear map from line abundances to the four balance conditions.

    Parameters
    ----------
    lines : sequence of Line
        Fe I and Fe II lines.
    ews : ndarray
        Their EWs [mÅ] (for the reduced EWs).

    Returns
    -------
    G : ndarray, shape (4, N)
        Rows: slope against EP, slope against log(W/λ), ⟨Fe II⟩ − ⟨Fe I⟩, −⟨Fe I⟩.
    fe1, fe2 : ndarray of bool
        Which lines are Fe I / Fe II.
    """
    species = np.array([ln.species for ln in lines])
    fe1 = np.isclose(species, 26.0)
    fe2 = np.isclose(species, 26.1)
    ep = np.array([ln.expot for ln in lines])
    rw = np.log10(np.asarray(ews, dtype=float) * 1e-3 / np.array([ln.wavelength for ln in lines]))
    g = np.zeros((4, len(lines)))
    for row, x in ((0, ep), (1, rw)):
        dx = x[fe1] - x[fe1].mean()
        g[row, fe1] = dx / np.sum(dx**2)
    g[2, fe2] = 1.0 / fe2.sum()
    g[2, fe1] = -1.0 / fe1.sum()
    g[3, fe1] = -1.0 / fe1.sum()
    return g, fe1, fe2


def solve_excitation_ionisation(
    code: RadiativeTransfer,
    grid: AtmosphereGrid,
    lines: Sequence[Line],
    ews: ArrayLike,
    ew_errors: ArrayLike | None = None,
    initial: Mapping[str, float] | None = None,
    fixed: Mapping[str, float] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Solve for Teff, log g, vt and [M/H] from Fe I and Fe II equivalent widths.

    Parameters
    ----------
    code : RadiativeTransfer
        Driver.
    grid : AtmosphereGrid
        Model atmospheres (the solve stays inside the grid).
    lines : sequence of Line
        Lines (only Fe I and Fe II are used).
    ews : sequence of float
        EWs [mÅ].
    ew_errors : sequence of float, optional
        σ(EW) [mÅ] (without them only the line scatter sets the uncertainties).
    initial : mapping, optional
        Starting ``teff``, ``logg``, ``vt``, ``feh`` (default 5000 K, 3.0, 1.5 km/s, −1.0).
    fixed : mapping, optional
        Parameters held at a value (e.g. ``{"teff": 4587, "logg": 1.61}``); the condition that
        sets each (Teff: EP slope, log g: Fe I = Fe II, vt: RW slope, [M/H]: model = derived)
        is then not imposed, and its error is 0.
    **options
        ``max_reduced_ew`` (−4.5), ``clip_sigma`` (3), ``max_clip_rounds`` (3),
        ``max_evaluations`` (80 radiative-transfer runs per round).

    Returns
    -------
    dict
        Plain data: ``method``, ``teff``, ``logg``, ``vt``, ``feh`` and ``*_error``,
        ``covariance`` (4×4, order teff logg vt feh), ``conditions`` (the four residuals at
        the solution), ``fe1``/``fe2`` (n, mean, std), ``line_abundances`` (hash → log ε),
        ``inputs`` (line hashes used, clipped, initial values, options), ``converged``,
        ``message``, ``evaluations``, ``seconds``, ``photosphere_nodes``.

    Raises
    ------
    ParameterSolveError
        Fewer than 10 Fe I or 2 Fe II usable lines.
    """
    opts = {**DEFAULT_OPTIONS, **options}
    unknown = set(options) - set(DEFAULT_OPTIONS)
    if unknown:
        raise ParameterSolveError(f"unknown solve option(s): {', '.join(sorted(unknown))}")
    started = time.perf_counter()
    all_ews = np.asarray(ews, dtype=float)
    all_errors = (
        np.asarray(ew_errors, dtype=float) if ew_errors is not None else np.full(len(lines), np.nan)
    )
    keep = [
        i
        for i, ln in enumerate(lines)
        if round(ln.species, 1) in (26.0, 26.1)
        and math.isfinite(all_ews[i])
        and all_ews[i] > 0
        and math.log10(all_ews[i] * 1e-3 / ln.wavelength) <= opts["max_reduced_ew"]
    ]
    fe_lines = [lines[i] for i in keep]
    fe_ews = all_ews[keep]
    fe_errors = all_errors[keep]
    start = dict(initial or {"teff": 5000.0, "logg": 3.0, "vt": 1.5, "feh": -1.0})
    ranges = grid.ranges
    lower = np.array([ranges["teff"][0], ranges["logg"][0], VT_BOUNDS[0], ranges["metallicity"][0]])
    upper = np.array([ranges["teff"][1], ranges["logg"][1], VT_BOUNDS[1], ranges["metallicity"][1]])
    held = {k: float(v) for k, v in (fixed or {}).items()}
    if set(held) - set(NAMES):
        raise ParameterSolveError(
            f"unknown fixed parameter(s): {', '.join(sorted(set(held) - set(NAMES)))}"
        )
    start.update(held)
    free = np.array([n not in held for n in NAMES])
    if not free.any():
        raise ParameterSolveError("every stellar parameter is fixed: nothing to solve")
    active = np.array([PAIRED[n] for n in NAMES if n not in held])
    x = np.clip(np.array([start[n] for n in NAMES], dtype=float), lower, upper)
    used = np.ones(len(fe_lines), dtype=bool)
    clipped: list[str] = []
    final: list[Line] = []
    evaluations = 0
    solution: dict[str, Any] = {}
    previous: tuple[np.ndarray, np.ndarray] | None = None
    for round_ in range(int(opts["max_clip_rounds"]) + 1):
        chosen = [ln for ln, u in zip(fe_lines, used, strict=True) if u]
        chosen_ews = fe_ews[used]
        n1 = sum(round(ln.species, 1) == 26.0 for ln in chosen)
        n2 = len(chosen) - n1
        if n1 < 10 or n2 < 2:
            raise ParameterSolveError(
                f"excitation-ionisation balance needs >= 10 Fe I and >= 2 Fe II lines "
                f"(have {n1} and {n2})"
            )
        balance = _Balance(code, grid, chosen, chosen_ews, previous)
        g, fe1, fe2 = balance.g, balance.fe1, balance.fe2

        def whole(q: np.ndarray, base: np.ndarray = x) -> np.ndarray:
            p = base.copy()
            p[free] = q
            return p

        def residuals(q: np.ndarray, balance: _Balance = balance) -> np.ndarray:
            return balance.conditions(whole(q))[0][active] / RESIDUAL_SCALES[active]

        def jacobian(q: np.ndarray, balance: _Balance = balance) -> np.ndarray:
            jac = balance.jacobian(whole(q), lower, upper, free=free)
            return jac[np.ix_(active, free)] / RESIDUAL_SCALES[active, None]

        fit = least_squares(
            residuals,
            x[free],
            jac=jacobian,
            bounds=(lower[free], upper[free]),
            x_scale=np.array([100.0, 0.2, 0.2, 0.2])[free],
            xtol=1e-4,
            ftol=1e-10,
            gtol=1e-10,
            max_nfev=int(opts["max_evaluations"]) // 5,
            method="trf",
        )
        x = whole(fit.x)
        # at the solution, lines the code did not converge on are found and dropped
        r, abundances = balance.conditions(x, strict=True)
        variance, extra = _line_variance(
            abundances, fe1, fe2, chosen, chosen_ews, fe_errors[used], code, grid, x
        )
        # clip outliers per ion (beyond clip_sigma of each line's own sigma) and lines the
        # code could not fit at the solution, and solve again when any line changes
        new_used = used.copy()
        index = np.flatnonzero(used)
        failed_here = balance.failures.get((*np.round(x, 6), True))
        if failed_here is not None:
            new_used[index[failed_here]] = False
        for mask in (fe1, fe2):
            values = abundances[mask]
            if len(values) < 5:
                continue
            centre = np.median(values)
            outliers = np.abs(values - centre) > opts["clip_sigma"] * np.sqrt(variance[mask])
            new_used[index[mask][outliers]] = False
        final, clipped = chosen, [ln.hash for ln, u in zip(fe_lines, used, strict=True) if not u]
        if np.array_equal(new_used, used) or round_ == int(opts["max_clip_rounds"]):
            jac = balance.jacobian(x, lower, upper, fresh=True, free=free)
            evaluations += balance.evaluations
            solution = _covariance(jac, g, variance, abundances, fe1, fe2, extra, free, active)
            solution.update(
                converged=bool(
                    fit.success and np.all(np.abs(r[active] / RESIDUAL_SCALES[active]) < 1.0)
                ),
                message=str(fit.message),
                conditions={
                    "slope_excitation_potential": float(r[0]),
                    "slope_reduced_ew": float(r[1]),
                    "fe2_minus_fe1": float(r[2]),
                    "model_minus_derived_feh": float(r[3]),
                },
            )
            break
        evaluations += balance.evaluations
        previous = balance.last_jacobian
        used = new_used
    model = grid.interpolate(x[0], x[1], x[3])
    solution.update(
        method=METHOD,
        **dict(zip(NAMES, (float(v) for v in x), strict=True)),
        line_abundances={ln.hash: float(a) for ln, a in zip(final, abundances, strict=True)},
        inputs={
            "line_hashes": [ln.hash for ln in final],
            "clipped_line_hashes": clipped,
            "initial": {n: float(start[n]) for n in NAMES},
            "fixed": held,
            "options": opts,
            "solar_fe": FE_SOLAR,
        },
        evaluations=evaluations,
        seconds=time.perf_counter() - started,
        photosphere_nodes=[list(node) for node in model.nodes],
        bounds={"lower": lower.tolist(), "upper": upper.tolist()},
    )
    at_bound = [
        n for n, v, lo, hi in zip(NAMES, x, lower, upper, strict=True) if v <= lo or v >= hi
    ]
    if at_bound:
        solution["converged"] = False
        solution["message"] += f"; at the bound of {', '.join(at_bound)}"
    return solution


class _Balance:
    """The four balance conditions of a set of lines, evaluated (and cached) per parameter set."""

    def __init__(
        self,
        code: RadiativeTransfer,
        grid: AtmosphereGrid,
        lines: list[Line],
        ews: np.ndarray,
        jacobian: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        self.code, self.grid, self.lines, self.ews = code, grid, lines, ews
        self.g, self.fe1, self.fe2 = balance_matrix(lines, ews)
        self.cache: dict[tuple[Any, ...], tuple[np.ndarray, np.ndarray]] = {}
        self.failures: dict[tuple[Any, ...], np.ndarray] = {}
        self.evaluations = 0
        self._jacobian = jacobian

    def jacobian(
        self,
        p: np.ndarray,
        lower: np.ndarray,
        upper: np.ndarray,
        fresh: bool = False,
        free: np.ndarray | None = None,
    ) -> np.ndarray:
        """Finite-difference Jacobian, reused while the parameters stay near where it was made.

        The conditions are close to linear in the parameters over ~1.5 steps of JACOBIAN_REUSE,
        so a Jacobian is recomputed only beyond that (or when ``fresh``): it halves the
        radiative-transfer runs of a solve.
        """
        if not fresh and self._jacobian is not None:
            base, jac = self._jacobian
            if np.all(np.abs(p - base) <= JACOBIAN_REUSE):
                return jac
        jac = _jacobian(self.conditions, p, lower, upper, free)
        self._jacobian = (p.copy(), jac)
        return jac

    @property
    def last_jacobian(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(parameters, Jacobian) of the last Jacobian computed (a warm start)."""
        return self._jacobian

    def conditions(self, p: np.ndarray, strict: bool = False) -> tuple[np.ndarray, np.ndarray]:
        key = (*np.round(p, 6), strict)
        if key not in self.cache:
            params = dict(zip(NAMES, p.tolist(), strict=True))
            abundances, _ = line_abundances(
                self.code, self.grid, params, self.lines, self.ews, strict=strict
            )
            self.evaluations += 1
            failed = ~np.isfinite(abundances)
            if failed.any():
                # a line the code could not fit at this trial model counts as its ion's mean
                # here; at the solution such lines are dropped
                abundances = abundances.copy()
                for mask in (self.fe1, self.fe2):
                    good = mask & ~failed
                    if not good.any():
                        raise ParameterSolveError(
                            f"no Fe abundance at Teff {p[0]:.0f} K, log g {p[1]:.2f}, "
                            f"vt {p[2]:.2f} km/s, [M/H] {p[3]:.2f}"
                        )
                    abundances[mask & failed] = abundances[good].mean()
                self.failures[key] = failed
            r = self.g @ abundances
            r[3] += p[3] + FE_SOLAR
            self.cache[key] = (r, abundances)
        return self.cache[key]


def _jacobian(
    conditions: Any,
    p: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    free: np.ndarray | None = None,
) -> np.ndarray:
    base = conditions(p)[0]
    jac = np.zeros((4, 4))
    for k in range(4):
        if free is not None and not free[k]:
            continue
        step = STEPS[k] if p[k] + STEPS[k] <= upper[k] else -STEPS[k]
        moved = p.copy()
        moved[k] += step
        jac[:, k] = (conditions(moved)[0] - base) / step
    return jac


def _line_variance(
    abundances: np.ndarray,
    fe1: np.ndarray,
    fe2: np.ndarray,
    lines: Sequence[Line],
    ews: np.ndarray,
    ew_errors: np.ndarray,
    code: RadiativeTransfer,
    grid: AtmosphereGrid,
    x: np.ndarray,
) -> tuple[np.ndarray, dict[str, float]]:
    """Variance of each line abundance: from its EW error, plus the unexplained scatter."""
    params = dict(zip(NAMES, x.tolist(), strict=True))
    if np.isfinite(ew_errors).any():
        _, sigma_ew = line_abundances(code, grid, params, lines, ews, ew_errors, strict=False)
        sigma_ew = np.where(np.isfinite(sigma_ew), np.abs(sigma_ew), 0.0)
    else:
        sigma_ew = np.zeros(len(lines))
    variance = sigma_ew**2
    extra: dict[str, float] = {}
    for label, mask in (("fe1", fe1), ("fe2", fe2)):
        values = abundances[mask]
        if len(values) > 1:
            # robust line-to-line scatter, so that outliers do not inflate it
            spread = robust_sigma(values)
            extra[label] = max(0.0, spread**2 - float(np.median(variance[mask])))
        else:
            extra[label] = 0.0
    if fe2.sum() < 4:  # too few Fe II lines to measure their own scatter
        extra["fe2"] = max(extra["fe2"], extra["fe1"])
    return variance + np.where(fe1, extra["fe1"], extra["fe2"]), extra


def _covariance(
    jac: np.ndarray,
    g: np.ndarray,
    variance: np.ndarray,
    abundances: np.ndarray,
    fe1: np.ndarray,
    fe2: np.ndarray,
    extra: dict[str, float],
    free: np.ndarray,
    active: np.ndarray,
) -> dict[str, Any]:
    """Parameter covariance J⁻¹ (G diag(σ²) Gᵀ) J⁻ᵀ, errors and per-ion statistics.

    Only the free parameters and the conditions imposed enter; fixed parameters have 0 error.
    """
    sub_g = g[active]
    cov_r = (sub_g * variance) @ sub_g.T
    try:
        inverse = np.linalg.inv(jac[np.ix_(active, free)])
    except np.linalg.LinAlgError:
        inverse = np.full((int(free.sum()), int(free.sum())), np.nan)
    covariance = np.zeros((4, 4))
    covariance[np.ix_(free, free)] = inverse @ cov_r @ inverse.T
    errors = np.sqrt(np.clip(np.diag(covariance), 0.0, None))
    result: dict[str, Any] = {f"{n}_error": float(e) for n, e in zip(NAMES, errors, strict=True)}
    result["covariance"] = covariance
    result["jacobian"] = jac
    for label, mask in (("fe1", fe1), ("fe2", fe2)):
        values = abundances[mask]
        result[label] = {
            "n": int(mask.sum()),
            "mean": float(values.mean()),
            "std": float(values.std(ddof=1)) if len(values) > 1 else math.nan,
            "unexplained_scatter": math.sqrt(extra[label]),
        }
    return result
