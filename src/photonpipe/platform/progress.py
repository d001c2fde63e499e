"""Feedback on long work: a tqdm bar on a terminal, one summary line otherwise.

Every simulator and every command that can take more than a few seconds reports its progress
through :class:`Progress` (or :func:`track`), so the behaviour is the same everywhere:

* **on a terminal** (``sys.stderr`` is a TTY, or ``enabled=True``): a tqdm bar on stderr,
  counting the items (plates, frames, datasets, lines, work units…), with the current item or
  counts shown after it. While a bar is open, photonpipe's log lines are written above it
  (``tqdm.write``) instead of through it;
* **otherwise** (a pipe, a file, a log collector, or ``enabled=False``): no bar, and when the work
  ends one log line (logger of the caller, level INFO, so ``--log-format json`` makes it a JSON
  event with ``progress_items``, ``progress_total`` and ``duration``):
  ``12:00:08 INFO    echelle simulate nres: 22/22 frames (8.1 s)``.

Work units that run in executor workers are counted as they finish (the bar of
:func:`photonpipe.platform.executor.run_work_units`); items inside a unit are not reported back
across processes.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Any, TypeVar

T = TypeVar("T")

_log = logging.getLogger("photonpipe.platform.progress")


class _Bars:
    """Bars open in this process; log lines are redirected above them while one is open."""

    open = 0
    redirect: contextlib.ExitStack | None = None


def on_terminal() -> bool:
    """Return whether stderr is a terminal (where progress bars are shown by default)."""
    stream = sys.stderr
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError):  # closed or replaced by an object without isatty
        return False


def _plural(unit: str, count: int | float | None) -> str:
    return unit if count == 1 or unit.endswith("s") else unit + "s"


class Progress:
    """Progress of one piece of long work: a bar on a terminal, one summary line otherwise.

    Parameters
    ----------
    total : int, optional
        Items expected (None: unknown).
    description : str
        What is being done, e.g. ``"simulate nres"``; starts the bar and the summary line.
    unit : str
        What an item is, singular (``"frame"``, ``"plate"``, ``"dataset"``).
    enabled : bool, optional
        True: always a bar; False: never a bar (the summary line only); None (default): a bar
        when stderr is a terminal.
    logger : logging.Logger, optional
        Where the summary line goes (default ``photonpipe.platform.progress``); pass the
        application's logger so the line names the application.
    summary : bool
        Log the summary line when there is no bar (False: the caller logs its own).

    Examples
    --------
    >>> with Progress(3, "simulate demo", "frame", enabled=False) as progress:
    ...     for name in ("a", "b", "c"):
    ...         progress.update(1, status=name)
    >>> progress.count
    3
    """

    def __init__(
        self,
        total: int | None,
        description: str,
        unit: str = "item",
        *,
        enabled: bool | None = None,
        logger: logging.Logger | None = None,
        summary: bool = True,
    ) -> None:
        self.total = total
        self.description = description
        self.unit = unit
        self.count = 0
        self.logger = logger or _log
        self.summary = summary
        self.bar_shown = on_terminal() if enabled is None else bool(enabled)
        self._start = time.perf_counter()
        self._closed = False
        self._bar: Any = None
        if self.bar_shown:
            self._open_bar()

    def _open_bar(self) -> None:
        from tqdm import tqdm

        if _Bars.open == 0:
            from tqdm.contrib.logging import (
                _get_first_found_console_logging_handler,
                logging_redirect_tqdm,
            )

            _Bars.redirect = contextlib.ExitStack()
            logger = logging.getLogger("photonpipe")
            # only the command's console handler (logs.configure_logging) is redirected: a
            # library caller without one keeps its own logging untouched
            if _get_first_found_console_logging_handler(logger.handlers) is not None:
                _Bars.redirect.enter_context(logging_redirect_tqdm([logger]))
        _Bars.open += 1
        self._bar = tqdm(
            total=self.total,
            desc=self.description,
            unit=self.unit,
            file=sys.stderr,
            leave=True,
            dynamic_ncols=True,
            mininterval=0.2,
        )

    @property
    def seconds(self) -> float:
        """Time since the work started [s]."""
        return time.perf_counter() - self._start

    def update(self, n: int = 1, *, status: str | None = None) -> None:
        """Count ``n`` more items done; ``status`` (e.g. the item's name) is shown on the bar."""
        self.count += n
        if self._bar is not None:
            if status is not None:
                self._bar.set_postfix_str(status, refresh=False)
            self._bar.update(n)

    def set_status(self, status: str) -> None:
        """Show ``status`` (the item being worked on, or counts) after the bar."""
        if self._bar is not None:
            self._bar.set_postfix_str(status)

    def add_total(self, n: int) -> None:
        """Expect ``n`` more items (when the total is learnt as the work goes)."""
        self.total = (self.total or 0) + n
        if self._bar is not None:
            self._bar.total = self.total
            self._bar.refresh()

    def summary_line(self) -> str:
        """Return the summary line: ``description: count/total units`` (the log adds the time)."""
        done = f"{self.count}" if self.total is None else f"{self.count}/{self.total}"
        shown = self.total if self.total is not None else self.count
        return f"{self.description}: {done} {_plural(self.unit, shown)}"

    def close(self, message: str | None = None, level: int = logging.INFO) -> None:
        """End the work: close the bar, or (no bar) log ``message`` or the summary line.

        ``level`` is the log level of that line.
        """
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
            _Bars.open -= 1
            if _Bars.open == 0 and _Bars.redirect is not None:
                _Bars.redirect.close()
                _Bars.redirect = None
            return
        if self.summary:
            self.logger.log(
                level,
                message or self.summary_line(),
                extra={
                    "progress_items": self.count,
                    "progress_total": self.total,
                    "duration": self.seconds,
                },
            )

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
            return
        # An error is reported on its own line (one line, see cli.main): how far the work got
        # is then detail. After Ctrl-C it tells the user where the re-run will resume.
        interrupted = issubclass(exc_type, KeyboardInterrupt)
        self.close(
            f"{self.summary_line()} (stopped: {exc_type.__name__})",
            logging.INFO if interrupted else logging.DEBUG,
        )


def track(
    items: Iterable[T],
    description: str,
    unit: str = "item",
    *,
    total: int | None = None,
    enabled: bool | None = None,
    logger: logging.Logger | None = None,
    status: Any = None,
) -> Iterator[T]:
    """Yield ``items`` while a :class:`Progress` counts them (each counted once handled).

    Parameters
    ----------
    items : iterable
        The work items.
    description, unit, enabled, logger
        As for :class:`Progress`.
    total : int, optional
        Number of items (default ``len(items)`` when it has one).
    status : callable, optional
        ``status(item) -> str`` shown on the bar while the item is handled.
    """
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with Progress(total, description, unit, enabled=enabled, logger=logger) as progress:
        for item in items:
            if status is not None:
                progress.set_status(str(status(item)))
            yield item
            progress.update(1)
