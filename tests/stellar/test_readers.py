"""Spectrum readers: 1-D FITS (linear/log WCS), IRAF multispec, FITS tables, ASCII, real MIKE."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from photonpipe.errors import InputFileError
from photonpipe.spectra.spectrum import Spectrum
from photonpipe.stellar.readers import read_spectrum, read_spectrum_bytes
from photonpipe.stellar.simulate import SimulatedLine, simulate_echelle, write_multispec

DATA = Path(__file__).resolve().parents[1] / "data" / "stellar"
PACKAGE_DATA = Path(__file__).resolve().parents[2] / "src" / "photonpipe" / "stellar" / "data"


def _write_image(path: Path, data: np.ndarray, cards: dict) -> Path:
    header = fits.Header()
    for key, value in cards.items():
        header[key] = value
    fits.PrimaryHDU(data, header=header).writeto(path)
    return path


def test_linear_wcs(tmp_path: Path) -> None:
    flux = np.linspace(1.0, 2.0, 11)
    path = _write_image(
        tmp_path / "lin.fits", flux, {"CRVAL1": 5000.0, "CDELT1": 0.5, "CRPIX1": 3.0}
    )
    (order,) = read_spectrum(path)
    # pixel 3 (1-based) is at 5000 Å
    np.testing.assert_allclose(order.wavelength, 5000.0 + 0.5 * (np.arange(1, 12) - 3.0))
    np.testing.assert_allclose(order.flux, flux)
    assert order.meta["source"] == "lin.fits"


def test_log_wcs_iraf_and_fits_standard(tmp_path: Path) -> None:
    flux = np.ones(5)
    iraf = _write_image(
        tmp_path / "log.fits", flux, {"CRVAL1": 3.7, "CDELT1": 1e-5, "CRPIX1": 1.0, "DC-FLAG": 1}
    )
    (order,) = read_spectrum(iraf)
    np.testing.assert_allclose(order.wavelength, 10 ** (3.7 + 1e-5 * np.arange(5)), rtol=1e-14)
    std = _write_image(
        tmp_path / "wavelog.fits",
        flux,
        {"CTYPE1": "WAVE-LOG", "CRVAL1": 5000.0, "CDELT1": 0.05, "CRPIX1": 1.0},
    )
    (order,) = read_spectrum(std)
    # FITS paper III: λ = CRVAL · exp(CDELT (p − CRPIX) / CRVAL)
    np.testing.assert_allclose(order.wavelength, 5000.0 * np.exp(0.05 * np.arange(5) / 5000.0))


def test_hand_written_multispec_header(tmp_path: Path) -> None:
    """WAT2 cards as IRAF writes them (68 characters each, a spec split across cards)."""
    legendre = '"1 71 2 3350. 0.03 8 0. 0. 0. 1. 0. 2 3 1. 8. 3360. 10. 2."'
    chebyshev = '"2 72 2 3400. 0.03 8 0. 0. 0. 1. 2. 1 3 1. 8. 3410. 10. 2."'
    linear = '"3 73 0 3450. 0.25 8 0. 0. 0."'
    logl = '"4 74 1 3.55 1e-5 8 -0.0001 0. 0."'
    body = f"spec1 = {legendre} spec2 = {chebyshev} spec3 = {linear} spec4 = {logl}"
    # Pad so that the first card ends with a space, which astropy strips when reading: the
    # reader must restore the 68 characters of each card.
    wat2 = next(w for k in range(1, 80) if (w := "wtype=multispec" + " " * k + body)[67] == " ")
    cards = {
        "WCSDIM": 2,
        "CTYPE1": "MULTISPE",
        "CTYPE2": "MULTISPE",
        "WAT0_001": "system=multispec",
        "WAT1_001": "wtype=multispec label=Wavelength units=angstroms",
    }
    chunks = [wat2[i : i + 68] for i in range(0, len(wat2), 68)]
    assert any(c.endswith(" ") for c in chunks)
    for i, chunk in enumerate(chunks):
        cards[f"WAT2_{i + 1:03d}"] = chunk
    flux = np.arange(32, dtype=np.float32).reshape(4, 8)
    orders = read_spectrum(_write_image(tmp_path / "ms.fits", flux, cards))
    assert [o.meta["label"] for o in orders] == [f"aperture {i}" for i in (1, 2, 3, 4)]
    p = np.arange(1, 9, dtype=float)
    x = (2 * p - 9.0) / 7.0  # IRAF normalised pixel for pmin=1, pmax=8
    # Legendre P0=1, P1=x, P2=(3x²−1)/2 written out by hand
    np.testing.assert_allclose(orders[0].wavelength, 3360.0 + 10.0 * x + 2.0 * (3 * x**2 - 1) / 2)
    # Chebyshev T2 = 2x² − 1, zero-point offset 2 Å
    np.testing.assert_allclose(orders[1].wavelength, 2.0 + 3410.0 + 10.0 * x + 2.0 * (2 * x**2 - 1))
    np.testing.assert_allclose(orders[2].wavelength, 3450.0 + 0.25 * (p - 1))
    # log-linear with Doppler factor z: λ = 10^(w1 + dw (p−1)) / (1 + z)
    np.testing.assert_allclose(orders[3].wavelength, 10 ** (3.55 + 1e-5 * (p - 1)) / (1 - 1e-4))
    np.testing.assert_array_equal(orders[2].flux, flux[2])


@pytest.mark.parametrize("dispersion", ["linear", "log", "legendre", "chebyshev"])
def test_multispec_round_trip(tmp_path: Path, dispersion: str) -> None:
    lines = [SimulatedLine(5010.0 + 4.0 * i, 60.0, 0.12) for i in range(20)]
    ranges = [(5000.0, 5040.0), (5035.0, 5075.0), (5070.0, 5110.0)]
    star = simulate_echelle(ranges, lines, 12.0, pixels_per_order=1000, seed=3)
    if dispersion == "linear":  # the simulator's grid is log-uniform: make it linear
        star.orders = [
            Spectrum(np.linspace(*o.wavelength_range, len(o)), o.flux, o.ivar) for o in star.orders
        ]
    path = write_multispec(tmp_path / f"{dispersion}.fits", star.orders, dispersion)
    orders = read_spectrum(path)
    assert len(orders) == 3
    for got, want in zip(orders, star.orders, strict=True):
        np.testing.assert_allclose(got.wavelength, want.wavelength, rtol=0, atol=1e-8)
        np.testing.assert_allclose(got.flux, want.flux, rtol=1e-6)  # float32 on disk
        np.testing.assert_allclose(got.ivar, want.ivar, rtol=1e-5)


def test_fits_tables(tmp_path: Path) -> None:
    wave = np.array([np.linspace(500.0, 501.0, 50), np.linspace(501.0, 502.0, 50)])  # nm
    flux = np.ones((2, 50))
    sigma = np.full((2, 50), 0.01)
    cols = [
        fits.Column("ORDER", "J", array=np.array([90, 89])),
        fits.Column("WAVELENGTH", "50D", unit="nm", array=wave),
        fits.Column("FLUX", "50D", array=flux),
        fits.Column("UNCERTAINTY", "50D", array=sigma),
    ]
    rows = tmp_path / "rows.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(cols)]).writeto(rows)
    orders = read_spectrum(rows)
    assert [o.meta["label"] for o in orders] == ["order 90", "order 89"]
    np.testing.assert_allclose(orders[1].wavelength, wave[1] * 10.0)
    np.testing.assert_allclose(orders[0].ivar, 1e4)
    per_hdu = tmp_path / "hdus.fits"
    hdus = [fits.PrimaryHDU()]
    for i in range(2):
        table = fits.BinTableHDU.from_columns(
            [
                fits.Column("wave", "D", array=wave[i] * 10),
                fits.Column("flux", "D", array=flux[i]),
                fits.Column("ivar", "D", array=np.full(50, 4.0)),
            ]
        )
        table.header["ORDER"] = 90 - i
        hdus.append(table)
    fits.HDUList(hdus).writeto(per_hdu)
    orders = read_spectrum(per_hdu)
    assert [o.meta["label"] for o in orders] == ["90", "89"]
    np.testing.assert_allclose(orders[0].ivar, 4.0)


def test_ascii(tmp_path: Path) -> None:
    path = tmp_path / "spec.txt"
    path.write_text("# wavelength flux sigma\nwave flux err\n5000.0 1.0 0.1\n5000.1, 0.9, 0.2\n")
    (order,) = read_spectrum(path)
    np.testing.assert_allclose(order.wavelength, [5000.0, 5000.1])
    np.testing.assert_allclose(order.ivar, [100.0, 25.0])
    path.write_text("5000 1\n4999 1\n")
    with pytest.raises(InputFileError, match="not increasing"):
        read_spectrum(path)


def test_real_mike_spectra() -> None:
    (giant,) = read_spectrum(DATA / "hd122563_mike_linewindows.fits.gz")
    assert giant.wavelength[0] == pytest.approx(3400.028141407062)
    assert giant.wavelength[1] - giant.wavelength[0] == pytest.approx(0.0329575953701351)
    assert giant.meta["header"]["OBJECT"] == "HD122563"
    assert np.count_nonzero(giant.ivar) > 50_000  # NaN outside the windows -> ivar 0
    # Na D2 (5889.95 Å air) is the deepest point within ±1 Å in the rest-frame spectrum.
    near = (giant.wavelength > 5889.0) & (giant.wavelength < 5891.0)
    assert giant.wavelength[near][np.argmin(giant.flux[near])] == pytest.approx(5889.95, abs=0.05)
    (subgiant,) = read_spectrum(PACKAGE_DATA / "rv_template_subgiant_hd140283.fits")
    assert subgiant.meta["header"]["SITENAME"] == "LCO"
    assert subgiant.meta["header"]["UT-DATE"] == "2010-08-06"
    assert 4899.9 < subgiant.wavelength[0] < 4900.1


def test_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="no such file"):
        read_spectrum(tmp_path / "absent.fits")
    good = _write_image(tmp_path / "g.fits", np.ones(100), {"CRVAL1": 1.0, "CDELT1": 1.0})
    (tmp_path / "cut.fits").write_bytes(good.read_bytes()[: 2880 + 100])
    with pytest.raises(InputFileError, match=r"cut\.fits"):
        read_spectrum(tmp_path / "cut.fits")
    nowcs = _write_image(tmp_path / "nowcs.fits", np.ones(10), {})
    with pytest.raises(InputFileError, match="without a wavelength WCS"):
        read_spectrum(nowcs)
    image = _write_image(tmp_path / "img.fits", np.ones((4, 4)), {})
    with pytest.raises(InputFileError, match="without a multispec WCS"):
        read_spectrum(image)
    with pytest.raises(InputFileError, match="neither FITS nor a text table"):
        read_spectrum_bytes(b"\xff\xfe\x00binary", "x.bin")
    with pytest.raises(InputFileError, match="corrupt gzip"):
        read_spectrum_bytes(b"\x1f\x8bnot really gzip", "x.fits.gz")
