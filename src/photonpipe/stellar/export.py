"""Export a session's line measurements: ECSV, FITS and an AASTeX deluxetable.

Columns (one row per measurement): ``wavelength`` [Å], ``species``, ``element``, ``expot``
[eV], ``loggf``, ``ew`` and ``ew_uncertainty`` [mÅ], ``ew_noise_uncertainty`` [mÅ],
``reduced_ew``, ``is_limit``, ``upper_limit`` [mÅ], ``acceptable``, ``profile``, ``fwhm`` [Å],
``method``, ``line_hash``, ``comments`` (joined with "; "). Every file carries provenance in its
metadata (photonpipe version, session file, input spectra with SHA-256, RV, physics).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import astropy.units as u
from astropy.table import Table

from photonpipe import __version__
from photonpipe.platform.archive import atomic_output
from photonpipe.stellar.linelist import Line
from photonpipe.stellar.session import Session, SessionError

FORMATS = ("ecsv", "fits", "tex")


def measurements_table(session: Session, acceptable_only: bool = False) -> Table:
    """Return the session's EW measurements as an astropy Table (see the module doc).

    Parameters
    ----------
    session : Session
        The session.
    acceptable_only : bool
        Leave out measurements flagged not acceptable.
    """
    rows: list[dict[str, Any]] = []
    for m in session.measurements("ew"):
        if acceptable_only and not m["acceptable"]:
            continue
        first = session.state["spectral_lines"].get(m["line_hashes"][0], {})
        line = Line.from_dict(first) if first else None
        rows.append(
            {
                "wavelength": m["wavelength"],
                "species": line.species if line else math.nan,
                "element": line.element if line else "",
                "expot": line.expot if line else math.nan,
                "loggf": line.loggf if line else math.nan,
                "ew": m["ew"],
                "ew_uncertainty": m["ew_uncertainty"],
                "ew_noise_uncertainty": m["ew_noise_uncertainty"],
                "reduced_ew": m["reduced_ew"],
                "is_limit": bool(m["is_limit"]),
                "upper_limit": m["upper_limit"],
                "acceptable": bool(m["acceptable"]),
                "profile": m["profile"],
                "fwhm": m["fwhm"],
                "method": m["method"],
                "line_hash": m["line_hash"],
                "comments": "; ".join(m["comments"]),
            }
        )
    names = (
        "wavelength", "species", "element", "expot", "loggf", "ew", "ew_uncertainty",
        "ew_noise_uncertainty", "reduced_ew", "is_limit", "upper_limit", "acceptable", "profile",
        "fwhm", "method", "line_hash", "comments",
    )  # fmt: skip
    table = Table(rows=[[r[n] for n in names] for r in rows] or None, names=names)
    if not rows:
        table = Table(
            names=names, dtype=[float] * 9 + [bool, float, bool, str, float, str, str, str]
        )
    for name, unit in (
        ("wavelength", u.AA), ("expot", u.eV), ("ew", u.mAA), ("ew_uncertainty", u.mAA),
        ("ew_noise_uncertainty", u.mAA), ("upper_limit", u.mAA), ("fwhm", u.AA),
    ):  # fmt: skip
        table[name].unit = unit
    table.meta.update(provenance(session))
    return table


def provenance(session: Session) -> dict[str, Any]:
    """Return the provenance written with every export (plain values)."""
    state = session.state
    rv = state["rv"]
    physics = state["physics"]
    return {
        "software": f"photonpipe {__version__}",
        "session": str(session.path) if session.path else "",
        "input_spectra": [
            f"{name} sha256:{state['input_spectra_sha256'].get(name, '')}"
            for name in state["input_spectra_filenames"]
        ],
        "rv_applied_kms": float(rv.get("rv_applied", 0.0)),
        "rv_template": rv.get("template_filename", ""),
        "model_atmospheres": str(physics.get("model_atmospheres", {}).get("name", "")),
        "radiative_transfer": str(physics.get("radiative_transfer", {}).get("code", "")),
    }


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
}  # fmt: skip


def latex_escape(text: str) -> str:
    """Escape LaTeX special characters in plain text."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def _footnote_mark(index: int) -> str:
    letters = "abcdefghijklmnopqrstuvwxyz"
    mark = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        mark = letters[rest] + mark
    return mark


