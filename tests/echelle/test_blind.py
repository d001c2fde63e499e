"""Blind tracing (no hand trace) on the small night's master flats, against the truth."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from photonpipe.cli.main import main
from photonpipe.echelle.blind import blind_traces, detect_peaks
from photonpipe.echelle.calibrations import make_traces
from photonpipe.echelle.preprocess import ProcessedImage, read_image
from photonpipe.echelle.settings import Options
from photonpipe.echelle.traces import TraceSet, refine_traces
from photonpipe.errors import InputFileError
from photonpipe.platform.archive import Archive
from photonpipe.platform.db import Database

from .conftest import ReducedNight


def _flats(night: ReducedNight) -> dict[str, ProcessedImage]:
    paths = sorted((night.root / "lsc" / "nres01" / "reduced" / "flat").glob("*.fits"))
    images = [read_image(path) for path in paths]
    return {str(image.header["FIBRES"]): image for image in images}


def _truth(night: ReducedNight) -> tuple[dict[tuple[int, int], np.ndarray], list[int]]:
    with fits.open(night.simulated.truth_path) as hdul:
        table = hdul["TRACE"].data
        inside = [int(o) for o in hdul[0].header["ORDERS"].split(",")]
        coeffs = {
            (int(o), int(f)): np.array(c, float)
            for o, f, c in zip(table["ORDER"], table["FIBRE"], table["COEFFS"], strict=True)
        }
    return coeffs, inside


def _residuals(
    traces: TraceSet, truth: dict[tuple[int, int], np.ndarray], x: np.ndarray
) -> dict[tuple[int, int], float]:
    """RMS [px] of each trace about the true trace of the same (order, fibre) label."""
    out = {}
    for key in traces:
        true_y = np.polynomial.polynomial.polyval((x - 2047.5) / 2047.5, truth[key])
        out[key] = float(np.sqrt(np.mean((traces.centre(*key, x) - true_y) ** 2)))
    return out


def test_blind_traces_match_truth_before_and_after_refinement(reduced_night: ReducedNight) -> None:
    flats = _flats(reduced_night)
    truth, inside = _truth(reduced_night)
    sim = reduced_night.simulated.truth
    x = sim.x0 + np.arange(sim.nx, dtype=float)
    blind = blind_traces(list(flats.values()))
    # All three fibres of every order the truth lists as wholly on the window (plus fibres of
    # the two edge orders that are): the labels are the truth's, so a wrong order or fibre label
    # would be off by ≥ 15 px below.
    assert len(inside) >= 14
    assert {(order, fibre) for order in inside for fibre in range(3)} <= set(blind.keys())
    assert len(blind.keys()) <= 3 * (len(inside) + 2)
    before = _residuals(blind, truth, x)
    assert max(before.values()) < 0.05
    assert float(np.sqrt(np.mean(np.square(list(before.values()))))) < 0.05
    refined = refine_traces(blind, [(image, lit) for lit, image in flats.items()])
    after = _residuals(refined, truth, x)
    assert refined.keys() == blind.keys()
    assert max(after.values()) < 0.05
    # The same traces as the hand-trace path of the night found (same labels).
    night_trace = sorted(
        (reduced_night.root / "lsc" / "nres01" / "reduced" / "trace").glob("*-trace.fits")
    )[0]
    assert TraceSet.read(night_trace).keys() == refined.keys()


def test_blind_single_flat_and_cropped_window(reduced_night: ReducedNight) -> None:
    """One flat (fibres 0+1) on a smaller window elsewhere on the detector: labels still right."""
    flat = _flats(reduced_night)["110"]
    truth, _ = _truth(reduced_night)
    rows, cols = slice(310, 760), slice(100, 700)
    cropped = dataclasses.replace(
        flat,
        data=flat.data[rows, cols],
        uncertainty=flat.uncertainty[rows, cols],
        mask=flat.mask[rows, cols],
        x0=flat.x0 + 100,
        y0=flat.y0 + 310,
    )
    traces = blind_traces([cropped])
    assert {fibre for _, fibre in traces} == {0, 1}
    assert len(traces.keys()) >= 10
    x = cropped.x0 + np.arange(600, dtype=float)
    assert max(_residuals(traces, truth, x).values()) < 0.05


def test_blind_labels_survive_flexure(reduced_night: ReducedNight) -> None:
    """The whole pattern moved by 9 px (flexure, not in the nominal geometry): same labels."""
    flat = _flats(reduced_night)["011"]
    shift = 9
    moved = dataclasses.replace(
        flat,
        data=np.roll(flat.data, shift, axis=0),
        uncertainty=np.roll(flat.uncertainty, shift, axis=0),
        mask=np.roll(flat.mask, shift, axis=0),
    )
    moved.data[:shift] = 0.0  # no light rolled round from the top
    truth, _ = _truth(reduced_night)
    moved_truth = {key: c + np.array([shift, 0, 0, 0, 0]) for key, c in truth.items()}
    traces = blind_traces([moved])
    x = flat.x0 + np.arange(flat.data.shape[1], dtype=float)
    assert {fibre for _, fibre in traces} == {1, 2}
    residuals = _residuals(traces, moved_truth, x)
    # Traces that reach the bottom 9 + 10 rows had part of their light rolled off the window.
    u = (x - 2047.5) / 2047.5
    whole = [
        key
        for key in residuals
        if np.polynomial.polynomial.polyval(u, moved_truth[key]).min() - flat.y0 > shift + 10
    ]
    assert len(whole) >= 20
    assert max(residuals[key] for key in whole) < 0.05
    # Every trace found carries its true label (a wrong one would be ≥ 15 px off).
    assert max(residuals.values()) < 1.0


def test_detected_peaks_are_the_lit_fibres(reduced_night: ReducedNight) -> None:
    """Matched-filter peaks at the window's middle lie on true traces of the lit fibres only."""
    flat = _flats(reduced_night)["110"]
    truth, _ = _truth(reduced_night)
    x_mid = flat.x0 + (flat.data.shape[1] // 16) * 8 + 3.5
    peaks = detect_peaks(flat) + flat.y0
    true_rows = {
        key: float(np.polynomial.polynomial.polyval((x_mid - 2047.5) / 2047.5, c))
        for key, c in truth.items()
    }
    for peak in peaks:
        nearest = min(true_rows, key=lambda key: abs(true_rows[key] - peak))
        assert abs(true_rows[nearest] - peak) < 0.5
        assert nearest[1] in (0, 1)


def test_dark_flat_fails_naming_the_file(reduced_night: ReducedNight) -> None:
    flat = _flats(reduced_night)["110"]
    rng = np.random.default_rng(3)
    dark = dataclasses.replace(
        flat,
        data=rng.normal(0.0, 10.0, flat.data.shape).astype(np.float32),
        uncertainty=np.full(flat.data.shape, 10.0, np.float32),
        path=Path("/data/lscnrs01-fl09-20260301-flat-110.fits"),
    )
    with pytest.raises(InputFileError, match=r"lscnrs01-fl09-20260301-flat-110\.fits.*no light"):
        blind_traces([dark])


def test_make_traces_blind_records_trace(reduced_night: ReducedNight, tmp_path: Path) -> None:
    archive = Archive(tmp_path)
    database = Database(f"sqlite:///{tmp_path / 'photonpipe.db'}")
    database.upgrade()
    paths = sorted((reduced_night.root / "lsc" / "nres01" / "reduced" / "flat").glob("*.fits"))
    path = make_traces(archive, database, paths, options=Options(blind_trace=True))
    assert fits.getheader(path)["INITIAL"].startswith("blind")
    traces = TraceSet.read(path)
    truth, _ = _truth(reduced_night)
    sim = reduced_night.simulated.truth
    x = sim.x0 + np.arange(sim.nx, dtype=float)
    assert max(_residuals(traces, truth, x).values()) < 0.05
    with pytest.raises(ValueError, match="exclude"):
        make_traces(archive, database, paths, initial=paths[0], blind=True)


def test_cli_trace_blind_then_refine(
    reduced_night: ReducedNight, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = sorted((reduced_night.root / "lsc" / "nres01" / "reduced" / "flat").glob("*.fits"))
    common = ["--archive", str(tmp_path), "--database-url", f"sqlite:///{tmp_path / 'p.db'}"]
    code = main([*common, "echelle", "trace", "--blind", *(f"--flat={p}" for p in paths)])
    out = capsys.readouterr().out.strip()
    assert code == 0, out
    assert out.endswith("-blind.fits")
    start = TraceSet.read(tmp_path / out)
    assert {fibre for _, fibre in start} == {0, 1, 2}
    code = main(
        [
            *common,
            "echelle",
            "trace-refine",
            "--flat1",
            str(paths[1]),
            "--flat2",
            str(paths[0]),
            "--initial",
            str(tmp_path / out),
        ]
    )
    refined_out = capsys.readouterr().out.strip()
    assert code == 0, refined_out
    assert TraceSet.read(tmp_path / refined_out).keys() == start.keys()
    # Neither or both of --initial/--blind is a usage error.
    assert main([*common, "echelle", "trace"]) == 2


@pytest.mark.slow
def test_blind_full_size_all_orders_labelled(tmp_path: Path) -> None:
    """Full detector (67 orders, red orders where the three fibres interleave): every label right.

    The flats are the simulator's noise-free tungsten images with the Poisson and read noise of
    a three-frame master (no cosmics), to keep the test to the tracing.
    """
    from astropy.io.fits import Header

    from photonpipe.echelle import simulate

    rng = np.random.default_rng(7)
    truth = simulate.make_truth("lsc", rng, False, 61100.0)
    flats = []
    for lights, lit in ((("tung", "tung", "none"), "110"), (("none", "tung", "tung"), "011")):
        signal, _ = simulate.render(truth, lights, 60.0, None)
        signal = np.clip(signal, 0.0, None)
        data = rng.poisson(3 * signal) / 3 + rng.normal(0.0, 10.0 / np.sqrt(3), signal.shape)
        header = Header()
        header["FIBRES"], header["SITEID"] = lit, "lsc"
        flats.append(
            ProcessedImage(
                data.astype(np.float32),
                np.sqrt((100.0 + signal) / 3).astype(np.float32),
                np.zeros(signal.shape, np.uint8),
                header,
                path=tmp_path / f"flat-{lit}.fits",
            )
        )
    blind = blind_traces(flats)
    refined = refine_traces(blind, [(image, str(image.header["FIBRES"])) for image in flats])
    x = np.arange(4096.0)
    coeffs = {(o, f): truth.trace_coeffs[o, f] for o in range(67) for f in range(3)}
    for traces in (blind, refined):
        residuals = _residuals(traces, coeffs, x)
        assert len(residuals) >= 190
        assert max(residuals.values()) < 0.5  # a wrong label would be ≥ 15 px off
        assert float(np.sqrt(np.mean(np.square(list(residuals.values()))))) < 0.05
