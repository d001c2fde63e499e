"""Work functions for executor tests; importable by worker processes.

Each function records its runs in files so that a test can count how often each unit ran,
even across processes that were killed.
"""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path
from typing import Any

from photonpipe.errors import InputFileError


def record_run(payload: dict[str, Any]) -> dict[str, Any]:
    """Append this run to ``<runs>/<key>``, sleep a little, write ``<out>/<key>`` atomically.

    ``payload``: ``key``, ``runs`` (directory), ``out`` (directory), optional ``sleep`` [s],
    optional ``fail_times`` (raise on the first N runs), optional ``disk_full_times`` (raise
    ``OSError(ENOSPC)`` on the first N runs), optional ``bad_input`` (raise an input error),
    optional ``crash`` (exit the process).
    """
    key = payload["key"]
    runs = Path(payload["runs"])
    with (runs / key).open("a") as handle:
        handle.write(f"{os.getpid()}\n")
        handle.flush()
    previous = (runs / key).read_text().count("\n") - 1
    if payload.get("crash"):
        os._exit(3)
    if previous < payload.get("fail_times", 0):
        raise RuntimeError(f"planned failure {previous + 1} of {key}")
    if previous < payload.get("disk_full_times", 0):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(payload["out"]))
    if payload.get("bad_input"):
        raise InputFileError(Path(payload["out"]) / key, "planned bad input")
    time.sleep(payload.get("sleep", 0.0))
    out = Path(payload["out"]) / key
    temp = out.with_name(out.name + ".tmp")
    temp.write_text(str(payload.get("value", key)))
    temp.replace(out)
    return {"key": key, "pid": os.getpid()}


def noop(payload: Any) -> Any:
    """Return the payload (for throughput measurements)."""
    return payload


def misbehave(payload: dict[str, Any]) -> Any:
    """Fail in ways a work function should not: unpicklable result, sys.exit, or fine."""
    how = payload["how"]
    if how == "unpicklable":
        return lambda: None
    if how == "exit":
        raise SystemExit(4)
    return how
