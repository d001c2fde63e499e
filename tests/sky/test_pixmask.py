import numpy as np
import pytest

from photonpipe.sky.pixmask import SPPIXMASK, decode_mask, flagged, mask_value


def test_bits_are_those_of_the_sdss_definition() -> None:
    assert SPPIXMASK["NOPLUG"] == 0
    assert SPPIXMASK["BADSKYFIBER"] == 7
    assert SPPIXMASK["NEARBADPIXEL"] == 16
    assert SPPIXMASK["FULLREJECT"] == 18
    assert SPPIXMASK["NOSKY"] == 22
    assert SPPIXMASK["COMBINEREJ"] == 25
    assert SPPIXMASK["BADSKYCHI"] == 27
    assert SPPIXMASK["REDMONSTER"] == 28
    assert len(set(SPPIXMASK.values())) == len(SPPIXMASK) == 26


def test_decode_and_encode() -> None:
    value = (1 << 18) | (1 << 25) | (1 << 1) | (1 << 13)
    assert decode_mask(value) == ["BADTRACE", "BIT13", "FULLREJECT", "COMBINEREJ"]
    assert mask_value(["fullreject", "COMBINEREJ"]) == (1 << 18) | (1 << 25)
    with pytest.raises(KeyError):
        mask_value(["NOTAFLAG"])
    mask = np.array([[0, 1 << 18], [1 << 16, (1 << 16) | (1 << 7)]])
    np.testing.assert_array_equal(
        flagged(mask, ["FULLREJECT", "BADSKYFIBER"]), [[False, True], [False, True]]
    )
