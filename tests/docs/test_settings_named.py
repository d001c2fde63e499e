"""Every setting named in the docs or in any ``--help`` exists in ``photonpipe config template``."""

from __future__ import annotations

from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from helpers.docs import ROOT, named_settings, pages, read_page
from photonpipe.cli.main import cli

#: Dotted names in the docs that look like settings and are not, with why.
NOT_SETTINGS = {
    "lightcurve.ingest": "a work-unit kind of the ledger",
    "lightcurve.composite": "a work-unit kind of the ledger",
    "echelle.frame": "a work-unit kind of the ledger",
    "echelle.nightly": "a work-unit kind of the ledger",
    "sky.plate": "a work-unit kind of the ledger",
    "archive.rot": "the misspelt setting of the example error message in docs/platform.md",
}


def template_settings() -> set[str]:
    """``section.key`` of every setting ``photonpipe config template`` prints."""
    result = CliRunner().invoke(cli, ["config", "template"])
    assert result.exit_code == 0, result.output
    names, section = set(), None
    for line in result.output.splitlines():
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
        elif line.startswith("# ") and " = " in line and section is not None:
            key = line[2:].split(" = ", 1)[0]
            if key.isidentifier():
                names.add(f"{section}.{key}")
    return names


def _commands(command: click.Command, ctx: click.Context) -> Iterator[click.Context]:
    yield ctx
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from _commands(sub, click.Context(sub, info_name=name, parent=ctx))


def test_template_lists_every_section() -> None:
    sections = {name.split(".")[0] for name in template_settings()}
    assert {
        "archive",
        "database",
        "executor",
        "logging",
        "lightcurve",
        "sky",
        "echelle",
    } <= sections


@pytest.mark.parametrize("path", pages(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_settings_named_in_docs_exist(path: object) -> None:
    page = read_page(path)  # type: ignore[arg-type]
    named = named_settings(page.text) - set(NOT_SETTINGS)
    unknown = sorted(named - template_settings())
    assert not unknown, f"{page.path.name} names settings that do not exist: {unknown}"


def test_settings_named_in_help_exist() -> None:
    known = template_settings()
    unknown = {}
    for ctx in _commands(cli, click.Context(cli, info_name="photonpipe")):
        names = named_settings(ctx.command.get_help(ctx)) - known
        if names:
            unknown[ctx.command_path] = sorted(names)
    assert not unknown, f"--help names settings that do not exist: {unknown}"


def test_named_settings_finds_settings_and_not_file_or_module_names() -> None:
    text = (
        "Set `lightcurve.step` or PHOTONPIPE_EXECUTOR_MAX_TRIES; see docs/sky.md, sky.md, "
        "photonpipe.sky.settings, `archive.path(...)`, PHOTONPIPE_TEST_AMQP_URL and "
        "`--set lightcurves.stepp=3`."
    )
    assert named_settings(text) == {"lightcurve.step", "executor.max_tries", "lightcurves.stepp"}


def test_lightcurve_settings_work_with_any_command() -> None:
    """Settings of an application are known to every command (issue 16: `config show`)."""
    result = CliRunner().invoke(cli, ["--set", "lightcurve.step=3", "config", "show"])
    assert result.exit_code == 0, result.output
    assert any(
        line.split()[:2] == ["lightcurve.step", "3.0"] for line in result.output.splitlines()
    )
