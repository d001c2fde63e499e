"""The :class:`LightCurve` product: an astropy ``TimeSeries`` of binned rates and fluxes."""

from __future__ import annotations

import copy
import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.table import Column, vstack
from astropy.time import Time
from astropy.timeseries import TimeSeries

from photonpipe.errors import PhotonpipeError, import_extra
from photonpipe.lightcurves.formats import LightCurveInputError, UnreadableFileError
from photonpipe.platform.archive import atomic_output

FLUX_UNIT = u.erg / u.s / u.cm**2
FLUX_DENSITY_UNIT = u.erg / u.s / u.cm**2 / u.AA
RATE_UNIT = u.ct / u.s

#: Product columns: name → (FITS format, unit, description).
COLUMNS: dict[str, tuple[str, u.UnitBase | None, str]] = {
    "TIME": ("D", u.s, "bin start, seconds since EXPSTART"),
    "MJD": ("D", u.d, "centre of the bin's good time (MJD, UTC)"),
    "TIME_BJD_TDB": ("D", u.d, "MJD as barycentric Julian date (TDB), see BJDORIG"),
    "BIN_EXPTIME": ("D", u.s, "good time in the bin"),
    "GROSS": ("D", RATE_UNIT, "source-box count rate"),
    "BACKGROUND": ("D", RATE_UNIT, "background rate scaled to the source box"),
    "NET": ("D", RATE_UNIT, "GROSS - BACKGROUND"),
    "COUNTS": ("D", u.ct, "EPSILON-weighted source-box counts"),
    "ERROR": ("D", RATE_UNIT, "1 sigma error of NET (Poisson; Gehrels below 20 counts)"),
    "FLUX": ("D", FLUX_UNIT, "band-integrated flux"),
    "FLUX_ERROR": ("D", FLUX_UNIT, "1 sigma error of FLUX"),
    "FLUX_DENSITY": ("D", FLUX_DENSITY_UNIT, "FLUX over the band width"),
    "SIGNAL_TO_NOISE": ("D", None, "NET / ERROR"),
    "DATASET": ("J", None, "input dataset number (1, 2, ... in time order)"),
}
EXTNAME = "LIGHTCURVE"
#: ``lightkurve.LightCurve.meta`` key holding the rest of the product's metadata.
LIGHTKURVE_META_KEY = "PHOTONPIPE"
#: Primary-header keywords read back into ``meta["header"]``.
HEADER_KEYS = [
    "TELESCOP",
    "INSTRUME",
    "DETECTOR",
    "OPT_ELEM",
    "CENWAVE",
    "APERTURE",
    "TARGNAME",
    "RA_TARG",
    "DEC_TARG",
    "PROPOSID",
    "CAL_VER",
    "ROOTNAME",
    "EXPSTART",
    "STEP",
    "WAVEMIN",
    "WAVEMAX",
    "BANDWID",
    "FLUXCAL",
    "TDSFACT",
    "FLUXTAB",
    "TDSTAB",
    "SOFTVER",
    "VARMEAN",
    "VARSTD",
    "POISFACT",
    "PEARSONR",
    "PERSIG",
    "PERBEST",
    "PERFAP",
    "PERTEXT",
    "PERMIN",
    "PERMAX",
    "BJDEPHEM",
    "BJDORIG",
    "BJDERR",
    "BJDSPT",
]
#: Columns a product written before they existed may lack (read back as NaN).
OPTIONAL_COLUMNS = ("TIME_BJD_TDB",)


class LightCurveConversionError(PhotonpipeError):
    """A foreign light-curve object cannot be read as a photonpipe :class:`LightCurve`."""


def _import_lightkurve() -> Any:
    """Import lightkurve (the ``lightkurve`` extra), without its note about an optional module."""
    with warnings.catch_warnings():
        # lightkurve warns on import that its PRF model needs oktopus, which nothing here uses
        warnings.filterwarnings("ignore", message=".*tpfmodel submodule", category=UserWarning)
        return import_extra("lightkurve", "lightkurve", "LightCurve.to_lightkurve")


