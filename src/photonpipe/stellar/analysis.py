"""The physics steps of a session: stellar parameters and abundances from its EW measurements.

:class:`Physics` pairs a model-atmosphere grid with a radiative-transfer driver; every result
stored in the session carries ``physics.record()`` (grid name, version, ADS reference, SHA-256
of the whole grid; code, version, settings), and the session's ``physics`` section is set to
the physics of the last computation.

Lines used: EW measurements of single atomic lines that are ``acceptable`` detections
(not limits) with a positive EW. Upper limits (``is_limit``) give abundance upper limits from
their ``upper_limit`` EW.

* :func:`solve_parameters` -- stellar parameters (method ``excitation-ionisation``, see
  :mod:`photonpipe.stellar.parameters`), stored under ``stellar_parameters["methods"][method]``
  with their inputs (the line hashes, initial values, options); ``adopted`` names the method
  the session uses.
* :func:`compute_abundances` -- the line abundances at the adopted (or given) parameters, stored
  in each measurement (``abundances[element]``, ``abundance_uncertainties[element]``), and the
  per-species summary with [X/H], [X/Fe] and the stellar-parameter uncertainties in the
  session's ``abundances`` section.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from photonpipe.errors import PhotonpipeError
from photonpipe.stellar.abundances import (
    SOLAR_REFERENCE,
    element_symbol,
    line_abundances,
    parameter_sensitivities,
    species_key,
    species_summary,
)
from photonpipe.stellar.balmer import METHOD as BALMER_METHOD
from photonpipe.stellar.linelist import Line
from photonpipe.stellar.parameters import METHOD, solve_excitation_ionisation
from photonpipe.stellar.photospheres import AtmosphereGrid, load_grid
from photonpipe.stellar.radiative_transfer import RadiativeTransfer, get_code

if TYPE_CHECKING:
    from photonpipe.stellar.session import Session

METHODS = (METHOD, BALMER_METHOD)
NOT_CONVERGED = "no abundance: the radiative-transfer code did not converge on this line"


class AnalysisError(PhotonpipeError):
    """A physics step of a session cannot be done (names the session and the problem)."""


@dataclass
class Physics:
    """A model-atmosphere grid and a radiative-transfer code.

    Attributes
    ----------
    grid : AtmosphereGrid
        Model atmospheres.
    code : RadiativeTransfer
        Radiative-transfer driver.
    """

    grid: AtmosphereGrid
    code: RadiativeTransfer

    def record(self) -> dict[str, Any]:
        """``model_atmospheres`` and ``radiative_transfer`` records (plain data)."""
        return {"model_atmospheres": self.grid.record(), "radiative_transfer": self.code.record()}


def make_physics(
    atmospheres: str | os.PathLike[str] | None = None,
    code: str = "auto",
    moog: str | os.PathLike[str] | None = None,
    build: bool = True,
) -> Physics:
    """Physics from the settings ``stellar.atmospheres``, ``stellar.radiative_transfer``...

    Parameters
    ----------
    atmospheres : path, optional
        A MARCS/ATLAS grid directory; None for the bundled Kurucz (1993) subset.
    code : {"auto", "moog", "sme"}
        Radiative-transfer code.
    moog : path, optional
        A MOOGSILENT executable to use instead of the per-user build.
    build : bool
        Build MOOG on first use where gfortran exists.

    Raises
    ------
    NoRadiativeTransferError
        No code available (the message says how to get one).
    """
    grid = load_grid(atmospheres)
    options: dict[str, Any] = {"build": build}
    if moog is not None:
        options["executable"] = moog
    return Physics(grid, get_code(code, **options))


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def usable_lines(session: Session, limits: bool = False) -> list[tuple[str, dict[str, Any], Line]]:
    """EW measurements that give abundances: (key, measurement, line).

    Parameters
    ----------
    session : Session
        The session.
    limits : bool
        Return the upper limits (``is_limit``) instead of the detections.
    """
    out = []
    for key, m in sorted(session.state["measurements"].items(), key=lambda kv: kv[1]["wavelength"]):
        if m.get("method") != "ew" or len(m.get("line_hashes", [])) != 1:
            continue
        line = Line.from_dict(session.state["spectral_lines"][m["line_hashes"][0]])
        if line.species >= 100 or not m.get("acceptable", False):
            continue
        if bool(m.get("is_limit")) != limits:
            continue
        ew = m["upper_limit"] if limits else m["ew"]
        if math.isfinite(ew) and ew > 0:
            out.append((key, m, line))
    return out


def adopted_parameters(session: Session) -> dict[str, Any] | None:
    """Return the adopted stellar parameters (the adopted method's result), or None."""
    section = session.state["stellar_parameters"]
    method = section.get("adopted")
    if method is None:
        return None
    # the result adopted when it was solved: a later solve of the same method that was not
    # adopted (``adopt=False``) replaces ``methods[method]`` but not the adopted result
    return dict(section.get("adopted_result") or section["methods"][method])


def solve_parameters(
    session: Session,
    physics: Physics,
    method: str = METHOD,
    initial: Mapping[str, float] | None = None,
    adopt: bool = True,
    fixed: Mapping[str, float] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Solve for the stellar parameters and store the result with its inputs.

    Parameters
    ----------
    session : Session
        The session (needs Fe I and Fe II EW measurements).
    physics : Physics
        Grid and code.
    method : {"excitation-ionisation", "balmer-wings"}
        Method (``balmer-wings``: Teff from the Balmer wings at log g, vt and [M/H] held at
        the given, else the adopted, values; see :mod:`photonpipe.stellar.balmer`).
    initial : mapping, optional
        Starting ``teff``, ``logg``, ``vt``, ``feh``.
    adopt : bool
        Make this the session's adopted result.
    fixed : mapping, optional
        Parameters held at a value (see
        :func:`~photonpipe.stellar.parameters.solve_excitation_ionisation`).
    **options
        Options of :func:`~photonpipe.stellar.parameters.solve_excitation_ionisation`.

    Returns
    -------
    dict
        The stored result.
    """
    if method not in METHODS:
        raise AnalysisError(
            f"unknown stellar-parameter method {method!r} (use {', '.join(METHODS)})"
        )
    if method == BALMER_METHOD:
        result = _solve_balmer(session, physics, initial, fixed, **options)
    else:
        chosen = usable_lines(session)
        lines = [line for _, _, line in chosen]
        ews = [m["ew"] for _, m, _ in chosen]
        errors = [m["ew_uncertainty"] for _, m, _ in chosen]
        try:
            result = solve_excitation_ionisation(
                physics.code, physics.grid, lines, ews, errors, initial, fixed, **options
            )
        except PhotonpipeError as exc:
            raise AnalysisError(f"{session.path or 'session'}: {exc}") from None
    result["physics"] = physics.record()
    result["solved"] = _now()
    section = session.state["stellar_parameters"]
    if not adopt and section.get("adopted") == method and "adopted_result" not in section:
        section["adopted_result"] = dict(section["methods"][method])  # kept, not replaced
    section["methods"][method] = result
    if adopt:
        section["adopted"] = method
        section["adopted_result"] = dict(result)
    session.state["physics"] = physics.record()
    session.state["history"].append(
        {
            "time": _now(),
            "action": "solved stellar parameters",
            "method": method,
            "adopted": adopt,
            **{k: result[k] for k in ("teff", "logg", "vt", "feh", "converged")},
        }
    )
    return result


def _solve_balmer(
    session: Session,
    physics: Physics,
    initial: Mapping[str, float] | None,
    fixed: Mapping[str, float] | None,
    **options: Any,
) -> dict[str, Any]:
    """Balmer-wing Teff at log g, vt, [M/H] held (given, else the adopted parameters)."""
    from photonpipe.stellar.balmer import solve_balmer

    held: dict[str, float] = {}
    adopted = adopted_parameters(session)
    for source in (adopted, initial, fixed):
        for key in ("logg", "vt", "feh", "logg_error", "vt_error", "feh_error"):
            if source and key in source and source[key] is not None:
                held[key] = float(source[key])
    missing = [k for k in ("logg", "vt", "feh") if k not in held]
    if missing:
        raise AnalysisError(
            f"{session.path or 'session'}: the {BALMER_METHOD} method holds log g, vt and "
            f"[M/H]: give them (--logg --vt --feh with --teff as a start) or solve another "
            "method first"
        )
    return solve_balmer(session, physics, held, **options)


def compute_abundances(
    session: Session,
    physics: Physics,
    parameters: Mapping[str, float] | None = None,
    parameter_errors: bool = True,
) -> dict[str, Any]:
    """Compute line and species abundances and store them in the session.

    Parameters
    ----------
    session : Session
        The session.
    physics : Physics
        Grid and code.
    parameters : mapping, optional
        ``teff``, ``logg``, ``vt``, ``feh`` (and optionally ``*_error``); default the adopted
        stellar parameters.
    parameter_errors : bool
        Also propagate the stellar-parameter uncertainties (four more runs).

    Returns
    -------
    dict
        The session's new ``abundances`` section.
    """
    adopted = adopted_parameters(session)
    source = "given"
    if parameters is None:
        if adopted is None:
            raise AnalysisError(
                f"{session.path or 'session'}: no stellar parameters: run "
                "`photonpipe session solve` first or give --teff/--logg/--vt/--feh"
            )
        parameters = adopted
        source = f"adopted ({session.state['stellar_parameters']['adopted']})"
    params = {k: float(parameters[k]) for k in ("teff", "logg", "vt", "feh")}
    sigmas = {k: float(parameters.get(f"{k}_error", math.nan)) for k in params}
    chosen = usable_lines(session)
    if not chosen:
        raise AnalysisError(
            f"{session.path or 'session'}: no acceptable EW measurement of an atomic line"
        )
    lines = [line for _, _, line in chosen]
    ews = [m["ew"] for _, m, _ in chosen]
    try:
        values, errors = line_abundances(
            physics.code,
            physics.grid,
            params,
            lines,
            ews,
            [m["ew_uncertainty"] for _, m, _ in chosen],
        )
    except PhotonpipeError as exc:
        raise AnalysisError(f"{session.path or 'session'}: {exc}") from None
    stamp = {"parameters": params, "computed": _now()}
    for (_, m, line), value, error in zip(chosen, values, errors, strict=True):
        element = element_symbol(line.species)
        m["abundances"] = {element: float(value)}
        m["abundance_uncertainties"] = {element: float(abs(error))}
        m["abundance_inputs"] = stamp
        if not math.isfinite(value) and NOT_CONVERGED not in m["comments"]:
            m["comments"].append(NOT_CONVERGED)
    summary = species_summary([ln.species for ln in lines], values, np.abs(errors))
    limits = usable_lines(session, limits=True)
    if limits:
        limit_lines = [line for _, _, line in limits]
        limit_values, _ = line_abundances(
            physics.code,
            physics.grid,
            params,
            limit_lines,
            [m["upper_limit"] for _, m, _ in limits],
        )
        for (_, m, line), value in zip(limits, limit_values, strict=True):
            element = element_symbol(line.species)
            m["abundances"] = {element: math.nan}
            m["abundance_upper_limits"] = {element: float(value)}
            m["abundance_inputs"] = stamp
            key = species_key(line.species)
            entry = summary.setdefault(key, _limit_entry(line.species))
            entry["upper_limit"] = float(min(entry.get("upper_limit", math.inf), value))
    if parameter_errors and any(math.isfinite(s) and s > 0 for s in sigmas.values()):
        changes = parameter_sensitivities(physics.code, physics.grid, params, sigmas, lines, ews)
        for key, entry in summary.items():
            delta = changes.get(key, {})
            entry["parameter_errors"] = {k: v for k, v in delta.items() if k != "total"}
            entry["parameter_error"] = delta.get("total", math.nan)
            entry["total_error"] = math.sqrt(entry["error"] ** 2 + entry["parameter_error"] ** 2)
    section = {
        "species": summary,
        "parameters": params,
        "parameter_uncertainties": sigmas,
        "parameters_source": source,
        "solar_reference": SOLAR_REFERENCE,
        "x_fe_reference": "[X/Fe] uses Fe I for neutral species and Fe II for ions",
        "line_hashes": [line.hash for line in lines],
        "physics": physics.record(),
        "computed": stamp["computed"],
    }
    session.state["abundances"] = section
    session.state["physics"] = physics.record()
    session.state["history"].append(
        {
            "time": _now(),
            "action": "computed abundances",
            "lines": len(lines),
            "species": len(summary),
        }
    )
    return section


#: The fields of a solve result that ``session solve --json`` and the workbench report.
REPORTED_FIELDS = (
    "method", "teff", "teff_error", "logg", "logg_error", "vt", "vt_error", "feh", "feh_error",
    "converged", "message", "conditions", "fe1", "fe2", "evaluations", "seconds",
)  # fmt: skip


def solve_report(result: Mapping[str, Any], section: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return what is reported of a solve (``session solve --json`` and the workbench).

    Parameters
    ----------
    result : mapping
        The result of :func:`solve_parameters`.
    section : mapping, optional
        The ``abundances`` section from :func:`compute_abundances` run after it, if any.

    Returns
    -------
    dict
        :data:`REPORTED_FIELDS` of the result, ``clipped_lines`` (how many lines the solve
        left out) and, with ``section``, ``abundances`` (its per-species summary).
    """
    out = {k: result[k] for k in REPORTED_FIELDS}
    out["clipped_lines"] = len(result["inputs"]["clipped_line_hashes"])
    if section is not None:
        out["abundances"] = section["species"]
    return out


def _limit_entry(species: float) -> dict[str, Any]:
    from photonpipe.stellar.abundances import solar_abundance

    z = int(species)
    return {
        "species": round(float(species), 1), "element": element_symbol(species), "n": 0,
        "mean": math.nan, "std": math.nan, "error": math.nan, "ew_error": math.nan,
        "solar": solar_abundance(z), "x_h": math.nan, "x_fe": math.nan,
    }  # fmt: skip
