"""Simulated COS data shared by the light-curve tests (simulated once per module)."""

from __future__ import annotations

import pytest

from helpers.lightcurves import simulate
from photonpipe.lightcurves.simulate import Exposure, SimulatedDataset, Variability, flux_for_events


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


@pytest.fixture(scope="module")
def cos_background_heavy(tmp_path_factory: pytest.TempPathFactory) -> SimulatedDataset:
    """COS FUV with about 40 % of the events uniform detector background, as in real holdouts.

    Most of those events fall outside the boxes, but the background boxes get many: the case
    where the background events' wavelengths (from their detector column) cost the most.
    """
    tmp = tmp_path_factory.mktemp("cos_background_heavy")
    exposure = Exposure(
        "lbkg01abq",
        exptime=1000.0,
        flux=flux_for_events("G130M", 150_000, 1000.0),
        dark_rate=1.0e-5,
        variability=Variability("sinusoid", amplitude=0.2, period=200.0),
    )
    return simulate(tmp, exposure)
