"""Echelle products: wavelength solutions (TRIPLE), 1-D spectra, 2-D frames, quicklooks.

* TRIPLE: primary header with the quality figures per fibre, table ``SOLUTION`` (one row per
  fibre: Legendre coefficients, their covariance and the domains of the correction to the
  grating equation), table ``LINES`` (the matched arc lines: column and its 1σ, wavelength,
  residual, the 1σ the fit gave the line), table ``ORDERS`` (per fibre and order: lines
  used, residual RMS and the expected RMS error of the solution [m/s]) and table
  ``ARCLINES`` (every line detected in the arcs, matched or not: fibre, order, column and its
  1σ; the simultaneous-drift correction pairs science lines with these).
* 1-D spectrum: table ``SPECTRUM``, one row per (order, fibre): ``WAVELENGTH`` [Å, vacuum],
  ``FLUX`` and ``UNCERTAINTY`` [e⁻ per column; ``TUNIT`` ``ct``, see :data:`ELECTRON_UNIT`],
  ``BOXFLUX`` [e⁻], ``BLAZE`` (the master flat's
  extracted spectrum scaled to a maximum of 1), ``MASK`` (bits 1 saturated, 2 bad pixel,
  4 cosmic ray, 8 no data), ``NORMFLUX`` and ``NORMUNCERTAINTY`` (flux / blaze, scaled to a median
  of 1 per order).
* 2-D: the processed frame (``SCI`` [e⁻], ``ERR``, ``MASK`` with the cosmic rays found).

Every product's primary header carries provenance: software version, the raw file with its
SHA-256, and each calibration used.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from numpy.typing import NDArray

from photonpipe import __version__
from photonpipe.echelle import instrument
from photonpipe.echelle.extract import ExtractedSpectra
from photonpipe.echelle.wavecal import OrderQuality, WavelengthSolution
from photonpipe.errors import InputFileError
from photonpipe.platform.plots import new_figure

#: FITS unit string of photo-electron counts (gain applied). The FITS standard has no electron
#: unit (astropy's ``fits`` format refuses ``electron``), so products write the count ``ct`` and
#: say "photo-electrons" in the card's comment.
ELECTRON_UNIT = "ct"
ELECTRON_COMMENT = "photo-electrons (gain applied)"


def sha256(path: str | Path) -> str:
    """SHA-256 of a file's contents (hex)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def provenance_header(
    raw: Path | None, calibrations: dict[str, str], inputs: list[str] | None = None
) -> fits.Header:
    """Header cards recording the software, the raw file and the calibrations used."""
    header = fits.Header()
    header["SOFTWARE"] = (f"photonpipe {__version__}", "software that made this file")
    if raw is not None:
        header["RAWFILE"] = (raw.name, "raw frame")
        header["RAWSHA"] = (sha256(raw)[:32], "raw frame SHA-256 (first 32 hex)")
    for key, value in calibrations.items():
        header[key] = (Path(value).name, "calibration used")
    for number, name in enumerate(inputs or [], start=1):
        header[f"INPUT{number:03d}"] = (name, "input frame")
    if inputs:
        header["NINPUTS"] = (len(inputs), "frames stacked")
    return header


