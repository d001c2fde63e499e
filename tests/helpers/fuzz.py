"""Mutation fuzzing of file readers with hypothesis.

A :class:`FuzzTarget` is a small valid file (``base``) and the reader under test. Hypothesis draws
a short list of mutations, which are applied to the file's bytes in memory, FITS-aware but
without astropy (so a mutation costs microseconds and can make files astropy would refuse to
write, such as a NaN header value):

* ``card``: a header card gets another value: text, an integer, a real, NaN, ±inf, a logical,
  an empty string or no value (keywords of every HDU, including NAXISn, BITPIX, TFORMn, EXTNAME);
* ``delete``: a header card becomes blank (the keyword is gone);
* ``tform``: a table column changes type, keeping or breaking its width (``D`` → ``8A``, ``2E``,
  ``K``, ``L`` ...): text where numbers were, integers where reals were, arrays where scalars were;
* ``value``: a number in a table or image becomes NaN, ±inf, 0, −1 or huge;
* ``truncate``: the file ends early (anywhere, or on a 2880-byte block boundary);
* ``drop`` / ``swap`` / ``duplicate``: an HDU is removed, two HDUs swap places, an HDU repeats;
* ``bytes``: some bytes anywhere get random values.

:func:`fuzz_reader` runs the reader on every mutated file and fails on any exception that is not
a :class:`~photonpipe.errors.PhotonpipeError` (an *escape*); hypothesis then shrinks it to the
smallest list of mutations that still escapes. Warnings are ignored inside the reader, as they
would be in production (the test run turns them into errors otherwise).
"""

from __future__ import annotations

import gc
import io
import math
import struct
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from photonpipe.errors import PhotonpipeError

BLOCK = 2880
CARD = 80

#: Values a header card may be given (FITS value field text, right-justified as FITS does).
CARD_VALUES: tuple[str, ...] = (
    "'abc'",
    "''",
    "'        '",
    "'1291'",
    "'FUV'",
    "'EVENTS'",
    "'SCI'",
    "'GTI'",
    "T",
    "F",
    "0",
    "1",
    "-1",
    "2",
    "7",
    "1000",
    "2147483648",
    "99999999999999999999",
    "0.5",
    "-1.0",
    "1.0E300",
    "-1.0E300",
    "NAN",
    "INF",
    "-INF",
    "58000.25",
    "(1.0, 2.0)",
    "",
)
#: Column formats a TFORM card may be given.
TFORMS: tuple[str, ...] = (
    "D", "E", "J", "K", "I", "B", "L", "A", "2E", "2J", "4I", "8A", "4A", "2A", "8L", "4B",
    "2D", "1000D", "0D", "16A", "3E", "PE(10)", "X",
)  # fmt: skip
#: Numbers a data value may become.
DATA_VALUES: tuple[float, ...] = (math.nan, math.inf, -math.inf, 0.0, -1.0, 1.0e30, -1.0e30)

MUTATIONS = ("card", "delete", "tform", "value", "truncate", "drop", "swap", "duplicate", "bytes")


@dataclass
class _Column:
    offset: int  # byte offset in the row
    code: str  # FITS format letter (D, E, J, ...)
    repeat: int


@dataclass
class _HDU:
    start: int  # offset of the header
    data_start: int
    end: int  # offset after the padded data
    cards: list[int]  # offsets of the non-blank, non-END cards
    tform_cards: list[int]
    image_bitpix: int | None = None  # for images with data
    image_size: int = 0  # number of pixels
    row_length: int = 0
    n_rows: int = 0
    columns: list[_Column] = field(default_factory=list)


@dataclass
class FuzzTarget:
    """A reader and the small valid file it is fuzzed from.

    Parameters
    ----------
    name : str
        Name of the reader (for reports).
    base : bytes
        A valid file of the reader's format.
    read : callable
        Called as ``read(path)`` on a file holding the mutated bytes (``path`` has ``filename``),
        or ``read(data)`` with the bytes themselves when ``in_memory`` is true.
    filename : str
        Name the file is written under (readers may look at names).
    in_memory : bool
        The reader takes bytes, not a path.
    """

    name: str
    base: bytes
    read: Callable[[Any], object]
    filename: str = "fuzz.fits"
    in_memory: bool = False
    layout: list[_HDU] = field(init=False)

    def __post_init__(self) -> None:
        self.layout = fits_layout(self.base)


