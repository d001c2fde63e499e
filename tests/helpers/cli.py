"""Running the command line in the test process and checking its one-line errors."""

from __future__ import annotations

import subprocess

import pytest

from photonpipe.cli.main import main


def in_process(capsys: pytest.CaptureFixture[str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``photonpipe.cli.main.main`` here (much faster than a process per case)."""
    capsys.readouterr()
    code = main(list(args))
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, captured.out, captured.err)


def assert_one_error_line(result: subprocess.CompletedProcess[str], code: int = 2) -> str:
    """The exit code, and stderr being one line ``photonpipe: error: ...``; return the line."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == code, (result.returncode, result.stderr)
    assert len(lines) == 1, f"expected one line on stderr, got:\n{result.stderr}"
    assert lines[0].startswith("photonpipe: error: "), lines[0]
    assert "internal error" not in lines[0]
    return lines[0]