def write_triple(path: Path, solutions: dict[int, WavelengthSolution], header: fits.Header) -> None:
    """Write wavelength solutions of all fibres (the TRIPLE product)."""
    header = header.copy()
    fibres = sorted(solutions)
    for fibre in fibres:
        s = solutions[fibre]
        header[f"NLINES{fibre}"] = (s.n_lines, f"fibre {fibre}: arc lines used")
        header[f"RMSA{fibre}"] = (s.rms_angstrom, f"fibre {fibre}: residual RMS [Angstrom]")
        header[f"RMSMS{fibre}"] = (s.rms_ms, f"fibre {fibre}: residual RMS [m/s]")
        header[f"PREC{fibre}"] = (s.precision_ms, f"fibre {fibre}: expected RMS error [m/s]")
        header[f"MSCALE{fibre}"] = (s.model_scale, f"fibre {fibre}: held-out error scale")
    first = solutions[fibres[0]]
    header["SPECSITE"] = (first.spectrograph.site, "spectrograph model site")
    header["SPECMJD"] = (first.spectrograph.mjd, "spectrograph model valid from [MJD]")
    shape = first.coeffs.shape
    solution = fits.BinTableHDU.from_columns(
        [
            fits.Column("FIBRE", "J", array=fibres),
            fits.Column(
                "COEFFS",
                f"{first.coeffs.size}D",
                array=np.array([solutions[f].coeffs.ravel() for f in fibres]),
            ),
            fits.Column("XMIN", "D", array=[solutions[f].x_domain[0] for f in fibres]),
            fits.Column("XMAX", "D", array=[solutions[f].x_domain[1] for f in fibres]),
            fits.Column("MMIN", "D", array=[solutions[f].m_domain[0] for f in fibres]),
            fits.Column("MMAX", "D", array=[solutions[f].m_domain[1] for f in fibres]),
            fits.Column(
                "COVAR",
                f"{first.coeffs.size**2}D",
                unit="Angstrom2",
                array=np.array([_covariance(solutions[f]).ravel() for f in fibres]),
            ),
        ],
        name="SOLUTION",
    )
    solution.header["XDEGREE"] = shape[0] - 1
    solution.header["MDEGREE"] = shape[1] - 1
    lines = fits.BinTableHDU.from_columns(
        [
            fits.Column(
                "FIBRE",
                "J",
                array=np.concatenate([np.full(solutions[f].n_lines, f) for f in fibres]),
            ),
            fits.Column(
                "ORDER",
                "J",
                array=np.concatenate([solutions[f].lines["order"] for f in fibres]).astype(int),
            ),
            fits.Column(
                "X",
                "D",
                unit="pixel",
                array=np.concatenate([solutions[f].lines["x"] for f in fibres]),
            ),
            fits.Column(
                "WAVELENGTH",
                "D",
                unit="Angstrom",
                array=np.concatenate([solutions[f].lines["wavelength"] for f in fibres]),
            ),
            fits.Column(
                "RESIDUAL",
                "D",
                unit="Angstrom",
                array=np.concatenate([solutions[f].lines["residual"] for f in fibres]),
            ),
            fits.Column(
                "XERR",
                "D",
                unit="pixel",
                array=np.concatenate([_line_column(solutions[f], "x_error") for f in fibres]),
            ),
            fits.Column(
                "SIGMA",
                "D",
                unit="Angstrom",
                array=np.concatenate([_line_column(solutions[f], "sigma") for f in fibres]),
            ),
        ],
        name="LINES",
    )
    rows = [(f, o, q) for f in fibres for o, q in sorted(solutions[f].orders.items())]
    orders = fits.BinTableHDU.from_columns(
        [
            fits.Column("FIBRE", "J", array=[f for f, _, _ in rows]),
            fits.Column("ORDER", "J", array=[o for _, o, _ in rows]),
            fits.Column("NLINES", "J", array=[q.n_lines for _, _, q in rows]),
            fits.Column("RMS", "D", unit="m/s", array=[q.rms_ms for _, _, q in rows]),
            fits.Column("PRECISION", "D", unit="m/s", array=[q.precision_ms for _, _, q in rows]),
        ],
        name="ORDERS",
    )
    detected = [f for f in fibres if solutions[f].arc_lines]
    arc_lines = fits.BinTableHDU.from_columns(
        [
            fits.Column(
                "FIBRE",
                "J",
                array=np.concatenate(
                    [np.full(solutions[f].arc_lines["x"].size, f) for f in detected]
                    or [np.empty(0)]
                ).astype(int),
            ),
            *(
                fits.Column(
                    name,
                    "J" if key == "order" else "D",
                    unit=None if key == "order" else "pixel",
                    array=np.concatenate(
                        [solutions[f].arc_lines[key] for f in detected] or [np.empty(0)]
                    ).astype(int if key == "order" else float),
                )
                for name, key in (("ORDER", "order"), ("X", "x"), ("XERR", "x_error"))
            ),
        ],
        name="ARCLINES",
    )
    fits.HDUList([fits.PrimaryHDU(header=header), solution, lines, orders, arc_lines]).writeto(path)


def _covariance(solution: WavelengthSolution) -> NDArray[np.float64]:
    size = solution.coeffs.size
    if solution.covariance is None:
        return np.full((size, size), np.nan)
    return np.asarray(solution.covariance, float)


