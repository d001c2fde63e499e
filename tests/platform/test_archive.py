from __future__ import annotations

import grp
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from photonpipe.errors import ArchiveError, ConfigError, PathConfinementError
from photonpipe.platform.archive import TEMP_MARK, Archive


@pytest.fixture
def archive(tmp_path: Path) -> Archive:
    arch = Archive(tmp_path / "archive", file_mode=0o640, dir_mode=0o750)
    arch.create()
    return arch


@pytest.mark.parametrize(
    "parts",
    [
        ("/etc/passwd",),
        ("outputs", "/etc"),
        ("..", "escape.txt"),
        ("outputs/../../escape.txt",),
        ("outputs", "a\0b"),
    ],
)
def test_paths_leaving_the_root_are_refused(archive: Archive, parts: tuple[str, ...]) -> None:
    with pytest.raises(PathConfinementError):
        archive.path(*parts)
    with pytest.raises(PathConfinementError):
        archive.write_text("x", *parts)
    assert not (archive.root.parent / "escape.txt").exists()


def test_symlink_escape_is_refused(archive: Archive, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (archive.root / "link").symlink_to(outside)
    with pytest.raises(PathConfinementError, match="outside the archive root"):
        archive.write_text("x", "link", "file.txt")
    assert list(outside.iterdir()) == []
    with pytest.raises(PathConfinementError):
        archive.makedirs("link", "sub")
    with pytest.raises(PathConfinementError):
        archive.confine(outside / "f")
    # A symlink to a file outside cannot be overwritten through either.
    target = outside / "victim.txt"
    target.write_text("keep")
    (archive.root / "victim.txt").symlink_to(target)
    with pytest.raises(PathConfinementError):
        archive.write_text("overwrite", "victim.txt")
    assert target.read_text() == "keep"


def test_symlink_inside_the_root_is_allowed(archive: Archive) -> None:
    archive.makedirs("real")
    (archive.root / "alias").symlink_to(archive.root / "real")
    archive.write_text("ok", "alias", "f.txt")
    assert (archive.root / "real" / "f.txt").read_text() == "ok"


def test_atomic_write_creates_dirs_with_modes(archive: Archive) -> None:
    path = archive.write_text("hello", "outputs", "TARGET", "lc.txt")
    assert path.read_text() == "hello"
    assert path.stat().st_mode & 0o7777 == 0o640
    assert (archive.root / "outputs").stat().st_mode & 0o7777 == 0o750
    assert (archive.root / "outputs" / "TARGET").stat().st_mode & 0o7777 == 0o750
    assert not list(archive.root.rglob(f"*{TEMP_MARK}*"))


def test_failed_write_leaves_old_file_and_no_temporary(archive: Archive) -> None:
    archive.write_text("old", "product.txt")

    def crashing_writer() -> None:
        with archive.open_atomic("product.txt", mode="w") as handle:
            handle.write("half of the new conte")
            raise RuntimeError("writer crashed")

    with pytest.raises(RuntimeError, match="writer crashed"):
        crashing_writer()
    assert archive.path("product.txt").read_text() == "old"
    assert not list(archive.root.rglob(f"*{TEMP_MARK}*"))


def test_atomic_path_without_writing_is_an_error(archive: Archive) -> None:
    with pytest.raises(ArchiveError, match="nothing was written"), archive.atomic_path("x.fits"):
        pass
    assert not archive.path("x.fits").exists()


def test_killed_write_leaves_no_partial_file(archive: Archive) -> None:
    """SIGKILL in the middle of a large write: the destination is the old file or absent."""
    archive.write_bytes(b"old", "big.bin")
    script = textwrap.dedent(
        f"""
        import sys, time
        from photonpipe.platform.archive import Archive
        archive = Archive({str(archive.root)!r})
        with archive.open_atomic("big.bin") as handle:
            for i in range(10_000):
                handle.write(b"x" * 65536)
                if i == 10:
                    print("writing", flush=True)
                    time.sleep(30)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    assert archive.path("big.bin").read_bytes() == b"old"
    leftovers = list(archive.root.glob(f"*{TEMP_MARK}*"))
    assert len(leftovers) == 1  # the abandoned temporary, recognisable by name
    old = time.time() - 7200
    os.utime(leftovers[0], (old, old))
    assert archive.clean_temporaries(older_than=3600) == leftovers
    assert not leftovers[0].exists()


def test_clean_temporaries_spares_recent_ones(archive: Archive) -> None:
    fresh = archive.root / f".x{TEMP_MARK}123"
    fresh.write_text("in progress")
    assert archive.clean_temporaries(older_than=3600) == []
    assert fresh.exists()


def test_move_within_archive(archive: Archive) -> None:
    src = archive.write_text("data", "ingest", "a.fits")
    dest = archive.move(src, "filesystem", "TARGET", "a.fits")
    assert dest.read_text() == "data"
    assert not src.exists()
    assert dest.stat().st_mode & 0o7777 == 0o640
    # Never silently overwrites.
    archive.write_text("other", "ingest", "a.fits")
    with pytest.raises(ArchiveError, match="destination exists"):
        archive.move("ingest/a.fits", "filesystem", "TARGET", "a.fits")
    assert dest.read_text() == "data"
    assert archive.path("ingest", "a.fits").read_text() == "other"
    archive.move("ingest/a.fits", "filesystem", "TARGET", "a.fits", overwrite=True)
    assert dest.read_text() == "other"


def test_move_from_outside_is_refused(archive: Archive, tmp_path: Path) -> None:
    raw = tmp_path / "raw.fits"
    raw.write_text("raw")
    with pytest.raises(PathConfinementError):
        archive.move(raw, "filesystem", "raw.fits")
    assert raw.read_text() == "raw"
    # Raw inputs outside the root are copied in, never moved or modified.
    copied = archive.copy_in(raw, "filesystem", "raw.fits")
    assert copied.read_text() == "raw"
    assert raw.read_text() == "raw"


def test_remove_is_confined(archive: Archive, tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    with pytest.raises(PathConfinementError):
        archive.remove("..", "victim.txt")
    assert victim.exists()
    archive.write_text("x", "f.txt")
    archive.remove("f.txt")
    assert not archive.path("f.txt").exists()
    with pytest.raises(ArchiveError, match="no such file"):
        archive.remove("f.txt")
    archive.remove("f.txt", missing_ok=True)
    archive.makedirs("d")
    with pytest.raises(ArchiveError, match="refusing to remove directory"):
        archive.remove("d")


def test_relative_paths_for_the_database(archive: Archive) -> None:
    path = archive.write_text("x", "outputs", "T", "f.txt")
    assert archive.relative(path) == "outputs/T/f.txt"
    assert archive.contains(path)
    assert not archive.contains("/etc/passwd")


def test_group_and_recursive_permissions(tmp_path: Path) -> None:
    group = grp.getgrgid(os.getgid()).gr_name
    arch = Archive(tmp_path / "a", file_mode=0o600, dir_mode=0o700, group=group)
    arch.create()
    path = arch.write_text("x", "d", "f.txt")
    assert path.stat().st_gid == os.getgid()
    path.chmod(0o666)
    arch.dir_mode, arch.file_mode = 0o755, 0o644
    arch.set_permissions(arch.root, recursive=True)
    assert path.stat().st_mode & 0o7777 == 0o644
    assert (arch.root / "d").stat().st_mode & 0o7777 == 0o755


def test_unknown_group_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"archive\.group: group 'no-such-group-pp'"):
        Archive(tmp_path, group="no-such-group-pp")


def test_root_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ArchiveError, match="exists and is not a directory"):
        Archive(tmp_path / "file").create()


def test_unwritable_root(tmp_path: Path) -> None:
    """A root that cannot be created or written: a clear error naming it, nothing created.

    Permission bits do not stop root, so as root the test uses sysfs, where even root cannot
    create files.
    """
    if os.geteuid() == 0:
        existing, new = Path("/sys"), Path("/sys/photonpipe-archive-test")
    else:  # pragma: no cover - CI runs as root
        existing = tmp_path / "readonly"
        existing.mkdir(mode=0o555)
        new = existing / "new"
    with pytest.raises(ArchiveError, match=rf"cannot create archive root {new}: "):
        Archive(new).create()
    assert not new.exists()
    with pytest.raises(ArchiveError, match=rf"archive root {existing} is not writable: "):
        Archive(existing).create()


def test_atomic_output_replaces_only_on_success(tmp_path: Path) -> None:
    from photonpipe.platform.archive import atomic_output

    directory = tmp_path / "out"
    directory.mkdir()
    target = directory / "product.fits"
    target.write_text("old")

    def failing_writer() -> None:
        with atomic_output(target) as temp:
            temp.write_text("half")
            raise RuntimeError("writer failed")

    with pytest.raises(RuntimeError, match="writer failed"):
        failing_writer()
    assert target.read_text() == "old"
    assert [p.name for p in directory.iterdir()] == ["product.fits"]
    with atomic_output(target) as temp:
        assert temp.suffix == ".fits"
        temp.write_text("new")
    assert target.read_text() == "new"
    assert [p.name for p in directory.iterdir()] == ["product.fits"]
