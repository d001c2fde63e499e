"""Logging: human-readable lines by default, JSON lines for log shippers.

Every photonpipe logger lives under ``photonpipe.<area>``; the second component is reported as
the *application* (``platform``, ``lightcurves``, ``echelle``, ``sky``, ``stellar``, ``cli``).
Two optional fields travel with a record through ``extra=``: ``unit`` (the work unit being
processed) and ``duration`` (seconds). :func:`timed` logs how long a block took as such an event.

JSON lines carry ``time`` (ISO 8601, UTC), ``level``, ``application``, ``unit``, ``message``
and ``duration``, plus any other ``extra`` fields that are JSON-serialisable.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import IO, Any

_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
_HANDLER_NAME = "photonpipe"


def get_logger(name: str) -> logging.Logger:
    """Return the logger for a module (``__name__`` of a ``photonpipe`` module)."""
    return logging.getLogger(name)


def _application(record: logging.LogRecord) -> str:
    parts = record.name.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "photonpipe" else parts[0]


class JsonFormatter(logging.Formatter):
    """Format records as one JSON object a line."""

    def format(self, record: logging.LogRecord) -> str:  # noqa: D102
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "application": _application(record),
            "unit": getattr(record, "unit", None),
            "message": record.getMessage(),
            "duration": getattr(record, "duration", None),
        }
        for key, value in vars(record).items():
            if key in _STANDARD_ATTRS or key in entry:
                continue
            try:
                json.dumps(value)
                entry[key] = value
            except (TypeError, ValueError):
                entry[key] = repr(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """Human-readable lines: ``HH:MM:SS LEVEL application [unit] message (1.23 s)``."""

    def format(self, record: logging.LogRecord) -> str:  # noqa: D102
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        unit = getattr(record, "unit", None)
        duration = getattr(record, "duration", None)
        text = f"{stamp} {record.levelname:<7} {_application(record)}"
        if unit:
            text += f" [{unit}]"
        text += f" {record.getMessage()}"
        if duration is not None:
            text += f" ({duration:.3g} s)"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


class _StderrHandler(logging.StreamHandler[IO[str]]):
    """A stream handler that writes to whatever ``sys.stderr`` is when a record is emitted.

    Binding the stream once would keep writing to a replaced (possibly closed) stderr when the
    command runs more than once in a process, as in notebooks and test suites.
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> IO[str]:
        return sys.stderr

    @stream.setter
    def stream(self, value: IO[str]) -> None:
        pass


def configure_logging(
    fmt: str = "text", level: str | int = "INFO", stream: IO[str] | None = None
) -> logging.Handler:
    """Install the photonpipe log handler on the ``photonpipe`` logger.

    Parameters
    ----------
    fmt : {"text", "json"}
        Line format.
    level : str or int
        Lowest level emitted.
    stream : file-like, optional
        Where lines go (default ``sys.stderr``).

    Returns
    -------
    logging.Handler
        The handler installed (replacing one installed earlier by this function).
    """
    if fmt not in ("text", "json"):
        raise ValueError(f"unknown log format {fmt!r}")
    logger = logging.getLogger("photonpipe")
    for old in list(logger.handlers):
        if old.get_name() == _HANDLER_NAME:
            logger.removeHandler(old)
    handler: logging.Handler = _StderrHandler() if stream is None else logging.StreamHandler(stream)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    return handler


@contextmanager
def timed(
    logger: logging.Logger, message: str, *, unit: str | None = None, level: int = logging.INFO
) -> Iterator[dict[str, Any]]:
    """Log ``message`` with the duration of the ``with`` block as a timing event.

    Parameters
    ----------
    logger : logging.Logger
        Where to log.
    message : str
        What was timed.
    unit : str, optional
        Work unit the block processed.
    level : int
        Log level of the event.

    Yields
    ------
    dict
        Extra fields to attach to the event (fill it inside the block).
    """
    extra: dict[str, Any] = {}
    start = time.perf_counter()
    try:
        yield extra
    finally:
        extra.update(unit=unit, duration=time.perf_counter() - start)
        logger.log(level, message, extra=extra)
