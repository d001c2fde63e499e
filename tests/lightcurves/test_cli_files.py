"""Files as users pass them to the light-curve commands (issue 16).

``lightcurve make`` finds the rest of an exposure beside a given file; ``--ingest-dir`` is
relative to the working directory and must be inside the archive root; an ingest directory
of files none of which is recognised says so; read-only commands create nothing.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from astropy.io import fits

from photonpipe.cli.main import main
from photonpipe.lightcurves.dataset import with_companion_files


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small COS FUV exposure (corrtag a + b, x1d, truth) and a STIS tag + x1d."""
    directory = tmp_path_factory.mktemp("raw")
    for args in (
        ["simulate", "cos", "--events", "3000", "--exptime", "120", "--seed", "2"],
        ["simulate", "stis", "--events", "3000", "--exptime", "120", "--seed", "2", "--no-flat"],
    ):
        assert main([*args, "--out", str(directory)]) == 0
    return directory


def test_companions_of_each_kind_of_given_file(raw: Path, tmp_path: Path) -> None:
    a, b, x1d, spt = (raw / f"lsim01abq_{s}.fits" for s in ("corrtag_a", "corrtag_b", "x1d", "spt"))
    assert with_companion_files([a]) == ([a, b, x1d, spt], [b, x1d, spt])
    assert with_companion_files([b, x1d]) == ([b, x1d, a, spt], [a, spt])
    assert with_companion_files([x1d, spt]) == ([x1d, spt, a, b], [a, b])
    tag, stis_x1d = raw / "osim01abq_tag.fits", raw / "osim01abq_x1d.fits"
    stis_spt = raw / "osim01abq_spt.fits"
    assert with_companion_files([tag]) == ([tag, stis_x1d, stis_spt], [stis_x1d, stis_spt])
    # A corrtag written beside a tag (tag2corrtag) is another kind: not added to the tag.
    corrtag = raw / "osim01abq_corrtag.fits"
    shutil.copy(tag, corrtag)
    try:
        assert with_companion_files([tag])[1] == [stis_x1d, stis_spt]
        assert with_companion_files([stis_x1d])[1] == [corrtag, stis_spt]  # one kind: the first
    finally:
        corrtag.unlink()
    # Only files beside the given one count, and nothing twice.
    alone = tmp_path / "lsim01abq_corrtag_a.fits"
    shutil.copy(a, alone)
    assert with_companion_files([alone, alone]) == ([alone, alone], [])


