"""Equivalent widths: the real HD 122563 spectrum against Frebel et al. 2013; limits; errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from photonpipe.spectra.spectrum import Spectrum
from photonpipe.stellar.ew import (
    DEFAULT_OPTIONS,
    LineOutsideSpectrumError,
    flag_resolution_outliers,
    measure_equivalent_width,
)
from photonpipe.stellar.linelist import Line, read_linelist
from photonpipe.stellar.readers import read_spectrum
from photonpipe.stellar.simulate import SimulatedLine, normalized_flux

DATA = Path(__file__).resolve().parents[1] / "data" / "stellar"


def _frebel_lines() -> list[Line]:
    return [
        ln
        for ln in read_linelist(DATA / "frebel2013_hd122563_ew.moog2")
        if 10.0 <= ln.reference_ew <= 150.0
    ]


def _compare(spectrum: Spectrum, lines: list[Line], **options: object) -> dict[str, float]:
    """Our EWs against the published ones: median ratio, robust σ, fraction within 5 %."""
    # The file has no noise array: the noise comes from the fit residuals.
    measurements = [
        measure_equivalent_width(spectrum, ln, noise_known=False, **options) for ln in lines
    ]
    resolution = flag_resolution_outliers(measurements)
    ok = [
        (m["ew"], ln.reference_ew)
        for m, ln in zip(measurements, lines, strict=True)
        if m["acceptable"] and not m["is_limit"]
    ]
    ratio = np.array([ours / published for ours, published in ok])
    median = float(np.median(ratio))
    return {
        "acceptable": len(ok) / len(lines),
        "median": median,
        "robust_sigma": 1.4826 * float(np.median(np.abs(ratio - median))),
        "within_5": float(np.mean(np.abs(ratio - 1.0) < 0.05)),
        "within_5_all": float(np.sum(np.abs(ratio - 1.0) < 0.05)) / len(lines),
        "resolution": resolution,
    }


def test_hd122563_against_frebel_2013() -> None:
    """Published EWs (Frebel et al. 2013) of the 407 lines of 10-150 mÅ, default (Gaussian) fits.

    The defaults were chosen on half of the lines (a random half, seed 0) and are checked on
    the other half. Measured (all / chosen-on / held-out half): median ratio 0.993 / 0.993 /
    0.992, robust σ 3.0 / 2.9 / 3.2 %, within 5 %: 78 / 80 / 77 % of the acceptable lines
    (76 / 79 / 74 % of all lines), 98 % acceptable. The old defaults (±2 Å, neighbours below
    −3σ, no central weighting) gave 0.981, 3.4 %, 69 % on all lines.
    """
    (spectrum,) = read_spectrum(DATA / "hd122563_mike_linewindows.fits.gz")
    lines = _frebel_lines()
    assert len(lines) == 407
    order = np.random.default_rng(0).permutation(len(lines))
    halves = {
        "chosen": [lines[i] for i in sorted(order[: len(lines) // 2])],
        "held out": [lines[i] for i in sorted(order[len(lines) // 2 :])],
    }
    every = _compare(spectrum, lines)
    assert 20_000 < every["resolution"] < 35_000  # MIKE, 1" slit (R ≈ 25 000 blue, 22 000 red)
    assert every["acceptable"] > 0.95
    assert abs(every["median"] - 1.0) < 0.02
    assert every["robust_sigma"] <= 0.031
    assert every["within_5"] > 0.76
    for name, half in halves.items():
        result = _compare(spectrum, half)
        assert abs(result["median"] - 1.0) < 0.02, name
        assert result["robust_sigma"] <= 0.035, name
        assert result["within_5"] > 0.74, name


def test_hd122563_voigt_is_not_the_default() -> None:
    """Voigt fits with a free Lorentzian width sit 6-8 % above the published (Gaussian) EWs.

    Measured on all 407 lines: median ratio 1.076, robust σ 9.1 %, 31 % within 5 % (old
    defaults: 1.015, 8.2 %, 45 %): the free γ turns noise and the wings of neighbours into
    Lorentzian wings. With γ capped (``max_gamma=0.002`` Å) it becomes a Gaussian again.
    """
    (spectrum,) = read_spectrum(DATA / "hd122563_mike_linewindows.fits.gz")
    lines = _frebel_lines()[::2]
    voigt = _compare(spectrum, lines, profile="voigt")
    assert voigt["median"] > 1.03
    assert voigt["robust_sigma"] > 0.05
    assert voigt["within_5"] < 0.6
    assert DEFAULT_OPTIONS["profile"] == "gaussian"


def test_default_options_on_simulated_lines() -> None:
    """The defaults on simulated lines with neighbours (S/N 100): unbiased, honest errors.

    Truth by direct integration of the true profile. Measured: median ratio 1.001 (Gaussian),
    0.998 (Voigt, γ = 0.03 Å); pulls mean +0.05 / −0.01, standard deviation 0.98 / 0.96.
    """
    for profile, seed in (("gaussian", 11), ("voigt", 12)):
        rng = np.random.default_rng(seed)
        ratios, pulls = [], []
        for _ in range(150):
            ew = float(rng.uniform(20.0, 150.0))
            x = np.arange(4990.0, 5010.0, 0.02)
            centre = 5000.0 + rng.uniform(-0.05, 0.05)
            gamma = 0.03 if profile == "voigt" else 0.0
            line = SimulatedLine(centre, ew, 0.16, gamma)
            side = rng.choice([-1.0, 1.0])
            neighbour = SimulatedLine(centre + side * rng.uniform(0.6, 1.2), 80.0, 0.16)
            flux = normalized_flux(x, [line, neighbour]) + rng.normal(0.0, 0.01, x.size)
            spectrum = Spectrum(x, flux, np.full(x.size, 1e4))
            m = measure_equivalent_width(spectrum, Line(5000.0, 26.0, 2.0, -1.0), profile=profile)
            fine = np.arange(4950.0, 5050.0, 0.002)
            truth = 1000.0 * np.trapezoid(line.depth_profile(fine), fine)
            ratios.append(m["ew"] / truth)
            pulls.append((m["ew"] - truth) / m["ew_uncertainty"])
        assert abs(np.median(ratios) - 1.0) < 0.005, profile
        assert abs(np.mean(pulls)) < 0.2, profile
        assert 0.85 < np.std(pulls) < 1.2, profile


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
