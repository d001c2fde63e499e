"""The echelle pipeline: a night's reduction, and the names of its parts.

A night is an ordered list of small stages (:mod:`photonpipe.echelle.stages`) whose order lives
in one place, :data:`photonpipe.echelle.settings.NIGHT_STEPS`; :func:`reduce_night` builds the
night's :class:`~photonpipe.echelle.stages.NightContext` and runs them. The parts are in their
own modules: calibration records, raw frames, master stacks, traces and the TRIPLE in
:mod:`photonpipe.echelle.calibrations`; science frames and the frame ledger units in
:mod:`photonpipe.echelle.science`. This module re-exports their public names (the setting
``echelleops.reduction`` names ``photonpipe.echelle.pipeline:reduce_frame_unit``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from photonpipe.echelle import instrument
from photonpipe.echelle.calibrations import (
    DEFAULT_VALIDITY,
    MASTER_DIR,
    REDUCED_SUBDIRS,
    FrameInfo,
    NightFrames,
    StackResult,
    best_calibration,
    frame_info,
    log,
    make_traces,
    make_triple,
    raw_files,
    record_calibration,
    reduced_dir,
    require_calibration,
    stack_calibration,
    write_blind_traces,
    write_initial_traces,
)
from photonpipe.echelle.science import (
    KIND,
    master_blaze,
    product_stem,
    read_master,
    reduce_files,
    reduce_frame_unit,
    reduce_science,
)
from photonpipe.echelle.settings import NIGHT_STEPS, Options
from photonpipe.echelle.stages import NightContext, NightVelocity, run_steps
from photonpipe.errors import PhotonpipeError
from photonpipe.platform.archive import Archive
from photonpipe.platform.db import Database
from photonpipe.platform.progress import Progress

__all__ = [
    "DEFAULT_VALIDITY",
    "KIND",
    "MASTER_DIR",
    "REDUCED_SUBDIRS",
    "FrameInfo",
    "NightFrames",
    "NightReport",
    "NightVelocity",
    "Options",
    "StackResult",
    "best_calibration",
    "frame_info",
    "make_traces",
    "make_triple",
    "master_blaze",
    "product_stem",
    "raw_files",
    "read_master",
    "record_calibration",
    "reduce_files",
    "reduce_frame_unit",
    "reduce_night",
    "reduce_science",
    "reduced_dir",
    "require_calibration",
    "stack_calibration",
    "write_blind_traces",
    "write_initial_traces",
]


@dataclass
class NightReport:
    """What :func:`reduce_night` did.

    ``velocities`` holds, per science frame (same keys as ``products``), its RV; ``zeros`` the
    ZERO templates made from the night's frames (:func:`~photonpipe.echelle.rv.night_zeros`);
    ``targets`` the stars added to the registry from ``reduced/csv/targets.csv``.
    """

    masters: list[Path] = field(default_factory=list)
    products: dict[str, dict[str, str]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    velocities: dict[str, NightVelocity] = field(default_factory=dict)
    zeros: list[Path] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, context: NightContext) -> NightReport:
        """Return the report of a night's context after its steps ran."""
        return cls(
            masters=context.made,
            products=context.products,
            failed=context.failed,
            velocities=context.velocities,
            zeros=context.zeros,
            targets=context.targets,
        )

    @property
    def ok(self) -> bool:
        """Return whether nothing failed."""
        return not self.failed

    def summary(self) -> str:
        """Return one line: calibrations made, frames reduced, RVs measured, failures."""
        measured = sum(v.rv_kms is not None for v in self.velocities.values())
        return (
            f"{len(self.masters)} calibration products, {len(self.products)} science frames "
            f"reduced, {measured} RVs, {len(self.failed)} failed"
        )


def reduce_night(
    archive: Archive,
    database: Database,
    site: str,
    instrument_name: str,
    day_obs: str,
    settings: Any | None = None,
    workers: int | None = None,
    progress: bool | None = None,
) -> NightReport:
    """Reduce a night in order: biases → darks → flats → traces → arcs (TRIPLE) → science → RVs.

    The steps and their order are :data:`~photonpipe.echelle.settings.NIGHT_STEPS`; the
    night's raw frames and their headers are read once. Every raw frame is a ledger unit:
    calibration frames are checked (bad ones are recorded and left out of the stacks), science
    frames reduced. A failing stage is reported and the stages that do not need it still run.
    Before the science frames, the stars of the instrument's ``reduced/csv/targets.csv`` that
    the registry lacks are added (:func:`~photonpipe.echelle.rv.register_site_targets`); after
    them, a star observed at least twice with no ZERO gets one made from the night's frames, and
    their RVs measured with it (:func:`~photonpipe.echelle.rv.night_zeros`).

    Parameters
    ----------
    progress : bool, optional
        Progress bars (the night's steps, and the frames of each batch); default: on a
        terminal, otherwise one summary line per batch and one for the night.
    """
    options = Options.from_settings(settings)
    day_obs = day_obs.replace("-", "")
    info = instrument.site_for_instrument(instrument_name)
    if info.site != site:
        raise PhotonpipeError(f"{instrument_name} is at {info.site}, not {site}")
    context = NightContext.for_night(
        archive,
        database,
        info,
        day_obs,
        options,
        settings=settings,
        workers=workers,
        progress=progress,
    )
    description = f"echelle night {site}/{instrument_name} {day_obs}"
    with Progress(len(NIGHT_STEPS), description, "step", enabled=progress, logger=log) as bar:
        run_steps(context, NIGHT_STEPS, bar)
    return NightReport.of(context)