def deluxetable(table: Table, caption: str = "Equivalent widths", label: str = "tab:ew") -> str:
    r"""Format measurements as an AASTeX ``deluxetable`` with comments as footnotes.

    Limits are written as ``<`` upper limit with no uncertainty; each distinct comment (the
    ``comments`` column split at "; ") gets a footnote letter (``\tablenotemark``) and a
    ``\tablenotetext``.

    Parameters
    ----------
    table : astropy.table.Table
        From :func:`measurements_table`.
    caption : str
        Table caption.
    label : str
        LaTeX label.

    Returns
    -------
    str
        The LaTeX source.
    """
    notes: dict[str, str] = {}
    lines = [
        r"\begin{deluxetable}{lcrrrr}",
        r"\tablecaption{" + latex_escape(caption) + r"\label{" + label + "}}",
        (
            r"\tablehead{\colhead{$\lambda$} & \colhead{Species} & \colhead{$\chi$} & "
            r"\colhead{$\log gf$} & \colhead{EW} & \colhead{$\sigma$(EW)} \\ "
            r"\colhead{(\AA)} & & \colhead{(eV)} & & \colhead{(m\AA)} & \colhead{(m\AA)}}"
        ),
        r"\startdata",
    ]
    body = []
    for row in table:
        if row["is_limit"]:
            ew, err = f"$<${row['upper_limit']:.1f}", r"\nodata"
        else:
            ew, err = f"{row['ew']:.1f}", f"{row['ew_uncertainty']:.1f}"
        marks = []
        for text in str(row["comments"]).split("; ") if row["comments"] else []:
            if text not in notes:
                notes[text] = _footnote_mark(len(notes))
            marks.append(notes[text])
        mark = r"\tablenotemark{" + ",".join(marks) + "}" if marks else ""
        body.append(
            f"{row['wavelength']:.3f} & {latex_escape(str(row['element']))} & "
            f"{row['expot']:.2f} & {row['loggf']:.2f} & {ew}{mark} & {err}"
        )
    lines.append(" \\\\\n".join(body))
    lines.append(r"\enddata")
    lines.extend(
        r"\tablenotetext{" + mark + "}{" + latex_escape(text) + "}" for text, mark in notes.items()
    )
    lines.append(r"\end{deluxetable}")
    return "\n".join(lines) + "\n"


def export_measurements(
    session: Session,
    path: str | os.PathLike[str],
    acceptable_only: bool = False,
) -> Path:
    """Write the session's measurements to ``.ecsv``, ``.fits`` or ``.tex`` (atomically).

    Parameters
    ----------
    session : Session
        The session.
    path : str or PathLike
        Destination; the suffix chooses the format.
    acceptable_only : bool
        Only acceptable measurements.

    Returns
    -------
    Path
        The file written.
    """
    destination = Path(path)
    suffix = destination.suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        raise SessionError(f"{destination}: unknown export format (use {', '.join(FORMATS)})")
    table = measurements_table(session, acceptable_only)
    with atomic_output(destination) as temp:
        if suffix == "ecsv":
            table.write(temp, format="ascii.ecsv", overwrite=True)
        elif suffix == "fits":
            fits_table = table.copy()
            # FITS strings are ASCII
            fits_table["comments"] = [
                c.encode("ascii", "replace").decode() for c in fits_table["comments"]
            ]
            fits_table.meta = {
                k[:8].upper().replace("_", ""): (", ".join(v) if isinstance(v, list) else v)
                for k, v in table.meta.items()
            }
            fits_table.write(temp, format="fits", overwrite=True)
        else:
            temp.write_text(deluxetable(table))
    return destination


ABUNDANCE_COLUMNS = (
    "species", "element", "ion", "n", "log_eps", "std", "error", "parameter_error",
    "total_error", "x_h", "x_fe", "upper_limit", "solar", "comments",
)  # fmt: skip


