#!/usr/bin/env python3
"""photonpipe's two quick-start commands, needing nothing but Python >= 3.11.

    python3 tasks.py demo [DEMO OPTIONS]    install photonpipe (core dependencies only), run
                                            `photonpipe demo` -> photonpipe-demo/index.html
    python3 tasks.py test [PYTEST OPTIONS]  install photonpipe with its test extras, run the
                                            linter, the type checker, the import contracts
                                            and the test suite

The virtual environment is $PHOTONPIPE_VENV when set (created if missing: CI points it at a
throw-away directory), else the active virtual environment, else ./.venv (created if missing).
It never sees the system's site packages: a virtual environment made with
--system-site-packages is refused. The install is repeated only when pyproject.toml or the
extras change. `test` runs the default suite (tests marked `slow` are left out); `test --slow`
runs everything. Tests that need PostgreSQL or MariaDB read PHOTONPIPE_TEST_POSTGRES_URL /
PHOTONPIPE_TEST_MYSQL_URL, those that need RabbitMQ PHOTONPIPE_TEST_AMQP_URL (.ci/run sets
them). Both commands run from the repository root, whatever the working directory.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
TEST_EXTRAS = "test,dask,postgres,mysql,service"
VENV_VARIABLE = "PHOTONPIPE_VENV"


def fail(message: str) -> None:
    print(f"tasks.py: {message}", file=sys.stderr)
    sys.exit(2)


def _uses_system_site_packages(prefix: Path) -> bool:
    config = prefix / "pyvenv.cfg"
    if not config.is_file():
        return False
    for line in config.read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "include-system-site-packages":
            return value.strip().lower() == "true"
    return False


def _create(venv_dir: Path) -> None:
    print(f"tasks.py: creating virtual environment {venv_dir}", file=sys.stderr)
    venv.EnvBuilder(with_pip=True, clear=True, system_site_packages=False).create(venv_dir)


def environment() -> tuple[Path, Path]:
    """Python and prefix of the virtual environment to use (see the module docstring)."""
    if sys.version_info < (3, 11):  # noqa: UP036 - runs before anything checks the version
        fail(f"photonpipe needs Python >= 3.11; this is {sys.version.split()[0]}")
    chosen = os.environ.get(VENV_VARIABLE)
    if chosen:
        venv_dir = Path(chosen).expanduser().absolute()
        origin = f"${VENV_VARIABLE}"
    elif sys.prefix != sys.base_prefix:
        venv_dir = Path(sys.prefix)
        origin = "the active virtual environment"
    else:
        venv_dir = ROOT / ".venv"
        origin = "./.venv"
    if _uses_system_site_packages(venv_dir):
        fail(
            f"{origin} ({venv_dir}) includes the system site packages, so what photonpipe "
            f"needs would not be checked; use another one (set {VENV_VARIABLE}=DIR or "
            "deactivate it to use ./.venv)"
        )
    python = venv_dir / "bin" / "python"
    if not python.exists():
        if venv_dir.exists() and any(venv_dir.iterdir()) and not (venv_dir / "pyvenv.cfg").exists():
            fail(f"{origin} ({venv_dir}) exists and is not a virtual environment")
        _create(venv_dir)
    return python, venv_dir


def install(python: Path, prefix: Path, extras: str) -> None:
    """pip install -e .[extras] unless this exact install was done already."""
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + extras.encode()).hexdigest()
    stamp = prefix / f".photonpipe-install-{hashlib.sha256(str(ROOT).encode()).hexdigest()[:12]}"
    if stamp.is_file() and stamp.read_text() == digest:
        return
    target = f"{ROOT}[{extras}]" if extras else str(ROOT)
    print(f"tasks.py: installing photonpipe{'[' + extras + ']' if extras else ''}", file=sys.stderr)
    run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--editable",
            target,
        ]
    )
    stamp.write_text(digest)


def run(command: list[str]) -> None:
    # Nothing but the virtual environment may provide packages: no PYTHONPATH from the shell.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    result = subprocess.run(command, cwd=ROOT, env=env, check=False)
    if result.returncode != 0:
        sys.exit(result.returncode)


def demo(args: list[str]) -> None:
    python, prefix = environment()
    install(python, prefix, "")
    run([str(python), "-m", "photonpipe", "demo", *args])


def test(args: list[str]) -> None:
    python, prefix = environment()
    install(python, prefix, TEST_EXTRAS)
    run([str(python), "-m", "ruff", "check", "src", "tests", "benchmarks", "tasks.py"])
    run([str(python), "-m", "ruff", "format", "--check", "src", "tests", "benchmarks", "tasks.py"])
    run([str(python), "-m", "mypy"])
    run([str(prefix / "bin" / "lint-imports")])  # the import contracts in pyproject.toml
    if "--slow" in args:
        args = [a for a in args if a != "--slow"] + ["-m", "slow or not slow"]
    run([str(python), "-m", "pytest", *args])


def main() -> None:
    tasks = {"demo": demo, "test": test}
    if len(sys.argv) < 2 or sys.argv[1] not in tasks:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    tasks[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    main()