class LightCurve(TimeSeries):
    """A binned UV light curve (astropy ``TimeSeries``; ``time`` is the bin centre, UTC).

    Columns are those of :data:`COLUMNS`. ``meta`` holds ``header`` (product keywords: target,
    configuration, EXPSTART, STEP, WAVEMIN/WAVEMAX, FLUXCAL, ...), ``regions`` (extraction boxes),
    ``exclude`` (excluded wavelength windows), ``inputs`` and ``datasets``.
    """

    @classmethod
    def from_columns(cls, columns: dict[str, np.ndarray], meta: dict[str, Any]) -> LightCurve:
        """Build from plain column arrays (units from :data:`COLUMNS`) and metadata."""
        time = Time(np.asarray(columns["MJD"], dtype=np.float64), format="mjd", scale="utc")
        curve = cls(time=time, meta=dict(meta))
        for name, (_, unit, description) in COLUMNS.items():
            curve[name] = Column(np.asarray(columns[name]), unit=unit, description=description)
        return curve

    # --- properties ---------------------------------------------------------------------------

    @property
    def header(self) -> dict[str, Any]:
        """Product keywords (``meta['header']``)."""
        header = self.meta.setdefault("header", {})
        assert isinstance(header, dict)
        return header

    @property
    def is_calibrated(self) -> bool:
        """Whether FLUX is calibrated (FLUXCAL is not NONE)."""
        return str(self.header.get("FLUXCAL", "NONE")) != "NONE"

    # --- verbs --------------------------------------------------------------------------------

    @classmethod
    def stack(cls, curves: Sequence[LightCurve]) -> LightCurve:
        """Stack light curves in time order into one (a composite); inputs and regions merge."""
        if not curves:
            raise ValueError("nothing to stack")
        stacked = vstack([TimeSeries(c) for c in curves], metadata_conflicts="silent")
        order = np.argsort(np.asarray(stacked["MJD"]), kind="stable")
        columns = {name: np.asarray(stacked[name])[order] for name in COLUMNS}
        first = curves[0]
        header = dict(first.header)
        header["ROOTNAME"] = None
        origins = {str(c.header.get("BJDORIG", "")) for c in curves}
        if len(origins) > 1:
            header["BJDORIG"] = "+".join(sorted(o for o in origins if o))
        errors = [float(c.header["BJDERR"]) for c in curves if c.header.get("BJDERR") is not None]
        if errors:
            header["BJDERR"] = max(errors)
        header["BJDSPT"] = (
            ",".join(str(c.header["BJDSPT"]) for c in curves if c.header.get("BJDSPT")) or None
        )
        meta = {
            "header": header,
            "exclude": first.meta.get("exclude", []),
            "regions": [r for c in curves for r in c.meta.get("regions", [])],
            "inputs": [i for c in curves for i in c.meta.get("inputs", [])],
            "datasets": [d for c in curves for d in c.meta.get("datasets", [])],
        }
        return cls.from_columns(columns, meta)

    def bin(self, step: float) -> LightCurve:
        """Rebin to wider bins of ``step`` seconds (never across datasets).

        Counts and good times add; rates are totals over the total good time; errors add in
        quadrature (count weighted), which is exact for the Poisson regime and a slight
        overestimate where the input bins used the Gehrels limit.

        Parameters
        ----------
        step : float
            New bin width [s]; should be a multiple of the current STEP.
        """
        current = float(self.header.get("STEP", 0) or 0)
        if not step > 0 or step < current:
            raise ValueError(f"new step {step} s must be positive and ≥ the current {current} s")
        time = np.asarray(self["TIME"], dtype=np.float64)
        dataset = np.asarray(self["DATASET"], dtype=np.int64)
        key = np.floor(time / step).astype(np.int64)
        groups, inverse = np.unique(np.column_stack([dataset, key]), axis=0, return_inverse=True)
        inverse = inverse.ravel()
        t = np.asarray(self["BIN_EXPTIME"], dtype=np.float64)

        def total(values: np.ndarray) -> np.ndarray:
            return np.bincount(inverse, weights=values, minlength=len(groups))

        exposure = total(t)
        columns: dict[str, np.ndarray] = {
            "TIME": groups[:, 1] * step,
            "MJD": total(np.asarray(self["MJD"]) * t) / exposure,
            "TIME_BJD_TDB": total(np.asarray(self["TIME_BJD_TDB"]) * t) / exposure,
            "BIN_EXPTIME": exposure,
            "COUNTS": total(np.asarray(self["COUNTS"])),
            "DATASET": groups[:, 0].astype(np.int32),
        }
        for name in ("GROSS", "BACKGROUND", "NET", "FLUX", "FLUX_DENSITY"):
            columns[name] = total(np.asarray(self[name]) * t) / exposure
        for name in ("ERROR", "FLUX_ERROR"):
            columns[name] = np.sqrt(total((np.asarray(self[name]) * t) ** 2)) / exposure
        error = columns["ERROR"]
        columns["SIGNAL_TO_NOISE"] = np.divide(
            columns["NET"], error, out=np.zeros_like(error), where=error > 0
        )
        meta = json.loads(json.dumps(dict(self.meta), default=str))
        meta["header"]["STEP"] = step
        return LightCurve.from_columns(columns, meta)

    def to_lightkurve(self) -> Any:
        """Convert to a ``lightkurve.LightCurve`` (the ``lightkurve`` extra).

        ``time`` is this curve's time (bin centres, UTC, MJD format); ``flux``/``flux_err`` are
        FLUX/FLUX_ERROR [erg s⁻¹ cm⁻²] when calibrated, else NET/ERROR [ct s⁻¹]
        (``meta["FLUX_ORIGIN"]`` says which); every product column is kept under its own
        upper-case name with its unit. ``meta`` holds the product keywords (TARGNAME, STEP,
        FLUXCAL, ...), ``LABEL`` = TARGNAME, and the rest of this curve's ``meta`` (regions,
        excluded windows, inputs, datasets) under ``"PHOTONPIPE"``, so that
        :meth:`from_lightkurve` gives this curve back.

        Raises
        ------
        MissingExtraError
            lightkurve is not installed.
        """
        lightkurve = _import_lightkurve()
        flux, error = ("FLUX", "FLUX_ERROR") if self.is_calibrated else ("NET", "ERROR")
        header = copy.deepcopy(self.header)
        rest = {k: copy.deepcopy(v) for k, v in self.meta.items() if k != "header"}
        meta = {
            **header,
            "LABEL": header.get("TARGNAME"),
            "FLUX_ORIGIN": flux,
            LIGHTKURVE_META_KEY: {**rest, "header_keys": list(header)},
        }
        curve = lightkurve.LightCurve(
            time=self.time.copy(),
            flux=u.Quantity(self[flux], copy=True),
            flux_err=u.Quantity(self[error], copy=True),
            meta=meta,
        )
        for name in self.colnames:
            if name != "time":
                curve[name] = self[name].copy()
        return curve

    @classmethod
    def from_lightkurve(cls, curve: Any) -> LightCurve:
        """Build from a ``lightkurve.LightCurve`` made by :meth:`to_lightkurve`.

        The product columns are read by name (converted to their product units), so rows that
        lightkurve removed (``remove_nans``, ``remove_outliers``, slicing) stay removed;
        lightkurve's own ``flux``/``flux_err`` columns are copies and are not read back.

        Parameters
        ----------
        curve : lightkurve.LightCurve
            A light curve holding the columns of :data:`COLUMNS`.

        Raises
        ------
        LightCurveConversionError
            A product column is missing or has a unit that does not convert.
        """
        missing = [name for name in COLUMNS if name not in curve.colnames]
        if missing:
            raise LightCurveConversionError(
                f"not a photonpipe light curve: no {', '.join(missing)} column(s) "
                "(from_lightkurve reads curves made by LightCurve.to_lightkurve)"
            )
        columns: dict[str, np.ndarray] = {}
        for name, (_, unit, _) in COLUMNS.items():
            column = curve[name]
            try:
                if unit is not None:
                    columns[name] = np.asarray(u.Quantity(column).to_value(unit))
                else:
                    columns[name] = np.asarray(getattr(column, "value", column))
            except u.UnitConversionError as exc:
                raise LightCurveConversionError(f"column {name}: {exc}") from None
        extra = copy.deepcopy(dict(curve.meta.get(LIGHTKURVE_META_KEY, {})))
        keys = extra.pop("header_keys", [k for k in HEADER_KEYS if k in curve.meta])
        header = {k: copy.deepcopy(curve.meta[k]) for k in keys if k in curve.meta}
        return cls.from_columns(columns, {"header": header, **extra})

    def plot(self, path: str | os.PathLike[str] | None = None, **kwargs: Any) -> Any:
        """Draw the quicklook (:func:`~photonpipe.lightcurves.plot.quicklook`); save if ``path``."""
        from photonpipe.lightcurves.plot import quicklook

        return quicklook(self, path, **kwargs)

    # --- FITS ---------------------------------------------------------------------------------

    def to_hdulist(self, provenance: dict[str, Any] | None = None) -> fits.HDUList:
        """Return the FITS HDUs: primary header (keywords, provenance) and LIGHTCURVE table."""
        primary = fits.PrimaryHDU()
        h = primary.header
        for key, value in self.header.items():
            if value is not None:
                h[key[:8]] = value
        h["NDATASET"] = (len(self.meta.get("datasets", [])), "number of input datasets")
        for i, name in enumerate(self.meta.get("datasets", []), start=1):
            h[f"DATA{i:04d}"] = (str(name), f"dataset {i}")
        for i, window in enumerate(self.meta.get("exclude", []), start=1):
            h[f"EXCL{i}MIN"] = (float(window[0]), "excluded window start [Angstrom]")
            h[f"EXCL{i}MAX"] = (float(window[1]), "excluded window end [Angstrom]")
        for i, region in enumerate(self.meta.get("regions", []), start=1):
            h[f"RGNM{i:03d}"] = (str(region["name"]), f"extraction region {i}")
            h[f"RGSR{i:03d}"] = (
                (
                    f"y={region['center']:.3f}+{region['slope']:.5g}*(x-{region['x_ref']:.0f}) "
                    f"h={region['height']:.2f}"
                ),
            )
            h[f"RGBK{i:03d}"] = (
                (
                    f"{region['background'][0]:.3f} h={region['background_height'][0]:.2f}; "
                    f"{region['background'][1]:.3f} h={region['background_height'][1]:.2f}"
                ),
            )
        for i, item in enumerate((provenance or {}).get("inputs", []), start=1):
            h[f"INPUT{i:03d}"] = (item["name"], "input file")
            h[f"SHA{i:05d}"] = item["sha256"].removeprefix("sha256:")
        h["PPMETA"] = json.dumps(
            {k: self.meta.get(k) for k in ("exclude", "regions", "datasets")}, default=str
        )
        columns = []
        for name, (fmt, unit, _) in COLUMNS.items():
            columns.append(
                fits.Column(
                    name=name,
                    format=fmt,
                    unit=unit.to_string("fits") if unit is not None else None,
                    array=np.asarray(self[name]),
                )
            )
        table = fits.BinTableHDU.from_columns(columns, name=EXTNAME)
        for key in ("TARGNAME", "INSTRUME", "EXPSTART", "STEP", "FLUXCAL"):
            if self.header.get(key) is not None:
                table.header[key] = self.header[key]
        return fits.HDUList([primary, table])

    def to_fits(
        self, path: str | os.PathLike[str], provenance: dict[str, Any] | None = None
    ) -> Path:
        """Write the product atomically (temporary file in the same directory, then rename).

        Parameters
        ----------
        path : path-like
            Destination file.
        provenance : dict, optional
            ``{"inputs": [{"name": ..., "sha256": ...}, ...]}`` recorded in the header.
        """
        path = Path(path)
        with atomic_output(path) as temporary:
            self.to_hdulist(provenance).writeto(temporary, checksum=True)
        return path

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> LightCurve:
        """Read a light-curve product written by :meth:`to_fits`.

        Raises
        ------
        LightCurveInputError
            Unreadable file, no LIGHTCURVE extension, missing columns.
        """
        path = Path(path)
        try:
            with fits.open(path) as hdul:
                if EXTNAME not in [h.name for h in hdul]:
                    raise LightCurveInputError(path, f"no {EXTNAME} extension")
                primary = hdul[0].header
                table = hdul[EXTNAME].data
                names = table.columns.names
                missing = [c for c in COLUMNS if c not in names and c not in OPTIONAL_COLUMNS]
                if missing:
                    raise LightCurveInputError(path, f"{EXTNAME} lacks {', '.join(missing)}")
                columns = {
                    c: np.asarray(table[c]).astype(np.asarray(table[c]).dtype.newbyteorder("="))
                    if c in names
                    else np.full(len(table), np.nan)
                    for c in COLUMNS
                }
                header = {k: primary[k] for k in HEADER_KEYS if k in primary}
                extra = json.loads(primary.get("PPMETA", "{}"))
        except OSError as exc:
            raise UnreadableFileError(path, f"not a readable FITS file ({exc})") from exc
        meta = {"header": header, **extra, "path": str(path)}
        return cls.from_columns(columns, meta)
