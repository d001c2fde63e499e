"""Simulated COS and STIS data for the light-curve tests."""

from __future__ import annotations

from pathlib import Path

from photonpipe.lightcurves.simulate import Exposure, SimulatedDataset, simulate_exposure


def simulate(tmp: Path, exposure: Exposure, seed: int = 7) -> SimulatedDataset:
    return simulate_exposure(exposure, tmp, seed=seed)


def event_files(simulated: SimulatedDataset) -> list[Path]:
    """The event files and x1d (no flat, no truth)."""
    return [p for p in simulated.files if not p.name.endswith("_lfl.fits")]


def flat_of(simulated: SimulatedDataset) -> Path | None:
    flats = [p for p in simulated.files if p.name.endswith("_lfl.fits")]
    return flats[0] if flats else None
