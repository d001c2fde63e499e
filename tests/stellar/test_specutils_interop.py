"""Stellar spectra with units, to and from specutils, and sessions of files only specutils reads."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import specutils
from astropy import units as u
from astropy.io import fits
from astropy.nddata import StdDevUncertainty

from photonpipe.cli.main import main
from photonpipe.errors import InputFileError
from photonpipe.spectra.spectrum import Spectrum
from photonpipe.stellar.readers import read_spectrum
from photonpipe.stellar.session import Session

SPECUTILS_SPECTRUM = getattr(specutils, "Spectrum", None) or specutils.Spectrum1D
PACKAGE_DATA = Path(__file__).resolve().parents[2] / "src" / "photonpipe" / "stellar" / "data"
SDSS_FLUX_UNIT = u.Unit("1e-17 erg / (s cm2 Angstrom)")


def _write_sdss_spec(path: Path) -> dict[str, np.ndarray]:
    """An SDSS-III/IV ``spec`` file (BOSS data model: COADD table of loglam, flux, ivar, masks).

    photonpipe's readers do not know ``loglam`` columns, so only specutils reads it. The header
    and column layout follow the data model at data.sdss.org (BOSS_SPECTRO_REDUX/.../spec);
    the values are made up here so the test knows them.
    """
    rng = np.random.default_rng(3)
    loglam = (3.5800 + 1e-4 * np.arange(3000)).astype(np.float32)
    wave = 10.0 ** loglam.astype(np.float64)
    flux = (20.0 - 8.0 * np.exp(-0.5 * ((wave - 5183.6) / 1.5) ** 2)).astype(np.float32)
    ivar = rng.uniform(0.5, 4.0, wave.size).astype(np.float32)
    and_mask = np.zeros(wave.size, dtype=np.int32)
    and_mask[[10, 11, 2000]] = 1 << 22  # NOSKY
    primary = fits.PrimaryHDU()
    for key, value in {
        "TELESCOP": "SDSS 2.5-M",
        "VERS2D": "v5_13_2",
        "FIBERID": 12,
        "PLATEID": 1234,
        "MJD": 56789,
        "OBJECT": "SIM-BOSS-STAR",
        "RA": 150.25,
        "DEC": 2.5,
        "BUNIT": "1E-17 erg/cm^2/s/Ang",  # as the real files write it
    }.items():
        primary.header[key] = value
    coadd = fits.BinTableHDU.from_columns(
        [
            fits.Column("flux", "E", array=flux),
            fits.Column("loglam", "E", array=loglam),
            fits.Column("ivar", "E", array=ivar),
            fits.Column("and_mask", "J", array=and_mask),
            fits.Column("or_mask", "J", array=and_mask),
        ],
        name="COADD",
    )
    fits.HDUList([primary, coadd]).writeto(path)
    return {"wave": wave, "flux": flux, "ivar": ivar, "masked": and_mask != 0}


def test_session_of_a_file_only_specutils_reads(tmp_path: Path) -> None:
    path = tmp_path / "spec-1234-56789-0012.fits"
    truth = _write_sdss_spec(path)
    session = Session.new([path])
    assert session.readers == {path.name: "specutils 'SDSS-III/IV spec'"}
    assert session.state["history"][-1]["readers"] == session.readers
    order = session.order(0)
    assert session.n_orders == 1
    # specutils computes 10**loglam in the file's float32: 1e-7 relative (0.03 km/s at R~2000)
    np.testing.assert_allclose(order.wavelength, truth["wave"], rtol=2e-7)
    np.testing.assert_allclose(order.flux[~truth["masked"]], truth["flux"][~truth["masked"]])
    ivar = np.where(truth["masked"], 0.0, truth["ivar"])
    np.testing.assert_allclose(order.ivar, ivar)
    assert order.unit == SDSS_FLUX_UNIT
    assert order.meta["header"]["OBJECT"] == "SIM-BOSS-STAR"
    assert order.meta["noise_known"] is True
    # A saved session re-reads the same file with the same reader.
    loaded = Session.load(session.save(tmp_path / "boss.smh"))
    assert loaded.readers == session.readers
    np.testing.assert_array_equal(loaded.order(0).flux, order.flux)


def test_session_new_prints_the_reader_of_each_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sdss = tmp_path / "spec-1234-56789-0012.fits"
    _write_sdss_spec(sdss)
    mike = PACKAGE_DATA / "rv_template_giant_hd122563.fits"
    smh = tmp_path / "two.smh"
    assert main(["session", "new", str(sdss), str(mike), "-o", str(smh)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{smh}: 2 orders from 2 file(s)"
    assert out[1:] == [
        f"  {sdss.name}: read by specutils 'SDSS-III/IV spec'",
        f"  {mike.name}: read by photonpipe 1-D FITS image",
    ]


def test_without_specutils_the_error_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "spec-1234-56789-0012.fits"
    _write_sdss_spec(path)
    monkeypatch.setitem(sys.modules, "specutils", None)
    with pytest.raises(InputFileError) as caught:
        read_spectrum(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: table COADD has no wavelength and flux columns")
    assert "pip install 'photonpipe[specutils]'" in message


def test_unreadable_by_both_keeps_photonpipes_reason(tmp_path: Path) -> None:
    path = tmp_path / "nowcs.fits"
    fits.PrimaryHDU(np.ones(10)).writeto(path)
    # specutils' generic wcs1d-fits loader would take pixel numbers for Å; it is not asked.
    with pytest.raises(InputFileError, match=r"without a wavelength WCS.*specutils: none of its"):
        read_spectrum(path)


def test_real_mike_spectrum_agrees_with_specutils_own_reader() -> None:
    """photonpipe's 1-D WCS reader and specutils' wcs1d-fits loader share no code."""
    path = PACKAGE_DATA / "rv_template_giant_hd122563.fits"
    (ours,) = read_spectrum(path)
    theirs = SPECUTILS_SPECTRUM.read(path, format="wcs1d-fits")
    np.testing.assert_allclose(ours.wavelength, theirs.spectral_axis.to_value(u.AA), rtol=1e-12)
    np.testing.assert_allclose(ours.flux, theirs.flux.value)
    converted = Spectrum.from_specutils(theirs)
    np.testing.assert_allclose(converted.wavelength, ours.wavelength, rtol=1e-12)


def test_files_specutils_writes_are_read_with_their_units(tmp_path: Path) -> None:
    spectrum = SPECUTILS_SPECTRUM(
        flux=np.linspace(1.0, 2.0, 50) * u.mJy,
        spectral_axis=np.linspace(500.0, 505.0, 50) * u.nm,
        uncertainty=StdDevUncertainty(np.full(50, 0.05) * u.mJy),
    )
    path = tmp_path / "from_specutils.fits"
    spectrum.write(path, format="tabular-fits")
    (order,) = read_spectrum(path)
    assert order.meta["reader"] == "photonpipe FITS table"
    np.testing.assert_allclose(order.wavelength, np.linspace(5000.0, 5050.0, 50))
    assert order.unit == u.mJy
    np.testing.assert_allclose(order.ivar, 400.0)
    # ... and the order goes back to specutils with the same numbers.
    back = order.to_specutils()
    np.testing.assert_allclose(back.spectral_axis.to_value(u.nm), spectrum.spectral_axis.value)
    np.testing.assert_allclose(back.flux.to_value(u.mJy), spectrum.flux.value)


def test_flux_unit_from_bunit(tmp_path: Path) -> None:
    header = fits.Header({"CRVAL1": 5000.0, "CDELT1": 0.1, "BUNIT": "erg s-1 cm-2 Angstrom-1"})
    path = tmp_path / "calibrated.fits"
    fits.PrimaryHDU(np.ones(20), header=header).writeto(path)
    (order,) = read_spectrum(path)
    assert order.unit == u.erg / u.s / u.cm**2 / u.AA
    header["BUNIT"] = "not a unit at all"
    fits.PrimaryHDU(np.ones(20), header=header).writeto(path, overwrite=True)
    (order,) = read_spectrum(path)
    assert order.unit == u.dimensionless_unscaled  # an unknown unit is not claimed
