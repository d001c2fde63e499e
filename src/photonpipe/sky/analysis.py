"""Per-plate analysis of sky spectra, run inside ``photonpipe sky build`` for every plate.

For each (exposure, camera):

1. line strengths and continuum levels of every sky spectrum (:mod:`photonpipe.sky.lines`),
   added to the metadata rows;
2. sky brightness per fibre in ugriz (AB) and Bessell UBVRI (Vega) [mag arcsec⁻²], from the
   fibre's blue and red spectra of the same exposure joined at the middle of their overlap
   (:func:`sky_brightness`), added to the metadata rows of both cameras;
3. the mean spectrum of the camera's sky fibres and its airglow/continuum separation
   (:mod:`photonpipe.sky.mean`), written to ``mean/{plate}.h5`` and ``airglow/{plate}.parquet``.

A spectrum or camera that cannot be analysed (all NaN, no valid fibre) gets NaN values with the
reason in a ``*_FLAG`` column; it never fails the plate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from photonpipe.platform.archive import Archive
from photonpipe.sky.lines import SkyFeature, measure_line_strengths
from photonpipe.sky.mean import MeanSpectrum, mean_sky_spectrum, separate_airglow
from photonpipe.spectra.multiline import Separation
from photonpipe.spectra.photometry import (
    BESSELL_FILTERS,
    SDSS_FILTERS,
    ab_magnitudes,
    vega_magnitudes,
)

FloatArray = npt.NDArray[np.float64]

MEAN_DIR = "mean"
AIRGLOW_DIR = "airglow"
#: Solid angle of a 2″-diameter BOSS fibre [arcsec²].
FIBRE_AREA_ARCSEC2 = np.pi
#: Magnitude columns: (column, speclite filter, system).
MAGNITUDE_COLUMNS = tuple((f"SKY_{f[-1]}", f, "AB") for f in SDSS_FILTERS) + tuple(
    (f"SKY_{f[-1]}_VEGA", f, "Vega") for f in BESSELL_FILTERS
)


@dataclass
class CameraSpectra:
    """Native sky spectra of one camera of one exposure (what the analysis needs).

    Attributes
    ----------
    exposure : int
        Exposure number.
    camera : str
        Camera name.
    fiberid : numpy.ndarray
        ``(nsky,)`` fibre numbers.
    wavelength_nm, flux, ivar, dispersion : numpy.ndarray
        ``(nsky, npix)`` vacuum wavelength [nm], flux [10⁻¹⁷ erg s⁻¹ cm⁻² Å⁻¹], inverse
        variance [flux⁻²], LSF sigma [pixels].
    wave_range_nm : (float, float)
        Camera window [nm].
    """

    exposure: int
    camera: str
    fiberid: npt.NDArray[np.int64]
    wavelength_nm: FloatArray
    flux: FloatArray
    ivar: FloatArray
    dispersion: FloatArray
    wave_range_nm: tuple[float, float]


def sky_brightness(
    blue_wave_nm: FloatArray,
    blue_flux: FloatArray,
    red_wave_nm: FloatArray,
    red_flux: FloatArray,
) -> tuple[dict[str, float], str | None]:
    """Sky surface brightness of one fibre from its blue and red spectra.

    The two spectra are joined at the middle of their overlap; the per-fibre flux is divided
    by the fibre's solid angle (π arcsec² for BOSS's 2″ fibres).

    Parameters
    ----------
    blue_wave_nm, blue_flux, red_wave_nm, red_flux : numpy.ndarray
        Vacuum wavelengths [nm] and flux [10⁻¹⁷ erg s⁻¹ cm⁻² Å⁻¹ per fibre], NaN = rejected.

    Returns
    -------
    magnitudes : dict of str to float
        ``SKY_u`` … ``SKY_z`` (AB) and ``SKY_U_VEGA`` … ``SKY_I_VEGA`` [mag arcsec⁻²]; NaN when
        the filter is not covered (the spectra span 365–1040 nm: u, z and U are partly outside).
    flag : str or None
        The reasons for NaN values, joined by ``; ``.
    """
    finite_b = np.isfinite(blue_flux)
    finite_r = np.isfinite(red_flux)
    if finite_b.any() and finite_r.any():
        cut = 0.5 * (
            max(blue_wave_nm[finite_b][0], red_wave_nm[finite_r][0])
            + min(blue_wave_nm[finite_b][-1], red_wave_nm[finite_r][-1])
        )
    else:
        cut = 600.0
    keep_b = blue_wave_nm < cut
    keep_r = red_wave_nm >= cut
    wave = np.concatenate([blue_wave_nm[keep_b], red_wave_nm[keep_r]]) * 10.0  # Å
    flux = np.concatenate([blue_flux[keep_b], red_flux[keep_r]]) * 1e-17 / FIBRE_AREA_ARCSEC2
    order = np.argsort(wave)
    wave, flux = wave[order], flux[order][None, :]
    values: dict[str, float] = {}
    reasons: list[str] = []
    for column, name, system in MAGNITUDE_COLUMNS:
        if system == "AB":
            mags, flags = ab_magnitudes(wave, flux, name)
        else:
            mags, flags = vega_magnitudes(wave, flux, name)
        values[column] = float(mags[0])
        if flags[0]:
            reasons.append(flags[0])
    return values, "; ".join(reasons) or None


def analyse_plate_spectra(
    cameras: Sequence[CameraSpectra], features: tuple[SkyFeature, ...]
) -> tuple[
    dict[tuple[int, str], dict[str, list[Any]]],
    list[tuple[MeanSpectrum, Separation | None, str | None]],
    list[dict[str, Any]],
]:
    """Analyse every camera of every exposure of one plate.

    Parameters
    ----------
    cameras : sequence of CameraSpectra
        All cameras of all exposures.
    features : tuple of SkyFeature
        Lines and continuum points to measure.

    Returns
    -------
    columns : dict
        Per (exposure, camera): metadata columns (lists, one entry per sky fibre in order):
        line strengths, continuum levels, magnitudes and their flags.
    means : list
        (mean spectrum, separation or None, reason the separation failed or None).
    airglow_rows : list of dict
        Fitted line fluxes of every mean spectrum.
    """
    columns: dict[tuple[int, str], dict[str, list[Any]]] = {}
    by_key = {(c.exposure, c.camera): c for c in cameras}
    for c in cameras:
        columns[(c.exposure, c.camera)] = measure_line_strengths(
            c.wavelength_nm, c.flux, c.ivar, c.dispersion, c.camera[0], features
        )
    mag_names = [m[0] for m in MAGNITUDE_COLUMNS]
    for c in cameras:
        cols = columns[(c.exposure, c.camera)]
        for name in (*mag_names, "SKY_MAG_FLAG"):
            cols[name] = []
        other = by_key.get((c.exposure, ("r" if c.camera[0] == "b" else "b") + c.camera[1]))
        index = {int(f): i for i, f in enumerate(other.fiberid)} if other else {}
        for i, fibre in enumerate(c.fiberid):
            j = index.get(int(fibre))
            if other is None or j is None:
                values = dict.fromkeys(mag_names, np.nan)
                flag: str | None = "no spectrum of the other arm for this fibre"
            else:
                blue, red = (c, other) if c.camera[0] == "b" else (other, c)
                bi, ri = (i, j) if c.camera[0] == "b" else (j, i)
                values, flag = sky_brightness(
                    blue.wavelength_nm[bi], blue.flux[bi], red.wavelength_nm[ri], red.flux[ri]
                )
            for n in mag_names:
                cols[n].append(values[n])
            cols["SKY_MAG_FLAG"].append(flag)
    means: list[tuple[MeanSpectrum, Separation | None, str | None]] = []
    airglow: list[dict[str, Any]] = []
    for c in cameras:
        mean = mean_sky_spectrum(
            c.camera,
            c.exposure,
            c.fiberid,
            c.wavelength_nm,
            c.flux,
            c.ivar,
            c.dispersion,
            c.wave_range_nm,
        )
        try:
            separation, rows = separate_airglow(mean)
        except ValueError as exc:
            means.append((mean, None, str(exc)))
            continue
        means.append((mean, separation, None))
        airglow.extend(rows)
    return columns, means, airglow


def write_means(
    archive: Archive,
    plate: int,
    means: Sequence[tuple[MeanSpectrum, Separation | None, str | None]],
    attributes: dict[str, str],
) -> None:
    """Write a plate's mean spectra and separations to ``mean/{plate}.h5`` atomically.

    One group per ``{exposure}/{camera}``: ``wavelength`` [nm], ``flux``, ``variance``,
    ``scatter_variance``, ``n_fibres``, ``continuum`` (data minus fitted lines),
    ``smooth_continuum``, ``lines`` [10⁻¹⁷ erg s⁻¹ cm⁻² Å⁻¹ per fibre]; ``fiberid``,
    ``accepted``; attributes ``rejected`` (fibre: reason), ``separation_flag``,
    ``sum_variance_factor``, ``sigma_pix``.
    """
    with archive.atomic_path(MEAN_DIR, f"{plate:04d}.h5") as tmp, h5py.File(tmp, "w") as h5:
        for key, value in attributes.items():
            h5.attrs[key] = value
        for mean, sep, flag in means:
            group = h5.create_group(f"{mean.exposure}/{mean.camera}")
            arrays: dict[str, npt.NDArray[Any]] = {
                "wavelength": mean.wavelength,
                "flux": mean.flux.astype(np.float32),
                "variance": mean.variance.astype(np.float32),
                "scatter_variance": mean.scatter_variance.astype(np.float32),
                "n_fibres": mean.n_fibres.astype(np.int16),
                "fiberid": mean.fiberid,
                "accepted": mean.accepted,
            }
            if sep is not None:
                arrays["continuum"] = sep.continuum.astype(np.float32)
                arrays["smooth_continuum"] = sep.smooth_continuum.astype(np.float32)
                arrays["lines"] = sep.lines.astype(np.float32)
            for name, values in arrays.items():
                group.create_dataset(name, data=values, compression="gzip", compression_opts=1)
            group.attrs["rejected"] = "; ".join(
                f"{f}: {r}" for f, r in zip(mean.fiberid, mean.reasons, strict=True) if r
            )
            group.attrs["separation_flag"] = flag or ""
            group.attrs["sum_variance_factor"] = mean.sum_variance_factor
            group.attrs["sigma_pix"] = mean.sigma_pix


def read_mean(path: str, exposure: int, camera: str) -> dict[str, Any]:
    """Read one mean spectrum (and its separation) written by :func:`write_means`."""
    with h5py.File(path, "r") as h5:
        group = h5[f"{exposure}/{camera}"]
        out: dict[str, Any] = {name: group[name][()] for name in group}
        out.update({k: group.attrs[k] for k in group.attrs})
    return out


def write_airglow(
    archive: Archive, plate: int, rows: list[dict[str, Any]], attributes: dict[str, str]
) -> None:
    """Write a plate's fitted line fluxes to ``airglow/{plate}.parquet`` atomically."""
    names = [
        "CAMERA",
        "IMG",
        "WAVE_NM",
        "FLUX",
        "FLUX_ERR",
        "SIGMA_NM",
        "SHIFT_NM",
        "REGION_LO",
        "REGION_HI",
        "CHI2_RED",
        "FLAG",
    ]
    data = {n: [r[n] for r in rows] for n in names}
    types = {"CAMERA": pa.string(), "IMG": pa.int64(), "FLAG": pa.string()}
    table = pa.table(
        {n: pa.array(data[n], type=types.get(n, pa.float64())) for n in names}
    ).append_column("PLATE", pa.array([plate] * len(rows), type=pa.int64()))
    table = table.replace_schema_metadata({k.encode(): v.encode() for k, v in attributes.items()})
    with archive.atomic_path(AIRGLOW_DIR, f"{plate:04d}.parquet") as tmp:
        pq.write_table(table, tmp, compression="zstd")
