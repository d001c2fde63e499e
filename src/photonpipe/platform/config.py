"""Settings: defaults < ``photonpipe.toml`` < ``PHOTONPIPE_*`` environment < command-line flags.

Settings are grouped in sections (``archive``, ``database``, ``executor``, ``logging``; each
application registers its own section with :func:`register_section`). A setting is addressed
as ``section.key``; in a TOML file it is key ``key`` of table ``[section]``; in the environment
it is ``PHOTONPIPE_SECTION_KEY`` (upper case, e.g. ``PHOTONPIPE_ARCHIVE_ROOT``).

Unknown sections, keys and ``PHOTONPIPE_*`` variables are errors, never ignored: a typo in a
setting would otherwise silently fall back to a default. Some environment variables are not
settings and are exempt: ``PHOTONPIPE_CONFIG`` (the settings file to read), ``PHOTONPIPE_VENV``
(the virtual environment ``tasks.py`` uses) and the ``PHOTONPIPE_TEST_*`` family read by the
test suite.

Relative paths in a settings file are relative to the directory holding that file; relative
paths from the environment or the command line are relative to the working directory.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from photonpipe.errors import ConfigError

Kind = Literal["str", "int", "float", "bool", "path", "mode", "choice"]

CONFIG_FILENAME = "photonpipe.toml"
ENV_PREFIX = "PHOTONPIPE_"
ENV_CONFIG_FILE = "PHOTONPIPE_CONFIG"
#: Variables read by the test suite and by tasks.py (the virtual environment to use).
ENV_EXEMPT_PREFIXES = ("PHOTONPIPE_TEST_", "PHOTONPIPE_VENV")

_SECTION_NAME = re.compile(r"^[a-z][a-z0-9]*$")
_KEY_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class Option:
    """Declaration of one setting.

    Parameters
    ----------
    key : str
        Name inside its section (lower case, digits and underscores).
    kind : {"str", "int", "float", "bool", "path", "mode", "choice"}
        Value type. ``path`` values become absolute :class:`pathlib.Path`; ``mode`` values are
        permission bits written in octal (``"0o664"``, ``"664"`` or the TOML integer ``0o664``).
    default : object
        Value used when no source sets it (``None`` only if ``nullable``).
    help : str
        One line describing the setting, with its unit.
    choices : tuple of str, optional
        Allowed values for ``kind="choice"``.
    nullable : bool
        Whether ``None`` (unset) is an allowed value. In TOML and the environment an empty
        string means ``None`` for nullable options.
    minimum : float, optional
        Smallest allowed value for numeric kinds.
    """

    key: str
    kind: Kind
    default: Any
    help: str
    choices: tuple[str, ...] | None = None
    nullable: bool = False
    minimum: float | None = None

    def __post_init__(self) -> None:
        if not _KEY_NAME.match(self.key):
            raise ValueError(f"invalid setting name {self.key!r}")
        if self.kind == "choice" and not self.choices:
            raise ValueError(f"choice setting {self.key!r} needs choices")


_SECTIONS: dict[str, dict[str, Option]] = {}


def register_section(section: str, options: Iterable[Option]) -> None:
    """Declare a section of settings (called by the platform and by each application).

    Parameters
    ----------
    section : str
        Section name: lower-case letters and digits, no underscores (so that environment
        names split unambiguously).
    options : iterable of Option
        The settings of the section.

    Raises
    ------
    ValueError
        If the section name is invalid or already registered with different options.
    """
    if not _SECTION_NAME.match(section):
        raise ValueError(f"invalid section name {section!r}")
    table = {opt.key: opt for opt in options}
    if section in _SECTIONS and _SECTIONS[section] != table:
        raise ValueError(f"settings section {section!r} is already registered")
    _SECTIONS[section] = table


def registered_sections() -> Mapping[str, Mapping[str, Option]]:
    """Return the registered sections and their options (read-only view)."""
    return MappingProxyType({k: MappingProxyType(v) for k, v in _SECTIONS.items()})


register_section(
    "archive",
    [
        Option("root", "path", "./photonpipe-archive", "archive root directory"),
        Option("file_mode", "mode", 0o644, "permission bits for files written (octal)"),
        Option("dir_mode", "mode", 0o755, "permission bits for directories created (octal)"),
        Option("group", "str", None, "group owning archive files and directories", nullable=True),
    ],
)
register_section(
    "database",
    [
        Option(
            "url",
            "str",
            None,
            "SQLAlchemy database URL; unset = SQLite file photonpipe.db in the archive root",
            nullable=True,
        ),
        Option("busy_timeout", "float", 30.0, "SQLite busy timeout [s]", minimum=0),
        Option("echo", "bool", False, "log every SQL statement"),
    ],
)
register_section(
    "executor",
    [
        Option("backend", "choice", "local", "where work units run", choices=("local", "dask")),
        Option("workers", "int", 0, "worker processes; 0 = number of CPU cores", minimum=0),
        Option(
            "scheduler",
            "str",
            None,
            "address of a running Dask scheduler; unset = start a LocalCluster",
            nullable=True,
        ),
        Option("max_tries", "int", 3, "attempts per work unit before it is failed", minimum=1),
        Option(
            "start_method",
            "choice",
            "forkserver",
            "how local worker processes are started",
            choices=("forkserver", "spawn", "fork"),
        ),
        Option(
            "lease",
            "float",
            600.0,
            "seconds without a heartbeat after which another run may take over a unit [s]",
            minimum=1,
        ),
        Option(
            "transient_retries",
            "int",
            6,
            "retries in one run of a unit that met a transient fault (disk full, database "
            "busy, connection lost); never charged to the unit",
            minimum=0,
        ),
        Option(
            "backoff",
            "float",
            0.5,
            "delay before the first retry after a transient fault, doubled for each further "
            "one, at most 30 s [s]",
            minimum=0,
        ),
    ],
)
register_section(
    "logging",
    [
        Option("format", "choice", "text", "log line format", choices=("text", "json")),
        Option(
            "level",
            "choice",
            "INFO",
            "lowest level logged",
            choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        ),
    ],
)


@dataclass(frozen=True)
class Setting:
    """An effective setting: its value and where the value came from."""

    name: str
    value: Any
    source: str
    option: Option


@dataclass
class Settings:
    """Effective settings, each with its source.

    Access a value as ``settings["archive.root"]`` or ``settings.get("archive", "root")``,
    or a whole section as ``settings.section("archive")``.
    """

    _values: dict[str, Setting] = field(default_factory=dict)
    config_file: Path | None = None

    def __getitem__(self, name: str) -> Any:
        try:
            return self._values[name].value
        except KeyError:
            raise KeyError(f"unknown setting {name!r}") from None

    def get(self, section: str, key: str) -> Any:
        """Return the value of ``section.key``."""
        return self[f"{section}.{key}"]

    def source(self, name: str) -> str:
        """Return where the value of setting ``name`` (``section.key``) came from."""
        return self._values[name].source

    def section(self, section: str) -> Mapping[str, Any]:
        """Return the values of one section, keyed by option name."""
        prefix = section + "."
        return MappingProxyType(
            {k[len(prefix) :]: s.value for k, s in self._values.items() if k.startswith(prefix)}
        )

    def __iter__(self) -> Iterator[Setting]:
        return iter(self._values[k] for k in sorted(self._values))

    def replace(self, overrides: Mapping[str, Any], source: str = "override") -> Settings:
        """Return a copy with some values replaced (validated like any other source).

        Parameters
        ----------
        overrides : mapping
            ``section.key`` to value (native type or string).
        source : str
            Label recorded as the source of the new values.
        """
        new = Settings(dict(self._values), self.config_file)
        for name, raw in overrides.items():
            option = _lookup(name, source)
            base = Path.cwd()
            new._values[name] = Setting(
                name, _convert(option, raw, name, source, base), source, option
            )
        return new

    @property
    def database_url(self) -> str:
        """Effective database URL (the SQLite default spelled out)."""
        url = self["database.url"]
        if url:
            return str(url)
        return f"sqlite:///{Path(self['archive.root']) / 'photonpipe.db'}"


def _lookup(name: str, source: str) -> Option:
    section, _, key = name.partition(".")
    if section not in _SECTIONS:
        hint = _suggest(section, _SECTIONS)
        raise ConfigError(f"unknown settings section {section!r}{hint}", source)
    if key not in _SECTIONS[section]:
        hint = _suggest(key, _SECTIONS[section])
        raise ConfigError(f"unknown setting {name!r}{hint}", source)
    return _SECTIONS[section][key]


def _suggest(word: str, known: Iterable[str]) -> str:
    import difflib  # here, not at the top: every command imports this module

    known = sorted(known)
    close = difflib.get_close_matches(word, known, n=1)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f" (known: {', '.join(known)})"


def _convert(option: Option, raw: Any, name: str, source: str, base: Path) -> Any:
    """Check and convert one raw value (native TOML type or string) to the option's type."""
    if raw is None or (isinstance(raw, str) and raw == "" and option.nullable):
        if option.nullable:
            return None
        raise ConfigError(f"setting {name!r} cannot be empty", source)
    kind = option.kind

    def bad(expected: str) -> ConfigError:
        return ConfigError(f"setting {name!r} must be {expected}, got {raw!r}", source)

    if kind in ("str", "choice"):
        if not isinstance(raw, str):
            raise bad("a string")
        if kind == "choice":
            value = raw.upper() if all(c.isupper() for c in option.choices or ()) else raw
            if value not in (option.choices or ()):
                raise bad("one of " + ", ".join(option.choices or ()))
            return value
        return raw
    if kind == "path":
        if not isinstance(raw, str | Path):
            raise bad("a path string")
        path = Path(raw).expanduser()
        return path if path.is_absolute() else (base / path).resolve()
    if kind == "bool":
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.strip().lower() in _TRUE | _FALSE:
            return raw.strip().lower() in _TRUE
        raise bad("true or false")
    if kind == "mode":
        if isinstance(raw, bool):
            raise bad("octal permission bits such as 0o664")
        if isinstance(raw, int):
            mode = raw
        elif isinstance(raw, str) and re.fullmatch(r"(0o)?[0-7]{3,4}", raw.strip()):
            mode = int(raw.strip().removeprefix("0o"), 8)
        else:
            raise bad("octal permission bits such as 0o664")
        if not 0 <= mode <= 0o7777:
            raise bad("octal permission bits such as 0o664")
        return mode
    number: float
    if kind == "int":
        if isinstance(raw, bool):
            raise bad("an integer")
        if isinstance(raw, int):
            number = raw
        elif isinstance(raw, str) and re.fullmatch(r"[+-]?\d+", raw.strip()):
            number = int(raw)
        else:
            raise bad("an integer")
    elif kind == "float":
        if isinstance(raw, bool):
            raise bad("a number")
        try:
            number = float(raw)
        except (TypeError, ValueError):
            raise bad("a number") from None
    else:  # pragma: no cover - guarded by Option
        raise AssertionError(kind)
    if option.minimum is not None and number < option.minimum:
        raise bad(f"at least {option.minimum:g}")
    return number


