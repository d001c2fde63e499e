"""Simulated COS data shared by the light-curve tests (simulated once per module)."""

from __future__ import annotations

import pytest

from helpers.lightcurves import simulate
from photonpipe.lightcurves.simulate import Exposure, SimulatedDataset, Variability


@pytest.fixture(scope="module")
def cos_constant(tmp_path_factory: pytest.TempPathFactory) -> SimulatedDataset:
    """COS FUV, constant source, 3000 s with GTI gaps, a burst and bad time."""
    tmp = tmp_path_factory.mktemp("cos_constant")
    exposure = Exposure(
        "lcon01abq",
        exptime=3000.0,
        gaps=((420.0, 470.0), (1900.0, 2033.0)),
        variability=Variability("constant"),
    )
    return simulate(tmp, exposure)
