"""A night's stages and the one runner that runs them in order (the order is data).

A stage is one small unit of a night's work — stack the masters of one type, trace the flats,
solve the TRIPLE, reduce the science frames, measure their RVs — run over one
:class:`NightContext`, which reads the night's frames and their headers once and carries what
the stages made. The order of the stages is not here but in :mod:`photonpipe.echelle.settings`:
``NIGHT_STEPS`` (``photonpipe echelle night``) and ``NIGHTLY_STEPS`` (the nightly tasks).
:func:`run_steps` runs a list of steps: it owns their order, their progress bar and log lines,
and records a failing step under its label while the steps that do not need it go on.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import sqlalchemy as sa
from astropy.io import fits

from photonpipe.echelle import instrument
from photonpipe.echelle.calibrations import (
    NightFrames,
    make_traces,
    make_triple,
    raw_files,
    stack_calibration,
)
from photonpipe.echelle.models import CalibrationRecord
from photonpipe.echelle.rv import night_zeros
from photonpipe.echelle.science import product_stem, reduce_files
from photonpipe.echelle.settings import Options, Step
from photonpipe.echelle.targets import register_site_targets
from photonpipe.errors import PhotonpipeError
from photonpipe.platform.archive import Archive
from photonpipe.platform.db import Database
from photonpipe.platform.progress import Progress

log = logging.getLogger("photonpipe.echelle.stages")


@dataclass
class NightVelocity:
    """The RV of one science frame of a night (from its 1-D product), or why it has none."""

    spectrum: Path
    target: str
    rv_kms: float | None
    error_kms: float | None
    template: str | None
    reason: str | None

    @classmethod
    def read(cls, spectrum: Path) -> NightVelocity:
        """Read the RV keywords of a 1-D product."""
        header = fits.getheader(spectrum)
        rv = header.get("RV")
        return cls(
            spectrum,
            str(header.get("RVTARGET", "unknown")),
            None if rv is None else float(rv),
            None if rv is None else float(header["RVERR"]),
            header.get("ZEROFILE"),
            None if rv is not None else str(header.get("RVFLAG", "no RV")),
        )

    def line(self) -> str:
        """One line: ``HR7913 RV 3.70512 ± 0.00512 km/s`` or ``no RV: reason``."""
        if self.rv_kms is None or self.error_kms is None:
            return f"no RV: {self.reason}"
        return f"{self.target} RV {self.rv_kms:.5f} ± {self.error_kms:.5f} km/s"


@dataclass
class NightContext:
    """One night (or time window) of an instrument: its frames, read once, and what was made.

    Attributes
    ----------
    archive, database
        Where the frames and products are, and the pipeline database.
    info : instrument.Site
        Site, instrument and camera.
    options : Options
        Reduction parameters (settings section ``echelle``).
    night_frames : NightFrames, optional
        The frames with their headers, read once (by :meth:`for_night`, or on the first use of
        :attr:`frames` in a window: a nightly task that stacks nothing reads no frame).
    start, end : datetime, optional
        The time window of a nightly task: masters not made in this run are looked up in it.
    settings, workers, progress
        Passed to the ledger batches (settings ``executor.*``; progress bars on or off).
    report_skipped : bool
        Whether frames a stack leaves out are failures of the run (the nightly tasks: their
        frames are not checked first), or already recorded by the check (a night).
    """

    archive: Archive
    database: Database
    info: instrument.Site
    options: Options
    night_frames: NightFrames | None = None
    start: datetime | None = None
    end: datetime | None = None
    settings: Any | None = None
    workers: int | None = None
    progress: bool | None = None
    report_skipped: bool = False
    #: Stacking window [first − 1 min, last + 1 min] of the frames that passed the check.
    window: tuple[datetime, datetime] | None = None
    checked: bool = False
    #: Masters of each type made in this run (a type stacked and failed: an empty list).
    masters: dict[str, list[Path]] = field(default_factory=dict)
    made: list[Path] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    succeeded: set[str] = field(default_factory=set)
    products: dict[str, dict[str, str]] = field(default_factory=dict)
    velocities: dict[str, NightVelocity] = field(default_factory=dict)
    zeros: list[Path] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)

    @classmethod
    def for_night(
        cls,
        archive: Archive,
        database: Database,
        info: instrument.Site,
        day_obs: str,
        options: Options,
        **kwargs: Any,
    ) -> NightContext:
        """Read the raw frames of one night (``{site}/{instrument}/{day_obs}/raw``), headers once.

        Raises
        ------
        PhotonpipeError
            The night has no raw frames.
        """
        files = raw_files(archive, info.site, info.instrument, day_obs)
        if not files:
            raise PhotonpipeError(
                f"no raw frames in {archive.path(info.site, info.instrument, day_obs, 'raw')}"
            )
        frames = NightFrames.read(files)
        context = cls(archive, database, info, options, frames, **kwargs)
        context.failed.update(frames.unreadable)
        return context

    @classmethod
    def for_window(
        cls,
        archive: Archive,
        database: Database,
        info: instrument.Site,
        start: datetime,
        end: datetime,
        options: Options,
        **kwargs: Any,
    ) -> NightContext:
        """Take the frames that can lie in [start, end] (the nights around it; read on first use).

        The stacks of this context take the frames observed in [start, end].
        """
        context = cls(archive, database, info, options, None, start, end, **kwargs)
        context.window = (start, end)
        return context

    @property
    def frames(self) -> NightFrames:
        """The frames with their headers (read on first use for a window)."""
        if self.night_frames is None:
            if self.start is None or self.end is None:
                raise ValueError("a night context needs its frames or a time window")
            self.night_frames = NightFrames.of_window(
                self.archive, self.info.site, self.info.instrument, self.start, self.end
            )
        return self.night_frames

    def science_frames(self) -> list[Path]:
        """Return the night's science (TARGET) frames."""
        return [i.path for i in self.frames.frames if i.obstype == "TARGET"]

    def masters_of(self, ctype: str) -> list[Path] | None:
        """Masters of a type: made in this run, else the newest recorded in the window.

        ``None`` when this run did not stack the type and has no window to look in.
        """
        if ctype in self.masters:
            return self.masters[ctype]
        if self.start is None or self.end is None:
            return None
        with self.database.session() as session:
            records = list(
                session.scalars(
                    sa.select(CalibrationRecord)
                    .where(
                        CalibrationRecord.instrument == self.info.instrument,
                        CalibrationRecord.type == ctype,
                        CalibrationRecord.is_bad.is_(False),
                        CalibrationRecord.dateobs >= self.start,
                        CalibrationRecord.dateobs <= self.end,
                    )
                    .order_by(CalibrationRecord.dateobs)
                )
            )
            newest = {r.fibres_lit: r.path for r in records}
        return [self.archive.path(p) for _, p in sorted(newest.items())]


