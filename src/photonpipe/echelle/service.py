"""NRES operations with RabbitMQ and Celery: post, listen, workers and beat (``service`` extra).

Message path (as LCO ran NRES)::

    post ──► fanout exchange ``fits_files`` ──► durable queue ``echelle_fits_files`` ──► listen
                                                   │ rejected (any exception, with its reason)
                                                   ▼
                      exchange ``echelle_fits_files.dlx`` ──► queue ``echelle_fits_files.dead``

    listen ──► Celery task ``photonpipe.echelle.reduce_file`` on queue ``echelle`` ──► workers
    beat   ──► Celery task ``photonpipe.echelle.nightly`` on queue ``periodic``    ──► workers
    worker ──► given up (bad arguments, rejected, tries spent) ──► ``echelle.dead``

The listener consumes with prefetch 1, checks each message (:func:`parse_message`,
:func:`accept_file`) and either submits the file to the reduction task and acknowledges the
message, or, on any exception while decoding, checking or submitting it, dead-letters it
(:func:`dead_letter`: the original body with the reason in the :data:`REASON_HEADER` header,
confirmed by the broker), records it in the processed-file table (status ``rejected``), logs it
(event ``message_rejected``) and acknowledges it: a poison message is never requeued and never
stops the consumer. Workers acknowledge a task only after it ran (``acks_late``), put
it back when their process dies (``reject_on_worker_lost``), take one message at a time per
process (prefetch multiplier 1), retry a failed frame with exponential back-off, and replace a
process after ``echelleops.max_tasks_per_child`` tasks. A task runs
:func:`photonpipe.echelle.operations.process_file`, whose ledger claim makes a redelivered or
duplicated message harmless. A task with malformed arguments, a rejected file and a frame whose
tries are spent are dead-lettered by the worker (:func:`give_up`), never redelivered for ever.
No result backend is used: outcomes are in the database.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from photonpipe.echelle.operations import (
    NIGHTLY_TASKS,
    REJECTED,
    OpsContext,
    RejectedFileError,
    accept_file,
    parse_message,
    process_file,
    record_rejection,
    run_nightly,
)
from photonpipe.errors import ConfigError, PhotonpipeError, require_extra
from photonpipe.platform.ledger import FAILED

require_extra("service", "celery", "kombu", needed_by=__name__)

log = logging.getLogger("photonpipe.echelle.service")

REDUCE_TASK = "photonpipe.echelle.reduce_file"
NIGHTLY_TASK = "photonpipe.echelle.nightly"
#: Header of a dead-lettered message: why it was rejected (at most :data:`REASON_CHARS`).
REASON_HEADER = "x-photonpipe-reason"
#: Header of a dead-lettered message: the queue it was taken from.
QUEUE_HEADER = "x-photonpipe-queue"
#: Header of a dead-lettered message: when it was rejected (ISO 8601, UTC).
REJECTED_AT_HEADER = "x-photonpipe-rejected-at"
REASON_CHARS = 1000
#: Longest wait between two attempts of the listener to reach a lost broker again [s].
MAX_RECONNECT_DELAY = 30.0

#: The context of the tasks of this process (set by :func:`make_app`; inherited by forked workers).
_CONTEXT: dict[str, OpsContext] = {}


class BrokerError(PhotonpipeError):
    """The broker cannot be reached."""

    exit_code = 2


@dataclass(frozen=True)
class Names:
    """Exchange and queue names from the ``echelleops`` settings."""

    broker_url: str
    exchange: str
    listen_queue: str
    task_queue: str
    periodic_queue: str

    @classmethod
    def from_settings(cls, settings: Any, broker_url: str | None = None) -> Names:
        """Read the names (``broker_url`` overrides the setting)."""
        import photonpipe.echelle.settings  # noqa: F401

        return cls(
            broker_url=broker_url or str(settings["echelleops.broker_url"]),
            exchange=str(settings["echelleops.exchange"]),
            listen_queue=str(settings["echelleops.listen_queue"]),
            task_queue=str(settings["echelleops.task_queue"]),
            periodic_queue=str(settings["echelleops.periodic_queue"]),
        )

    @property
    def dead_exchange(self) -> str:
        """Dead-letter exchange of the listener's queue."""
        return f"{self.listen_queue}.dlx"

    @property
    def dead_queue(self) -> str:
        """Queue holding the dead-lettered messages."""
        return f"{self.listen_queue}.dead"

    @property
    def task_dead_exchange(self) -> str:
        """Exchange of the task messages the workers gave up on."""
        return f"{self.task_queue}.dlx"

    @property
    def task_dead_queue(self) -> str:
        """Queue holding the task messages the workers gave up on."""
        return f"{self.task_queue}.dead"


