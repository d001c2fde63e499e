"""photonpipe: photons to science products for four kinds of spectroscopic data.

See ``docs/`` for the platform and each application. The command-line entry point is
``photonpipe`` (:mod:`photonpipe.cli`); everything it does is available as a Python API.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("photonpipe")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
