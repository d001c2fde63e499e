"""Readers for HST COS and STIS TIME-TAG event files and x1d spectra, chosen by content.

Formats (as written by CALCOS and CALSTIS; column names and header keywords are HST's):

* **COS corrtag** ``<root>_corrtag[_a|_b].fits``: extension ``EVENTS`` with TIME [s since
  EXPSTART], RAWX, RAWY, XCORR, YCORR, XDOPP, XFULL, YFULL [pixel], WAVELENGTH [Å], EPSILON, DQ,
  PHA; extension ``GTI`` with START, STOP [s]. FUV segments A and B are separate files
  (primary SEGMENT = FUVA / FUVB); the three NUV stripes share one file.
* **STIS tag** ``<root>_tag.fits``: ``EVENTS`` with TIME, AXIS1, AXIS2, DETAXIS1 and ``GTI``.
* **STIS corrtag** (written by :func:`photonpipe.lightcurves.stis.tag_to_corrtag`): the COS
  corrtag columns, optional ``REGIONS`` table for echelle orders.
* **x1d** ``<root>_x1d.fits``: ``SCI`` table, one row per COS segment (SEGMENT) or STIS order
  (SPORDER), with array columns WAVELENGTH [Å], FLUX [erg s⁻¹ cm⁻² Å⁻¹], NET, GROSS,
  BACKGROUND [counts s⁻¹ pixel⁻¹], DQ, ...

Every reader raises a subclass of :class:`LightCurveInputError` naming the file and the problem.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.utils.exceptions import AstropyUserWarning

from photonpipe.errors import InputFileError
from photonpipe.platform.headers import (
    check_finite,
    check_fits_structure,
    header_float,
    header_int,
    header_str,
    malformed_fits,
)

# --- errors -----------------------------------------------------------------------------------


class LightCurveInputError(InputFileError):
    """An input file of the light-curve application cannot be used."""


class UnreadableFileError(LightCurveInputError):
    """Not a FITS file, or a truncated or corrupt one."""


class MissingExtensionError(LightCurveInputError):
    """A required extension (EVENTS, GTI, SCI) is absent."""


class MissingKeywordError(LightCurveInputError):
    """A required header keyword is absent."""


class MissingColumnError(LightCurveInputError):
    """A required table column is absent."""


class EmptyEventListError(LightCurveInputError):
    """The EVENTS table has no rows."""


class NonMonotonicTimeError(LightCurveInputError):
    """Event TIME decreases somewhere: the file is not a valid TIME-TAG list."""


class UnknownInstrumentError(LightCurveInputError):
    """INSTRUME is not COS or STIS, or the file's content matches no known format."""


class BadKeywordError(LightCurveInputError):
    """A header keyword has a value of the wrong type or out of its range (names the keyword)."""


class BadColumnError(LightCurveInputError):
    """A table column has the wrong type or shape, or holds NaN or infinite values."""


# --- kinds ------------------------------------------------------------------------------------

COS_CORRTAG = "cos_corrtag"
STIS_TAG = "stis_tag"
STIS_CORRTAG = "stis_corrtag"
X1D = "x1d"
#: HST support file (``_spt.fits``): its primary header carries HST's orbital elements.
SPT = "spt"

CORRTAG_COLUMNS = (
    "TIME",
    "RAWX",
    "RAWY",
    "XCORR",
    "YCORR",
    "XDOPP",
    "XFULL",
    "YFULL",
    "WAVELENGTH",
    "EPSILON",
    "DQ",
    "PHA",
)
TAG_COLUMNS = ("TIME", "AXIS1", "AXIS2", "DETAXIS1")
X1D_COLUMNS = ("WAVELENGTH", "FLUX", "NET")
#: Columns the extraction needs from a corrtag.
EXTRACTION_COLUMNS = ("TIME", "XFULL", "YFULL", "WAVELENGTH", "EPSILON", "DQ")

PRIMARY_KEYWORDS = ("INSTRUME", "DETECTOR", "OPT_ELEM", "CENWAVE", "APERTURE", "TARGNAME")
OPTIONAL_PRIMARY_KEYWORDS = (
    "TELESCOP",
    "SEGMENT",
    "FPPOS",
    "RA_TARG",
    "DEC_TARG",
    "PROPOSID",
    "CAL_VER",
    "OBSTYPE",
    "FLUXTAB",
    "TDSTAB",
    "ROOTNAME",
)
EVENTS_KEYWORDS = ("EXPSTART", "EXPTIME")
OPTIONAL_EVENTS_KEYWORDS = ("EXPEND", "EXPFLAG", "SDQFLAGS")
REGION_KEYWORDS = ("SP_LOC", "SP_HGT", "SP_SLP", "B_BKG1", "B_BKG2", "B_HGT1", "B_HGT2")

