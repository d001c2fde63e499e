"""Line strengths and continuum levels of individual sky spectra.

The configured features (``data/line_windows.csv``, or a user file of the same layout) are
SkyModelling's lines and continuum points: N I 520.0, O I 557.7, Na D, Hg I 404.7/435.8/546.1,
Na I 498.3/568.3/568.8, O I 630.0/636.4, O₂ 860.5/869.5 nm and continuum points between them.
Line positions are given in air and converted to vacuum with Ciddor (1996)
(:func:`photonpipe.spectra.airvac.air_to_vacuum`) — SkyModelling's own vacuum positions were off
by up to 0.04 nm.

For every line of every spectrum (:func:`measure_line_strengths`):

* the window spans the feature's components ± 4 σ of the line-spread function (σ from the
  spectrum's dispersion trace at the line, in pixels, times the pixel width);
* the continuum is a weighted straight line fitted to side bands from 2 σ to 2 σ + 2.5 nm
  beyond the window (6 nm when the first choice has too few line-free pixels), leaving out
  ± 5 σ around every other known line (airglow list, light-pollution lines, other features:
  at 3 σ the wing of a bright OH or O₂ line is still tens of per cent of the continuum);
* line flux = ∫ (flux − continuum) dλ over the window [10⁻¹⁷ erg s⁻¹ cm⁻² per fibre], with an
  uncertainty from the pixel noise and the continuum fit
  (:func:`photonpipe.spectra.emission.line_window_flux`).

Continuum points: the straight-line fit within ± 1.5 nm of the point, without ± 5 σ around the
known lines, evaluated at the point
[10⁻¹⁷ erg s⁻¹ cm⁻² Å⁻¹].

Anything not measurable is NaN with a reason in the ``*_FLAG`` column, never a zero.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from photonpipe.errors import InputFileError
from photonpipe.spectra.airvac import air_to_vacuum
from photonpipe.spectra.emission import WindowFlux, fit_local_continuum, line_window_flux

FloatArray = npt.NDArray[np.float64]

#: Plausible range of an optical sky wavelength [nm]: values outside mean a wrong unit.
SKY_RANGE_NM = (300.0, 1100.0)
WINDOW_SIGMA = 4.0
EXCLUDE_SIGMA = 5.0
CONTINUUM_EXCLUDE_SIGMA = 5.0
SIDEBAND_GAP_SIGMA = 2.0
SIDEBAND_WIDTHS_NM = (2.5, 6.0)
CONTINUUM_HALF_WIDTH_NM = 1.5


@dataclass(frozen=True)
class SkyFeature:
    """A line (one or more blended components) or a continuum point.

    Attributes
    ----------
    name : str
        Column prefix (e.g. ``OI``, ``cont_b_380``).
    arm : {"b", "r"}
        Cameras it is measured on.
    kind : {"line", "cont"}
        Emission line or continuum point.
    wave_vacuum_nm : tuple of float
        Vacuum wavelength of each component [nm].
    """

    name: str
    arm: str
    kind: str
    wave_vacuum_nm: tuple[float, ...]


def check_wavelengths_nm(values: npt.ArrayLike, source: str | os.PathLike[str]) -> FloatArray:
    """Check that sky wavelengths are in nm (300–1100 nm) and return them.

    Parameters
    ----------
    values : array_like
        Wavelengths [nm].
    source : path or str
        File named in the error.

    Raises
    ------
    InputFileError
        A value outside the range, with a hint at the unit (Å values are 10× too large, µm
        values 1000× too small).
    """
    wave = np.asarray(values, dtype=np.float64)
    bad = ~np.isfinite(wave) | (wave < SKY_RANGE_NM[0]) | (wave > SKY_RANGE_NM[1])
    if np.any(bad):
        example = float(wave[bad].ravel()[0])
        hint = ""
        if SKY_RANGE_NM[0] * 10 <= example <= SKY_RANGE_NM[1] * 10:
            hint = " (looks like Å: give nm)"
        elif SKY_RANGE_NM[0] / 1000 <= example <= SKY_RANGE_NM[1] / 1000:
            hint = " (looks like µm: give nm)"
        raise InputFileError(
            Path(source),
            f"wavelength {example:g} outside {SKY_RANGE_NM[0]:g}–{SKY_RANGE_NM[1]:g} nm{hint}",
        )
    return wave


def read_features(path: str | os.PathLike[str] | None = None) -> tuple[SkyFeature, ...]:
    """Read a line/continuum-point configuration (default: the packaged one).

    Columns ``arm`` (b/r), ``name``, ``kind`` (line/cont), ``medium`` (air/vacuum) and
    ``wavelength_nm``; ``#`` lines are comments; rows sharing a name are components of one
    feature.

    Parameters
    ----------
    path : path, optional
        Configuration file.

    Raises
    ------
    InputFileError
        Missing columns, unknown arm/kind/medium, or wavelengths not in nm.
    """
    if path is None:
        source: Any = resources.files("photonpipe.sky") / "data" / "line_windows.csv"
        text = source.read_text()
        where: str | os.PathLike[str] = "photonpipe/sky/data/line_windows.csv"
    else:
        where = path
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise InputFileError(Path(path), f"cannot read ({exc.strerror})") from exc
    rows = list(csv.DictReader(line for line in text.splitlines() if not line.startswith("#")))
    needed = {"arm", "name", "kind", "medium", "wavelength_nm"}
    if not rows or not needed <= set(rows[0]):
        raise InputFileError(Path(where), f"needs columns {', '.join(sorted(needed))}")
    components: dict[str, list[float]] = {}
    meta: dict[str, tuple[str, str]] = {}
    raw = np.array([float(r["wavelength_nm"]) for r in rows])
    check_wavelengths_nm(raw, where)
    for r, value in zip(rows, raw, strict=True):
        arm, kind, medium = r["arm"].strip(), r["kind"].strip(), r["medium"].strip()
        if arm not in ("b", "r") or kind not in ("line", "cont") or medium not in ("air", "vacuum"):
            raise InputFileError(
                Path(where), f"bad row {r}: arm b/r, kind line/cont, medium air/vacuum"
            )
        vacuum = float(air_to_vacuum(value)) if medium == "air" else float(value)
        name = r["name"].strip()
        components.setdefault(name, []).append(vacuum)
        meta[name] = (arm, kind)
    return tuple(
        SkyFeature(name, meta[name][0], meta[name][1], tuple(sorted(waves)))
        for name, waves in components.items()
    )


@cache
def known_lines_nm(arm: str) -> FloatArray:
    """Known sky lines of an arm [nm, vacuum]: the airglow list and the light-pollution lines.

    Parameters
    ----------
    arm : {"b", "r"}
        Spectrograph arm.
    """
    from photonpipe.sky.reference import airglow_lines_nm, artificial_lines

    listed = airglow_lines_nm("blue" if arm == "b" else "red")
    lamps = np.array([line.wave_vacuum_nm for line in artificial_lines()])
    return np.unique(np.concatenate([listed, lamps]))


def _sigma_nm(wave: FloatArray, dispersion: FloatArray, at: float) -> float:
    """LSF sigma at ``at`` [nm] from the dispersion [pixels] and the local pixel width."""
    i = int(np.clip(np.searchsorted(wave, at), 1, wave.size - 1))
    pixel = float(wave[i] - wave[i - 1])
    disp = float(dispersion[i]) if np.isfinite(dispersion[i]) and dispersion[i] > 0 else 1.0
    return disp * pixel


def measure_feature(
    wave: FloatArray,
    flux: FloatArray,
    ivar: FloatArray,
    dispersion: FloatArray,
    feature: SkyFeature,
    others: FloatArray,
) -> WindowFlux:
    """Measure one feature in one spectrum.

    Parameters
    ----------
    wave : numpy.ndarray
        Vacuum wavelengths [nm], increasing.
    flux, ivar : numpy.ndarray
        Flux [10⁻¹⁷ erg s⁻¹ cm⁻² Å⁻¹] and inverse variance (NaN / 0 where rejected).
    dispersion : numpy.ndarray
        LSF sigma [pixels].
    feature : SkyFeature
        What to measure.
    others : numpy.ndarray
        Known line positions to keep out of continuum bands [nm].

    Returns
    -------
    WindowFlux
        For a line: flux [10⁻¹⁷ erg s⁻¹ cm⁻²] (the integral is taken in Å), continuum at the
        centre; for a continuum point: ``flux``/``error`` are NaN and ``continuum`` is the level.
    """
    lo_c, hi_c = feature.wave_vacuum_nm[0], feature.wave_vacuum_nm[-1]
    finite = np.isfinite(wave)
    if not finite.any() or lo_c < np.nanmin(wave) or hi_c > np.nanmax(wave):
        return WindowFlux(np.nan, np.nan, np.nan, np.nan, "outside the spectrum's wavelength range")
    # Work on the pixels that can matter only (the widest side bands and their margin).
    reach = SIDEBAND_WIDTHS_NM[-1] + 2.0
    i0, i1 = np.searchsorted(wave, [lo_c - reach, hi_c + reach])
    wave, flux, ivar, dispersion = (a[i0:i1] for a in (wave, flux, ivar, dispersion))
    sigma = _sigma_nm(wave, dispersion, 0.5 * (lo_c + hi_c))
    others = others[(others > lo_c - reach - 1.0) & (others < hi_c + reach + 1.0)]
    exclude = others[
        np.all(np.abs(others[:, None] - np.array(feature.wave_vacuum_nm)) > 0.5 * sigma, axis=1)
    ]
    valid = np.isfinite(flux) & (ivar > 0)
    if not valid.any():
        return WindowFlux(np.nan, np.nan, np.nan, np.nan, "no valid pixels (all NaN)")
    if feature.kind == "cont":
        centre = lo_c
        near = np.abs(wave - centre) <= CONTINUUM_HALF_WIDTH_NM
        if exclude.size:
            distance = np.min(np.abs(wave[:, None] - exclude[None, :]), axis=1)
            near &= distance > CONTINUUM_EXCLUDE_SIGMA * sigma
        fit = fit_local_continuum(wave, flux, ivar, near & valid, centre)
        if fit is None:
            return WindowFlux(np.nan, np.nan, np.nan, np.nan, "no line-free pixels near the point")
        coeff, cov = fit
        return WindowFlux(np.nan, np.nan, float(coeff[0]), float(np.sqrt(cov[0, 0])))
    window = (lo_c - WINDOW_SIGMA * sigma, hi_c + WINDOW_SIGMA * sigma)
    gap = SIDEBAND_GAP_SIGMA * sigma
    result = WindowFlux(np.nan, np.nan, np.nan, np.nan, "no line-free continuum")
    for width in SIDEBAND_WIDTHS_NM:
        bands = (
            (window[0] - gap - width, window[0] - gap),
            (window[1] + gap, window[1] + gap + width),
        )
        result = line_window_flux(
            wave,
            flux,
            ivar,
            window,
            bands,
            exclude,
            EXCLUDE_SIGMA * sigma,
            core=(lo_c - 2.0 * sigma, hi_c + 2.0 * sigma),
        )
        if result.flag != "no line-free continuum":
            break
    if np.isfinite(result.flux):
        # Flux density per Å integrated over nm: × 10 Å/nm.
        return WindowFlux(
            result.flux * 10.0,
            result.error * 10.0,
            result.continuum,
            result.continuum_error,
            result.flag,
        )
    return result


def feature_columns(features: tuple[SkyFeature, ...]) -> list[str]:
    """Metadata columns written for ``features`` (floats, then the ``*_FLAG`` strings)."""
    names: list[str] = []
    for f in features:
        if f.kind == "line":
            names += [f"{f.name}_FLUX", f"{f.name}_ERR", f"{f.name}_CONT"]
        else:
            names += [f.name, f"{f.name}_ERR"]
    return names


def measure_line_strengths(
    wavelength_nm: FloatArray,
    flux: FloatArray,
    ivar: FloatArray,
    dispersion: FloatArray,
    arm: str,
    features: tuple[SkyFeature, ...] | None = None,
) -> dict[str, list[Any]]:
    """Line strengths and continuum levels of a set of spectra of one arm.

    Parameters
    ----------
    wavelength_nm, flux, ivar, dispersion : numpy.ndarray
        ``(nspec, npix)`` arrays as in the dataset (vacuum nm; 10⁻¹⁷ erg s⁻¹ cm⁻² Å⁻¹; flux⁻²;
        LSF sigma in pixels).
    arm : {"b", "r"}
        Arm of the spectra; features of the other arm get nulls.
    features : tuple of SkyFeature, optional
        Default: :func:`read_features`.

    Returns
    -------
    dict of str to list
        Columns of :func:`feature_columns` (floats, NaN when not measured) plus one
        ``{name}_FLAG`` column per feature (None when measured, the reason otherwise).
    """
    features = read_features() if features is None else features
    components = [w for f in features if f.kind == "line" for w in f.wave_vacuum_nm]
    others = np.unique(np.concatenate([known_lines_nm(arm), components]))
    out: dict[str, list[Any]] = {c: [] for c in feature_columns(features)}
    for f in features:
        out[f"{f.name}_FLAG"] = []
    nspec = np.asarray(flux).shape[0]
    for i in range(nspec):
        wave = np.asarray(wavelength_nm[i], dtype=np.float64)
        flx = np.asarray(flux[i], dtype=np.float64)
        iv = np.asarray(ivar[i], dtype=np.float64)
        disp = np.asarray(dispersion[i], dtype=np.float64)
        for f in features:
            if f.arm != arm:
                m = WindowFlux(np.nan, np.nan, np.nan, np.nan, "")  # not this arm: null flag
            else:
                m = measure_feature(wave, flx, iv, disp, f, others)
            if f.kind == "line":
                out[f"{f.name}_FLUX"].append(m.flux)
                out[f"{f.name}_ERR"].append(m.error)
                out[f"{f.name}_CONT"].append(m.continuum)
            else:
                out[f.name].append(m.continuum)
                out[f"{f.name}_ERR"].append(m.continuum_error)
            out[f"{f.name}_FLAG"].append(m.flag or None)
    return out
