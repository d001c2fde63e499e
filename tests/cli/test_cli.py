"""The `photonpipe` command: exit codes, one-line errors, settings sources, db and demo."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from photonpipe.cli.main import cli, main
from photonpipe.platform.db import Database
from photonpipe.platform.ledger import Ledger, WorkUnit

#: Newest migration shipped (the tests do not depend on which application added it).
HEAD = Database("sqlite://", auto_upgrade=False).head_revision()


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def all_commands(group: object, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix]
    for name, command in getattr(group, "commands", {}).items():
        found.extend(all_commands(command, (*prefix, name)))
    return found


@pytest.mark.parametrize("command", all_commands(cli), ids=lambda c: " ".join(c) or "photonpipe")
def test_help_everywhere(capsys: pytest.CaptureFixture[str], command: tuple[str, ...]) -> None:
    code, out, _ = run(capsys, *command, "--help")
    assert code == 0
    assert out.startswith("Usage: photonpipe")


def test_help_works_with_a_broken_settings_file(capsys: pytest.CaptureFixture[str]) -> None:
    Path("photonpipe.toml").write_text("[archive\n")
    code, _, _ = run(capsys, "db", "status", "--help")
    assert code == 0


def test_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "db", "no-such-command")
    assert code == 2
    assert "No such command 'no-such-command'" in err


def test_config_show_names_every_source(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    Path("photonpipe.toml").write_text("[executor]\nmax_tries = 4\n")
    monkeypatch.setenv("PHOTONPIPE_LOGGING_LEVEL", "WARNING")
    code, out, _ = run(
        capsys,
        "--workers",
        "3",
        "--set",
        "archive.file_mode=0o600",
        "config",
        "show",
        "--format",
        "json",
    )
    assert code == 0
    rows = {r["name"]: (r["value"], r["source"]) for r in json.loads(out)}
    assert rows["executor.max_tries"] == (4, str(Path.cwd() / "photonpipe.toml"))
    assert rows["logging.level"] == ("WARNING", "env PHOTONPIPE_LOGGING_LEVEL")
    assert rows["executor.workers"] == (3, "command line")
    assert rows["archive.file_mode"] == ("0o600", "command line")
    assert rows["executor.backend"] == ("local", "default")
    code, out, _ = run(capsys, "config", "show")
    assert code == 0
    assert "executor.max_tries" in out
    assert "(database in use)" in out


def test_config_template_round_trips(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "config", "template")
    assert code == 0
    # Uncommenting every setting of the template gives a valid file with the defaults.
    setting = re.compile(r"^# [a-z_]+ = ")
    text = "\n".join(
        line[2:] if setting.match(line) else line
        for line in out.splitlines()
        if not line.startswith("#") or setting.match(line)
    )
    Path("photonpipe.toml").write_text(text)
    code, out, err = run(capsys, "config", "show", "--format", "json")
    assert code == 0, err
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["executor.workers"]["value"] == 0
    assert rows["executor.workers"]["source"].endswith("photonpipe.toml")


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("[archive\n", "not valid TOML"),
        ("[archive]\nroots = '/x'\n", "unknown setting 'archive.roots' (did you mean 'root'?)"),
    ],
)
def test_bad_settings_file(capsys: pytest.CaptureFixture[str], toml: str, expected: str) -> None:
    Path("photonpipe.toml").write_text(toml)
    code, out, err = run(capsys, "db", "upgrade")
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"photonpipe: error: {Path.cwd() / 'photonpipe.toml'}: ")
    assert expected in lines[0]
    assert sorted(p.name for p in Path.cwd().iterdir()) == ["photonpipe.toml"]


def test_unknown_environment_setting(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PHOTONPIPE_EXECUTOR_WORKRES", "2")
    code, _, err = run(capsys, "db", "status")
    assert code == 2
    assert "PHOTONPIPE_EXECUTOR_WORKRES" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://postgres:secret@127.0.0.1:1/photonpipe",
        "mysql+pymysql://root:secret@127.0.0.1:1/photonpipe",
    ],
)
def test_unreachable_database(capsys: pytest.CaptureFixture[str], url: str) -> None:
    code, _, err = run(capsys, "--database-url", url, "db", "upgrade")
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("photonpipe: error: cannot connect to database ")
    assert url.replace("secret", "***") in lines[0]
    assert "secret" not in err
    # Nothing was created: the archive root is only made for the default SQLite database.
    assert list(Path.cwd().iterdir()) == []


def test_traceback_only_with_verbose(capsys: pytest.CaptureFixture[str]) -> None:
    url = "postgresql+psycopg://postgres@127.0.0.1:1/x"
    _, _, quiet = run(capsys, "--database-url", url, "db", "status")
    _, _, loud = run(capsys, "-v", "--database-url", url, "db", "status")
    assert "Traceback" not in quiet
    assert "Traceback" in loud


def test_unwritable_archive_root(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    if os.geteuid() == 0:
        root = Path("/sys/photonpipe-archive-test")  # not even root can create this
    else:  # pragma: no cover - CI runs as root
        (tmp_path / "ro").mkdir(mode=0o555)
        root = tmp_path / "ro" / "archive"
    code, _, err = run(capsys, "--archive", str(root), "db", "upgrade")
    assert code == 2  # an unusable archive is a configuration error (was 1 before issue 16)
    assert err.strip() == f"photonpipe: error: cannot create archive root {root}: " + (
        "Operation not permitted" if os.geteuid() == 0 else "Permission denied"
    )
    assert not root.exists()


def test_db_upgrade_status_and_work_failures(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--archive", "arch", "db", "status")
    assert code == 2  # no archive, no database file yet
    code, out, _ = run(capsys, "--archive", "arch", "db", "upgrade")
    assert code == 0
    assert f"upgraded (empty) -> {HEAD}" in out
    code, out, _ = run(capsys, "--archive", "arch", "db", "upgrade")
    assert f"already at {HEAD}" in out
    database = Database(f"sqlite:///{Path('arch').resolve() / 'photonpipe.db'}")
    ledger = Ledger(database, "demo.kind")
    units = [WorkUnit("a"), WorkUnit("b")]
    ledger.claim(ledger.plan(units).todo)
    ledger.record(successes=[(units[0], None)], failures=[(units[1], "InputFileError: b: bad")])
    database.dispose()
    code, out, _ = run(capsys, "--archive", "arch", "db", "status", "--format", "json")
    status = json.loads(out)
    assert status["current"] == status["head"] == HEAD
    assert status["pending"] == []
    assert status["work_units"] == {"demo.kind": {"done": 1, "failed": 1}}
    code, out, _ = run(capsys, "--archive", "arch", "work", "failures")
    assert code == 1
    assert out.strip() == "demo.kind  b  (tries 1): InputFileError: b: bad"


def test_db_downgrade_needs_confirmation(capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "--archive", "arch", "db", "upgrade")
    code, _, _ = run(capsys, "--archive", "arch", "db", "downgrade", "base")
    assert code != 0  # no terminal to confirm on: aborted
    code, out, _ = run(capsys, "--archive", "arch", "db", "downgrade", "base", "--yes")
    assert code == 0
    assert "now at (empty)" in out
    engine = sa.create_engine(f"sqlite:///{Path('arch').resolve() / 'photonpipe.db'}")
    assert "work_unit" not in sa.inspect(engine).get_table_names()
    engine.dispose()


def test_demo(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, err = run(capsys, "demo", "--archive", "demo")
    assert code == 0, err
    index = Path("demo", "index.html").resolve()
    assert f"open {index}" in out
    page = index.read_text()
    assert "<h2>Platform</h2>" in page
    assert str(HEAD) in page
    # A second demo replaces the first (with one application only: the whole demo is tested
    # once above, and by .ci/run in a fresh environment).
    import photonpipe.demo

    steps = photonpipe.demo.demo_steps()
    monkeypatch.setattr(photonpipe.demo, "demo_steps", lambda: steps[:1])
    index.write_text("stale")
    assert run(capsys, "demo", "--archive", "demo")[0] == 0
    assert index.read_text() != "stale"
    assert f"Applications run in this demo: {steps[0][0]}." in index.read_text()
    # A directory that is not a demo archive is never wiped.
    Path("precious").mkdir()
    Path("precious", "data.fits").write_text("x")
    code, _, err = run(capsys, "demo", "--archive", "precious")
    assert code == 2  # refused: a usage error (exit 1 before issue 16 made ArchiveError 2)
    assert "not empty and was not made by photonpipe demo" in err
    assert Path("precious", "data.fits").read_text() == "x"


def test_console_script_and_module_entry_points() -> None:
    for command in (
        [str(Path(sys.executable).with_name("photonpipe")), "--version"],
        [sys.executable, "-m", "photonpipe", "--version"],
    ):
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("photonpipe, version ")


def test_sigterm_is_an_orderly_interruption(tmp_path: Path) -> None:
    """A service manager's SIGTERM ends the command like Ctrl-C: exit 130, one line."""
    archive = tmp_path / "arch"
    subprocess.run(
        [sys.executable, "-m", "photonpipe", "--archive", str(archive), "db", "upgrade"],
        check=True,
        capture_output=True,
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "photonpipe", "--archive", str(archive), "db", "downgrade", "base"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    prompt = proc.stdout.read(len("Revert"))  # waiting at the confirmation prompt
    assert prompt == "Revert"
    proc.terminate()
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert err.strip().splitlines()[-1].startswith("photonpipe: ")
    assert "Traceback" not in err
    # Nothing was reverted.
    database = Database(f"sqlite:///{archive / 'photonpipe.db'}", auto_upgrade=False)
    assert database.current_revision() == HEAD
    database.dispose()
