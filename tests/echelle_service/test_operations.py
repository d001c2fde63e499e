"""Operations without a broker: filtering, the processed-file table, watch, nightly, status."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa
from astropy.io import fits

from helpers.echelle_ops import MORNING, RAW, Night, copy_night
from photonpipe.echelle.models import CalibrationRecord, ProcessedFile
from photonpipe.echelle.operations import (
    RejectedFileError,
    WatchState,
    accept_file,
    parse_message,
    process_file,
    raw_name_ok,
    record_rejection,
    run_nightly,
    status,
    watch_scan,
)
from photonpipe.echelle.science import reduce_files
from photonpipe.platform.archive import Archive
from photonpipe.platform.db import Database
from photonpipe.platform.ledger import WorkUnitRecord

INSTRUMENTS = ("nres01",)


def _rows(night: Night) -> dict[str, ProcessedFile]:
    with night.database.session() as session:
        rows = {r.filename: r for r in session.scalars(sa.select(ProcessedFile))}
        session.expunge_all()
    return rows


def _rewrite(path: Path, destination: Path, **keywords: object) -> Path:
    """Copy a raw frame with header keywords changed (pixels untouched)."""
    with fits.open(path) as hdul:
        for key, value in keywords.items():
            hdul[1].header[key] = value
        hdul.writeto(destination, overwrite=True)
    return destination


# --------------------------------------------------------------------------- filtering


def test_raw_names() -> None:
    assert raw_name_ok("lscnrs01-fl09-20260301-0019-e00.fits.fz")
    assert raw_name_ok("lscnrs01-fl09-20260301-0001-b00.fits")
    assert not raw_name_ok("lscnrs01-fl09-20260301-0019-e91.fits.fz")  # a product
    assert not raw_name_ok("lscnrs01-ak01-20260301-0019-g00.fits.fz")  # guide camera
    assert not raw_name_ok("lscnrs01-fl09-20260301-0019-x00.fits.fz")  # exposure meter
    assert not raw_name_ok("notes.txt")


def test_accept_file_filters(raw_night: Path, tmp_path: Path) -> None:
    science = sorted((raw_night / RAW).glob("*e00.fits.fz"))[0]
    assert accept_file(science, INSTRUMENTS) == "TARGET"
    with pytest.raises(RejectedFileError, match="instrument 'nres01' is not configured"):
        accept_file(science, ("nres02",))
    reduced = _rewrite(science, tmp_path / science.name, RLEVEL=91)
    with pytest.raises(RejectedFileError, match="RLEVEL 91"):
        accept_file(reduced, INSTRUMENTS)
    guide = tmp_path / science.name.replace("e00", "g00")
    shutil.copy(science, guide)
    with pytest.raises(RejectedFileError, match="not a raw NRES frame name"):
        accept_file(guide, INSTRUMENTS)
    text = tmp_path / "lscnrs01-fl09-20260301-0099-e00.fits.fz"
    text.write_text("not a FITS file\n")
    with pytest.raises(RejectedFileError, match=r"0099-e00.fits.fz.*unreadable FITS"):
        accept_file(text, INSTRUMENTS)


def test_parse_message(tmp_path: Path) -> None:
    archive = Archive(tmp_path / "root")
    archive.create()
    frame = archive.root / "a-0001-b00.fits.fz"
    frame.write_bytes(b"x")
    assert parse_message(json.dumps({"path": str(frame)}).encode(), archive) == (frame, None)
    assert parse_message(b'{"path": "a-0001-b00.fits.fz", "frameid": 7}', archive) == (frame, 7)
    outside = tmp_path / "outside-0001-b00.fits.fz"
    outside.write_bytes(b"x")
    cases = {
        b"\x00not json": "not JSON",
        b"[1, 2]": "not a JSON object",
        b'{"file": "x"}': "no 'path'",
        b'{"path": ""}': "no 'path'",
        json.dumps({"path": str(outside)}).encode(): "outside the archive root",
        b'{"path": "../outside-0001-b00.fits.fz"}': "outside the archive root",
        b'{"path": "missing-0001-b00.fits.fz"}': "no such file",
        b'{"path": "a-0001-b00.fits.fz", "frameid": "x"}': "not a non-negative integer",
        b'{"path": "a-0001-b00.fits.fz", "frameid": true}': "not a non-negative integer",
        b'{"path": "a-0001-b00.fits.fz", "frameid": -1}': "not a non-negative integer",
        b'{"path": "a-0001-b00.fits.fz", "frameid": 100000000000000000000}': "above 2",
        b"\xff\xfe{}": "not JSON",
        b"[" * 100_000: "not JSON",
        b'{"path": 42}': "no 'path'",
        json.dumps({"path": "/" + "a" * 100_000}).encode(): "bytes long",
        json.dumps({"path": "x" * 300 + "-0001-b00.fits.fz"}).encode(): "-byte file or",
        b'{"path": "a\\u0000-0001-b00.fits.fz"}': "NUL character",
        b'{"path": "."}': "a directory",
        b'{"path": "loop-0001-b00.fits.fz"}': "cannot resolve",
    }
    (archive.root / "loop-0001-b00.fits.fz").symlink_to("loop-0001-b00.fits.fz")
    for body, reason in cases.items():
        with pytest.raises(RejectedFileError, match=reason):
            parse_message(body, archive)


# --------------------------------------------------------------------------- processed files


def test_process_file_done_skipped_changed(calibrated_night: Path, tmp_path: Path) -> None:
    night = copy_night(calibrated_night, tmp_path / "root")
    context = night.context()
    science = next(p for p in night.raw if p.name.endswith("e00.fits.fz"))
    name = science.relative_to(night.root).as_posix()

    first = process_file(context, science, frame_id=1234)
    assert (first.status, first.tries, first.frame_type) == ("done", 1, "TARGET")
    products = first.result["products"]
    assert all((night.root / p).is_file() for p in products.values())
    row = _rows(night)[name]
    assert row.success
    assert row.status == "done"
    assert row.tries == 1
    assert row.error is None
    assert row.checksum == hashlib.md5(science.read_bytes()).hexdigest()
    assert row.frame_id == 1234
    assert row.frame_type == "TARGET"
    assert row.started is not None
    assert row.finished is not None
    assert row.finished >= row.started
    assert row.duration is not None
    assert row.duration > 0

    again = process_file(context, science)
    assert again.status == "skipped"
    assert _rows(night)[name].tries == 1

    # A changed file (new header keyword) is reduced again, its tries counted afresh.
    _rewrite(science, science, COMMENT="re-sent by the archive")
    changed = process_file(context, science)
    assert (changed.status, changed.tries) == ("done", 1)
    row = _rows(night)[name]
    assert row.checksum == hashlib.md5(science.read_bytes()).hexdigest()
    assert row.frame_id == 1234  # kept from the first message


def test_failed_frame_retried_then_left_failed(raw_night: Path, tmp_path: Path) -> None:
    # No calibrations in this database: a science frame fails every time.
    night = copy_night(raw_night, tmp_path / "root")
    context = night.context(max_tries=3, retry_backoff=10.0)
    science = next(p for p in night.raw if p.name.endswith("e00.fits.fz"))
    name = science.relative_to(night.root).as_posix()
    outcomes = [process_file(context, science) for _ in range(4)]
    assert [o.status for o in outcomes] == ["retry", "retry", "failed", "failed"]
    assert [o.retry_in for o in outcomes[:2]] == [10.0, 20.0]
    assert [o.tries for o in outcomes[:3]] == [1, 2, 3]
    row = _rows(night)[name]
    assert (row.status, row.success, row.tries) == ("failed", False, 3)
    assert row.error is not None
    assert row.error.startswith("CalibrationError")
    assert science.name in row.error
    summary = status(night.database)
    assert summary.counts == {"failed": 1}
    assert summary.failed_by_reason == {"CalibrationError": 1}


def test_frame_reduced_by_echelle_reduce_is_skipped(calibrated_night: Path, tmp_path: Path) -> None:
    night = copy_night(calibrated_night, tmp_path / "root")
    bias = night.raw[0]
    report = reduce_files(Archive(night.root), night.database, [bias], workers=1, progress=False)
    assert report.ok
    assert len(report.done) == 1
    outcome = process_file(night.context(), bias)
    assert outcome.status == "skipped"
    assert _rows(night)[bias.relative_to(night.root).as_posix()].success


def test_rejected_file_is_recorded_as_rejected(calibrated_night: Path, tmp_path: Path) -> None:
    night = copy_night(calibrated_night, tmp_path / "root")
    outcome = process_file(night.context(instruments=("nres02",)), night.raw[0])
    assert outcome.status == "rejected"
    assert "not configured" in (outcome.error or "")
    key = night.raw[0].relative_to(night.root).as_posix()
    (row,) = _rows(night).values()
    assert (row.filename, row.status, row.success) == (key, "rejected", False)
    assert row.error == outcome.error
    assert row.checksum == hashlib.md5(night.raw[0].read_bytes()).hexdigest()
    # Reduced once it is accepted: the rejection does not block the frame.
    assert process_file(night.context(), night.raw[0]).status == "done"
    assert _rows(night)[key].status == "done"
    # A bad message about a frame that is done leaves its record alone.
    too_long = process_file(night.context(), "/" + "p" * 100_000)
    assert too_long.status == "rejected"
    assert "bytes long" in (too_long.error or "")
    assert len(too_long.filename) <= 512
    assert process_file(night.context(), night.raw[0], frame_id=True).status == "rejected"  # type: ignore[arg-type]
    rows = _rows(night)
    assert rows[key].status == "done"
    assert rows[too_long.filename].status == "rejected"


def test_process_file_never_raises_for_a_bad_path(calibrated_night: Path, tmp_path: Path) -> None:
    """What crashed the workers (issue 19): over-long names, NUL, loops, directories."""
    night = copy_night(calibrated_night, tmp_path / "root")
    raw = night.root / RAW
    loop = raw / "loop-0001-b00.fits.fz"
    loop.symlink_to(loop.name)
    cases = {
        "/" + "p" * 100_000: "bytes long",
        str(raw / ("n" * 300 + "-0001-b00.fits.fz")): "-byte file or directory name",
        str(raw / "a\x00-0001-b00.fits.fz"): "NUL character",
        str(loop): "cannot resolve",
        str(raw): "a directory",
        "../../etc/passwd": "outside the archive root",
    }
    for path, reason in cases.items():
        outcome = process_file(night.context(), path)
        assert outcome.status == "rejected", path[:80]
        assert reason in (outcome.error or ""), (path[:80], outcome.error)
    rows = _rows(night)
    assert len(rows) == len(cases)
    assert {r.status for r in rows.values()} == {"rejected"}
    assert all(len(k) <= 512 and "\x00" not in k for k in rows)


# --------------------------------------------------------------------------- watch


def test_watch_reduces_new_frames_once(calibrated_night: Path, tmp_path: Path) -> None:
    night = copy_night(calibrated_night, tmp_path / "root")
    context = night.context()
    incoming = night.root / "lsc/nres01/20260302/raw"
    incoming.mkdir(parents=True)
    state = WatchState()
    assert watch_scan(context, incoming, state, None, settle=0.0) == []
    science = [p for p in night.raw if p.name.endswith("e00.fits.fz")]
    arrived = incoming / science[0].name.replace("20260301-0019", "20260302-0001")
    shutil.copy(science[0], arrived)
    os.utime(arrived, (1.0e9, 1.0e9))
    # First sighting: recorded, not processed (it may still be growing).
    assert watch_scan(context, incoming, state, None, settle=0.0) == []
    outcomes = watch_scan(context, incoming, state, None, settle=0.0)
    assert [(o.filename, o.status) for o in outcomes] == [
        (arrived.relative_to(night.root).as_posix(), "done")
    ]
    assert watch_scan(context, incoming, state, None, settle=0.0) == []
    assert _rows(night)[arrived.relative_to(night.root).as_posix()].tries == 1


# --------------------------------------------------------------------------- nightly


def test_nightly_tasks_made_the_masters(calibrated_night: Path, tmp_path: Path) -> None:
    night = copy_night(calibrated_night, tmp_path / "root")
    with night.database.session() as session:
        made = sorted(
            (r.type, r.fibres_lit, r.n_frames)
            for r in session.scalars(sa.select(CalibrationRecord))
        )
        runs = {
            r.key: r.status
            for r in session.scalars(
                sa.select(WorkUnitRecord).where(WorkUnitRecord.kind == "echelle.nightly")
            )
        }
    assert made == [
        ("ARC", "011", 2),
        ("ARC", "110", 2),
        ("BIAS", "000", 5),
        ("DARK", "000", 3),
        ("FLAT", "011", 3),
        ("FLAT", "110", 3),
        ("TRACE", "111", 2),
        ("TRIPLE", "111", 2),
    ]
    assert runs == {
        "lsc/stack/2026-03-02T12:00:00": "done",
        "lsc/traces/2026-03-02T12:00:00": "done",
    }
    summary = status(night.database)
    assert summary.nightly["lsc stack"]["status"] == "done"
    assert summary.nightly["lsc traces"]["window_end"] == "2026-03-02T12:00:00"


def test_nightly_with_no_frames_fails_with_reasons(calibrated_night: Path, tmp_path: Path) -> None:
    night = copy_night(calibrated_night, tmp_path / "root")
    report = run_nightly(night.context(), "lsc", "stack", MORNING.replace(year=2027))
    assert report.masters == []
    assert set(report.errors) == {"BIAS", "DARK", "FLAT", "ARC"}
    assert "no BIAS frames" in report.errors["BIAS"]
    assert status(night.database).nightly["lsc stack"]["status"] == "failed"


def test_processed_file_records_on_every_dialect(
    raw_night: Path, tmp_path: Path, database_url: str
) -> None:
    night = copy_night(raw_night, tmp_path / "root")
    database = Database(database_url)
    database.upgrade()
    try:
        ok = night.context(database=database, reduction="helpers.echelle_hooks:noop")
        bad = night.context(database=database, reduction="helpers.echelle_hooks:fail", max_tries=2)
        good_frame, bad_frame = night.raw[0], night.raw[1]
        assert process_file(ok, good_frame, frame_id=2**40).status == "done"
        assert process_file(ok, good_frame).status == "skipped"
        assert [process_file(bad, bad_frame).status for _ in range(3)] == [
            "retry",
            "failed",
            "failed",
        ]
        with database.session() as session:
            rows = {r.filename: r for r in session.scalars(sa.select(ProcessedFile))}
            good = rows[good_frame.relative_to(night.root).as_posix()]
            failed = rows[bad_frame.relative_to(night.root).as_posix()]
            assert (good.status, good.success, good.tries, good.frame_id) == (
                "done",
                True,
                1,
                2**40,
            )
            assert (failed.status, failed.success, failed.tries) == ("failed", False, 2)
            assert failed.error is not None
            assert "corrupt for the test" in failed.error
        assert status(database).failed_by_reason == {"InputFileError": 1}
        # Rejected messages that no database stores as they are: NUL, undecodable bytes, lone
        # surrogates, a 100,000-character path.
        archive = ok.archive
        nasty = [
            b"\x00\xff not JSON",
            json.dumps({"path": "/" + "p" * 100_000}).encode(),
            json.dumps({"path": "a\x00b\udcff-0001-b00.fits.fz"}).encode(),
        ]
        keys = [record_rejection(database, archive, body, "bad\x00 reason") for body in nasty]
        assert len(set(keys)) == 3
        with database.session() as session:
            rows = {r.filename: r for r in session.scalars(sa.select(ProcessedFile))}
        for key in keys:
            assert len(key) <= 512
            assert rows[key].status == "rejected"
            assert rows[key].error == "bad\\x00 reason"
        assert rows[keys[2]].filename == "a\\x00b\\udcff-0001-b00.fits.fz"
    finally:
        database.dispose()