def abundances_table(session: Session) -> Table:
    """Return the session's per-species abundances as an astropy Table.

    Columns: ``species`` (name, e.g. "Fe I"), ``element``, ``ion`` (1 = neutral), ``n``,
    ``log_eps`` (mean log ε), ``std`` (line scatter), ``error`` (of the mean, from the scatter
    or the EW errors), ``parameter_error`` (from the stellar-parameter uncertainties),
    ``total_error``, ``x_h`` and ``x_fe`` ([X/H], [X/Fe]), ``upper_limit`` (log ε, for species
    with only limits), ``solar`` (Asplund et al. 2009), ``comments``; all abundances in dex.
    The metadata carry the provenance, the stellar parameters and the solar scale.

    Raises
    ------
    SessionError
        The session has no abundances yet.
    """
    section = session.state.get("abundances") or {}
    if not section.get("species"):
        raise SessionError(
            f"{session.path or 'session'}: no abundances yet (run photonpipe session abundances)"
        )
    rows = []
    for name, entry in section["species"].items():
        comments = []
        if entry["n"] == 0:
            comments.append("upper limit only (from the EW upper limits, 3 sigma)")
        elif entry["n"] == 1:
            comments.append("one line: error from its EW uncertainty")
        if entry["species"] - int(entry["species"]) > 0.05 and entry["element"] != "Fe":
            comments.append("[X/Fe] relative to Fe II")
        rows.append(
            [
                name, entry["element"], round((entry["species"] - int(entry["species"])) * 10) + 1,
                entry["n"], entry["mean"], entry["std"], entry["error"],
                entry.get("parameter_error", math.nan),
                entry.get("total_error", entry["error"]), entry["x_h"], entry["x_fe"],
                entry.get("upper_limit", math.nan), entry["solar"], "; ".join(comments),
            ]
        )  # fmt: skip
    table = Table(rows=rows, names=ABUNDANCE_COLUMNS)
    for name in ("log_eps", "std", "error", "parameter_error", "total_error", "x_h", "x_fe",
                 "upper_limit", "solar"):  # fmt: skip
        table[name].unit = u.dex
    table.meta.update(provenance(session))
    params = section["parameters"]
    table.meta["stellar_parameters"] = {
        k: float(v) for k, v in {**params, **{f"{k}_error": v for k, v in
                                             section["parameter_uncertainties"].items()}}.items()
    }  # fmt: skip
    table.meta["stellar_parameters_source"] = section["parameters_source"]
    table.meta["solar_reference"] = section["solar_reference"]
    table.meta["x_fe_reference"] = section["x_fe_reference"]
    grid = section["physics"]["model_atmospheres"]
    code = section["physics"]["radiative_transfer"]
    table.meta["model_atmospheres_sha256"] = grid["grid_sha256"]
    table.meta["model_atmospheres_reference"] = grid["ads_reference"]
    table.meta["radiative_transfer_version"] = f"{code['code']} {code['version']}"
    return table


def abundance_deluxetable(
    table: Table, caption: str = "Abundances", label: str = "tab:abund"
) -> str:
    r"""Format per-species abundances as an AASTeX ``deluxetable`` with comments as footnotes.

    Parameters
    ----------
    table : astropy.table.Table
        From :func:`abundances_table`.
    caption, label : str
        Caption and LaTeX label.
    """
    notes: dict[str, str] = {}
    lines = [
        r"\begin{deluxetable}{lrrrrrr}",
        r"\tablecaption{" + latex_escape(caption) + r"\label{" + label + "}}",
        (
            r"\tablehead{\colhead{Species} & \colhead{$N$} & \colhead{$\log\epsilon$} & "
            r"\colhead{$\sigma$} & \colhead{[X/H]} & \colhead{[X/Fe]} & "
            r"\colhead{$\sigma_{\rm tot}$}}"
        ),
        r"\startdata",
    ]

    def number(value: float, digits: int = 2) -> str:
        return r"\nodata" if not math.isfinite(value) else f"{value:.{digits}f}"

    body = []
    for row in table:
        marks = []
        for text in str(row["comments"]).split("; ") if row["comments"] else []:
            if text not in notes:
                notes[text] = _footnote_mark(len(notes))
            marks.append(notes[text])
        mark = r"\tablenotemark{" + ",".join(marks) + "}" if marks else ""
        if row["n"] == 0:
            limit = row["upper_limit"]
            solar = row["solar"]
            body.append(
                f"{latex_escape(str(row['species']))}{mark} & 0 & $<${limit:.2f} & \\nodata & "
                f"$<${limit - solar:.2f} & \\nodata & \\nodata"
            )
            continue
        body.append(
            f"{latex_escape(str(row['species']))}{mark} & {row['n']} & {row['log_eps']:.2f} & "
            f"{number(row['std'])} & {number(row['x_h'])} & {number(row['x_fe'])} & "
            f"{number(row['total_error'])}"
        )
    lines.append(" \\\\\n".join(body))
    lines.append(r"\enddata")
    lines.extend(
        r"\tablenotetext{" + mark + "}{" + latex_escape(text) + "}" for text, mark in notes.items()
    )
    lines.append(r"\end{deluxetable}")
    return "\n".join(lines) + "\n"


def export_abundances(session: Session, path: str | os.PathLike[str]) -> Path:
    """Write the per-species abundances to ``.ecsv`` or ``.tex`` (atomically).

    Parameters
    ----------
    session : Session
        A session with abundances.
    path : str or PathLike
        Destination; the suffix chooses the format.

    Returns
    -------
    Path
        The file written.
    """
    destination = Path(path)
    suffix = destination.suffix.lower().lstrip(".")
    if suffix not in ("ecsv", "tex"):
        raise SessionError(f"{destination}: unknown abundance table format (use ecsv or tex)")
    table = abundances_table(session)
    with atomic_output(destination) as temp:
        if suffix == "ecsv":
            table.write(temp, format="ascii.ecsv", overwrite=True)
        else:
            temp.write_text(abundance_deluxetable(table))
    return destination
