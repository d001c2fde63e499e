"""Readers, the STIS tag → corrtag conversion, products and bad input."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from helpers.lightcurves import event_files, flat_of, simulate
from photonpipe.cli.main import main
from photonpipe.lightcurves.curve import LightCurve
from photonpipe.lightcurves.dataset import assemble_dataset, read_datasets
from photonpipe.lightcurves.extract import ExtractionParameters, extract
from photonpipe.lightcurves.formats import (
    COS_CORRTAG,
    STIS_TAG,
    X1D,
    EmptyEventListError,
    MissingExtensionError,
    MissingKeywordError,
    NonMonotonicTimeError,
    UnknownInstrumentError,
    UnreadableFileError,
    identify,
    read_events,
    read_x1d,
)
from photonpipe.lightcurves.products import (
    hlsp_filename,
    make_composites,
    make_individual,
)
from photonpipe.lightcurves.simulate import Exposure, SimulatedDataset, Variability
from photonpipe.lightcurves.stis import tag_to_corrtag, write_corrtag

COS_FORMATS = {
    "TIME": "E", "RAWX": "I", "RAWY": "I", "XCORR": "E", "YCORR": "E", "XDOPP": "E",
    "XFULL": "E", "YFULL": "E", "WAVELENGTH": "E", "EPSILON": "E", "DQ": "I", "PHA": "B",
}  # fmt: skip


def _corrtag_a(simulated: SimulatedDataset) -> Path:
    return next(p for p in simulated.files if p.name.endswith("_corrtag_a.fits"))


def test_simulated_cos_files_have_the_real_layout(cos_constant: SimulatedDataset) -> None:
    path = _corrtag_a(cos_constant)
    assert identify(path) == COS_CORRTAG
    with fits.open(path) as hdul:
        assert [h.name for h in hdul] == ["PRIMARY", "EVENTS", "GTI"]
        formats = {c.name: c.format for c in hdul["EVENTS"].columns}
        assert formats == COS_FORMATS
        primary, events = hdul[0].header, hdul["EVENTS"].header
        for key in ("INSTRUME", "DETECTOR", "SEGMENT", "OPT_ELEM", "CENWAVE", "APERTURE",
                    "FPPOS", "TARGNAME", "RA_TARG", "DEC_TARG", "PROPOSID", "CAL_VER",
                    "OBSTYPE", "FLUXTAB", "TDSTAB"):  # fmt: skip
            assert key in primary, key
        keys = "EXPSTART EXPEND EXPTIME EXPFLAG SDQFLAGS SP_LOC_A SP_HGT_A SP_SLP_A B_BKG1_A"
        for key in [*keys.split(), "B_BKG2_A", "B_HGT1_A", "B_HGT2_A"]:
            assert key in events, key
        # EXPTIME is the good time of the GTI table
        gti = hdul["GTI"].data
        assert events["EXPTIME"] == pytest.approx(float(np.sum(gti["STOP"] - gti["START"])))
    x1d = next(p for p in cos_constant.files if p.name.endswith("_x1d.fits"))
    assert identify(x1d) == X1D
    assert [r.name for r in read_x1d(x1d).rows] == ["FUVA", "FUVB"]


def test_simulator_is_deterministic(tmp_path: Path) -> None:
    exposure = Exposure("ldet01abq", exptime=200.0, variability=Variability("sinusoid"))
    first = simulate(tmp_path / "1", exposure, seed=3)
    second = simulate(tmp_path / "2", exposure, seed=3)
    other = simulate(tmp_path / "3", exposure, seed=4)

    def digest(s: SimulatedDataset) -> str:
        with fits.open(_corrtag_a(s)) as hdul:
            return hashlib.sha256(hdul["EVENTS"].data.tobytes()).hexdigest()

    assert digest(first) == digest(second) != digest(other)


def test_stis_tag_to_corrtag(tmp_path: Path) -> None:
    simulated = simulate(tmp_path, Exposure("osta01abq", mode="G140L", exptime=300.0,
                                            flat_file=True))  # fmt: skip
    tag = next(p for p in simulated.files if p.name.endswith("_tag.fits"))
    x1d = next(p for p in simulated.files if p.name.endswith("_x1d.fits"))
    assert identify(tag) == STIS_TAG
    plain = tag_to_corrtag(tag, x1d)
    assert plain.events_header["EPSSRC"] == "NONE"
    assert plain.events_header["DQSRC"] == "NONE"
    assert np.all(plain.columns["EPSILON"] == 1)
    assert np.all(plain.columns["DQ"] == 0)
    # wavelengths: the x1d wavelength array at the low-res column (AXIS1 / 2)
    wavelength = read_x1d(x1d).rows[0].wavelength
    axis1 = read_events(tag).columns["AXIS1"]
    expected = np.interp(axis1 / 2 - 0.25, np.arange(1024), wavelength)
    np.testing.assert_allclose(plain.columns["WAVELENGTH"], expected, rtol=1e-6)
    # with a flat and a bad-pixel image
    badpix = tmp_path / "bpx.fits"
    image = np.zeros((1024, 1024), dtype=np.int16)
    image[:, 100:110] = 4
    fits.PrimaryHDU(image).writeto(badpix)
    flat = flat_of(simulated)
    assert flat is not None
    corrected = tag_to_corrtag(tag, x1d, flat=flat, badpix=badpix)
    assert corrected.events_header["EPSSRC"] == flat.name
    flagged = (axis1 // 2 >= 100) & (axis1 // 2 < 110)
    assert np.all(corrected.columns["DQ"][flagged] == 4)
    assert np.all(corrected.columns["DQ"][~flagged] == 0)
    assert 1.0 < float(np.mean(corrected.columns["EPSILON"])) < 1.1
    # written and read back, it extracts exactly like the in-memory conversion
    path = write_corrtag(corrected, tmp_path / "osta01abq_corrtag.fits")
    from_file = read_datasets([path, x1d])[0]
    in_memory = assemble_dataset([tag, x1d], flat=flat, badpix=badpix)
    a = extract(from_file, ExtractionParameters(step=20.0))
    b = extract(in_memory, ExtractionParameters(step=20.0))
    np.testing.assert_allclose(np.asarray(a["NET"]), np.asarray(b["NET"]), rtol=1e-6)


def test_stis_echelle_events_get_the_wavelength_of_their_order_box(tmp_path: Path) -> None:
    simulated = simulate(tmp_path, Exposure("oech01abq", mode="E140M", exptime=200.0))
    tag = next(p for p in simulated.files if p.name.endswith("_tag.fits"))
    x1d_path = next(p for p in simulated.files if p.name.endswith("_x1d.fits"))
    corrtag = tag_to_corrtag(tag, x1d_path)
    x1d = read_x1d(x1d_path)
    assert len(corrtag.regions) == 8
    y = corrtag.columns["YCORR"]
    x = corrtag.columns["XCORR"]
    wavelength = corrtag.columns["WAVELENGTH"]
    inside_any = np.zeros(len(y), dtype=bool)
    for row in x1d.rows:
        centre = np.interp(x, np.arange(1024), np.asarray(row.extras["EXTRLOCY"]) - 1)
        inside = np.abs(y - centre) <= row.extras["EXTRSIZE"] / 2
        inside_any |= inside
        np.testing.assert_allclose(
            wavelength[inside], np.interp(x[inside], np.arange(1024), row.wavelength), rtol=1e-6
        )
    assert np.all(wavelength[~inside_any] == 0)


def test_products_and_composite(tmp_path: Path) -> None:
    first = simulate(tmp_path, Exposure("lcmp01abq", exptime=600.0, expstart=58000.10))
    second = simulate(tmp_path, Exposure("lcmp02abq", exptime=600.0, expstart=58000.30))
    out = tmp_path / "out"
    product = make_individual(assemble_dataset(event_files(first)), out, ExtractionParameters(10))
    assert product.path.name == "lcmp01abq_curve.fits"
    assert product.quicklook is not None
    assert product.quicklook.stat().st_size > 10_000
    with fits.open(product.path) as hdul:
        assert hdul[1].name == "LIGHTCURVE"
        header = hdul[0].header
        assert header["STEP"] == 10
        assert header["FLUXCAL"] == "x1d"
        names = {header[k] for k in header if k.startswith("INPUT")}
        assert names == {p.name for p in event_files(first)}
        x1d = next(p for p in first.files if p.name.endswith("_x1d.fits"))
        index = next(k[5:] for k in header if k.startswith("INPUT") and header[k] == x1d.name)
        assert header[f"SHA{int(index):05d}"] == hashlib.sha256(x1d.read_bytes()).hexdigest()
    curve = LightCurve.read(product.path)
    np.testing.assert_allclose(np.asarray(curve["FLUX"]), np.asarray(product.curve["FLUX"]))
    np.testing.assert_allclose(curve.time.mjd, np.asarray(product.curve["MJD"]))
    # rebinning keeps counts and exposure
    wide = curve.bin(60.0)
    assert float(np.sum(np.asarray(wide["COUNTS"]))) == pytest.approx(
        float(np.sum(np.asarray(curve["COUNTS"])))
    )
    assert float(np.sum(np.asarray(wide["BIN_EXPTIME"]))) == pytest.approx(
        float(np.sum(np.asarray(curve["BIN_EXPTIME"])))
    )
    # composite: both datasets, time ordered, numbered, over the common range
    (composite,) = make_composites(
        event_files(second) + event_files(first), out, ExtractionParameters(10)
    )
    assert composite.path.name == "hlsp_hstlc_hst_cos-fuv_sim-star_g130m_1291_psa_v1_sci.fits"
    datasets = np.asarray(composite.curve["DATASET"])
    mjd = np.asarray(composite.curve["MJD"])
    assert set(datasets) == {1, 2}
    assert np.all(np.diff(mjd) > 0)
    assert np.all(mjd[datasets == 1] < 58000.2)
    with fits.open(composite.path) as hdul:
        assert hdul[0].header["NDATASET"] == 2
        assert [hdul[0].header["DATA0001"], hdul[0].header["DATA0002"]] == [
            "lcmp01abq",
            "lcmp02abq",
        ]
    assert hlsp_filename(("STIS", "FUV-MAMA", "HD 1/2", "E140M", "1425", "0.2X0.2")) == (
        "hlsp_hstlc_hst_stis-fuv-mama_hd-1-2_e140m_1425_0.2x0.2_v1_sci.fits"
    )


# --- bad input ------------------------------------------------------------------------------


def _rewrite(source: Path, target: Path, edit) -> Path:  # type: ignore[no-untyped-def]
    with fits.open(source) as hdul:
        hdus = fits.HDUList([h.copy() for h in hdul])
    edit(hdus)
    hdus.writeto(target)
    return target


def _no_events(hdus: fits.HDUList) -> None:
    hdus["EVENTS"].data = hdus["EVENTS"].data[:0]


def _reversed_time(hdus: fits.HDUList) -> None:
    hdus["EVENTS"].data["TIME"][10:20] = hdus["EVENTS"].data["TIME"][10:20][::-1].copy()


def _no_expstart(hdus: fits.HDUList) -> None:
    del hdus["EVENTS"].header["EXPSTART"]


def _no_gti(hdus: fits.HDUList) -> None:
    del hdus["GTI"]


def _no_events_table(hdus: fits.HDUList) -> None:
    del hdus["EVENTS"]


def _acs(hdus: fits.HDUList) -> None:
    hdus[0].header["INSTRUME"] = "ACS"


@pytest.mark.parametrize(
    ("edit", "error", "words"),
    [
        (_no_events, EmptyEventListError, "no events"),
        (_reversed_time, NonMonotonicTimeError, "TIME decreases"),
        (_no_expstart, MissingKeywordError, "EXPSTART"),
        (_no_gti, MissingExtensionError, "GTI"),
        (_no_events_table, MissingExtensionError, "EVENTS"),
        (_acs, UnknownInstrumentError, "ACS"),
    ],
)
def test_bad_event_files_raise_specific_errors(
    cos_constant: SimulatedDataset,
    tmp_path: Path,
    edit,
    error,
    words,
    capsys,  # type: ignore[no-untyped-def]
) -> None:
    bad = _rewrite(_corrtag_a(cos_constant), tmp_path / "lbad01abq_corrtag_a.fits", edit)
    with pytest.raises(error) as caught:
        read_events(bad)
    assert str(bad) in str(caught.value)
    assert words in str(caught.value)
    out = tmp_path / "out"
    assert main(["lightcurve", "make", str(bad), "--out", str(out)]) == 2  # input error (was 1)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert str(bad) in lines[0]
    assert words in lines[0]
    assert not out.exists() or not any(out.iterdir())  # no partial product


def test_truncated_and_non_fits_files(cos_constant: SimulatedDataset, tmp_path: Path) -> None:
    data = _corrtag_a(cos_constant).read_bytes()
    truncated = tmp_path / "ltru01abq_corrtag_a.fits"
    truncated.write_bytes(data[: len(data) // 3])
    text = tmp_path / "ltxt01abq_corrtag_a.fits"
    text.write_text("not FITS at all\n")
    for path in (truncated, text):
        with pytest.raises(UnreadableFileError, match=r"ltru01abq|ltxt01abq"):
            read_datasets([path])


def test_cli_simulate_make_stats_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = tmp_path / "raw"
    assert main(["simulate", "stis", "--out", str(raw), "--exptime", "300",
                 "--variability", "sinusoid"]) == 0  # fmt: skip
    out = tmp_path / "out"
    files = [str(p) for p in raw.glob("osim01abq_*.fits") if "lfl" not in p.name]
    flat = str(raw / "osim01abq_lfl.fits")
    assert main(["lightcurve", "make", *files, "--flat", flat, "--step", "5",
                 "--out", str(out)]) == 0  # fmt: skip
    curve = out / "osim01abq_curve.fits"
    assert curve.exists()
    assert (out / "osim01abq_curve.png").exists()
    capsys.readouterr()
    assert main(["lightcurve", "stats", str(curve), "--format", "json"]) == 0
    assert '"poisson_factor"' in capsys.readouterr().out
    assert main(["lightcurve", "plot", str(curve), "--out", str(tmp_path / "q.png")]) == 0
    assert (tmp_path / "q.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["lightcurve", "composite", *files, "--out", str(out), "--no-plot"]) == 0
    assert (out / "hlsp_hstlc_hst_stis-fuv-mama_sim-star_g140l_1425_52x0.2_v1_sci.fits").exists()
