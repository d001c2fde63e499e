from __future__ import annotations

import io
import json
import logging
import sys
from datetime import datetime

import pytest

from photonpipe.platform.logs import configure_logging, get_logger, timed


def test_json_lines_have_the_shipper_fields() -> None:
    stream = io.StringIO()
    configure_logging("json", "INFO", stream)
    log = get_logger("photonpipe.lightcurves.pipeline")
    log.info("extracted %d bins", 42, extra={"unit": "lb1a01abq", "targname": "AU-MIC"})
    with timed(log, "step took", unit="lb1a01abq") as fields:
        fields["events"] = 1000
    log.debug("not shown at INFO")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 2
    first, second = lines
    assert first["level"] == "INFO"
    assert first["application"] == "lightcurves"
    assert first["unit"] == "lb1a01abq"
    assert first["message"] == "extracted 42 bins"
    assert first["duration"] is None
    assert first["targname"] == "AU-MIC"
    assert datetime.fromisoformat(first["time"]).utcoffset().total_seconds() == 0
    assert second["message"] == "step took"
    assert second["events"] == 1000
    assert 0 <= second["duration"] < 60


def test_text_lines_and_reconfiguration() -> None:
    stream = io.StringIO()
    configure_logging("json", "INFO", io.StringIO())
    configure_logging("text", "WARNING", stream)  # replaces the earlier handler
    log = get_logger("photonpipe.platform.executor")
    log.info("hidden")
    log.warning("retrying", extra={"unit": "u1", "duration": 1.5})
    text = stream.getvalue()
    assert text.count("\n") == 1
    assert " WARNING platform [u1] retrying (1.5 s)" in text
    handlers = [h for h in logging.getLogger("photonpipe").handlers if h.get_name() == "photonpipe"]
    assert len(handlers) == 1


def test_unserialisable_extra_is_repr() -> None:
    stream = io.StringIO()
    configure_logging("json", "INFO", stream)
    get_logger("photonpipe.sky").info("x", extra={"thing": object()})
    assert json.loads(stream.getvalue())["thing"].startswith("<object object")


def test_default_handler_follows_sys_stderr(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    configure_logging("text", "INFO")
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    get_logger("photonpipe.cli").info("one")
    first.close()  # e.g. a captured stream that has gone away
    monkeypatch.setattr(sys, "stderr", second)
    get_logger("photonpipe.cli").info("two")
    assert second.getvalue().endswith("INFO    cli two\n")
