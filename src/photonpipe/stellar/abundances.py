"""Abundances: per line from equivalent widths, per species with uncertainties, on a solar scale.

Per line, a radiative-transfer code turns the EW into log ε (:func:`line_abundances`); the
uncertainty from the EW's error is the change of log ε when the EW is raised by its σ (one
more run). Per species (:func:`species_summary`): N, mean, standard deviation of the lines,
the error of the mean (σ/√N, or the line's own EW error when N = 1 or when that is larger),
[X/H] = mean − solar and [X/Fe] = [X/H] − [Fe/H], with [Fe/H] from Fe I for neutral species and
from Fe II for ions (the usual pairing, which cancels most of the ionisation-balance
sensitivity), on the solar scale of Asplund et al. (2009, ARA&A 47, 481; photospheric values,
meteoritic where the Sun gives none). Stellar-parameter uncertainties
(:func:`parameter_sensitivities`): the abundances are recomputed with each of Teff, log g, vt
and [M/H] moved by its σ, and the changes added in quadrature (correlations between the
parameters ignored).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from photonpipe.stellar.linelist import Line
from photonpipe.stellar.photospheres import AtmosphereGrid, AtmosphereGridError
from photonpipe.stellar.radiative_transfer import RadiativeTransfer, species_name
from photonpipe.stellar.sessionfile import element_of

SOLAR_REFERENCE = "Asplund et al. 2009 (2009ARA&A..47..481A)"

#: Solar log ε (H = 12) by atomic number: Asplund et al. (2009) Table 1, photospheric values;
#: meteoritic (CI) values for elements without a photospheric one (As, Se, Br, Cd, Sb, Te, I,
#: Cs, Ta, Re, Pt, Hg, Bi, U). Tc and Pm (no value) are absent.
SOLAR_ASPLUND2009: dict[int, float] = dict(
    enumerate(
        [
            12.00, 10.93, 1.05, 1.38, 2.70, 8.43, 7.83, 8.69, 4.56, 7.93,
            6.24, 7.60, 6.45, 7.51, 5.41, 7.12, 5.50, 6.40, 5.03, 6.34,
            3.15, 4.95, 3.93, 5.64, 5.43, 7.50, 4.99, 6.22, 4.19, 4.56,
            3.04, 3.65, 2.30, 3.34, 2.54, 3.25, 2.52, 2.87, 2.21, 2.58,
            1.46, 1.88, math.nan, 1.75, 0.91, 1.57, 0.94, 1.71, 0.80, 2.04,
            1.01, 2.18, 1.55, 2.24, 1.08, 2.18, 1.10, 1.58, 0.72, 1.42,
            math.nan, 0.96, 0.52, 1.07, 0.30, 1.10, 0.48, 0.92, 0.10, 0.84,
            0.10, 0.85, -0.12, 0.85, 0.26, 1.40, 1.38, 1.62, 0.92, 1.17,
            0.90, 1.75, 0.65, math.nan, math.nan, math.nan, math.nan, math.nan, math.nan, 0.02,
            math.nan, -0.54,
        ],
        start=1,
    )
)  # fmt: skip
SOLAR_ASPLUND2009 = {z: v for z, v in SOLAR_ASPLUND2009.items() if math.isfinite(v)}


def solar_abundance(z: int) -> float:
    """Solar log ε of element ``z`` (Asplund et al. 2009); NaN when the table has none."""
    return SOLAR_ASPLUND2009.get(int(z), math.nan)


element_symbol = element_of


def line_abundances(
    code: RadiativeTransfer,
    grid: AtmosphereGrid,
    parameters: Mapping[str, float],
    lines: Sequence[Line],
    ews: ArrayLike,
    ew_errors: ArrayLike | None = None,
    strict: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Abundance of each line from its EW, and the uncertainty from the EW's error.

    Parameters
    ----------
    code : RadiativeTransfer
        Driver.
    grid : AtmosphereGrid
        Model atmospheres.
    parameters : mapping
        ``teff`` [K], ``logg``, ``vt`` [km s⁻¹], ``feh`` (model [M/H]) [dex].
    lines : sequence of Line
        Lines.
    ews : sequence of float
        EWs [mÅ].
    ew_errors : array-like, optional
        σ(EW) [mÅ]; the uncertainties are NaN without them.
    strict : bool
        NaN for lines the code did not converge on (see :meth:`RadiativeTransfer.abundances`).

    Returns
    -------
    abundances, uncertainties : ndarray
        log ε and its σ from the EW error [dex], in the order of ``lines``.
    """
    model = grid.interpolate(parameters["teff"], parameters["logg"], parameters["feh"])
    ews = np.asarray(ews, dtype=float)
    abundances = code.abundances(model, parameters["vt"], lines, ews, strict=strict)
    errors = np.full(len(lines), np.nan)
    if ew_errors is not None:
        sigma = np.asarray(ew_errors, dtype=float)
        usable = np.isfinite(sigma) & (sigma > 0)
        if usable.any():
            index = np.flatnonzero(usable)
            raised = code.abundances(
                model, parameters["vt"], [lines[int(i)] for i in index], ews[index] + sigma[index]
            )
            errors[index] = raised - abundances[index]
    return abundances, errors