#: Detectors of each instrument (TIME-TAG event files come from the MAMAs only on STIS).
DETECTORS = {"COS": ("FUV", "NUV"), "STIS": ("FUV-MAMA", "NUV-MAMA", "CCD")}
EVENT_DETECTORS = {"COS": ("FUV", "NUV"), "STIS": ("FUV-MAMA", "NUV-MAMA")}
#: Range of CENWAVE [Å] over COS and STIS modes (COS G140L 800 … STIS G750L 7751).
CENWAVE_RANGE = (500, 12000)
#: EXPSTART range [MJD]: HST's launch (1990-04-24) to well beyond its life.
EXPSTART_RANGE = (47900.0, 80000.0)
#: Event columns that must hold finite numbers (checked in every chunk of a streamed file).
FINITE_EVENT_COLUMNS = ("TIME", "XFULL", "YFULL", "WAVELENGTH", "EPSILON", "AXIS1", "AXIS2")
#: Event columns that must hold integers.
INTEGER_EVENT_COLUMNS = ("DQ",)

_ROOTNAME = re.compile(r"^([A-Za-z0-9]+)_")


def rootname_of(path: str | os.PathLike[str]) -> str:
    """HST rootname of a file: its name up to the first underscore, lower case."""
    name = Path(path).name
    match = _ROOTNAME.match(name)
    return (match.group(1) if match else name.split(".")[0]).lower()


# --- containers -------------------------------------------------------------------------------


@dataclass
class ExtractionRegion:
    """Source and background boxes on the detector for one segment, stripe or order.

    The boxes follow the trace: at detector column ``x`` the source box is centred on
    ``center + slope * (x - x_ref)`` with full height ``height``; background box *k* is centred on
    ``background[k] + slope * (x - x_ref)`` with full height ``background_height[k]``. All in
    pixels of the event file's XFULL/YFULL frame.
    """

    name: str
    center: float
    height: float
    slope: float
    x_ref: float
    background: tuple[float, float]
    background_height: tuple[float, float]
    #: x1d row (SEGMENT or SPORDER) this region's spectrum is in.
    x1d_row: str = ""

    def source_halfwidth(self) -> float:
        """Half height of the source box [pixel]."""
        return self.height / 2.0

    @property
    def background_scale(self) -> float:
        """Source-box area over the total background-box area (same x extent)."""
        total = self.background_height[0] + self.background_height[1]
        return self.height / total if total > 0 else 0.0


class EventStream:
    """An EVENTS table's columns read from the file in chunks of rows (bounded memory).

    The rows are read with ``readinto`` into one reused buffer and each wanted column is copied
    from it to a reused native-byte-order array, so reading 10⁸ events needs the memory of one
    chunk. Made by :func:`read_events` with ``stream=True`` for plain (uncompressed) FITS files
    whose wanted columns are unscaled numbers.

    Parameters
    ----------
    path : Path
        The event file.
    offset : int
        Byte offset of the table's first row in the file.
    row_dtype : numpy.dtype
        The table's row layout as stored (big-endian fields).
    n_rows : int
        Number of rows (events).
    names : sequence of str
        Columns to deliver (upper case).
    """

    def __init__(
        self, path: Path, offset: int, row_dtype: np.dtype, n_rows: int, names: Sequence[str]
    ) -> None:
        self.path = path
        self.offset = offset
        self.row_dtype = row_dtype
        self.n_rows = n_rows
        self.names = tuple(names)

    def chunks(self, size: int) -> Iterator[dict[str, np.ndarray]]:
        """Yield the columns of ``size`` rows at a time (the last chunk may be shorter).

        The arrays are reused for the next chunk: copy what must outlive the iteration step.

        Raises
        ------
        UnreadableFileError
            The file ends before the table does.
        """
        itemsize = self.row_dtype.itemsize
        size = max(1, min(size, self.n_rows))
        raw = bytearray(size * itemsize)
        view = memoryview(raw)
        native = {
            name: np.empty(size, dtype=self.row_dtype[name].newbyteorder("="))
            for name in self.names
        }
        with self.path.open("rb", buffering=0) as handle:
            handle.seek(self.offset)
            for first in range(0, self.n_rows, size):
                rows = min(size, self.n_rows - first)
                wanted = rows * itemsize
                got = 0
                while got < wanted:
                    n = handle.readinto(view[got:wanted])
                    if not n:
                        raise UnreadableFileError(
                            self.path, f"EVENTS table truncated at row {first + got // itemsize}"
                        )
                    got += n
                table = np.frombuffer(raw, dtype=self.row_dtype, count=rows)
                out = {}
                for name in self.names:
                    column = native[name][:rows]
                    np.copyto(column, table[name])
                    if name in FINITE_EVENT_COLUMNS:
                        check_finite(
                            column, name, self.path, where="EVENTS", first_row=first,
                            error=BadColumnError,
                        )  # fmt: skip
                    out[name] = column
                yield out


