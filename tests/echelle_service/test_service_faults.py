"""Fault tests of the Celery service against the real RabbitMQ (PHOTONPIPE_TEST_AMQP_URL): a
worker SIGKILLed in the middle of a task while the beat process is killed and restarted; a task
whose retries are spent, and one with malformed arguments, are dead-lettered."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa

from helpers.echelle_ops import copy_night
from helpers.echelle_service import events, running_service, wait_for
from photonpipe.echelle.models import ProcessedFile
from photonpipe.echelle.operations import NIGHTLY_KIND
from photonpipe.echelle.service import QUEUE_HEADER, REASON_HEADER, REDUCE_TASK, make_app, post
from photonpipe.platform.ledger import WorkUnitRecord

from .test_broker import listener


def _nightly_keys(database_url: str) -> list[tuple[str, str]]:
    from photonpipe.platform.db import Database

    database = Database(database_url)
    try:
        with database.session() as session:
            return [
                (key, status)
                for key, status in session.execute(
                    sa.select(WorkUnitRecord.key, WorkUnitRecord.status).where(
                        WorkUnitRecord.kind == NIGHTLY_KIND
                    )
                )
            ]
    finally:
        database.dispose()


def _drain(url: str, queue: str) -> list[tuple[bytes, dict[str, object]]]:
    from kombu import Connection

    out = []
    with Connection(url) as connection:
        channel = connection.channel()
        while (message := channel.basic_get(queue=queue, no_ack=True)) is not None:
            body = message.body
            out.append((body.encode() if isinstance(body, str) else body, dict(message.headers)))
        channel.close()
    return out


@pytest.mark.slow
def test_worker_killed_mid_task_while_beat_restarts(calibrated_night: Path, tmp_path: Path) -> None:
    """Nothing is done twice: the frame once (tries 2), each beat slot's nightly task once.

    Beat fires every minute; the test waits for one firing, then SIGKILLs the worker child in
    the middle of a reduction and beat itself, and starts beat again on the same schedule file
    (about 2 minutes).
    """
    night = copy_night(calibrated_night, tmp_path / "root")
    science = next(p for p in night.raw if p.name.endswith("e00.fits.fz"))
    worker_log, beat_log = tmp_path / "worker.log", tmp_path / "beat.log"
    schedule = tmp_path / "beat-schedule"
    marker = night.root / ".first-try"
    before = {key for key, _ in _nightly_keys(night.url)}
    with running_service(
        night.root,
        night.url,
        PHOTONPIPE_ECHELLEOPS_REDUCTION="helpers.echelle_hooks:hang_first_try",
        PHOTONPIPE_ECHELLEOPS_STACK_SCHEDULE="lsc=* * * * *",
        PHOTONPIPE_ECHELLEOPS_TRACE_SCHEDULE="",
    ) as service:
        service.start_worker(worker_log, concurrency=2)
        beat = service.start_command(beat_log, "beat", "--schedule-file", str(schedule))
        wait_for(lambda: len(events(worker_log, "nightly")) >= 1, 90, "beat's first nightly task")
        with listener(service):
            post([science], service.names)
            pid = int(wait_for(lambda: marker.exists() and marker.read_text(), 60, "first try"))
            # The worker child in the middle of the reduction, and beat, at once.
            os.kill(pid, signal.SIGKILL)
            os.killpg(beat.pid, signal.SIGKILL)
            beat.wait(10)
            restarted = service.start_command(beat_log, "beat", "--schedule-file", str(schedule))
            wait_for(
                lambda: (
                    Counter(e["outcome"] for e in events(worker_log, "file_processed"))["done"] == 1
                ),
                120,
                "the redelivered frame done",
            )
            first = {key for key, _ in _nightly_keys(night.url)} - before
            # The next slot after the restart: beat goes on, once per minute.
            wait_for(
                lambda: len({k for k, _ in _nightly_keys(night.url)} - before - first) >= 1,
                90,
                "a nightly task from the restarted beat",
            )
            time.sleep(3)  # a duplicate of that slot would arrive within a beat tick
        assert restarted.poll() is None
    with night.database.session() as session:
        row = session.scalars(sa.select(ProcessedFile)).one()
    assert (row.status, row.success, row.tries) == ("done", True, 2)
    done = [e for e in events(worker_log, "file_processed") if e["outcome"] == "done"]
    assert len(done) == 1
    # The beat's nightly units (the night's own, from its fixture, ended 2026-03-02 12:00):
    # one ledger unit per crontab slot (site/task/minute), each run once.
    keys = [(k, status) for k, status in _nightly_keys(night.url) if k not in before]
    slots = Counter(key[: len("lsc/stack/2026-01-01T00:00")] for key, _ in keys)
    assert len(slots) >= 2
    assert set(slots.values()) == {1}, keys
    assert {status for _, status in keys} <= {"done", "failed"}
    nightly = events(worker_log, "nightly")
    assert len(nightly) == len(keys), (nightly, keys)


def test_task_with_malformed_arguments_is_dead_lettered(raw_night: Path, tmp_path: Path) -> None:
    night = copy_night(raw_night, tmp_path / "root")
    log = tmp_path / "worker.log"
    with running_service(night.root, night.url) as service:
        service.start_worker(log, concurrency=1)
        app = make_app(service.settings)
        names = service.names
        app.send_task(REDUCE_TASK, args=(12345,), queue=names.task_queue)
        app.send_task(REDUCE_TASK, args=("/" + "p" * 100_000,), queue=names.task_queue)
        app.send_task(
            REDUCE_TASK, args=(str(night.raw[0]),), kwargs={"frame_id": "x"}, queue=names.task_queue
        )
        wait_for(lambda: service.length(names.task_dead_queue) == 3, 60, "3 dead-lettered tasks")
        assert service.length(names.task_queue) == 0
        dead = _drain(service.url, names.task_dead_queue)
    assert [(body["args"], body["kwargs"]) for body in map(_json, dead)] == [
        ([12345], {"frame_id": None}),
        (["/" + "p" * 100_000], {"frame_id": None}),
        ([str(night.raw[0])], {"frame_id": "x"}),
    ]
    reasons = [str(headers[REASON_HEADER]) for _, headers in dead]
    assert "task arguments are not" in reasons[0]
    assert "bytes long" in reasons[1]  # a rejected file: never retried
    assert "task arguments are not" in reasons[2]
    assert {headers[QUEUE_HEADER] for _, headers in dead} == {names.task_queue}
    assert [e["outcome"] for e in events(log, "file_processed")] == ["rejected"]
    with night.database.session() as session:
        statuses = Counter(session.scalars(sa.select(ProcessedFile.status)))
    assert statuses == {"rejected": 3}


def test_task_is_dead_lettered_after_its_retries(raw_night: Path, tmp_path: Path) -> None:
    """A frame that fails every try: given up after ``executor.max_tries`` tries (with the
    back-off between them), dead-lettered with the reason and recorded failed."""
    night = copy_night(raw_night, tmp_path / "root")
    log = tmp_path / "worker.log"
    with running_service(
        night.root,
        night.url,
        PHOTONPIPE_EXECUTOR_MAX_TRIES="2",
        PHOTONPIPE_ECHELLEOPS_REDUCTION="helpers.echelle_hooks:no_such_function",
    ) as service:
        service.start_worker(log, concurrency=1)
        names = service.names
        app = make_app(service.settings)
        app.send_task(REDUCE_TASK, args=(str(night.raw[0]),), queue=names.task_queue)
        wait_for(lambda: service.length(names.task_dead_queue) == 1, 90, "the task dead-lettered")
        dead = _drain(service.url, names.task_dead_queue)
        assert service.length(names.task_queue) == 0
    ((body, headers),) = dead
    assert _json((body, headers))["args"] == [str(night.raw[0])]
    assert "gave up after 2 tries" in str(headers[REASON_HEADER])
    assert "AttributeError" in str(headers[REASON_HEADER])
    with night.database.session() as session:
        row = session.scalars(sa.select(ProcessedFile)).one()
    assert row.status == "failed"
    assert "gave up after 2 tries" in (row.error or "")
    assert [e["outcome"] for e in events(log, "file_processed")] == ["retry", "failed"]


def _json(dead: tuple[bytes, dict[str, object]]) -> dict[str, object]:
    import json

    value = json.loads(dead[0])
    assert isinstance(value, dict)
    return value
