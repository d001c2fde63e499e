"""What ``photonpipe --help`` and the packages import: nothing heavy until a command needs it.

The time itself is measured in ``benchmarks/bench_cli_startup.py``; this checks the cause of
a slow start (an import at module level of astropy, SciPy, SQLAlchemy...) structurally.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("numpy", "astropy", "scipy", "matplotlib", "sqlalchemy", "alembic", "pandas", "pyarrow",
         "h5py", "tqdm")  # fmt: skip

HELPS = (
    ["--help"],
    ["--version"],
    ["config", "--help"],
    ["db", "--help"],
    ["work", "--help"],
    ["demo", "--help"],
    ["lightcurve", "--help"],
    ["lightcurve", "make", "--help"],
    ["lightcurve", "ingest", "--help"],
    ["sky", "--help"],
    ["sky", "build", "--help"],
    ["session", "--help"],
    ["session", "rv", "--help"],
    ["echelle", "--help"],
    ["echelle", "night", "--help"],
    ["simulate", "--help"],
    ["simulate", "nres", "--help"],
    ["config", "template"],
)


def _imported_after(code: str) -> list[str]:
    probe = (
        "import sys\n"
        f"{code}\n"
        f"print(__import__('json').dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return list(json.loads(result.stdout.strip().splitlines()[-1]))


def test_help_imports_nothing_heavy() -> None:
    code = (
        "from photonpipe.cli.main import main\n"
        "import contextlib, io\n"
        f"for args in {[list(h) for h in HELPS]!r}:\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        assert main(args) == 0, args\n"
    )
    assert _imported_after(code) == []


@pytest.mark.parametrize("package", ["lightcurves", "echelle", "sky", "stellar"])
def test_application_packages_export_their_api_lazily(package: str) -> None:
    assert _imported_after(f"import photonpipe.{package}") == []
    module = __import__(f"photonpipe.{package}", fromlist=["__all__"])
    assert module.__all__, f"photonpipe.{package} exports nothing"
    for name in module.__all__:
        value = getattr(module, name)
        assert getattr(value, "__module__", f"photonpipe.{package}").startswith(
            f"photonpipe.{package}"
        ), name
    assert set(module.__all__) <= set(dir(module))


def test_top_level_names_are_the_functions_not_submodules() -> None:
    """``extract``/``ingest`` are both a module and a function; the package gives the function."""
    import photonpipe.lightcurves
    import photonpipe.lightcurves.extract
    import photonpipe.lightcurves.ingest
    from photonpipe.lightcurves import extract, ingest

    assert callable(extract)
    assert callable(ingest)
    assert photonpipe.lightcurves.extract is extract


def test_session_rv_help_names_every_bundled_template() -> None:
    from click.testing import CliRunner

    from photonpipe.cli.main import cli
    from photonpipe.stellar.session import TEMPLATES

    text = " ".join(CliRunner().invoke(cli, ["session", "rv", "--help"]).output.split())
    for name in TEMPLATES:
        assert name in text


def test_session_measure_window_default_is_the_ew_default() -> None:
    from photonpipe.cli.session_commands import _DEFAULT_WINDOW
    from photonpipe.stellar.ew import DEFAULT_OPTIONS

    assert DEFAULT_OPTIONS["window"] == _DEFAULT_WINDOW
