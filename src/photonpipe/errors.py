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

from pathlib import Path

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


class WorkFailedError(PhotonpipeError):
    """A batch finished but some of its work units failed (their errors are in the ledger)."""


class MissingExtraError(PhotonpipeError, ImportError):
    """A module or feature needs an optional extra (``pip install 'photonpipe[EXTRA]'``).

    Also an :class:`ImportError`, so ``import photonpipe.echelle.service`` without the
    ``service`` extra fails like any missing import, with a message saying what to install.

    Parameters
    ----------
    needed_by : str
        What needs the extra (a module name, a setting, a command).
    extra : str
        The extra to install.
    missing : str
        The module that could not be imported.
    """

    exit_code = EXIT_USAGE

    def __init__(self, needed_by: str, extra: str, missing: str) -> None:
        super().__init__(
            f"{needed_by} needs the {extra!r} extra (no module named {missing!r}): "
            f"pip install 'photonpipe[{extra}]'"
        )
        self.extra = extra
        self.missing = missing
        self.name = missing


def require_extra(extra: str, *modules: str, needed_by: str) -> None:
    """Check that the modules of an optional extra can be imported, without importing them.

    Parameters
    ----------
    extra : str
        Name of the extra in ``pyproject.toml`` (``service``, ``dask``, ...).
    *modules : str
        Top-level modules the extra provides (e.g. ``"celery", "kombu"``).
    needed_by : str
        What needs them, for the message (a module name, ``"executor.backend = 'dask'"``...).

    Raises
    ------
    MissingExtraError
        One of the modules is not installed.
    """
    from importlib.util import find_spec

    for module in modules:
        if find_spec(module) is None:
            raise MissingExtraError(needed_by, extra, module)
