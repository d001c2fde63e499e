"""The documentation pages as the docs tests read them: fenced blocks and the settings they name.

Convention (docs/platform.md, "Documentation that runs"):

* a fenced block whose info string is ``sh`` is run, in order with the page's other ``sh``
  blocks, in one scratch directory per page; it must exit 0;
* ``sh requires=postgres`` (``mysql``, ``amqp``; several joined with ``,``) runs only when
  ``PHOTONPIPE_TEST_POSTGRES_URL`` (…) is set, with ``PHOTONPIPE_DATABASE_URL`` pointing at a
  scratch database on that server (``PHOTONPIPE_ECHELLEOPS_BROKER_URL`` at the broker);
* ``sh ci`` is a command that ``.ci/run`` runs (the README's quick start): the docs test checks
  that ``.ci/run`` contains it instead of running it inside the test suite;
* ``console``, ``text``, ``python`` and unlabelled blocks are not run;
* ``<!-- docs-test: slow -->`` on a line of its own marks the page's test ``slow``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: Server a ``requires=`` block may need → the variable that gives the tests its URL.
REQUIRES = {
    "postgres": "PHOTONPIPE_TEST_POSTGRES_URL",
    "mysql": "PHOTONPIPE_TEST_MYSQL_URL",
    "amqp": "PHOTONPIPE_TEST_AMQP_URL",
}
SLOW_MARK = "<!-- docs-test: slow -->"

_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")


class DocsFormatError(ValueError):
    """A fenced block's info string the docs test does not understand (names page:line)."""


@dataclass(frozen=True)
class Block:
    """One fenced code block of a page."""

    page: Path
    line: int  # of the opening fence, 1-based
    language: str
    text: str
    requires: tuple[str, ...] = ()
    ci: bool = False

    @property
    def where(self) -> str:
        """``page:line`` relative to the repository root."""
        try:
            name = self.page.relative_to(ROOT).as_posix()
        except ValueError:
            name = str(self.page)
        return f"{name}:{self.line}"


@dataclass
class Page:
    """A documentation page and its fenced blocks, in order."""

    path: Path
    text: str
    blocks: list[Block] = field(default_factory=list)

    @property
    def slow(self) -> bool:
        """The page is marked slow (its docs test runs only with ``-m slow``).

        The mark counts on a line of its own, so that a page can mention it.
        """
        return any(line.strip() == SLOW_MARK for line in self.text.splitlines())

    @property
    def shell_blocks(self) -> list[Block]:
        """The ``sh`` blocks (those the docs test runs or checks)."""
        return [b for b in self.blocks if b.language == "sh"]


def pages() -> list[Path]:
    """README.md and docs/*.md, in that order."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _parse_info(info: str, where: str) -> tuple[str, tuple[str, ...], bool]:
    words = info.split()
    language = words[0] if words else ""
    requires: tuple[str, ...] = ()
    ci = False
    if language != "sh":
        return language, requires, ci
    for word in words[1:]:
        key, sep, value = word.partition("=")
        if key == "requires" and sep:
            requires = tuple(v for v in value.split(",") if v)
            unknown = [v for v in requires if v not in REQUIRES]
            if unknown or not requires:
                raise DocsFormatError(
                    f"{where}: requires={value!r}: expected one or more of {sorted(REQUIRES)}"
                )
        elif key == "ci" and not sep:
            ci = True
        else:
            raise DocsFormatError(
                f"{where}: unknown attribute {word!r} of an sh block (known: requires=…, ci)"
            )
    return language, requires, ci


def read_page(path: Path) -> Page:
    """Read a Markdown page and its fenced blocks.

    Raises
    ------
    DocsFormatError
        An ``sh`` block with an unknown attribute, or a fence that is never closed.
    """
    text = path.read_text(encoding="utf-8")
    page = Page(path, text)
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        fence, indent = match["fence"], len(match["indent"])
        start = i + 1
        where = f"{path}:{start}"
        language, requires, ci = _parse_info(match["info"].strip(), where)
        body: list[str] = []
        i += 1
        while i < len(lines):
            closing = lines[i].strip()
            if closing.startswith(fence[0] * len(fence)) and not closing.strip(fence[0]):
                break
            body.append(lines[i][indent:] if lines[i][:indent].isspace() else lines[i].lstrip())
            i += 1
        else:
            raise DocsFormatError(f"{where}: the block is never closed")
        page.blocks.append(Block(path, start, language, "\n".join(body) + "\n", requires, ci))
        i += 1
    return page


# --- settings named in text -------------------------------------------------------------------

#: Words that, before a dot, would be read as a settings section: the registered sections, and
#: the names of the applications and the platform's parts (so that ``lightcurves.step``, a
#: wrong section, is caught too).
SECTION_LIKE = frozenset(
    {
        "archive",
        "database",
        "executor",
        "logging",
        "lightcurve",
        "lightcurves",
        "echelle",
        "echelleops",
        "sky",
        "stellar",
        "service",
    }
)
#: What after a dot makes ``word.word`` a file name, not a setting.
_FILE_SUFFIXES = frozenset(
    [
        "md",
        "py",
        "toml",
        "html",
        "htm",
        "fits",
        "fz",
        "gz",
        "csv",
        "ecsv",
        "json",
        "png",
        "h5",
        "hdf5",
        "parquet",
        "txt",
        "smh",
        "tex",
        "pkl",
        "log",
        "db",
        "cfg",
        "ini",
        "yaml",
        "yml",
        "zip",
        "tar",
        "mako",
    ]
)
_DOTTED = re.compile(r"(?<![\w./$-])([a-z][a-z0-9]*)\.([a-z][a-z0-9_]*)\b(?![.(/\w-])")
_ENV = re.compile(r"\bPHOTONPIPE_([A-Z][A-Z0-9]*)_([A-Z0-9_]+)\b")
#: Not settings: the test suite's and tasks.py's variables, the settings file, the placeholder.
ENV_EXEMPT = ("PHOTONPIPE_TEST_", "PHOTONPIPE_VENV", "PHOTONPIPE_CONFIG", "PHOTONPIPE_SECTION_KEY")


def named_settings(text: str, sections: frozenset[str] | set[str] = SECTION_LIKE) -> set[str]:
    """Settings a text names: ``section.key`` and ``PHOTONPIPE_SECTION_KEY``.

    ``section.key`` counts when ``section`` is one of ``sections`` (the registered sections and
    the words in :data:`SECTION_LIKE`), it is not part of a longer dotted name, a path or a
    call (``photonpipe.sky.settings``, ``docs/sky.md``, ``archive.path(...)``), and ``key`` is
    not a file suffix.
    """
    found = set()
    for match in _DOTTED.finditer(text):
        section, key = match.groups()
        if section in sections and key not in _FILE_SUFFIXES:
            found.add(f"{section}.{key}")
    for match in _ENV.finditer(text):
        if not match.group(0).startswith(ENV_EXEMPT):
            found.add(f"{match.group(1).lower()}.{match.group(2).lower()}")
    return found
