"""The one co-add kernel against numpy.average."""

from __future__ import annotations

import numpy as np

from photonpipe.spectra.combine import WeightedMean


def test_weighted_mean_is_numpy_average_and_empty_where_unweighted() -> None:
    rng = np.random.default_rng(2)
    flux = rng.normal(1.0, 0.1, (6, 50))
    weight = rng.uniform(0.5, 4.0, (6, 50))
    weight[:, :5] = 0.0
    mean = WeightedMean(50)
    for f, w in zip(flux, weight, strict=True):
        mean.add(f, w)
    np.testing.assert_allclose(
        mean.mean(empty=np.nan)[5:], np.average(flux[:, 5:], axis=0, weights=weight[:, 5:])
    )
    assert np.all(np.isnan(mean.mean(empty=np.nan)[:5]))
    np.testing.assert_array_equal(mean.weight, weight.sum(axis=0))
    part = WeightedMean(4)
    part.add(np.array([2.0, 4.0]), np.array([1.0, 3.0]), np.array([False, True, True, False]))
    np.testing.assert_array_equal(part.mean(empty=0.0), [0.0, 2.0, 4.0, 0.0])
