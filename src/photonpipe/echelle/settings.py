"""Settings of the echelle application (section ``echelle``)."""

from __future__ import annotations

from photonpipe.platform.config import Option, register_section

register_section(
    "echelle",
    [
        Option(
            "validity_days",
            "float",
            2.0,
            "a master calibration is valid this long either side of its date [days]",
            minimum=0.0,
        ),
        Option("half_width", "int", 6, "extraction aperture half-width [px]", minimum=1),
        Option(
            "x_degree", "int", 2, "wavelength solution: Legendre degree along the order", minimum=1
        ),
        Option(
            "m_degree", "int", 2, "wavelength solution: Legendre degree in order number", minimum=0
        ),
        Option(
            "line_threshold", "float", 20.0, "arc line detection threshold [sigma]", minimum=3.0
        ),
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
    ],
)

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
