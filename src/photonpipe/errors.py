"""Exceptions raised by photonpipe.

Every error that photonpipe raises on purpose is a subclass of :class:`PhotonpipeError`. Each
carries the process exit code the command-line interface uses for it and a one-line message
that names the file, key or URL at fault, so that a user (or a batch ledger) can tell exactly
what went wrong without a traceback.

Exit codes follow the convention of the ``photonpipe`` command:

* 0 -- everything succeeded;
* 1 -- some work failed (a batch recorded failed work units, a step could not be done);
* 2 -- usage, configuration or input error (bad flag, bad settings, unreachable database,
  an unusable archive, an input file that is missing or not what it should be, a missing
  optional extra);
* 130 -- interrupted.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class PhotonpipeError(Exception):
    """Base class of every error photonpipe raises on purpose.

    Parameters
    ----------
    message : str
        One line saying what is wrong, naming the file, key or URL concerned.
    """

    exit_code: int = EXIT_FAILED

    def __init__(self, message: str) -> None:
        if "\n" in message or "\r" in message:  # e.g. a library's multi-line reason quoted
            message = " ".join(part.strip() for part in message.splitlines() if part.strip())
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(PhotonpipeError):
    """A setting is unknown, malformed or has a value of the wrong type.

    Parameters
    ----------
    message : str
        What is wrong.
    source : str, optional
        Where the offending value came from (a file path, an environment variable or a flag).
    """

    exit_code = EXIT_USAGE

    def __init__(self, message: str, source: str | None = None) -> None:
        super().__init__(f"{source}: {message}" if source else message)
        self.source = source


class DatabaseError(PhotonpipeError):
    """The database cannot be reached, or its schema cannot be brought up to date."""

    exit_code = EXIT_USAGE


class ArchiveError(PhotonpipeError):
    """The archive root or a path inside it cannot be used (unwritable, missing, not a dir)."""

    exit_code = EXIT_USAGE


class PathConfinementError(ArchiveError):
    """A path would lead outside the archive root (``..``, absolute path, symlink escape)."""


class InputFileError(PhotonpipeError):
    """An input file is unreadable or not what it should be.

    Parameters
    ----------
    path : str or pathlib.Path
        The file at fault.
    problem : str
        What is wrong with it, in a few words (e.g. ``"missing EVENTS extension"``). This is
        the reason batch steps record in their ``bad_data`` table or ledger.
    """

    exit_code = EXIT_USAGE

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def require_extra(extra: str, *modules: str, needed_by: str) -> None:
    """Check that the modules of an optional extra are installed, without importing them.

    For a module that belongs to an extra as a whole (``photonpipe.echelle.service``), at its
    top: importing it without the extra then fails at once with one line naming the extra.

    Parameters
    ----------
    extra : str
        Name of the extra in ``pyproject.toml`` (``service``, ``dask``, ...).
    *modules : str
        Top-level modules the extra provides (e.g. ``"celery", "kombu"``).
    needed_by : str
        What needs them, for the message (a module or function name).

    Raises
    ------
    MissingExtraError
        One of the modules is not installed.
    """
    import sys
    from importlib.util import find_spec

    def installed(module: str) -> bool:
        if module in sys.modules:  # imported already (find_spec refuses some of those)
            return sys.modules[module] is not None
        return find_spec(module) is not None

    if not all(installed(module) for module in modules):
        raise MissingExtraError(needed_by, extra)


class WorkFailedError(PhotonpipeError):
    """A batch finished but some of its work units failed (their errors are in the ledger)."""


class MissingExtraError(PhotonpipeError, ImportError):
    """A feature needs an optional dependency that is not installed; names the extra.

    Parameters
    ----------
    feature : str
        What the user asked for (e.g. ``"LightCurve.to_lightkurve"``).
    extra : str
        The photonpipe extra that installs the dependency (``pip install 'photonpipe[extra]'``).
    """

    exit_code = EXIT_USAGE

    def __init__(self, feature: str, extra: str) -> None:
        super().__init__(f"{feature} needs the {extra!r} extra: pip install 'photonpipe[{extra}]'")
        self.extra = extra


def import_extra(module: str, extra: str, feature: str) -> ModuleType:
    """Import an optional dependency, or raise :class:`MissingExtraError` naming its extra.

    Parameters
    ----------
    module : str
        Module to import (e.g. ``"specutils"``).
    extra : str
        The photonpipe extra that provides it.
    feature : str
        What needs it, for the message.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is not None and exc.name.partition(".")[0] != module.partition(".")[0]:
            raise  # the package is there but one of its own dependencies is broken
        raise MissingExtraError(feature, extra) from None
