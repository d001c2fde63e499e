"""The Session API end to end on a simulated echelle star, and session-level bad input."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from photonpipe.errors import InputFileError
from photonpipe.spectra.resample import linear_wavelength_grid
from photonpipe.stellar.ew import measurement_key
from photonpipe.stellar.linelist import Line, LineList
from photonpipe.stellar.session import Session, SessionError
from photonpipe.stellar.sessionfile import SessionFileError
from photonpipe.stellar.simulate import (
    SimulatedLine,
    normalized_flux,
    simulate_echelle,
    write_multispec,
)

TRUE_RV = 37.3
ORDERS = [(4990.0 + 45.0 * i, 5050.0 + 45.0 * i) for i in range(6)]


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    """Isolated lines every 2.5 Å (so each truth EW is clean), a template file, a line list."""
    root = tmp_path_factory.mktemp("star")
    rng = np.random.default_rng(21)
    centres = np.arange(4995.0, 5290.0, 2.5) + rng.uniform(-0.3, 0.3, 118)
    lines = [SimulatedLine(float(c), float(rng.uniform(15, 120)), 0.16) for c in centres]
    star = simulate_echelle(ORDERS, lines, TRUE_RV, snr=100.0, seed=5)
    spectrum = write_multispec(
        root / "star_blue.fits",
        star.orders,
        "legendre",
        extra_header={
            "RA-D": 235.7597083, "DEC-D": -10.9341667, "UT-DATE": "2010-08-06",
            "UT-START": "23:02:19", "EXPTIME": 6480.0, "SITELAT": -29.01423,
            "SITELONG": -70.69242, "SITEALT": 2400,
        },
    )  # fmt: skip
    grid = linear_wavelength_grid(4950.0, 5350.0, 0.01)
    header = fits.Header({"CRVAL1": 4950.0, "CDELT1": 0.01, "CRPIX1": 1.0})
    template = root / "template.fits"
    fits.PrimaryHDU(normalized_flux(grid, lines), header=header).writeto(template)
    linelist = LineList(
        Line(round(ln.wavelength, 4), 26.0, 2.0, -1.5, reference_ew=ln.ew_milliangstrom)
        for ln in lines
    )
    (root / "lines.ecsv").unlink(missing_ok=True)
    linelist.write(root / "lines.ecsv")
    return {"spectrum": spectrum, "template": template, "lines": root / "lines.ecsv", "star": star}


def test_full_analysis_and_round_trip(simulated, tmp_path: Path) -> None:
    session = Session.new([simulated["spectrum"]])
    assert session.n_orders == 6
    rv = session.measure_rv(simulated["template"], wavelength_range=(5100.0, 5200.0))
    assert rv["rv_measured"] == pytest.approx(TRUE_RV, abs=0.2)
    assert rv["rv_applied"] == rv["rv_measured"]
    assert rv["correction_source"] == "header"
    assert rv["barycentric_correction"] == pytest.approx(-28.53, abs=0.02)
    assert rv["template_filename"] == "template.fits"
    assert "template.fits" in session.files

    session.discard_order(5)
    # the simulated star has no Mg b, Balmer or telluric lines: no default masks
    session.normalize_all(function="spline", knot_spacing=15.0, use_default_masks=False)
    records = session.state["normalization"]["orders"]
    assert len(records) == 6
    assert records[5] is None
    for index in range(5):
        truth = simulated["star"].continuum[index]
        ratio = records[index]["continuum"] / truth
        assert abs(np.median(ratio) - 1) < 0.005
        assert records[index]["function"] == "spline"
        for start, end, _ in records[index]["masks"]:  # only masks overlapping the order
            lo, hi = session.rest_frame_order(index).wavelength_range
            assert end >= lo
            assert start <= hi

    stacked = session.stack(step=0.02)
    # the discarded order (observed 5215-5275 Å) is not stacked: the stack ends with order 4
    assert stacked.wavelength[-1] == pytest.approx(
        session.rest_frame_order(4).wavelength[-1], abs=0.02
    )
    assert session.state["stacked_spectrum"]["options"]["step"] == 0.02

    measured = session.measure(simulated["lines"])
    good = [m for m in measured if m["acceptable"] and not m["is_limit"]]
    assert len(good) > 0.9 * len(measured)
    truth = {ln.hash: ln.reference_ew for ln in session.lines}
    ratios = np.array([m["ew"] / truth[m["line_hash"]] for m in good])
    pulls = np.array([(m["ew"] - truth[m["line_hash"]]) / m["ew_uncertainty"] for m in good])
    assert abs(np.median(ratios) - 1) < 0.02
    assert 0.7 < np.std(pulls) < 1.35  # noise propagated through normalisation and stacking

    path = session.save(tmp_path / "star.smh")
    loaded = Session.load(path)
    assert loaded.files["star_blue.fits"] == simulated["spectrum"].read_bytes()
    assert loaded.state.keys() == session.state.keys()
    np.testing.assert_array_equal(loaded.state["rv"]["ccf"], session.state["rv"]["ccf"])
    np.testing.assert_array_equal(
        loaded.state["normalization"]["orders"][2]["continuum"], records[2]["continuum"]
    )
    np.testing.assert_array_equal(loaded.stacked_spectrum.flux, stacked.flux)
    key = measurement_key(good[0]["line_hash"])
    np.testing.assert_array_equal(
        loaded.state["measurements"][key]["model"], session.state["measurements"][key]["model"]
    )
    assert loaded.summary()["ew_measurements"] == len(measured)
    assert loaded.state["discarded_orders"] == [5]


def test_new_ew_fit_replaces_only_ew(simulated) -> None:
    session = Session.new([simulated["spectrum"]])
    session.apply_rv(TRUE_RV)
    line = session.add_lines(simulated["lines"])[10]
    (first,) = session.measure(LineList([line]))
    key = measurement_key(line.hash, "ew")
    synth_key = measurement_key(line.hash, "synth")
    session.state["measurements"][synth_key] = {"method": "synth", "line_hash": line.hash}
    (second,) = session.measure(LineList([line]), profile="voigt")
    assert session.state["measurements"][key] is second
    assert second["profile"] == "voigt"
    assert first["profile"] == "gaussian"
    assert synth_key in session.state["measurements"]
    assert len(session.measurements("ew")) == 1
    # a blend group is its own measurement
    group = [session.lines[10], session.lines[11]]
    (blend,) = session.measure(LineList([]), groups=[group])
    assert blend["line_hashes"] == [ln.hash for ln in group]


def test_session_bad_input(simulated, tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="no such file"):
        Session.new([tmp_path / "absent.fits"])
    with pytest.raises(SessionError, match="at least one"):
        Session.new([])
    copy = tmp_path / "star_blue.fits"
    copy.write_bytes(simulated["spectrum"].read_bytes())
    with pytest.raises(SessionError, match="two input spectra"):
        Session.new([simulated["spectrum"], copy])
    corrupt = tmp_path / "corrupt.fits"
    corrupt.write_bytes(simulated["spectrum"].read_bytes()[:5000])
    with pytest.raises(InputFileError, match=r"corrupt\.fits"):
        Session.new([corrupt])
    session = Session.new([simulated["spectrum"]])
    with pytest.raises(SessionError, match="has not been normalised"):
        session.normalized_order(0)
    with pytest.raises(SessionError, match="no normalised order"):
        session.stack()
    with pytest.raises(SessionError, match="no order 9"):
        session.order(9)
    assert session.measure(LineList([Line(9000.0, 26.0, 1.0, -1.0)])) == []
    assert session.state["history"][-1]["skipped"] == [9000.0]
    # a session file whose input spectrum was removed from the tarball
    path = session.save(tmp_path / "s.smh")
    with gzip.open(path) as gz, tarfile.open(fileobj=gz) as tar:
        pkl = tar.extractfile("session.pkl").read()  # type: ignore[union-attr]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("session.pkl")
        info.size = len(pkl)
        tar.addfile(info, io.BytesIO(pkl))
    (tmp_path / "missing.smh").write_bytes(gzip.compress(buffer.getvalue()))
    with pytest.raises(SessionFileError, match=r"input spectrum 'star_blue\.fits' is missing"):
        Session.load(tmp_path / "missing.smh")
