"""The one robust σ and the one peak-height Gaussian, against independent implementations."""

from __future__ import annotations

import numpy as np
from astropy.stats import mad_std
from scipy.stats import norm

from photonpipe.spectra.profiles import gaussian, gaussian_peak
from photonpipe.spectra.robust import MAD_TO_SIGMA, robust_sigma, robust_sigma_along


def test_robust_sigma_matches_astropy_mad_std_and_a_normal_sample() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(5.0, 2.0, 200_001)
    # astropy's constant has 16 digits, photonpipe's the five its products were made with
    assert abs(robust_sigma(x) / mad_std(x) - MAD_TO_SIGMA / 1.482602218505602) < 1e-12
    assert abs(MAD_TO_SIGMA - 1.0 / norm.ppf(0.75)) < 5e-5
    assert abs(robust_sigma(x) - 2.0) < 0.02
    # outliers do not move it
    y = x.copy()
    y[:1000] = 1e6
    assert abs(robust_sigma(y) - robust_sigma(x)) < 0.02


def test_center_nan_and_axis() -> None:
    r = np.array([-3.0, 1.0, 2.0, np.nan, 0.5])
    assert np.isnan(robust_sigma(r))
    assert robust_sigma(r, ignore_nan=True) == MAD_TO_SIGMA * np.nanmedian(
        np.abs(r - np.nanmedian(r))
    )
    # about zero (normalised residuals): the median of |r|, not of |r - median|
    assert robust_sigma(r, center=0.0, ignore_nan=True) == MAD_TO_SIGMA * 1.5
    stack = np.arange(24.0).reshape(4, 3, 2) ** 1.5
    per_pixel = robust_sigma_along(stack, 0)
    assert per_pixel.shape == (3, 2)
    for i in range(3):
        for j in range(2):
            assert per_pixel[i, j] == robust_sigma(stack[:, i, j])
    np.testing.assert_array_equal(
        robust_sigma_along(stack, 0, center=np.median(stack, axis=0)), per_pixel
    )


def test_gaussian_peak_is_the_unit_area_gaussian_scaled() -> None:
    x = np.linspace(-10.0, 12.0, 301)
    value = gaussian_peak(x, 3.0, 1.5, 2.0, 0.25)
    assert abs(value.max() - 3.25) < 1e-3
    expected = 3.0 * gaussian(x, 1.5, 2.0) * 2.0 * np.sqrt(2.0 * np.pi) + 0.25
    np.testing.assert_allclose(value, expected, rtol=1e-14)
    np.testing.assert_allclose(value - 0.25, 3.0 * norm.pdf(x, 1.5, 2.0) / norm.pdf(0, 0, 2.0))
