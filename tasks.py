#!/usr/bin/env python3
"""photonpipe's two quick-start commands, needing nothing but Python >= 3.11.

    python3 tasks.py demo [DEMO OPTIONS]    install photonpipe, run `photonpipe demo`
    python3 tasks.py test [PYTEST OPTIONS]  install photonpipe with its test extras, run the
                                            linter, the type checker and the test suite

Both install into the active virtual environment, or create ./.venv when none is active. The
install is repeated only when pyproject.toml changes. `test` runs the default suite (tests
marked `slow` are left out); `test --slow` runs everything. Tests that need PostgreSQL or
MariaDB read PHOTONPIPE_TEST_POSTGRES_URL / PHOTONPIPE_TEST_MYSQL_URL, those that need RabbitMQ
PHOTONPIPE_TEST_AMQP_URL (.ci/run sets them).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
TEST_EXTRAS = "test,dask,postgres,mysql,service"


def fail(message: str) -> None:
    print(f"tasks.py: {message}", file=sys.stderr)
    sys.exit(2)


def environment() -> tuple[Path, Path]:
    """Python of the active virtual environment, or of ./.venv (created if missing)."""
    if sys.version_info < (3, 11):  # noqa: UP036 - runs before anything checks the version
        fail(f"photonpipe needs Python >= 3.11; this is {sys.version.split()[0]}")
    if sys.prefix != sys.base_prefix:
        return Path(sys.executable), Path(sys.prefix)
    venv_dir = ROOT / ".venv"
    python = venv_dir / "bin" / "python"
    if not python.exists():
        print(f"tasks.py: creating virtual environment {venv_dir}", file=sys.stderr)
        venv.EnvBuilder(with_pip=True, clear=True).create(venv_dir)
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
    result = subprocess.run(command, cwd=ROOT, check=False)
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
