"""Messages that cannot stop a consumer: the real ``photonpipe echelle listen`` and worker
processes against the real RabbitMQ (PHOTONPIPE_TEST_AMQP_URL), poison messages between valid
frame messages (issue 19, point 1)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from astropy.io import fits
from kombu import Connection, Exchange

from helpers.echelle_ops import RAW, Night, copy_night
from helpers.echelle_service import Service, events, running_service, wait_for
from photonpipe.echelle.models import ProcessedFile
from photonpipe.echelle.operations import message_filename
from photonpipe.echelle.service import QUEUE_HEADER, REASON_HEADER, declare_topology
from photonpipe.platform.archive import Archive

#: Bodies are published as JSON text unless a case says otherwise.
Case = tuple[str, bytes, dict[str, Any], str]


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


def _with_keywords(source: Path, destination: Path, **keywords: object) -> Path:
    """A copy of a raw frame with header keywords changed."""
    with fits.open(source) as hdul:
        for key, value in keywords.items():
            hdul[1].header[key] = value
        hdul.writeto(destination)
    return destination


def poison_cases(night: Night, outside: Path) -> list[Case]:
    """Twenty-two kinds of message the listener must dead-letter: (name, body, headers, reason).

    The files they name are made here, in the night's raw directory.
    """
    raw = night.root / RAW
    frame = night.raw[0]
    not_fits = raw / "lscnrs01-fl09-20260301-0090-b00.fits.fz"
    not_fits.write_text("SIMPLE  = nonsense\n")
    empty = raw / "lscnrs01-fl09-20260301-0091-b00.fits.fz"
    empty.write_bytes(b"")
    directory = raw / "lscnrs01-fl09-20260301-0092-b00.fits.fz"
    directory.mkdir()
    loop = raw / "lscnrs01-fl09-20260301-0093-b00.fits.fz"
    loop.symlink_to(loop.name)
    other = _with_keywords(
        frame, raw / "lscnrs01-fl09-20260301-0094-b00.fits.fz", TELESCOP="nres02"
    )
    product = _with_keywords(frame, raw / "lscnrs01-fl09-20260301-0095-b00.fits.fz", RLEVEL=91)
    guide = raw / "lscnrs01-ak01-20260301-0096-g00.fits.fz"
    guide.write_bytes(frame.read_bytes())
    # A frame no valid message names (the message is bad, not the file).
    valid = str(night.raw[-1])
    return [
        ("not JSON", b"this is not JSON", {}, "not JSON"),
        ("not UTF-8", b"\xff\xfe\x00{\x80\x81", {}, "not JSON"),
        ("empty body", b"", {}, "not JSON"),
        ("nested 100,000 deep", b"[" * 100_000 + b"]" * 100_000, {}, "not JSON"),
        ("JSON array", _json([valid]), {}, "not a JSON object"),
        ("JSON null", b"null", {}, "not a JSON object"),
        ("no path key", _json({"file": valid}), {}, "no 'path'"),
        ("path not a string", _json({"path": 42}), {}, "no 'path'"),
        ("frameid a string", _json({"path": valid, "frameid": "7"}), {}, "'frameid'"),
        ("frameid a boolean", _json({"path": valid, "frameid": True}), {}, "'frameid'"),
        ("frameid above 2**63", _json({"path": valid, "frameid": 10**30}), {}, "'frameid'"),
        ("100,000-character path", _json({"path": "/" + "p" * 100_000}), {}, "bytes long"),
        (
            "300-character file name",
            _json({"path": str(raw / ("n" * 300 + "-0001-b00.fits.fz"))}),
            {},
            "-byte file or directory name",
        ),
        ("NUL in the path", _json({"path": valid + "\x00"}), {}, "NUL character"),
        ("outside the root", _json({"path": str(outside)}), {}, "outside the archive root"),
        ("missing file", _json({"path": str(raw / "gone-0001-b00.fits.fz")}), {}, "no such file"),
        ("a directory", _json({"path": str(directory)}), {}, "a directory"),
        ("a symbolic-link loop", _json({"path": str(loop)}), {}, "cannot resolve"),
        ("not a FITS file", _json({"path": str(not_fits)}), {}, "unreadable FITS"),
        ("an empty file", _json({"path": str(empty)}), {}, "unreadable FITS"),
        ("another instrument", _json({"path": str(other)}), {}, "'nres02' is not configured"),
        ("a reduced frame", _json({"path": str(product)}), {}, "RLEVEL 91"),
        ("a guide-camera frame", _json({"path": str(guide)}), {}, "not a raw NRES frame name"),
        (
            "unknown compression",
            _json({"path": valid}),
            {"compression": "application/x-nonsense"},
            "undecodable message",
        ),
    ]


def _publish(service: Service, messages: list[tuple[bytes, dict[str, Any]]]) -> None:
    exchange = Exchange(service.names.exchange, type="fanout", durable=True)
    with Connection(service.url) as connection, connection.Producer() as producer:
        for body, headers in messages:
            producer.publish(
                body,
                exchange=exchange,
                content_type="application/json",
                content_encoding="utf-8",
                headers=headers,
                delivery_mode=2,
            )


def _start_worker_and_listener(
    service: Service, worker_log: Path, listen_log: Path
) -> subprocess.Popen[bytes]:
    """Start one worker and the listener; return the listener once it consumes (or exited)."""
    service.start_worker(worker_log, concurrency=1)
    listener = service.start_command(listen_log, "listen")
    wait_for(
        lambda: listener.poll() is not None or service.consumers(service.names.listen_queue) > 0,
        60,
        "the listener to consume",
    )
    return listener


def _rows(night: Night) -> dict[str, ProcessedFile]:
    with night.database.session() as session:
        rows = {r.filename: r for r in session.scalars(sa.select(ProcessedFile))}
        session.expunge_all()
    return rows


def _count(night: Night, status: str) -> Callable[[], bool | int]:
    def count() -> int:
        with night.database.session() as session:
            return int(
                session.scalar(sa.select(sa.func.count()).where(ProcessedFile.status == status))
                or 0
            )

    return count


def test_poison_messages_between_valid_frames(calibrated_night: Path, tmp_path: Path) -> None:
    night = copy_night(calibrated_night, tmp_path / "root")
    outside = tmp_path / "lscnrs01-fl09-20260301-0001-b00.fits.fz"
    outside.write_bytes(night.raw[0].read_bytes())
    cases = poison_cases(night, outside)
    assert len(cases) >= 20
    # The calibration frames: quick to reduce (checked and recorded) with the real reduction.
    valid = [p for p in night.raw if "-b00." in p.name or "-d00." in p.name]
    assert len(valid) >= len(cases) // 3
    valid = valid[: len(cases) // 3]
    messages: list[tuple[bytes, dict[str, Any]]] = []
    for i, (_, body, headers, _) in enumerate(cases):
        if i % 3 == 0:
            messages.append((_json({"path": str(valid[i // 3]), "frameid": 100 + i // 3}), {}))
        messages.append((body, headers))
    n_valid = len(valid)
    worker_log, listen_log = tmp_path / "worker.log", tmp_path / "listen.log"
    started = time.monotonic()
    with running_service(
        night.root, night.url, PHOTONPIPE_ECHELLEOPS_INSTRUMENTS="nres01"
    ) as service:
        names = service.names
        with Connection(service.url) as connection:
            declare_topology(connection, names)
        # Poison first, before any listener runs: a listener (re)started on it goes on.
        _publish(service, messages[:2])
        listener = _start_worker_and_listener(service, worker_log, listen_log)
        _publish(service, messages[2:])
        wait_for(
            lambda: listener.poll() is not None or service.length(names.dead_queue) == len(cases),
            120,
            f"{len(cases)} dead letters",
        )
        assert listener.poll() is None, listen_log.read_text()[-3000:]
        wait_for(lambda: _count(night, "done")() == n_valid, 180, f"{n_valid} frames done")
        elapsed = time.monotonic() - started
        assert listener.poll() is None, listen_log.read_text()[-3000:]
        assert service.length(names.listen_queue) == 0
        dead = service.drain_dead_letters()
        os.killpg(listener.pid, signal.SIGTERM)
        assert listener.wait(30) == 0
    print(f"poison test: {len(messages)} messages handled in {elapsed:.1f} s")
    _check_outcome(night, cases, dead, names.listen_queue, valid, worker_log, listen_log)


def _check_outcome(
    night: Any,
    cases: list[Any],
    dead: list[Any],
    listen_queue: str,
    valid: list[Path],
    worker_log: Path,
    listen_log: Path,
) -> None:
    """Dead letters, reductions, log events and table rows after the poison run."""
    n_valid = len(valid)
    # Every poison message is in the dead-letter queue, in order, with its reason.
    assert [body for body, _ in dead] == [body for _, body, _, _ in cases]
    for (name, _, _, reason), (_, headers) in zip(cases, dead, strict=True):
        assert reason in headers[REASON_HEADER], (name, headers[REASON_HEADER])
        assert headers[QUEUE_HEADER] == listen_queue
    assert dead[-1][1]["x-photonpipe-compression"] == "application/x-nonsense"
    # Every valid frame reduced exactly once.
    done = Counter(
        e["unit"] for e in events(worker_log, "file_processed") if e["outcome"] == "done"
    )
    assert sorted(done) == sorted(p.relative_to(night.root).as_posix() for p in valid)
    assert set(done.values()) == {1}
    rejected = events(listen_log, "message_rejected")
    assert len(rejected) == len(cases)
    assert f"{n_valid} submitted, {len(cases)} rejected" in listen_log.read_text()
    # Every poison message is recorded in the processed-file table, with its reason.
    rows = _rows(night)
    archive = Archive(night.root)
    for name, body, _, reason in cases:
        key = message_filename(body, archive)
        assert key in rows, name
        assert rows[key].status == "rejected", name
        if key == night.raw[-1].relative_to(night.root).as_posix():
            continue  # four messages name this frame; the record holds the last reason
        assert reason in (rows[key].error or ""), (name, rows[key].error)
    last = rows[night.raw[-1].relative_to(night.root).as_posix()]
    assert "undecodable message" in (last.error or "")
    assert all(len(key) <= 512 for key in rows)
    assert Counter(r.status for r in rows.values())["done"] == n_valid


def test_listener_reconnects_when_the_broker_drops_its_connection(
    calibrated_night: Path, tmp_path: Path
) -> None:
    """The broker closes every connection (as on a restart): the listener and the worker come
    back by themselves, and the frame published afterwards is reduced. Before, the listener
    exited with an internal error (ConnectionForced) and needed a manual restart."""
    rabbitmqctl = shutil.which("rabbitmqctl")
    if rabbitmqctl is None:
        pytest.skip("rabbitmqctl is not installed")
    night = copy_night(calibrated_night, tmp_path / "root")
    first, second = [p for p in night.raw if "-b00." in p.name][:2]
    worker_log, listen_log = tmp_path / "worker.log", tmp_path / "listen.log"
    with running_service(
        night.root, night.url, PHOTONPIPE_ECHELLEOPS_INSTRUMENTS="nres01"
    ) as service:
        names = service.names
        listener = _start_worker_and_listener(service, worker_log, listen_log)
        _publish(service, [(_json({"path": str(first), "frameid": 1}), {})])
        wait_for(lambda: _count(night, "done")() == 1, 120, "the first frame done")
        subprocess.run(
            [rabbitmqctl, "close_all_connections", "photonpipe test: the broker drops everyone"],
            check=True,
            capture_output=True,
        )
        wait_for(
            lambda: listener.poll() is not None or events(listen_log, "broker_reconnected"),
            60,
            "the listener to reconnect",
        )
        assert listener.poll() is None, listen_log.read_text()[-3000:]
        wait_for(lambda: service.consumers(names.listen_queue) > 0, 60, "the listener to consume")
        _publish(service, [(_json({"path": str(second), "frameid": 2}), {})])
        wait_for(lambda: _count(night, "done")() == 2, 120, "the second frame done")
        assert listener.poll() is None, listen_log.read_text()[-3000:]
        assert service.length(names.dead_queue) == 0
        os.killpg(listener.pid, signal.SIGTERM)
        assert listener.wait(30) == 0
    (lost,) = events(listen_log, "broker_connection_lost")
    assert "CONNECTION_FORCED" in lost["reason"] or "Connection" in lost["reason"], lost
