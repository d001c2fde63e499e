"""Equivalent widths: the real HD 122563 spectrum against Frebel et al. 2013; limits; errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from photonpipe.spectra.spectrum import Spectrum
from photonpipe.stellar.ew import (
    LineOutsideSpectrumError,
    flag_resolution_outliers,
    measure_equivalent_width,
)
from photonpipe.stellar.linelist import Line, read_linelist
from photonpipe.stellar.readers import read_spectrum
from photonpipe.stellar.simulate import SimulatedLine, normalized_flux

DATA = Path(__file__).resolve().parents[1] / "data" / "stellar"


def test_hd122563_against_frebel_2013() -> None:
    """Published EWs (Frebel et al. 2013) of the lines between 10 and 150 mÅ are reproduced."""
    (spectrum,) = read_spectrum(DATA / "hd122563_mike_linewindows.fits.gz")
    lines = [
        ln
        for ln in read_linelist(DATA / "frebel2013_hd122563_ew.moog2")
        if 10.0 <= ln.reference_ew <= 150.0
    ]
    assert len(lines) > 350
    # The file has no noise array: the noise comes from the fit residuals.
    measurements = [measure_equivalent_width(spectrum, ln, noise_known=False) for ln in lines]
    resolution = flag_resolution_outliers(measurements)
    assert 20_000 < resolution < 35_000  # MIKE with a 1" slit (R ≈ 25 000 blue, 22 000 red)
    ok = [
        (m["ew"], ln.reference_ew)
        for m, ln in zip(measurements, lines, strict=True)
        if m["acceptable"] and not m["is_limit"]
    ]
    assert len(ok) > 0.9 * len(lines)  # the acceptable flag rejects few lines
    ratio = np.array([ours / published for ours, published in ok])
    assert abs(np.median(ratio) - 1.0) < 0.05
    assert np.std(ratio) <= 0.10


def test_limits_and_fields() -> None:
    rng = np.random.default_rng(2)
    x = np.arange(5990.0, 6010.0, 0.02)
    strong = SimulatedLine(6000.0, 80.0, 0.14)
    flux = normalized_flux(x, [strong]) + rng.normal(0.0, 0.01, x.size)
    spectrum = Spectrum(x, flux, np.full(x.size, 1e4))
    m = measure_equivalent_width(spectrum, Line(6000.0, 26.0, 2.0, -1.0), comment="checked")
    assert m["ew"] == pytest.approx(80.0, abs=3 * m["ew_uncertainty"])
    assert not m["is_limit"]
    assert m["acceptable"]
    assert m["comments"] == ["checked"]
    assert m["reduced_ew"] == pytest.approx(np.log10(m["ew"] / 1000 / 6000.0))
    assert m["model"].shape == m["window_wavelength"].shape == m["mask"].shape
    assert m["line_hash"] == Line(6000.0, 26.0, 2.0, -1.0).hash
    # no line at 6004 Å: an upper limit of 3 σ; σ of a fixed-width line by Cayrel's formula
    limit = measure_equivalent_width(spectrum, Line(6004.0, 26.0, 2.0, -3.0))
    assert limit["is_limit"]
    cayrel = 1.5 * np.sqrt(0.14 * 0.02) / 100 * 1000  # mÅ
    assert limit["upper_limit"] == pytest.approx(3 * cayrel, rel=0.5)


def test_blend_group_and_outside() -> None:
    x = np.arange(5990.0, 6010.0, 0.02)
    flux = normalized_flux(x, [SimulatedLine(6000.0, 60.0, 0.14)])
    spectrum = Spectrum(x, flux + np.random.default_rng(1).normal(0, 0.005, x.size))
    a, b = Line(5999.98, 26.0, 2.0, -1.0), Line(6000.02, 22.0, 1.0, -1.0)
    m = measure_equivalent_width(spectrum, [a, b])
    assert m["line_hashes"] == [a.hash, b.hash]
    assert m["line_hash"] not in (a.hash, b.hash)
    assert m["ew"] == pytest.approx(60.0, rel=0.05)
    with pytest.raises(LineOutsideSpectrumError, match="outside the spectrum"):
        measure_equivalent_width(spectrum, Line(7000.0, 26.0, 2.0, -1.0))
