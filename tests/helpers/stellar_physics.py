"""MOOG for the stellar-physics tests: the per-user build, made on first use where possible."""

from __future__ import annotations

import shutil

import pytest

from photonpipe.stellar import moog as moog_module
from photonpipe.stellar.moog import Moog, install_moog


def moog_or_skip() -> Moog:
    """MOOG from the per-user cache, built on first use; the test is skipped where it cannot be."""
    executable = moog_module.installed_moog()
    if executable is None:
        if shutil.which("gfortran") is None:
            pytest.skip(
                "MOOG is not built and gfortran is not installed (apt-get install gfortran)"
            )
        executable = install_moog()
    return Moog(executable)
