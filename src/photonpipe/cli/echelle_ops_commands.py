"""NRES operations commands, added to ``photonpipe echelle``.

With a broker (``service`` extra): ``post``, ``listen``, ``worker``, ``beat``. Without one:
``watch`` and ``nightly``. Both: ``status`` and ``setup-site``.
"""

from __future__ import annotations

import signal
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from photonpipe.cli.common import CliContext, pass_cli
from photonpipe.cli.echelle_commands import echelle_group
from photonpipe.errors import EXIT_FAILED

_BROKER = click.option(
    "--broker", default=None, help="RabbitMQ URL (default: setting echelleops.broker_url)."
)


def _stop_on_signals() -> threading.Event:
    """Return an event set by SIGTERM or SIGINT (loops end cleanly between messages)."""
    stop = threading.Event()

    def handler(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


@echelle_group.command("post")
@click.argument(
    "paths", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@_BROKER
@pass_cli
def echelle_post(cli_ctx: CliContext, paths: tuple[Path, ...], broker: str | None) -> None:
    """Publish {"path": ...} for each file to the fanout exchange (echelleops.exchange)."""
    from photonpipe.echelle.service import Names, post

    names = Names.from_settings(cli_ctx.settings, broker)
    click.echo(f"posted {post(list(paths), names)} messages to exchange {names.exchange}")


@echelle_group.command("listen")
@_BROKER
@pass_cli
def echelle_listen(cli_ctx: CliContext, broker: str | None) -> None:
    """Consume the fits exchange and submit each raw NRES frame to the reduction task.

    Any message that cannot be decoded, checked or submitted (malformed, not a raw frame of a
    configured instrument) is dead-lettered (QUEUE.dead, reason in the x-photonpipe-reason
    header), recorded in the processed-file table as rejected, and the listener goes on.
    Runs until SIGTERM or Ctrl-C.
    """
    from photonpipe.echelle.service import listen

    stats = listen(cli_ctx.settings, broker_url=broker, stop=_stop_on_signals())
    click.echo(
        f"listener stopped: {stats.submitted} submitted, {stats.rejected} rejected, "
        f"{stats.reconnects} broker reconnections"
    )


@echelle_group.command("worker")
@_BROKER
@click.option(
    "--concurrency",
    type=int,
    default=None,
    help="Worker processes (default: executor.workers, 0 = one per core).",
)
@click.option("--queues", default=None, help="Queues to consume (default: task and periodic).")
@pass_cli
def echelle_worker(
    cli_ctx: CliContext, broker: str | None, concurrency: int | None, queues: str | None
) -> None:
    """Run a Celery worker reducing frames and running the nightly tasks.

    A frame task whose retries are spent, or whose arguments are malformed, is dead-lettered
    (TASK_QUEUE.dead, reason in the x-photonpipe-reason header) and recorded; never requeued.
    """
    from photonpipe.cli.platform_commands import open_database
    from photonpipe.echelle.operations import default_workers
    from photonpipe.echelle.service import Names, declare_dead_letters, make_app, worker_argv

    settings = cli_ctx.settings
    database = open_database(settings)
    app = make_app(settings, broker, database)
    declare_dead_letters(Names.from_settings(settings, broker))
    argv = worker_argv(
        settings, concurrency or default_workers(settings), queues.split(",") if queues else None
    )
    app.worker_main(argv)


@echelle_group.command("beat")
@_BROKER
@click.option(
    "--schedule-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("echelle-beat-schedule"),
    show_default=True,
    help="Where beat keeps the last run times.",
)
@pass_cli
def echelle_beat(cli_ctx: CliContext, broker: str | None, schedule_file: Path) -> None:
    """Send the nightly tasks (stacking, trace refinement) to the periodic queue on schedule."""
    from photonpipe.echelle.service import make_app

    app = make_app(cli_ctx.settings, broker)
    for name, entry in sorted(app.conf.beat_schedule.items()):
        click.echo(f"{name}: {entry['schedule']} → queue {entry['options']['queue']}")
    app.Beat(schedule=str(schedule_file), loglevel="INFO").run()


@echelle_group.command("watch")
@click.argument("directory", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--interval", type=float, default=5.0, show_default=True, help="Scan period [s].")
@click.option(
    "--settle",
    type=float,
    default=2.0,
    show_default=True,
    help="A file is processed once unchanged for a scan and this old [s].",
)
@click.option(
    "--marker",
    default=None,
    metavar="SUFFIX",
    help="Also wait for the completion marker FILE+SUFFIX (e.g. .done) written after the copy.",
)
@click.option("--once", is_flag=True, help="Process what is there (unchanged files) and stop.")
@pass_cli
def echelle_watch(
    cli_ctx: CliContext,
    directory: Path,
    interval: float,
    settle: float,
    marker: str | None,
    once: bool,
) -> None:
    """Reduce new raw frames under DIRECTORY as they arrive, without a broker.

    A file is never read while it is being written: only once its size and time stamp held for
    a scan and --settle seconds, and with --marker once its marker exists. Runs the workers'
    per-frame processing on local processes (executor.workers). Until SIGTERM or Ctrl-C.
    """
    if marker is not None and (not marker or "/" in marker or marker in (".", "..")):
        raise click.BadParameter(
            f"{marker!r} is not a file-name suffix such as .done", param_hint="--marker"
        )
    from photonpipe.cli.platform_commands import open_database
    from photonpipe.echelle.operations import OpsContext, default_workers, watch

    settings = cli_ctx.settings
    context = OpsContext.from_settings(settings, open_database(settings))
    stop = _stop_on_signals()
    failed = 0
    for scans, outcomes in enumerate(
        watch(
            context,
            directory,
            workers=default_workers(settings),
            start_method=str(settings["executor.start_method"]),
            interval=interval,
            settle=settle,
            stop=stop,
            marker=marker,
        ),
        start=1,
    ):
        for outcome in outcomes:
            click.echo(
                f"{outcome.status} {outcome.filename}"
                + (f": {outcome.error}" if outcome.error else "")
            )
            failed += outcome.status == "failed"
        # --once: a first scan records sizes, the second processes what did not change.
        if once and scans >= 2:
            stop.set()
    if failed:
        click.get_current_context().exit(EXIT_FAILED)


@echelle_group.command("nightly")
@click.option("--site", required=True, help="Site code (lsc, elp, cpt).")
@click.option(
    "--task",
    type=click.Choice(["stack", "traces", "all"]),
    default="all",
    show_default=True,
    help="stack: BIAS/DARK/FLAT/ARC masters; traces: trace refinement and TRIPLE.",
)
@click.option(
    "--end",
    type=click.DateTime(),
    default=None,
    help="End of the 24-hour window (UTC; default now).",
)
@pass_cli
def echelle_nightly(cli_ctx: CliContext, site: str, task: str, end: datetime | None) -> None:
    """Run the nightly tasks of a site now, without a broker (for cron)."""
    from photonpipe.cli.platform_commands import open_database
    from photonpipe.echelle.operations import NIGHTLY_TASKS, OpsContext, run_nightly

    settings = cli_ctx.settings
    context = OpsContext.from_settings(settings, open_database(settings))
    when = None if end is None else end.replace(tzinfo=UTC)
    made = 0
    for name in NIGHTLY_TASKS if task == "all" else (task,):
        report = run_nightly(context, site, name, when)
        click.echo(report.summary())
        for path in report.masters:
            click.echo(f"  {path}")
        for what, error in sorted(report.errors.items()):
            click.echo(f"  not made {what}: {error}")
        made += len(report.masters)
    if not made:
        click.get_current_context().exit(EXIT_FAILED)


@echelle_group.command("status")
@_BROKER
@click.option("--no-broker", is_flag=True, help="Do not ask the broker for queue lengths.")
@pass_cli
def echelle_status(cli_ctx: CliContext, broker: str | None, no_broker: bool) -> None:
    """Show processed files (done, running, failed by reason), queues, last nightly runs."""
    from photonpipe.cli.platform_commands import open_database
    from photonpipe.echelle.operations import status

    settings = cli_ctx.settings
    summary = status(open_database(settings, read_only=True))
    counts = ", ".join(f"{n} {s}" for s, n in sorted(summary.counts.items())) or "none"
    click.echo(f"processed files: {counts}")
    for reason, n in sorted(summary.failed_by_reason.items(), key=lambda kv: -kv[1]):
        click.echo(f"  failed, {reason}: {n}")
    if not no_broker:
        try:
            from photonpipe.echelle.service import Names, queue_lengths

            lengths = queue_lengths(Names.from_settings(settings, broker))
        except Exception as exc:
            click.echo(f"queued: unknown ({exc})")
        else:
            click.echo("queued: " + ", ".join(f"{q} {n}" for q, n in lengths.items()))
    if not summary.nightly:
        click.echo("nightly: never run")
    for name, run in sorted(summary.nightly.items()):
        click.echo(
            f"nightly {name}: {run['status']} at {run['finished']:%Y-%m-%d %H:%M:%S} UTC "
            f"(window ending {run['window_end']})" + (f": {run['error']}" if run["error"] else "")
        )


@echelle_group.command("setup-site")
@click.option("--site", required=True, help="Site code (lsc, elp, cpt).")
@click.option("--instrument", "instrument_name", required=True, help="Instrument (e.g. nres01).")
@click.option("--camera", required=True, help="Camera (e.g. fl09).")
@pass_cli
def echelle_setup_site(cli_ctx: CliContext, site: str, instrument_name: str, camera: str) -> None:
    """Start reduction for a site: reduced/ tree, instrument configuration, trace, registries.

    Refuses a site whose reduced/ tree exists.
    """
    from photonpipe.echelle.operations import setup_site
    from photonpipe.platform.archive import Archive

    archive = Archive.from_settings(cli_ctx.settings)
    for path in setup_site(archive, site, instrument_name, camera):
        click.echo(archive.relative(path))


def register(cli: click.Group) -> None:
    """Add the operations commands (they live on ``photonpipe echelle``)."""
    if echelle_group.name not in cli.commands:
        cli.add_command(echelle_group)
