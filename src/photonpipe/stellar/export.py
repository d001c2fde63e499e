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