class _StreamedColumns(dict[str, np.ndarray]):
    """The columns of a streamed event file, each read whole on first use (then kept)."""

    def __init__(self, path: Path, names: Sequence[str]) -> None:
        super().__init__()
        self._path = path
        self._names = {n.upper() for n in names}

    def __missing__(self, name: str) -> np.ndarray:
        if name not in self._names:
            raise KeyError(name)
        with _fits(self._path) as hdul:
            column = _read_columns(_extension(hdul, "EVENTS", self._path), [name], self._path)
        _check_event_values(column, self._path)
        if name == "TIME":
            check_time(column[name], self._path)
        self[name] = column[name]
        return column[name]


@dataclass
class EventFile:
    """One TIME-TAG event file: headers, event columns (native dtypes) and good time intervals.

    Attributes
    ----------
    path : Path
        The file.
    kind : str
        ``cos_corrtag``, ``stis_tag`` or ``stis_corrtag``.
    primary, events_header : astropy.io.fits.Header
        Primary header and EVENTS header.
    columns : dict of str to ndarray
        Event columns that were read (TIME [s since EXPSTART], positions [pixel], WAVELENGTH [Å]).
    gti : ndarray, shape (n, 2)
        Good time intervals START, STOP [s since EXPSTART], sorted and merged.
    regions : list of ExtractionRegion
        Extraction boxes from the header keywords (or the REGIONS table); empty for a STIS tag.
    stream : EventStream or None
        Set when the file was opened with ``stream=True``: the extraction then reads the events
        chunk by chunk from the file, and ``columns`` reads a whole column only when asked for.
    """

    path: Path
    kind: str
    primary: fits.Header
    events_header: fits.Header
    columns: dict[str, np.ndarray]
    gti: np.ndarray
    regions: list[ExtractionRegion] = field(default_factory=list)
    stream: EventStream | None = None

    @property
    def n_events(self) -> int:
        """Number of events."""
        if self.stream is not None and "TIME" not in self.columns:
            return self.stream.n_rows
        return len(self.columns["TIME"])

    @property
    def instrument(self) -> str:
        """INSTRUME (``COS`` or ``STIS``)."""
        return str(self.primary["INSTRUME"]).strip().upper()

    @property
    def expstart(self) -> float:
        """EXPSTART [MJD]."""
        return float(self.events_header["EXPSTART"])

    @property
    def exptime(self) -> float:
        """EXPTIME [s]."""
        return float(self.events_header["EXPTIME"])

    @property
    def sdqflags(self) -> int:
        """SDQFLAGS: DQ bits that reject an event (0 when the header lacks it)."""
        return int(self.events_header.get("SDQFLAGS", 0))


@dataclass
class X1DRow:
    """One row of an x1d SCI table: a COS segment or a STIS spectral order.

    Arrays are float64 with HST's units: WAVELENGTH [Å], FLUX and ERROR
    [erg s⁻¹ cm⁻² Å⁻¹], NET, GROSS and BACKGROUND [counts s⁻¹ pixel⁻¹].
    """

    name: str
    wavelength: np.ndarray
    flux: np.ndarray
    net: np.ndarray
    gross: np.ndarray | None = None
    background: np.ndarray | None = None
    dq: np.ndarray | None = None
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass
class X1DFile:
    """An x1d spectrum: primary header, SCI header and one :class:`X1DRow` per segment/order."""

    path: Path
    primary: fits.Header
    sci_header: fits.Header
    rows: list[X1DRow]

    def row(self, name: str) -> X1DRow | None:
        """Return the row called ``name`` (SEGMENT value, or ``ORDER <n>``), or None."""
        for row in self.rows:
            if row.name == name:
                return row
        return None


# --- low-level helpers ------------------------------------------------------------------------


def _open(path: Path) -> fits.HDUList:
    if not path.is_file():
        raise UnreadableFileError(path, "no such file")
    check_fits_structure(path, path, error=UnreadableFileError)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AstropyUserWarning)
            hdul = fits.open(path, memmap=True, lazy_load_hdus=False)
    except (OSError, ValueError, TypeError, IndexError, KeyError) as exc:
        raise UnreadableFileError(path, f"not a readable FITS file ({exc})") from exc
    if not hdul:
        hdul.close()
        raise UnreadableFileError(path, "FITS file has no HDU")
    return hdul


@contextmanager
def _fits(path: Path) -> Iterator[fits.HDUList]:
    """Open a FITS file; astropy's lazy parse errors in the block become UnreadableFileError."""
    with _open(path) as hdul, malformed_fits(path, UnreadableFileError):
        yield hdul


def _extension(hdul: fits.HDUList, name: str, path: Path) -> fits.BinTableHDU:
    try:
        hdu = hdul[name]
    except KeyError:
        raise MissingExtensionError(path, f"no {name} extension") from None
    if not isinstance(hdu, fits.BinTableHDU):
        raise MissingExtensionError(path, f"{name} extension is not a binary table")
    return hdu


def _column_names(hdu: fits.BinTableHDU) -> set[str]:
    return {name.upper() for name in hdu.columns.names}