_SIZES = {"L": 1, "X": 1, "B": 1, "A": 1, "I": 2, "J": 4, "K": 8, "E": 4, "D": 8, "C": 8, "M": 16}
_PACK = {"E": ">f", "D": ">d", "J": ">i", "I": ">h", "K": ">q", "B": ">B"}
_BITPIX = {-32: ">f", -64: ">d", 8: ">B", 16: ">h", 32: ">i", 64: ">q"}


def fits_layout(data: bytes) -> list[_HDU]:
    """Offsets of the HDUs, cards, table columns and image pixels of a valid FITS file."""
    layout: list[_HDU] = []
    with fits.open(io.BytesIO(data), memmap=False) as hdul:
        for index, hdu in enumerate(hdul):
            info = hdul.fileinfo(index)
            start, data_start = int(info["hdrLoc"]), int(info["datLoc"])
            size = int(info["datSpan"])
            cards, tforms = [], []
            for offset in range(start, data_start, CARD):
                key = data[offset : offset + 8].decode("ascii", "replace").strip()
                if key and key != "END":
                    cards.append(offset)
                    if key.startswith("TFORM"):
                        tforms.append(offset)
            entry = _HDU(start, data_start, data_start + size, cards, tforms)
            if isinstance(hdu, fits.BinTableHDU):
                entry.row_length = int(hdu.header["NAXIS1"])
                entry.n_rows = int(hdu.header["NAXIS2"])
                offset = 0
                for column in hdu.columns:
                    fmt = str(column.format)
                    code = fmt.lstrip("0123456789")[:1]
                    repeat = int(fmt[: len(fmt) - len(fmt.lstrip("0123456789"))] or 1)
                    entry.columns.append(_Column(offset, code, repeat))
                    offset += repeat * _SIZES.get(code, 8)
            elif hdu.header.get("NAXIS", 0) and not isinstance(hdu, fits.CompImageHDU):
                entry.image_bitpix = int(hdu.header["BITPIX"])
                entry.image_size = int(
                    np.prod([hdu.header[f"NAXIS{i + 1}"] for i in range(hdu.header["NAXIS"])])
                )
            layout.append(entry)
    return layout


def _card(key: str, value: str) -> bytes:
    text = f"{key:<8}= {value:>20}" if value else f"{key:<8}="
    return text.ljust(CARD)[:CARD].encode("ascii", "replace")


def _number(code: str, value: float) -> bytes | None:
    fmt = _PACK.get(code)
    if fmt is None:
        return None
    if code in "EDF":
        try:
            return struct.pack(fmt, value)
        except OverflowError:
            return struct.pack(fmt, math.copysign(math.inf, value))
    if not math.isfinite(value):
        return None
    integer = int(max(min(value, 2**31 - 1), -(2**31)))
    if code == "B":
        integer = integer % 256
    elif code == "I":
        integer = max(min(integer, 32767), -32768)
    return struct.pack(fmt, integer)


def _mutate_card(
    data: bytearray, hdus: list[_HDU], kind: str, hdu: _HDU | None, b: int, c: int
) -> list[_HDU]:
    """Give a header card another value, a TFORM card another format, or blank a card.

    Parameters
    ----------
    data : bytearray
        The file's bytes, changed in place.
    hdus : list of _HDU
        The layout still valid for ``data`` (empty once a structural mutation moved HDUs).
    kind : str
        ``card``, ``tform`` or ``delete``.
    hdu : _HDU or None
        The HDU chosen by the mutation (None when ``hdus`` is empty).
    b, c : int
        Choose the card and its new value.

    Returns
    -------
    list of _HDU
        ``hdus``, unchanged.
    """
    if hdu is None:
        return hdus
    cards = hdu.tform_cards if kind == "tform" else hdu.cards
    if not cards:
        return hdus
    offset = cards[b % len(cards)]
    if offset + CARD > len(data):
        return hdus
    if kind == "delete":
        data[offset : offset + CARD] = b" " * CARD
        return hdus
    key = data[offset : offset + 8].decode("ascii", "replace").strip()
    value = f"'{TFORMS[c % len(TFORMS)]}'" if kind == "tform" else CARD_VALUES[c % len(CARD_VALUES)]
    data[offset : offset + CARD] = _card(key, value)
    return hdus


