from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from photonpipe.errors import InputFileError
from photonpipe.sky.formats import (
    HEADER_KEYWORDS,
    parse_name,
    read_spcframe,
    read_spfluxcalib,
    read_spframe,
)
from photonpipe.sky.simulate import SimulatedPlate


def test_spframe_layout(noiseless_plate: SimulatedPlate) -> None:
    path = next(noiseless_plate.directory.glob("spFrame-r2-*.fits"))
    with fits.open(path) as hdus:
        assert len(hdus) == 9
        assert hdus[3].data.dtype.names[:4] == ("FUNC", "XMIN", "XMAX", "COEFF")
        assert {"XJUMPLO", "XJUMPHI", "XJUMPVAL"} <= set(hdus[3].data.dtype.names)
        assert hdus[0].data.shape == (30, 4128)
    frame = read_spframe(path)
    assert frame.camera == "r2"
    assert frame.plugmap["FIBERID"].min() == 501  # spectrograph 2 holds fibres 501-1000
    assert frame.wset.nx == 4128
    for key in ("PLATEID", "MJD", "TAI-BEG", "TAI-END", "AIRMASS", "ALT", "AZ", "SEEING50"):
        assert key in frame.header
    assert set(HEADER_KEYWORDS) - set(frame.header) <= {"DUSTA", "DUSTB", "DUSTC", "DUSTD"}
    sigma = frame.dispersion()
    assert 0.8 < sigma.min() < sigma.max() < 1.3
    cframe = read_spcframe(path.with_name(path.name.replace("spFrame", "spCFrame")))
    assert cframe.loglam.shape == frame.flux.shape
    header, calib = read_spfluxcalib(path.with_name(path.name.replace("spFrame", "spFluxcalib")))
    assert header["CAMERAS"] == "r2"
    assert calib.shape == frame.flux.shape
    assert parse_name(path) == ("spFrame", "r2", frame.exposure)
    assert parse_name("spFrame-r2-00001234.fits.gz") == ("spFrame", "r2", 1234)
    assert parse_name("spPlate-1234-55555.fits") is None


def test_corrupt_file_names_the_file(plate_copy: Path) -> None:
    path = next(plate_copy.glob("spFrame-b1-*.fits"))
    path.write_bytes(path.read_bytes()[:20000])
    with pytest.raises(InputFileError) as info:
        read_spframe(path)
    assert info.value.path == path
    garbage = plate_copy / "spFrame-b2-00000001.fits"
    garbage.write_bytes(b"this is not FITS" * 100)
    with pytest.raises(InputFileError, match="not a readable FITS file"):
        read_spframe(garbage)
    with pytest.raises(InputFileError, match="not found"):
        read_spframe(plate_copy / "spFrame-r1-00000002.fits")


def test_missing_hdus_are_reported(plate_copy: Path) -> None:
    path = next(plate_copy.glob("spFrame-b1-*.fits"))
    with fits.open(path) as hdus:
        fits.HDUList([h.copy() for h in hdus[:6]]).writeto(path, overwrite=True)
    with pytest.raises(InputFileError, match="missing HDU 6"):
        read_spframe(path)


def test_missing_header_keyword_and_bad_shapes(plate_copy: Path) -> None:
    path = next(plate_copy.glob("spFrame-b1-*.fits"))
    with fits.open(path, mode="update") as hdus:
        del hdus[0].header["EXPOSURE"]
    with pytest.raises(InputFileError, match="lacks EXPOSURE"):
        read_spframe(path)
    other = next(plate_copy.glob("spFrame-r1-*.fits"))
    with fits.open(other, mode="update") as hdus:
        hdus[6].data = np.zeros((3, 3), dtype=np.float32)
    with pytest.raises(InputFileError, match="sky has shape"):
        read_spframe(other)


def test_gzipped_files_as_in_the_boss_archive(plate_copy: Path) -> None:
    import gzip

    from photonpipe.sky.pipeline import _companion, _group_exposures

    for path in list(plate_copy.glob("sp*.fits")):
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(path.read_bytes(), 1))
        path.unlink()
    exposures = _group_exposures(plate_copy, ("b1", "b2", "r1", "r2"))
    assert len(exposures) == 2
    spframe = next(iter(exposures.values()))["b1"]
    assert spframe.name.endswith(".fits.gz")
    frame = read_spframe(spframe)
    assert frame.flux.shape == (30, 4112)
    _, calib = read_spfluxcalib(_companion(spframe, "spFluxcalib"))
    assert calib.shape == frame.flux.shape
