"""The stellar-session workbench: an opened ``.smh`` session and the actions on it.

Every action is one call of the :class:`~photonpipe.stellar.session.Session` API that the
``photonpipe session`` commands also make, with the same arguments:

* fit an order's continuum with its points and masks: ``session normalize S --order N
  --mask A B --point W F WEIGHT ...`` (:meth:`Session.normalize`);
* accept or reject a line, mark it an upper limit, comment: ``session review S HASH
  --accept|--reject --limit|--detection --comment TEXT`` (:meth:`Session.review_measurement`);
* re-fit one line or all: ``session measure S --line HASH`` or ``session measure S``
  (:meth:`Session.refit`);
* solve for the stellar parameters: ``session solve S [--teff ... --feh ...] [--fix NAME=V]
  [--no-adopt] [--no-abundances]`` (:func:`~photonpipe.stellar.analysis.solve_parameters`,
  then :func:`~photonpipe.stellar.analysis.compute_abundances`);
* compute the abundances: ``session abundances S [--teff ... --feh ...]``
  (:func:`~photonpipe.stellar.analysis.compute_abundances`).

The physics (model atmospheres and radiative-transfer code) comes from the ``stellar``
settings, as for the commands; without a radiative-transfer code those two actions answer
with the message saying how to get one.

Saving writes a new session file through :meth:`Session.save` (the atomic, checked writer);
the input spectra inside the session are never changed.
"""

from __future__ import annotations

import math
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from bokeh.embed import json_item
from bokeh.layouts import column
from bokeh.models import ColumnDataSource, CustomJS, Range1d
from bokeh.models.annotations import BoxAnnotation
from bokeh.plotting import figure

from photonpipe.errors import PhotonpipeError
from photonpipe.stellar.analysis import (
    Physics,
    adopted_parameters,
    compute_abundances,
    solve_parameters,
    solve_report,
    usable_lines,
)
from photonpipe.stellar.ew import DEFAULT_OPTIONS
from photonpipe.stellar.parameters import METHOD, NAMES
from photonpipe.stellar.radiative_transfer import species_name
from photonpipe.stellar.session import Session
from photonpipe.stellar.sessionfile import check_member_name
from photonpipe.web.security import new_token

CONTINUUM_FUNCTIONS = ("spline", "polynomial", "legendre", "chebyshev")
PROFILES = ("gaussian", "voigt")
#: Colours of the species in the abundance plots (cycled).
SPECIES_COLOURS = (
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#ff7f0e",
    "#bcbd22", "#7f7f7f", "#393b79", "#637939",
)  # fmt: skip


class ActionError(PhotonpipeError):
    """A workbench request that cannot be carried out (bad arguments); the message says why."""