def _connection(url: str) -> Any:
    from kombu import Connection

    return Connection(url, connect_timeout=10)


def _connect(url: str) -> Any:
    connection = _connection(url)
    try:
        connection.ensure_connection(max_retries=2, interval_start=0.5, interval_step=0.5)
    except Exception as exc:
        connection.release()
        raise BrokerError(f"cannot reach the broker at {_mask(url)}: {exc}") from None
    return connection


def _mask(url: str) -> str:
    from kombu.utils.url import maybe_sanitize_url

    return str(maybe_sanitize_url(url))


def declare_topology(connection: Any, names: Names) -> None:
    """Declare the fanout exchange, the listener's durable queue and its dead-letter queue."""
    from kombu import Exchange, Queue

    channel = connection.default_channel
    dead_exchange = Exchange(names.dead_exchange, type="fanout", durable=True)
    Queue(names.dead_queue, dead_exchange, durable=True)(channel).declare()
    Queue(
        names.listen_queue,
        Exchange(names.exchange, type="fanout", durable=True),
        durable=True,
        queue_arguments={"x-dead-letter-exchange": names.dead_exchange},
    )(channel).declare()
    declare_task_dead_letters(connection, names)


def declare_task_dead_letters(connection: Any, names: Names) -> None:
    """Declare the workers' dead-letter exchange and queue (``TASK_QUEUE.dlx``, ``.dead``).

    The task queue names the exchange as its dead-letter exchange, so a task message a worker
    rejects (undecodable, an unknown task) lands there as well as the ones it gives up on.
    """
    from kombu import Exchange, Queue

    exchange = Exchange(names.task_dead_exchange, type="fanout", durable=True)
    Queue(names.task_dead_queue, exchange, durable=True)(connection.default_channel).declare()


def declare_dead_letters(names: Names) -> None:
    """Connect and declare the workers' dead-letter exchange and queue (before a worker starts)."""
    connection = _connect(names.broker_url)
    try:
        declare_task_dead_letters(connection, names)
    finally:
        connection.release()


