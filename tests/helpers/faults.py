"""Work functions for the fault tests; importable by worker processes (Dask, Celery).

Each records its starts in ``<runs>/<key>`` (one line per start, the process id), so that a test
can count how often a unit ran across processes that were killed.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any


def hang_first_run(payload: dict[str, Any]) -> dict[str, Any]:
    """Record the start; on a unit's first run with ``hang`` set, hang (to be killed).

    ``payload``: ``key``, ``runs`` and ``out`` (directories), optional ``hang`` (hang on the
    first run), optional ``sleep`` [s]. The output ``<out>/<key>`` is written atomically.
    """
    key = payload["key"]
    runs = Path(payload["runs"])
    with (runs / key).open("a") as handle:
        handle.write(f"{os.getpid()}\n")
        handle.flush()
    starts = (runs / key).read_text().count("\n")
    if payload.get("hang") and starts == 1:
        time.sleep(120)
    time.sleep(payload.get("sleep", 0.0))
    out = Path(payload["out"]) / key
    temp = out.with_name(f".{out.name}.tmp")
    temp.write_text(key)
    temp.replace(out)
    return {"key": key, "pid": os.getpid(), "starts": starts}
