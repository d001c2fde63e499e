"""A real RabbitMQ and a real Celery worker process for the echelle operations tests.

``PHOTONPIPE_TEST_AMQP_URL`` names the broker: unset → the tests skip; set but unreachable → they
fail. Each test gets its own exchange and queue names (uuid) and deletes them afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from photonpipe.echelle.service import Names, delete_topology, queue_length
from photonpipe.platform.config import Settings, load_settings

AMQP_ENV = "PHOTONPIPE_TEST_AMQP_URL"
TESTS = Path(__file__).resolve().parents[1]


def amqp_url() -> str:
    """Return the test broker URL, or skip the test when it is not configured."""
    url = os.environ.get(AMQP_ENV)
    if not url:
        pytest.skip(f"{AMQP_ENV} is not set")
    return url


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``predicate`` until it returns something true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


@dataclass
class Service:
    """Names, environment and settings of one test's echelle service."""

    url: str
    root: Path
    database_url: str
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    extra: dict[str, str] = field(default_factory=dict)
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        """Settings as environment variables (for the worker process and load_settings)."""
        return {
            "PHOTONPIPE_ARCHIVE_ROOT": str(self.root),
            "PHOTONPIPE_DATABASE_URL": self.database_url,
            "PHOTONPIPE_ECHELLEOPS_BROKER_URL": self.url,
            "PHOTONPIPE_ECHELLEOPS_EXCHANGE": f"test_fits_{self.tag}",
            "PHOTONPIPE_ECHELLEOPS_LISTEN_QUEUE": f"test_listen_{self.tag}",
            "PHOTONPIPE_ECHELLEOPS_TASK_QUEUE": f"test_echelle_{self.tag}",
            "PHOTONPIPE_ECHELLEOPS_PERIODIC_QUEUE": f"test_periodic_{self.tag}",
            "PHOTONPIPE_ECHELLEOPS_RETRY_BACKOFF": "1",
            "PHOTONPIPE_ECHELLEOPS_QUEUE_REPORT_INTERVAL": "1",
            **self.extra,
        }

    @property
    def settings(self) -> Settings:
        """Return the settings the service runs with."""
        import photonpipe.echelle.settings  # noqa: F401

        return load_settings(env=self.env)

    @property
    def names(self) -> Names:
        """Return the exchange and queue names."""
        return Names.from_settings(self.settings)

    def start_command(self, log: Path, *args: str) -> subprocess.Popen[bytes]:
        """Start ``photonpipe --log-format json echelle ARGS`` (stopped by :meth:`stop`)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PHOTONPIPE_")}
        env.update(self.env)
        env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
        with log.open("ab") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "photonpipe", "--log-format", "json", "echelle", *args],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.workers.append(process)
        return process

    def start_worker(self, log: Path, concurrency: int = 2) -> subprocess.Popen[bytes]:
        """Start ``photonpipe echelle worker`` and wait until it consumes the task queue."""
        process = self.start_command(log, "worker", "--concurrency", str(concurrency))
        names = self.names
        wait_for(
            lambda: process.poll() is not None or self.consumers(names.task_queue) > 0,
            60,
            "the worker to consume",
        )
        if process.poll() is not None:
            pytest.fail(f"the worker exited with {process.returncode}: {log.read_text()[-2000:]}")
        return process

    def consumers(self, queue: str) -> int:
        """Consumers of a queue (0 when it does not exist)."""
        from kombu import Connection

        with Connection(self.url) as connection:
            channel = connection.channel()
            try:
                return int(channel.queue_declare(queue=queue, passive=True).consumer_count)
            except Exception:
                return 0
            finally:
                with contextlib.suppress(Exception):
                    channel.close()

    def length(self, queue: str) -> int | None:
        """Messages ready in a queue."""
        from kombu import Connection

        with Connection(self.url) as connection:
            return queue_length(connection, queue)

    def drain_dead_letters(self) -> list[tuple[bytes, dict[str, Any]]]:
        """Take every message off the dead-letter queue: (body, headers)."""
        from kombu import Connection

        out = []
        with Connection(self.url) as connection:
            channel = connection.channel()
            while (
                message := channel.basic_get(queue=self.names.dead_queue, no_ack=True)
            ) is not None:
                body = message.body
                out.append(
                    (body.encode() if isinstance(body, str) else body, dict(message.headers or {}))
                )
            channel.close()
        return out

    def stop(self) -> None:
        """Stop the workers (SIGTERM, then SIGKILL of their process group) and delete the queues."""
        for process in self.workers:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
                    process.wait(10)
        from kombu import Connection

        with Connection(self.url) as connection:
            delete_topology(connection, self.names)


@contextlib.contextmanager
def running_service(root: Path, database_url: str, **extra: str) -> Iterator[Service]:
    """Yield a :class:`Service`; workers and queues are gone afterwards. Broker down: fail."""
    from kombu import Connection

    url = amqp_url()
    with Connection(url, connect_timeout=5) as connection:
        connection.ensure_connection(max_retries=1)  # unreachable: the test fails here
    service = Service(url, root, database_url, extra=extra)
    try:
        yield service
    finally:
        service.stop()


def events(log: Path, event: str) -> list[dict[str, Any]]:
    """JSON-line log events of one kind from a worker log."""
    out = []
    for line in log.read_text(errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if entry.get("event") == event:
            out.append(entry)
    return out
