"""photonpipe installed with its core dependencies only, as a newcomer's ``pip install`` does.

One fresh virtual environment per test session (no extras, no system site packages), with
photonpipe installed from this source tree as a wheel (so package data that is not declared in
pyproject.toml is missing there too). pip takes the dependencies from its local wheel cache
after the first time, so the environment costs ~30 s.

Every module of photonpipe must import there, except the modules of an optional extra, which
must fail with one line naming the extra to install.
"""

from __future__ import annotations

import json
import os
import subprocess
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: Modules that belong to an optional extra, and the extra.
EXTRA_MODULES = {"photonpipe.echelle.service": "service"}

#: Modules of the extras; none may be importable in the core environment.
EXTRA_PACKAGES = (
    "celery", "kombu", "dask", "distributed", "psycopg", "pymysql", "pytest", "specutils",
    "lightkurve", "pysme", "selenium",
)  # fmt: skip

#: Modules of the web views: core (``photonpipe serve`` works right after the demo).
WEB_MODULES = (
    "photonpipe.web", "photonpipe.web.app", "photonpipe.web.workbench", "photonpipe.web.site",
    "photonpipe.web.lcplots", "photonpipe.web.pages", "photonpipe.web.security",
)  # fmt: skip

_IMPORT_EVERY_MODULE = """
import importlib, json, pkgutil, sys
import photonpipe

outcome = {}
names = ["photonpipe"] + [
    m.name for m in pkgutil.walk_packages(photonpipe.__path__, "photonpipe.", onerror=print)
]
for name in names:
    if name == "photonpipe.__main__" or name == "photonpipe.platform.migrations.env":
        continue  # the command itself, and Alembic's env.py (runs only inside Alembic)
    try:
        importlib.import_module(name)
    except Exception as exc:
        outcome[name] = f"{type(exc).__name__}: {exc}"
    else:
        outcome[name] = None
print(json.dumps({"prefix": sys.prefix, "modules": outcome}))
"""


def _clean_environment(home: Path | None = None) -> dict[str, str]:
    """The test process's environment without virtualenv, Python-path and photonpipe settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PHOTONPIPE_", "PYTHON", "VIRTUAL_ENV", "CONDA"))
    }
    env["PATH"] = "/usr/local/bin:/usr/bin:/bin"
    if home is not None:
        env["HOME"] = str(home)
    return env


@pytest.fixture(scope="session")
def core_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Python of a fresh virtual environment holding photonpipe with no extra."""
    prefix = tmp_path_factory.mktemp("core-venv")
    venv.EnvBuilder(with_pip=True, system_site_packages=False, clear=True).create(prefix)
    python = prefix / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(ROOT)],
        env=_clean_environment(),
        cwd=prefix,
        capture_output=True,
        text=True,
        check=False,
    )
    if install.returncode != 0:
        pytest.fail(f"pip install {ROOT} failed:\n{install.stdout}\n{install.stderr}")
    return python


def _run(python: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(python), *args],
        env=_clean_environment(),
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


def test_core_environment_is_isolated(core_python: Path, tmp_path: Path) -> None:
    probe = (
        "import importlib.util, json, sys; "
        f"print(json.dumps([m for m in {EXTRA_PACKAGES!r} if importlib.util.find_spec(m)]))"
    )
    result = _run(core_python, "-c", probe, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [], "extras' packages leaked into the core environment"
    cfg = (core_python.parent.parent / "pyvenv.cfg").read_text()
    assert "include-system-site-packages = false" in cfg


def test_every_module_imports_with_core_dependencies(core_python: Path, tmp_path: Path) -> None:
    result = _run(core_python, "-c", _IMPORT_EVERY_MODULE, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    assert Path(report["prefix"]) == core_python.parent.parent
    modules: dict[str, str | None] = report["modules"]
    assert len(modules) > 100, "the walk found too few modules"
    assert set(EXTRA_MODULES) <= set(modules), "a module of an extra was not found"
    assert set(WEB_MODULES) <= set(modules), "a module of the web views was not found"
    broken = {
        name: error
        for name, error in modules.items()
        if error is not None and name not in EXTRA_MODULES
    }
    assert not broken, "modules that do not import with the core dependencies:\n" + "\n".join(
        f"  {name}: {error}" for name, error in sorted(broken.items())
    )
    for name, extra in EXTRA_MODULES.items():
        error = modules[name]
        assert error is not None, f"{name} imports without the {extra!r} extra"
        assert error.startswith("MissingExtraError: "), error
        assert "\n" not in error
        assert f"pip install 'photonpipe[{extra}]'" in error


def test_command_of_an_extra_names_the_extra(core_python: Path, tmp_path: Path) -> None:
    """The command works without extras, and a command needing one says which (exit 2)."""
    helped = _run(core_python, "-m", "photonpipe", "--help", cwd=tmp_path)
    assert helped.returncode == 0, helped.stderr
    result = _run(core_python, "-m", "photonpipe", "echelle", "worker", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("photonpipe: error: ")
    assert "pip install 'photonpipe[service]'" in lines[0]
    dask = _run(
        core_python,
        "-c",
        "from photonpipe.sky.storage import spectra_dask; spectra_dask('.', 'b')",
        cwd=tmp_path,
    )
    assert dask.returncode != 0
    assert dask.stderr.strip().splitlines()[-1] == (
        "photonpipe.errors.MissingExtraError: photonpipe.sky.storage.spectra_dask needs the "
        "'dask' extra: pip install 'photonpipe[dask]'"
    )


def test_package_data_and_migrations_are_installed(core_python: Path, tmp_path: Path) -> None:
    """Every file of the source package is in the wheel; the database can be created."""
    source = ROOT / "src" / "photonpipe"
    where = "import photonpipe, pathlib; print(pathlib.Path(photonpipe.__file__).parent)"
    listing = _run(core_python, "-c", where, cwd=tmp_path)
    installed = Path(listing.stdout.strip())
    assert installed != source, "photonpipe was imported from the source tree"

    def files(top: Path) -> set[str]:
        return {
            p.relative_to(top).as_posix()
            for p in top.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and not p.name.startswith(".")
        }

    missing = files(source) - files(installed)
    assert not missing, f"files of src/photonpipe not installed: {sorted(missing)}"
    upgraded = _run(
        core_python, "-m", "photonpipe", "--archive", "arch", "db", "upgrade", cwd=tmp_path
    )
    assert upgraded.returncode == 0, upgraded.stderr
    assert "upgraded (empty) ->" in upgraded.stdout
