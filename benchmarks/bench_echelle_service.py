"""Echelle operations: the message path's throughput and the latency broker + worker add per frame.

Needs RabbitMQ (``--broker``, default ``amqp://guest:guest@127.0.0.1:5672//``). Simulates a small
lsc night, hard-links one raw frame N times (distinct names, no extra disk), and measures with a
**no-op reduction** (setting ``echelleops.reduction`` = this module's :func:`noop_reduction`, so
only the message path is timed), a real ``photonpipe echelle worker`` process and the listener:

* **throughput**: N messages posted at once → listener (filter: header read) → Celery task →
  worker (ledger claim, processed-file records) → done in the database; messages/s from the first
  post to the last recorded success, median of ``--repeat`` runs (fresh database each run);
* **latency**: one frame at a time, posted and waited for (database polled every 2 ms), median
  over ``--frames`` frames; against the baseline of calling the same per-frame processing
  (:func:`photonpipe.echelle.operations.process_file`, with its ledger and processed-file
  bookkeeping) directly in this process, and against the no-op function alone. For scale, the
  real reduction of one small science frame (``reduce_frame_unit``) is timed too.

Run as ``python benchmarks/bench_echelle_service.py [--messages N] [--frames F] [--repeat R]
[--concurrency C]``. The worker imports this module (PYTHONPATH), so importing it only defines
things.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any


def noop_reduction(payload: dict[str, Any]) -> dict[str, Any]:
    """Reduce nothing: the message path alone is measured."""
    return {"type": "NOOP"}


def _done(url: str) -> int:
    import sqlalchemy as sa

    from photonpipe.echelle.models import ProcessedFile
    from photonpipe.platform.db import Database

    database = Database(url)
    try:
        with database.session() as session:
            return int(
                session.scalar(sa.select(sa.func.count()).where(ProcessedFile.status == "done"))
                or 0
            )
    finally:
        database.dispose()


class Run:
    """One fresh archive copy, database, queue names, worker process and listener thread."""

    def __init__(self, source: Path, work: Path, broker: str, concurrency: int) -> None:
        self.root = work / uuid.uuid4().hex[:8]
        shutil.copytree(source, self.root, copy_function=os.link)
        self.url = f"sqlite:///{self.root / 'photonpipe.db'}"
        tag = uuid.uuid4().hex[:10]
        self.env = {
            "PHOTONPIPE_ARCHIVE_ROOT": str(self.root),
            "PHOTONPIPE_DATABASE_URL": self.url,
            "PHOTONPIPE_ECHELLEOPS_BROKER_URL": broker,
            "PHOTONPIPE_ECHELLEOPS_EXCHANGE": f"bench_fits_{tag}",
            "PHOTONPIPE_ECHELLEOPS_LISTEN_QUEUE": f"bench_listen_{tag}",
            "PHOTONPIPE_ECHELLEOPS_TASK_QUEUE": f"bench_echelle_{tag}",
            "PHOTONPIPE_ECHELLEOPS_PERIODIC_QUEUE": f"bench_periodic_{tag}",
            "PHOTONPIPE_ECHELLEOPS_REDUCTION": "bench_echelle_service:noop_reduction",
        }
        import photonpipe.echelle.settings  # noqa: F401
        from photonpipe.echelle.service import Names
        from photonpipe.platform.config import load_settings
        from photonpipe.platform.db import Database

        Database(self.url).upgrade()
        self.settings = load_settings(env=self.env)
        self.names = Names.from_settings(self.settings)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PHOTONPIPE_")}
        env.update(self.env)
        env["PYTHONPATH"] = str(Path(__file__).resolve().parent)
        self.worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "photonpipe",
                "echelle",
                "worker",
                "--concurrency",
                str(concurrency),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.stop = threading.Event()
        ready = threading.Event()
        from photonpipe.echelle.service import listen

        self.thread = threading.Thread(
            target=listen, args=(self.settings,), kwargs={"stop": self.stop, "ready": ready}
        )
        self.thread.start()
        ready.wait(30)
        self._wait_consumer()

    def _wait_consumer(self) -> None:
        from kombu import Connection

        deadline = time.monotonic() + 60
        with Connection(self.env["PHOTONPIPE_ECHELLEOPS_BROKER_URL"]) as connection:
            while time.monotonic() < deadline:
                channel = connection.channel()
                try:
                    if channel.queue_declare(
                        queue=self.names.task_queue, passive=True
                    ).consumer_count:
                        return
                except Exception:
                    channel = connection.channel()
                finally:
                    with contextlib.suppress(Exception):
                        channel.close()
                time.sleep(0.2)
        raise RuntimeError("the worker did not start")

    def close(self) -> None:
        from kombu import Connection

        from photonpipe.echelle.service import delete_topology

        self.stop.set()
        self.thread.join(30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.worker.pid, signal.SIGTERM)
        try:
            self.worker.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.worker.pid, signal.SIGKILL)
        with Connection(self.env["PHOTONPIPE_ECHELLEOPS_BROKER_URL"]) as connection:
            delete_topology(connection, self.names)


def main() -> None:
    """Run the benchmark and print its figures."""
    from photonpipe.echelle.operations import OpsContext, process_file
    from photonpipe.echelle.science import reduce_frame_unit
    from photonpipe.echelle.service import post
    from photonpipe.echelle.settings import Options
    from photonpipe.echelle.simulate import NightPlan, simulate_night
    from photonpipe.platform.archive import Archive
    from photonpipe.platform.db import Database

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--broker", default="amqp://guest:guest@127.0.0.1:5672//")
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()
    print(f"load average: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as directory:
        work = Path(directory)
        source = work / "night"
        simulate_night(
            source, site="lsc", night="2026-03-01", small=True, seed=3, plan=NightPlan(science=2)
        )
        raw = sorted((source / "lsc/nres01/20260301/raw").glob("*.fits.fz"))
        burst = source / "lsc/nres01/20260303/raw"
        burst.mkdir(parents=True)
        count = max(args.messages, args.frames)
        files = [burst / f"lscnrs01-fl09-20260303-{1000 + i:04d}-b00.fits.fz" for i in range(count)]
        for path in files:
            os.link(raw[0], path)

        rates = []
        for _ in range(args.repeat):
            run = Run(source, work, args.broker, args.concurrency)
            try:
                relative = [run.root / p.relative_to(source) for p in files[: args.messages]]
                start = time.perf_counter()
                post(relative, run.names)
                while _done(run.url) < args.messages:
                    time.sleep(0.05)
                rates.append(args.messages / (time.perf_counter() - start))
            finally:
                run.close()
        print(
            f"throughput, {args.messages} messages, no-op reduction, {args.concurrency} worker "
            f"processes: median {statistics.median(rates):.1f} messages/s "
            f"(runs: {', '.join(f'{r:.1f}' for r in rates)})"
        )

        run = Run(source, work, args.broker, 1)
        latencies = []
        try:
            for i, path in enumerate(files[: args.frames]):
                start = time.perf_counter()
                post([run.root / path.relative_to(source)], run.names)
                while _done(run.url) < i + 1:
                    time.sleep(0.002)
                latencies.append(time.perf_counter() - start)
        finally:
            run.close()

        direct_root = work / "direct"
        shutil.copytree(source, direct_root, copy_function=os.link)
        database = Database(f"sqlite:///{direct_root / 'photonpipe.db'}")
        database.upgrade()
        context = OpsContext(
            str(direct_root),
            database,
            Options(),
            reduction="bench_echelle_service:noop_reduction",
        )
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        direct = []
        bare = []
        for path in files[: args.frames]:
            target = direct_root / path.relative_to(source)
            start = time.perf_counter()
            outcome = process_file(context, target)
            direct.append(time.perf_counter() - start)
            assert outcome.status == "done", outcome
            start = time.perf_counter()
            noop_reduction({"path": str(target)})
            bare.append(time.perf_counter() - start)

        # Scale: one real science-frame reduction (calibrations made by the night pipeline).
        from photonpipe.echelle.pipeline import reduce_night

        reduce_night(
            Archive(direct_root), database, "lsc", "nres01", "2026-03-01", workers=2, progress=False
        )
        science = sorted((direct_root / "lsc/nres01/20260301/raw").glob("*e00*"))
        payload = {
            "root": str(direct_root),
            "database": database,
            "path": str(science[0]),
            "options": Options(),
        }
        real = []
        for _ in range(3):
            start = time.perf_counter()
            reduce_frame_unit(payload)
            real.append(time.perf_counter() - start)

    d, s = statistics.median(direct), statistics.median(latencies)
    print(f"latency per frame, {args.frames} frames one at a time (medians):")
    print(f"  no-op function alone:                        {statistics.median(bare) * 1e3:8.3f} ms")
    print(f"  process_file called directly (baseline):     {d * 1e3:8.1f} ms  1.0")
    print(f"  post → listener → Celery → worker → done:    {s * 1e3:8.1f} ms  {s / d:.1f}x")
    print(f"  added by broker + worker:                    {(s - d) * 1e3:8.1f} ms")
    print(f"  real reduction of a small science frame:     {statistics.median(real) * 1e3:8.0f} ms")


if __name__ == "__main__":
    main()
