"""tasks.py chooses its virtual environment and never one that sees the system's packages.

(Installing and running the demo and the tests in fresh environments is what ``.ci/run``
does; these tests stop before any install.)
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

from photonpipe.platform.config import load_settings

TASKS = Path(__file__).resolve().parents[1] / "tasks.py"


def _tasks(*args: str, python: str = sys.executable, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PHOTONPIPE_VENV")}
    return subprocess.run(
        [python, str(TASKS), *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_without_a_task_it_prints_its_usage() -> None:
    result = _tasks()
    assert result.returncode == 2
    assert "python3 tasks.py demo" in result.stderr


def test_a_venv_with_system_site_packages_is_refused(tmp_path: Path) -> None:
    leaky = tmp_path / "leaky"
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(leaky)
    result = _tasks("demo", PHOTONPIPE_VENV=str(leaky))
    assert result.returncode == 2
    assert result.stderr.startswith(f"tasks.py: $PHOTONPIPE_VENV ({leaky}) includes the system")
    # The same venv active (its python runs tasks.py): refused too.
    active = _tasks("test", python=str(leaky / "bin" / "python"))
    assert active.returncode == 2
    assert "the active virtual environment" in active.stderr
    assert not list(leaky.glob(".photonpipe-install-*")), "nothing was installed"


def test_a_directory_that_is_not_a_venv_is_refused(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    result = _tasks("demo", PHOTONPIPE_VENV=str(tmp_path))
    assert result.returncode == 2
    assert "exists and is not a virtual environment" in result.stderr
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_photonpipe_venv_is_not_a_setting() -> None:
    settings = load_settings(env={"PHOTONPIPE_VENV": "/tmp/somewhere"})
    assert all(not s.name.startswith("venv.") for s in settings)
