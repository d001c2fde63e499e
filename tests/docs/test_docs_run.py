"""Every ``sh`` block of README.md and docs/*.md runs as written (convention: helpers/docs.py).

One test per page: its ``sh`` blocks run in order in one scratch directory, each with
``bash -e -o pipefail``, with the ``photonpipe`` of this test environment first on the PATH and
no ``PHOTONPIPE_*`` setting from the developer's environment. A block that exits non-zero
fails the test with the page and line, the block, and its output.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from helpers.docs import REQUIRES, ROOT, Block, DocsFormatError, pages, read_page

BLOCK_TIMEOUT = 900  # s; a docs example should take seconds
OUTPUT_SHOWN = 80  # last lines of a failed block's output shown


def _page_params() -> list[object]:
    params = []
    for path in pages():
        page = read_page(path)
        marks = [pytest.mark.slow] if page.slow else []
        params.append(pytest.param(path, marks=marks, id=path.relative_to(ROOT).as_posix()))
    return params


def _environment(scratch: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PHOTONPIPE_", "PYTHON", "VIRTUAL_ENV"))
    }
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = sys.prefix
    env["MPLCONFIGDIR"] = str(scratch / ".matplotlib")
    env["COLUMNS"] = "100"
    return env


class _Servers:
    """Scratch databases (and the broker URL) for ``requires=`` blocks, made on first use."""

    def __init__(self) -> None:
        self.urls: dict[str, str] = {}
        self._made: list[tuple[str, str, str]] = []  # (admin URL, dialect, database name)

    def environment(self, block: Block) -> dict[str, str]:
        env = {}
        for server in block.requires:
            if server == "amqp":
                env["PHOTONPIPE_ECHELLEOPS_BROKER_URL"] = os.environ[REQUIRES[server]]
            else:
                env["PHOTONPIPE_DATABASE_URL"] = self._database(server)
        return env

    def _database(self, server: str) -> str:
        if server not in self.urls:
            admin = os.environ[REQUIRES[server]]
            name = f"pp_docs_{uuid.uuid4().hex[:12]}"
            engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
            with engine.connect() as conn:
                conn.execute(sa.text(f"CREATE DATABASE {name}"))
            engine.dispose()
            self._made.append((admin, make_url(admin).get_dialect().name, name))
            self.urls[server] = make_url(admin).set(database=name).render_as_string(False)
        return self.urls[server]

    def drop(self) -> None:
        for admin, dialect, name in self._made:
            engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
            force = " WITH (FORCE)" if dialect == "postgresql" else ""
            with engine.connect() as conn:
                conn.execute(sa.text(f"DROP DATABASE {name}{force}"))
            engine.dispose()


@pytest.fixture
def servers() -> Iterator[_Servers]:
    made = _Servers()
    yield made
    made.drop()


def _failure(block: Block, code: int | str, output: str) -> str:
    lines = output.rstrip().splitlines()
    shown = "\n".join(lines[-OUTPUT_SHOWN:])
    cut = f"(last {OUTPUT_SHOWN} of {len(lines)} lines)\n" if len(lines) > OUTPUT_SHOWN else ""
    return (
        f"{block.where}: this sh block {code}\n"
        f"--- block ---\n{block.text.rstrip()}\n"
        f"--- output {cut}---\n{shown}\n--- end of {block.where} ---"
    )


def run_block(block: Block, scratch: Path, env: dict[str, str]) -> None:
    """Run one block in ``scratch``; fail the test with everything needed to see why."""
    try:
        result = subprocess.run(
            ["bash", "--noprofile", "--norc", "-e", "-o", "pipefail", "-c", block.text],
            cwd=scratch,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=BLOCK_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        output = exc.output.decode() if isinstance(exc.output, bytes) else (exc.output or "")
        pytest.fail(_failure(block, f"did not finish in {BLOCK_TIMEOUT} s", output))
    if result.returncode != 0:
        pytest.fail(_failure(block, f"exited {result.returncode}", result.stdout))


def _ci_commands() -> str:
    return (ROOT / ".ci" / "run").read_text()


@pytest.mark.parametrize("path", _page_params())
def test_page_runs_as_written(path: Path, tmp_path: Path, servers: _Servers) -> None:
    page = read_page(path)
    scratch = tmp_path / path.stem
    scratch.mkdir()
    env = _environment(scratch)
    skipped = []
    for block in page.shell_blocks:
        if block.ci:
            for line in block.text.splitlines():
                command = line.split("#", 1)[0].strip()
                assert not command or command in _ci_commands(), (
                    f"{block.where}: {command!r} is marked `sh ci` but .ci/run does not run it"
                )
            continue
        missing = [REQUIRES[s] for s in block.requires if not os.environ.get(REQUIRES[s])]
        if missing:
            skipped.append(f"{block.where} (needs {', '.join(missing)})")
            continue
        run_block(block, scratch, {**env, **servers.environment(block)})
    if skipped:
        pytest.skip("blocks not run: " + "; ".join(skipped))


# --- the harness itself -----------------------------------------------------------------------


def _page(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "page.md"
    path.write_text(text)
    return path


def test_blocks_are_read_with_their_attributes(tmp_path: Path) -> None:
    page = read_page(
        _page(
            tmp_path,
            "# t\n\n```sh\necho one\n```\n\n```console\n$ not run\n```\n\n"
            "* item\n\n  ```sh requires=postgres,amqp\n  echo two\n  ```\n\n"
            "```sh ci\npython3 tasks.py demo\n```\n<!-- docs-test: slow -->\n",
        )
    )
    assert [(b.language, b.line) for b in page.blocks] == [("sh", 3), ("console", 7), ("sh", 13),
                                                           ("sh", 17)]  # fmt: skip
    first, _, second, third = page.blocks
    assert first.text == "echo one\n"
    assert second.text == "echo two\n"
    assert second.requires == ("postgres", "amqp")
    assert third.ci
    assert page.slow
    assert first.where.endswith("page.md:3")


@pytest.mark.parametrize(
    ("info", "problem"),
    [("sh requires=oracle", "expected one or more of"), ("sh needs=postgres", "unknown attribute")],
)
def test_unknown_block_attributes_are_errors(tmp_path: Path, info: str, problem: str) -> None:
    with pytest.raises(DocsFormatError, match=problem):
        read_page(_page(tmp_path, f"```{info}\necho\n```\n"))
    with pytest.raises(DocsFormatError, match="never closed"):
        read_page(_page(tmp_path, "```sh\necho\n"))


def test_a_failing_block_is_reported_with_page_line_block_and_output(tmp_path: Path) -> None:
    block = read_page(_page(tmp_path, "x\n```sh\necho hello\nfalse\necho never\n```\n")).blocks[0]
    with pytest.raises(pytest.fail.Exception) as failure:
        run_block(block, tmp_path, _environment(tmp_path))
    message = str(failure.value)
    assert "page.md:2: this sh block exited 1" in message
    assert "echo never" in message  # the block
    assert "hello" in message  # its output
    assert "never\n--- end" not in message  # set -e stopped it at `false`


def test_blocks_run_with_this_photonpipe_and_no_developer_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PHOTONPIPE_ARCHIVE_ROOT", "/nowhere")
    env = _environment(tmp_path)
    block = Block(
        tmp_path / "p.md", 1, "sh", "command -v photonpipe > where\nphotonpipe --version\n"
    )
    run_block(block, tmp_path, env)
    assert Path((tmp_path / "where").read_text().strip()).parent == Path(sys.executable).parent
    assert "PHOTONPIPE_ARCHIVE_ROOT" not in env
