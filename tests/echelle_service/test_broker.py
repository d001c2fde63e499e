"""Against the real RabbitMQ (PHOTONPIPE_TEST_AMQP_URL) and a real Celery worker process."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from celery.schedules import crontab
from kombu import Connection

from helpers.echelle_ops import MORNING, Night, copy_night
from helpers.echelle_service import Service, amqp_url, events, running_service, wait_for
from photonpipe.echelle.models import CalibrationRecord, ProcessedFile
from photonpipe.echelle.operations import NIGHTLY_KIND
from photonpipe.echelle.service import (
    NIGHTLY_TASK,
    QUEUE_HEADER,
    REASON_HEADER,
    ListenStats,
    Names,
    beat_schedule,
    declare_topology,
    delete_topology,
    listen,
    make_app,
    post,
    queue_length,
)
from photonpipe.platform.ledger import WorkUnitRecord


@contextmanager
def listener(service: Service) -> Iterator[ListenStats]:
    """Run ``listen`` in a thread of the test process until the block ends."""
    stop, ready = threading.Event(), threading.Event()
    result: dict[str, ListenStats] = {}
    errors: list[BaseException] = []

    def run() -> None:
        try:
            result["stats"] = listen(service.settings, stop=stop, ready=ready)
        except BaseException as exc:  # reported by the test
            errors.append(exc)
            ready.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(30)
    if errors:
        raise errors[0]
    stats = ListenStats()
    try:
        yield stats
    finally:
        stop.set()
        thread.join(30)
        if errors:
            raise errors[0]
        stats.submitted = result["stats"].submitted
        stats.rejected = result["stats"].rejected


def _statuses(night: Night) -> Counter[str]:
    with night.database.session() as session:
        return Counter(session.scalars(sa.select(ProcessedFile.status)))


def _rows(night: Night) -> dict[str, ProcessedFile]:
    with night.database.session() as session:
        rows = {r.filename: r for r in session.scalars(sa.select(ProcessedFile))}
        session.expunge_all()
    return rows


def test_twenty_frames_reduced_exactly_once_then_skipped(
    calibrated_night: Path, tmp_path: Path
) -> None:
    night = copy_night(calibrated_night, tmp_path / "root")
    log = tmp_path / "worker.log"
    with running_service(night.root, night.url) as service:
        service.start_worker(log, concurrency=2)
        with listener(service) as stats:
            post(night.raw, service.names, frame_ids=list(range(1, 21)))
            wait_for(lambda: _statuses(night)["done"] == 20, 240, "20 frames done")
            done = Counter(
                e["unit"] for e in events(log, "file_processed") if e["outcome"] == "done"
            )
            assert len(done) == 20
            assert set(done.values()) == {1}
            # Posted again: every message is consumed, nothing is reduced again.
            post(night.raw, service.names)
            wait_for(
                lambda: sum(e["outcome"] == "skipped" for e in events(log, "file_processed")) == 20,
                120,
                "20 frames skipped",
            )
        outcomes = Counter(e["outcome"] for e in events(log, "file_processed"))
        assert outcomes == {"done": 20, "skipped": 20}
        assert (stats.submitted, stats.rejected) == (40, 0)
        assert service.length(service.names.task_queue) == 0
        assert service.length(service.names.dead_queue) == 0
    rows = _rows(night)
    assert len(rows) == 20
    assert {(r.tries, r.success) for r in rows.values()} == {(1, True)}
    assert sorted(r.frame_id for r in rows.values()) == list(range(1, 21))
    science = sorted((night.root / "lsc/nres01/reduced/spec").glob("*-1d.fits"))
    assert [p.name for p in science] == [
        "lscnrs01-fl09-20260301-0019-e91-1d.fits",
        "lscnrs01-fl09-20260301-0020-e91-1d.fits",
    ]


def test_killed_worker_task_is_redelivered_and_reduced_once(
    calibrated_night: Path, tmp_path: Path
) -> None:
    night = copy_night(calibrated_night, tmp_path / "root")
    science = next(p for p in night.raw if p.name.endswith("e00.fits.fz"))
    log = tmp_path / "worker.log"
    marker = night.root / ".first-try"
    with running_service(
        night.root,
        night.url,
        PHOTONPIPE_ECHELLEOPS_REDUCTION="helpers.echelle_hooks:hang_first_try",
    ) as service:
        service.start_worker(log, concurrency=1)
        with listener(service):
            post([science], service.names)
            pid = int(wait_for(lambda: marker.exists() and marker.read_text(), 60, "first try"))
            with night.database.session() as session:
                owner = session.scalar(
                    sa.select(WorkUnitRecord.owner).where(WorkUnitRecord.status == "running")
                )
            assert owner is not None
            assert owner.split(":")[1] == str(pid)  # the worker child holds the claim
            os.kill(pid, signal.SIGKILL)
            wait_for(lambda: _statuses(night)["done"] == 1, 120, "the redelivered frame done")
    row = _rows(night)[science.relative_to(night.root).as_posix()]
    # the killed try was a death, not a failure: refunded (a kill costs nothing), so one try
    assert (row.status, row.success, row.tries) == ("done", True, 1)
    done = [e for e in events(log, "file_processed") if e["outcome"] == "done"]
    assert len(done) == 1
    assert done[0]["tries"] == 1
    assert (
        night.root / "lsc/nres01/reduced/spec" / "lscnrs01-fl09-20260301-0019-e91-1d.fits"
    ).is_file()


def test_malformed_messages_are_dead_lettered(
    raw_night: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    night = copy_night(raw_night, tmp_path / "root")
    outside = tmp_path / "lscnrs01-fl09-20260301-0001-b00.fits.fz"
    outside.write_bytes(night.raw[0].read_bytes())
    not_nres = night.root / "lsc/nres01/20260301/raw/lscnrs01-fl09-20260301-0099-e00.fits.fz"
    not_nres.write_text("SIMPLE  = nonsense\n")
    from kombu import Connection, Exchange

    caplog.set_level(logging.WARNING, logger="photonpipe.echelle.service")
    with running_service(night.root, night.url) as service:
        names = service.names
        exchange = Exchange(names.exchange, type="fanout", durable=True)
        bad = [
            b"this is not JSON",
            json.dumps({"file": str(night.raw[0])}).encode(),
            json.dumps({"path": str(outside)}).encode(),
            json.dumps({"path": str(night.root / "lsc/nres01/missing-0001-b00.fits.fz")}).encode(),
            json.dumps({"path": str(not_nres)}).encode(),
        ]
        with listener(service) as stats:
            with Connection(service.url) as connection, connection.Producer() as producer:
                for body in bad[:3]:
                    producer.publish(
                        body,
                        exchange=exchange,
                        content_type="application/json",
                        content_encoding="utf-8",
                    )
                # A good message between bad ones: the consumer goes on.
                producer.publish({"path": str(night.raw[0])}, exchange=exchange, serializer="json")
                for body in bad[3:]:
                    producer.publish(
                        body,
                        exchange=exchange,
                        content_type="application/json",
                        content_encoding="utf-8",
                    )
            wait_for(lambda: service.length(names.dead_queue) == 5, 30, "5 dead letters")
            wait_for(lambda: service.length(names.task_queue) == 1, 30, "the good message's task")
        assert (stats.submitted, stats.rejected) == (1, 5)
        dead = service.drain_dead_letters()
    assert [body for body, _ in dead] == bad
    reasons = [r.reason for r in caplog.records if getattr(r, "event", None) == "message_rejected"]
    assert len(reasons) == 5
    for reason, (_, headers), expected in zip(
        reasons,
        dead,
        ["not JSON", "no 'path'", "outside the archive root", "no such file", "unreadable FITS"],
        strict=True,
    ):
        assert expected in reason
        assert headers[REASON_HEADER] == reason  # the reason travels with the dead letter
        assert headers[QUEUE_HEADER] == names.listen_queue
    rows = _rows(night)
    assert len(rows) == 5
    assert {r.status for r in rows.values()} == {"rejected"}


def test_burst_of_500_messages_nothing_lost(raw_night: Path, tmp_path: Path) -> None:
    night = copy_night(raw_night, tmp_path / "root")
    burst = night.root / "lsc/nres01/20260303/raw"
    burst.mkdir(parents=True)
    files = []
    for i in range(500):
        target = burst / f"lscnrs01-fl09-20260303-{1000 + i:04d}-b00.fits.fz"
        os.link(night.raw[0], target)
        files.append(target)
    log = tmp_path / "worker.log"
    with running_service(
        night.root, night.url, PHOTONPIPE_ECHELLEOPS_REDUCTION="helpers.echelle_hooks:noop"
    ) as service:
        service.start_worker(log, concurrency=2)
        with listener(service) as stats:
            post(files, service.names)
            wait_for(lambda: _statuses(night)["done"] == 500, 240, "500 frames done")
        assert (stats.submitted, stats.rejected) == (500, 0)
        for queue in (
            service.names.listen_queue,
            service.names.task_queue,
            service.names.dead_queue,
        ):
            assert service.length(queue) == 0
    done = Counter(e["unit"] for e in events(log, "file_processed") if e["outcome"] == "done")
    assert len(done) == 500
    assert set(done.values()) == {1}


def test_beat_schedule_runs_the_nightly_tasks(raw_night: Path, tmp_path: Path) -> None:
    night = copy_night(raw_night, tmp_path / "root")
    log = tmp_path / "worker.log"
    with running_service(
        night.root,
        night.url,
        PHOTONPIPE_ECHELLEOPS_STACK_SCHEDULE="lsc=15 13 * * *; elp=45 16 * * 1-5",
        PHOTONPIPE_ECHELLEOPS_TRACE_SCHEDULE="lsc=0 14 * * *",
    ) as service:
        settings = service.settings
        schedule = beat_schedule(settings)
        assert sorted(schedule) == ["echelle-stack-elp", "echelle-stack-lsc", "echelle-traces-lsc"]
        assert schedule["echelle-stack-lsc"]["schedule"] == crontab("15", "13")
        assert schedule["echelle-stack-elp"]["schedule"] == crontab("45", "16", day_of_week="1-5")
        assert schedule["echelle-traces-lsc"]["args"] == ("lsc", "traces")
        periodic = service.names.periodic_queue
        assert {e["options"]["queue"] for e in schedule.values()} == {periodic}
        assert {e["task"] for e in schedule.values()} == {NIGHTLY_TASK}
        # Send the lsc entries as beat does (task, args, options), with the window ending the
        # morning after the simulated night, to a real worker consuming the periodic queue.
        service.start_worker(log, concurrency=1)
        app = make_app(settings)
        for name, task in (("echelle-stack-lsc", "stack"), ("echelle-traces-lsc", "traces")):
            entry = schedule[name]
            app.send_task(
                entry["task"],
                args=entry["args"],
                kwargs={"end": MORNING.isoformat()},
                **entry["options"],
            )
            key = f"lsc/{task}/{MORNING:%Y-%m-%dT%H:%M:%S}"

            def finished(key: str = key) -> bool:
                with night.database.session() as session:
                    return (
                        session.scalar(
                            sa.select(WorkUnitRecord.status).where(
                                WorkUnitRecord.kind == NIGHTLY_KIND, WorkUnitRecord.key == key
                            )
                        )
                        == "done"
                    )

            wait_for(finished, 180, f"nightly {task}")
    with night.database.session() as session:
        made = sorted((r.type, r.fibres_lit) for r in session.scalars(sa.select(CalibrationRecord)))
    assert made == [
        ("ARC", "011"),
        ("ARC", "110"),
        ("BIAS", "000"),
        ("DARK", "000"),
        ("FLAT", "011"),
        ("FLAT", "110"),
        ("TRACE", "111"),
        ("TRIPLE", "111"),
    ]
    assert len(events(log, "nightly")) == 2


@pytest.mark.slow
def test_beat_process_sends_the_nightly_task(raw_night: Path, tmp_path: Path) -> None:
    """The real ``photonpipe echelle beat`` fires a crontab and a worker runs the task (~1 min)."""
    night = copy_night(raw_night, tmp_path / "root")
    log = tmp_path / "worker.log"
    with running_service(
        night.root,
        night.url,
        PHOTONPIPE_ECHELLEOPS_STACK_SCHEDULE="lsc=* * * * *",
        PHOTONPIPE_ECHELLEOPS_TRACE_SCHEDULE="",
    ) as service:
        service.start_worker(log, concurrency=1)
        beat = service.start_command(
            tmp_path / "beat.log", "beat", "--schedule-file", str(tmp_path / "schedule")
        )
        assert beat.poll() is None

        def recorded() -> bool:
            with night.database.session() as session:
                return bool(
                    session.scalar(
                        sa.select(sa.func.count()).where(
                            WorkUnitRecord.kind == NIGHTLY_KIND,
                            WorkUnitRecord.status.in_(("done", "failed")),
                        )
                    )
                )

        wait_for(recorded, 90, "beat's nightly task to run")
    # The window is the 24 h before now: no frames of the simulated night in it.
    (entry,) = events(log, "nightly")
    assert (entry["site"], entry["task"], entry["products"]) == ("lsc", "stack", 0)
    assert "no BIAS frames" in entry["errors"]["BIAS"]


def test_delete_topology_removes_what_declare_topology_made() -> None:
    tag = uuid.uuid4().hex[:10]
    names = Names(
        broker_url=amqp_url(),
        exchange=f"test-{tag}.raw",
        listen_queue=f"test-{tag}.listen",
        task_queue=f"test-{tag}.tasks",
        periodic_queue=f"test-{tag}.periodic",
    )
    queues = (names.listen_queue, names.dead_queue)
    with Connection(names.broker_url, connect_timeout=5) as connection:
        declare_topology(connection, names)
        assert [queue_length(connection, q) for q in queues] == [0, 0]
        delete_topology(connection, names)
        assert [queue_length(connection, q) for q in queues] == [None, None]
        delete_topology(connection, names)  # nothing left to delete: passed over
