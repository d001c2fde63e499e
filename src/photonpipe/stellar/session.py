"""The analysis session: the Python API a notebook user (and the CLI) works with.

>>> session = Session.new(["star_blue.fits", "star_red.fits"])       # doctest: +SKIP
>>> session.measure_rv(template="giant", wavelength_range=(5150, 5300))
>>> session.normalize_all(function="spline", knot_spacing=15)
>>> session.stack(step=0.02)
>>> session.measure("lines.moog")
>>> session.save("star.smh")
>>> session = Session.load("star.smh")

Input spectra are kept byte-identical in the session and re-read on load; everything else is
plain data in :attr:`Session.state` (see docs/stellar.md for the layout).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from photonpipe import __version__
from photonpipe.errors import EXIT_USAGE, InputFileError, PhotonpipeError
from photonpipe.platform.progress import track
from photonpipe.spectra.barycentric import (
    ObservationMetadataError,
    observation_from_header,
    velocity_corrections,
)
from photonpipe.spectra.continuum import (
    STRONG_LINE_MASKS,
    TELLURIC_MASKS,
    ContinuumError,
    fit_continuum,
)
from photonpipe.spectra.resample import coadd, linear_wavelength_grid, log_wavelength_grid
from photonpipe.spectra.spectrum import C_KMS, Spectrum
from photonpipe.spectra.xcorr import CrossCorrelationError, cross_correlate
from photonpipe.stellar.ew import (
    LineOutsideSpectrumError,
    count_measurements,
    flag_resolution_outliers,
    measure_equivalent_width,
    measurement_key,
)
from photonpipe.stellar.linelist import Line, LineList, read_linelist_bytes
from photonpipe.stellar.physics import physics_record
from photonpipe.stellar.readers import read_spectrum_bytes
from photonpipe.stellar.sessionfile import (
    DEFAULT_LIMITS,
    SessionLimits,
    check_member_name,
    element_of,
    empty_state,
    read_session_file,
    sha256_hex,
    write_session_file,
)

log = logging.getLogger("photonpipe.stellar.session")

#: Bundled RV templates (real MIKE spectra; see stellar/data/README.md).
TEMPLATES = {
    "giant": "rv_template_giant_hd122563.fits",
    "subgiant": "rv_template_subgiant_hd140283.fits",
}


def template_zero_point_uncertainty(
    template: Spectrum, wavelength_range: tuple[float, float]
) -> float:
    """Zero-point uncertainty [km/s] of an RV template over an observed range.

    Templates whose header gives ``RVZEROSD`` (the scatter of the velocities of single lines
    about the template's laboratory rest frame [km/s]) and ``RVZERON`` (the number of lines it
    was measured with over the whole template) — the bundled ones — contribute
    RVZEROSD / √n, n the number of those lines expected in ``wavelength_range``; other
    templates 0 (unknown).

    Parameters
    ----------
    template : Spectrum
        The template (its ``meta["header"]`` is read).
    wavelength_range : (float, float)
        Range correlated [Å].
    """
    header = template.meta.get("header", {})
    try:
        spread, count = float(header["RVZEROSD"]), float(header["RVZERON"])
    except (KeyError, TypeError, ValueError):
        return 0.0
    t_lo, t_hi = template.wavelength_range
    expected = count * (wavelength_range[1] - wavelength_range[0]) / (t_hi - t_lo)
    return spread / math.sqrt(max(expected, 1.0))


class SessionError(PhotonpipeError):
    """A session operation cannot be done (names the session and the problem)."""

    exit_code = EXIT_USAGE  # the user's input or request, not failed work


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def template_bytes(name: str) -> tuple[str, bytes]:
    """Return (basename, contents) of a bundled RV template ("giant" or "subgiant").

    Parameters
    ----------
    name : str
        Template name (see :data:`TEMPLATES`).
    """
    if name not in TEMPLATES:
        raise SessionError(f"unknown RV template {name!r} (bundled: {', '.join(TEMPLATES)})")
    filename = TEMPLATES[name]
    return filename, (resources.files("photonpipe.stellar") / "data" / filename).read_bytes()


class Session:
    """An SMH-style analysis session of one star.

    Use :meth:`new` or :meth:`load`; :attr:`state` is the plain-data content of
    ``session.pkl`` and :attr:`files` the input spectra and ancillary files by basename.

    Parameters
    ----------
    state : dict
        Session state (schema :data:`~photonpipe.stellar.sessionfile.SCHEMA_VERSION`).
    files : dict of str to bytes
        Files held in the session.
    path : Path, optional
        Where the session was loaded from / last saved.
    """

    def __init__(self, state: dict[str, Any], files: dict[str, bytes], path: Path | None = None):
        self.state = state
        self.files = files
        self.path = path
        self._orders: list[Spectrum] = []
        for name in state["input_spectra_filenames"]:
            self._orders.extend(read_spectrum_bytes(files[name], name))
        sources = [[o.meta["source"], o.meta["index"], o.meta["label"]] for o in self._orders]
        if not state["order_sources"]:
            state["order_sources"] = sources
        elif [list(s) for s in state["order_sources"]] != sources:
            raise InputFileError(
                path or "session", "the input spectra no longer give the recorded orders"
            )
        norm = state["normalization"]["orders"]
        norm.extend([None] * (len(self._orders) - len(norm)))

    # --- creation, loading, saving ----------------------------------------------------------

    @classmethod
    def new(cls, spectra: Sequence[str | os.PathLike[str]]) -> Session:
        """Start a session from input spectrum files (any format of ``stellar.readers``).

        Files that photonpipe's readers do not recognise are read with specutils' loaders when
        specutils is installed; :attr:`readers` says which reader read each file.

        Parameters
        ----------
        spectra : sequence of path
            Input files; their basenames must differ.

        Returns
        -------
        Session
            A session holding byte-identical copies of the files.

        Raises
        ------
        InputFileError
            A file is missing or unreadable.
        SessionError
            No files, or two files with the same basename.
        """
        if not spectra:
            raise SessionError("a session needs at least one input spectrum")
        state = empty_state()
        files: dict[str, bytes] = {}
        for item in spectra:
            path = Path(item)
            name = path.name
            try:
                check_member_name(name)
            except ValueError:
                raise InputFileError(path, "file name cannot be stored in a session") from None
            if name in files:
                raise SessionError(f"two input spectra are named {name!r}")
            try:
                files[name] = path.read_bytes()
            except FileNotFoundError:
                raise InputFileError(path, "no such file") from None
            except OSError as exc:
                raise InputFileError(path, f"cannot read: {exc.strerror}") from None
            state["input_spectra_filenames"].append(name)
            state["input_spectra_sha256"][name] = sha256_hex(files[name])
        state["created"] = _now()
        state["software"] = {"name": "photonpipe", "version": __version__}
        session = cls(state, files)
        session._log("created", files=list(files), readers=session.readers)
        return session

    @classmethod
    def load(cls, path: str | os.PathLike[str], limits: SessionLimits = DEFAULT_LIMITS) -> Session:
        """Load a ``.smh`` session safely (see :func:`~.sessionfile.read_session_file`).

        Parameters
        ----------
        path : str or PathLike
            Session file.
        limits : SessionLimits
            Size bounds.
        """
        state, files = read_session_file(path, limits)
        return cls(state, files, Path(path))

    def save(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Save the session atomically.

        Parameters
        ----------
        path : str or PathLike, optional
            Destination (default: where it was loaded from or last saved).

        Returns
        -------
        Path
            The file written.
        """
        target = Path(path) if path is not None else self.path
        if target is None:
            raise SessionError("no file name to save the session to")
        self.state["modified"] = _now()
        self.state["software"] = {"name": "photonpipe", "version": __version__}
        self.path = write_session_file(target, self.state, self.files)
        return self.path

    def _log(self, action: str, **details: Any) -> None:
        self.state["history"].append({"time": _now(), "action": action, **details})

    def _fail(self, problem: str) -> SessionError:
        return SessionError(f"{self.path or 'session'}: {problem}")

    # --- orders -----------------------------------------------------------------------------

    @property
    def n_orders(self) -> int:
        """Number of orders in the input spectra (discarded ones included)."""
        return len(self._orders)

    @property
    def readers(self) -> dict[str, str]:
        """Input file → the reader that read it (e.g. ``"specutils 'SDSS-III/IV spec'"``)."""
        return {o.meta["source"]: o.meta.get("reader", "") for o in self._orders}

    @property
    def active_orders(self) -> list[int]:
        """Indices of the orders not discarded."""
        discarded = set(self.state["discarded_orders"])
        return [i for i in range(self.n_orders) if i not in discarded]

    def order(self, index: int) -> Spectrum:
        """Return an order as read from the input spectra (observed frame).

        Parameters
        ----------
        index : int
            Order index (0-based, across all input files).
        """
        if not 0 <= index < self.n_orders:
            raise self._fail(f"no order {index} (the session has {self.n_orders})")
        return self._orders[index]

    def discard_order(self, index: int) -> None:
        """Mark an order as discarded: kept in every per-order structure, ignored from now on.

        Parameters
        ----------
        index : int
            Order index.
        """
        self.order(index)
        if index not in self.state["discarded_orders"]:
            self.state["discarded_orders"].append(index)
            self.state["discarded_orders"].sort()
            self._log("discarded order", order=index)

    @property
    def rv_applied(self) -> float:
        """Radial velocity removed to bring orders to the rest frame [km/s] (0 if none)."""
        return float(self.state["rv"].get("rv_applied", 0.0))

    def rest_frame_order(self, index: int) -> Spectrum:
        """Return an order shifted to the rest frame by :attr:`rv_applied` (not rebinned)."""
        return self.order(index).doppler_shifted(self.rv_applied)

    def normalized_order(self, index: int) -> Spectrum:
        """Return the rest-frame order divided by its continuum (flux 1 = continuum).

        Raises
        ------
        SessionError
            The order has not been normalised.
        """
        record = self.state["normalization"]["orders"][index]
        if record is None:
            raise self._fail(f"order {index} has not been normalised")
        rest = self.rest_frame_order(index)
        cont = np.asarray(record["continuum"], dtype=np.float64)
        good = cont > 0
        flux = np.where(good, rest.flux / np.where(good, cont, 1.0), 0.0)
        ivar = np.where(good, rest.ivar * cont**2, 0.0)
        return Spectrum(rest.wavelength, flux, ivar, dict(rest.meta))

    # --- radial velocity --------------------------------------------------------------------

    def add_ancillary(self, name: str, data: bytes, kind: str) -> str:
        """Store an ancillary file (RV template, line list) in the session.

        Parameters
        ----------
        name : str
            Basename.
        data : bytes
            Contents.
        kind : str
            ``"rv_template"`` or ``"linelist"``.

        Returns
        -------
        str
            The basename used (a numeric suffix is added if another file has the name).
        """
        check_member_name(name)
        stem, dot, suffix = name.partition(".")
        candidate, n = name, 1
        while candidate in self.files and self.files[candidate] != data:
            n += 1
            candidate = f"{stem}-{n}{dot}{suffix}"
        self.files[candidate] = data
        if candidate not in self.state["input_spectra_filenames"]:
            self.state["ancillary_files"][candidate] = {"kind": kind, "sha256": sha256_hex(data)}
        return candidate

    def measure_rv(
        self,
        template: str | os.PathLike[str] = "giant",
        wavelength_range: tuple[float, float] | None = (5150.0, 5300.0),
        order: int | None = None,
        apodize: float = 0.1,
        normalize: bool = True,
        max_velocity: float = 500.0,
        barycentric_correction: float | None = None,
        heliocentric_correction: float | None = None,
        apply: bool = True,
    ) -> dict[str, Any]:
        """Measure the radial velocity by cross-correlation and (by default) apply it.

        Parameters
        ----------
        template : str or PathLike
            ``"giant"`` or ``"subgiant"`` (bundled real MIKE spectra), the basename of a file
            already in the session, or a spectrum file path (stored in the session).
        wavelength_range : (float, float), optional
            Observed wavelengths to correlate [Å].
        order : int, optional
            Order to use; default the active order covering most of ``wavelength_range``.
        apodize : float
            Cosine-taper fraction at each end.
        normalize : bool
            Divide by a clipped continuum before correlating.
        max_velocity : float
            Search range [km/s].
        barycentric_correction, heliocentric_correction : float, optional
            Corrections [km/s] supplied by the user; by default computed from the order's
            header (site, time, coordinates) when it has them.
        apply : bool
            Set ``rv_applied`` to the measured (topocentric) velocity, which brings the orders
            to the rest frame.

        Returns
        -------
        dict
            The ``rv`` section.
        """
        name, data = self._template(template)
        tmpl_orders = read_spectrum_bytes(data, name)
        tmpl = max(tmpl_orders, key=len)
        index = order if order is not None else self._best_order(wavelength_range)
        observed = self.order(index)
        try:
            result = cross_correlate(
                observed, tmpl, wavelength_range, apodize, normalize, max_velocity
            )
        except CrossCorrelationError as exc:
            raise self._fail(f"cross-correlation of order {index} failed: {exc}") from None
        template_sigma = template_zero_point_uncertainty(tmpl, result.wavelength_range)
        uncertainty = math.hypot(result.uncertainty, template_sigma)
        source = "user"
        bary, helio = barycentric_correction, heliocentric_correction
        if bary is None:
            try:
                bary, helio_h = velocity_corrections(
                    observation_from_header(observed.meta.get("header", {}))
                )
                helio = helio if helio is not None else helio_h
                source = "header"
            except ObservationMetadataError as exc:
                source = f"none ({exc})"
        rv = {
            "rv_measured": result.velocity,
            "rv_uncertainty": uncertainty,
            "rv_uncertainty_ccf": result.uncertainty,
            "rv_uncertainty_zucker": result.zucker_uncertainty,
            "rv_uncertainty_chunks": result.chunk_uncertainty,
            "rv_uncertainty_template": template_sigma,
            "rv_warnings": list(result.warnings),
            "rv_applied": result.velocity if apply else self.rv_applied,
            "barycentric_correction": math.nan if bary is None else float(bary),
            "heliocentric_correction": math.nan if helio is None else float(helio),
            "correction_source": source,
            "rv_barycentric": result.velocity + (bary if bary is not None else math.nan),
            "template_filename": name,
            "order_index": index,
            "wavelength_region": None if wavelength_range is None else tuple(wavelength_range),
            "apodize": float(apodize),
            "normalize": bool(normalize),
            "max_velocity": float(max_velocity),
            "ccf_velocity": result.ccf_velocity,
            "ccf": result.ccf,
            "ccf_peak": result.peak,
            "ccf_pixels": result.n_pixels,
            "ccf_width": result.width_kms,
            "ccf_tonry_davis_r": result.tonry_davis_r,
            "ccf_secondary_ratio": result.secondary_ratio,
            "ccf_chunk_velocities": result.chunk_velocities,
            "ccf_wavelength_range": result.wavelength_range,
            "measured": _now(),
        }
        self.state["rv"] = rv
        self._log(
            "measured rv", rv=result.velocity, template=name, order=index,
            warnings=list(result.warnings),
        )  # fmt: skip
        return rv

    def apply_rv(self, velocity: float) -> None:
        """Set the radial velocity used to shift orders to the rest frame [km/s]."""
        self.state["rv"]["rv_applied"] = float(velocity)
        self._log("applied rv", rv=float(velocity))

    def _template(self, template: str | os.PathLike[str]) -> tuple[str, bytes]:
        key = str(template)
        if key in TEMPLATES:
            filename, data = template_bytes(key)
        elif key in self.files:
            return key, self.files[key]
        else:
            path = Path(template)
            try:
                data = path.read_bytes()
            except OSError:
                raise InputFileError(path, "RV template not found") from None
            filename = path.name
        return self.add_ancillary(filename, data, "rv_template"), data

    def _best_order(self, wavelength_range: tuple[float, float] | None) -> int:
        active = self.active_orders
        if not active:
            raise self._fail("every order is discarded")
        if wavelength_range is None:
            return max(active, key=lambda i: len(self._orders[i]))
        lo, hi = wavelength_range

        def overlap(i: int) -> float:
            a, b = self._orders[i].wavelength_range
            return max(0.0, min(b, hi) - max(a, lo))

        best = max(active, key=overlap)
        if overlap(best) <= 0:
            raise self._fail(f"no order covers {lo:.1f}-{hi:.1f} Å")
        return best

    # --- continuum --------------------------------------------------------------------------

    def default_masks(self, index: int) -> list[tuple[float, float, str]]:
        """Default continuum masks overlapping an order, in its rest frame [Å].

        Strong lines are masked at rest; telluric bands (fixed in the observed frame) are
        moved to the rest frame with :attr:`rv_applied`.
        """
        beta = self.rv_applied / C_KMS
        doppler = math.sqrt((1 + beta) / (1 - beta))
        masks = [*STRONG_LINE_MASKS]
        masks += [(a / doppler, b / doppler, name) for a, b, name in TELLURIC_MASKS]
        lo, hi = self.rest_frame_order(index).wavelength_range
        return [(a, b, n) for a, b, n in masks if b >= lo and a <= hi]

    def normalize(
        self,
        order: int,
        function: str = "spline",
        degree: int = 3,
        knot_spacing: float = 20.0,
        low_sigma: float = 2.0,
        high_sigma: float = 3.0,
        max_iterations: int = 10,
        masks: Iterable[tuple[float, float]] | None = None,
        use_default_masks: bool = True,
        added_points: Iterable[tuple[float, float, float]] = (),
    ) -> dict[str, Any]:
        """Fit the continuum of one rest-frame order and store it with all its settings.

        Parameters
        ----------
        order : int
            Order index.
        function : {"spline", "polynomial", "legendre", "chebyshev"}
            Continuum function.
        degree : int
            Spline degree or polynomial/series degree.
        knot_spacing : float
            Spline knot spacing [Å].
        low_sigma, high_sigma : float
            Asymmetric clipping limits [σ of the residuals].
        max_iterations : int
            Most clipping iterations.
        masks : iterable of (float, float), optional
            Extra rest-frame ranges to exclude [Å].
        use_default_masks : bool
            Also exclude the default strong-line and telluric masks.
        added_points : iterable of (float, float, float)
            Points (rest wavelength [Å], flux, weight) always used.

        Returns
        -------
        dict
            The order's normalisation record.
        """
        rest = self.rest_frame_order(order)
        lo, hi = rest.wavelength_range
        user = [(float(a), float(b), "user") for a, b in (masks or [])]
        chosen = (self.default_masks(order) if use_default_masks else []) + user
        overlapping = [(a, b, n) for a, b, n in chosen if b >= lo and a <= hi]
        points = [tuple(map(float, p)) for p in added_points]
        try:
            fit = fit_continuum(
                rest.wavelength,
                rest.flux,
                rest.ivar,
                function=function,
                order=degree,
                knot_spacing=knot_spacing,
                low_sigma=low_sigma,
                high_sigma=high_sigma,
                max_iterations=max_iterations,
                masks=[(a, b) for a, b, _ in overlapping],
                added_points=points,  # type: ignore[arg-type]
            )
        except ContinuumError as exc:
            raise self._fail(f"order {order}: {exc}") from None
        record = {
            "continuum": fit.continuum.astype(np.float64),
            "used_pixels": fit.used.copy(),
            "function": function,
            "degree": int(degree),
            "knot_spacing": float(knot_spacing),
            "low_sigma": float(low_sigma),
            "high_sigma": float(high_sigma),
            "max_iterations": int(max_iterations),
            "iterations": fit.iterations,
            "rms": fit.rms,
            "masks": overlapping,
            "use_default_masks": bool(use_default_masks),
            "added_points": points,
            "rv_applied": self.rv_applied,
            "fitted": _now(),
        }
        self.state["normalization"]["orders"][order] = record
        self._log("normalized order", order=order, function=function)
        return record

    def normalize_all(self, **options: Any) -> None:
        """Normalise every active order with the same settings (see :meth:`normalize`)."""
        self.state["normalization"]["defaults"] = {
            k: v for k, v in options.items() if k not in ("masks", "added_points")
        }
        for index in self.active_orders:
            self.normalize(index, **options)

    # --- stacking ---------------------------------------------------------------------------

    def stack(
        self,
        step: float = 0.02,
        scale: str = "linear",
        wavelength_range: tuple[float, float] | None = None,
        min_coverage: float = 0.5,
    ) -> Spectrum:
        """Stack the normalised rest-frame orders onto one grid (inverse-variance weights).

        Parameters
        ----------
        step : float
            Bin size: [Å] for ``scale="linear"``, [km/s] for ``scale="log"``.
        scale : {"linear", "log"}
            Grid uniform in wavelength or in log wavelength.
        wavelength_range : (float, float), optional
            Range of the grid [Å]; default all normalised orders.
        min_coverage : float
            Least fraction of a bin covered by good pixels of an order for that order to count.

        Returns
        -------
        Spectrum
            The stacked spectrum (also stored in the session).
        """
        orders = [
            self.normalized_order(i)
            for i in self.active_orders
            if self.state["normalization"]["orders"][i] is not None
        ]
        if not orders:
            raise self._fail("no normalised order to stack (run normalize first)")
        lo = min(o.wavelength[0] for o in orders)
        hi = max(o.wavelength[-1] for o in orders)
        if wavelength_range is not None:
            lo, hi = max(lo, wavelength_range[0]), min(hi, wavelength_range[1])
        if scale == "linear":
            grid = linear_wavelength_grid(lo, hi, step)
        elif scale == "log":
            grid = log_wavelength_grid(lo, hi, step)
        else:
            raise self._fail(f"unknown stacking scale {scale!r} (linear or log)")
        stacked = coadd(orders, grid, min_coverage)
        self.state["stacked_spectrum"] = {
            "wavelength": stacked.wavelength,
            "flux": stacked.flux,
            "ivar": stacked.ivar,
            "noise_known": all(o.meta.get("noise_known", False) for o in orders),
            "options": {
                "step": float(step),
                "scale": scale,
                "wavelength_range": (float(lo), float(hi)),
                "min_coverage": float(min_coverage),
                "orders": list(self.active_orders),
                "resampler": "flux-conserving, inverse-variance weights",
            },
            "stacked": _now(),
        }
        self._log("stacked", pixels=int(grid.size), scale=scale, step=float(step))
        return stacked

    @property
    def stacked_spectrum(self) -> Spectrum | None:
        """The stacked spectrum, or None before :meth:`stack`."""
        data = self.state["stacked_spectrum"]
        if not data:
            return None
        return Spectrum(
            data["wavelength"],
            data["flux"],
            data["ivar"],
            meta={"noise_known": data["noise_known"], "label": "stacked"},
        )

    # --- lines and measurements -------------------------------------------------------------

    def add_lines(self, linelist: LineList | str | os.PathLike[str]) -> LineList:
        """Add lines to the session (duplicates collapse); a file is also stored in the session.

        Parameters
        ----------
        linelist : LineList or path
            Lines, or a line-list file in any supported format.

        Returns
        -------
        LineList
            The lines added (as parsed).
        """
        if isinstance(linelist, LineList):
            lines = linelist
        else:
            path = Path(linelist)
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                raise InputFileError(path, "no such file") from None
            lines = read_linelist_bytes(data, path)
            self.add_ancillary(path.name, data, "linelist")
        for line in lines:
            self.state["spectral_lines"].setdefault(line.hash, line.to_dict())
        self._log("added lines", count=len(lines))
        return lines

    @property
    def lines(self) -> LineList:
        """Every line of the session."""
        return LineList(Line.from_dict(d) for d in self.state["spectral_lines"].values())

    def measurement_spectrum(self, wavelength: float) -> Spectrum:
        """Return the spectrum a line at ``wavelength`` [Å] is measured on.

        The stacked spectrum when it covers the line; otherwise the active rest-frame order
        (normalised if it was) that covers the line with most margin.
        """
        stacked = self.stacked_spectrum
        if stacked is not None and stacked.wavelength[0] < wavelength < stacked.wavelength[-1]:
            return stacked
        best, margin = None, 0.0
        for i in self.active_orders:
            rest = self.rest_frame_order(i)
            m = min(wavelength - rest.wavelength[0], rest.wavelength[-1] - wavelength)
            if m > margin:
                best, margin = i, m
        if best is None:
            raise LineOutsideSpectrumError(f"line at {wavelength:.3f} Å is outside every order")
        if self.state["normalization"]["orders"][best] is not None:
            return self.normalized_order(best)
        return self.rest_frame_order(best)

    def measure(
        self,
        linelist: LineList | str | os.PathLike[str] | None = None,
        profile: str = "gaussian",
        groups: Sequence[Sequence[Line]] = (),
        **options: Any,
    ) -> list[dict[str, Any]]:
        """Measure equivalent widths of lines and store them (key ``"<hash>|ew"``).

        A new EW fit of a line replaces the previous EW fit of that line; measurements by
        other methods are kept. Lines outside the spectrum are skipped and listed in the
        returned measurements' absence (see :attr:`state` ``history``).

        Parameters
        ----------
        linelist : LineList or path, optional
            Lines to measure (added to the session); default every session line.
        profile : {"gaussian", "voigt"}
            Profile.
        groups : sequence of sequence of Line
            Blend groups, each fitted as one feature.
        **options
            Fit options of :func:`~photonpipe.stellar.ew.measure_equivalent_width`.

        Returns
        -------
        list of dict
            The new measurements.
        """
        lines = self.add_lines(linelist) if linelist is not None else self.lines
        targets: list[list[Line]] = [[ln] for ln in lines] + [list(g) for g in groups]
        if groups:
            self.add_lines(LineList(ln for g in groups for ln in g))
        measured: list[dict[str, Any]] = []
        skipped: list[float] = []
        for members in track(targets, "session measure", "line", logger=log):
            centre = members[0].wavelength
            try:
                spectrum = self.measurement_spectrum(centre)
                m = measure_equivalent_width(
                    spectrum,
                    members,
                    noise_known=bool(spectrum.meta.get("noise_known", False)),
                    profile=profile,
                    **options,
                )
            except LineOutsideSpectrumError:
                skipped.append(centre)
                continue
            m["spectrum"] = spectrum.meta.get("label", "")
            measured.append(m)
        if measured and "fwhm_range" not in options:
            flag_resolution_outliers(measured)
        for m in measured:
            elements = sorted({element_of(self._line(h).species) for h in m["line_hashes"]})
            m["abundances"] = dict.fromkeys(elements, math.nan)  # NaN until computed
            m["abundance_uncertainties"] = dict.fromkeys(elements, math.nan)
            self.state["measurements"][measurement_key(m["line_hash"], "ew")] = m
        self._log("measured", count=len(measured), skipped=skipped, profile=profile)
        return measured

    def _line(self, line_hash: str) -> Line:
        return Line.from_dict(self.state["spectral_lines"][line_hash])

    def measurements(self, method: str | None = None) -> list[dict[str, Any]]:
        """Return the stored measurements (optionally of one method), in wavelength order."""
        items = [
            m
            for m in self.state["measurements"].values()
            if method is None or m.get("method") == method
        ]
        return sorted(items, key=lambda m: m.get("wavelength", 0.0))

    def _measurement_key(self, line: str) -> str:
        key = line if "|" in line else measurement_key(line, "ew")
        if key not in self.state["measurements"]:
            raise self._fail(f"no measurement {key!r} (see the line_hash column of session export)")
        return key

    def review_measurement(
        self,
        line: str,
        *,
        acceptable: bool | None = None,
        upper_limit: bool | None = None,
        comment: str | None = None,
    ) -> dict[str, Any]:
        """Record a user's verdict on one measurement: accept/reject, upper limit, comment.

        Parameters
        ----------
        line : str
            Measurement key (``"<hash>|ew"``) or line hash (its EW measurement).
        acceptable : bool, optional
            Accept (True) or reject (False) the measurement; None leaves it.
        upper_limit : bool, optional
            True: treat the line as not detected, with the limit ``detection_sigma`` ×
            ``ew_noise_uncertainty`` [mÅ]; False: treat it as a detection; None leaves it.
        comment : str, optional
            The user's comment (replaces an earlier user comment; "" removes it). It is kept
            in ``user_comment`` and among ``comments`` (exported as a table footnote).

        Returns
        -------
        dict
            The measurement.
        """
        key = self._measurement_key(line)
        m = self.state["measurements"][key]
        review = dict(m.get("review") or {})
        if acceptable is not None:
            m["acceptable"] = review["acceptable"] = bool(acceptable)
        if upper_limit is not None:
            m["is_limit"] = review["upper_limit"] = bool(upper_limit)
            sigma = float((m.get("options") or {}).get("detection_sigma", 3.0))
            noise = float(m.get("ew_noise_uncertainty", math.nan))
            m["upper_limit"] = sigma * noise if upper_limit else math.nan
        if comment is not None:
            old = m.get("user_comment", "")
            m["comments"] = [c for c in m.get("comments", []) if not old or c != old]
            m["user_comment"] = review["comment"] = comment.strip()
            if m["user_comment"]:
                m["comments"].append(m["user_comment"])
        review["time"] = _now()
        m["review"] = review
        self._log(
            "reviewed measurement",
            measurement=key,
            **{k: v for k, v in review.items() if k != "time"},
        )
        return m

    def refit(
        self, lines: Sequence[str] | None = None, profile: str = "gaussian", **options: Any
    ) -> list[dict[str, Any]]:
        """Fit the equivalent widths of some session lines again (default: every line).

        Each new fit replaces the line's EW measurement, and with it any review. A re-fit of
        some lines only compares their widths with each other (see :meth:`measure`).

        Parameters
        ----------
        lines : sequence of str, optional
            Line hashes (or ``"<hash>|ew"`` keys); None: every line of the session.
        profile : {"gaussian", "voigt"}
            Profile.
        **options
            Fit options (see :meth:`measure`).

        Returns
        -------
        list of dict
            The new measurements.
        """
        if lines is None:
            return self.measure(None, profile=profile, **options)
        chosen = []
        for item in lines:
            line_hash = item.split("|", 1)[0]
            if line_hash not in self.state["spectral_lines"]:
                raise self._fail(f"no line {line_hash!r} in the session")
            chosen.append(Line.from_dict(self.state["spectral_lines"][line_hash]))
        return self.measure(LineList(chosen), profile=profile, **options)

    # --- physics, notes ---------------------------------------------------------------------

    def record_physics(self, **provenance: Any) -> dict[str, Any]:
        """Record the physics provenance (see :func:`~.physics.physics_record`)."""
        self.state["physics"] = physics_record(**provenance)
        self._log("recorded physics")
        return self.state["physics"]

    def add_note(self, text: str) -> None:
        """Append a line to the session notes."""
        notes = self.state["notes"]
        self.state["notes"] = f"{notes}\n{text}" if notes else text

    def summary(self) -> dict[str, Any]:
        """Return a short description of the session (for ``photonpipe session info``)."""
        rv = self.state["rv"]
        measurements = self.measurements("ew")
        return {
            "path": str(self.path) if self.path else None,
            "schema_version": self.state["schema_version"],
            "input_spectra": list(self.state["input_spectra_filenames"]),
            "orders": self.n_orders,
            "discarded_orders": list(self.state["discarded_orders"]),
            "rv_measured": rv.get("rv_measured"),
            "rv_uncertainty": rv.get("rv_uncertainty"),
            "rv_applied": rv.get("rv_applied"),
            "rv_warnings": list(rv.get("rv_warnings", [])),
            "barycentric_correction": rv.get("barycentric_correction"),
            "normalized_orders": sum(r is not None for r in self.state["normalization"]["orders"]),
            "stacked_pixels": len(self.state["stacked_spectrum"].get("wavelength", [])),
            "lines": len(self.state["spectral_lines"]),
            "ew_measurements": len(measurements),
            **count_measurements(measurements),
            "ancillary_files": sorted(self.state["ancillary_files"]),
            "physics": bool(self.state["physics"]),
        }
