"""Issue 19.4: every header value validated where it is read, in `make` as in ingest.

Each case failed before (accepted silently, or an error naming neither file nor keyword) and is
now refused with one line naming the file and the keyword or column.
"""

from __future__ import annotations

import importlib
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from astropy.io import fits

from helpers.lightcurves import simulate
from photonpipe.cli.main import main
from photonpipe.lightcurves.dataset import assemble_dataset
from photonpipe.lightcurves.extract import ExtractionParameters
from photonpipe.lightcurves.formats import (
    BadColumnError,
    LightCurveInputError,
    read_events,
    read_x1d,
)
from photonpipe.lightcurves.ingest import ArchiveLayout, ingest
from photonpipe.lightcurves.models import BadData
from photonpipe.lightcurves.simulate import Exposure, SimulatedDataset
from photonpipe.platform.archive import Archive
from photonpipe.platform.db import Database

Edit = Callable[[fits.HDUList], None]
extract = importlib.import_module("photonpipe.lightcurves.extract")


def _rewrite(source: Path, target: Path, edit: Edit) -> Path:
    with fits.open(source) as hdul:
        hdus = fits.HDUList([h.copy() for h in hdul])
    edit(hdus)
    target.parent.mkdir(parents=True, exist_ok=True)
    hdus.writeto(target, overwrite=True)
    return target


def _cenwave_text(hdus: fits.HDUList) -> None:
    hdus[0].header["CENWAVE"] = "abc"


def _wavelength_text(hdus: fits.HDUList) -> None:
    events = hdus["EVENTS"]
    columns = [
        fits.Column("WAVELENGTH", "12A", array=np.char.mod("%.3f", events.data["WAVELENGTH"]))
        if c.name == "WAVELENGTH"
        else fits.Column(c.name, c.format, c.unit, array=events.data[c.name])
        for c in events.columns
    ]
    hdus["EVENTS"] = fits.BinTableHDU.from_columns(columns, header=events.header, name="EVENTS")


def _nan_wavelength_inf_epsilon(hdus: fits.HDUList) -> None:
    hdus["EVENTS"].data["WAVELENGTH"][::3] = np.nan
    hdus["EVENTS"].data["EPSILON"][::3] = np.inf


def _nan_time(hdus: fits.HDUList) -> None:
    hdus["EVENTS"].data["TIME"][-5] = np.nan


def _inf_time(hdus: fits.HDUList) -> None:
    hdus["EVENTS"].data["TIME"][-1] = np.inf


def _negative_exptime(hdus: fits.HDUList) -> None:
    hdus["EVENTS"].header["EXPTIME"] = -1.0


def _unknown_detector(hdus: fits.HDUList) -> None:
    hdus[0].header["DETECTOR"] = "CCD"


#: (edit of the corrtag, what the message must name)
CASES: dict[str, tuple[Edit, str]] = {
    "cenwave_text": (_cenwave_text, "CENWAVE = 'abc' is not an integer"),
    "wavelength_text": (_wavelength_text, "column WAVELENGTH holds"),
    "nan_wavelength_inf_epsilon": (_nan_wavelength_inf_epsilon, "column WAVELENGTH = nan"),
    "nan_time": (_nan_time, "column TIME = nan"),
    "inf_time": (_inf_time, "column TIME = inf"),
    "negative_exptime": (_negative_exptime, "EXPTIME = -1.0 is not > 0"),
    "unknown_detector": (_unknown_detector, "DETECTOR = 'CCD' is not one of FUV, NUV"),
}


@pytest.fixture(scope="module")
def exposure(tmp_path_factory: pytest.TempPathFactory) -> SimulatedDataset:
    return simulate(tmp_path_factory.mktemp("hv"), Exposure("lhva01abq", exptime=200.0))


def _corrtag(simulated: SimulatedDataset) -> Path:
    return next(p for p in simulated.files if p.name.endswith("_corrtag_a.fits"))


@pytest.mark.parametrize("case", sorted(CASES))
def test_reader_names_the_keyword(exposure: SimulatedDataset, tmp_path: Path, case: str) -> None:
    edit, words = CASES[case]
    bad = _rewrite(_corrtag(exposure), tmp_path / "lhva01abq_corrtag_a.fits", edit)
    with pytest.raises(LightCurveInputError) as caught:
        read_events(bad)
    message = str(caught.value)
    assert message.startswith(f"{bad}: ")
    assert words in message
    assert "\n" not in message