# --------------------------------------------------------------------------- stages


class Stage:
    """One step of a night. Subclasses set :attr:`status` and implement :meth:`run`."""

    #: What the progress bar shows while the stage runs.
    status: ClassVar[str] = ""

    def __init__(self, argument: str | None = None) -> None:
        self.argument = argument

    def applies(self, context: NightContext) -> bool:
        """Whether the stage has anything to do (not: left out, not counted as failed)."""
        del context
        return True

    def run(self, context: NightContext) -> None:
        """Do the stage's work on the context (raise :class:`PhotonpipeError` on failure)."""
        raise NotImplementedError


class CheckFrames(Stage):
    """Check the calibration frames through the ledger; the good ones set the stacking window."""

    status = "checking calibration frames"

    def run(self, context: NightContext) -> None:
        """Check the night's calibration frames; bad ones are recorded and left out."""
        infos = context.frames.frames
        calibration_files = [i.path for i in infos if i.ctype is not None]
        checked = reduce_files(
            context.archive,
            context.database,
            calibration_files,
            context.settings,
            context.workers,
            context.progress,
        )
        context.failed.update(checked.failed)
        context.checked = True
        good = [
            i for i in infos if i.ctype is not None and str(i.path.resolve()) not in checked.failed
        ]
        if not good:
            context.failed.setdefault("calibrations", "no usable calibration frames")
            return
        context.window = (
            min(i.dateobs for i in good) - timedelta(minutes=1),
            max(i.dateobs for i in good) + timedelta(minutes=1),
        )


class _Calibration(Stage):
    """A stage that needs calibration frames: left out when the check found none usable."""

    def applies(self, context: NightContext) -> bool:
        """Return whether there is a stacking window (frames that passed the check)."""
        return context.window is not None


class StackMasters(_Calibration):
    """Stack the night's frames of one calibration type (the argument) into masters."""

    @property
    def ctype(self) -> str:
        """The calibration type: BIAS, DARK, FLAT or ARC."""
        if self.argument is None:
            raise ValueError("StackMasters needs a calibration type")
        return self.argument

    @property
    def status(self) -> str:  # type: ignore[override]
        """``BIAS masters`` etc."""
        return f"{self.ctype} masters"

    def run(self, context: NightContext) -> None:
        """Stack with the frames of the context (their headers are not read again)."""
        assert context.window is not None
        context.masters[self.ctype] = []
        result = stack_calibration(
            context.archive,
            context.database,
            site=context.info.site,
            camera=context.info.camera,
            instrument_name=context.info.instrument,
            ctype=self.ctype,
            start=context.window[0],
            end=context.window[1],
            options=context.options,
            frames=context.frames,
        )
        context.masters[self.ctype] = result.masters
        context.made += result.masters
        if context.report_skipped:
            context.failed.update(result.skipped)


