"""``photonpipe echelle watch`` never reads a file that is still being copied in."""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from helpers.echelle_ops import Night, copy_night
from photonpipe.echelle import operations
from photonpipe.echelle.models import ProcessedFile
from photonpipe.echelle.operations import Outcome, watch


def _slow_copy(
    source: Path, target: Path, pause: float, stall: float = 0.0, marker: str | None = None
) -> None:
    """Copy in 64 KiB blocks, ``pause`` seconds apart, stalling ``stall`` s half-way."""
    data = source.read_bytes()
    block = 1 << 16
    with target.open("wb") as handle:
        for start in range(0, len(data), block):
            handle.write(data[start : start + block])
            handle.flush()
            if stall and start <= len(data) // 2 < start + block:
                time.sleep(stall)
            time.sleep(pause)
    if marker:
        target.with_name(target.name + marker).write_bytes(b"")


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Path, int]]:
    """Every header read by the watch loop: (file, its size when read)."""
    seen: list[tuple[Path, int]] = []
    real = operations.read_header

    def spy(path: str | Path) -> object:
        seen.append((Path(path), Path(path).stat().st_size))
        return real(path)

    monkeypatch.setattr(operations, "read_header", spy)
    return seen


def _watch_until_done(
    night: Night, incoming: Path, copier: threading.Thread, **options: object
) -> list[Outcome]:
    stop = threading.Event()
    outcomes: list[Outcome] = []
    deadline = time.monotonic() + 120
    copier.start()
    for scan in watch(night.context(), incoming, interval=0.1, stop=stop, **options):  # type: ignore[arg-type]
        outcomes += scan
        if any(o.status == "done" for o in outcomes) and not copier.is_alive():
            stop.set()
        assert time.monotonic() < deadline, "watch did not reduce the copied frame"
    copier.join()
    return outcomes


def _check(
    night: Night, source: Path, target: Path, outcomes: list[Outcome], reads: list[tuple[Path, int]]
) -> None:
    size = source.stat().st_size
    assert target.stat().st_size == size
    # Read only complete, and reduced once.
    assert reads
    assert all(read_size == size for _, read_size in reads), reads
    key = target.relative_to(night.root).as_posix()
    assert [(o.filename, o.status) for o in outcomes] == [(key, "done")]
    with night.database.session() as session:
        row = session.scalars(sa.select(ProcessedFile).where(ProcessedFile.filename == key)).one()
        assert (row.status, row.tries) == ("done", 1)
        assert row.checksum == hashlib.md5(source.read_bytes()).hexdigest()


def test_watch_waits_until_a_slow_copy_settles(
    calibrated_night: Path, tmp_path: Path, reads: list[tuple[Path, int]]
) -> None:
    night = copy_night(calibrated_night, tmp_path / "root")
    incoming = night.root / "lsc/nres01/20260302/raw"
    incoming.mkdir(parents=True)
    source = next(p for p in night.raw if "-b00." in p.name)
    target = incoming / source.name.replace("20260301", "20260302")
    # 14 blocks, 0.25 s apart (3.5 s): many scans see it growing, each pause below --settle.
    copier = threading.Thread(target=_slow_copy, args=(source, target, 0.25))
    outcomes = _watch_until_done(night, incoming, copier, settle=1.0)
    _check(night, source, target, outcomes, reads)


def test_watch_with_a_marker_waits_through_a_stalled_copy(
    calibrated_night: Path, tmp_path: Path, reads: list[tuple[Path, int]]
) -> None:
    """A copy stalled for longer than --settle: only the completion marker says it is whole."""
    night = copy_night(calibrated_night, tmp_path / "root")
    incoming = night.root / "lsc/nres01/20260302/raw"
    incoming.mkdir(parents=True)
    source = next(p for p in night.raw if "-b00." in p.name)
    target = incoming / source.name.replace("20260301", "20260302")
    copier = threading.Thread(
        target=_slow_copy, args=(source, target, 0.05), kwargs={"stall": 2.0, "marker": ".done"}
    )
    outcomes = _watch_until_done(night, incoming, copier, settle=0.3, marker=".done")
    _check(night, source, target, outcomes, reads)


def test_watch_goes_on_through_a_database_outage(
    calibrated_night: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database is unreachable for the first scans: the watch waits (a growing delay) and
    reduces the frame once it is back, instead of ending with the error. Another error still
    ends it."""
    night = copy_night(calibrated_night, tmp_path / "root")
    incoming = night.root / "lsc/nres01/20260302/raw"
    incoming.mkdir(parents=True)
    source = next(p for p in night.raw if "-b00." in p.name)
    target = incoming / source.name.replace("20260301", "20260302")
    target.write_bytes(source.read_bytes())
    real = operations.process_file
    outage = {"left": 3}

    def flaky(context: object, key: str) -> Outcome:
        if outage["left"]:
            outage["left"] -= 1
            raise sa.exc.OperationalError(
                "SELECT 1", {}, Exception("connection refused: is the server running?")
            )
        return real(context, key)  # type: ignore[arg-type]

    monkeypatch.setattr(operations, "process_file", flaky)
    waits: list[float] = []
    stop = threading.Event()
    real_wait = stop.wait

    def wait(timeout: float | None = None) -> bool:
        waits.append(float(timeout or 0.0))
        return real_wait(0.01)

    monkeypatch.setattr(stop, "wait", wait)
    outcomes: list[Outcome] = []
    for scan in watch(night.context(), incoming, interval=0.05, settle=0.0, stop=stop):
        outcomes += scan
        if outcomes:
            stop.set()
    key = target.relative_to(night.root).as_posix()
    assert [(o.filename, o.status) for o in outcomes] == [(key, "done")]
    assert outage["left"] == 0
    # the delays grew while the outage lasted (the first scans may see the file still settling)
    backoff = [w for w in waits if w > 0.05]
    assert len(backoff) >= 2, waits
    assert backoff == sorted(backoff), waits

    def broken(context: object, key: str) -> Outcome:
        raise RuntimeError("a bug, not the outside world")

    monkeypatch.setattr(operations, "process_file", broken)
    other = night.root / "lsc/nres01/20260303/raw"
    other.mkdir(parents=True)
    (other / target.name.replace("20260302", "20260303")).write_bytes(source.read_bytes())
    with pytest.raises(RuntimeError, match="a bug"):
        for _ in watch(night.context(), other, interval=0.05, settle=0.0, stop=threading.Event()):
            pass
