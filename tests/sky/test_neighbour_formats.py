"""Issue 17.6: readers refuse real files of a neighbouring format with one line.

The real BOSS files come from the ``pydl`` test dependency's package data (idlspec2d/idlutils
test files): ``spPlate-4055-55359-0020.fits`` (a 20-fibre cut-down of a co-added BOSS plate)
and ``boss_traceset.fits`` / ``sdss_traceset.fits`` (wavelength trace sets). Before this check,
``read_spfluxcalib`` took the spPlate image as a flux calibration.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import pytest
from astropy.io import fits

from helpers.lightcurves import simulate
from photonpipe.echelle.formats import read_raw
from photonpipe.errors import InputFileError
from photonpipe.lightcurves.formats import identify, read_events, read_x1d
from photonpipe.lightcurves.orbit import read_spt
from photonpipe.lightcurves.simulate import Exposure
from photonpipe.sky.formats import (
    read_spcframe,
    read_spcframe_mask_loglam,
    read_spfluxcalib,
    read_spframe,
)
from photonpipe.sky.traceset import TraceSet
from photonpipe.stellar.readers import read_spectrum

_SPEC = importlib.util.find_spec("pydl")  # located, not imported (its import warns)
assert _SPEC is not None, "pydl is a test dependency"
assert _SPEC.submodule_search_locations
PYDL = Path(next(iter(_SPEC.submodule_search_locations)))
SPPLATE = PYDL / "pydlspec2d" / "tests" / "t" / "spPlate-4055-55359-0020.fits"
BOSS_TRACESET = PYDL / "pydlutils" / "tests" / "t" / "boss_traceset.fits"
SDSS_TRACESET = PYDL / "pydlutils" / "tests" / "t" / "sdss_traceset.fits"

Reader = Callable[[Path], object]

#: (reader, real file of another format, words the one-line refusal must contain)
REAL_CASES: list[tuple[str, Reader, Path, str]] = [
    ("spfluxcalib<-spPlate", read_spfluxcalib, SPPLATE, "co-added spPlate-like image"),
    ("spfluxcalib<-traceset", read_spfluxcalib, BOSS_TRACESET, "lacks CAMERAS"),
    ("spframe<-spPlate", read_spframe, SPPLATE, "lacks EXPOSURE"),
    ("spframe<-traceset", read_spframe, BOSS_TRACESET, "lacks PLATEID"),
    ("spcframe<-spPlate", read_spcframe, SPPLATE, "co-added spPlate-like image"),
    ("spcframe_mask<-spPlate", read_spcframe_mask_loglam, SPPLATE, "co-added spPlate-like"),
    ("spcframe<-traceset", read_spcframe, SDSS_TRACESET, "lacks CAMERAS"),
    ("stellar<-traceset", read_spectrum, BOSS_TRACESET, "no wavelength and flux columns"),
    ("echelle<-spPlate", read_raw, SPPLATE, "missing keyword(s) OBSTYPE"),
    ("echelle<-traceset", read_raw, BOSS_TRACESET, "no 2-D image"),
    ("lightcurves<-spPlate", identify, SPPLATE, "lacks INSTRUME"),
    ("lightcurves<-traceset", read_events, SDSS_TRACESET, "lacks INSTRUME"),
]


def _one_line(caught: pytest.ExceptionInfo[InputFileError], path: Path, words: str) -> None:
    message = str(caught.value)
    assert message.startswith(f"{path}: "), message
    assert words in message, message
    assert "\n" not in message
    assert caught.value.exit_code == 2


@pytest.mark.parametrize(("reader", "path", "words"),
                         [c[1:] for c in REAL_CASES], ids=[c[0] for c in REAL_CASES])  # fmt: skip
def test_real_neighbouring_file_is_refused(reader: Reader, path: Path, words: str) -> None:
    with pytest.raises(InputFileError) as caught:
        reader(path)
    _one_line(caught, path, words)


@pytest.mark.parametrize("path", [BOSS_TRACESET, SDSS_TRACESET], ids=["boss", "sdss"])
def test_real_trace_sets_are_read(path: Path) -> None:
    """The trace-set checks accept idlutils' real files: log10 λ of BOSS/SDSS cameras."""
    with fits.open(path) as hdul:
        tset = TraceSet.from_table(hdul[1].data)
        coeff_shape = hdul[1].columns["COEFF"].dim
    assert tset.func == "legendre"
    assert coeff_shape.replace(" ", "") == f"({tset.ncoeff},{tset.ntrace})"
    _, loglam = tset.evaluate()
    assert 3.55 < loglam.min() < loglam.max() < 4.05  # 3550–11200 Å, the BOSS/SDSS coverage


def test_real_trace_set_with_a_bad_function_is_refused() -> None:
    with fits.open(SDSS_TRACESET) as hdul:
        data = hdul[1].data.copy()
    data["FUNC"][0] = "spline"
    with pytest.raises(ValueError, match="FUNC 'spline' is not one of legendre, chebyshev"):
        TraceSet.from_table(data)


@pytest.fixture(scope="module")
def cos_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    simulated = simulate(tmp_path_factory.mktemp("nb"), Exposure("lnbr01abq", exptime=60.0))
    return {p.name.split("_", 1)[1]: p for p in simulated.files}


@pytest.mark.parametrize(
    ("reader", "kind", "words"),
    [
        (read_events, "x1d.fits", "an x1d file, not an event file"),
        (read_events, "spt.fits", "an spt file, not an event file"),
        (read_x1d, "corrtag_a.fits", "not an x1d spectrum"),
        (read_spt, "corrtag_a.fits", "support file lacks orbital element(s)"),
        (read_spfluxcalib, "x1d.fits", "lacks CAMERAS"),
        (read_raw, "corrtag_a.fits", "no 2-D image"),
    ],
    ids=["x1d-as-corrtag", "spt-as-corrtag", "corrtag-as-x1d", "corrtag-as-spt",
         "x1d-as-spfluxcalib", "corrtag-as-nres"],
)  # fmt: skip
def test_neighbouring_simulated_file_is_refused(
    cos_files: dict[str, Path], reader: Reader, kind: str, words: str
) -> None:
    with pytest.raises(InputFileError) as caught:
        reader(cos_files[kind])
    _one_line(caught, cos_files[kind], words)