def _line_column(solution: WavelengthSolution, name: str) -> NDArray[np.float64]:
    values = solution.lines.get(name)
    return np.full(solution.n_lines, np.nan) if values is None else np.asarray(values, float)


def read_triple(path: str | Path) -> dict[int, WavelengthSolution]:
    """Read the wavelength solutions of a TRIPLE product."""
    try:
        with fits.open(path) as hdul:
            header = hdul[0].header
            table = hdul["SOLUTION"].data
            shape = (
                int(hdul["SOLUTION"].header["XDEGREE"]) + 1,
                int(hdul["SOLUTION"].header["MDEGREE"]) + 1,
            )
            lines = hdul["LINES"].data
            spectrograph = instrument.spectrograph(
                str(header["SPECSITE"]), float(header["SPECMJD"])
            )
            names = set(table.columns.names)
            line_names = set(lines.columns.names)
            per_order = hdul["ORDERS"].data if "ORDERS" in hdul else None
            detected = hdul["ARCLINES"].data if "ARCLINES" in hdul else None
            out = {}
            for row in table:
                fibre = int(row["FIBRE"])
                sel = lines["FIBRE"] == fibre
                covariance = (
                    np.array(row["COVAR"], float).reshape(shape[0] * shape[1], -1)
                    if "COVAR" in names
                    else None
                )
                if covariance is not None and not np.isfinite(covariance).all():
                    covariance = None
                extra = {
                    key: np.array(lines[column][sel], float)
                    for key, column in (("x_error", "XERR"), ("sigma", "SIGMA"))
                    if column in line_names
                }
                quality = {}
                if per_order is not None:
                    for q in per_order[per_order["FIBRE"] == fibre]:
                        quality[int(q["ORDER"])] = OrderQuality(
                            int(q["NLINES"]), float(q["RMS"]), float(q["PRECISION"])
                        )
                out[fibre] = WavelengthSolution(
                    spectrograph,
                    fibre,
                    np.array(row["COEFFS"], float).reshape(shape),
                    (float(row["XMIN"]), float(row["XMAX"])),
                    (float(row["MMIN"]), float(row["MMAX"])),
                    n_lines=int(header[f"NLINES{fibre}"]),
                    rms_angstrom=float(header[f"RMSA{fibre}"]),
                    rms_ms=float(header[f"RMSMS{fibre}"]),
                    precision_ms=float(header[f"PREC{fibre}"]),
                    lines={
                        "x": np.array(lines["X"][sel]),
                        "order": np.array(lines["ORDER"][sel]),
                        "wavelength": np.array(lines["WAVELENGTH"][sel]),
                        "residual": np.array(lines["RESIDUAL"][sel]),
                        **extra,
                    },
                    covariance=covariance,
                    orders=quality,
                    model_scale=float(header.get(f"MSCALE{fibre}", 1.0)),
                    arc_lines={}
                    if detected is None
                    else {
                        key: np.array(detected[column][detected["FIBRE"] == fibre], float)
                        for key, column in (("x", "X"), ("x_error", "XERR"), ("order", "ORDER"))
                    },
                )
            return out
    except (OSError, KeyError, ValueError) as exc:
        raise InputFileError(path, f"unreadable wavelength solution ({exc})") from None


