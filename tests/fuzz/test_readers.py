"""Property-based fuzzing of every reader: only PhotonpipeError subclasses may escape.

Each reader gets a small valid base file of its format (simulated or cut from real data) and
:data:`EXAMPLES` mutated copies (headers, column types, shapes, NaN/inf, truncation, HDU layout,
random bytes; see ``helpers/fuzz.py``). The slow tests run :data:`SLOW_EXAMPLES` per reader with
fresh random examples, and :data:`SPECUTILS_EXAMPLES` through the stellar reader's specutils
fallback.
"""

from __future__ import annotations

import gzip
import importlib
import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from helpers.fuzz import FuzzTarget, fuzz_reader, run_reader
from helpers.lightcurves import simulate
from photonpipe.echelle.formats import read_header, read_raw
from photonpipe.errors import InputFileError
from photonpipe.lightcurves.formats import read_events, read_x1d, validate_events
from photonpipe.lightcurves.orbit import read_spt
from photonpipe.lightcurves.simulate import Exposure
from photonpipe.sky.formats import (
    read_spcframe,
    read_spcframe_mask_loglam,
    read_spfluxcalib,
    read_spframe,
    write_spcframe,
    write_spfluxcalib,
    write_spframe,
)
from photonpipe.sky.traceset import TraceSet
from photonpipe.stellar.readers import read_spectrum_bytes

stellar_readers = importlib.import_module("photonpipe.stellar.readers")

#: astropy leaves some malformed files open, held by reference cycles that the automatic
#: garbage collection may free at any time of a run: their ResourceWarning is not a finding.
pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

#: Mutated files per reader in the default run, and in the slow run.
EXAMPLES = 2000
SLOW_EXAMPLES = 50000
#: Mutated files in the slow run through the stellar reader's specutils fallback, which hands
#: a file it does not recognise to each of specutils' loaders (~50 ms a file: 50,000 would take
#: 40 minutes per reader); the reader's own checks get SLOW_EXAMPLES above.
SPECUTILS_EXAMPLES = 5000

DATA = Path(__file__).resolve().parents[1] / "data"


def _bytes(hdul: fits.HDUList) -> bytes:
    buffer = io.BytesIO()
    hdul.writeto(buffer)
    return buffer.getvalue()


def _cut_events(path: Path, rows: int = 48) -> bytes:
    """An event file with only its first ``rows`` events (headers and GTI kept)."""
    with fits.open(path) as hdul:
        hdus = fits.HDUList([hdu.copy() for hdu in hdul])
    events = hdus["EVENTS"]
    hdus["EVENTS"] = fits.BinTableHDU(events.data[:rows], header=events.header, name="EVENTS")
    return _bytes(hdus)


def _cut_x1d(path: Path, pixels: int = 24) -> bytes:
    """An x1d with every array column cut to its first ``pixels`` pixels."""
    with fits.open(path) as hdul:
        primary = hdul[0].copy()
        sci = hdul["SCI"]
        columns = []
        for column in sci.columns:
            data = np.asarray(sci.data[column.name])
            if data.ndim == 2:
                data = data[:, :pixels]
                fmt = f"{pixels}{str(column.format).lstrip('0123456789')}"
            else:
                fmt = column.format
            columns.append(fits.Column(column.name, fmt, column.unit, array=data))
        table = fits.BinTableHDU.from_columns(columns, header=sci.header, name="SCI")
    return _bytes(fits.HDUList([primary, table]))


def _small_traceset(nfibre: int, npix: int, value: float) -> TraceSet:
    coeff = np.zeros((nfibre, 3))
    coeff[:, 0] = value
    coeff[:, 1] = 0.01
    return TraceSet("legendre", 0.0, float(npix - 1), coeff)


def _sky_header() -> fits.Header:
    header = fits.Header()
    for key, value in (
        ("PLATEID", 4055),
        ("MJD", 55359),
        ("EXPOSURE", 116475),
        ("CAMERAS", "b1"),
        ("TAI-BEG", 4.77e9),
        ("TAI-END", 4.77e9 + 900.0),
        ("EXPTIME", 900.0),
    ):
        header[key] = value
    return header