def species_key(species: float) -> str:
    """Key of a species in tables: its name, e.g. "Fe I", "Ti II"."""
    return species_name(round(float(species), 1))


def species_summary(
    species: ArrayLike,
    abundances: ArrayLike,
    uncertainties: ArrayLike | None = None,
) -> dict[str, dict[str, Any]]:
    """Per-species statistics of line abundances, with [X/H] and [X/Fe] (Asplund et al. 2009).

    Parameters
    ----------
    species : sequence of float
        Species code of each line.
    abundances : sequence of float
        log ε of each line (NaN ones are left out).
    uncertainties : sequence of float, optional
        σ from each line's EW error [dex].

    Returns
    -------
    dict
        By species name: ``species`` (code), ``element``, ``n``, ``mean``, ``std``,
        ``error`` (of the mean), ``ew_error`` (the EW errors propagated to the mean),
        ``solar``, ``x_h``, ``x_fe`` (NaN without the Fe I/II reference).
    """
    codes = np.round(np.asarray(species, dtype=float), 1)
    values = np.asarray(abundances, dtype=float)
    sigmas = (
        np.asarray(uncertainties, dtype=float)
        if uncertainties is not None
        else np.full(len(values), np.nan)
    )
    summary: dict[str, dict[str, Any]] = {}
    for code in sorted(set(codes.tolist())):
        chosen = (codes == code) & np.isfinite(values)
        n = int(chosen.sum())
        if n == 0:
            continue
        x = values[chosen]
        s = sigmas[chosen]
        mean = float(np.mean(x))
        std = float(np.std(x, ddof=1)) if n > 1 else math.nan
        ew_error = float(np.sqrt(np.nansum(s**2)) / n) if np.isfinite(s).any() else math.nan
        scatter_error = std / math.sqrt(n) if n > 1 else math.nan
        candidates = [e for e in (scatter_error, ew_error) if math.isfinite(e)]
        error = max(candidates) if candidates else math.nan
        solar = solar_abundance(int(code))
        summary[species_key(code)] = {
            "species": float(code),
            "element": element_symbol(code),
            "n": n,
            "mean": mean,
            "std": std,
            "error": error,
            "ew_error": ew_error,
            "solar": solar,
            "x_h": mean - solar,
            "x_fe": math.nan,
        }
    fe1, fe2 = summary.get("Fe I"), summary.get("Fe II")
    for entry in summary.values():
        ionised = entry["species"] - int(entry["species"]) > 0.05
        reference = (fe2 or fe1) if ionised else (fe1 or fe2)
        if reference is not None and entry["element"] != "Fe":
            entry["x_fe"] = entry["x_h"] - reference["x_h"]
    return summary


#: Parameter steps of the stellar-parameter uncertainty (names as in the results).
PARAMETER_NAMES = ("teff", "logg", "vt", "feh")


def parameter_sensitivities(
    code: RadiativeTransfer,
    grid: AtmosphereGrid,
    parameters: Mapping[str, float],
    errors: Mapping[str, float],
    lines: Sequence[Line],
    ews: ArrayLike,
) -> dict[str, dict[str, float]]:
    """Change of each species' mean abundance with each stellar parameter moved by its σ.

    The model is moved to the parameter + σ (− σ where + σ leaves the grid) and the lines are
    recomputed; the change keeps its sign for + σ.

    Parameters
    ----------
    code : RadiativeTransfer
        Driver.
    grid : AtmosphereGrid
        Model atmospheres.
    parameters : mapping
        ``teff``, ``logg``, ``vt``, ``feh``.
    errors : mapping
        Their σ (same keys); a missing or non-finite σ is skipped.
    lines : sequence of Line
        Lines.
    ews : sequence of float
        EWs [mÅ].

    Returns
    -------
    dict
        By species name: the change of the mean log ε per parameter ([dex]) and ``total``
        (quadrature sum).
    """
    species = [ln.species for ln in lines]
    base, _ = line_abundances(code, grid, parameters, lines, ews)
    reference = species_summary(species, base)
    changes: dict[str, dict[str, float]] = {key: {} for key in reference}
    for name in PARAMETER_NAMES:
        sigma = float(errors.get(name, math.nan))
        if not (math.isfinite(sigma) and sigma > 0):
            continue
        for sign in (1.0, -1.0):
            moved = dict(parameters)
            moved[name] = parameters[name] + sign * sigma
            try:
                values, _ = line_abundances(code, grid, moved, lines, ews)
            except AtmosphereGridError:
                if sign < 0:
                    raise
                continue
            shifted = species_summary(species, values)
            for key, entry in reference.items():
                if key in shifted:
                    changes[key][name] = sign * (shifted[key]["mean"] - entry["mean"])
            break
    for change in changes.values():
        change["total"] = float(math.sqrt(sum(v**2 for v in change.values())))
    return changes
