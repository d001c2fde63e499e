"""Simulated ingest deliveries: several targets, COS and STIS datasets, some bad files.

For the archive pipeline's demo, tests and benchmark. Each dataset is a
:func:`~photonpipe.lightcurves.simulate.simulate_exposure` exposure (its event files and x1d; the
truth ECSVs stay in a separate directory), and :func:`spoil` turns an event file into one that
fails a chosen quality check.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits

from photonpipe.lightcurves.models import BAD_DATA_REASONS
from photonpipe.lightcurves.simulate import Exposure, Variability, simulate_exposure
from photonpipe.platform.archive import atomic_output


def spoil(path: str | os.PathLike[str], reason: str) -> None:
    """Rewrite an event file so that it fails the ingest check called ``reason``.

    ``No events`` empties EVENTS; ``Bad EXPFLAG`` sets EXPFLAG = INTERRUPTED; ``Non-linear
    time`` reverses TIME; ``Singular event`` keeps one event; ``Short exposure`` sets EXPTIME =
    0.5 s; ``Bad TARGNAME`` writes a 300-character TARGNAME (FITS long-string cards);
    ``Unreadable file`` truncates the file to half its bytes.
    """
    path = Path(path)
    if reason not in BAD_DATA_REASONS:
        raise ValueError(f"unknown bad-data reason {reason!r}; one of {BAD_DATA_REASONS}")
    if reason == "Unreadable file":
        data = path.read_bytes()
        with atomic_output(path) as temporary:
            temporary.write_bytes(data[: len(data) // 2])
        return
    with fits.open(path, memmap=False) as hdul:
        hdul.readall()
        events = hdul["EVENTS"]
        if reason == "No events":
            hdul["EVENTS"] = fits.BinTableHDU(events.data[:0], header=events.header, name="EVENTS")
        elif reason == "Bad EXPFLAG":
            events.header["EXPFLAG"] = "INTERRUPTED"
        elif reason == "Non-linear time":
            events.data["TIME"] = np.ascontiguousarray(events.data["TIME"][::-1])
        elif reason == "Singular event":
            hdul["EVENTS"] = fits.BinTableHDU(events.data[:1], header=events.header, name="EVENTS")
        elif reason == "Bad TARGNAME":
            hdul[0].header["TARGNAME"] = "LONG-" + "X" * 295
        else:  # Short exposure
            events.header["EXPTIME"] = 0.5
        with atomic_output(path) as temporary:
            hdul.writeto(temporary)


@dataclass(frozen=True)
class DeliveredDataset:
    """One simulated dataset of a delivery.

    Attributes
    ----------
    rootname, mode, target : str
        HST rootname, observing mode (``G130M``, ``G185M``, ``G140L``, ``E140M``), TARGNAME.
    expstart : float
        Exposure start [MJD].
    bad : str or None
        The ``bad_data`` reason its event file was spoiled for, or None for a good dataset.
    files : tuple of Path
        Files written into the ingest directory.
    truth : Path
        Truth ECSV (outside the ingest directory).
    """

    rootname: str
    mode: str
    target: str
    expstart: float
    bad: str | None
    files: tuple[Path, ...]
    truth: Path


def deliver(
    inbox: str | os.PathLike[str],
    truth_dir: str | os.PathLike[str],
    plan: Sequence[tuple[str, str, str, float, str | None]],
    *,
    seed: int = 1,
    exptime: float = 300.0,
    events: int | None = 3000,
    variability: Variability | None = None,
) -> list[DeliveredDataset]:
    """Simulate datasets into an ingest directory.

    Parameters
    ----------
    inbox : path-like
        Ingest directory (created).
    truth_dir : path-like
        Where the truth ECSVs go (not the ingest directory).
    plan : sequence of (rootname, mode, target, expstart, bad)
        One entry per dataset; ``bad`` is a ``bad_data`` reason or None.
    seed : int
        Random seed.
    exptime : float
        Exposure length [s] (short exposures keep tests and the benchmark fast).
    events : int, optional
        Approximate source events per dataset (None: the simulator's default flux).
    variability : Variability, optional
        Injected light curve (default constant).
    """
    from photonpipe.lightcurves.simulate import flux_for_events

    inbox, truth_dir = Path(inbox), Path(truth_dir)
    inbox.mkdir(parents=True, exist_ok=True)
    truth_dir.mkdir(parents=True, exist_ok=True)
    delivered = []
    for rootname, mode, target, expstart, bad in plan:
        exposure = Exposure(
            rootname,
            mode=mode,
            target=target,
            expstart=expstart,
            exptime=exptime,
            flux=flux_for_events(mode, events, exptime) if events else 1.0e-14,
            variability=variability or Variability("constant"),
            gaps=((exptime * 0.35, exptime * 0.4),),
            bad_time=None,
            burst=None,
        )
        simulated = simulate_exposure(exposure, truth_dir, seed=seed)
        files = []
        for path in simulated.files:
            destination = inbox / path.name
            shutil.move(path, destination)
            files.append(destination)
        if bad is not None:
            event_file = next(p for p in files if "_x1d" not in p.name)
            spoil(event_file, bad)
        delivered.append(
            DeliveredDataset(rootname, mode, target, expstart, bad, tuple(files), simulated.truth)
        )
    return delivered