def _sky_files(tmp: Path) -> dict[str, bytes]:
    nfibre, npix = 3, 20
    rng = np.random.default_rng(1)
    plug = Table(
        {
            "FIBERID": np.arange(1, nfibre + 1, dtype=np.int32),
            "OBJTYPE": np.array(["SKY", "GALAXY", "SKY"]),
            "RA": np.array([10.0, 10.1, 10.2]),
            "DEC": np.array([1.0, 1.1, 1.2]),
            "XFOCAL": np.array([1.0, 2.0, 3.0]),
            "YFOCAL": np.array([1.0, 2.0, 3.0]),
        }
    )
    image = rng.normal(10.0, 1.0, (nfibre, npix)).astype(np.float32)
    frame = tmp / "spFrame-b1-00116475.fits"
    write_spframe(
        frame, _sky_header(), flux=image, invvar=np.ones_like(image),
        mask=np.zeros(image.shape, dtype=np.int32),
        wset=_small_traceset(nfibre, npix, 3.6), dispset=_small_traceset(nfibre, npix, 1.0),
        plugmap=plug, sky=image, ximg=image, superflat=np.ones_like(image),
    )  # fmt: skip
    cframe = tmp / "spCFrame-b1-00116475.fits"
    loglam = 3.6 + 1e-4 * np.arange(npix) + np.zeros((nfibre, 1))
    write_spcframe(
        cframe, _sky_header(), flux=image, invvar=np.ones_like(image),
        mask=np.zeros(image.shape, dtype=np.int32), loglam=loglam, dispersion=np.ones_like(image),
        plugmap=plug, sky=image, ximg=image,
    )  # fmt: skip
    calib = tmp / "spFluxcalib-b1-00116475.fits"
    write_spfluxcalib(calib, _sky_header(), np.abs(image))
    return {p.name: p.read_bytes() for p in (frame, cframe, calib)}


def _echelle_frame(tmp: Path) -> bytes:
    header = fits.Header()
    for key, value in (
        ("OBSTYPE", "LAMPFLAT"), ("OBJECTS", "none&tung&tung"),
        ("DATE-OBS", "2017-04-01T01:02:03.400"),
        ("DAY-OBS", "20170331"), ("EXPTIME", 60.0), ("SITEID", "lsc"), ("INSTRUME", "fl09"),
        ("TELESCOP", "nres01"), ("GAIN", 1.0), ("RDNOISE", 7.0), ("BIASSEC", "[33:40,1:24]"),
        ("TRIMSEC", "[1:32,1:24]"),
    ):  # fmt: skip
        header[key] = value
    raw = np.random.default_rng(2).poisson(500, (24, 40)).astype(np.int32)
    hdu = fits.CompImageHDU(raw, header=header, compression_type="RICE_1", name="SCI")
    return _bytes(fits.HDUList([fits.PrimaryHDU(), hdu]))


def _stellar_image() -> bytes:
    """The first 64 pixels of the real MIKE spectrum of HD 140283 (tests/data/stellar)."""
    data = gzip.decompress((DATA / "stellar" / "hd140283_mike_rv.fits.gz").read_bytes())
    with fits.open(io.BytesIO(data)) as hdul:
        hdu = fits.PrimaryHDU(hdul[0].data[:64], header=hdul[0].header)
    return _bytes(fits.HDUList([hdu]))


def _stellar_table() -> bytes:
    wave = np.linspace(5000.0, 5010.0, 32)
    table = fits.BinTableHDU.from_columns(
        [
            fits.Column("WAVELENGTH", "D", "Angstrom", array=wave),
            fits.Column("FLUX", "E", array=np.ones(32)),
            fits.Column("ERROR", "E", array=np.full(32, 0.01)),
        ]
    )
    return _bytes(fits.HDUList([fits.PrimaryHDU(), table]))


def _native_only(name: str) -> Callable[[bytes], object]:
    """The stellar reader without its specutils fallback (tried in the slow run only).

    The fallback hands files photonpipe does not recognise to specutils' loaders, each guarded
    by the reader; it costs ~50 ms a file, too slow for thousands of files in the default run.
    """

    def read(data: bytes) -> object:
        original = stellar_readers._read_with_specutils

        def refuse(data: bytes, path: Path, name: str, native: InputFileError) -> object:
            raise native

        stellar_readers._read_with_specutils = refuse  # type: ignore[assignment]
        try:
            return read_spectrum_bytes(data, name)
        finally:
            stellar_readers._read_with_specutils = original

    return read


def _streamed(path: Path) -> None:
    """Read an event file as the extraction does: streamed, every chunk read and checked."""
    events = read_events(path, stream=True)
    validate_events(events)
    if events.stream is not None:
        for _ in events.stream.chunks(16):
            pass