def spectrum_table(
    optimal: ExtractedSpectra,
    box: ExtractedSpectra,
    blaze: dict[tuple[int, int], NDArray[np.float64]],
    solutions: dict[int, WavelengthSolution],
    shifts: dict[int, float] | None = None,
) -> fits.BinTableHDU:
    """Build the SPECTRUM table of a 1-D product (one row per order and fibre).

    ``shifts`` [px] by fibre: the spectrograph's drift since the wavelength solutions were made
    (:mod:`photonpipe.echelle.drift`); a fibre's WAVELENGTH is then λ(x − shift).
    """
    nx = optimal.x.size
    shifts = shifts or {}
    rows: dict[str, list[Any]] = {
        k: []
        for k in (
            "ORDER",
            "FIBRE",
            "WAVELENGTH",
            "FLUX",
            "UNCERTAINTY",
            "BOXFLUX",
            "BLAZE",
            "MASK",
            "NORMFLUX",
            "NORMUNCERTAINTY",
        )
    }
    for i, (order, fibre) in enumerate(optimal.keys):
        flux = optimal.flux[i]
        error = np.sqrt(optimal.variance[i])
        shape = blaze[(order, fibre)]
        good = (optimal.mask[i] == 0) & (shape > 0.05)
        ratio = np.where(shape > 0.05, flux / np.where(shape > 0, shape, 1.0), 0.0)
        scale = float(np.median(ratio[good])) if good.any() else 1.0
        scale = scale if scale > 0 else 1.0
        rows["ORDER"].append(order)
        rows["FIBRE"].append(fibre)
        rows["WAVELENGTH"].append(solutions[fibre](optimal.x - shifts.get(fibre, 0.0), order))
        rows["FLUX"].append(flux)
        rows["UNCERTAINTY"].append(error)
        rows["BOXFLUX"].append(box.flux[box.index(order, fibre)])
        rows["BLAZE"].append(shape)
        rows["MASK"].append(optimal.mask[i] | np.where(shape > 0.05, 0, 8).astype(np.uint8))
        rows["NORMFLUX"].append(ratio / scale)
        rows["NORMUNCERTAINTY"].append(
            np.where(shape > 0.05, error / np.where(shape > 0, shape, 1.0), 0.0) / scale
        )
    units = {
        "WAVELENGTH": "Angstrom",
        "FLUX": ELECTRON_UNIT,
        "UNCERTAINTY": ELECTRON_UNIT,
        "BOXFLUX": ELECTRON_UNIT,
    }
    columns = [
        fits.Column("ORDER", "J", array=np.array(rows["ORDER"])),
        fits.Column("FIBRE", "J", array=np.array(rows["FIBRE"])),
    ]
    for name in (
        "WAVELENGTH",
        "FLUX",
        "UNCERTAINTY",
        "BOXFLUX",
        "BLAZE",
        "NORMFLUX",
        "NORMUNCERTAINTY",
    ):
        columns.append(
            fits.Column(name, f"{nx}D", unit=units.get(name), array=np.array(rows[name]))
        )
    columns.append(fits.Column("MASK", f"{nx}B", array=np.array(rows["MASK"])))
    table = fits.BinTableHDU.from_columns(columns, name="SPECTRUM")
    for number, column in enumerate(table.columns, start=1):
        if column.unit == ELECTRON_UNIT:
            table.header.comments[f"TUNIT{number}"] = ELECTRON_COMMENT
    return table


def quicklook(
    path: Path,
    title: str,
    table: fits.BinTableHDU,
    solutions: dict[int, WavelengthSolution],
    science_fibre: int,
) -> None:
    """Quicklook PNG: normalised extracted orders of the science fibre, and the arc residuals."""
    figure = new_figure(11.0, 7.0)
    top = figure.add_subplot(2, 1, 1)
    data = table.data
    for row in data[data["FIBRE"] == science_fibre]:
        # Every 4th good pixel: enough for a quicklook, and much faster to draw.
        good = np.flatnonzero(row["MASK"] == 0)[::4]
        top.plot(row["WAVELENGTH"][good], row["NORMFLUX"][good], lw=0.3)
    top.set_xlabel("vacuum wavelength [Å]")
    top.set_ylabel("flux / blaze (normalised)")
    top.set_ylim(0.0, 1.6)
    top.set_title(title)
    bottom = figure.add_subplot(2, 1, 2)
    for fibre, solution in sorted(solutions.items()):
        residual_ms = solution.lines["residual"] / solution.lines["wavelength"] * 299_792_458.0
        bottom.plot(
            solution.lines["wavelength"],
            residual_ms,
            ".",
            ms=3,
            label=(
                f"fibre {fibre}: {solution.n_lines} lines, RMS "
                f"{solution.rms_angstrom * 1e3:.2f} mÅ = {solution.rms_ms:.1f} m/s"
            ),
        )
    bottom.axhline(0.0, color="k", lw=0.5)
    bottom.set_xlabel("vacuum wavelength [Å]")
    bottom.set_ylabel("arc line residual [m/s]")
    bottom.legend(fontsize=8)
    figure.savefig(path, dpi=90, format="png")
