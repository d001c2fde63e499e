"""Line lists: atomic data of spectral lines, their md5 identity, and their file formats.

Each :class:`Line` keeps all the atomic data radiative-transfer codes use: wavelength [Å],
species code (MOOG convention: Z + ionisation/10, e.g. 26.1 = Fe II; molecules as MOOG writes
them, e.g. 106.0 = CH), excitation potential of the lower level [eV], log gf, damping constants
(van der Waals, Stark, radiative; in the convention of the source list), lower and upper level
designations and multiplet.

**Identity.** A line's hash is the md5 (hex) of its atomic data under this canonical formatting,
fields joined with ``|``::

    wavelength  "%.4f"   (Å)
    species     "%.5f"
    expot       "%.4f"   (eV)
    loggf       "%.4f"
    damp_vdw    "%.4f"   ("nan" when absent)
    damp_stark  "%.4f"   ("nan" when absent)
    damp_rad    "%.4f"   ("nan" when absent)
    lower_level text, stripped, runs of blanks collapsed to one
    upper_level same
    multiplet   same

with −0.0 written as 0.0000. Lines with the same hash are the same line: duplicates collapse.
A reference equivalent width read from a MOOG list is not atomic data and not in the hash. A
blend group is identified by the md5 of its members' hashes, sorted, joined with ``+``.

Formats: MOOG (fixed 10-character columns, as in shared/data/stellar; free-format lines are
accepted too), VALD "extract stellar" (short and long), and tables (ECSV, FITS) with the column
names of :data:`COLUMNS`.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.table import Table
from astropy.utils.exceptions import AstropyWarning

from photonpipe.errors import InputFileError
from photonpipe.platform.archive import atomic_output

ELEMENTS = [
    "H",
    "He",
    "Li",
    "Be",
    "B",
    "C",
    "N",
    "O",
    "F",
    "Ne",
    "Na",
    "Mg",
    "Al",
    "Si",
    "P",
    "S",
    "Cl",
    "Ar",
    "K",
    "Ca",
    "Sc",
    "Ti",
    "V",
    "Cr",
    "Mn",
    "Fe",
    "Co",
    "Ni",
    "Cu",
    "Zn",
    "Ga",
    "Ge",
    "As",
    "Se",
    "Br",
    "Kr",
    "Rb",
    "Sr",
    "Y",
    "Zr",
    "Nb",
    "Mo",
    "Tc",
    "Ru",
    "Rh",
    "Pd",
    "Ag",
    "Cd",
    "In",
    "Sn",
    "Sb",
    "Te",
    "I",
    "Xe",
    "Cs",
    "Ba",
    "La",
    "Ce",
    "Pr",
    "Nd",
    "Pm",
    "Sm",
    "Eu",
    "Gd",
    "Tb",
    "Dy",
    "Ho",
    "Er",
    "Tm",
    "Yb",
    "Lu",
    "Hf",
    "Ta",
    "W",
    "Re",
    "Os",
    "Ir",
    "Pt",
    "Au",
    "Hg",
    "Tl",
    "Pb",
    "Bi",
    "Po",
    "At",
    "Rn",
    "Fr",
    "Ra",
    "Ac",
    "Th",
    "Pa",
    "U",
]

#: Table column names (ECSV/FITS), in order.
COLUMNS = (
    "wavelength", "species", "expot", "loggf", "damp_vdw", "damp_stark", "damp_rad",
    "lower_level", "upper_level", "multiplet", "reference_ew",
)  # fmt: skip


def _fmt(value: float) -> str:
    if value is None or not math.isfinite(value):
        return "nan"
    text = f"{value:.4f}"
    return "0.0000" if text == "-0.0000" else text


def _text(value: str) -> str:
    return " ".join(str(value).split())


@dataclass(frozen=True)
class Line:
    """One spectral line and its atomic data.

    Attributes
    ----------
    wavelength : float
        Wavelength [Å] (air or vacuum as in the source list).
    species : float
        Species code (Z + ionisation/10; MOOG molecular codes allowed).
    expot : float
        Lower-level excitation potential [eV].
    loggf : float
        log10 of the oscillator strength times the lower-level statistical weight.
    damp_vdw, damp_stark, damp_rad : float
        Damping constants (NaN when absent) in the convention of the source list.
    lower_level, upper_level, multiplet : str
        Level designations and multiplet ('' when absent).
    reference_ew : float
        Equivalent width from the source list [mÅ] (NaN when absent; not atomic data).
    """

    wavelength: float
    species: float
    expot: float
    loggf: float
    damp_vdw: float = math.nan
    damp_stark: float = math.nan
    damp_rad: float = math.nan
    lower_level: str = ""
    upper_level: str = ""
    multiplet: str = ""
    reference_ew: float = math.nan

    def canonical(self) -> str:
        """Return the canonical text of the atomic data that the hash is made of."""
        return "|".join(
            [
                f"{self.wavelength:.4f}",
                f"{self.species:.5f}",
                _fmt(self.expot),
                _fmt(self.loggf),
                _fmt(self.damp_vdw),
                _fmt(self.damp_stark),
                _fmt(self.damp_rad),
                _text(self.lower_level),
                _text(self.upper_level),
                _text(self.multiplet),
            ]
        )

    @property
    def hash(self) -> str:
        """md5 (32 hex digits) of :meth:`canonical`."""
        return hashlib.md5(self.canonical().encode("utf-8"), usedforsecurity=False).hexdigest()

    @property
    def element(self) -> str:
        """Element symbol and ionisation stage in Roman numerals, e.g. ``"Fe II"``."""
        z = int(self.species)
        ion = round((self.species - z) * 10)
        if not 1 <= z <= len(ELEMENTS) or ion > 8:
            return f"{self.species:g}"
        roman = ("I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX")[ion]
        return f"{ELEMENTS[z - 1]} {roman}"

    def to_dict(self) -> dict[str, Any]:
        """Return the line as a plain dict (for ``session.pkl``)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Line:
        """Build a line from :meth:`to_dict` output (unknown keys ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def group_hash(hashes: Iterable[str]) -> str:
    """Return the identity of a blend group: md5 of its members' hashes, sorted, joined by '+'.

    Parameters
    ----------
    hashes : iterable of str
        Member line hashes.
    """
    members = sorted(set(hashes))
    if len(members) == 1:
        return members[0]
    return hashlib.md5("+".join(members).encode(), usedforsecurity=False).hexdigest()


class LineList:
    """An ordered collection of unique lines (duplicates by hash collapse to the first).

    Parameters
    ----------
    lines : iterable of Line
        Lines in any order; kept in wavelength order.
    """

    def __init__(self, lines: Iterable[Line] = ()) -> None:
        unique: dict[str, Line] = {}
        for line in lines:
            unique.setdefault(line.hash, line)
        self._lines = sorted(unique.values(), key=lambda ln: (ln.wavelength, ln.species))

    def __len__(self) -> int:
        return len(self._lines)

    def __iter__(self) -> Iterator[Line]:
        return iter(self._lines)

    def __getitem__(self, index: int) -> Line:
        return self._lines[index]

    def __repr__(self) -> str:
        return f"LineList({len(self)} lines)"

    @property
    def hashes(self) -> list[str]:
        """Hashes of the lines, in order."""
        return [ln.hash for ln in self._lines]

    def merged(self, other: Iterable[Line]) -> LineList:
        """Return the union of this list and ``other`` (duplicates collapse)."""
        return LineList([*self._lines, *other])

    def to_table(self) -> Table:
        """Return an astropy Table with the columns of :data:`COLUMNS` plus ``hash``."""
        table = Table(
            rows=[[getattr(ln, c) for c in COLUMNS] for ln in self._lines] or None,
            names=COLUMNS,
            dtype=[float, float, float, float, float, float, float, str, str, str, float],
        )
        table["hash"] = self.hashes
        table["wavelength"].unit = "Angstrom"
        table["expot"].unit = "eV"
        table["reference_ew"].unit = "mAngstrom"
        return table

    def write(self, path: str | Path) -> Path:
        """Write the list as ECSV (``.ecsv``), FITS (``.fits``) or MOOG (other suffixes).

        Parameters
        ----------
        path : str or Path
            Destination (written atomically).
        """
        path = Path(path)
        with atomic_output(path) as temp:
            if path.suffix.lower() == ".ecsv":
                self.to_table().write(temp, format="ascii.ecsv", overwrite=True)
            elif path.suffix.lower() in (".fits", ".fit"):
                self.to_table().write(temp, format="fits", overwrite=True)
            else:
                temp.write_text(format_moog(self))
        return path


def format_moog(lines: Iterable[Line], title: str = "photonpipe line list") -> str:
    """Format lines as a MOOG line list (10-character columns; EW last when known).

    Parameters
    ----------
    lines : iterable of Line
        Lines.
    title : str
        First (comment) line.
    """
    out = [title]
    for ln in lines:
        vdw = "" if math.isnan(ln.damp_vdw) else f"{ln.damp_vdw:10.3f}"
        ew = "" if math.isnan(ln.reference_ew) else f"{ln.reference_ew:10.3f}"
        out.append(
            f"{ln.wavelength:10.4f}{ln.species:10.5f}{ln.expot:10.3f}{ln.loggf:10.3f}"
            f"{vdw:>10s}{'':10s}{ew:>10s}".rstrip()
        )
    return "\n".join(out) + "\n"


def _float(text: str) -> float:
    text = text.strip()
    return float(text) if text else math.nan


def parse_moog(text: str, path: str | Path = "<moog>") -> LineList:
    """Parse a MOOG line list: title line, then wavelength, species, EP, log gf, [C6, D0, EW].

    Parameters
    ----------
    text : str
        File contents.
    path : str or Path
        File name for messages.
    """
    lines: list[Line] = []
    for number, raw in enumerate(text.splitlines()[1:], start=2):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        try:
            cols = [raw[i : i + 10] for i in range(0, 70, 10)]
            values = [_float(c) for c in cols]
            if any(math.isnan(v) for v in values[:4]):
                raise ValueError
        except ValueError:
            tokens = raw.split()
            try:
                values = [float(t) for t in tokens] + [math.nan] * (7 - len(tokens))
            except ValueError:
                raise InputFileError(
                    path, f"line {number}: not a MOOG line: {raw[:50]!r}"
                ) from None
            if len(tokens) < 4 or len(tokens) > 7:
                raise InputFileError(path, f"line {number}: expected 4 to 7 numbers") from None
        wave, species, ep, loggf, c6, _d0, ew = values[:7]
        lines.append(Line(wave, species, ep, loggf, damp_vdw=c6, reference_ew=ew))
    return LineList(lines)


_VALD_DATA = re.compile(r"^'([A-Z][a-z]?)\s+(\d+)'\s*,(.*)$")


def parse_vald(text: str, path: str | Path = "<vald>") -> LineList:
    """Parse a VALD3 "extract stellar" list (short or long format).

    Data lines are ``'Elm Ion', λ, E_low(eV), Vmic, log gf, Rad., Stark, Waals, Landé, depth,
    'reference'``; in the long format each is followed by quoted lower- and upper-level lines
    (and a reference line), kept as ``lower_level`` and ``upper_level``.

    Parameters
    ----------
    text : str
        File contents.
    path : str or Path
        File name for messages.
    """
    lines: list[Line] = []
    pending: dict[str, Any] | None = None
    levels: list[str] = []

    def flush() -> None:
        if pending is not None:
            lines.append(
                Line(
                    **pending,
                    lower_level=levels[0] if levels else "",
                    upper_level=levels[1] if len(levels) > 1 else "",
                )
            )

    for number, raw in enumerate(text.splitlines(), start=1):
        match = _VALD_DATA.match(raw.strip())
        if match:
            flush()
            levels = []
            symbol, ion, rest = match.groups()
            if symbol not in ELEMENTS:
                pending = None
                continue  # molecules etc.: not supported in the short species code
            numbers = [t.strip() for t in rest.split(",")]
            try:
                wave, elow, _vmic, loggf, rad, stark, waals = (float(t) for t in numbers[:7])
            except ValueError:
                raise InputFileError(path, f"line {number}: malformed VALD line") from None
            pending = {
                "wavelength": wave,
                "species": ELEMENTS.index(symbol) + 1 + (int(ion) - 1) / 10.0,
                "expot": elow,
                "loggf": loggf,
                "damp_rad": rad,
                "damp_stark": stark,
                "damp_vdw": waals,
            }
        elif pending is not None and raw.strip().startswith("'") and len(levels) < 3:
            levels.append(raw.strip().strip("'").strip())
    flush()
    if not lines:
        raise InputFileError(path, "no VALD line found")
    return LineList(lines)


def read_table(data: bytes, path: str | Path) -> LineList:
    """Read a line list table (ECSV or FITS) with the columns of :data:`COLUMNS`.

    ``wavelength``, ``species``, ``expot`` and ``loggf`` are required.

    Parameters
    ----------
    data : bytes
        File contents.
    path : str or Path
        File name for messages.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AstropyWarning)
            if data[:9] == b"SIMPLE  =":
                with fits.open(io.BytesIO(data)) as hdul:
                    table = Table.read(hdul, format="fits")
            else:
                table = Table.read(data.decode("utf-8"), format="ascii.ecsv")
    except (OSError, ValueError, UnicodeDecodeError, KeyError) as exc:
        raise InputFileError(path, f"unreadable line-list table ({exc})") from None
    missing = [c for c in COLUMNS[:4] if c not in table.colnames]
    if missing:
        raise InputFileError(path, f"line-list table lacks columns {', '.join(missing)}")
    lines = []
    for row in table:
        values: dict[str, Any] = {}
        for name in COLUMNS:
            if name in table.colnames:
                value = row[name]
                if np.ma.is_masked(value):
                    continue
                values[name] = str(value) if name.endswith(("level", "multiplet")) else float(value)
        lines.append(Line(**values))
    return LineList(lines)


def read_linelist_bytes(data: bytes, name: str | Path) -> LineList:
    """Read a line list in any supported format, recognised by content.

    Parameters
    ----------
    data : bytes
        File contents.
    name : str or Path
        File name for messages.

    Returns
    -------
    LineList
        Unique lines.

    Raises
    ------
    InputFileError
        Unknown or malformed format, or no lines.
    """
    if data[:9] == b"SIMPLE  =" or data.lstrip().startswith(b"# %ECSV"):
        result = read_table(data, name)
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise InputFileError(name, "not a line list (binary data)") from None
        if any(_VALD_DATA.match(row.strip()) for row in text.splitlines()[:50]):
            result = parse_vald(text, name)
        else:
            result = parse_moog(text, name)
    if len(result) == 0:
        raise InputFileError(name, "no lines in the line list")
    return result


def read_linelist(path: str | Path) -> LineList:
    """Read a line list file (see :func:`read_linelist_bytes`).

    Parameters
    ----------
    path : str or Path
        The file.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputFileError(path, "no such file") from None
    return read_linelist_bytes(data, path)