def _read_columns(hdu: fits.BinTableHDU, names: Iterable[str], path: Path) -> dict[str, np.ndarray]:
    """Read columns into native-byte-order arrays (float32 data stays float32)."""
    available = _column_names(hdu)
    missing = [n for n in names if n.upper() not in available]
    if missing:
        raise MissingColumnError(path, f"{hdu.name} table lacks column(s) {', '.join(missing)}")
    try:
        data = hdu.data
        out: dict[str, np.ndarray] = {}
        for name in names:
            column = np.asarray(data.field(name))
            out[name.upper()] = column.astype(column.dtype.newbyteorder("="), copy=True)
    except (OSError, ValueError, TypeError, IndexError) as exc:
        raise UnreadableFileError(path, f"{hdu.name} table data unreadable ({exc})") from exc
    return out


def _check_column_types(
    hdu: fits.BinTableHDU,
    names: Iterable[str],
    path: Path,
    *,
    scalar: bool = True,
    integer: Sequence[str] = (),
) -> None:
    """Refuse columns that are not numbers (or not integers, or not one value per row)."""
    try:
        dtype = hdu.columns.dtype
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise UnreadableFileError(path, f"{hdu.name} table columns unreadable ({exc})") from exc
    by_upper = {n.upper(): n for n in dtype.names or ()}
    for name in names:
        if name.upper() not in by_upper:
            continue  # absence is reported by _read_columns
        field_dtype = dtype[by_upper[name.upper()]]
        wanted = "integers" if name.upper() in integer else "numbers"
        kinds = "iu" if name.upper() in integer else "iuf"
        if field_dtype.base.kind not in kinds:
            raise BadColumnError(
                path, f"{hdu.name} column {name} holds {field_dtype.base} values, not {wanted}"
            )
        if scalar and field_dtype.shape:
            raise BadColumnError(
                path, f"{hdu.name} column {name} has shape {field_dtype.shape} per row, not 1"
            )


def _check_event_values(columns: dict[str, np.ndarray], path: Path, first_row: int = 0) -> None:
    """Refuse NaN or infinite TIME, positions, WAVELENGTH or EPSILON (naming column and row)."""
    for name in FINITE_EVENT_COLUMNS:
        if name in columns:
            check_finite(
                columns[name], name, path, where="EVENTS", first_row=first_row,
                error=BadColumnError,
            )  # fmt: skip


def _keyword_str(header: fits.Header, key: str, path: Path, where: str, **kw: Any) -> str:
    return header_str(
        header, key, path, where=where, error=BadKeywordError, missing_error=MissingKeywordError,
        **kw,
    )  # fmt: skip


def _keyword_int(header: fits.Header, key: str, path: Path, where: str, **kw: Any) -> int:
    return header_int(
        header, key, path, where=where, error=BadKeywordError, missing_error=MissingKeywordError,
        **kw,
    )  # fmt: skip


def _keyword_float(header: fits.Header, key: str, path: Path, where: str, **kw: Any) -> float:
    return header_float(
        header, key, path, where=where, error=BadKeywordError, missing_error=MissingKeywordError,
        **kw,
    )  # fmt: skip


def _check_primary(primary: fits.Header, path: Path, *, events: bool) -> str:
    """Check the primary keywords of an event file (all required) or an x1d (those present).

    Returns the instrument (``COS`` or ``STIS``).
    """
    instrument = header_str(
        primary, "INSTRUME", path, where="primary", choices=("COS", "STIS"),
        error=UnknownInstrumentError, missing_error=MissingKeywordError,
    )  # fmt: skip
    where = "primary"
    if events or "DETECTOR" in primary:
        choices = (EVENT_DETECTORS if events else DETECTORS)[instrument]
        _keyword_str(primary, "DETECTOR", path, where, choices=choices)
    if events or "CENWAVE" in primary:
        low, high = CENWAVE_RANGE
        _keyword_int(primary, "CENWAVE", path, where, minimum=low, maximum=high)
    for key in ("OPT_ELEM", "APERTURE", "TARGNAME"):
        if events or key in primary:
            _keyword_str(primary, key, path, where, upper=False)
    if "SEGMENT" in primary:
        _keyword_str(primary, "SEGMENT", path, where)
    if "FPPOS" in primary:
        _keyword_int(primary, "FPPOS", path, where, minimum=1, maximum=4)
    if "PROPOSID" in primary:
        _keyword_int(primary, "PROPOSID", path, where, minimum=0)
    if "RA_TARG" in primary:
        _keyword_float(primary, "RA_TARG", path, where, minimum=0.0, maximum=360.0)
    if "DEC_TARG" in primary:
        _keyword_float(primary, "DEC_TARG", path, where, minimum=-90.0, maximum=90.0)
    return instrument