def test_streamed_events_are_checked_in_every_chunk(
    exposure: SimulatedDataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A NaN time in a late chunk of a streamed file stops the extraction, naming the row."""
    monkeypatch.setattr(extract, "CHUNK_EVENTS", 64)
    n_events = len(fits.getdata(_corrtag(exposure), "EVENTS"))
    assert n_events > 4 * 64

    def late_nan(hdus: fits.HDUList) -> None:
        hdus["EVENTS"].data["TIME"][n_events - 3] = np.nan

    bad = _rewrite(_corrtag(exposure), tmp_path / "lhva01abq_corrtag_a.fits", late_nan)
    events = read_events(bad, stream=True)
    assert events.stream is not None  # headers read; the events stay in the file
    dataset = assemble_dataset([bad], stream=True, support_beside=False)
    with pytest.raises(BadColumnError, match=f"TIME = nan \\(not finite\\) at row {n_events - 3}"):
        extract.extract(dataset, ExtractionParameters(step=10.0))


def _make(capsys: pytest.CaptureFixture[str], *paths: Path, out: Path) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["lightcurve", "make", *map(str, paths), "--only-given", "--step", "10",
                 "--no-plot", "--out", str(out)])  # fmt: skip
    stdout, stderr = capsys.readouterr()
    return code, stdout, stderr


@pytest.mark.parametrize("case", ["negative_exptime", "cenwave_text", "nan_time"])
def test_make_refuses_with_one_line(
    exposure: SimulatedDataset, tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    edit, words = CASES[case]
    bad = _rewrite(_corrtag(exposure), tmp_path / "lhva01abq_corrtag_a.fits", edit)
    code, _, stderr = _make(capsys, bad, out=tmp_path / "out")
    assert code == 2
    assert stderr.strip().startswith(f"photonpipe: error: {bad}: ")
    assert words in stderr
    assert not list((tmp_path / "out").glob("*_curve.fits"))


def test_make_says_why_the_x1d_is_unusable(
    exposure: SimulatedDataset, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An x1d whose FLUX is all NaN is refused by name, not silently "UNCALIBRATED (no x1d)"."""
    x1d = next(p for p in exposure.files if p.name.endswith("_x1d.fits"))

    def nan_flux(hdus: fits.HDUList) -> None:
        hdus["SCI"].data["FLUX"][:] = np.nan

    bad_x1d = _rewrite(x1d, tmp_path / x1d.name, nan_flux)
    corrtag = shutil.copy(_corrtag(exposure), tmp_path / _corrtag(exposure).name)
    with pytest.raises(BadColumnError, match="FLUX has no finite value"):
        read_x1d(bad_x1d)
    code, stdout, stderr = _make(capsys, Path(corrtag), bad_x1d, out=tmp_path / "out")
    assert code == 2
    assert "UNCALIBRATED (no x1d)" not in stdout
    assert f"{bad_x1d}: SCI row FUVA: FLUX has no finite value (all NaN or infinite)" in stderr


def test_ingest_moves_each_bad_file_to_bad_data_naming_the_keyword(tmp_path: Path) -> None:
    archive = Archive(tmp_path / "archive")
    archive.create()
    layout = ArchiveLayout(archive)
    layout.inbox.mkdir(parents=True, exist_ok=True)
    cases = ["cenwave_text", "wavelength_text", "nan_wavelength_inf_epsilon", "inf_time"]
    expected = {}
    for number, case in enumerate(cases, start=1):
        root = f"lhvb{number:02d}abq"
        simulated = simulate(tmp_path / "sim" / root, Exposure(root, exptime=60.0))
        for path in simulated.files:
            if path.name.endswith("_corrtag_a.fits"):
                _rewrite(path, layout.inbox / path.name, CASES[case][0])
                expected[path.name] = CASES[case][1]
            elif path.name.endswith(".fits") and "truth" not in path.name:
                shutil.copy(path, layout.inbox / path.name)
    database = Database(f"sqlite:///{archive.root / 'photonpipe.db'}")
    database.upgrade()
    report = ingest(layout, database, ExtractionParameters(step=10.0), plot=False)
    assert report.archived == []
    with database.session() as session:
        rows = {r.filename: r for r in session.scalars(sa.select(BadData))}
    for name, words in expected.items():
        assert name in rows, sorted(rows)
        assert words in (rows[name].detail or ""), rows[name].detail
        assert archive.path(f"lightcurves/bad_data/{name}").is_file()
    assert not list(layout.inbox.glob("*_corrtag_a.fits"))
