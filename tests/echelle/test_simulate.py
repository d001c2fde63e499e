"""The simulator writes LCO's raw layout and headers, reproducibly, with the right geometry."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from astropy.io import fits

from photonpipe.echelle import instrument
from photonpipe.echelle.formats import REQUIRED_KEYWORDS, parse_name
from photonpipe.echelle.simulate import NightPlan, lsf_fwhm, simulate_night, true_wavelength

from .conftest import ReducedNight


def test_layout_names_and_headers(reduced_night: ReducedNight) -> None:
    raw = reduced_night.simulated.raw_dir
    assert raw == reduced_night.root / "lsc" / "nres01" / "20260301" / "raw"
    kinds = [parse_name(p)["kind"] for p in reduced_night.simulated.frames]  # type: ignore[index]
    assert kinds.count("b00") == 5
    assert kinds.count("d00") == 3
    assert kinds.count("w00") == 6
    assert kinds.count("a00") == 4
    assert kinds.count("e00") == 4  # the standard-star sequence
    objects = set()
    for path in reduced_night.simulated.frames:
        assert path.name.startswith("lscnrs01-fl09-20260301-")
        assert path.name.endswith(".fits.fz")
        with fits.open(path) as hdul:
            assert isinstance(hdul[1], fits.CompImageHDU)
            assert hdul[1].compression_type == "RICE_1"
            header = hdul[1].header
            for key in (*REQUIRED_KEYWORDS, "RA", "DEC", "RLEVEL", "DAY-OBS"):
                assert key in header, key
            assert header["RLEVEL"] == 0
            assert header["SITEID"] == "lsc"
            assert header["TELESCOP"] == "nres01"
            objects.add(header["OBJECTS"])
    assert {"none&tung&tung", "tung&tung&none", "thar&thar&none", "none&thar&thar"} <= objects
    assert any(o.endswith("&thar&none") and not o.startswith("thar") for o in objects)


def test_same_seed_same_frames(tmp_path: Path) -> None:
    plan = NightPlan(biases=1, darks=0, flats_per_pair=0, arcs_per_pair=1, science=0)
    a = simulate_night(tmp_path / "a", small=True, seed=4, plan=plan)
    b = simulate_night(tmp_path / "b", small=True, seed=4, plan=plan)
    c = simulate_night(tmp_path / "c", small=True, seed=5, plan=plan)
    for fa, fb, fc in zip(a.frames, b.frames, c.frames, strict=True):
        assert np.array_equal(fits.getdata(fa, 1), fits.getdata(fb, 1))
        assert not np.array_equal(fits.getdata(fa, 1), fits.getdata(fc, 1))


def test_geometry_matches_published_nres_facts(reduced_night: ReducedNight) -> None:
    """Order 52 ends near 860 nm, order 118 near 380 nm; R ≈ 53,000 (published NRES numbers)."""
    truth = reduced_night.simulated.truth
    centre = np.array([2047.5])
    assert abs(true_wavelength(truth, centre, 0, 1)[0] - 8600.0) < 100.0
    assert abs(true_wavelength(truth, centre, 66, 1)[0] - 3800.0) < 50.0
    # Resolving power from the dispersion (finite difference) and the line FWHM at order centres.
    powers = []
    for order in (10, 33, 55):
        x = np.array([2047.0, 2048.0])
        wave = true_wavelength(truth, x, order, 1)
        powers.append(wave.mean() / (lsf_fwhm(np.array([2047.5]))[0] * (wave[1] - wave[0])))
    assert 45_000 < np.mean(powers) < 65_000
    # Free spectral range: consecutive orders overlap (λ/m ≈ order length in Å).
    m = 85
    fsr = true_wavelength(truth, centre, m - 52, 1)[0] / m
    span = np.ptp(true_wavelength(truth, np.array([0.0, 4095.0]), m - 52, 1))
    assert span > fsr


def test_traces_follow_the_hand_trace(reduced_night: ReducedNight) -> None:
    """True traces lie within a few px (+ the night's shift) of the real hand trace at its nodes."""
    hand = instrument.hand_trace("lsc")
    with fits.open(reduced_night.simulated.truth_path) as hdul:
        table = hdul["TRACE"].data
    u = (hand.x_nodes - 2047.5) / 2047.5
    for k, order in enumerate(hand.orders):
        for fibre in (0, 1):
            row = (table["ORDER"] == order) & (table["FIBRE"] == fibre)
            y = np.polynomial.polynomial.polyval(u, table["COEFFS"][row][0])
            assert np.max(np.abs(y - hand.y[fibre][k])) < 2.5
    assert math.isfinite(float(table["COEFFS"].sum()))
