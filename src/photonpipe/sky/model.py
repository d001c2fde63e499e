"""A predictive sky model: continuum per wavelength bin and line strengths vs observing conditions.

Training data (:func:`training_set`), one observation per (plate, exposure, spectrograph):

* the continuum of the mean sky spectrum (data minus the fitted airglow lines, see
  :mod:`photonpipe.sky.mean`) in bins of ``BIN_NM`` (median of the pixels in the bin; blue
  cameras below 600 nm, red above) [10⁻¹⁷ erg s⁻¹ cm⁻² Å⁻¹ per 2″ fibre];
* the median over the fibres of each configured line strength [10⁻¹⁷ erg s⁻¹ cm⁻²];
* the median over the fibres of the conditions.

Model (:class:`SkyModel`): for every target y (each continuum bin, each line) the dark-sky
part is log-linear, log y_dark = Σₖ βₖ xₖ (least squares on the observations with the Moon
below the horizon), with the regressors (:func:`regressors`)

    1, airmass − 1, zodiacal (table units), ISL (map units), (F10.7 − 100)/100,
    exp(−hours since sunset / 3 h), cos and sin of 4π·(month − 1)/12,

so that multiplicative effects (extinction, solar activity) are additive. Scattered moonlight
adds to the continuum in the form of Krisciunas & Schaefer (1991, PASP 103, 1033):

    y = y_dark + Σ_t c_{bin,t} · I*(α) · f_t(ρ) · 10^(−0.4 k_bin X_moon) · (1 − 10^(−0.4 k_bin X))

(:func:`moon_regressors`; t = Rayleigh, Mie terms of their scattering function f(ρ); α the
phase angle from the illuminated fraction; X_moon, X the airmasses of the Moon and the
target), with per-bin amplitudes c (so the moonlight spectrum and the Rayleigh/Mie balance are
learnt) and a per-bin extinction coefficient k, fitted on the moon-up observations' excess over
the dark model (non-negative least squares for every k on a grid, the best k kept). Bins with
too few moon-up observations get no moonlight term (``n_moon`` says how many were seen).
Fit quality is measured on held-out observations (:func:`evaluate`). ``photonpipe sky predict``
evaluates the model for given conditions and writes the predicted continuum and lines.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt
import pandas as pd

from photonpipe.errors import InputFileError
from photonpipe.sky.analysis import MEAN_DIR
from photonpipe.sky.lines import read_features
from photonpipe.sky.storage import read_metadata
from photonpipe.spectra.moonlight import (
    ks_airmass,
    moon_illuminance,
    moon_phase_angle_deg,
    scattering_terms,
)
from photonpipe.spectra.profiles import gaussian
from photonpipe.spectra.robust import robust_sigma

FloatArray = npt.NDArray[np.float64]

BIN_NM = 10.0
BLUE_RED_SPLIT_NM = 600.0
BIN_EDGES_NM = np.arange(370.0, 1030.0 + 1e-9, BIN_NM)
CONDITIONS = (
    "AIRMASS",
    "ZODI",
    "ISL",
    "SOLAR_FLUX_OBS",
    "HOURS_SINCE_SUNSET",
    "MONTH",
    "MOON_ILLUMINATION",
    "MOON_ALT",
    "MOON_SEP",
)
REGRESSORS = (
    "const",
    "airmass-1",
    "zodi",
    "isl",
    "solar",
    "dusk",
    "season_cos",
    "season_sin",
)


MOON_TERMS = ("rayleigh", "mie")
#: Name of the moonlight term stored in model files.
MOON_MODEL = "krisciunas-schaefer-1991, per-bin rayleigh/mie/k"
#: Extinction coefficients [mag/airmass] tried for each bin's moonlight term.
EXTINCTION_GRID = np.round(np.arange(0.02, 1.2001, 0.02), 4)
#: Fewest moon-up observations with a measured bin for its moonlight term to be fitted.
MIN_MOON_OBSERVATIONS = 8
#: Alternations of dark-sky refits (on all observations, moonlight subtracted) and moon refits.
REFINE_DARK = 2


def moon_regressors(
    conditions: pd.DataFrame | dict[str, Any], extinction: float | FloatArray
) -> FloatArray:
    """Scattered-moonlight regressors of each observation (Krisciunas & Schaefer 1991 form).

    For extinction coefficient k [mag/airmass] the two columns are the Rayleigh and Mie parts of

        I*(α) · f(ρ) · 10^(−0.4 k X_moon) · (1 − 10^(−0.4 k X))

    with the Moon's brightness outside the atmosphere I*(α) = 10^(−0.4 (3.84 + 0.026|α| +
    4·10⁻⁹ α⁴)), α from the illuminated fraction, f(ρ) = 10^5.36 (1.06 + cos² ρ) + 10^(6.15 −
    ρ/40°) split into its two terms, X_moon and X the K&S airmasses of the Moon and of the
    target (the target's zenith distance from the catalogue airmass as sec Z). Both are 0 with
    the Moon below the horizon. In the model each bin scales the two columns by its own
    coefficients, so the spectrum and the Rayleigh/Mie balance of moonlight are fitted.

    Parameters
    ----------
    conditions : DataFrame or dict
        :data:`CONDITIONS` (only AIRMASS and the MOON_* values are used).
    extinction : float or numpy.ndarray
        k [mag/airmass]; an array of shape ``(m,)`` gives ``(n, m, 2)``.

    Returns
    -------
    numpy.ndarray
        ``(n, 2)`` (or ``(n, m, 2)``) [nanoLambert per unit coefficient].
    """
    c = {k: np.atleast_1d(np.asarray(conditions[k], dtype=np.float64)) for k in CONDITIONS}
    outside = moon_illuminance(moon_phase_angle_deg(c["MOON_ILLUMINATION"]))
    up = c["MOON_ALT"] > 0.0
    x_moon = ks_airmass(90.0 - np.clip(c["MOON_ALT"], 0.0, 90.0))
    target_z = np.degrees(np.arccos(np.clip(1.0 / np.maximum(c["AIRMASS"], 1.0), 0.0, 1.0)))
    x_target = ks_airmass(target_z)
    k = np.asarray(extinction, dtype=np.float64)
    kk = k[None, :] if k.ndim else k
    xm = x_moon[:, None] if k.ndim else x_moon
    xt = x_target[:, None] if k.ndim else x_target
    path = 10.0 ** (-0.4 * kk * xm) * (1.0 - 10.0 ** (-0.4 * kk * xt))
    rho = c["MOON_SEP"]
    terms = scattering_terms(rho) * np.where(up, outside, 0.0)[:, None]
    if k.ndim:
        return np.asarray(terms[:, None, :] * path[:, :, None])
    return np.asarray(terms * path[:, None])


def regressors(conditions: pd.DataFrame | dict[str, Any]) -> FloatArray:
    """Design matrix of the dark-sky model (columns :data:`REGRESSORS`) from conditions.

    Parameters
    ----------
    conditions : DataFrame or dict
        Columns :data:`CONDITIONS` (airmass; zodiacal and ISL in their table units; 10.7 cm flux
        [sfu]; hours since sunset [h]; month (1–12); Moon illuminated fraction, altitude [deg],
        separation [deg]).

    Returns
    -------
    numpy.ndarray
        ``(n, len(REGRESSORS))``.
    """
    c = {k: np.atleast_1d(np.asarray(conditions[k], dtype=np.float64)) for k in CONDITIONS}
    n = c["AIRMASS"].size
    solar = np.where(np.isfinite(c["SOLAR_FLUX_OBS"]), (c["SOLAR_FLUX_OBS"] - 100.0) / 100.0, 0.0)
    hours = np.where(np.isfinite(c["HOURS_SINCE_SUNSET"]), c["HOURS_SINCE_SUNSET"], 4.0)
    phase = 4.0 * np.pi * (c["MONTH"] - 1.0) / 12.0
    return np.stack(
        [
            np.ones(n),
            c["AIRMASS"] - 1.0,
            c["ZODI"],
            c["ISL"],
            solar,
            np.exp(-np.clip(hours, 0.0, None) / 3.0),
            np.cos(phase),
            np.sin(phase),
        ],
        axis=1,
    )


@dataclass
class TrainingSet:
    """Observations for the sky model.

    Attributes
    ----------
    keys : DataFrame
        PLATE, MJD, IMG, SPECTROGRAPH of each observation.
    conditions : DataFrame
        :data:`CONDITIONS` per observation (medians over the fibres).
    continuum : numpy.ndarray
        ``(n, nbin)`` binned continuum (NaN where not measured).
    lines : DataFrame
        Line strengths per observation (one column per configured line).
    """

    keys: pd.DataFrame
    conditions: pd.DataFrame
    continuum: FloatArray
    lines: pd.DataFrame


def _binned_continuum(wave: FloatArray, continuum: FloatArray) -> FloatArray:
    index = np.digitize(wave, BIN_EDGES_NM) - 1
    out = np.full(BIN_EDGES_NM.size - 1, np.nan)
    for b in range(out.size):
        values = continuum[(index == b) & np.isfinite(continuum)]
        if values.size >= 0.8 * np.sum(index == b) and values.size >= 5:
            out[b] = float(np.median(values))
    return out


def training_set(dataset: str | os.PathLike[str]) -> TrainingSet:
    """Collect the model's observations from a dataset built with the analysis.

    Parameters
    ----------
    dataset : path
        Dataset root (``metadata/``, ``mean/``).

    Raises
    ------
    InputFileError
        No mean spectra (dataset built without ``sky.analysis``).
    """
    root = Path(dataset)
    meta = read_metadata(root).to_pandas()
    meta["SPECTROGRAPH"] = meta["CAMERAS"].str[1].astype(int)
    line_names = [f"{f.name}_FLUX" for f in read_features() if f.kind == "line"]
    group = meta.groupby(["PLATE", "MJD", "IMG", "SPECTROGRAPH"], sort=True)
    conditions = group[list(CONDITIONS)].median()
    lines = group[[c for c in line_names if c in meta.columns]].median()
    continuum = []
    for plate, _mjd, img, spec in conditions.index:
        path = root / MEAN_DIR / f"{plate:04d}.h5"
        if not path.exists():
            raise InputFileError(path, "no mean spectra: build the dataset with sky.analysis on")
        row = np.full(BIN_EDGES_NM.size - 1, np.nan)
        with h5py.File(path, "r") as h5:
            for arm in ("b", "r"):
                name = f"{img}/{arm}{spec}"
                if name not in h5 or "continuum" not in h5[name]:
                    continue
                wave = h5[name]["wavelength"][()]
                cont = h5[name]["continuum"][()].astype(np.float64)
                keep = wave < BLUE_RED_SPLIT_NM if arm == "b" else wave >= BLUE_RED_SPLIT_NM
                binned = _binned_continuum(wave[keep], cont[keep])
                row = np.where(np.isfinite(binned), binned, row)
        continuum.append(row)
    keys = conditions.index.to_frame(index=False)
    return TrainingSet(
        keys,
        conditions.reset_index(drop=True),
        np.array(continuum),
        lines.reset_index(drop=True),
    )


@dataclass
class SkyModel:
    """Fitted log-linear coefficients per target.

    Attributes
    ----------
    bin_edges_nm : numpy.ndarray
        Continuum bin edges [nm].
    continuum_coeff : numpy.ndarray
        ``(nbin, len(REGRESSORS))`` dark-sky coefficients; NaN rows for bins without enough
        data.
    moon_coeff : numpy.ndarray
        ``(nbin, 2)`` Rayleigh and Mie moonlight coefficients (:func:`moon_regressors`)
        [10⁻¹⁷ erg s⁻¹ cm⁻² Å⁻¹ per fibre per nanoLambert]; 0 where not fitted.
    moon_extinction : numpy.ndarray
        ``(nbin,)`` extinction coefficient k of each bin's moonlight term [mag/airmass]; NaN
        where not fitted.
    line_names : list of str
        Line columns.
    line_coeff : numpy.ndarray
        ``(nline, len(REGRESSORS))``.
    n_train : int
        Observations used.
    n_moon : int
        Of which with the Moon up (those that fix γ).
    scatter : dict of str to float
        Robust scatter of log residuals on the training data per target (``cont_{i}`` or the
        line name) [dex·ln10, i.e. natural log].
    """

    bin_edges_nm: FloatArray
    continuum_coeff: FloatArray
    moon_coeff: FloatArray
    moon_extinction: FloatArray
    line_names: list[str]
    line_coeff: FloatArray
    n_train: int
    n_moon: int
    scatter: dict[str, float] = field(default_factory=dict)

    def predict(self, conditions: pd.DataFrame | dict[str, Any]) -> tuple[FloatArray, FloatArray]:
        """Predict the continuum per bin and the line strengths for conditions.

        Returns
        -------
        continuum : numpy.ndarray
            ``(n, nbin)`` [10⁻¹⁷ erg s⁻¹ cm⁻² Å⁻¹ per fibre].
        lines : numpy.ndarray
            ``(n, nline)`` [10⁻¹⁷ erg s⁻¹ cm⁻² per fibre].
        """
        x = regressors(conditions)
        dark = np.exp(x @ self.continuum_coeff.T)
        return dark + self.moonlight(conditions), np.exp(x @ self.line_coeff.T)

    def moonlight(self, conditions: pd.DataFrame | dict[str, Any]) -> FloatArray:
        """Predicted scattered moonlight ``(n, nbin)`` [10⁻¹⁷ erg s⁻¹ cm⁻² Å⁻¹ per fibre]."""
        terms = moon_regressors(conditions, np.nan_to_num(self.moon_extinction))
        return np.asarray(np.einsum("nbt,bt->nb", terms, self.moon_coeff))

    def to_json(self, path: str | os.PathLike[str]) -> None:
        """Save the coefficients as JSON."""
        from photonpipe.platform.archive import atomic_output

        payload = {
            "regressors": list(REGRESSORS),
            "bin_edges_nm": self.bin_edges_nm.tolist(),
            "continuum_coeff": [
                [float(v) if np.isfinite(v) else None for v in row] for row in self.continuum_coeff
            ],
            "moon_model": MOON_MODEL,
            "moon_coeff": self.moon_coeff.tolist(),
            "moon_extinction": [float(v) if np.isfinite(v) else None for v in self.moon_extinction],
            "line_names": self.line_names,
            "line_coeff": self.line_coeff.tolist(),
            "n_train": self.n_train,
            "n_moon": self.n_moon,
            "scatter": self.scatter,
        }
        with atomic_output(Path(path)) as tmp:
            tmp.write_text(json.dumps(payload, indent=1))

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> SkyModel:
        """Load a model saved by :meth:`to_json`."""
        try:
            payload = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise InputFileError(Path(path), f"not a sky model file ({exc})") from exc
        if payload.get("regressors") != list(REGRESSORS):
            raise InputFileError(Path(path), "sky model made with other regressors")
        if payload.get("moon_model") != MOON_MODEL:
            raise InputFileError(
                Path(path), "sky model with an older moonlight term: refit it with `sky model`"
            )
        return cls(
            np.asarray(payload["bin_edges_nm"], dtype=np.float64),
            np.array(
                [[np.nan if v is None else v for v in row] for row in payload["continuum_coeff"]],
                dtype=np.float64,
            ),
            np.asarray(payload["moon_coeff"], dtype=np.float64).reshape(-1, len(MOON_TERMS)),
            np.array(
                [np.nan if v is None else v for v in payload["moon_extinction"]], dtype=np.float64
            ),
            list(payload["line_names"]),
            np.asarray(payload["line_coeff"], dtype=np.float64),
            int(payload["n_train"]),
            int(payload["n_moon"]),
            dict(payload["scatter"]),
        )


def _fit_log_linear(x: FloatArray, y: FloatArray) -> tuple[FloatArray, float]:
    ok = np.isfinite(y) & (y > 0) & np.all(np.isfinite(x), axis=1)
    if ok.sum() < x.shape[1] + 3:
        return np.full(x.shape[1], np.nan), np.nan
    coeff, *_ = np.linalg.lstsq(x[ok], np.log(y[ok]), rcond=None)
    resid = np.log(y[ok]) - x[ok] @ coeff
    return coeff, robust_sigma(resid)


def _fit_moon_bin(
    terms: FloatArray, excess: FloatArray, observed: FloatArray
) -> tuple[FloatArray, float, float]:
    """Non-negative least squares of a bin's moonlight excess on the K&S terms, for each k.

    Residuals are weighted by 1/observed (relative errors). Returns the coefficients (2,), the
    k of the grid with the smallest residual and that residual's robust relative scatter.
    """
    from scipy.optimize import nnls

    weight = 1.0 / observed
    best: tuple[float, FloatArray, float] = (np.inf, np.zeros(len(MOON_TERMS)), np.nan)
    for j, k in enumerate(EXTINCTION_GRID):
        design = terms[:, j, :] * weight[:, None]
        scale = np.maximum(np.max(np.abs(design), axis=0), 1e-300)
        coeff, norm = nnls(design / scale, excess * weight)
        if norm < best[0]:
            best = (float(norm), coeff / scale, float(k))
    _, coeff, k = best
    resid = (excess - terms[:, int(np.argmin(np.abs(EXTINCTION_GRID - k))), :] @ coeff) * weight
    return coeff, k, robust_sigma(resid)


def fit_sky_model(data: TrainingSet, rows: npt.ArrayLike | None = None) -> SkyModel:
    """Fit the model on a training set (optionally only on ``rows``).

    The dark-sky coefficients come from the moon-down observations (all observations if there
    are too few). Then, per bin, the moon-up observations' excess over the dark-sky prediction is
    fitted by non-negative least squares on the two :func:`moon_regressors` columns for every k
    of :data:`EXTINCTION_GRID`, keeping the k with the smallest relative residual (bins with
    fewer than :data:`MIN_MOON_OBSERVATIONS` moon-up observations get no moonlight term).
    :data:`REFINE_DARK` times the dark sky is then refitted on all observations whose fitted
    moonlight is less than half of the sky, with that moonlight subtracted, and the moonlight
    refitted on the new excess (the moon-up nights then also teach the dark-sky terms).
    """
    use = np.arange(len(data.keys)) if rows is None else np.asarray(rows)
    conditions = data.conditions.iloc[use]
    x = regressors(conditions)
    up = conditions["MOON_ALT"].to_numpy(dtype=np.float64) > 0.0
    dark = ~up
    if dark.sum() < x.shape[1] + 3:
        dark = np.ones(use.size, dtype=bool)  # too few moonless nights: fit on everything
    terms = moon_regressors(conditions[up], EXTINCTION_GRID)
    scatter: dict[str, float] = {}
    nbin = data.continuum.shape[1]
    cont = []
    moon_coeff = np.zeros((nbin, len(MOON_TERMS)))
    moon_k = np.full(nbin, np.nan)
    for b in range(nbin):
        y = data.continuum[use, b]
        coeff, s = _fit_log_linear(x[dark], y[dark])
        observed = y[up]
        for iteration in range(1 + REFINE_DARK):
            if iteration:
                # refit the dark sky on all observations, moonlight subtracted where it is less
                # than half of the sky
                j = int(np.argmin(np.abs(EXTINCTION_GRID - moon_k[b])))
                moon = np.zeros(use.size)
                moon[up] = terms[:, j, :] @ moon_coeff[b]
                keep = moon < 0.5 * y
                coeff, s = _fit_log_linear(x[keep], (y - moon)[keep])
            excess = observed - np.exp(x[up] @ coeff)
            ok = np.isfinite(excess) & (observed > 0)
            if ok.sum() < MIN_MOON_OBSERVATIONS:
                break
            moon_coeff[b], moon_k[b], scatter[f"moon_{b}"] = _fit_moon_bin(
                terms[ok], excess[ok], observed[ok]
            )
        cont.append(coeff)
        scatter[f"cont_{b}"] = s
    names = list(data.lines.columns)
    line_coeff = []
    for name in names:
        coeff, s = _fit_log_linear(x, data.lines[name].to_numpy(dtype=np.float64)[use])
        line_coeff.append(coeff)
        scatter[name] = s
    return SkyModel(
        BIN_EDGES_NM.copy(),
        np.array(cont),
        moon_coeff,
        moon_k,
        names,
        np.array(line_coeff).reshape(len(names), len(REGRESSORS)),
        int(use.size),
        int(up.sum()),
        scatter,
    )


def _abs_stats(ratio: FloatArray) -> tuple[float, float]:
    finite = np.abs(ratio[np.isfinite(ratio)])
    if not finite.size:
        return np.nan, np.nan
    return float(np.median(finite)), float(np.percentile(finite, 90))


def evaluate(
    data: TrainingSet, held_out_fraction: float = 0.25, seed: int = 0
) -> tuple[SkyModel, dict[str, float]]:
    """Fit on most plates and measure the prediction error on the held-out plates.

    Plates (not exposures) are held out, so that no exposure of a test plate was seen.

    Returns
    -------
    model : SkyModel
        Fitted on the training plates.
    quality : dict
        ``continuum_median_abs`` and ``continuum_p90_abs``: median and 90th percentile of
        |predicted/observed − 1| over held-out continuum bins; the same with suffix ``_dark``
        (Moon below the horizon) and ``_moon`` (Moon up) over those observations alone (NaN if
        none); ``lines_median_abs`` likewise over held-out line strengths with S/N high enough
        to be positive; ``n_train``, ``n_test``, ``n_test_moon`` observations.
    """
    plates = np.unique(data.keys["PLATE"])
    rng = np.random.default_rng(seed)
    test_plates = rng.choice(plates, max(1, round(held_out_fraction * plates.size)), replace=False)
    test = np.isin(data.keys["PLATE"], test_plates)
    model = fit_sky_model(data, np.flatnonzero(~test))
    cont, lines = model.predict(data.conditions[test])
    ratio = cont / data.continuum[test] - 1.0
    up = data.conditions["MOON_ALT"].to_numpy(dtype=np.float64)[test] > 0.0
    line_obs = data.lines[test].to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        line_ratio = np.where(line_obs > 0, lines / line_obs - 1.0, np.nan)
    quality: dict[str, float] = {}
    for suffix, select in (("", slice(None)), ("_dark", ~up), ("_moon", up)):
        median, p90 = _abs_stats(ratio[select])
        quality[f"continuum_median_abs{suffix}"] = median
        quality[f"continuum_p90_abs{suffix}"] = p90
    quality["lines_median_abs"] = _abs_stats(line_ratio)[0]
    quality["n_train"] = int((~test).sum())
    quality["n_test"] = int(test.sum())
    quality["n_test_moon"] = int(up.sum())
    return model, quality


#: Resolving power used to draw the predicted lines (BOSS: R ≈ 1500–2500).
PREDICTION_RESOLUTION = 2000.0


def predicted_spectrum(
    model: SkyModel, conditions: dict[str, float], step_nm: float = 0.05
) -> tuple[Any, Any]:
    """Predict the sky spectrum for one set of conditions.

    The continuum is interpolated (in log) between the bin centres; the configured lines are
    drawn as Gaussians at their vacuum positions with σ = λ / (2.355 R), R =
    :data:`PREDICTION_RESOLUTION` (a blend's flux is shared equally by its components).

    Parameters
    ----------
    model : SkyModel
        Fitted model.
    conditions : dict of str to float
        One value per :data:`CONDITIONS` key.
    step_nm : float
        Wavelength step of the output [nm].

    Returns
    -------
    spectrum : astropy.table.QTable
        ``wavelength`` [nm], ``continuum`` and ``flux`` [10⁻¹⁷ erg s⁻¹ cm⁻² Å⁻¹ per 2″ fibre],
        ``surface_brightness`` [10⁻¹⁷ erg s⁻¹ cm⁻² Å⁻¹ arcsec⁻²].
    lines : astropy.table.QTable
        ``name``, ``wavelength`` [nm], ``flux`` [10⁻¹⁷ erg s⁻¹ cm⁻² per fibre].
    """
    import astropy.units as u
    from astropy.table import QTable

    from photonpipe.sky.analysis import FIBRE_AREA_ARCSEC2

    single = {k: [float(conditions[k])] for k in CONDITIONS}
    cont_bins, line_flux = model.predict(single)
    centres = 0.5 * (model.bin_edges_nm[1:] + model.bin_edges_nm[:-1])
    ok = np.isfinite(cont_bins[0]) & (cont_bins[0] > 0)
    wave = np.arange(model.bin_edges_nm[0], model.bin_edges_nm[-1] + 1e-9, step_nm)
    continuum = np.exp(np.interp(wave, centres[ok], np.log(cont_bins[0][ok])))
    flux = continuum.copy()
    features = {f"{f.name}_FLUX": f for f in read_features() if f.kind == "line"}
    rows = []
    for name, value in zip(model.line_names, line_flux[0], strict=True):
        feature = features.get(name)
        if feature is None or not np.isfinite(value):
            continue
        for centre in feature.wave_vacuum_nm:
            sigma = centre / (2.3548 * PREDICTION_RESOLUTION)
            share = value / len(feature.wave_vacuum_nm)
            # flux per nm → per Å: / 10
            flux += share / 10.0 * gaussian(wave, centre, sigma)
        rows.append((feature.name, float(np.mean(feature.wave_vacuum_nm)), float(value)))
    unit = u.def_unit("1e-17 erg / (s cm2 Angstrom)", 1e-17 * u.erg / (u.s * u.cm**2 * u.AA))
    spectrum = QTable(
        {
            "wavelength": wave * u.nm,
            "continuum": continuum * unit,
            "flux": flux * unit,
            "surface_brightness": flux / FIBRE_AREA_ARCSEC2 * unit / u.arcsec**2,
        }
    )
    spectrum.meta.update({k: float(v) for k, v in conditions.items()})
    spectrum.meta["N_TRAIN"] = model.n_train
    spectrum.meta["N_MOON"] = model.n_moon
    lines = QTable(
        {
            "name": [r[0] for r in rows],
            "wavelength": [r[1] for r in rows] * u.nm,
            "flux": [r[2] for r in rows] * u.Unit(1e-17 * u.erg / (u.s * u.cm**2)),
        }
    )
    return spectrum, lines


_FITS_KEYS = {
    "AIRMASS": "AIRMASS",
    "ZODI": "ZODI",
    "ISL": "ISL",
    "SOLAR_FLUX_OBS": "F107",
    "HOURS_SINCE_SUNSET": "HSUNSET",
    "MONTH": "MONTH",
    "MOON_ILLUMINATION": "MOONILL",
    "MOON_ALT": "MOONALT",
    "MOON_SEP": "MOONSEP",
    "N_TRAIN": "NTRAIN",
    "N_MOON": "NMOON",
}


def write_prediction(spectrum: Any, lines: Any, out_dir: str | os.PathLike[str]) -> list[Path]:
    """Write a prediction as FITS (spectrum + lines HDUs), two ECSV tables and a PNG, atomically.

    Returns
    -------
    list of pathlib.Path
        ``sky_prediction.fits``, ``sky_prediction.ecsv``, ``sky_prediction_lines.ecsv``,
        ``sky_prediction.png``.
    """
    from astropy.io import fits
    from astropy.table import Table

    from photonpipe.platform.archive import atomic_output
    from photonpipe.platform.plots import new_figure

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ecsv, line_ecsv = out / "sky_prediction.ecsv", out / "sky_prediction_lines.ecsv"
    with atomic_output(ecsv) as tmp:
        spectrum.write(tmp, format="ascii.ecsv")
    with atomic_output(line_ecsv) as tmp:
        lines.write(tmp, format="ascii.ecsv")
    plain = Table(spectrum, copy=True)
    plain.meta.clear()
    hdus = fits.HDUList(
        [fits.PrimaryHDU(), fits.table_to_hdu(plain), fits.table_to_hdu(Table(lines))]
    )
    for key, value in spectrum.meta.items():
        hdus[0].header[_FITS_KEYS.get(key, key[:8])] = (value, key)
    hdus[1].header["EXTNAME"] = "SPECTRUM"
    hdus[2].header["EXTNAME"] = "LINES"
    fits_path = out / "sky_prediction.fits"
    with atomic_output(fits_path) as tmp:
        hdus.writeto(tmp)
    figure = new_figure(11.0, 4.5)
    axes = figure.add_subplot(1, 1, 1)
    wave = spectrum["wavelength"].value
    axes.plot(wave, spectrum["flux"].value, lw=0.6, color="k", label="predicted sky")
    axes.plot(wave, spectrum["continuum"].value, lw=1.2, color="tab:orange", label="continuum")
    axes.set_xlabel("vacuum wavelength [nm]")
    axes.set_ylabel("flux per 2″ fibre [1e-17 erg/s/cm²/Å]")
    axes.set_ylim(0, 3 * float(np.nanmax(spectrum["continuum"].value)) + 1)
    meta = spectrum.meta
    axes.set_title(
        f"predicted sky: airmass {meta['AIRMASS']:.2f}, Moon {meta['MOON_ALT']:.0f}° alt, "
        f"{meta['MOON_SEP']:.0f}° away, illum. {meta['MOON_ILLUMINATION']:.2f}; "
        f"F10.7 {meta['SOLAR_FLUX_OBS']:.0f} sfu, {meta['HOURS_SINCE_SUNSET']:.1f} h after sunset"
    )
    axes.legend(loc="upper left")
    png = out / "sky_prediction.png"
    with atomic_output(png) as tmp:
        figure.savefig(tmp, format="png", dpi=110)
    return [fits_path, ecsv, line_ecsv, png]
