"""Shared spectral science added for the sky analysis: air/vacuum, window fluxes, combination,
joint line fits and synthetic photometry, each against values derived independently."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import ndtr

from photonpipe.spectra.airvac import air_to_vacuum, vacuum_to_air
from photonpipe.spectra.combine import combine_spectra
from photonpipe.spectra.emission import line_window_flux
from photonpipe.spectra.multiline import fit_region, gaussian_pixel_profiles, separate_lines
from photonpipe.spectra.photometry import ab_magnitudes, vega_magnitudes


@pytest.mark.parametrize(
    ("air_nm", "vacuum_nm"),
    [  # NIST Atomic Spectra Database air/vacuum pairs
        (656.2801, 656.4614),  # H alpha
        (557.7339, 557.8888),  # [O I]
        (588.9950, 589.1583),  # Na D2
        (630.0304, 630.2046),  # [O I]
    ],
)
def test_air_to_vacuum_matches_published_pairs(air_nm: float, vacuum_nm: float) -> None:
    assert air_to_vacuum(air_nm) == pytest.approx(vacuum_nm, abs=2e-4)
    assert vacuum_to_air(vacuum_nm) == pytest.approx(air_nm, abs=2e-4)


def test_ciddor_agrees_with_the_iau_edlen_formula_and_round_trips() -> None:
    from photonpipe.sky.simulate import air_to_vacuum_angstrom  # Morton (2000), independent

    wave = np.linspace(320.0, 1050.0, 300)
    assert np.max(np.abs(air_to_vacuum(wave) - air_to_vacuum_angstrom(wave * 10) / 10)) < 1e-5
    np.testing.assert_allclose(vacuum_to_air(air_to_vacuum(wave)), wave, atol=1e-9)


def test_wavelengths_in_angstrom_are_refused() -> None:
    with pytest.raises(ValueError, match="wrong unit"):
        air_to_vacuum([5577.339])


def _line_spectrum(rng: np.random.Generator | None, sigma_noise: float = 0.0):  # type: ignore[no-untyped-def]
    wave = np.linspace(550.0, 566.0, 800)  # 0.02 nm pixels
    edges = np.concatenate([[wave[0] - 0.01], 0.5 * (wave[1:] + wave[:-1]), [wave[-1] + 0.01]])
    profile = np.diff(ndtr((edges - 557.9) / 0.08)) / np.diff(edges)
    continuum = 2.0 + 0.05 * (wave - 558.0)
    flux = continuum + 30.0 * profile  # line flux 30 [flux × nm]
    noise = np.zeros_like(wave) if rng is None else rng.normal(0.0, sigma_noise, wave.size)
    return wave, flux + noise, continuum


def test_window_flux_recovers_a_gaussian_on_a_sloped_continuum() -> None:
    wave, flux, _ = _line_spectrum(None)
    ivar = np.full(wave.size, 1e4)
    result = line_window_flux(wave, flux, ivar, (557.4, 558.4), ((554.0, 557.0), (558.8, 561.8)))
    assert result.flag == ""
    assert result.flux == pytest.approx(30.0, rel=1e-4)
    assert result.continuum == pytest.approx(2.0 + 0.05 * (557.9 - 558.0), rel=1e-6)


def test_window_flux_errors_match_the_scatter_of_noisy_realisations() -> None:
    rng = np.random.default_rng(4)
    values, errors = [], []
    for _ in range(300):
        wave, flux, _ = _line_spectrum(rng, 0.5)
        r = line_window_flux(
            wave, flux, np.full(wave.size, 4.0), (557.4, 558.4), ((554.0, 557.0), (558.8, 561.8))
        )
        values.append(r.flux)
        errors.append(r.error)
    pulls = (np.array(values) - 30.0) / np.array(errors)
    assert abs(np.mean(pulls)) < 0.2
    assert 0.85 < np.std(pulls) < 1.15


def test_window_flux_flags_what_it_cannot_measure() -> None:
    wave, flux, _ = _line_spectrum(None)
    ivar = np.ones(wave.size)
    bands = ((554.0, 557.0), (558.8, 561.8))
    outside = line_window_flux(wave, flux, ivar, (600.0, 601.0), bands)
    assert np.isnan(outside.flux)
    assert "outside" in outside.flag
    nan = line_window_flux(wave, np.full(wave.size, np.nan), ivar, (557.4, 558.4), bands)
    assert np.isnan(nan.flux)
    assert "no valid pixels" in nan.flag
    lines_everywhere = line_window_flux(
        wave,
        flux,
        ivar,
        (557.4, 558.4),
        bands,
        exclude=np.arange(550, 566, 0.1),
        exclude_half_width=0.2,
    )
    assert np.isnan(lines_everywhere.flux)
    assert "continuum" in lines_everywhere.flag


def test_combination_propagates_variance_and_rejects_outlier_spectra() -> None:
    rng = np.random.default_rng(7)
    n, npix = 30, 2000
    truth = 5.0 + np.sin(np.linspace(0, 6, npix))
    sigma = rng.uniform(0.2, 0.6, (n, 1)) * np.ones((1, npix))
    flux = truth + rng.normal(0.0, 1.0, (n, npix)) * sigma
    flux[3] *= 1.4  # a fibre with a target in it
    flux[5] = np.nan  # a dead fibre
    flux[8, 100:1900] = np.nan  # a mostly rejected fibre
    result = combine_spectra(flux, sigma**2)
    assert not result.accepted[3]
    assert "scale" in (result.reasons[3] or "")
    assert not result.accepted[5]
    assert result.reasons[5] == "no valid pixels"
    assert not result.accepted[8]
    assert result.accepted.sum() == n - 3
    good = result.accepted
    expected_var = 1.0 / np.sum(1.0 / sigma[good] ** 2, axis=0)
    np.testing.assert_allclose(result.variance, expected_var, rtol=1e-12)
    pulls = (result.flux - truth) / np.sqrt(result.variance)
    assert abs(np.mean(pulls)) < 0.1
    assert 0.93 < np.std(pulls) < 1.07
    assert 0.9 < np.median(result.scatter_variance / result.variance) < 1.1


def test_box_convolved_profile_has_unit_area_and_matches_numerical_convolution() -> None:
    edges = np.linspace(0.0, 40.0, 401)
    p = gaussian_pixel_profiles(edges, np.array([20.03]), np.array([0.9]), np.array([0.7]))[:, 0]
    assert np.sum(p * np.diff(edges)) == pytest.approx(1.0, abs=1e-10)
    fine = -0.35 + 0.7 * (np.arange(2000) + 0.5) / 2000  # box as many shifted Gaussians
    numeric = np.mean(
        [np.diff(ndtr((edges - 20.03 - s) / 0.9)) / np.diff(edges) for s in fine], axis=0
    )
    np.testing.assert_allclose(p, numeric, atol=2e-6)


def test_region_fit_recovers_blended_lines_with_honest_errors() -> None:
    rng = np.random.default_rng(11)
    wave = np.linspace(700.0, 712.0, 600)
    edges = np.concatenate([[wave[0] - 0.01], 0.5 * (wave[1:] + wave[:-1]), [wave[-1] + 0.01]])
    centres = np.array([702.0, 703.1, 703.45, 707.0, 710.2])
    fluxes = np.array([5.0, 12.0, 6.0, 20.0, 3.0])
    listed = centres + 0.015  # a line list with a small common error
    sigmas = 0.09 * centres / 706.0  # constant in velocity, as the model assumes
    model = 1.0 + 0.01 * (wave - 706) + gaussian_pixel_profiles(edges, centres, sigmas) @ fluxes
    pulls = []
    for _ in range(60):
        variance = np.full(wave.size, 0.02**2)
        data = model + rng.normal(0.0, 0.02, wave.size)
        fit, _, _cont = fit_region(wave, data, variance, listed, 0.1)
        pulls.append((fit.flux - fluxes) / fit.flux_error)
        assert fit.shift == pytest.approx(-0.015, abs=0.005)
    pulls_arr = np.array(pulls)
    assert np.all(np.abs(np.mean(pulls_arr, axis=0)) < 0.4)
    assert 0.8 < np.std(pulls_arr) < 1.2


def test_separation_of_an_all_nan_spectrum_is_an_error() -> None:
    wave = np.linspace(500, 600, 100)
    with pytest.raises(ValueError, match="no valid pixels"):
        separate_lines(wave, np.full(100, np.nan), np.ones(100), [550.0], 0.1)


def test_ab_magnitude_of_a_flat_fnu_spectrum_and_against_speclite() -> None:
    import astropy.units as u
    import speclite.filters

    wave = np.linspace(3000.0, 11500.0, 20000)  # Å
    fnu = 3631e-23 * 10 ** (-0.4 * 21.3)
    flam = fnu * 2.99792458e18 / wave**2
    for band in "ugriz":
        mags, flags = ab_magnitudes(wave, flam[None, :], f"sdss2010-{band}")
        assert flags == [None]
        assert mags[0] == pytest.approx(21.3, abs=1e-4)
    # a 5800 K blackbody against speclite's own integration
    bb = 1e-15 * (wave / 5500) ** -5 / np.expm1(1.438777e8 / (wave * 5800.0))
    for name in ("sdss2010-g", "sdss2010-r", "bessell-V", "bessell-I"):
        ours, _ = ab_magnitudes(wave, bb[None, :], name)
        theirs = speclite.filters.load_filter(name).get_ab_magnitude(
            bb * u.erg / (u.s * u.cm**2 * u.AA), wave * u.AA
        )
        assert ours[0] == pytest.approx(float(theirs), abs=2e-3)
    vega_v, _ = vega_magnitudes(wave, flam[None, :], "bessell-V")
    assert vega_v[0] == pytest.approx(21.3 - 0.02, abs=1e-3)


def test_magnitude_of_a_filter_outside_the_spectrum_is_flagged() -> None:
    wave = np.linspace(3650.0, 10400.0, 5000)
    flam = np.full((1, wave.size), 1e-17)
    mags, flags = ab_magnitudes(wave, flam, "sdss2010-u")
    assert np.isnan(mags[0])
    assert "covers" in (flags[0] or "")