class TraceFlats(_Calibration):
    """Refine the traces on the FLAT masters (this run's, else the window's newest)."""

    status = "traces"

    def run(self, context: NightContext) -> None:
        """Trace; nothing to do when this run's FLAT stack made none."""
        flats = context.masters_of("FLAT")
        if flats is None or (not flats and "FLAT" in context.masters):
            return
        if not flats:
            assert context.start is not None
            assert context.end is not None
            raise PhotonpipeError(
                f"no FLAT master of {context.info.instrument} between "
                f"{context.start:%Y-%m-%dT%H:%M} and {context.end:%Y-%m-%dT%H:%M}"
            )
        trace = make_traces(context.archive, context.database, flats, options=context.options)
        context.made.append(trace)


class SolveTriple(_Calibration):
    """The TRIPLE wavelength solution from the ARC masters (this run's, else the window's)."""

    status = "TRIPLE wavelength solution"

    def run(self, context: NightContext) -> None:
        """Solve; nothing to do without arc masters."""
        arcs = context.masters_of("ARC")
        if not arcs:
            return
        context.made.append(make_triple(context.archive, context.database, arcs, context.options))


class ReduceScience(Stage):
    """Register the site's targets, then reduce the science frames through the ledger."""

    status = "science frames"

    def run(self, context: NightContext) -> None:
        """Reduce the night's TARGET frames; each failure is recorded under its frame."""
        science = context.science_frames()
        if not science:
            return
        context.targets = register_site_targets(
            context.archive, context.database, context.info.site, context.info.instrument
        )
        batch = reduce_files(
            context.archive,
            context.database,
            science,
            context.settings,
            context.workers,
            context.progress,
        )
        context.failed.update(batch.failed)
        for key, result in batch.results.items():
            context.products[key] = result["products"]


class MeasureRV(Stage):
    """Make the night's ZEROs of stars seen twice or more, then read every frame's RV."""

    status = "radial velocities"

    def run(self, context: NightContext) -> None:
        """Measure with the night's ZEROs (:func:`~photonpipe.echelle.rv.night_zeros`)."""
        spectra = {
            str(path.resolve()): context.archive.path(
                context.info.site,
                context.info.instrument,
                "reduced",
                "spec",
                f"{product_stem(path)}-1d.fits",
            )
            for path in context.science_frames()
        }
        made = night_zeros(
            context.archive, context.database, [p for p in spectra.values() if p.is_file()]
        )
        context.zeros = made.zeros
        for key, spectrum in spectra.items():
            if spectrum.is_file():
                context.velocities[key] = NightVelocity.read(spectrum)


#: Stage classes by the names the step lists of :mod:`photonpipe.echelle.settings` use.
STAGES: dict[str, type[Stage]] = {
    cls.__name__: cls
    for cls in (CheckFrames, StackMasters, TraceFlats, SolveTriple, ReduceScience, MeasureRV)
}


# --------------------------------------------------------------------------- the runner


def run_steps(context: NightContext, steps: Sequence[Step], bar: Progress | None = None) -> None:
    """Run ``steps`` in order over ``context``: the one place a night's stages are run.

    A step whose stage raises :class:`~photonpipe.errors.PhotonpipeError` is recorded in
    ``context.failed`` under its label and the next steps run; a step without a label lets the
    error through. A step that ``needs`` another runs only when that one succeeded. ``bar``
    (optional) counts one per step and shows the running step.

    Raises
    ------
    PhotonpipeError
        A step names an unknown stage (checked before any step runs), or a step without a
        label failed.
    """
    stages = []
    for step in steps:
        if step.stage not in STAGES:
            raise PhotonpipeError(
                f"unknown echelle stage {step.stage!r} (known: {', '.join(STAGES)})"
            )
        stages.append(STAGES[step.stage](step.argument))
    for step, stage in zip(steps, stages, strict=True):
        wanted = step.needs is None or step.needs in context.succeeded
        if wanted and stage.applies(context):
            if bar is not None:
                bar.set_status(stage.status)
            log.debug("stage %s%s", step.stage, f"({step.argument})" if step.argument else "")
            if step.label is None:
                stage.run(context)
            else:
                try:
                    stage.run(context)
                except PhotonpipeError as exc:
                    context.failed[step.label] = str(exc)
                    log.debug("stage %s failed: %s", step.label, exc)
                else:
                    context.succeeded.add(step.label)
        if bar is not None:
            bar.update(1)
