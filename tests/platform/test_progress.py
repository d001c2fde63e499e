"""Feedback on long work: a tqdm bar on a terminal, one summary line otherwise."""

from __future__ import annotations

import fcntl
import logging
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from photonpipe.platform.logs import configure_logging
from photonpipe.platform.progress import Progress, on_terminal, track

log = logging.getLogger("photonpipe.test.progress")


def test_without_a_bar_one_summary_line(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.INFO, "photonpipe")
    with Progress(3, "simulate test", "frame", enabled=False, logger=log) as progress:
        for name in "abc":
            progress.update(1, status=name)
    records = [r for r in caplog.records if r.name == log.name]
    assert [r.getMessage() for r in records] == ["simulate test: 3/3 frames"]
    assert records[0].progress_items == 3  # type: ignore[attr-defined]
    assert records[0].progress_total == 3  # type: ignore[attr-defined]
    assert records[0].duration >= 0.0  # type: ignore[attr-defined]
    assert capsys.readouterr().err == ""  # no bar


def test_with_a_bar_no_summary_line(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.INFO, "photonpipe")
    items = list(track(range(5), "measure test", "line", enabled=True, logger=log))
    assert items == list(range(5))
    err = capsys.readouterr().err
    assert "measure test" in err
    assert "5/5" in err
    assert "100%" in err
    assert not [r for r in caplog.records if r.name == log.name]


def test_default_follows_the_terminal(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "photonpipe")
    assert not on_terminal()  # pytest captures stderr
    with Progress(None, "unknown total", "item", logger=log) as progress:
        progress.update(2)
    assert not progress.bar_shown
    assert [r.getMessage() for r in caplog.records if r.name == log.name] == [
        "unknown total: 2 items"
    ]


def test_an_interrupted_piece_of_work_says_so(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, "photonpipe")

    def stopped(error: type[BaseException]) -> None:
        with Progress(4, "work", "unit", enabled=False, logger=log) as bar:
            bar.update(1)
            raise error("x")

    with pytest.raises(KeyError):
        stopped(KeyError)
    with pytest.raises(KeyboardInterrupt):
        stopped(KeyboardInterrupt)
    # an error has its own line: how far the work got is detail; after Ctrl-C it is news
    assert [(r.getMessage(), r.levelno) for r in caplog.records if r.name == log.name] == [
        ("work: 1/4 units (stopped: KeyError)", logging.DEBUG),
        ("work: 1/4 units (stopped: KeyboardInterrupt)", logging.INFO),
    ]


def test_log_lines_go_above_an_open_bar(capsys: pytest.CaptureFixture[str]) -> None:
    handler = configure_logging("text", "INFO")
    logger = logging.getLogger("photonpipe")
    try:
        with Progress(2, "bar test", "step", enabled=True, logger=log) as progress:
            log.info("a message while the bar is open")
            progress.update(2)
        # the command's handler is back once the bar is closed
        assert handler in logger.handlers
        err = capsys.readouterr().err
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    assert err.count("a message while the bar is open") == 1
    # the message is on a line of its own, not glued to the bar
    assert any(line.endswith("a message while the bar is open") for line in err.splitlines())


def _run_with_stderr_on(terminal: bool, tmp_path: Path, *args: str) -> str:
    """Run ``photonpipe ARGS`` with stderr on a pseudo-terminal or a pipe; return stderr."""
    command = [sys.executable, "-m", "photonpipe", *args]
    env = {**os.environ, "COLUMNS": "120"}
    if not terminal:
        done = subprocess.run(
            command, cwd=tmp_path, capture_output=True, text=True, env=env, check=True
        )
        return done.stderr
    main, secondary = pty.openpty()
    # a terminal of 30 rows × 120 columns (a bare pseudo-terminal reports 0 × 0)
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 120, 0, 0))
    process = subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=secondary, env=env
    )
    os.close(secondary)
    chunks = []
    while True:
        ready, _, _ = select.select([main], [], [], 1.0)
        if ready:
            try:
                data = os.read(main, 4096)
            except OSError:  # the terminal is gone with the process (EIO)
                break
            if not data:
                break
            chunks.append(data)
        elif process.poll() is not None:
            break
    os.close(main)
    assert process.wait(timeout=60) == 0
    return b"".join(chunks).decode(errors="replace")


def test_a_simulator_on_a_terminal_and_in_a_pipe(tmp_path: Path) -> None:
    args = ("simulate", "cos", "--out", "cos", "--seed", "1")
    bar = _run_with_stderr_on(True, tmp_path, *args)
    assert "simulate cos lsim01abq" in bar
    assert "8/8" in bar
    assert "100%|" in bar  # a tqdm bar
    assert "\r" in bar  # redrawn in place
    assert not re.search(r"INFO .*simulate cos lsim01abq: 8/8 steps", bar)
    piped = _run_with_stderr_on(False, tmp_path, *args)
    assert "\r" not in piped
    assert "%|" not in piped
    summary = [line for line in piped.splitlines() if "simulate cos lsim01abq" in line]
    assert len(summary) == 1
    assert re.search(r"INFO +lightcurves simulate cos lsim01abq: 8/8 steps \(\S+ s\)$", summary[0])
