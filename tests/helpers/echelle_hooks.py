"""Per-frame functions for the operations tests, run by a real Celery worker (setting
``echelleops.reduction``): a no-op, and the real reduction after a first try that hangs."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from photonpipe.echelle.pipeline import reduce_frame_unit


def noop(payload: dict[str, Any]) -> dict[str, Any]:
    """Reduce nothing (message-path tests and the benchmark)."""
    return {"type": "NOOP"}


def hang_first_try(payload: dict[str, Any]) -> dict[str, Any]:
    """The first call writes its pid to ``ROOT/.first-try`` and hangs; later calls reduce."""
    marker = Path(payload["root"]) / ".first-try"
    if not marker.exists():
        marker.write_text(str(os.getpid()))
        time.sleep(300)
    return reduce_frame_unit(payload)


def fail(payload: dict[str, Any]) -> dict[str, Any]:
    """Fail as a bad frame does."""
    from photonpipe.errors import InputFileError

    raise InputFileError(payload["path"], "corrupt for the test")
