"""Checked reads of FITS header values and table columns: keyword, type and range.

Every reader of every application gets header values through these functions, so that a file
whose keyword has the wrong type (``CENWAVE = 'abc'``), an impossible value (``EXPTIME = -1``)
or a non-finite number is refused with one line naming the file and the keyword, instead of
failing later with a numpy or astropy error that names neither.

The functions raise the error class they are given (a subclass of
:class:`~photonpipe.errors.InputFileError`, so that each application keeps its own error
hierarchy); the message is ``<file>: <where> <KEY> = <value> <problem>``.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from astropy.io.fits.verify import VerifyError

from photonpipe.errors import InputFileError


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def header_value(
    header: Mapping[str, Any],
    key: str,
    path: str | Path,
    *,
    where: str = "header",
    error: type[InputFileError] = InputFileError,
    missing_error: type[InputFileError] | None = None,
) -> Any:
    """Return ``header[key]``, refusing an absent or undefined (blank) value.

    Parameters
    ----------
    header : mapping
        A FITS header (or any mapping of keyword to value).
    key : str
        Keyword.
    path : str or Path
        File the header is from (for the message).
    where : str
        Which header (``"primary"``, ``"EVENTS"``), for the message.
    error, missing_error : type of InputFileError
        Raised for a bad value, and for an absent keyword (default: ``error``).
    """
    missing = missing_error or error
    if key not in header:
        raise missing(path, f"{where} header lacks {key}")
    value = header[key]
    if value is None or type(value).__name__ == "Undefined":
        raise missing(path, f"{where} header keyword {key} has no value")
    return value


def header_int(
    header: Mapping[str, Any],
    key: str,
    path: str | Path,
    *,
    where: str = "header",
    minimum: int | None = None,
    maximum: int | None = None,
    error: type[InputFileError] = InputFileError,
    missing_error: type[InputFileError] | None = None,
) -> int:
    """Return an integer keyword, refusing text, fractions, booleans and values out of range.

    A string of digits (``'1291'``) is accepted, as some writers quote numbers.

    Raises
    ------
    InputFileError
        (Or ``error`` / ``missing_error``.) Absent, not an integer, or outside
        ``minimum..maximum``.
    """
    value = header_value(header, key, path, where=where, error=error, missing_error=missing_error)
    number: int | None = None
    if isinstance(value, bool | np.bool_):
        number = None
    elif isinstance(value, int | np.integer) or (
        isinstance(value, float | np.floating) and math.isfinite(value) and value == int(value)
    ):
        number = int(value)
    elif isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        number = int(value.strip())
    if number is None:
        raise error(path, f"{where} keyword {key} = {_show(value)} is not an integer")
    _check_range(number, minimum, maximum, f"{where} keyword {key}", path, error)
    return number


def _check_range(
    number: float,
    minimum: float | None,
    maximum: float | None,
    what: str,
    path: str | Path,
    error: type[InputFileError],
) -> None:
    """Raise ``error`` when ``number`` lies outside the inclusive bounds given."""
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        bounds = f"{'' if minimum is None else minimum}..{'' if maximum is None else maximum}"
        raise error(path, f"{what} = {number} is outside {bounds}")


def header_float(
    header: Mapping[str, Any],
    key: str,
    path: str | Path,
    *,
    where: str = "header",
    minimum: float | None = None,
    maximum: float | None = None,
    positive: bool = False,
    error: type[InputFileError] = InputFileError,
    missing_error: type[InputFileError] | None = None,
) -> float:
    """Return a finite real keyword, refusing text, booleans, NaN/inf and values out of range.

    Parameters
    ----------
    minimum, maximum : float, optional
        Inclusive bounds.
    positive : bool
        Require a value > 0.

    Raises
    ------
    InputFileError
        (Or ``error`` / ``missing_error``.) Absent, not a number, not finite, out of range.
    """
    value = header_value(header, key, path, where=where, error=error, missing_error=missing_error)
    if isinstance(value, bool | np.bool_) or not isinstance(
        value, int | float | np.integer | np.floating
    ):
        raise error(path, f"{where} keyword {key} = {_show(value)} is not a number")
    number = float(value)
    if not math.isfinite(number):
        raise error(path, f"{where} keyword {key} = {number} is not finite")
    if positive and not number > 0:
        raise error(path, f"{where} keyword {key} = {number} is not > 0")
    _check_range(number, minimum, maximum, f"{where} keyword {key}", path, error)
    return number


def header_str(
    header: Mapping[str, Any],
    key: str,
    path: str | Path,
    *,
    where: str = "header",
    choices: Collection[str] | None = None,
    upper: bool = True,
    error: type[InputFileError] = InputFileError,
    missing_error: type[InputFileError] | None = None,
) -> str:
    """Return a non-empty text keyword (stripped, upper case unless ``upper`` is false).

    Parameters
    ----------
    choices : collection of str, optional
        The values allowed (compared after stripping and case folding as ``upper`` says).

    Raises
    ------
    InputFileError
        (Or ``error`` / ``missing_error``.) Absent, not text, empty, or not one of ``choices``.
    """
    value = header_value(header, key, path, where=where, error=error, missing_error=missing_error)
    if not isinstance(value, str):
        raise error(path, f"{where} keyword {key} = {_show(value)} is not text")
    text = value.strip().upper() if upper else value.strip()
    if not text or not text.isprintable():
        raise error(path, f"{where} keyword {key} = {_show(value)} is empty or not printable")
    if choices is not None and text not in choices:
        raise error(
            path,
            f"{where} keyword {key} = {_show(value)} is not one of {', '.join(sorted(choices))}",
        )
    return text


def check_numeric(
    array: npt.NDArray[Any],
    name: str,
    path: str | Path,
    *,
    where: str = "table",
    integer: bool = False,
    error: type[InputFileError] = InputFileError,
) -> None:
    """Refuse a column or image that is not numbers (text, booleans, objects).

    Parameters
    ----------
    array : ndarray
        The column (any shape).
    name : str
        Its name, for the message.
    integer : bool
        Require an integer dtype.
    """
    kinds = "iu" if integer else "iuf"
    if array.dtype.kind not in kinds:
        wanted = "integers" if integer else "numbers"
        raise error(path, f"{where} column {name} holds {array.dtype} values, not {wanted}")


def check_finite(
    array: npt.NDArray[Any],
    name: str,
    path: str | Path,
    *,
    where: str = "table",
    first_row: int = 0,
    error: type[InputFileError] = InputFileError,
) -> None:
    """Refuse NaN or infinite values in a numeric array, naming the first bad row.

    Parameters
    ----------
    first_row : int
        Row number of ``array[0]`` in the file (for arrays read in chunks).
    """
    if array.dtype.kind != "f":
        return
    finite = np.isfinite(array)
    if not bool(finite.all()):
        flat = finite.reshape(len(array), -1).all(axis=1) if array.ndim > 1 else finite
        row = int(np.argmin(flat))
        value = array[row] if array.ndim == 1 else array[row][~np.isfinite(array[row])].flat[0]
        raise error(path, f"{where} column {name} = {value} (not finite) at row {first_row + row}")


def _compression_errors() -> tuple[type[BaseException], ...]:
    """Return the CFITSIO decompression error of astropy (an Exception from a C module)."""
    try:
        from astropy.io.fits.hdu.compressed._compression import CfitsioException
    except ImportError:  # another astropy layout: the other errors still apply
        return ()
    return (CfitsioException,)


#: What astropy raises on a malformed FITS file when a header card, a column format or the
#: data is parsed (lazily, long after ``fits.open`` succeeded).
FITS_PARSE_ERRORS: tuple[type[BaseException], ...] = (
    VerifyError,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    AssertionError,
    OSError,
    EOFError,
    OverflowError,
    UnboundLocalError,  # astropy 7.2 column parsing of some malformed TFORMs
    RuntimeError,  # astropy's tile decompression on a bad ZTILE/TFORM
    zlib.error,
    *_compression_errors(),
)


@contextmanager
def malformed_fits(
    path: str | Path, error: type[InputFileError] = InputFileError
) -> Iterator[None]:
    """Turn astropy's parse errors inside the block into one line naming the file.

    astropy parses cards, column formats and data lazily, so a malformed file can fail at any
    header or column access of a reader with a ``VerifyError``, ``KeyError('recformat')``,
    ``AssertionError`` and the like. A reader wraps its reading in this block as the last line
    of defence behind its own checks; photonpipe's own errors pass through unchanged.

    Parameters
    ----------
    path : str or Path
        The file being read.
    error : type of InputFileError
        The error raised.
    """
    try:
        yield
    except InputFileError:
        raise
    except FITS_PARSE_ERRORS as exc:
        text = str(exc).splitlines()[0][:160] if str(exc) else ""
        raise error(path, f"malformed FITS file ({type(exc).__name__}: {text})") from exc


#: Data sizes of the FITS BITPIX values [bytes per value].
_BITPIX_BYTES = {8: 1, 16: 2, 32: 4, 64: 8, -32: 4, -64: 8}
_STRUCTURE_KEYS = ("BITPIX", "NAXIS", "PCOUNT", "GCOUNT", "TFIELDS")


def _card_int(card: bytes) -> int | None:
    text = card[10:].split(b"/", 1)[0].strip()
    try:
        return int(text)
    except ValueError:
        return None


def _read_structure_header(
    handle: Any, path: str | Path, error: type[InputFileError]
) -> tuple[dict[str, int | None], dict[int, int | None], int] | None:
    """Read one FITS header from ``handle``, keeping its structure keywords.

    Parameters
    ----------
    handle : binary file
        Positioned at the start of a header.
    path : str or Path
        The file's name, for the message.
    error : type of InputFileError
        The error raised.

    Returns
    -------
    (dict, dict, int) or None
        BITPIX, NAXIS, PCOUNT, GCOUNT, TFIELDS values (None where not an integer), NAXISn by
        n, and the number of 2880-byte blocks of the header; None at the end of the file (after
        the last HDU, or a truncated header that astropy reports).

    Raises
    ------
    InputFileError
        The file cannot be read.
    """
    values: dict[str, int | None] = {}
    axes: dict[int, int | None] = {}
    compression: dict[str, str] = {}
    blocks = 0
    while True:
        try:
            block = handle.read(2880)
        except (OSError, EOFError, zlib.error) as exc:
            raise error(path, f"unreadable FITS file ({exc})") from None
        if not block:
            return None
        blocks += 1
        for start in range(0, len(block) - 79, 80):
            card = block[start : start + 80]
            key = card[:8].rstrip().decode("ascii", "replace")
            if key == "END":
                _check_compression(compression, path, error)
                return values, axes, blocks
            if card[8:10] != b"= ":
                continue
            if key in _STRUCTURE_KEYS and key not in values:
                values[key] = _card_int(card)
            elif key.startswith("NAXIS") and key[5:].isdigit():
                axes.setdefault(int(key[5:]), _card_int(card))
            elif key.startswith(("ZNAME", "ZVAL")) and key.lstrip("ZNAMEVL").isdigit():
                compression.setdefault(key, card[10:].split(b"/", 1)[0].decode("ascii", "replace"))


#: Tile-compression parameters (ZNAMEn = ZVALn) whose bad values crash astropy's decompression
#: (a segmentation fault in the RICE_1 decoder for BYTEPIX = -1, found by the fuzzer), and
#: the values the FITS tiled-image convention allows.
_COMPRESSION_VALUES = {"BYTEPIX": (1, 2, 4, 8)}


def _check_compression(
    cards: dict[str, str], path: str | Path, error: type[InputFileError]
) -> None:
    """Refuse a tile-compression parameter outside the values the convention allows."""
    for key, text in cards.items():
        if not key.startswith("ZNAME"):
            continue
        name = text.strip().strip("'").strip().upper()
        allowed = _COMPRESSION_VALUES.get(name)
        if allowed is None:
            continue
        raw = cards.get("ZVAL" + key[5:], "").strip()
        try:
            value: int | None = int(raw)
        except ValueError:
            value = None
        if value not in allowed:
            raise error(
                path,
                f"tile-compression parameter {name} ({key}) = {raw or 'nothing'} is not one of "
                f"{', '.join(map(str, allowed))}",
            )


def _data_size(
    values: dict[str, int | None],
    axes: dict[int, int | None],
    where: str,
    path: str | Path,
    error: type[InputFileError],
) -> int | None:
    """Check an HDU's structure keywords and return the size of its data [bytes].

    Parameters
    ----------
    values : dict
        BITPIX, NAXIS, PCOUNT, GCOUNT, TFIELDS from :func:`_read_structure_header`.
    axes : dict
        NAXISn by n.
    where : str
        ``HDU <index>``, for the message.
    path : str or Path
        The file's name, for the message.
    error : type of InputFileError
        The error raised.

    Returns
    -------
    int or None
        ``|BITPIX| / 8 × GCOUNT × (PCOUNT + NAXIS1 × … × NAXISn)`` (unpadded) [bytes]; None
        when NAXIS or BITPIX is missing (astropy reports that).

    Raises
    ------
    InputFileError
        NAXIS or TFIELDS outside 0..999, an unknown BITPIX, a missing or negative NAXISn, or a
        negative PCOUNT or GCOUNT.
    """
    naxis = values.get("NAXIS")
    bitpix = values.get("BITPIX")
    if naxis is None or bitpix is None:
        return None
    if not 0 <= naxis <= 999:
        raise error(path, f"{where} keyword NAXIS = {naxis} is outside 0..999")
    tfields = values.get("TFIELDS")
    if tfields is not None and not 0 <= tfields <= 999:  # astropy allocates TFIELDS columns
        raise error(path, f"{where} keyword TFIELDS = {tfields} is outside 0..999")
    if bitpix not in _BITPIX_BYTES:
        raise error(path, f"{where} keyword BITPIX = {bitpix} is not a FITS BITPIX")
    lengths = [axes.get(i + 1) for i in range(naxis)]
    if any(n is None or n < 0 for n in lengths):
        raise error(path, f"{where} has a missing or negative NAXISn (NAXIS = {naxis})")
    pcount = values.get("PCOUNT") or 0
    gcount = values.get("GCOUNT")
    gcount = 1 if gcount is None else gcount
    if pcount < 0 or gcount < 0:
        raise error(path, f"{where} has a negative PCOUNT or GCOUNT")
    count = 1
    for n in lengths:
        count *= int(n or 0)
    if naxis == 0:
        count = 0
    return _BITPIX_BYTES[bitpix] * gcount * (pcount + count)


def _walk_structure(
    handle: Any,
    size: int | None,
    path: str | Path,
    error: type[InputFileError],
    max_hdus: int,
    corrupt: str,
) -> None:
    """Check the structure of every HDU of an open FITS stream (see :func:`check_fits_structure`).

    Parameters
    ----------
    handle : binary file
        The (decompressed) file, positioned at its start.
    size : int or None
        The file's length [bytes]; None for a compressed stream (data extents not checked).
    path, error, max_hdus, corrupt
        As for :func:`check_fits_structure`.
    """
    offset = 0
    for index in range(max_hdus + 1):
        header = _read_structure_header(handle, path, error)
        if header is None:
            return  # the end of the last HDU, or a truncated header: astropy reports it
        values, axes, blocks = header
        if index == max_hdus:
            raise error(path, f"more than {max_hdus} HDUs")
        where = f"HDU {index}"
        nbytes = _data_size(values, axes, where, path, error)
        if nbytes is None:
            return  # astropy reports a header without them
        padded = -(-nbytes // 2880) * 2880
        offset += blocks * 2880
        if size is not None and offset + nbytes > size:
            raise error(
                path,
                f"{corrupt} (truncated: {where} needs {nbytes} data bytes, "
                f"the file has {max(size - offset, 0)} after its header)",
            )
        offset += padded
        try:
            handle.seek(offset)
        except (OSError, EOFError, zlib.error) as exc:
            raise error(path, f"unreadable FITS file ({exc})") from None


def check_fits_structure(
    source: str | Path | bytes,
    path: str | Path,
    *,
    error: type[InputFileError] = InputFileError,
    max_hdus: int = 1000,
    corrupt: str = "corrupt FITS file",
) -> None:
    """Walk a FITS file's headers (not its data) and refuse a structure astropy cannot survive.

    astropy loops over NAXIS before checking it (a header with ``NAXIS = 2147483648`` takes
    hours) and allocates what NAXISn says; so before ``fits.open`` every header's BITPIX,
    NAXIS (0–999), NAXISn, PCOUNT and GCOUNT must be non-negative integers and every HDU's
    data must lie inside the file. A gzip-compressed file is walked through its decompressed
    stream (without the data-inside-the-file check). Other problems are left to astropy.

    Parameters
    ----------
    source : str, Path or bytes
        The file, or its contents.
    path : str or Path
        Its name, for the message.
    error : type of InputFileError
        The error raised.
    max_hdus : int
        Largest number of HDUs accepted.
    corrupt : str
        How the message starts for a truncated file (each reader keeps its own wording).
    """
    import gzip
    import io

    if isinstance(source, bytes | bytearray):
        handle: Any = io.BytesIO(source)
        size: int | None = len(source)
    else:
        try:
            handle = Path(source).open("rb")  # noqa: SIM115 (closed below)
            size = Path(source).stat().st_size
        except OSError:
            return  # the reader's own open reports it
    with handle:
        if handle.read(2) == b"\x1f\x8b":
            handle.seek(0)
            handle = gzip.GzipFile(fileobj=handle)
            size = None
        handle.seek(0)
        _walk_structure(handle, size, path, error, max_hdus, corrupt)