def test_make_uses_and_prints_the_files_beside_the_given_one(
    raw: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "products"
    code, stdout, _ = _run(capsys, "lightcurve", "make", str(raw / "lsim01abq_corrtag_a.fits"),
                           "--step", "10", "--no-plot", "--out", str(out))  # fmt: skip
    assert code == 0
    assert (
        f"lsim01abq: using {raw / 'lsim01abq_corrtag_a.fits'}, "
        f"{raw / 'lsim01abq_corrtag_b.fits'} (found beside), "
        f"{raw / 'lsim01abq_x1d.fits'} (found beside), "
        f"{raw / 'lsim01abq_spt.fits'} (found beside)"
    ) in stdout
    assert "flux calibrated" in stdout
    with fits.open(out / "lsim01abq_curve.fits") as hdus:
        both = hdus[1].header.tostring()
    only = ["--only-given", "--step", "10", "--no-plot", "--out", str(out)]
    code, stdout, _ = _run(
        capsys, "lightcurve", "make", str(raw / "lsim01abq_corrtag_a.fits"), *only
    )
    assert code == 0
    assert f"lsim01abq: using {raw / 'lsim01abq_corrtag_a.fits'}\n" in stdout
    assert "UNCALIBRATED (no x1d)" in stdout
    with fits.open(out / "lsim01abq_curve.fits") as hdus:
        assert hdus[1].header.tostring() != both


def test_make_refuses_the_truth_file_and_directories(
    raw: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, "lightcurve", "make", str(raw / "lsim01abq_truth.ecsv"))
    assert code == 2
    assert err.startswith(f"photonpipe: error: {raw / 'lsim01abq_truth.ecsv'}: not a readable FITS")
    code, _, err = _run(capsys, "lightcurve", "make", str(raw))
    assert code == 2
    assert f"'{raw}' is a directory" in err


def test_ingest_dir_is_relative_to_the_working_directory(
    raw: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    inbox = tmp_path / "arch" / "incoming"
    inbox.mkdir(parents=True)
    for name in ("lsim01abq_corrtag_a.fits", "lsim01abq_corrtag_b.fits", "lsim01abq_x1d.fits"):
        shutil.copy(raw / name, inbox / name)
    (inbox / "notes.txt").write_text("not data\n")
    options = ["--ingest-dir", "arch/incoming", "--no-plot", "--step", "10", "--workers", "1"]
    code, out, err = _run(capsys, "--archive", "arch", "lightcurve", "ingest", *options)
    assert code == 0, err
    assert out.startswith("1 datasets found: 1 ingested")
    assert f"1 file in {inbox}: not tag, corrtag or x1d files" in out
    assert "left there: notes.txt" in out
    assert sorted(p.name for p in inbox.iterdir()) == ["notes.txt"]
    assert not (tmp_path / "arch" / "arch").exists()


def test_ingest_dir_outside_the_archive_is_refused(
    raw: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ingest moves files: one outside the archive root is refused, and nothing is touched."""
    monkeypatch.chdir(tmp_path)
    outside = tmp_path / "raw"
    shutil.copytree(raw, outside)
    before = sorted(p.name for p in outside.iterdir())
    code, out, err = _run(
        capsys, "--archive", "arch", "lightcurve", "ingest", "--ingest-dir", "raw"
    )
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith(
        f"photonpipe: error: --ingest-dir: ingest directory {outside} must be inside the archive "
        f"root {tmp_path / 'arch'}"
    )
    assert sorted(p.name for p in outside.iterdir()) == before
    assert not (tmp_path / "arch").exists()
    code, _, err = _run(capsys, "--archive", "arch", "lightcurve", "ingest", "--ingest-dir", "nope")
    assert code == 2
    assert "'nope' does not exist" in err


def test_ingest_dir_setting_is_relative_to_the_settings_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "site" / "photonpipe.toml"
    config.parent.mkdir()
    config.write_text('[archive]\nroot = "arch"\n[lightcurve]\ningest_dir = "arch/inbox"\n')
    (tmp_path / "site" / "arch" / "inbox").mkdir(parents=True)
    (tmp_path / "site" / "arch" / "inbox" / "readme.txt").write_text("x")
    monkeypatch.chdir(tmp_path)
    code, out, err = _run(capsys, "--config", str(config), "lightcurve", "ingest")
    assert code == 0, err
    assert f"1 file in {tmp_path / 'site' / 'arch' / 'inbox'}" in out


def test_read_only_commands_create_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    tmp_path = tmp_path / "empty"
    tmp_path.mkdir()
    monkeypatch.chdir(tmp_path)
    for args in (
        ["lightcurve", "list"],
        ["lightcurve", "show", "x_x1d.fits"],
        ["lightcurve", "alias", "list"],
        ["db", "status"],
        ["work", "failures"],
        ["echelle", "targets", "list"],
        ["echelle", "zeros", "list"],
        ["echelle", "status", "--no-broker"],
    ):
        code, _, err = _run(capsys, *args)
        assert code == 2, args
        assert err == (
            f"photonpipe: error: no database at {tmp_path / 'photonpipe-archive' / 'photonpipe.db'}"
            ": nothing has been recorded in this archive yet (check --archive or --database-url)\n"
        )
    assert list(tmp_path.iterdir()) == []
    # An archive with a database: they read it.
    assert _run(capsys, "db", "upgrade")[0] == 0
    code, out, _ = _run(capsys, "lightcurve", "list")
    assert code == 0
    assert "(0 files)" in out
