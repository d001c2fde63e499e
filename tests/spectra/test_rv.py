"""Precise radial velocities (photonpipe.spectra.rv) on analytic echelle spectra.

The observed orders are the analytic line spectrum evaluated at λ / (1 + z) at each pixel
(tests/helpers/rv_spectra.py), with photon noise at S/N 100 at the blaze peak; nothing in them
comes from the interpolation the code under test uses.
"""

from __future__ import annotations

import numpy as np
import pytest

from helpers.rv_spectra import (
    LineSpectrum,
    observe,
    order_wavelengths,
    random_lines,
    template_spectrum,
)
from photonpipe.spectra.rv import (
    RadialVelocityError,
    barycentric_velocity,
    coarse_velocity,
    measure_velocity,
)
from photonpipe.spectra.spectrum import C_KMS, Spectrum

ORDERS = order_wavelengths(12)


@pytest.fixture(scope="module")
def lines() -> LineSpectrum:
    return random_lines(1)


def _errors(lines: LineSpectrum, template: Spectrum, seed: int, n: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    velocities = np.linspace(-100.0, 100.0, n)
    errors, sigmas = [], []
    for velocity in velocities:
        result = measure_velocity(observe(lines, velocity, rng, orders=ORDERS), template)
        errors.append(result.velocity - velocity)
        sigmas.append(result.uncertainty)
    return np.array(errors), np.array(sigmas)


def test_velocities_from_minus_to_plus_100_kms_to_a_few_m_s(lines: LineSpectrum) -> None:
    errors, sigmas = _errors(lines, template_spectrum(lines), seed=2, n=17)
    rms = float(np.sqrt(np.mean(errors**2)))
    assert rms < 0.010  # km/s: the 10 m/s; photon noise here is about 4.5 m/s
    pulls = errors / sigmas
    assert 0.7 < np.std(pulls) < 1.4
    assert abs(np.mean(errors)) < 3 * rms / np.sqrt(len(errors)) + 0.001


def test_template_sampled_like_the_data_with_noise(lines: LineSpectrum) -> None:
    # a ZERO-like template: the star at rest observed at S/N 400, orders concatenated
    rng = np.random.default_rng(3)
    orders = observe(lines, 0.0, rng, peak_snr=400.0, orders=ORDERS)
    template = Spectrum(
        np.concatenate([o.wavelength for o in orders]),
        np.concatenate([o.flux for o in orders]),
        np.concatenate([o.ivar for o in orders]),
    )
    errors, sigmas = _errors(lines, template, seed=4, n=17)
    assert float(np.sqrt(np.mean(errors**2))) < 0.010
    assert 0.7 < np.std(errors / sigmas) < 1.4


def test_coarse_velocity_within_a_fraction_of_a_pixel(lines: LineSpectrum) -> None:
    rng = np.random.default_rng(5)
    orders = observe(lines, -57.3, rng, orders=ORDERS[:4])
    velocity, grid, ccf = coarse_velocity(orders, template_spectrum(lines))
    pixel_kms = C_KMS * np.log(ORDERS[0][1] / ORDERS[0][0])
    assert abs(velocity + 57.3) < 0.2 * pixel_kms
    assert grid[np.argmax(ccf)] == pytest.approx(-57.3, abs=pixel_kms)


def test_telluric_band_masked_by_default() -> None:
    # orders around the O2 B band at 6865-6960 Å, with deep unshifted telluric lines there
    stellar = random_lines(7, start=6500.0, end=7300.0, density=0.3)
    rng = np.random.default_rng(8)
    centres = np.sort(rng.uniform(6870.0, 6955.0, 60))
    telluric = LineSpectrum(centres, np.full(60, 0.8), centres * 3.0 / C_KMS)
    orders = order_wavelengths(4, start=6700.0)
    template = template_spectrum(stellar, 6500.0, 7400.0)
    observed = observe(stellar, 30.0, rng, orders=orders, telluric=telluric)
    masked = measure_velocity(observed, template)
    unmasked = measure_velocity(observed, template, masks=())
    assert abs(masked.velocity - 30.0) < 4 * masked.uncertainty
    in_band = [b for b in masked.blocks if 6865.0 <= b.wavelength <= 6960.0]
    assert not in_band
    assert max(b.chi2_reduced for b in masked.blocks) < 2.0
    # unmasked, the blocks among the telluric lines cannot fit (the template has none): their
    # χ² is large and their uncertainty inflated by √χ², so they barely count (the few worst
    # pixels a block may drop as if they were cosmic rays leave most telluric lines in)
    in_band = [b for b in unmasked.blocks if 6875.0 <= b.wavelength <= 6950.0]
    assert len(in_band) >= 6
    assert min(b.chi2_reduced for b in in_band) > 5.0
    assert abs(unmasked.velocity - 30.0) < 4 * unmasked.uncertainty


def test_outlying_order_rejected(lines: LineSpectrum) -> None:
    rng = np.random.default_rng(9)
    orders = observe(lines, 12.0, rng, orders=ORDERS[:6])
    # order 2 with a wavelength scale off by 0.5 km/s (a bad wavelength solution)
    bad = orders[2]
    orders[2] = Spectrum(bad.wavelength * (1.0 + 0.5 / C_KMS), bad.flux, bad.ivar)
    result = measure_velocity(orders, template_spectrum(lines))
    rejected = {b.order for b in result.blocks if not b.used}
    assert rejected == {2}
    assert sum(not b.used for b in result.blocks) >= 8  # of 12; blocks with few lines pass
    assert abs(result.velocity - 12.0) < 4 * result.uncertainty


def test_barycentric_combination_is_relativistic() -> None:
    # (1 + z)(1 + z_b) - 1 = z + z_b + z z_b: 10 and 20 km/s give 30 km/s + 200/c
    assert barycentric_velocity(10.0, 20.0) == pytest.approx(30.0 + 200.0 / C_KMS, abs=1e-12)
    assert barycentric_velocity(25.0, 0.0) == 25.0


def test_bad_inputs_raise_clear_errors(lines: LineSpectrum) -> None:
    rng = np.random.default_rng(10)
    orders = observe(lines, 0.0, rng, orders=ORDERS[:2])
    far = Spectrum(np.linspace(8000.0, 8100.0, 4000), np.ones(4000))
    with pytest.raises(RadialVelocityError, match="cross-correlated"):
        measure_velocity(orders, far)
    with pytest.raises(RadialVelocityError, match="no block"):
        measure_velocity(orders, far, initial_velocity=0.0)
    blank = [Spectrum(o.wavelength, o.flux, np.zeros(len(o))) for o in orders]
    with pytest.raises(RadialVelocityError):
        measure_velocity(blank, template_spectrum(lines))
    with pytest.raises(ValueError, match="blocks"):
        measure_velocity(orders, template_spectrum(lines), blocks=0)


def test_one_template_per_order(lines: LineSpectrum) -> None:
    # an echelle ZERO: every order's own rest-frame template, observed like the data at S/N 400
    rng = np.random.default_rng(11)
    templates = observe(lines, 0.0, rng, peak_snr=400.0, orders=ORDERS[:6])
    errors = []
    for velocity in (-80.0, 0.0, 45.0):
        result = measure_velocity(observe(lines, velocity, rng, orders=ORDERS[:6]), templates)
        errors.append(result.velocity - velocity)
        assert abs(result.velocity - velocity) < 5 * result.uncertainty + 0.002
        assert {b.order for b in result.blocks} == set(range(6))
    assert float(np.sqrt(np.mean(np.square(errors)))) < 0.015
    with pytest.raises(RadialVelocityError, match="per-order templates"):
        measure_velocity(observe(lines, 0.0, rng, orders=ORDERS[:6]), templates[:5])


def test_cosmic_rays_do_not_move_blocks(lines: LineSpectrum) -> None:
    # the same spectrum with and without one strong spike (a cosmic ray the extraction missed)
    # in every order: every block's velocity is the same within a tenth of its uncertainty
    rng = np.random.default_rng(12)
    clean = observe(lines, 25.0, rng, orders=ORDERS[:4])
    hit = []
    for order in clean:
        flux = order.flux.copy()
        for pixel in (300, 1100, 1700):
            flux[pixel : pixel + 2] += 0.6  # 60 σ at S/N 100
        hit.append(Spectrum(order.wavelength, flux, order.ivar))
    template = template_spectrum(lines)
    before = measure_velocity(clean, template, initial_velocity=25.0)
    after = measure_velocity(hit, template, initial_velocity=25.0)
    assert len(before.blocks) == len(after.blocks)
    for a, b in zip(before.blocks, after.blocks, strict=True):
        assert abs(a.velocity - b.velocity) < 0.1 * a.uncertainty
    assert max(b.chi2_reduced for b in after.blocks) < 2.0


def test_template_noise_in_the_weights(lines: LineSpectrum) -> None:
    # a template at S/N 50 (as noisy as a single short exposure) against S/N 100: residuals
    # carry both noises. With the template's variance in the fit the blocks' χ² per degree of
    # freedom is 1, as it should be; ignored, it is 1 + (100/50)² ≈ 5
    rng = np.random.default_rng(5)
    template = observe(lines, 0.0, rng, peak_snr=50.0, orders=ORDERS[:6])
    observed = observe(lines, 40.0, rng, orders=ORDERS[:6])
    plain = measure_velocity(observed, template)
    noisy = measure_velocity(observed, template, template_noise=True)
    assert 4.0 < float(np.median([b.chi2_reduced for b in plain.blocks])) < 6.0
    assert 0.85 < float(np.median([b.chi2_reduced for b in noisy.blocks])) < 1.15
    assert abs(noisy.velocity - 40.0) < 4.0 * noisy.uncertainty
