"""SDSS spectroscopic pixel mask bits (SPPIXMASK), decoded by name.

Bit numbers are those of the idlspec2d ``sdssMaskbits.par`` SPPIXMASK definition, as listed in
the project's reference data (``shared/data/README.md``).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

#: SPPIXMASK bit number of each flag.
SPPIXMASK: dict[str, int] = {
    "NOPLUG": 0,
    "BADTRACE": 1,
    "BADFLAT": 2,
    "BADARC": 3,
    "MANYBADCOLUMNS": 4,
    "MANYREJECTED": 5,
    "LARGESHIFT": 6,
    "BADSKYFIBER": 7,
    "NEARWHOPPER": 8,
    "WHOPPER": 9,
    "SMEARIMAGE": 10,
    "SMEARHIGHSN": 11,
    "SMEARMEDSN": 12,
    "NEARBADPIXEL": 16,
    "LOWFLAT": 17,
    "FULLREJECT": 18,
    "PARTIALREJECT": 19,
    "SCATTEREDLIGHT": 20,
    "CROSSTALK": 21,
    "NOSKY": 22,
    "BRIGHTSKY": 23,
    "NODATA": 24,
    "COMBINEREJ": 25,
    "BADFLUXFACTOR": 26,
    "BADSKYCHI": 27,
    "REDMONSTER": 28,
}

#: Flags whose pixels SkyModelling (and photonpipe) drop from sky spectra (set to NaN).
DEFAULT_REJECT_FLAGS: tuple[str, ...] = (
    "FULLREJECT",
    "COMBINEREJ",
    "BADSKYFIBER",
    "NOSKY",
    "BADTRACE",
    "NOPLUG",
    "BADFLAT",
)


def mask_value(names: Iterable[str]) -> int:
    """Integer with the bits of the named flags set.

    Parameters
    ----------
    names : iterable of str
        SPPIXMASK flag names (case-insensitive).

    Returns
    -------
    int
        Bitwise OR of ``1 << bit`` for each flag.

    Raises
    ------
    KeyError
        For a name that is not an SPPIXMASK flag.
    """
    value = 0
    for name in names:
        key = name.upper()
        if key not in SPPIXMASK:
            raise KeyError(f"unknown SPPIXMASK flag {name!r}")
        value |= 1 << SPPIXMASK[key]
    return value


def decode_mask(value: int) -> list[str]:
    """Names of the flags set in one mask value, in bit order.

    Parameters
    ----------
    value : int
        SPPIXMASK value of one pixel.

    Returns
    -------
    list of str
        Flag names; bits without a name are reported as ``"BIT<n>"``.
    """
    value = int(value)
    by_bit = {bit: name for name, bit in SPPIXMASK.items()}
    names = []
    bit = 0
    while value >> bit:
        if (value >> bit) & 1:
            names.append(by_bit.get(bit, f"BIT{bit}"))
        bit += 1
    return names


def flagged(mask: npt.ArrayLike, names: Iterable[str]) -> npt.NDArray[np.bool_]:
    """Pixels where any of the named flags is set.

    Parameters
    ----------
    mask : array_like of int
        SPPIXMASK values (any shape).
    names : iterable of str
        Flags to test.

    Returns
    -------
    numpy.ndarray of bool
        Same shape as ``mask``.
    """
    return (np.asarray(mask).astype(np.int64) & mask_value(names)) != 0
