"""The FITS structure check refuses headers that would make astropy allocate without bound."""

from __future__ import annotations

import io

import numpy as np
import pytest
from astropy.io import fits

from photonpipe.errors import InputFileError
from photonpipe.platform.headers import check_fits_structure


def _table_bytes() -> bytes:
    table = fits.BinTableHDU.from_columns([fits.Column("TIME", "D", array=np.arange(3.0))])
    buffer = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(buffer)
    return buffer.getvalue()


def test_a_valid_table_passes() -> None:
    check_fits_structure(_table_bytes(), "t.fits")


def test_an_enormous_tfields_is_refused() -> None:
    """Found by the fuzzer: TFIELDS = 2147483648 made astropy allocate 24 GB (the OOM killer)."""
    data = _table_bytes()
    card = f"{'TFIELDS':8}= {2147483648:>20}".ljust(80).encode()
    start = data.index(b"TFIELDS ")
    mutated = data[:start] + card + data[start + 80 :]
    with pytest.raises(InputFileError, match=r"TFIELDS = 2147483648 is outside 0\.\.999"):
        check_fits_structure(mutated, "t.fits")