def _value_position(hdu: _HDU, b: int, c: int, number: float) -> tuple[int, bytes] | None:
    """Find where a data value of an HDU goes and pack it (None: nothing to change).

    Parameters
    ----------
    hdu : _HDU
        A table or image HDU.
    b, c : int
        Choose the column, row and element (table) or pixel (image).
    number : float
        The new value.

    Returns
    -------
    (int, bytes) or None
        Byte offset in the file and the packed value.
    """
    if hdu.columns and hdu.n_rows:
        column = hdu.columns[b % len(hdu.columns)]
        row = (b // len(hdu.columns)) % hdu.n_rows
        element = (c // len(DATA_VALUES)) % column.repeat
        packed = _number(column.code, number)
        if packed is None:
            return None
        offset = hdu.data_start + row * hdu.row_length + column.offset + element * len(packed)
        return offset, packed
    if hdu.image_bitpix is not None and hdu.image_size:
        fmt = _BITPIX[hdu.image_bitpix]
        code = {">f": "E", ">d": "D", ">B": "B", ">h": "I", ">i": "J", ">q": "K"}[fmt]
        packed = _number(code, number)
        if packed is None:
            return None
        return hdu.data_start + (b % hdu.image_size) * len(packed), packed
    return None


def _mutate_value(
    data: bytearray, hdus: list[_HDU], kind: str, hdu: _HDU | None, b: int, c: int
) -> list[_HDU]:
    """Set a number in a table or image to NaN, ±inf, 0, −1 or huge (``value``).

    Parameters and return as for :func:`_mutate_card`; ``c`` also chooses the number.
    """
    if hdu is None:
        return hdus
    position = _value_position(hdu, b, c, DATA_VALUES[c % len(DATA_VALUES)])
    if position is not None:
        offset, packed = position
        if offset + len(packed) <= len(data):
            data[offset : offset + len(packed)] = packed
    return hdus


def _mutate_truncate(
    data: bytearray, hdus: list[_HDU], kind: str, hdu: _HDU | None, b: int, c: int
) -> list[_HDU]:
    """End the file early, anywhere or (odd ``c``) on a block boundary (``truncate``).

    Parameters and return as for :func:`_mutate_card`.
    """
    cut = b % max(len(data), 1)
    if c % 2:
        cut -= cut % BLOCK
    del data[cut:]
    return hdus


def _mutate_hdus(
    data: bytearray, hdus: list[_HDU], kind: str, hdu: _HDU | None, b: int, c: int
) -> list[_HDU]:
    """Remove, swap or repeat whole HDUs (``drop``, ``swap``, ``duplicate``).

    Parameters as for :func:`_mutate_card`; ``b`` chooses the other HDU.

    Returns
    -------
    list of _HDU
        Empty once the HDUs moved (their offsets are stale: later structural mutations act
        on bytes only), else ``hdus``.
    """
    if hdu is None or len(hdus) <= 1:
        return hdus
    other = hdus[b % len(hdus)]
    if hdu.end > len(data) or other.end > len(data):
        return hdus
    first = bytes(data[hdu.start : hdu.end])
    if kind == "drop":
        del data[hdu.start : hdu.end]
    elif kind == "duplicate":
        data[other.end : other.end] = first
    elif other is not hdu:
        low, high = sorted((hdu, other), key=lambda h: h.start)
        chunk = data[low.start : high.end]
        a_bytes = bytes(chunk[: low.end - low.start])
        middle = bytes(chunk[low.end - low.start : high.start - low.start])
        b_bytes = bytes(chunk[high.start - low.start :])
        data[low.start : high.end] = b_bytes + middle + a_bytes
    return []


def _mutate_bytes(
    data: bytearray, hdus: list[_HDU], kind: str, hdu: _HDU | None, b: int, c: int
) -> list[_HDU]:
    """Give 1 to 8 bytes anywhere random values, seeded by ``b`` (``bytes``).

    Parameters and return as for :func:`_mutate_card`.
    """
    if not data:
        return hdus
    rng = np.random.default_rng(b)
    for position in rng.integers(0, len(data), size=1 + c % 8):
        data[int(position)] = int(rng.integers(0, 256))
    return hdus


_Mutation = Callable[[bytearray, list[_HDU], str, _HDU | None, int, int], list[_HDU]]
#: The function applying each mutation kind.
_MUTATORS: dict[str, _Mutation] = {
    "card": _mutate_card,
    "delete": _mutate_card,
    "tform": _mutate_card,
    "value": _mutate_value,
    "truncate": _mutate_truncate,
    "drop": _mutate_hdus,
    "swap": _mutate_hdus,
    "duplicate": _mutate_hdus,
    "bytes": _mutate_bytes,
}


def mutate(base: bytes, layout: list[_HDU], ops: list[tuple[str, int, int, int]]) -> bytes:
    """Apply mutations to a FITS file's bytes (see the module docstring).

    Parameters
    ----------
    base : bytes
        The valid file.
    layout : list
        Its :func:`fits_layout`.
    ops : list of (kind, a, b, c)
        Mutation kind and three non-negative integers that choose what it acts on.
    """
    data = bytearray(base)
    hdus = list(layout)
    for kind, a, b, c in ops:
        mutator = _MUTATORS.get(kind)
        if mutator is not None:
            hdu = hdus[a % len(hdus)] if hdus else None
            hdus = mutator(data, hdus, kind, hdu, b, c)
    return bytes(data)


def mutations() -> st.SearchStrategy[list[tuple[str, int, int, int]]]:
    """Hypothesis strategy: one to four mutations."""
    index = st.integers(min_value=0, max_value=2**20)
    op = st.tuples(st.sampled_from(MUTATIONS), index, index, index)
    return st.lists(op, min_size=1, max_size=4)


@dataclass
class FuzzReport:
    """What a fuzz run did: files read, how many were refused, and the escapes."""

    files: int = 0
    refused: int = 0
    escapes: list[str] = field(default_factory=list)


def _call(target: FuzzTarget, data: bytes, path: Path) -> BaseException | bool:
    try:
        if target.in_memory:
            target.read(data)
        else:
            path.write_bytes(data)
            target.read(path)
    except PhotonpipeError:
        return True
    except Exception as exc:
        return exc
    return False


#: Files read between two garbage collections of a fuzz run (a collection costs ~0.1 s in a
#: test process; collecting after every file made the file cost 250 ms instead of a few).
COLLECT_EVERY = 200


def run_reader(
    target: FuzzTarget, data: bytes, path: Path, *, collect: bool = True
) -> BaseException | bool:
    """Run the target's reader on ``data``.

    Returns True when the reader refused the file with a PhotonpipeError, False when it
    accepted it, and the exception when any other exception escaped. With ``collect``, the
    garbage left is collected afterwards under the same warning filter.
    """
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        outcome = _call(target, data, path)
        # astropy leaves some malformed files open, held by reference cycles of its exception
        # frames: collected here, under the ignore filter, their ResourceWarning is not counted
        if collect:
            gc.collect()
    return outcome


def _collect_quietly() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gc.collect()


#: Examples per hypothesis run of a long random run, each run fresh: hypothesis keeps a record of
#: the examples of a run. One 50,000-file run on an echelle frame grew to 7-8 GB in 17 minutes;
#: runs of this size still grew (4.2 GB in 12 minutes), so that record is not the whole cause.
RUN_EXAMPLES = 5000


def fuzz_reader(target: FuzzTarget, examples: int, *, derandomize: bool = True) -> FuzzReport:
    """Run ``examples`` mutated files through the target's reader; fail on an escape.

    Parameters
    ----------
    target : FuzzTarget
        The reader and its base file.
    examples : int
        Number of mutated files hypothesis generates (with ``derandomize`` False, in runs of
        at most :data:`RUN_EXAMPLES`, so that memory stays bounded).
    derandomize : bool
        Use a fixed sequence of examples (reproducible default runs); False explores anew.

    Returns
    -------
    FuzzReport
        Counts of the run (the escapes list is empty: an escape fails the run).

    Raises
    ------
    AssertionError
        (From hypothesis, after shrinking.) The reader let a non-photonpipe exception escape.
    """
    report = FuzzReport()
    with tempfile.TemporaryDirectory(prefix="photonpipe-fuzz-") as scratch:
        path = Path(scratch) / target.filename
        while report.files < examples:
            # a derandomized run would repeat its examples: it is one run
            left = examples - report.files
            size = left if derandomize else min(RUN_EXAMPLES, left)
            before = report.files
            _fuzz_run(target, size, derandomize, path, report)
            if report.files == before:  # hypothesis had nothing more to try
                raise AssertionError(f"{target.name}: hypothesis generated no example")
    return report


def _fuzz_run(
    target: FuzzTarget, examples: int, derandomize: bool, path: Path, report: FuzzReport
) -> None:
    """One hypothesis run of ``examples`` mutated files, counted into ``report``."""

    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=derandomize,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(ops=mutations())
    def check(ops: list[tuple[str, int, int, int]]) -> None:
        data = mutate(target.base, target.layout, ops)
        report.files += 1
        escape = run_reader(target, data, path, collect=report.files % COLLECT_EVERY == 0)
        if escape is True:
            report.refused += 1
        elif escape is not False:
            raise AssertionError(
                f"{target.name}: {type(escape).__name__}: {escape} escaped for mutations {ops}"
            ) from escape

    # What the automatic collection finds between the explicit ones (every COLLECT_EVERY
    # files and at the end) is collected under the fuzz tests' ResourceWarning filter.
    try:
        check()
    finally:
        _collect_quietly()
