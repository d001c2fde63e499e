"""Line lists: MOOG, VALD, ECSV/FITS; md5 identity under the canonical formatting."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import pytest

from photonpipe.errors import InputFileError
from photonpipe.stellar.linelist import (
    Line,
    LineList,
    group_hash,
    read_linelist,
    read_linelist_bytes,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "stellar"

VALD_LONG = """\
                                                          Lande factors   Damping parameters
Elm Ion      WL_air(A)  Excit(eV) Vmic log gf*  Rad.   Stark    Waals   factor  depth  Reference
'Fe 1',       5001.8633,   3.8816, 1.0, -0.010, 8.230,-5.590,-7.550, 1.500, 0.634, '  1 K14 '
'  LS                                        3d7.(4F).4s a3F'
'  LS                                     3d6.(5D).4s.4p z3D*'
'Fe 2',       5018.4400,   2.8910, 1.0, -1.350, 8.490,-6.590,-7.890, 1.860, 0.812, '  2 RU '
'  LS                                        3d6.(5D).4s a6D'
'  LS                                     3d6.(5D).4p z6P*'
'CH 1',       5019.0000,   0.5000, 1.0, -2.000, 0.000, 0.000, 0.000, 0.000, 0.010, '  3 M '
'  Hb                                         X2Pi'
'  Hb                                         A2Delta'
"""


def test_moog_file_from_frebel_2013() -> None:
    lines = read_linelist(DATA / "frebel2013_hd122563_ew.moog2")
    assert len(lines) == 440
    first = lines[0]  # sorted by wavelength
    assert first.wavelength == 3456.384
    assert first.species == 22.1
    assert first.element == "Ti II"
    assert (first.expot, first.loggf, first.reference_ew) == (2.06, -0.1, 72.16)
    assert math.isnan(first.damp_vdw)
    na = next(ln for ln in lines if ln.wavelength == 5889.950)
    assert (na.element, na.reference_ew) == ("Na I", 196.64)


def test_hash_is_md5_of_documented_canonical_text() -> None:
    line = Line(5001.8633, 26.0, 3.8816, -0.01, -7.55, -5.59, 8.23, "a3F", "z3D*", "")
    text = "5001.8633|26.00000|3.8816|-0.0100|-7.5500|-5.5900|8.2300|a3F|z3D*|"
    assert line.canonical() == text
    assert line.hash == hashlib.md5(text.encode()).hexdigest()
    # formatting-only differences are the same line; real differences are not
    assert Line(5001.86330001, 26.0, 3.8816, -0.010, -7.55, -5.59, 8.23, " a3F ", "z3D*").hash == (
        line.hash
    )
    assert Line(5001.8633, 26.0, 3.8816, -0.02, -7.55, -5.59, 8.23, "a3F", "z3D*").hash != (
        line.hash
    )
    assert Line(1.0, 26.0, 0.0, -0.0).canonical() == Line(1.0, 26.0, 0.0, 0.0).canonical()
    # a reference EW is not atomic data
    assert Line(1.0, 26.0, 0.0, 0.0, reference_ew=5.0).hash == Line(1.0, 26.0, 0.0, 0.0).hash


def test_duplicates_collapse_and_groups() -> None:
    a = Line(5000.0, 26.0, 1.0, -1.0)
    b = Line(5001.0, 26.1, 2.0, -2.0)
    lines = LineList([b, a, Line(5000.0, 26.0, 1.0, -1.0, reference_ew=3.0)])
    assert len(lines) == 2
    assert lines.hashes == [a.hash, b.hash]
    assert len(lines.merged([a, b])) == 2
    assert group_hash([a.hash]) == a.hash
    assert group_hash([b.hash, a.hash]) == group_hash([a.hash, b.hash])
    expected = hashlib.md5("+".join(sorted([a.hash, b.hash])).encode()).hexdigest()
    assert group_hash([a.hash, b.hash]) == expected


def test_vald_long_format() -> None:
    lines = read_linelist_bytes(VALD_LONG.encode(), "x.vald")
    assert len(lines) == 2  # the molecule is skipped
    fe1, fe2 = lines
    assert (fe1.species, fe1.wavelength, fe1.expot, fe1.loggf) == (26.0, 5001.8633, 3.8816, -0.01)
    assert (fe1.damp_rad, fe1.damp_stark, fe1.damp_vdw) == (8.23, -5.59, -7.55)
    assert fe1.lower_level == "LS                                        3d7.(4F).4s a3F"
    assert fe1.upper_level.endswith("z3D*")
    assert fe2.species == 26.1


@pytest.mark.parametrize("suffix", [".ecsv", ".fits", ".moog"])
def test_table_round_trip(tmp_path: Path, suffix: str) -> None:
    original = read_linelist_bytes(VALD_LONG.encode(), "x.vald").merged(
        [Line(6000.0, 20.0, 1.5, -0.5, reference_ew=12.5)]
    )
    path = original.write(tmp_path / f"list{suffix}")
    back = read_linelist(path)
    if suffix == ".moog":  # MOOG has no Stark/radiative damping or levels
        assert [ln.wavelength for ln in back] == [ln.wavelength for ln in original]
        assert back[-1].reference_ew == 12.5
    else:
        assert back.hashes == original.hashes
        assert back[0].lower_level == original[0].lower_level


def test_bad_line_lists(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="no such file"):
        read_linelist(tmp_path / "none.moog")
    with pytest.raises(InputFileError, match="not a MOOG line"):
        read_linelist_bytes(b"title\n5000.0 26.0 abc\n", "bad.moog")
    with pytest.raises(InputFileError, match="no lines"):
        read_linelist_bytes(b"title only\n", "empty.moog")
    with pytest.raises(InputFileError, match="binary"):
        read_linelist_bytes(b"\xff\xfe\x00\x00", "bin")
    ecsv = LineList([Line(5000.0, 26.0, 1.0, -1.0)]).to_table()
    ecsv.remove_column("loggf")
    ecsv.write(tmp_path / "t.ecsv")
    with pytest.raises(InputFileError, match="lacks columns loggf"):
        read_linelist(tmp_path / "t.ecsv")
