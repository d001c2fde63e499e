"""Settings of the echelle application: sections ``echelle`` and ``echelleops``, the night's steps.

The order of a night's steps is data, here: :data:`NIGHT_STEPS` for ``photonpipe echelle night``
and :data:`NIGHTLY_STEPS` for the nightly tasks (``photonpipe echelle nightly`` and the Celery
beat). Each step names a stage of :mod:`photonpipe.echelle.stages`; one runner
(:func:`photonpipe.echelle.stages.run_steps`) runs them in order over one night's frames.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from photonpipe.platform.config import Option, register_section

#: The ``echelle`` section: the reduction parameters (their defaults are :class:`Options`').
ECHELLE_OPTIONS = (
    Option(
        "validity_days",
        "float",
        2.0,
        "a master calibration is valid this long either side of its date [days]",
        minimum=0.0,
    ),
    Option("half_width", "int", 6, "extraction aperture half-width [px]", minimum=1),
    Option("x_degree", "int", 2, "wavelength solution: Legendre degree along the order", minimum=1),
    Option("m_degree", "int", 2, "wavelength solution: Legendre degree in order number", minimum=0),
    Option("line_threshold", "float", 20.0, "arc line detection threshold [sigma]", minimum=3.0),
    Option(
        "drift_threshold",
        "float",
        10.0,
        "science frames: Th-Ar line detection threshold of the drift measurement [sigma]",
        minimum=3.0,
    ),
    Option(
        "drift_min_lines",
        "int",
        10,
        "science frames: fewest Th-Ar lines for a drift correction",
        minimum=1,
    ),
    Option(
        "blind_trace",
        "bool",
        False,
        "night/trace-refine: find the traces blind on the flats instead of starting from the"
        " site's hand trace",
    ),
)
register_section("echelle", ECHELLE_OPTIONS)
_DEFAULTS = {option.key: option.default for option in ECHELLE_OPTIONS}


@dataclass
class Options:
    """Reduction parameters (settings section ``echelle``; defaults from its declarations)."""

    validity_days: float = float(_DEFAULTS["validity_days"])
    half_width: int = int(_DEFAULTS["half_width"])
    x_degree: int = int(_DEFAULTS["x_degree"])
    m_degree: int = int(_DEFAULTS["m_degree"])
    line_threshold: float = float(_DEFAULTS["line_threshold"])
    blind_trace: bool = bool(_DEFAULTS["blind_trace"])
    drift_threshold: float = float(_DEFAULTS["drift_threshold"])
    drift_min_lines: int = int(_DEFAULTS["drift_min_lines"])

    @classmethod
    def from_settings(cls, settings: Any | None) -> Options:
        """Read the ``echelle`` settings section.

        Defaults without settings, or with settings loaded before the section was registered.
        """
        if settings is None:
            return cls()
        try:
            settings["echelle.validity_days"]
        except KeyError:
            return cls()
        values = {f.name: settings[f"echelle.{f.name}"] for f in fields(cls)}
        return cls(**{f.name: type(getattr(cls, f.name))(values[f.name]) for f in fields(cls)})


@dataclass(frozen=True)
class Step:
    """One step of a night: a stage of :mod:`photonpipe.echelle.stages` and how it is reported.

    Attributes
    ----------
    stage : str
        Stage class name in :data:`photonpipe.echelle.stages.STAGES`.
    argument : str, optional
        The stage's argument (the calibration type of ``StackMasters``).
    label : str, optional
        Key of the step's failure in the report; ``None``: a failure is not caught here but
        stops the night (the step records its frames' failures itself).
    needs : str, optional
        Label of an earlier step that must have succeeded in this run, else the step is left out.
    """

    stage: str
    argument: str | None = None
    label: str | None = None
    needs: str | None = None


#: ``photonpipe echelle night``: check → BIAS → DARK → FLAT → traces → ARC → TRIPLE → science → RVs.
NIGHT_STEPS: tuple[Step, ...] = (
    Step("CheckFrames"),
    Step("StackMasters", "BIAS", label="BIAS stack"),
    Step("StackMasters", "DARK", label="DARK stack"),
    Step("StackMasters", "FLAT", label="FLAT stack"),
    Step("TraceFlats", label="traces"),
    Step("StackMasters", "ARC", label="ARC stack"),
    Step("SolveTriple", label="TRIPLE"),
    Step("ReduceScience"),
    Step("MeasureRV"),
)

#: The nightly tasks over the 24 h before their time: ``stack`` (masters, then the TRIPLE from
#: the new arcs) and ``traces`` (traces refined on the window's newest flats, then the TRIPLE).
NIGHTLY_STEPS: dict[str, tuple[Step, ...]] = {
    "stack": (
        Step("StackMasters", "BIAS", label="BIAS"),
        Step("StackMasters", "DARK", label="DARK"),
        Step("StackMasters", "FLAT", label="FLAT"),
        Step("StackMasters", "ARC", label="ARC"),
        Step("SolveTriple", label="TRIPLE"),
    ),
    "traces": (
        Step("TraceFlats", label="TRACE"),
        Step("SolveTriple", label="TRIPLE", needs="TRACE"),
    ),
}

register_section(
    "echelleops",
    [
        Option(
            "broker_url",
            "str",
            "amqp://guest:guest@127.0.0.1:5672//",
            "RabbitMQ URL of the listener, the workers and beat",
        ),
        Option("exchange", "str", "fits_files", "fanout exchange new raw files are posted to"),
        Option(
            "listen_queue",
            "str",
            "echelle_fits_files",
            "durable queue the listener binds to the exchange (dead letters: QUEUE.dead)",
        ),
        Option("task_queue", "str", "echelle", "Celery queue of the frame reductions"),
        Option("periodic_queue", "str", "periodic", "Celery queue of the nightly tasks"),
        Option(
            "instruments",
            "str",
            "nres01,nres02,nres03",
            "instruments (TELESCOP) whose frames are reduced, comma-separated",
        ),
        Option(
            "retry_backoff",
            "float",
            60.0,
            "delay before the first retry of a failed frame, doubled each retry [s]",
            minimum=0.0,
        ),
        Option(
            "max_tasks_per_child",
            "int",
            200,
            "tasks a worker process runs before it is replaced",
            minimum=1,
        ),
        Option(
            "stack_schedule",
            "str",
            "lsc=30 13 * * *; elp=30 16 * * *; cpt=30 8 * * *",
            "per site, crontab (UTC) of the nightly BIAS/DARK/FLAT/ARC stacking",
        ),
        Option(
            "trace_schedule",
            "str",
            "lsc=0 14 * * *; elp=0 17 * * *; cpt=0 9 * * *",
            "per site, crontab (UTC) of the trace refinement from last night's flats",
        ),
        Option(
            "reduction",
            "str",
            "photonpipe.echelle.pipeline:reduce_frame_unit",
            "per-frame function (module:function) the workers run; change only for benchmarks",
        ),
        Option(
            "queue_report_interval",
            "float",
            10.0,
            "the listener logs the task queue length this often [s]",
            minimum=0.1,
        ),
    ],
)
