"""The outside world fails: full disk, read-only file system, database full or gone.

Each case must end with one line ``photonpipe: error: <path or URL>: <OS reason>`` and exit code
1 or 2, never an internal error; nothing already written may be lost. Before, a full disk under
the ledger gave ``internal error: OperationalError ... database or disk is full`` and a session
save on a full disk ``internal error: OSError [Errno 28]`` naming no file.

Two ways to fail: ``os.fsync``/``os.write`` monkeypatched to raise ``ENOSPC`` (always run), and
real file systems: a tmpfs mounted read-only or filled up (needs root to mount; skipped
otherwise).
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from helpers.cli import assert_one_error_line, in_process
from helpers.lightcurve_archive import copy_delivery
from photonpipe.cli.main import main
from photonpipe.errors import DatabaseError
from photonpipe.lightcurves.ingest import ArchiveLayout
from photonpipe.lightcurves.simulate_archive import deliver
from photonpipe.platform.archive import Archive
from photonpipe.platform.db import Database

ENOSPC_REASON = os.strerror(errno.ENOSPC)


@contextlib.contextmanager
def tmpfs(where: Path, size: str, *, read_only: bool = False) -> Iterator[Path]:
    """Mount a tmpfs of ``size`` at ``where`` (root only), unmounted afterwards."""
    where.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(directory: Path) -> None:
    """Fill the file system holding ``directory`` until writes fail with ENOSPC."""
    fd = os.open(directory / "filler", os.O_WRONLY | os.O_CREAT)
    block = b"\0" * 4096
    failure = None
    try:
        while True:
            os.write(fd, block)
    except OSError as exc:
        failure = exc.errno
    finally:
        os.close(fd)
    assert failure == errno.ENOSPC


@pytest.fixture(scope="module")
def delivery(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("outside")
    plan = [(f"lou{i:02d}abq", "G130M", "STAR-A", 58000.0 + i / 10, None) for i in range(1, 4)]
    deliver(root / "inbox", root / "truth", plan, seed=9, exptime=120.0, events=400)
    return root / "inbox"


def _ingest_args(root: Path, *extra: str) -> list[str]:
    return [
        "--archive",
        str(root),
        *extra,
        "--set",
        "executor.start_method=fork",
        "--set",
        "executor.workers=1",
        "lightcurve",
        "ingest",
        "--step",
        "10",
        "--no-plot",
    ]


def test_ledger_on_a_full_disk_gives_one_line(
    delivery: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The database's file system fills up: SQLite's "database or disk is full", named."""
    archive = Archive(tmp_path / "archive")
    archive.create()
    copy_delivery(delivery, ArchiveLayout(archive))
    with tmpfs(tmp_path / "tiny", "512k") as tiny:
        url = f"sqlite:///{tiny / 'photonpipe.db'}"
        Database(url).upgrade()
        fill(tiny)
        result = in_process(capsys, *_ingest_args(archive.root, "--set", f"database.url={url}"))
        line = assert_one_error_line(result, code=1)
        assert line == f"photonpipe: error: database {url}: database or disk is full"
    # no input was lost: every delivered file is still in the ingest directory
    assert sorted(p.name for p in (archive.root / "lightcurves/ingest").iterdir()) == sorted(
        p.name for p in delivery.iterdir()
    )