def find_config_file(
    explicit: str | Path | None = None, env: Mapping[str, str] | None = None
) -> Path | None:
    """Return the settings file to read, or None.

    Parameters
    ----------
    explicit : str or Path, optional
        A file named on the command line (``--config``); it must exist.
    env : mapping, optional
        Environment (default ``os.environ``); ``PHOTONPIPE_CONFIG`` names a file that must exist.

    Returns
    -------
    Path or None
        ``explicit``, else ``$PHOTONPIPE_CONFIG``, else ``./photonpipe.toml`` if it exists.
    """
    env = os.environ if env is None else env
    for candidate, origin in ((explicit, "--config"), (env.get(ENV_CONFIG_FILE), ENV_CONFIG_FILE)):
        if candidate:
            path = Path(candidate).expanduser()
            if not path.is_file():
                raise ConfigError(f"settings file {str(path)!r} does not exist", origin)
            return path.resolve()
    local = Path.cwd() / CONFIG_FILENAME
    return local.resolve() if local.is_file() else None


def load_settings(
    config_file: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Assemble the effective settings from every source.

    Parameters
    ----------
    config_file : str or Path, optional
        Settings file given explicitly (``--config``). Otherwise ``$PHOTONPIPE_CONFIG`` or
        ``./photonpipe.toml`` when present.
    env : mapping, optional
        Environment to read ``PHOTONPIPE_*`` variables from (default ``os.environ``).
    overrides : mapping, optional
        Command-line values, ``section.key`` to value; highest precedence.

    Returns
    -------
    Settings
        Every registered setting with its value and source.

    Raises
    ------
    ConfigError
        Malformed settings file, unknown section/key/variable, or a value of the wrong type;
        the message names the file (with line and column for TOML syntax errors), variable or
        flag at fault.
    """
    env = os.environ if env is None else env
    path = find_config_file(config_file, env)
    values: dict[str, Setting] = {}
    cwd = Path.cwd()
    for section, options in _SECTIONS.items():
        for key, opt in options.items():
            name = f"{section}.{key}"
            values[name] = Setting(
                name, _convert(opt, opt.default, name, "default", cwd), "default", opt
            )

    if path is not None:
        import tomllib

        source = str(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"not valid TOML: {exc}", source) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read settings file: {exc}", source) from None
        for section, table in data.items():
            if not isinstance(table, dict):
                raise ConfigError(f"top-level key {section!r} must be a [section] table", source)
            for key, raw in table.items():
                name = f"{section}.{key}"
                opt = _lookup(name, source)
                value = _convert(opt, raw, name, source, path.parent)
                values[name] = Setting(name, value, source, opt)

    for var in sorted(env):
        if not var.startswith(ENV_PREFIX) or var == ENV_CONFIG_FILE:
            continue
        if var.startswith(ENV_EXEMPT_PREFIXES):
            continue
        section, _, key = var[len(ENV_PREFIX) :].lower().partition("_")
        name = f"{section}.{key}"
        opt = _lookup(name, f"environment variable {var}")
        source = f"env {var}"
        values[name] = Setting(name, _convert(opt, env[var], name, source, cwd), source, opt)

    settings = Settings(values, path)
    if overrides:
        settings = settings.replace(
            {k: v for k, v in overrides.items() if v is not None}, source="command line"
        )
    return settings