def _check_events_header(header: fits.Header, path: Path) -> None:
    """Check EXPSTART (an MJD of HST's life), EXPTIME > 0 and the optional keywords' types."""
    where = "EVENTS"
    low, high = EXPSTART_RANGE
    expstart = _keyword_float(header, "EXPSTART", path, where, minimum=low, maximum=high)
    _keyword_float(header, "EXPTIME", path, where, positive=True)
    if "EXPEND" in header:
        _keyword_float(header, "EXPEND", path, where, minimum=expstart)
    if "SDQFLAGS" in header:
        _keyword_int(header, "SDQFLAGS", path, where, minimum=0, maximum=2**31 - 1)
    if "EXPFLAG" in header:
        _keyword_str(header, "EXPFLAG", path, where)


def _require(header: fits.Header, keywords: Sequence[str], path: Path, where: str) -> None:
    missing = [k for k in keywords if k not in header]
    if missing:
        raise MissingKeywordError(path, f"{where} header lacks {', '.join(missing)}")


def merge_intervals(intervals: np.ndarray) -> np.ndarray:
    """Sort and merge overlapping [start, stop) intervals; drop empty ones.

    Parameters
    ----------
    intervals : ndarray, shape (n, 2)
        START, STOP [s].

    Returns
    -------
    ndarray, shape (m, 2)
        Disjoint intervals in increasing order.
    """
    intervals = np.asarray(intervals, dtype=np.float64).reshape(-1, 2)
    intervals = intervals[intervals[:, 1] > intervals[:, 0]]
    if len(intervals) == 0:
        return intervals
    intervals = intervals[np.argsort(intervals[:, 0], kind="stable")]
    merged = [list(intervals[0])]
    for start, stop in intervals[1:]:
        if start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], stop)
        else:
            merged.append([start, stop])
    return np.asarray(merged, dtype=np.float64)


