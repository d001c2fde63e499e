import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from photonpipe.sky.traceset import TraceSet, chebyshev_basis, fit_traceset, legendre_basis


def test_legendre_and_chebyshev_bases_match_numpy() -> None:
    x = np.linspace(-1, 1, 101)
    for k in range(7):
        unit = np.zeros(k + 1)
        unit[k] = 1.0
        np.testing.assert_allclose(
            legendre_basis(x, 7)[k], np.polynomial.legendre.legval(x, unit), atol=1e-14
        )
        np.testing.assert_allclose(
            chebyshev_basis(x, 7)[k], np.polynomial.chebyshev.chebval(x, unit), atol=1e-14
        )


def test_identity_traceset_shows_the_jump_convention() -> None:
    # y = c0 + c1 x' with c0 = x_mid and c1 = (XMAX - XMIN)/2 returns the natural coordinate:
    # x below XJUMPLO unchanged, x above XJUMPHI shifted by XJUMPVAL, linear in between.
    xmin, xmax = 0.0, 99.0
    tset = TraceSet(
        "legendre",
        xmin,
        xmax,
        np.array([[49.5, 49.5]]),
        xjumplo=40.0,
        xjumphi=44.0,
        xjumpval=2.0,
    )
    x, y = tset.evaluate()
    assert x.shape == (1, 100)
    np.testing.assert_allclose(y[0, :41], np.arange(41.0), atol=1e-12)
    np.testing.assert_allclose(y[0, 44:], np.arange(44.0, 100.0) + 2.0, atol=1e-12)
    np.testing.assert_allclose(y[0, 42], 42.0 + 2.0 * (42 - 40) / 4, atol=1e-12)
    _, y_nojump = tset.evaluate(ignore_jump=True)
    np.testing.assert_allclose(y_nojump[0], np.arange(100.0), atol=1e-12)


def test_fit_and_evaluate_reproduce_a_cubic_wavelength_solution() -> None:
    npix = 4112
    x = np.arange(npix, dtype=float)
    jump = (2055.0, 2057.0, 0.6)
    natural = x + 0.6 * np.clip((x - 2055.0) / 2.0, 0, 1)
    uu = (natural - 2055.5) / 2055.5
    loglam = np.vstack([3.6 + 0.12 * uu - 0.0005 * uu**2 + 0.0002 * uu**3 + d for d in (0, 1e-5)])
    tset = fit_traceset(loglam, 6, xmin=0.0, xmax=npix - 1.0, jump=jump)
    _, y = tset.evaluate()
    assert np.max(np.abs(y - loglam)) < 1e-12


def _write(tset: TraceSet, path: Path) -> fits.FITS_rec:
    fits.HDUList([fits.PrimaryHDU(), tset.to_hdu()]).writeto(path)
    with fits.open(path) as hdus:
        return hdus[1].data.copy()


def test_fits_round_trip_and_agreement_with_pydl(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    coeff = np.column_stack([rng.normal(3.6, 0.01, 20), rng.normal(0.12, 0.001, 20)])
    coeff = np.column_stack([coeff, rng.normal(0, 1e-4, (20, 4))])
    tset = TraceSet("legendre", 0.0, 4127.0, coeff, 2063.0, 2065.0, 1.3)
    data = _write(tset, tmp_path / "tset.fits")
    back = TraceSet.from_table(data)
    assert back.ntrace == 20
    assert back.ncoeff == 6
    assert back.has_jump
    np.testing.assert_array_equal(back.coeff, coeff)
    _, ours = back.evaluate()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydl imports deprecated astropy test helpers
        from pydl.pydlutils.trace import TraceSet as PydlTraceSet
    _, theirs = PydlTraceSet(data).xy()
    assert theirs.shape == ours.shape
    assert np.max(np.abs(theirs - ours)) < 1e-12


def test_traceset_without_jump_columns_and_bad_tables(tmp_path: Path) -> None:
    tset = TraceSet("chebyshev", 0.0, 10.0, np.array([[1.0, 2.0, 3.0]]))
    data = _write(tset, tmp_path / "t.fits")
    back = TraceSet.from_table(data)
    assert not back.has_jump
    _, y = back.evaluate(np.array([0.0, 5.0, 10.0]))
    # T0 + 2 T1 + 3 T2 at x' = -1, 0, 1
    np.testing.assert_allclose(y[0], [1 - 2 + 3, 1 - 3, 1 + 2 + 3])
    table = fits.BinTableHDU.from_columns([fits.Column("XMIN", "D", array=[0.0])]).data
    with pytest.raises(KeyError, match="COEFF"):
        TraceSet.from_table(table)


def test_bases_against_closed_forms() -> None:
    # independent of numpy.polynomial: P2, P3 written out, T_k = cos(k arccos x)
    x = np.linspace(-1, 1, 201)
    legendre = legendre_basis(x, 4)
    np.testing.assert_allclose(legendre[2], (3 * x**2 - 1) / 2, atol=1e-15)
    np.testing.assert_allclose(legendre[3], (5 * x**3 - 3 * x) / 2, atol=1e-15)
    chebyshev = chebyshev_basis(x, 9)
    for k in range(9):
        np.testing.assert_allclose(chebyshev[k], np.cos(k * np.arccos(x)), atol=1e-13)
    assert legendre.shape == (4, 201)
    assert chebyshev.flags.c_contiguous