def dead_letter(
    producer: Any,
    names: Names,
    body: bytes | str | dict[str, Any],
    reason: str,
    *,
    queue: str,
    headers: dict[str, Any] | None = None,
    content_type: str | None = None,
    content_encoding: str | None = None,
) -> None:
    """Publish a message to a dead-letter queue with the reason in its headers.

    ``queue`` is the queue the message was taken from: the listener's (its dead letters go to
    ``LISTEN_QUEUE.dead``) or the task queue (``TASK_QUEUE.dead``). The body is kept as it was
    received; the headers gain :data:`REASON_HEADER`, :data:`QUEUE_HEADER` and
    :data:`REJECTED_AT_HEADER`. An original ``compression`` header is renamed
    ``x-photonpipe-compression`` (a compression kombu cannot undo is one reason to reject).
    """
    from kombu import Exchange, Queue

    if queue == names.task_queue:
        exchange = Exchange(names.task_dead_exchange, type="fanout", durable=True)
        target = Queue(names.task_dead_queue, exchange, durable=True)
    else:
        exchange = Exchange(names.dead_exchange, type="fanout", durable=True)
        target = Queue(names.dead_queue, exchange, durable=True)
    out = dict(headers or {})
    if "compression" in out:
        out["x-photonpipe-compression"] = out.pop("compression")
    out[REASON_HEADER] = reason[:REASON_CHARS]
    out[QUEUE_HEADER] = queue
    out[REJECTED_AT_HEADER] = datetime.now(UTC).isoformat(timespec="seconds")
    options: dict[str, Any] = {}
    if isinstance(body, dict):
        options["serializer"] = "json"
    else:
        options["content_type"] = content_type or "application/octet-stream"
        options["content_encoding"] = content_encoding or "binary"
    producer.publish(
        body,
        exchange=exchange,
        routing_key=target.name,
        declare=[target],
        headers=out,
        delivery_mode=2,
        retry=True,
        retry_policy={"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5},
        **options,
    )


def delete_topology(connection: Any, names: Names) -> None:
    """Delete the queues and exchanges of ``names``; their messages are lost.

    Deletes what :func:`declare_topology` declares, the task and periodic queues with the
    exchanges of the same names that Celery declares for them, and the workers' dead-letter
    queue and exchange. A queue or exchange that cannot be
    deleted (absent, or the channel already closed by an earlier error) is passed over.

    Parameters
    ----------
    connection : kombu.Connection
        Connection to the broker.
    names : Names
        The exchange and queue names to delete.
    """
    channel = connection.channel()
    try:
        for queue in (
            names.listen_queue,
            names.task_queue,
            names.periodic_queue,
            names.dead_queue,
            names.task_dead_queue,
        ):
            with contextlib.suppress(Exception):
                channel.queue_delete(queue=queue)
        for exchange in (
            names.exchange,
            names.dead_exchange,
            names.task_queue,
            names.periodic_queue,
            names.task_dead_exchange,
        ):
            with contextlib.suppress(Exception):
                channel.exchange_delete(exchange=exchange)
    finally:
        with contextlib.suppress(Exception):
            channel.close()


def post(
    paths: Sequence[str | Path], names: Names, frame_ids: Sequence[int | None] | None = None
) -> int:
    """Publish ``{"path": ...}`` for each file to the fanout exchange (persistent messages).

    Relative paths are made absolute from the working directory. Returns the number posted.
    """
    from kombu import Exchange

    exchange = Exchange(names.exchange, type="fanout", durable=True)
    ids = list(frame_ids) if frame_ids is not None else [None] * len(paths)
    connection = _connect(names.broker_url)
    try:
        with connection.Producer() as producer:
            for path, frame_id in zip(paths, ids, strict=True):
                body: dict[str, Any] = {"path": str(Path(path).absolute())}
                if frame_id is not None:
                    body["frameid"] = frame_id
                producer.publish(
                    body,
                    exchange=exchange,
                    declare=[exchange],
                    serializer="json",
                    delivery_mode=2,
                    retry=True,
                )
    finally:
        connection.release()
    return len(paths)


def queue_length(connection: Any, queue: str) -> int | None:
    """Messages ready in a queue (None when the queue does not exist)."""
    channel = connection.channel()
    try:
        return int(channel.queue_declare(queue=queue, passive=True).message_count)
    except Exception:
        return None
    finally:
        try:
            channel.close()
        except Exception:
            log.debug("closing a channel failed", exc_info=True)


def queue_lengths(names: Names) -> dict[str, int | str]:
    """Lengths of the listener's, the task, the periodic and the two dead-letter queues."""
    connection = _connect(names.broker_url)
    try:
        out: dict[str, int | str] = {}
        for queue in (
            names.listen_queue,
            names.task_queue,
            names.periodic_queue,
            names.dead_queue,
            names.task_dead_queue,
        ):
            length = queue_length(connection, queue)
            out[queue] = "absent" if length is None else length
        return out
    finally:
        connection.release()


# --------------------------------------------------------------------------- Celery


def parse_crontabs(text: str, setting: str) -> dict[str, tuple[str, str, str, str, str]]:
    """Parse ``"lsc=30 13 * * *; elp=…"`` into site → (minute, hour, day, month, weekday)."""
    out: dict[str, tuple[str, str, str, str, str]] = {}
    for item in text.split(";"):
        if not item.strip():
            continue
        site, sep, cron = item.partition("=")
        fields = cron.split()
        if not sep or not site.strip() or len(fields) != 5:
            raise ConfigError(
                f"setting {setting}: {item.strip()!r} is not 'site=MIN HOUR DAY MONTH WEEKDAY'"
            )
        out[site.strip()] = (fields[0], fields[1], fields[2], fields[3], fields[4])
    return out


def scheduled_minute() -> str:
    """Return the current UTC minute, ISO 8601: the window end beat gives a nightly task.

    Evaluated by beat when it sends the task, so the end travels in the message: a task
    redelivered after its worker died, or sent twice for one crontab slot (beat killed before
    it saved the schedule), has the same ledger key and runs once.
    """
    return datetime.now(UTC).replace(second=0, microsecond=0).isoformat()


def beat_schedule(settings: Any) -> dict[str, dict[str, Any]]:
    """Return the periodic tasks: per site, nightly stacking and trace refinement (crontabs).

    Each entry's ``end`` keyword is :func:`scheduled_minute`, evaluated when beat sends it.
    """
    from celery.beat import BeatLazyFunc
    from celery.schedules import crontab

    names = Names.from_settings(settings)
    schedule: dict[str, dict[str, Any]] = {}
    for task, setting in zip(
        NIGHTLY_TASKS, ("echelleops.stack_schedule", "echelleops.trace_schedule"), strict=True
    ):
        for site, fields in parse_crontabs(str(settings[setting]), setting).items():
            try:
                minute, hour, day_of_month, month_of_year, day_of_week = fields
                schedule_ = crontab(
                    minute=minute,
                    hour=hour,
                    day_of_week=day_of_week,
                    day_of_month=day_of_month,
                    month_of_year=month_of_year,
                )
            except ValueError as exc:
                raise ConfigError(f"setting {setting}: {site}: {exc}") from None
            schedule[f"echelle-{task}-{site}"] = {
                "task": NIGHTLY_TASK,
                "schedule": schedule_,
                "args": (site, task),
                "kwargs": {"end": BeatLazyFunc(scheduled_minute)},
                "options": {"queue": names.periodic_queue},
            }
    return schedule


def make_app(settings: Any, broker_url: str | None = None, database: Any = None) -> Any:
    """Create the Celery application of the echelle operations, configured from settings."""
    from celery import Celery
    from kombu import Queue

    names = Names.from_settings(settings, broker_url)
    context = OpsContext.from_settings(settings, database)
    _CONTEXT["context"] = context
    app = Celery("photonpipe.echelle", broker=names.broker_url, set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        worker_max_tasks_per_child=int(settings["echelleops.max_tasks_per_child"]),
        task_ignore_result=True,
        task_store_errors_even_if_ignored=False,
        task_default_queue=names.task_queue,
        task_queues=(
            Queue(
                names.task_queue,
                durable=True,
                queue_arguments={"x-dead-letter-exchange": names.task_dead_exchange},
            ),
            Queue(names.periodic_queue, durable=True),
        ),
        # A message is acknowledged (the fits message by the listener, a task by a worker)
        # only after the broker confirmed the messages published for it.
        broker_transport_options={"confirm_publish": True},
        task_routes={NIGHTLY_TASK: {"queue": names.periodic_queue}},
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        worker_send_task_events=False,
        timezone="UTC",
        enable_utc=True,
        beat_schedule=beat_schedule(settings),
        # Save the schedule after every task sent: a beat killed and restarted does not send
        # the last slot again (the default saves every 3 minutes).
        beat_sync_every=1,
    )

    @app.task(bind=True, name=REDUCE_TASK, max_retries=context.max_tries)
    def reduce_file(self: Any, path: Any, frame_id: Any = None) -> dict[str, Any]:
        context = _CONTEXT["context"]
        if not isinstance(path, str) or (
            frame_id is not None and (isinstance(frame_id, bool) or not isinstance(frame_id, int))
        ):
            reason = (
                f"task arguments are not (path: str, frame_id: int | None): "
                f"{str(path)[:120]!r}, {str(frame_id)[:40]!r}"
            )
            return give_up(self, names, context, path, frame_id, reason, REJECTED)
        tries = self.request.retries + 1
        try:
            outcome = process_file(context, path, frame_id)
        except Exception as exc:  # the database or the file system, not the frame
            log.exception("processing %s did not finish", path[:200])
            if self.request.retries >= self.max_retries:
                reason = f"{type(exc).__name__}: {exc} (gave up after {tries} tries)"
                return give_up(self, names, context, path, frame_id, reason, FAILED)
            countdown = context.retry_backoff * 2.0**self.request.retries
            raise self.retry(exc=exc, countdown=countdown) from None
        if outcome.status == "retry" and self.request.retries < self.max_retries:
            raise self.retry(countdown=outcome.retry_in)
        if outcome.status in ("retry", "failed"):
            reason = f"{outcome.error} (gave up after {outcome.tries or tries} tries)"
            return give_up(self, names, context, path, frame_id, reason, FAILED)
        if outcome.status == REJECTED:  # e.g. the file changed or went after the listener
            return give_up(
                self, names, context, path, frame_id, outcome.error or REJECTED, REJECTED
            )
        return outcome.as_dict()

    @app.task(name=NIGHTLY_TASK)
    def nightly(site: str, task: str, end: str | None = None) -> dict[str, Any]:
        report = run_nightly(
            _CONTEXT["context"], site, task, datetime.fromisoformat(end) if end else None
        )
        return {"masters": report.masters, "errors": report.errors}

    return app


def give_up(
    task: Any,
    names: Names,
    context: OpsContext,
    path: Any,
    frame_id: Any,
    reason: str,
    status: str,
) -> dict[str, Any]:
    """Dead-letter a reduction task with its reason and record it; the worker then acks it.

    Used for task arguments of the wrong type and a file that is not a frame to reduce
    (``status`` ``rejected``, never retried), and for a frame whose tries are spent or whose
    processing raised on every retry (``failed``). The dead letter is a JSON object
    ``{"task", "id", "args", "kwargs"}`` in ``TASK_QUEUE.dead``, with the reason in the
    :data:`REASON_HEADER` header. Recording in the processed-file table is best effort: the
    database may be what failed.
    """
    body = {
        "task": REDUCE_TASK,
        "id": task.request.id,
        "args": [path],
        "kwargs": {"frame_id": frame_id},
    }
    log.error(
        "gave up on a reduction task: %s",
        reason,
        extra={
            "event": "task_dead_lettered",
            "reason": reason,
            "dead_letter_queue": names.task_dead_queue,
        },
    )
    try:
        record_rejection(
            context.database,
            context.archive,
            {"path": str(path), "frameid": frame_id},
            reason,
            frame_id=frame_id if isinstance(frame_id, int) and 0 <= frame_id < 2**63 else None,
            status=status,
        )
    except Exception:
        log.exception("could not record the dead-lettered task of %s", str(path)[:200])
    with task.app.producer_or_acquire() as producer:
        dead_letter(producer, names, body, reason, queue=names.task_queue)
    return {"filename": str(path)[:512], "status": "dead-lettered", "error": reason}


def worker_argv(settings: Any, concurrency: int, queues: Sequence[str] | None = None) -> list[str]:
    """Arguments of ``celery worker`` for the echelle workers."""
    names = Names.from_settings(settings)
    return [
        "worker",
        "--pool=prefork",
        f"--concurrency={concurrency}",
        "--queues=" + ",".join(queues or (names.task_queue, names.periodic_queue)),
        "--without-mingle",
        "--without-gossip",
        "--loglevel=WARNING",
        f"--hostname=photonpipe-echelle-{socket.gethostname()}-%i",
    ]


# --------------------------------------------------------------------------- listener


@dataclass
class ListenStats:
    """Messages the listener submitted and rejected, and the broker connections it lost."""

    submitted: int = 0
    rejected: int = 0
    reconnects: int = 0


def listen(
    settings: Any,
    *,
    broker_url: str | None = None,
    stop: threading.Event | None = None,
    ready: threading.Event | None = None,
    app: Any = None,
) -> ListenStats:
    """Consume the fits exchange and submit each accepted file to the reduction task.

    Runs until ``stop`` is set (the command: until interrupted). Any exception while decoding,
    checking or submitting a message (not JSON, a bad path, a file that is not a raw frame of a
    configured instrument, a failed submission) dead-letters that message: it is published to
    ``LISTEN_QUEUE.dead`` with the reason in the :data:`REASON_HEADER` header, recorded in the
    processed-file table (status ``rejected``), logged (event ``message_rejected``) and
    acknowledged. It is never requeued, and it never stops the consumer. A lost broker
    connection does not stop it either: it reconnects (see :meth:`_Listener.run`). ``ready``
    is set once the queues are declared and the consumer is subscribed.
    """
    import photonpipe.echelle.settings  # noqa: F401

    listener = _Listener(settings, broker_url, app)
    try:
        listener.run(stop or threading.Event(), ready)
    finally:
        listener.release()
    return listener.stats


class _Listener:
    """The state of one :func:`listen` run: connections, context and counts."""

    def __init__(self, settings: Any, broker_url: str | None, app: Any) -> None:
        self.names = Names.from_settings(settings, broker_url)
        self.context = OpsContext.from_settings(settings)
        self.archive = self.context.archive
        self.app = app or make_app(settings, broker_url, self.context.database)
        self.interval = float(settings["echelleops.queue_report_interval"])
        self.stats = ListenStats()
        self.connect()

    def connect(self) -> None:
        """Open both broker connections (raises BrokerError when the broker is unreachable)."""
        from kombu import Connection

        self.connection = _connect(self.names.broker_url)
        # Dead letters are confirmed by the broker before the message is acknowledged.
        self.confirmed = Connection(
            self.names.broker_url, connect_timeout=10, transport_options={"confirm_publish": True}
        )

    def release(self) -> None:
        """Close both broker connections."""
        self.confirmed.release()
        self.connection.release()

    def reject(self, message: Any, reason: str, path: Path | None = None) -> None:
        """Dead-letter ``message`` with ``reason``, record and log it, acknowledge it."""
        from kombu import Producer

        names = self.names
        self.stats.rejected += 1
        body = message.body
        log.warning(
            "rejected message: %s",
            reason,
            extra={
                "event": "message_rejected",
                "reason": reason,
                "body": _preview(body),
                "dead_letter_queue": names.dead_queue,
            },
        )
        try:
            record_rejection(self.context.database, self.archive, body, reason, path=path)
        except Exception:  # the database being down must not stop the consumer
            log.exception("could not record the rejected message in the processed-file table")
        try:
            dead_letter(
                Producer(self.confirmed.default_channel),
                names,
                body,
                reason,
                queue=names.listen_queue,
                headers=dict(message.headers or {}),
                content_type=message.content_type,
                content_encoding=message.content_encoding,
            )
        except Exception:
            # RabbitMQ still dead-letters a rejected message (through the queue's dead-letter
            # exchange), only without the reason header; the reason is in the log and table.
            log.exception("could not publish the dead letter; rejecting the message")
            message.reject(requeue=False)
        else:
            message.ack()

    def on_message(self, message: Any) -> None:
        """Check one message and submit its frame, or dead-letter it."""
        path: Path | None = None
        try:
            path, frame_id = parse_message(message.body, self.archive)
            accept_file(path, self.context.instruments)
        except Exception as exc:
            reason = str(exc) if isinstance(exc, RejectedFileError) else _describe(exc)
            self.reject(message, reason, path)
            return
        try:
            self.app.send_task(
                REDUCE_TASK,
                args=(str(path),),
                kwargs={"frame_id": frame_id},
                queue=self.names.task_queue,
            )
        except Exception as exc:
            if isinstance(exc, self.lost()):
                raise  # the broker is gone, not the message: reconnect, and it comes again
            reason = f"{path}: could not submit the reduction task ({_describe(exc)})"
            self.reject(message, reason, path)
            return
        message.ack()
        self.stats.submitted += 1
        log.debug("submitted %s", path, extra={"event": "submitted", "unit": str(path)})

    def on_decode_error(self, message: Any, exc: Exception) -> None:
        """Dead-letter a message kombu could not decode."""
        self.reject(message, f"undecodable message ({_describe(exc)})")

    def report(self) -> None:
        """Log the queue lengths and the counts so far."""
        names = self.names
        lengths = {
            q: queue_length(self.connection, q)
            for q in (names.listen_queue, names.task_queue, names.dead_queue)
        }
        log.info(
            "queue lengths: %s",
            ", ".join(f"{q} {n}" for q, n in lengths.items()),
            extra={
                "event": "queue_length",
                "queues": lengths,
                "submitted": self.stats.submitted,
                "rejected": self.stats.rejected,
            },
        )

    def lost(self) -> tuple[type[BaseException], ...]:
        """Exceptions that mean the broker connection is gone (not the message's fault)."""
        from kombu.exceptions import OperationalError

        return (
            OperationalError,
            *self.connection.connection_errors,
            *self.connection.recoverable_connection_errors,
        )

    def run(self, stop: threading.Event, ready: threading.Event | None) -> None:
        """Consume until ``stop`` is set; set ``ready`` once subscribed.

        A lost broker connection (the broker restarted, a network failure, the connection
        closed by an operator) is not the end: the listener says so in the log, reconnects
        with a growing delay (1 s, doubled up to :data:`MAX_RECONNECT_DELAY`) for as long as
        it takes, declares its queues again and goes on. A message it was handling when the
        connection went is not acknowledged, so the broker delivers it again; its reduction
        is recorded once whatever the number of deliveries.
        """
        delay = 1.0
        while not stop.is_set():
            try:
                self.consume(stop, ready)
                return
            except self.lost() as exc:
                self.stats.reconnects += 1
                log.warning(
                    "lost the broker connection (%s); reconnecting",
                    _describe(exc),
                    extra={"event": "broker_connection_lost", "reason": _describe(exc)},
                )
            with contextlib.suppress(Exception):
                self.release()
            while not stop.wait(delay):
                try:
                    self.connect()
                except BrokerError as exc:
                    delay = min(2.0 * delay, MAX_RECONNECT_DELAY)
                    log.warning(
                        "%s; next try in %.0f s",
                        exc,
                        delay,
                        extra={"event": "broker_unreachable", "retry_in": delay},
                    )
                    continue
                log.info(
                    "reconnected to the broker at %s",
                    _mask(self.names.broker_url),
                    extra={"event": "broker_reconnected"},
                )
                delay = 1.0
                break

    def consume(self, stop: threading.Event, ready: threading.Event | None) -> None:
        """Declare the queues, subscribe and consume until ``stop`` is set."""
        from kombu import Consumer, Queue

        declare_topology(self.connection, self.names)
        queue = Queue(self.names.listen_queue, no_declare=True)
        with Consumer(
            self.connection,
            queues=[queue],
            on_message=self.on_message,
            on_decode_error=self.on_decode_error,
            prefetch_count=1,
        ):
            if ready is not None:
                ready.set()
            last_report = 0.0
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    self.connection.drain_events(timeout=0.5)
                now = time.monotonic()
                if now - last_report >= self.interval:
                    last_report = now
                    self.report()


def _describe(exc: BaseException) -> str:
    """One line for an unexpected exception: its type and message (at most 500 characters)."""
    return f"{type(exc).__name__}: {exc}"[:500]


def _preview(body: Any) -> str:
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    if not isinstance(body, str):
        body = json.dumps(body, default=str)
    return body[:200]
