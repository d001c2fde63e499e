"""Model atmospheres: the bundled Kurucz grid (lossless), the readers, the interpolating grid."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import pytest

from photonpipe.errors import InputFileError
from photonpipe.stellar.photospheres import (
    AtmosphereGrid,
    AtmosphereGridError,
    bundled_grid,
    kurucz_tau_ross,
    load_grid,
    read_kurucz,
    read_marcs,
    read_photospheres,
    texts_sha256,
)
from photonpipe.stellar.physics import hash_directory

DATA = Path(__file__).parent.parent / "data" / "stellar"

# hash_directory() of kurucz_atlas9_pymoog0.0.28/models/ in the reference data (the 2230 text
# files, as extracted from kurucz1993_atlas9_subset.tar.gz), computed when the grid was packed.
SOURCE_DIRECTORY_SHA256 = "da7c6472feccb747afb7c40ada158475f1609f9bcd8f5d796dc45cc927788ebf"

# From the MANIFEST.tsv published with the grid (sha256 of each file as it came from the pymoog
# sdist): verbatim files, and files that had lost the first character of every line.
VERBATIM = {
    "teff3750logg0.0m_h+0.0.dat": "704401100142d7aef0aab1c268fc2bacbfa7a2db82614fb3b6311d0758bd5d5d",  # noqa: E501
    "teff4750logg2.0m_h-3.0.dat": "c5f02588d512c9f0d815c1b38124b8305915c769be5514773e6d6d0c818930c8",  # noqa: E501
    "teff6750logg5.0m_h+0.5.dat": "1f69855a0ff9eb42ea4382577504f3ced0f3076dc80ea9e6b346dbe7a470525b",  # noqa: E501
}  # fmt: skip
REPAIRED = {
    "teff4500logg1.5m_h-2.5.dat": "86de95e05edbb64466f9a02533b93f415d733c99991d9af8efdd5fb95e9d053c",  # noqa: E501
    "teff5500logg3.5m_h-2.0.dat": "16c9200a4a6cdc07a30978784fb0b925f2787a823fc5f39d8ac6ca0cbe1d746f",  # noqa: E501
}  # fmt: skip


@pytest.fixture(scope="module")
def grid() -> AtmosphereGrid:
    return bundled_grid()


def test_bundled_grid_is_a_lossless_copy_of_the_source_files(grid: AtmosphereGrid) -> None:
    texts = [grid.model_text(k) for k in range(len(grid))]
    assert len(texts) == 2230
    assert texts_sha256(grid.files, texts) == SOURCE_DIRECTORY_SHA256 == grid.sha256
    for name, digest in VERBATIM.items():
        text = texts[grid.files.index(name)]
        assert hashlib.sha256(text.encode("ascii")).hexdigest() == digest
    for name, digest in REPAIRED.items():
        # undo the documented repair (one character put back at the start of every line)
        text = texts[grid.files.index(name)]
        original = "\n".join(line[1:] if line else line for line in text.split("\n"))
        assert hashlib.sha256(original.encode("ascii")).hexdigest() == digest


def test_bundled_models_are_the_parsed_text(grid: AtmosphereGrid) -> None:
    for name in ("teff4500logg1.5m_h-2.5.dat", "teff6750logg5.0m_h+0.5.dat"):
        k = grid.files.index(name)
        (parsed,) = read_kurucz(name, grid.model_text(k))
        model = grid.models[k]
        assert parsed.parameters == model.parameters
        for column in ("rhox", "temperature", "gas_pressure", "electron_density", "kappa_ross"):
            np.testing.assert_allclose(getattr(model, column), getattr(parsed, column), rtol=1e-12)
    model = grid.node(4500, 1.5, -2.5)
    assert model is not None
    assert len(model) == 72
    assert model.microturbulence == 2.0


def test_grid_record_and_coverage(grid: AtmosphereGrid) -> None:
    record = grid.record()
    assert record["ads_reference"] == "1993KurCD..13.....K"
    assert record["grid_sha256"] == SOURCE_DIRECTORY_SHA256
    assert record["grid_files"] == 2230
    assert grid.ranges == {"teff": (3750.0, 6750.0), "logg": (0.0, 5.0), "metallicity": (-4.0, 0.5)}
    assert len(grid.metallicity_nodes) == 16
    # documented holes of the source grid
    assert grid.node(4000, 5.0, -4.0) is None
    assert grid.node(6500, 0.0, 0.0) is None


def test_tau_scale_of_the_kurucz_models(grid: AtmosphereGrid) -> None:
    # ATLAS9 models are computed on log tau_Ross = -6.875 ... +2.0 in steps of 0.125
    model = grid.node(5000, 2.5, -1.0)
    assert model is not None
    np.testing.assert_allclose(model.log_tau_ross[8:], np.arange(-5.875, 2.001, 0.125), atol=0.02)


def test_interpolation_at_a_node_returns_the_node(grid: AtmosphereGrid) -> None:
    model = grid.interpolate(4500, 1.5, -2.5)
    node = grid.node(4500, 1.5, -2.5)
    assert node is not None
    assert model.nodes == ((4500.0, 1.5, -2.5, 1.0),)
    np.testing.assert_allclose(model.temperature, node.temperature, rtol=1e-12)
    np.testing.assert_allclose(model.electron_density, node.electron_density, rtol=1e-10)


def test_interpolation_reports_its_nodes_and_weights(grid: AtmosphereGrid) -> None:
    model = grid.interpolate(4587, 1.61, -2.64)
    assert len(model.nodes) == 8
    assert math.isclose(sum(w for *_, w in model.nodes), 1.0)
    teffs = {t for t, *_ in model.nodes}
    assert teffs == {4500.0, 4750.0}
    weight = {(t, g, m): w for t, g, m, w in model.nodes}
    # multilinear weights: (1 - 87/250)(1 - 0.11/0.5)(1 - 0.14/0.5) at the lower corner
    assert math.isclose(weight[(4500.0, 1.5, -2.5)], (1 - 87 / 250) * (1 - 0.22) * (1 - 0.28))


@pytest.mark.parametrize(
    ("point", "axis"),
    [((4500, 1.5, -2.5), 0), ((4500, 1.5, -2.5), 1), ((4500, 1.5, -2.5), 2),
     ((5500, 3.5, -2.0), 0), ((5750, 4.0, -1.0), 2), ((4750, 2.0, -3.0), 1)],
)  # fmt: skip
def test_interpolation_against_a_left_out_model(
    grid: AtmosphereGrid, point: tuple[float, float, float], axis: int
) -> None:
    # Leave out every model of one Teff, log g or [M/H] value and interpolate across the gap
    # (twice the grid spacing): the structure must still be close to the real model.
    keep = [m for m in grid.models if abs(m.parameters[axis] - point[axis]) > 1e-3]
    model = AtmosphereGrid(keep, "test", "", "", "").interpolate(*point)
    true = grid.node(*point)
    assert true is not None
    assert len(model.nodes) == 2
    inside = (model.log_tau_ross > -4) & (model.log_tau_ross < 1)

    def at(values: np.ndarray) -> np.ndarray:
        return np.interp(model.log_tau_ross, true.log_tau_ross, values)[inside]

    def worst(values: np.ndarray, truth: np.ndarray) -> float:
        return float(np.max(np.abs(values[inside] - at(truth))))

    assert np.max(np.abs(model.temperature[inside] / at(true.temperature) - 1)) < 0.01
    assert worst(np.log10(model.gas_pressure), np.log10(true.gas_pressure)) < 0.08
    assert worst(np.log10(model.electron_density), np.log10(true.electron_density)) < 0.15


@pytest.mark.parametrize(
    ("point", "message"),
    [
        ((7000, 4.0, 0.0), "Teff 7000 K is outside"),
        ((5000, 5.5, 0.0), "log g 5.5 is outside"),
        ((5000, 2.0, -4.5), r"\[M/H\] -4.5 is outside"),
        ((4100, 4.8, -3.8), "no model at Teff 4000 K, log g 5"),
        ((5000, math.nan, 0.0), "log g nan is not a number"),
    ],
)
def test_no_extrapolation(grid: AtmosphereGrid, point: tuple[float, ...], message: str) -> None:
    with pytest.raises(AtmosphereGridError, match=message):
        grid.interpolate(*point)


def test_marcs_reader_on_real_models() -> None:
    sun = read_marcs(DATA / "marcs2008_sun.mod")
    assert (sun.teff, sun.logg, sun.metallicity, sun.alpha) == (5777.0, 4.44, 0.0, 0.0)
    assert len(sun) == 56
    assert sun.microturbulence == 1.0
    # first depth point of the file
    assert (sun.log_tau_ross[0], sun.temperature[0]) == (-5.0, 4066.8)
    assert (sun.gas_pressure[0], sun.rhox[0]) == (2.6699e02, 9.747804e-03)
    assert math.isclose(sun.electron_density[0], 2.1166e-02 / (1.380649e-16 * 4066.8))
    # the Rosseland depth scale integrated from RHOX and KappaRoss agrees with the file's
    tau = kurucz_tau_ross(sun.rhox, sun.kappa_ross)
    assert np.max(np.abs(tau - sun.log_tau_ross)[5:]) < 0.06
    spherical = read_marcs(DATA / "marcs2008_s5000_g+3.0_m1.0_t02_st_z+0.00.mod")
    assert (spherical.teff, spherical.logg, len(spherical)) == (5000.0, 3.0, 56)
    assert read_photospheres(DATA / "marcs2008_sun.mod")[0].teff == 5777.0


def test_user_grid_directories(tmp_path: Path, grid: AtmosphereGrid) -> None:
    kurucz = tmp_path / "kurucz"
    kurucz.mkdir()
    for t in (4500, 4750):
        for g in (1.5, 2.0):
            name = f"teff{t}logg{g:.1f}m_h-2.5.dat"
            (kurucz / name).write_text(grid.model_text(grid.files.index(name)))
    (kurucz / "README.txt").write_text("notes are skipped")
    user = load_grid(kurucz)
    assert len(user) == 4
    assert user.sha256 == hash_directory(kurucz)[0]
    assert user.name == "Kurucz ATLAS9 (user grid)"
    model = user.interpolate(4600, 1.8, -2.5)
    reference = grid.interpolate(4600, 1.8, -2.5)
    np.testing.assert_allclose(model.temperature, reference.temperature)
    with pytest.raises(AtmosphereGridError, match=r"\[M/H\] -2 is outside"):
        user.interpolate(4600, 1.8, -2.0)

    marcs = tmp_path / "marcs"
    marcs.mkdir()
    (marcs / "sun.mod").write_bytes((DATA / "marcs2008_sun.mod").read_bytes())
    user = AtmosphereGrid.from_directory(marcs)
    assert user.ads_reference == "2008A&A...486..951G"
    assert user.interpolate(5777, 4.44, 0.0).nodes == ((5777.0, 4.44, 0.0, 1.0),)


def test_bad_model_files(tmp_path: Path, grid: AtmosphereGrid) -> None:
    text = grid.model_text(0)
    truncated = tmp_path / "truncated.dat"
    truncated.write_text(text[: len(text) // 2])
    with pytest.raises(InputFileError, match=r"truncated\.dat: .*READ DECK6 announces 72"):
        read_kurucz(truncated)
    junk = tmp_path / "junk.mod"
    junk.write_text("hello\n")
    with pytest.raises(InputFileError, match="neither a Kurucz"):
        read_photospheres(junk)
    with pytest.raises(InputFileError, match="no such file"):
        read_marcs(tmp_path / "missing.mod")
    directory = tmp_path / "grid"
    directory.mkdir()
    (directory / "model.dat").write_text(text)
    (directory / "other.dat").write_bytes(b"\x00\x01binary")
    with pytest.raises(InputFileError, match=r"other\.dat: not a Kurucz"):
        AtmosphereGrid.from_directory(directory)
    with pytest.raises(InputFileError, match="no such model-atmosphere grid"):
        load_grid(tmp_path / "nowhere")
    twice = tmp_path / "twice"
    twice.mkdir()
    (twice / "a.dat").write_text(text)
    (twice / "b.dat").write_text(text)
    with pytest.raises(AtmosphereGridError, match="two models at"):
        AtmosphereGrid.from_directory(twice)
