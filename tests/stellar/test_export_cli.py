"""Export (ECSV, FITS, AASTeX), physics provenance and the `photonpipe session` commands."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table

from photonpipe.cli.main import main
from photonpipe.errors import InputFileError
from photonpipe.spectra.resample import resample
from photonpipe.spectra.spectrum import Spectrum
from photonpipe.stellar.export import deluxetable, export_measurements, measurements_table
from photonpipe.stellar.linelist import LineList, read_linelist
from photonpipe.stellar.physics import hash_directory
from photonpipe.stellar.readers import read_spectrum
from photonpipe.stellar.session import Session
from photonpipe.stellar.simulate import write_multispec

DATA = Path(__file__).resolve().parents[1] / "data" / "stellar"
TEMPLATES = Path(__file__).resolve().parents[2] / "src" / "photonpipe" / "stellar" / "data"


@pytest.fixture
def measured(tmp_path: Path) -> Session:
    session = Session.new([DATA / "hd122563_mike_linewindows.fits.gz"])
    lines = DATA / "frebel2013_hd122563_ew.moog2"
    subset = tmp_path / "subset.moog"
    subset.write_text("".join(lines.read_text().splitlines(keepends=True)[:40]))
    session.measure(subset)
    key = next(iter(session.state["measurements"]))
    session.state["measurements"][key]["comments"].append("blended with Ti II & CH_band")
    return session


def test_exports(measured: Session, tmp_path: Path) -> None:
    table = measurements_table(measured)
    assert len(table) == 39
    assert table["ew"].unit == "mAngstrom"
    assert table.meta["input_spectra"][0].startswith("hd122563_mike_linewindows.fits.gz sha256:")
    for suffix in ("ecsv", "fits"):
        back = Table.read(export_measurements(measured, tmp_path / f"m.{suffix}"))
        np.testing.assert_allclose(back["ew"], table["ew"])
        assert list(back["line_hash"]) == list(table["line_hash"])
    tex = export_measurements(measured, tmp_path / "m.tex").read_text()
    assert tex.startswith(r"\begin{deluxetable}")
    note = re.search(r"\\tablenotetext\{([a-z]+)\}\{blended with Ti II \\& CH\\_band\}", tex)
    assert note is not None
    assert re.search(r"\\tablenotemark\{[a-z,]*" + note.group(1) + r"\b", tex)
    assert tex.count(r"\\") >= len(table) - 1
    assert tex.rstrip().endswith(r"\end{deluxetable}")


def test_limits_in_latex() -> None:
    table = Table(
        rows=[(5000.0, "Fe I", 1.0, -1.0, 0.0, 0.0, True, 4.5, "")],
        names=("wavelength", "element", "expot", "loggf", "ew", "ew_uncertainty", "is_limit",
               "upper_limit", "comments"),
    )  # fmt: skip
    assert r"$<$4.5\tablenotemark" not in deluxetable(table)
    assert r"$<$4.5 & \nodata" in deluxetable(table)


def test_physics_provenance(tmp_path: Path) -> None:
    grid = tmp_path / "marcs"
    (grid / "sub").mkdir(parents=True)
    (grid / "a.mod").write_text("model a")
    (grid / "sub" / "b.mod").write_text("model b")
    digest, count = hash_directory(grid)
    assert count == 2
    session = Session.new([DATA / "hd122563_mike_linewindows.fits.gz"])
    physics = session.record_physics(
        atmosphere_name="MARCS 2008", atmosphere_version="1", atmosphere_reference=
        "2008A&A...486..951G", atmosphere_grid=grid, rt_code="MOOG", rt_version="NOV2019",
        rt_settings={"damping": 1},
    )  # fmt: skip
    assert physics["model_atmospheres"]["grid_sha256"] == digest
    (grid / "a.mod").write_text("model A")  # a silently changed grid changes the hash
    assert hash_directory(grid)[0] != digest
    saved = Session.load(session.save(tmp_path / "s.smh"))
    assert saved.state["physics"]["radiative_transfer"]["settings"] == {"damping": 1}
    with pytest.raises(InputFileError, match="not a directory"):
        hash_directory(tmp_path / "none")


def test_cli_workflow(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Two echelle orders made from the real HD 122563 spectrum, shifted by 23.4 km/s."""
    (giant,) = read_spectrum(TEMPLATES / "rv_template_giant_hd122563.fits")
    observed = giant.doppler_shifted(-23.4)  # rest → observed wavelengths
    rng = np.random.default_rng(6)
    orders = []
    for start, end in ((5000.0, 5260.0), (5240.0, 5480.0)):
        part = resample(observed, np.geomspace(start, end, 6000))
        blaze = 1e4 * np.sinc(0.5 * np.linspace(-1, 1, 6000)) ** 2
        sigma = np.sqrt(part.flux * blaze * 1e4) / 100.0
        flux = part.flux * blaze + rng.normal(0.0, 1.0, 6000) * sigma
        orders.append(Spectrum(part.wavelength, flux, 1 / sigma**2))
    spectrum = write_multispec(tmp_path / "star.fits", orders, "chebyshev")
    frebel = read_linelist(DATA / "frebel2013_hd122563_ew.moog2")
    subset = LineList(ln for ln in frebel if 5020 < ln.wavelength < 5440)
    linelist = subset.write(tmp_path / "lines.ecsv")
    smh = tmp_path / "star.smh"
    assert main(["session", "new", str(spectrum), "-o", str(smh)]) == 0
    assert main(["session", "rv", str(smh), "--template", "giant", "--range", "5050", "5250"]) == 0
    assert main(["session", "apply-rv", str(smh)]) == 2  # no such command: usage error
    assert main(["session", "normalize", str(smh), "--knot-spacing", "5"]) == 0
    assert main(["session", "stack", str(smh), "--step", "2.0", "--scale", "log"]) == 0
    assert main(["session", "measure", str(smh), "--linelist", str(linelist)]) == 0
    assert main(["session", "export", str(smh), "-o", str(tmp_path / "ew.ecsv")]) == 0
    capsys.readouterr()
    assert main(["session", "info", str(smh), "--format", "json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["orders"] == 2
    assert info["rv_measured"] == pytest.approx(23.4, abs=0.2)
    assert info["ew_measurements"] == len(subset)
    assert info["stacked_pixels"] > 0
    assert "rv_template_giant_hd122563.fits" in info["ancillary_files"]
    table = Table.read(tmp_path / "ew.ecsv")
    published = {ln.hash: ln.reference_ew for ln in subset}
    good = table[table["acceptable"] & ~table["is_limit"]]
    ratio = np.array([row["ew"] / published[row["line_hash"]] for row in good])
    assert abs(np.median(ratio) - 1) < 0.1
    # one-line errors naming the file and the problem, exit code 2 (an input error; exit 1
    # before issue 16 put input errors with usage errors)
    (tmp_path / "evil.smh").write_bytes(b"not a session")
    assert main(["session", "info", str(tmp_path / "evil.smh")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("photonpipe: error: ")
    assert "evil.smh: not a readable gzipped tarball" in err
    assert err.count("\n") == 1


def test_simulate_command_and_truth(tmp_path: Path) -> None:
    out = tmp_path / "sim"
    assert main(["simulate", "stellar", "-o", str(out), "--orders", "3", "--rv", "-40"]) == 0
    truth = read_linelist(out / "simulated_star_truth.ecsv")
    assert Table.read(out / "simulated_star_truth.ecsv").meta["rv_kms"] == -40.0
    session = Session.new([out / "simulated_star.fits"])
    assert session.n_orders == 3
    session.apply_rv(-40.0)
    session.normalize_all(use_default_masks=False, knot_spacing=10.0)
    session.stack()
    measured = session.measure(truth)
    true_ew = {ln.hash: ln.reference_ew for ln in truth}
    ratio = [m["ew"] / true_ew[m["line_hash"]] for m in measured if m["acceptable"]]
    assert len(ratio) > 0.9 * len(measured)
    assert abs(np.median(ratio) - 1) < 0.02
