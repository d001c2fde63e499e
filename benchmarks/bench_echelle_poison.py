"""Echelle listener: how fast it dead-letters poison messages, against valid ones it submits.

Needs RabbitMQ (``--broker``, default ``amqp://guest:guest@127.0.0.1:5672//``). Simulates a small
lsc night, runs :func:`photonpipe.echelle.service.listen` in a thread, publishes N messages at
once and times until they are all in the target queue:

* **valid**: N messages naming raw frames → header check → Celery task published (confirmed) →
  acknowledged; the time until N tasks are in the task queue (no worker runs);
* **poison**: N messages naming missing files → dead letter with the reason (confirmed) and a
  ``rejected`` record in the processed-file table (SQLite in the archive) → acknowledged; the
  time until N messages are in the dead-letter queue.

Prints messages/s (median of ``--repeat`` runs, fresh queues each run) and the ratio poison /
valid. Run as ``python benchmarks/bench_echelle_poison.py [--messages N] [--repeat R]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path


def run(root: Path, broker: str, kind: str, n: int) -> float:
    """Post ``n`` messages of ``kind`` to a fresh listener; return messages/s."""
    from kombu import Connection, Exchange, Queue

    import photonpipe.echelle.settings  # noqa: F401
    from photonpipe.echelle.service import (
        Names,
        declare_topology,
        delete_topology,
        listen,
        queue_length,
    )
    from photonpipe.platform.config import load_settings

    tag = uuid.uuid4().hex[:10]
    settings = load_settings(
        env={
            "PHOTONPIPE_ARCHIVE_ROOT": str(root),
            "PHOTONPIPE_DATABASE_URL": f"sqlite:///{root / f'bench-{tag}.db'}",
            "PHOTONPIPE_ECHELLEOPS_BROKER_URL": broker,
            "PHOTONPIPE_ECHELLEOPS_EXCHANGE": f"bench_fits_{tag}",
            "PHOTONPIPE_ECHELLEOPS_LISTEN_QUEUE": f"bench_listen_{tag}",
            "PHOTONPIPE_ECHELLEOPS_TASK_QUEUE": f"bench_echelle_{tag}",
            "PHOTONPIPE_ECHELLEOPS_PERIODIC_QUEUE": f"bench_periodic_{tag}",
            "PHOTONPIPE_ECHELLEOPS_QUEUE_REPORT_INTERVAL": "60",
        }
    )
    names = Names.from_settings(settings)
    raw = sorted((root / "lsc/nres01/20260301/raw").glob("*.fits.fz"))
    stop, ready = threading.Event(), threading.Event()
    with Connection(broker) as connection:
        declare_topology(connection, names)
        # The task queue as a worker declares it (no worker runs here), so tasks are counted.
        Queue(
            names.task_queue,
            Exchange(names.task_queue, type="direct", durable=True),
            routing_key=names.task_queue,
            durable=True,
            queue_arguments={"x-dead-letter-exchange": names.task_dead_exchange},
        )(connection.default_channel).declare()
    thread = threading.Thread(
        target=listen, args=(settings,), kwargs={"stop": stop, "ready": ready}, daemon=True
    )
    thread.start()
    ready.wait(60)
    target = names.dead_queue if kind == "poison" else names.task_queue
    exchange = Exchange(names.exchange, type="fanout", durable=True)
    try:
        with Connection(broker) as connection, connection.Producer() as producer:
            bodies = [
                {"path": str(root / f"missing-{i:05d}-b00.fits.fz")}
                if kind == "poison"
                else {"path": str(raw[i % len(raw)])}
                for i in range(n)
            ]
            start = time.perf_counter()
            for body in bodies:
                producer.publish(
                    json.dumps(body).encode(),
                    exchange=exchange,
                    content_type="application/json",
                    content_encoding="utf-8",
                )
            while True:
                with Connection(broker) as probe:
                    if (length := queue_length(probe, target)) == n:
                        break
                if time.perf_counter() - start > 600:
                    raise SystemExit(f"{kind}: {length} of {n} messages in {target} after 600 s")
                time.sleep(0.02)
            seconds = time.perf_counter() - start
    finally:
        stop.set()
        thread.join(30)
        with Connection(broker) as connection:
            delete_topology(connection, names)
    return n / seconds


def main() -> None:
    """Measure and print the two rates and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--broker", default="amqp://guest:guest@127.0.0.1:5672//")
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from photonpipe.echelle.simulate import NightPlan, simulate_night

    with tempfile.TemporaryDirectory() as work:
        root = Path(work) / "root"
        simulate_night(root, site="lsc", night="2026-03-01", small=True, seed=5, plan=NightPlan())
        rates = {}
        for kind in ("valid", "poison"):
            runs = [run(root, args.broker, kind, args.messages) for _ in range(args.repeat)]
            rates[kind] = statistics.median(runs)
            print(
                f"{kind:6s}: {rates[kind]:7.1f} messages/s (median of "
                + ", ".join(f"{r:.1f}" for r in runs)
                + f"; {args.messages} messages)"
            )
    print(f"ratio poison / valid: {rates['poison'] / rates['valid']:.2f}")


if __name__ == "__main__":
    main()
