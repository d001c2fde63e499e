"""Check that a FITS product's unit strings are FITS-standard (astropy reads them silently)."""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path

from astropy import units as u
from astropy.io import fits
from astropy.table import Table


def assert_fits_units(path: Path) -> list[str]:
    """Read every HDU with warnings as errors; return the unit strings found (``KEY=value``).

    Every ``BUNIT`` and ``TUNITn`` must parse with ``u.Unit(value, format="fits")``, and every
    table HDU must load with ``astropy.table.Table.read`` without a warning.
    """
    found: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with fits.open(path) as hdul:
            for index, hdu in enumerate(hdul):
                keys = [k for k in hdu.header if k == "BUNIT" or k.startswith("TUNIT")]
                for key in keys:
                    value = str(hdu.header[key])
                    try:
                        u.Unit(value, format="fits")
                    except ValueError as exc:
                        raise AssertionError(
                            f"{path.name}[{index}] {key}={value!r}: {exc}"
                        ) from None
                    found.append(f"{key}={value}")
                if isinstance(hdu, fits.BinTableHDU | fits.TableHDU):
                    Table.read(path, hdu=index)
    return found


def assert_all_fits_units(paths: Iterable[Path]) -> dict[str, list[str]]:
    """:func:`assert_fits_units` on each file; return file name → unit strings."""
    return {path.name: assert_fits_units(path) for path in paths}