@pytest.fixture(scope="module")
def targets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, FuzzTarget]:
    tmp = tmp_path_factory.mktemp("fuzz-bases")
    cos = simulate(tmp / "cos", Exposure("lfuz01abq", exptime=60.0, flux=1e-15))
    stis = simulate(tmp / "stis", Exposure("ofuz01abq", mode="G140L", exptime=60.0, flux=1e-15))
    corrtag = next(p for p in cos.files if p.name.endswith("_corrtag_a.fits"))
    cos_x1d = next(p for p in cos.files if p.name.endswith("_x1d.fits"))
    spt = next(p for p in cos.files if p.name.endswith("_spt.fits"))
    tag = next(p for p in stis.files if p.name.endswith("_tag.fits"))
    stis_x1d = next(p for p in stis.files if p.name.endswith("_x1d.fits"))
    sky = _sky_files(tmp)
    found: list[FuzzTarget] = [
        FuzzTarget("lightcurves read_events (corrtag)", _cut_events(corrtag), read_events,
                   corrtag.name),
        FuzzTarget("lightcurves read_events stream (corrtag)", _cut_events(corrtag), _streamed,
                   corrtag.name),
        FuzzTarget("lightcurves read_events (STIS tag)", _cut_events(tag), read_events, tag.name),
        FuzzTarget("lightcurves read_x1d (COS)", _cut_x1d(cos_x1d), read_x1d, cos_x1d.name),
        FuzzTarget("lightcurves read_x1d (STIS)", _cut_x1d(stis_x1d), read_x1d, stis_x1d.name),
        FuzzTarget("lightcurves read_spt", spt.read_bytes(), read_spt, spt.name),
        FuzzTarget("echelle read_raw", _echelle_frame(tmp), read_raw,
                   "lscnrs01-fl09-20170331-0001-w00.fits.fz"),
        FuzzTarget("echelle read_header", _echelle_frame(tmp), read_header,
                   "lscnrs01-fl09-20170331-0001-w00.fits.fz"),
        FuzzTarget("sky read_spframe", sky["spFrame-b1-00116475.fits"], read_spframe,
                   "spFrame-b1-00116475.fits"),
        FuzzTarget("sky read_spcframe", sky["spCFrame-b1-00116475.fits"], read_spcframe,
                   "spCFrame-b1-00116475.fits"),
        FuzzTarget("sky read_spcframe_mask_loglam", sky["spCFrame-b1-00116475.fits"],
                   read_spcframe_mask_loglam, "spCFrame-b1-00116475.fits"),
        FuzzTarget("sky read_spfluxcalib", sky["spFluxcalib-b1-00116475.fits"], read_spfluxcalib,
                   "spFluxcalib-b1-00116475.fits"),
        FuzzTarget("stellar read_spectrum (1-D image, real MIKE)", _stellar_image(),
                   _native_only("hd140283.fits"), in_memory=True),
        FuzzTarget("stellar read_spectrum (table)", _stellar_table(),
                   _native_only("table.fits"), in_memory=True),
    ]  # fmt: skip
    return {t.name: t for t in found}


NAMES = [
    "lightcurves read_events (corrtag)",
    "lightcurves read_events stream (corrtag)",
    "lightcurves read_events (STIS tag)",
    "lightcurves read_x1d (COS)",
    "lightcurves read_x1d (STIS)",
    "lightcurves read_spt",
    "echelle read_raw",
    "echelle read_header",
    "sky read_spframe",
    "sky read_spcframe",
    "sky read_spcframe_mask_loglam",
    "sky read_spfluxcalib",
    "stellar read_spectrum (1-D image, real MIKE)",
    "stellar read_spectrum (table)",
]


@pytest.mark.parametrize("name", NAMES)
def test_base_file_is_accepted(targets: dict[str, FuzzTarget], name: str, tmp_path: Path) -> None:
    """The unmutated base file reads: the fuzzing starts from a valid file of the format."""
    target = targets[name]
    assert run_reader(target, target.base, tmp_path / target.filename) is False


@pytest.mark.parametrize("name", NAMES)
def test_fuzzed_reader_raises_only_photonpipe_errors(
    targets: dict[str, FuzzTarget], name: str
) -> None:
    report = fuzz_reader(targets[name], EXAMPLES)
    assert report.files >= EXAMPLES
    assert report.refused > 0  # the mutations do reach the checks


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_fuzzed_reader_slow(targets: dict[str, FuzzTarget], name: str) -> None:
    report = fuzz_reader(targets[name], SLOW_EXAMPLES, derandomize=False)
    assert report.files >= SLOW_EXAMPLES


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in NAMES if n.startswith("stellar")])
def test_fuzzed_reader_slow_with_specutils(targets: dict[str, FuzzTarget], name: str) -> None:
    """The stellar reader with its specutils fallback: SPECUTILS_EXAMPLES files (~50 ms each)."""
    target = targets[name]
    with_specutils = lambda data: read_spectrum_bytes(data, "fuzz.fits")  # noqa: E731
    target = FuzzTarget(f"{name} + specutils", target.base, with_specutils, in_memory=True)
    report = fuzz_reader(target, SPECUTILS_EXAMPLES, derandomize=False)
    assert report.files >= SPECUTILS_EXAMPLES