def intersect_intervals(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection of two sets of disjoint sorted intervals [s]."""
    out = []
    i = j = 0
    while i < len(a) and j < len(b):
        start = max(a[i, 0], b[j, 0])
        stop = min(a[i, 1], b[j, 1])
        if stop > start:
            out.append((start, stop))
        if a[i, 1] < b[j, 1]:
            i += 1
        else:
            j += 1
    return np.asarray(out, dtype=np.float64).reshape(-1, 2)


# --- identification ---------------------------------------------------------------------------


def identify(path: str | os.PathLike[str]) -> str:
    """Identify a file by its content: a corrtag, tag, x1d or spt (support file) kind.

    ``cos_corrtag``, ``stis_tag``, ``stis_corrtag``, ``x1d`` or ``spt`` (a support file with
    HST's orbital elements).

    Raises
    ------
    LightCurveInputError
        Unreadable file, unknown instrument or no recognisable table.
    """
    path = Path(path)
    with _fits(path) as hdul:
        return _identify(hdul, path)


def _identify(hdul: fits.HDUList, path: Path) -> str:
    primary = hdul[0].header
    if "INSTRUME" not in primary:
        raise MissingKeywordError(path, "primary header lacks INSTRUME")
    instrument = str(primary["INSTRUME"]).strip().upper()
    if instrument not in ("COS", "STIS"):
        raise UnknownInstrumentError(path, f"unknown instrument INSTRUME = {instrument!r}")
    names = {hdu.name.upper() for hdu in hdul}
    if "EVENTS" not in names and {"EPCHTIME", "SEMILREC", "FDMEANAN"} <= set(hdul[0].header):
        return SPT
    if "EVENTS" in names:
        hdu = _extension(hdul, "EVENTS", path)
        columns = _column_names(hdu)
        if {"TIME", "XFULL", "YFULL", "WAVELENGTH", "EPSILON", "DQ"} <= columns:
            return COS_CORRTAG if instrument == "COS" else STIS_CORRTAG
        if instrument == "STIS" and {"TIME", "AXIS1", "AXIS2"} <= columns:
            return STIS_TAG
        raise MissingColumnError(
            path, "EVENTS table has neither corrtag nor STIS tag columns (TIME, XFULL, ... / AXIS1)"
        )
    if "SCI" in names:
        hdu = hdul["SCI"]
        if isinstance(hdu, fits.BinTableHDU) and set(X1D_COLUMNS) <= _column_names(hdu):
            return X1D
    raise MissingExtensionError(path, "no EVENTS table (event file) or SCI spectrum table (x1d)")


# --- readers ----------------------------------------------------------------------------------


def _regions_from_header(header: fits.Header, primary: fits.Header, path: Path) -> list[Any]:
    """Build extraction regions from SP_LOC_x ... B_HGT2_x keywords (x = A, B, C)."""
    instrument = str(primary.get("INSTRUME", "")).upper()
    detector = str(primary.get("DETECTOR", "")).upper()
    if instrument == "COS" and detector == "FUV":
        segment = str(primary.get("SEGMENT", "")).strip().upper()
        if segment not in ("FUVA", "FUVB"):
            raise MissingKeywordError(
                path, f"FUV corrtag with SEGMENT = {segment!r}, not FUVA/FUVB"
            )
        letters = [segment[-1]]
        x_ref = 8192.0  # CALCOS: the FUV trace slope is measured from the detector centre
        names = [segment]
    elif instrument == "COS":
        letters = ["A", "B", "C"]
        x_ref = 512.0
        names = ["NUVA", "NUVB", "NUVC"]
    else:  # STIS first-order corrtag
        letters = ["A"]
        x_ref = 512.0
        if "SP_XREF" in header:
            x_ref = header_float(header, "SP_XREF", path, where="EVENTS", error=BadKeywordError)
        names = [str(header.get("SP_ROW_A", "ORDER 1"))]
    regions = []
    for letter, name in zip(letters, names, strict=True):
        keys = [f"{k}_{letter}" for k in REGION_KEYWORDS]
        if instrument == "COS" and detector == "NUV" and keys[0] not in header:
            continue  # a stripe without keywords is not extracted
        _require(header, keys, path, "EVENTS")
        loc, hgt, slp, b1, b2, h1, h2 = (
            header_float(header, k, path, where="EVENTS", error=BadKeywordError) for k in keys
        )
        if not hgt > 0 or h1 < 0 or h2 < 0:
            raise BadKeywordError(
                path, f"EVENTS keywords {keys[1]} = {hgt}, {keys[5]} = {h1}, {keys[6]} = {h2}: "
                "box heights must be > 0 (source) and >= 0 (background)",
            )  # fmt: skip
        regions.append(
            ExtractionRegion(name, loc, hgt, slp, x_ref, (b1, b2), (h1, h2), x1d_row=name)
        )
    if not regions:
        raise MissingKeywordError(path, "EVENTS header has no SP_LOC_x extraction keywords")
    return regions


def _regions_from_table(hdu: fits.BinTableHDU, path: Path) -> list[ExtractionRegion]:
    needed = ("NAME", "SP_LOC", "SP_HGT", "SP_SLP", "X_REF", "B_BKG1", "B_BKG2", "B_HGT1", "B_HGT2")
    _check_column_types(hdu, needed[1:], path)
    cols = _read_columns(hdu, needed, path)
    if cols["NAME"].dtype.kind not in "SU":
        raise BadColumnError(path, f"REGIONS column NAME holds {cols['NAME'].dtype}, not text")
    for name in needed[1:]:
        check_finite(cols[name], name, path, where="REGIONS", error=BadColumnError)
    if not bool(np.all(cols["SP_HGT"] > 0)):
        raise BadColumnError(path, "REGIONS column SP_HGT has a height <= 0")
    regions = []
    for i in range(len(cols["NAME"])):
        name = str(cols["NAME"][i]).strip()
        regions.append(
            ExtractionRegion(
                name,
                float(cols["SP_LOC"][i]),
                float(cols["SP_HGT"][i]),
                float(cols["SP_SLP"][i]),
                float(cols["X_REF"][i]),
                (float(cols["B_BKG1"][i]), float(cols["B_BKG2"][i])),
                (float(cols["B_HGT1"][i]), float(cols["B_HGT2"][i])),
                x1d_row=name,
            )
        )
    return regions


def _stream_layout(
    hdul: fits.HDUList, hdu: fits.BinTableHDU, names: Sequence[str], path: Path
) -> tuple[int, np.dtype] | None:
    """Return (data offset, row dtype) if the EVENTS table can be read in chunks, else None.

    Chunks are read from plain FITS files only (not gzip), for scalar numeric columns without
    TSCAL/TZERO scaling; anything else is read whole by astropy.
    """
    with path.open("rb") as handle:
        if handle.read(6) != b"SIMPLE":
            return None
    try:
        offset = int(hdul.fileinfo(hdul.index_of("EVENTS"))["datLoc"])
        row_dtype = hdu.columns.dtype
        by_name = {c.name.upper(): c for c in hdu.columns}
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    for name in names:
        column = by_name[name.upper()]
        if column.bscale not in (None, 1) or column.bzero not in (None, 0):
            return None
        field_dtype = row_dtype[column.name]
        if field_dtype.kind not in "biuf" or field_dtype.shape:
            return None
    if row_dtype.itemsize == 0 or row_dtype.itemsize != int(hdu.header.get("NAXIS1", -1)):
        return None
    renamed = np.dtype(
        {
            "names": [n.upper() for n in row_dtype.names],
            # FITS tables are big-endian whatever dtype astropy reports for its converted view
            "formats": [row_dtype[n].newbyteorder(">") for n in row_dtype.names],
            "offsets": [row_dtype.fields[n][1] for n in row_dtype.names],
            "itemsize": row_dtype.itemsize,
        }
    )
    return offset, renamed


def read_events(
    path: str | os.PathLike[str],
    columns: Sequence[str] | None = None,
    *,
    validate: bool = True,
    stream: bool = False,
) -> EventFile:
    """Read a COS corrtag, STIS corrtag or STIS tag file.

    Parameters
    ----------
    path : path-like
        The event file.
    columns : sequence of str, optional
        Event columns to read (default: those the extraction needs, or all tag columns).
    validate : bool
        Refuse empty event lists and decreasing TIME (default True). With ``stream``, TIME is
        checked chunk by chunk as the events are read.
    stream : bool
        Read only the headers, GTIs and regions now, and leave the events in the file: the
        extraction reads them in chunks (memory bounded whatever the number of events), and
        ``columns[name]`` reads a whole column on first use. Files that cannot be read in chunks
        (gzip-compressed, scaled columns) are read whole as without ``stream``.

    Returns
    -------
    EventFile

    Raises
    ------
    LightCurveInputError
        Subclass naming the problem: unreadable file, missing extension/keyword/column, empty
        event list, non-monotonic time, unknown instrument.
    """
    path = Path(path)
    with _fits(path) as hdul:
        kind = _identify(hdul, path)
        if kind in (X1D, SPT):
            raise MissingExtensionError(path, f"an {kind} file, not an event file (no EVENTS)")
        primary = hdul[0].header.copy()
        _require(primary, PRIMARY_KEYWORDS, path, "primary")
        _check_primary(primary, path, events=True)
        events_hdu = _extension(hdul, "EVENTS", path)
        events_header = events_hdu.header.copy()
        _require(events_header, EVENTS_KEYWORDS, path, "EVENTS")
        _check_events_header(events_header, path)
        if columns is None:
            columns = TAG_COLUMNS if kind == STIS_TAG else EXTRACTION_COLUMNS
        _check_column_types(events_hdu, columns, path, integer=INTEGER_EVENT_COLUMNS)
        available = _column_names(events_hdu)
        missing = [n for n in columns if n.upper() not in available]
        chunked = stream and kind != STIS_TAG and not missing  # tags are converted in memory
        layout = _stream_layout(hdul, events_hdu, columns, path) if chunked else None
        event_stream: EventStream | None = None
        data: dict[str, np.ndarray]
        if layout is not None:
            n_rows = int(events_hdu.header.get("NAXIS2", 0))
            event_stream = EventStream(path, layout[0], layout[1], n_rows, columns)
            data = _StreamedColumns(path, columns)
        else:
            data = _read_columns(events_hdu, columns, path)
            _check_event_values(data, path)
        gti_hdu = _extension(hdul, "GTI", path)
        _check_column_types(gti_hdu, ("START", "STOP"), path)
        gti_cols = _read_columns(gti_hdu, ("START", "STOP"), path)
        for name in ("START", "STOP"):
            check_finite(gti_cols[name], name, path, where="GTI", error=BadColumnError)
        gti = merge_intervals(np.column_stack([gti_cols["START"], gti_cols["STOP"]]))
        regions: list[ExtractionRegion] = []
        if kind != STIS_TAG:
            names = {hdu.name.upper() for hdu in hdul}
            if "REGIONS" in names:
                regions = _regions_from_table(_extension(hdul, "REGIONS", path), path)
            else:
                regions = _regions_from_header(events_header, primary, path)
    events = EventFile(path, kind, primary, events_header, data, gti, regions, event_stream)
    if validate:
        validate_events(events)
    return events


def validate_events(events: EventFile) -> None:
    """Refuse an empty event list, decreasing TIME or a file without good time.

    A streamed file's TIME is checked when its events are read (see :func:`check_time`).

    Raises
    ------
    EmptyEventListError, NonMonotonicTimeError, LightCurveInputError
    """
    if events.n_events == 0:
        raise EmptyEventListError(events.path, "EVENTS table is empty (no events)")
    if events.stream is None or "TIME" in events.columns:
        check_time(events.columns["TIME"], events.path)
    if len(events.gti) == 0:
        raise LightCurveInputError(events.path, "GTI table has no good time interval")


def check_time(
    time: np.ndarray, path: Path, first_event: int = 0, previous: float = -np.inf
) -> None:
    """Refuse TIME that decreases (inside ``time`` or from ``previous``, the event before it).

    ``first_event`` is the number of events before ``time`` in the file, for the message.
    """
    if not len(time):
        return
    step = np.diff(time)
    bad = step < 0
    if time[0] < previous:
        raise NonMonotonicTimeError(
            path, f"TIME decreases at event {first_event} ({previous} → {time[0]} s)"
        )
    if bool(bad.any()):
        first = int(np.argmax(bad))
        raise NonMonotonicTimeError(
            path,
            f"TIME decreases at event {first_event + first + 1} "
            f"({time[first]} → {time[first + 1]} s)",
        )


def _check_x1d_row(cols: dict[str, np.ndarray], i: int, name: str, path: Path) -> None:
    """Refuse an x1d row with unequal arrays, bad wavelengths or no finite FLUX and NET."""
    wavelength = np.asarray(cols["WAVELENGTH"][i])
    if wavelength.ndim != 1 or len(wavelength) < 2:
        raise BadColumnError(path, f"SCI row {name}: WAVELENGTH is not an array of >= 2 values")
    for column in ("FLUX", "NET", "GROSS", "BACKGROUND", "DQ", "ERROR"):
        if column in cols and np.shape(cols[column][i]) != wavelength.shape:
            raise BadColumnError(
                path,
                f"SCI row {name}: {column} has shape {np.shape(cols[column][i])}, "
                f"WAVELENGTH {wavelength.shape}",
            )
    check_finite(wavelength, f"WAVELENGTH (row {name})", path, where="SCI", error=BadColumnError)
    if not bool(np.all(np.diff(wavelength) > 0)) or not wavelength[0] > 0:
        raise BadColumnError(path, f"SCI row {name}: WAVELENGTH is not positive and increasing")
    for column in ("FLUX", "NET"):
        if not bool(np.isfinite(cols[column][i]).any()):
            raise BadColumnError(
                path, f"SCI row {name}: {column} has no finite value (all NaN or infinite)"
            )
    extras = [c for c in cols if c in ("A2CENTER", "EXTRSIZE", "BK1SIZE", "BK2SIZE", "EXTRLOCY")]
    extras += [c for c in cols if c in ("BK1OFFST", "BK2OFFST")]
    for column in extras:
        check_finite(
            np.atleast_1d(np.asarray(cols[column][i], dtype=np.float64)),
            f"{column} (row {name})", path, where="SCI", error=BadColumnError,
        )  # fmt: skip


def read_x1d(path: str | os.PathLike[str]) -> X1DFile:
    """Read a COS or STIS x1d spectrum.

    Rows are named by SEGMENT (COS: ``FUVA``, ``FUVB``, ``NUVA`` ...) or ``ORDER <SPORDER>``
    (STIS). STIS extraction columns (A2CENTER, EXTRSIZE, BK1SIZE, BK2SIZE, BK1OFFST, BK2OFFST,
    EXTRLOCY) are kept in :attr:`X1DRow.extras` when present.

    Raises
    ------
    LightCurveInputError
        Unreadable file, no SCI table, missing columns.
    """
    path = Path(path)
    with _fits(path) as hdul:
        kind = _identify(hdul, path)
        if kind != X1D:
            raise MissingExtensionError(path, "not an x1d spectrum (no SCI table with FLUX, NET)")
        primary = hdul[0].header.copy()
        hdu = _extension(hdul, "SCI", path)
        available = _column_names(hdu)
        names = ["WAVELENGTH", "FLUX", "NET"]
        optional = ["GROSS", "BACKGROUND", "DQ", "ERROR"]
        stis_extras = ["A2CENTER", "EXTRSIZE", "BK1SIZE", "BK2SIZE", "BK1OFFST", "BK2OFFST"]
        stis_extras += ["EXTRLOCY"]
        label = "SEGMENT" if "SEGMENT" in available else "SPORDER" if "SPORDER" in available else ""
        if not label:
            raise MissingColumnError(path, "SCI table has neither SEGMENT nor SPORDER")
        wanted = names + [c for c in optional + stis_extras if c in available] + [label]
        _check_primary(primary, path, events=False)
        numeric = [c for c in wanted if c != "SEGMENT"]
        _check_column_types(hdu, numeric, path, scalar=False, integer=("SPORDER", "DQ"))
        cols = _read_columns(hdu, wanted, path)
        sci_header = hdu.header.copy()
    if label == "SEGMENT" and cols["SEGMENT"].dtype.kind not in "SU":
        raise BadColumnError(path, f"SCI column SEGMENT holds {cols['SEGMENT'].dtype}, not text")
    if np.ndim(cols[label]) != 1:  # found by the fuzzer: a vector SPORDER (TFORM '2J')
        raise BadColumnError(path, f"SCI column {label} holds a vector per row, not one value")
    rows = []
    for i in range(len(cols["WAVELENGTH"])):
        raw_label = cols[label][i]
        name = str(raw_label).strip().upper() if label == "SEGMENT" else f"ORDER {int(raw_label)}"
        _check_x1d_row(cols, i, name, path)
        extras = {c: cols[c][i] for c in stis_extras if c in cols}
        rows.append(
            X1DRow(
                name,
                np.asarray(cols["WAVELENGTH"][i], dtype=np.float64),
                np.asarray(cols["FLUX"][i], dtype=np.float64),
                np.asarray(cols["NET"][i], dtype=np.float64),
                np.asarray(cols["GROSS"][i], dtype=np.float64) if "GROSS" in cols else None,
                np.asarray(cols["BACKGROUND"][i], dtype=np.float64)
                if "BACKGROUND" in cols
                else None,
                np.asarray(cols["DQ"][i]) if "DQ" in cols else None,
                extras,
            )
        )
    if not rows:
        raise LightCurveInputError(path, "SCI table has no rows")
    return X1DFile(path, primary, sci_header, rows)