def plain(value: Any) -> Any:
    """Return JSON-ready data: arrays as lists, non-finite floats as None, tuples as lists."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, np.generic):
        return plain(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _number(payload: dict[str, Any], key: str, default: float | None = None) -> float:
    value = payload.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ActionError(f"{key!r} must be a number")
    if not math.isfinite(value):
        raise ActionError(f"{key!r} must be finite")
    return float(value)


def _integer(payload: dict[str, Any], key: str, default: int | None = None) -> int:
    value = payload.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ActionError(f"{key!r} must be an integer")
    return value


def _pairs(payload: dict[str, Any], key: str, width: int) -> list[tuple[float, ...]]:
    values = payload.get(key, [])
    if not isinstance(values, list) or len(values) > 10_000:
        raise ActionError(f"{key!r} must be a list")
    out = []
    for item in values:
        if not isinstance(item, list | tuple) or len(item) != width:
            raise ActionError(f"each of {key!r} must have {width} numbers")
        numbers = tuple(_number({"v": v}, "v") for v in item)
        out.append(numbers)
    return out


def _parameters(payload: dict[str, Any], key: str) -> dict[str, float] | None:
    """All four stellar parameters (``--teff --logg --vt --feh``) or none."""
    value = payload.get(key)
    if value is None or value == {}:
        return None
    if not isinstance(value, dict) or set(value) != set(NAMES):
        raise ActionError(f"{key!r} must give all four of teff, logg, vt, feh (or none)")
    return {name: _number(value, name) for name in NAMES}


def _fixed(payload: dict[str, Any]) -> dict[str, float]:
    """Parameters held at a value (``--fix NAME=VALUE``)."""
    value = payload.get("fixed") or {}
    if not isinstance(value, dict) or set(value) - set(NAMES):
        raise ActionError("'fixed' must map some of teff, logg, vt, feh to numbers")
    return {name: _number(value, name) for name in NAMES if name in value}


def _bool(payload: dict[str, Any], key: str, default: bool) -> bool:
    value = payload.get(key, default)
    if not isinstance(value, bool):
        raise ActionError(f"{key!r} must be true or false")
    return value


def _optional_bool(payload: dict[str, Any], key: str) -> bool | None:
    value = payload.get(key)
    if value is not None and not isinstance(value, bool):
        raise ActionError(f"{key!r} must be true, false or null")
    return value


@dataclass
class OpenSession:
    """A session opened in the workbench.

    Attributes
    ----------
    session : Session
        The session (in memory until saved).
    label : str
        Where it came from (file name or ``upload``).
    save_dir : Path
        Directory new session files are written to.
    source : Path or None
        The file it was opened from (never overwritten).
    id : str
        Unguessable name in URLs.
    token : str
        The CSRF token every write to this session must carry.
    saved : list of Path
        Files written from this workbench session.
    physics : callable, optional
        Returns the model atmospheres and radiative-transfer code of the solve and the
        abundances (raises :class:`~photonpipe.stellar.radiative_transfer.NoRadiativeTransferError`
        when there is no code); None: those actions are not offered.
    """

    session: Session
    label: str
    save_dir: Path
    source: Path | None = None
    id: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    token: str = field(default_factory=new_token)
    saved: list[Path] = field(default_factory=list)
    physics: Callable[[], Physics] | None = field(default=None, repr=False)
    opened: float = field(default_factory=time.time)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # --- what the page shows -----------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """Orders, lines and session facts for the page."""
        s = self.session
        orders = []
        for i in range(s.n_orders):
            lo, hi = s.order(i).wavelength_range
            record = s.state["normalization"]["orders"][i]
            orders.append(
                {
                    "index": i,
                    "label": str(s.order(i).meta.get("label", "")),
                    "range": [lo, hi],
                    "discarded": i in s.state["discarded_orders"],
                    "normalized": record is not None,
                }
            )
        return plain(
            {
                "label": self.label,
                "summary": s.summary(),
                "orders": orders,
                "lines": self.lines_table(),
                "saved": [p.name for p in self.saved],
                "save_dir": str(self.save_dir),
                "suggested_name": self.suggested_name(),
            }
        )

    def lines_table(self) -> list[dict[str, Any]]:
        """One row per EW measurement: the line, the fit and its review."""
        rows = []
        lines = self.session.state["spectral_lines"]
        for m in self.session.measurements("ew"):
            first = lines.get((m.get("line_hashes") or [m["line_hash"]])[0], {})
            rows.append(
                {
                    "key": f"{m['line_hash']}|ew",
                    "hash": m["line_hash"],
                    "wavelength": m["wavelength"],
                    "species": first.get("species"),
                    "expot": first.get("expot"),
                    "loggf": first.get("loggf"),
                    "ew": m["ew"],
                    "ew_uncertainty": m["ew_uncertainty"],
                    "reduced_ew": m.get("reduced_ew"),
                    "fwhm": m.get("fwhm"),
                    "is_limit": bool(m["is_limit"]),
                    "upper_limit": m.get("upper_limit"),
                    "acceptable": bool(m["acceptable"]),
                    "comments": list(m.get("comments", [])),
                    "user_comment": m.get("user_comment", ""),
                    "profile": m.get("profile"),
                }
            )
        return rows

    def suggested_name(self) -> str:
        """Return a name for the next save that is neither in the directory nor the input."""
        stem = (self.source.stem if self.source else "session").split("-edited")[0]
        for n in range(1, 10_000):
            name = f"{stem}-edited-{n}.smh"
            if not (self.save_dir / name).exists():
                return name
        return f"{stem}-edited-{secrets.token_hex(4)}.smh"

    def order_options(self, index: int) -> dict[str, Any]:
        """Return the continuum settings of an order (its record's, or the defaults)."""
        self._order(index)
        record = self.session.state["normalization"]["orders"][index]
        defaults: dict[str, Any] = {
            "function": "spline",
            "degree": 3,
            "knot_spacing": 20.0,
            "low_sigma": 2.0,
            "high_sigma": 3.0,
            "max_iterations": 10,
            "masks": [],
            "use_default_masks": True,
            "added_points": [],
        }
        defaults.update(self.session.state["normalization"].get("defaults") or {})
        if record is None:
            return plain({**defaults, "normalized": False, "default_masks": []})
        masks = [list(m[:2]) for m in record["masks"] if m[2] == "user"]
        default_masks = [list(m) for m in record["masks"] if m[2] != "user"]
        use_defaults = record.get("use_default_masks", bool(default_masks))
        options = {k: record[k] for k in defaults if k in record}
        options.update(
            {
                "masks": masks,
                "use_default_masks": use_defaults,
                "added_points": [list(p) for p in record["added_points"]],
                "normalized": True,
                "default_masks": default_masks,
                "rms": record.get("rms"),
                "iterations": record.get("iterations"),
            }
        )
        return plain(options)

    def _order(self, index: int) -> None:
        if not 0 <= index < self.session.n_orders:
            raise ActionError(f"no order {index} (the session has {self.session.n_orders})")

    def order_plot(self, index: int) -> dict[str, Any]:
        """Bokeh item of one order: flux and continuum, masks, added points; normalised flux."""
        self._order(index)
        s = self.session
        rest = s.rest_frame_order(index)
        record = s.state["normalization"]["orders"][index]
        w = rest.wavelength
        flux = np.where(rest.ivar > 0, rest.flux, np.nan)
        top = figure(
            height=320,
            sizing_mode="stretch_width",
            tools="xpan,xwheel_zoom,box_zoom,reset,tap,save",
            active_scroll="xwheel_zoom",
            active_drag="box_zoom",
            title=f"order {index} (rest frame): flux and continuum",
            name="order-flux",
        )
        top.x_range = Range1d(start=float(w[0]), end=float(w[-1]), name="order-xrange")
        top.line(w, flux, color="#333", line_width=1)
        normalised = None
        if record is not None:
            continuum = np.asarray(record["continuum"], dtype=np.float64)
            top.line(w, continuum, color="#d62728", line_width=2, legend_label="continuum")
            used = np.asarray(record["used_pixels"], dtype=bool)
            top.scatter(w[~used], flux[~used], size=2, color="#aaa", legend_label="not used")
            for a, b, name in record["masks"]:
                colour = "#9467bd" if name == "user" else "#bbbbbb"
                top.add_layout(BoxAnnotation(left=a, right=b, fill_color=colour, fill_alpha=0.2))
            points = np.asarray(record["added_points"], dtype=np.float64).reshape(-1, 3)
            top.scatter(
                points[:, 0],
                points[:, 1],
                size=10,
                marker="diamond",
                color="#ff7f0e",
                legend_label="added points",
                name="added-points",
            )
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where(continuum > 0, flux / continuum, np.nan)
            normalised = figure(
                height=200,
                sizing_mode="stretch_width",
                x_range=top.x_range,
                tools="xpan,xwheel_zoom,box_zoom,reset",
                active_scroll="xwheel_zoom",
                title="normalised",
            )
            normalised.line(w, ratio, color="#1f4e79", line_width=1)
            normalised.y_range = Range1d(start=0.0, end=1.25)
            top.legend.location = "top_left"
            top.legend.click_policy = "hide"
        top.js_on_event(
            "tap",
            CustomJS(code="if (window.photonpipeTap) window.photonpipeTap(cb_obj.x, cb_obj.y);"),
        )
        top.xaxis.axis_label = "rest wavelength [Å]"
        top.yaxis.axis_label = "flux"
        layout = column(top, normalised) if normalised is not None else column(top)
        layout.sizing_mode = "stretch_width"
        return dict(json_item(layout))

    def line_detail(self, key: str) -> dict[str, Any]:
        """Return a measurement, its fit and residuals (Bokeh item) and the line's atomic data."""
        m = self._measurement(key)
        w = np.asarray(m["window_wavelength"], dtype=np.float64)
        model = np.asarray(m["model"], dtype=np.float64)
        mask = np.asarray(m["mask"], dtype=bool)
        spectrum = self.session.measurement_spectrum(m["wavelength"])
        index = np.clip(np.searchsorted(spectrum.wavelength, w), 0, len(spectrum) - 1)
        data = np.asarray(spectrum.flux, dtype=np.float64)[index]
        res = data - model
        model_source = ColumnDataSource({"w": w, "model": model})
        fitted = ColumnDataSource({"w": w[mask], "data": data[mask], "res": res[mask]})
        masked = ColumnDataSource({"w": w[~mask], "data": data[~mask], "res": res[~mask]})
        fit = figure(
            height=240,
            sizing_mode="stretch_width",
            tools="xpan,xwheel_zoom,box_zoom,reset",
            title=f"{m['wavelength']:.3f} Å: data and {m.get('profile', '')} fit",
            name="line-fit",
        )
        fit.scatter("w", "data", source=fitted, size=4, color="#333", legend_label="data fitted")
        fit.scatter(
            "w", "data", source=masked, size=7, marker="x", color="#e377c2",
            legend_label="masked (neighbour)",
        )  # fmt: skip
        fit.line(
            "w", "model", source=model_source, color="#d62728", line_width=2, legend_label="fit"
        )
        fit.legend.location = "bottom_left"
        residuals = figure(
            height=140,
            sizing_mode="stretch_width",
            x_range=fit.x_range,
            tools="xpan,xwheel_zoom,reset",
            title="residuals (data − fit)",
        )
        residuals.scatter("w", "res", source=fitted, size=4, color="#1f4e79")
        residuals.scatter("w", "res", source=masked, size=7, marker="x", color="#e377c2")
        residuals.xaxis.axis_label = "rest wavelength [Å]"
        layout = column(fit, residuals, sizing_mode="stretch_width")
        row = next(r for r in self.lines_table() if r["key"] == self._key(key))
        return {
            "item": dict(json_item(layout)),
            "line": plain(row),
            "chi2": plain(m.get("chi2")),
            "dof": plain(m.get("dof")),
            "ew_noise_uncertainty": plain(m.get("ew_noise_uncertainty")),
        }

    def _key(self, key: str) -> str:
        return key if "|" in key else f"{key}|ew"

    def _measurement(self, key: str) -> dict[str, Any]:
        measurement = self.session.state["measurements"].get(self._key(key))
        if measurement is None:
            raise ActionError(f"no measurement {key!r}")
        return measurement

    # --- actions ------------------------------------------------------------------------------

    def normalize(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Fit one order's continuum (``session normalize --order N``)."""
        index = _integer(payload, "order")
        self._order(index)
        function = payload.get("function", "spline")
        if function not in CONTINUUM_FUNCTIONS:
            raise ActionError(f"function must be one of {', '.join(CONTINUUM_FUNCTIONS)}")
        use_default = payload.get("use_default_masks", True)
        if not isinstance(use_default, bool):
            raise ActionError("'use_default_masks' must be true or false")
        masks = _pairs(payload, "masks", 2)
        if any(not a < b for a, b in masks):
            raise ActionError("each mask must be (start, end) with start < end")
        self.session.normalize(
            index,
            function=function,
            degree=_integer(payload, "degree", 3),
            knot_spacing=_number(payload, "knot_spacing", 20.0),
            low_sigma=_number(payload, "low_sigma", 2.0),
            high_sigma=_number(payload, "high_sigma", 3.0),
            max_iterations=_integer(payload, "max_iterations", 10),
            masks=masks,  # type: ignore[arg-type]
            use_default_masks=use_default,
            added_points=_pairs(payload, "added_points", 3),  # type: ignore[arg-type]
        )
        return self.order_options(index)

    def review(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Accept/reject, upper limit, comment (``session review``)."""
        key = payload.get("line")
        if not isinstance(key, str):
            raise ActionError("'line' must be a measurement key or line hash")
        self._measurement(key)
        comment = payload.get("comment")
        if comment is not None and (not isinstance(comment, str) or len(comment) > 2000):
            raise ActionError("'comment' must be text of at most 2000 characters")
        self.session.review_measurement(
            key,
            acceptable=_optional_bool(payload, "acceptable"),
            upper_limit=_optional_bool(payload, "upper_limit"),
            comment=comment,
        )
        return self.line_detail(key)

    def refit(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Re-fit some or all lines (``session measure [--line HASH]``)."""
        lines = payload.get("lines")
        if lines is not None and (
            not isinstance(lines, list) or not all(isinstance(x, str) for x in lines)
        ):
            raise ActionError("'lines' must be a list of line hashes or null")
        profile = payload.get("profile", "gaussian")
        if profile not in PROFILES:
            raise ActionError(f"profile must be one of {', '.join(PROFILES)}")
        window = _number(payload, "window", DEFAULT_OPTIONS["window"])
        if lines is not None:
            for item in lines:
                if item.split("|", 1)[0] not in self.session.state["spectral_lines"]:
                    raise ActionError(f"no line {item!r} in the session")
        measured = self.session.refit(lines, profile=profile, window=window)
        return {"refitted": len(measured), "lines": plain(self.lines_table())}

    def _physics(self) -> Physics:
        if self.physics is None:
            raise ActionError("this server has no stellar physics configured")
        return self.physics()

    def solve(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Solve the stellar parameters, then the abundances (``session solve``).

        Payload: ``initial`` (all four of teff, logg, vt, feh, or none), ``fixed`` (some of
        them), ``adopt`` (default true), ``abundances`` (default true; only when adopted).
        Returns what ``session solve --json`` prints (``report``) and the new
        :meth:`parameters_view`.
        """
        initial = _parameters(payload, "initial")
        fixed = _fixed(payload)
        adopt = _bool(payload, "adopt", True)
        with_abundances = _bool(payload, "abundances", True)
        physics = self._physics()
        result = solve_parameters(self.session, physics, METHOD, initial, adopt=adopt, fixed=fixed)
        section = None
        if with_abundances and adopt:
            section = compute_abundances(self.session, physics)
        report = solve_report(result, section)
        return {"report": plain(report), "view": self.parameters_view()}

    def abundances(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Compute the abundances at the adopted or given parameters (``session abundances``).

        Payload: ``parameters`` (all four of teff, logg, vt, feh, or none: the adopted ones).
        Returns the new ``abundances`` section (what ``session abundances --json`` prints) as
        ``report`` and the new :meth:`parameters_view`.
        """
        given = _parameters(payload, "parameters")
        section = compute_abundances(self.session, self._physics(), given)
        return {"report": plain(section), "view": self.parameters_view()}

    def parameters_view(self) -> dict[str, Any]:
        """Return the stellar parameters, the abundances and their plots against EP and reduced EW.

        Returns
        -------
        dict
            ``adopted`` (the adopted solve as ``session solve --json`` reports it, or None),
            ``abundances`` (the session's ``abundances`` section or None), ``slopes`` (the
            OLS slopes of the plotted Fe I abundances against excitation potential [dex/eV]
            and reduced EW [dex/dex], with how many lines), ``item`` (the Bokeh plots, or
            None when no line has an abundance yet).
        """
        s = self.session
        adopted = adopted_parameters(s)
        section = s.state.get("abundances") or None
        if section is not None and not section.get("species"):
            section = None
        solved_with = set(adopted["inputs"]["line_hashes"]) if adopted else None
        at_solution = bool(
            adopted
            and section
            and all(
                math.isclose(section["parameters"][k], adopted[k], rel_tol=0, abs_tol=1e-9)
                for k in NAMES
            )
        )
        points: dict[str, list[Any]] = {
            k: [] for k in ("species", "ep", "rw", "abundance", "error", "wavelength", "used")
        }
        limits: dict[str, list[Any]] = {k: [] for k in ("species", "ep", "rw", "abundance")}
        for _, m, line in usable_lines(s):
            element = next(iter(m.get("abundances") or {}), None)
            value = (m.get("abundances") or {}).get(element, math.nan)
            if element is None or not math.isfinite(value):
                continue
            # only Fe I and Fe II lines enter the solve: "not used" marks those it left out
            used = (
                not at_solution
                or solved_with is None
                or round(line.species, 1) not in (26.0, 26.1)
                or line.hash in solved_with
            )
            for key, item in (
                ("species", species_name(line.species)),
                ("ep", line.expot),
                ("rw", math.log10(m["ew"] * 1e-3 / line.wavelength)),
                ("abundance", value),
                ("error", (m.get("abundance_uncertainties") or {}).get(element, math.nan)),
                ("wavelength", line.wavelength),
                ("used", used),
            ):
                points[key].append(item)
        for _, m, line in usable_lines(s, limits=True):
            value = next(iter((m.get("abundance_upper_limits") or {}).values()), math.nan)
            if math.isfinite(value):
                limits["species"].append(species_name(line.species))
                limits["ep"].append(line.expot)
                limits["rw"].append(math.log10(m["upper_limit"] * 1e-3 / line.wavelength))
                limits["abundance"].append(value)
        slopes = _fe1_slopes(points)
        item = _abundance_plots(points, limits, slopes) if points["abundance"] else None
        return plain(
            {
                "adopted": solve_report(adopted, None) if adopted else None,
                "adopted_method": s.state["stellar_parameters"].get("adopted"),
                "adopted_lines": len(solved_with) if solved_with is not None else None,
                "abundances": section,
                "slopes": slopes,
                "slopes_from_solved_lines": at_solution,
                "item": item,
            }
        )

    def save(self, payload: dict[str, Any]) -> Path:
        """Write the session to a new file in :attr:`save_dir` (atomically, checked)."""
        name = payload.get("filename")
        if not isinstance(name, str):
            raise ActionError("'filename' must be a file name")
        try:
            check_member_name(name)
        except ValueError:
            raise ActionError(f"{name!r} is not a plain file name") from None
        if not name.endswith(".smh"):
            raise ActionError("the file name must end in .smh")
        target = self.save_dir / name
        if self.source is not None and target.resolve() == self.source.resolve():
            raise ActionError(f"{name}: is the session that was opened; save under a new name")
        if target.exists() and target not in self.saved:
            raise ActionError(f"{name}: exists already; choose a new name")
        self.save_dir.mkdir(parents=True, exist_ok=True)
        written = self.session.save(target)
        if written not in self.saved:
            self.saved.append(written)
        return written


def _fe1_slopes(points: dict[str, list[Any]]) -> dict[str, Any]:
    """OLS slopes of the Fe I abundances (those marked used) against EP and reduced EW."""
    species = np.array(points["species"], dtype=object)
    chosen = (species == "Fe I") & np.array(points["used"], dtype=bool)
    abundance = np.array(points["abundance"], dtype=np.float64)[chosen]
    out: dict[str, Any] = {"n": int(chosen.sum())}
    for key in ("ep", "rw"):
        x = np.array(points[key], dtype=np.float64)[chosen]
        if len(x) >= 2 and np.ptp(x) > 0:
            # the same statistic as the solve's balance conditions: Σ dx·A / Σ dx²
            dx = x - x.mean()
            slope = float(np.sum(dx * abundance) / np.sum(dx**2))
            out[key] = {
                "slope": slope,
                "intercept": float(abundance.mean() - slope * x.mean()),
                "range": [float(x.min()), float(x.max())],
            }
        else:
            out[key] = None
    return out


def _abundance_plots(
    points: dict[str, list[Any]], limits: dict[str, list[Any]], slopes: dict[str, Any]
) -> dict[str, Any]:
    """Bokeh item: line abundances against EP and reduced EW, by species, Fe I slopes drawn."""
    species = sorted(set(points["species"]), key=lambda n: (n != "Fe I", n != "Fe II", n))
    colours = {n: SPECIES_COLOURS[i % len(SPECIES_COLOURS)] for i, n in enumerate(species)}
    figures = []
    for key, label, unit in (
        ("ep", "excitation potential [eV]", "dex/eV"),
        ("rw", "reduced EW log(W/λ)", "dex/dex"),
    ):
        fit = slopes.get(key)
        title = "abundance against " + label.split(" [")[0].split(" log")[0]
        if fit is not None:
            title += f": Fe I slope {fit['slope']:+.4f} {unit} ({slopes['n']} lines)"
        plot = figure(
            height=300,
            sizing_mode="stretch_width",
            tools="pan,wheel_zoom,box_zoom,reset,hover",
            tooltips=[("λ", "@wavelength{0.000} Å"), ("species", "@species"),
                      ("log ε", "@abundance{0.00}")],
            title=title,
            name=f"abundance-{key}",
        )  # fmt: skip
        for name in species:
            index = [i for i, n in enumerate(points["species"]) if n == name]
            for used in (True, False):
                chosen = [i for i in index if points["used"][i] == used]
                if not chosen:
                    continue
                source = ColumnDataSource(
                    {k: [points[k][i] for i in chosen] for k in points if k != "used"}
                )
                plot.scatter(
                    key,
                    "abundance",
                    source=source,
                    size=7 if used else 8,
                    marker="circle" if used else "x",
                    color=colours[name],
                    legend_label=name if used else f"{name} left out of the solve",
                )
        for name in sorted(set(limits["species"])):
            chosen = [i for i, n in enumerate(limits["species"]) if n == name]
            plot.scatter(
                [limits[key][i] for i in chosen],
                [limits["abundance"][i] for i in chosen],
                size=8,
                marker="inverted_triangle",
                color=colours.get(name, "#7f7f7f"),
                fill_alpha=0.0,
                legend_label=f"{name} upper limit",
            )
        if fit is not None:
            x = np.array(fit["range"])
            plot.line(
                x,
                fit["intercept"] + fit["slope"] * x,
                color=colours.get("Fe I", "#1f77b4"),
                line_width=2,
                line_dash="dashed",
                legend_label="Fe I fit",
            )
        plot.xaxis.axis_label = label
        plot.yaxis.axis_label = "log ε"
        plot.legend.label_text_font_size = "8pt"
        plot.legend.click_policy = "hide"
        plot.add_layout(plot.legend[0], "right")  # beside the plot, not over the points
        figures.append(plot)
    layout = column(*figures, sizing_mode="stretch_width")
    return dict(json_item(layout))