def test_archive_on_a_read_only_file_system_gives_one_line(
    delivery: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with tmpfs(tmp_path / "ro", "1m", read_only=True) as ro:
        result = in_process(capsys, *_ingest_args(ro / "archive"))
        line = assert_one_error_line(result)
        assert str(ro / "archive") in line
        assert line.endswith("Read-only file system")


def test_ingest_outputs_on_a_full_disk_are_retried_then_left_for_the_next_run(
    delivery: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Light curves cannot be written (real ENOSPC): reported per dataset with the path;
    nothing is failed for good, and once space is back a plain re-run ingests everything."""
    with tmpfs(tmp_path / "small", "4m") as small:
        archive = Archive(small / "archive")
        archive.create()
        layout = ArchiveLayout(archive)
        copy_delivery(delivery, layout)
        url = f"sqlite:///{tmp_path / 'photonpipe.db'}"  # the database has room
        extra = (
            *("--set", f"database.url={url}", "--set", "executor.max_tries=1"),
            *("--set", "executor.backoff=0.02"),  # the six retries in 1.3 s, not 32 s
        )
        fill(small)
        result = in_process(capsys, *_ingest_args(archive.root, *extra))
        assert result.returncode == 1, result.stderr
        assert "internal error" not in result.stderr + result.stdout
        assert f"{ENOSPC_REASON}" in result.stdout
        assert "transient fault after" in result.stdout
        assert str(archive.root / "lightcurves") in result.stdout  # the path is named
        (small / "filler").unlink()
        again = in_process(capsys, *_ingest_args(archive.root, *extra))
        assert again.returncode == 0, again.stdout + again.stderr
        assert "3 ingested" in again.stdout
        with Database(url).session() as session:
            statuses = session.execute(sa.text("SELECT status FROM work_unit")).scalars().all()
        assert set(statuses) == {"done"}


@pytest.fixture(scope="module")
def spectrum(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("stellar")
    assert main(["simulate", "stellar", "-o", str(out), "--orders", "1"]) == 0
    return out / "simulated_star.fits"


def test_session_save_on_a_full_disk_names_the_file_and_keeps_the_old_one(
    spectrum: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    session = tmp_path / "star.smh"
    assert in_process(capsys, "session", "new", str(spectrum), "-o", str(session)).returncode == 0
    before = session.read_bytes()

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, ENOSPC_REASON)

    monkeypatch.setattr(os, "fsync", full)
    result = in_process(capsys, "session", "new", str(spectrum), "-o", str(session))
    line = assert_one_error_line(result)
    assert line == f"photonpipe: error: {session}: {ENOSPC_REASON}"
    monkeypatch.undo()
    assert session.read_bytes() == before  # the old session survives
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary


def test_session_save_into_a_read_only_directory_names_the_file(
    spectrum: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with tmpfs(tmp_path / "ro", "1m", read_only=True) as ro:
        target = ro / "star.smh"
        result = in_process(capsys, "session", "new", str(spectrum), "-o", str(target))
        line = assert_one_error_line(result)
        assert line == f"photonpipe: error: {target}: Read-only file system"


def test_archive_write_with_os_write_failing_names_the_destination(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = Archive(tmp_path / "archive")
    archive.create()
    real_write = os.write

    def full(fd: int, data: bytes) -> int:
        if fd > 2:
            raise OSError(errno.ENOSPC, ENOSPC_REASON)
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full)

    def write() -> None:
        with archive.atomic_path("products", "a.bin") as temp:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT)
            try:
                os.write(fd, b"data")
            finally:
                os.close(fd)

    with pytest.raises(OSError, match=ENOSPC_REASON) as caught:
        write()
    assert caught.value.errno == errno.ENOSPC
    assert caught.value.filename == str(archive.root / "products" / "a.bin")
    assert list((archive.root / "products").iterdir()) == []


@pytest.mark.parametrize(
    ("message", "code", "start"),
    [
        ("database or disk is full", 1, "database "),
        ("attempt to write a readonly database", 2, "cannot write to database "),
        ("server closed the connection unexpectedly", 1, "database "),
        ("database is locked", 1, "database "),
    ],
)
def test_database_faults_become_one_line_naming_the_url(
    tmp_path: Path, message: str, code: int, start: str
) -> None:
    import sqlite3

    database = Database(f"sqlite:///{tmp_path / 'x.db'}")
    database.upgrade()
    with pytest.raises(DatabaseError) as caught, database.session():
        raise sa.exc.OperationalError("UPDATE work_unit", {}, sqlite3.OperationalError(message))
    assert str(caught.value) == f"{start}{database.url}: {message}"
    assert caught.value.exit_code == code
