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


def _rice_bytes() -> bytes:
    image = np.random.default_rng(2).poisson(500, (24, 40)).astype(np.int32)
    buffer = io.BytesIO()
    hdu = fits.CompImageHDU(image, compression_type="RICE_1", name="SCI")
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(buffer)
    return buffer.getvalue()


def test_a_rice_image_passes_and_decompresses() -> None:
    data = _rice_bytes()
    check_fits_structure(data, "f.fits.fz")
    with fits.open(io.BytesIO(data)) as hdul:
        assert hdul["SCI"].data.shape == (24, 40)


@pytest.mark.parametrize("bytepix", ["-1", "3", "2147483647", "'four'"])
def test_a_bad_rice_bytepix_is_refused(bytepix: str) -> None:
    """Found by the slow fuzz run: BYTEPIX = -1 or 2**31 - 1 crashed the process
    (segmentation fault in astropy's RICE_1 decoder when the pixels were read)."""
    data = _rice_bytes()
    start = data.index(b"ZNAME2  = 'BYTEPIX '")
    value = data.index(b"ZVAL2   = ", start)
    card = f"{'ZVAL2':8}= {bytepix:>20}".ljust(80).encode()
    mutated = data[:value] + card + data[value + 80 :]
    with pytest.raises(InputFileError, match=r"BYTEPIX \(ZNAME2\) = .* is not one of 1, 2, 4, 8"):
        check_fits_structure(mutated, "f.fits.fz")
