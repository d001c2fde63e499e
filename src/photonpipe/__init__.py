"""photonpipe: photons to science products for four kinds of spectroscopic data.

See ``docs/`` for the platform and each application. The command-line entry point is
``photonpipe`` (:mod:`photonpipe.cli`); everything it does is available as a Python API.
"""

from typing import Any

__all__ = ["__version__"]


def __getattr__(name: str) -> Any:
    # The version is read from the installed metadata on first use: reading it costs tens of
    # milliseconds, which `photonpipe --help` should not pay.
    if name != "__version__":
        raise AttributeError(f"module 'photonpipe' has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        value = version("photonpipe")
    except PackageNotFoundError:  # running from a source tree that was not installed
        value = "0+unknown"
    globals()["__version__"] = value
    return value
