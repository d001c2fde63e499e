"""The fast paths of the extraction against plain, slow formulations of the same sums.

:func:`photonpipe.lightcurves.extract.extract` works on chunks of time-sorted events with
bisection and ``reduceat``, and interpolates the flux calibration with
:class:`~photonpipe.lightcurves.calibration.PiecewiseLinear`. Here each per-bin sum is rebuilt the
obvious way — one boolean mask per condition over all events, ``numpy.interp`` for the
calibration and ``numpy.bincount`` on ``floor(time / step)`` — and the two must agree to rounding.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers.lightcurves import event_files
from photonpipe.lightcurves.calibration import PiecewiseLinear, from_x1d_row
from photonpipe.lightcurves.dataset import Dataset, read_datasets
from photonpipe.lightcurves.extract import ExtractionParameters, extract
from photonpipe.lightcurves.formats import NonMonotonicTimeError, UnreadableFileError, read_events
from photonpipe.lightcurves.simulate import SimulatedDataset

# the package exports the function ``extract``, which hides the module of that name
extract_module = importlib.import_module("photonpipe.lightcurves.extract")

# --- PiecewiseLinear ----------------------------------------------------------------------------


def _reference(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    values = np.interp(w, x, y, left=0.0, right=0.0)
    return np.where(np.isnan(w), 0.0, values)


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(st.one_of(st.floats(0.001, 10.0), st.just(0.0)), min_size=1, max_size=60).filter(
        lambda s: sum(s) > 0
    ),
    start=st.floats(-1e4, 1e4),
    seed=st.integers(0, 2**31),
)
def test_piecewise_linear_matches_numpy_interp(steps: list[float], start: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = start + np.concatenate([[0.0], np.cumsum(steps)])
    y = rng.normal(0, 1e-14, len(x))
    span = x[-1] - x[0]
    w = np.concatenate(
        [
            rng.uniform(x[0] - 0.2 * span, x[-1] + 0.2 * span, 2000),
            x,  # exactly on the table's abscissae, where the interval changes
            np.nextafter(x, -np.inf),
            np.nextafter(x, np.inf),
            [np.nan, np.inf, -np.inf, 1e300, -1e300],
        ]
    )
    got = PiecewiseLinear(x, y)(w)
    expected = _reference(x, y, w)
    # equal abscissae: numpy.interp may take either neighbour's value exactly at them
    duplicated = np.isin(w, x[1:][np.diff(x) == 0])
    scale = np.abs(y).max()
    np.testing.assert_allclose(got[~duplicated], expected[~duplicated], rtol=0, atol=1e-12 * scale)


def test_piecewise_linear_with_few_buckets_still_exact() -> None:
    # a table far narrower in one place than the bucket limit allows: buckets hold many points
    x = np.concatenate([np.linspace(0.0, 1.0, 50), 1.0 + np.cumsum(np.full(50, 1e-9))])
    y = np.sin(x * 7.0) + x
    w = np.random.default_rng(1).uniform(-0.1, 1.1, 5000)
    w = np.concatenate([w, x])
    interpolator = PiecewiseLinear(x, y, max_buckets=16)
    assert len(interpolator._splits) > 1
    np.testing.assert_allclose(interpolator(w), _reference(x, y, w), rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (np.array([1.0]), "length"),
        (np.array([2.0, 1.0]), "increasing"),
        (np.array([1.0, np.nan]), "finite"),
        (np.array([1.0, 1.0]), "positive range"),
    ],
)
def test_piecewise_linear_refuses_bad_tables(x: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PiecewiseLinear(x, np.ones(len(x)))


# --- extraction ----------------------------------------------------------------------------------


def _slow_sums(dataset: Dataset, step: float) -> dict[str, np.ndarray]:
    """Gross, background and flux sums per bin, one full-length mask per condition."""
    assert dataset.x1d is not None
    gti = dataset.gti
    n_bins = int(np.ceil(gti[-1, 1] / step))
    sums = {k: np.zeros(n_bins) for k in ("src", "bkg", "src_flux", "bkg_flux")}
    for events in dataset.events:
        c = events.columns
        time = c["TIME"].astype(np.float64) + (events.expstart - dataset.expstart) * 86400.0
        good = np.zeros(len(time), dtype=bool)
        for start, stop in gti:
            good |= (time >= start) & (time < stop)
        good &= (c["DQ"].astype(np.int64) & events.sdqflags) == 0
        bins = np.minimum(np.floor(time / step).astype(np.int64), n_bins - 1)
        x = c["XFULL"].astype(np.float64)
        y = c["YFULL"].astype(np.float64)
        epsilon = c["EPSILON"].astype(np.float64)
        for region in events.regions:
            row = dataset.x1d.row(region.x1d_row)
            calibration = from_x1d_row(row)
            dy = y - region.slope * (x - region.x_ref)
            source = np.abs(dy - region.center) <= region.height / 2
            background = np.zeros(len(time), dtype=bool)
            for centre, height in zip(region.background, region.background_height, strict=True):
                background |= np.abs(dy - centre) <= height / 2
            have = np.isfinite(row.gross) & (row.gross != 0) & ((row.dq.astype(int) & 128) == 0)
            low, high = row.wavelength[have].min(), row.wavelength[have].max()
            for kind, box, wavelength, scale in (
                ("src", source, c["WAVELENGTH"].astype(np.float64), 1.0),
                (
                    "bkg",
                    background,
                    np.interp(x, np.arange(len(row.wavelength)), row.wavelength),
                    region.background_scale,
                ),
            ):
                keep = good & box & (wavelength >= low) & (wavelength <= high)
                for w0, w1 in extract_module.GEOCORONAL_WINDOWS:
                    keep &= ~((wavelength >= w0) & (wavelength <= w1))
                weight = epsilon[keep] * scale
                conversion = np.interp(
                    wavelength[keep], calibration.wavelength, calibration.conversion, 0.0, 0.0
                )
                sums[kind] += np.bincount(bins[keep], weight, n_bins)
                sums[f"{kind}_flux"] += np.bincount(bins[keep], weight * conversion, n_bins)
    return sums


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("chunk", [None, 997])
@pytest.mark.parametrize("simulated", ["cos_constant", "cos_background_heavy"])
def test_extraction_matches_plain_sums(
    simulated: str,
    chunk: int | None,
    stream: bool,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    if chunk is not None:
        # chunk edges inside bins, inside good time intervals and inside runs of rejected events
        monkeypatch.setattr(extract_module, "CHUNK_EVENTS", chunk)
    files = event_files(request.getfixturevalue(simulated))
    (dataset,) = read_datasets(files, stream=stream)
    assert all((events.stream is not None) == stream for events in dataset.events)
    step = 10.0
    curve = extract(dataset, ExtractionParameters(step=step))
    if stream:  # the slow sums need the whole columns: read them now
        (dataset,) = read_datasets(files)
    sums = _slow_sums(dataset, step)
    exposure = extract_module.bin_exposure(np.arange(len(sums["src"]) + 1) * step, dataset.gti)
    have = exposure > 0
    t = exposure[have]
    np.testing.assert_allclose(np.asarray(curve["BIN_EXPTIME"]), t, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(curve["GROSS"]), sums["src"][have] / t, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(curve["BACKGROUND"]), sums["bkg"][have] / t, rtol=1e-12)
    flux = (sums["src_flux"] - sums["bkg_flux"])[have] / t
    np.testing.assert_allclose(np.asarray(curve["FLUX"]), flux, rtol=1e-11)
    assert np.all(sums["src"][have] > 0)


def test_background_heavy_case_is_background_heavy(cos_background_heavy: SimulatedDataset) -> None:
    (dataset,) = read_datasets(event_files(cos_background_heavy))
    curve = extract(dataset, ExtractionParameters(step=10.0))
    # the uniform dark counts are about 40 % of all events (source ≈ 150 000)
    assert 0.3 < 1.0 - 150_000 / sum(e.n_events for e in dataset.events) < 0.5
    # and the (area-scaled) background is a sizeable part of the gross counts: about 6 %, five
    # times the default simulation's
    assert np.median(np.asarray(curve["BACKGROUND"]) / np.asarray(curve["GROSS"])) > 0.04


def test_column_interp_is_numpy_interp() -> None:
    rng = np.random.default_rng(3)
    table = np.cumsum(rng.uniform(0.001, 0.02, 5000)) + 1100.0
    x = np.concatenate(
        [
            rng.uniform(-10, 5010, 100_000).astype(np.float32).astype(np.float64),
            np.arange(5000.0),
            np.nextafter(np.arange(5000.0), np.inf),
            [np.nan, -np.inf, np.inf, 4999.0, np.nextafter(4999.0, 0.0), -0.0],
        ]
    )
    got = extract_module._column_interp(x, table)
    expected = np.interp(x, np.arange(len(table)), table)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("chunk", [None, 1000])
def test_streamed_extraction_is_the_in_memory_one(
    cos_background_heavy: SimulatedDataset, chunk: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if chunk is not None:
        monkeypatch.setattr(extract_module, "CHUNK_EVENTS", chunk)
    files = event_files(cos_background_heavy)
    (in_memory,) = read_datasets(files)
    expected = extract(in_memory, ExtractionParameters(step=1.0))
    (streamed,) = read_datasets(files, stream=True)
    got = extract(streamed, ExtractionParameters(step=1.0))
    assert got.colnames == expected.colnames
    for name in expected.colnames:
        np.testing.assert_array_equal(np.asarray(got[name]), np.asarray(expected[name]))
    # the columns of a streamed file are still there, read whole on first use
    for events, reference in zip(streamed.events, in_memory.events, strict=True):
        assert "XFULL" not in events.columns
        np.testing.assert_array_equal(events.columns["XFULL"], reference.columns["XFULL"])


def _copy_with(source: Path, target: Path, edit: Callable[[fits.HDUList], None]) -> Path:
    with fits.open(source) as hdul:
        hdus = fits.HDUList([h.copy() for h in hdul])
    edit(hdus)
    hdus.writeto(target)
    return target


def test_streamed_file_with_decreasing_time_is_refused_at_extraction(
    cos_constant: SimulatedDataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(extract_module, "CHUNK_EVENTS", 1000)
    files = event_files(cos_constant)
    corrtag = next(p for p in files if p.name.endswith("_corrtag_a.fits"))

    def swap_across_chunks(hdus: fits.HDUList) -> None:
        time = hdus["EVENTS"].data["TIME"]
        time[999], time[1000] = time[1000] + 1.0, time[999]

    bad = _copy_with(corrtag, tmp_path / corrtag.name, swap_across_chunks)
    others = [p for p in files if p != corrtag]
    for other in others:
        (tmp_path / other.name).write_bytes(other.read_bytes())
    (dataset,) = read_datasets([bad, *(tmp_path / p.name for p in others)], stream=True)
    with pytest.raises(NonMonotonicTimeError, match="TIME decreases at event 1000") as caught:
        extract(dataset)
    assert str(bad) in str(caught.value)


def test_streamed_file_cut_short_is_refused(cos_constant: SimulatedDataset, tmp_path: Path) -> None:
    files = event_files(cos_constant)
    corrtag = next(p for p in files if p.name.endswith("_corrtag_a.fits"))
    copy = tmp_path / corrtag.name
    copy.write_bytes(corrtag.read_bytes())
    events = read_events(copy, stream=True)
    assert events.stream is not None
    # the file loses its end between the reading of its headers and of its events
    with copy.open("r+b") as handle:
        handle.truncate(events.stream.offset + 5000 * events.stream.row_dtype.itemsize + 7)
    with pytest.raises(UnreadableFileError, match="truncated at row 5000") as caught:
        for _ in events.stream.chunks(4096):
            pass
    assert str(copy) in str(caught.value)
