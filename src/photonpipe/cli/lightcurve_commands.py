"""``photonpipe lightcurve`` and the COS and STIS simulators (``photonpipe simulate``)."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from photonpipe.cli.common import (
    CliContext,
    option_group,
    output_directory_option,
    pass_cli,
    seed_option,
    simulate_group,
)
from photonpipe.errors import EXIT_FAILED

_log = logging.getLogger("photonpipe.lightcurves.cli")

if TYPE_CHECKING:
    from photonpipe.lightcurves.extract import ExtractionParameters


#: An input file option: it must exist and be a file ("is a directory" otherwise).
_INPUT_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


def _parameters(
    cli_ctx: CliContext,
    step: float | None,
    wave_min: float | None,
    wave_max: float | None,
    fluxtab: Path | None,
    tdstab: Path | None,
) -> Any:
    from photonpipe.errors import ConfigError
    from photonpipe.lightcurves.extract import ExtractionParameters
    from photonpipe.lightcurves.settings import parse_windows
    from photonpipe.spectra.barycentric import EphemerisError, ephemeris_label

    settings = cli_ctx.settings
    ephemeris = str(settings["lightcurve.ephemeris"] or "builtin")
    try:
        ephemeris_label(ephemeris)
    except EphemerisError as exc:
        raise ConfigError(f"lightcurve.ephemeris: {exc}") from None
    try:
        return ExtractionParameters(
            step=step if step is not None else float(settings["lightcurve.step"]),
            wave_min=wave_min,
            wave_max=wave_max,
            exclude=parse_windows(str(settings["lightcurve.exclude"] or "")),
            fluxtab=fluxtab,
            tdstab=tdstab,
            ephemeris=ephemeris,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


def _extraction_options(function: Callable[..., None]) -> Callable[..., None]:
    """Add the extraction options; the command receives them as one ``parameters`` argument.

    The command takes ``cli_ctx`` first (``pass_cli`` goes above this decorator), then a keyword
    ``parameters`` (`~photonpipe.lightcurves.extract.ExtractionParameters`) in place of
    ``--step``, ``--wave-min``, ``--wave-max``, ``--fluxtab`` and ``--tdstab``.
    """

    @functools.wraps(function)
    def with_parameters(
        cli_ctx: CliContext,
        *args: Any,
        step: float | None,
        wave_min: float | None,
        wave_max: float | None,
        fluxtab: Path | None,
        tdstab: Path | None,
        **kwargs: Any,
    ) -> None:
        parameters = _parameters(cli_ctx, step, wave_min, wave_max, fluxtab, tdstab)
        function(cli_ctx, *args, parameters=parameters, **kwargs)

    return option_group(
        click.option("--step", type=float, help="bin width [s] (default: setting lightcurve.step)"),
        click.option("--wave-min", type=float, help="band start [Angstrom] (default: data edge)"),
        click.option("--wave-max", type=float, help="band end [Angstrom] (default: data edge)"),
        click.option(
            "--fluxtab",
            type=_INPUT_FILE,
            help="COS FLUXTAB; with --tdstab replaces the x1d sensitivity",
        ),
        click.option(
            "--tdstab",
            type=_INPUT_FILE,
            help="COS TDSTAB (time-dependent sensitivity)",
        ),
        click.option("--no-plot", is_flag=True, help="skip the quicklook PNG"),
    )(with_parameters)


@click.group("lightcurve")
def lightcurve_group() -> None:
    """Light curves from HST COS and STIS TIME-TAG data."""
    import photonpipe.lightcurves.settings  # noqa: F401  (registers the section)


@lightcurve_group.command("make")
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@pass_cli
@_extraction_options
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(),
    show_default=True,
    help="output directory",
)
@click.option(
    "--flat",
    type=_INPUT_FILE,
    help="STIS low-res flat field for tag files (EPSILON = 1/flat)",
)
@click.option(
    "--badpix",
    type=_INPUT_FILE,
    help="STIS low-res bad-pixel image for tag files (DQ)",
)
@click.option(
    "--only-given",
    is_flag=True,
    help="use only FILES, not the other segment, the x1d and the _spt support file beside them",
)
def make_command(
    cli_ctx: CliContext,
    files: tuple[Path, ...],
    *,
    parameters: ExtractionParameters,
    no_plot: bool,
    out: Path,
    flat: Path | None,
    badpix: Path | None,
    only_given: bool,
) -> None:
    """Write {rootname}_curve.fits (and .png) for each dataset in FILES.

    FILES are corrtag (FUV _a/_b pairs), STIS tag, x1d and _spt files; they are grouped by
    rootname. As STScI's lightcurve package does, the other FUV segment, the x1d and the _spt
    support file (HST's orbit, for TIME_BJD_TDB) of each exposure are used too when they lie
    beside a given file (not with --only-given); the files used are printed.
    """
    from photonpipe.lightcurves.dataset import read_datasets, with_companion_files
    from photonpipe.lightcurves.products import make_individual
    from photonpipe.platform.progress import track

    used, added = (list(files), []) if only_given else with_companion_files(files)
    datasets = read_datasets(used, flat=flat, badpix=badpix, support_beside=not only_given)
    for dataset in track(datasets, "lightcurve make", "dataset", logger=_log):
        names = ", ".join(f"{p}{' (found beside)' if p in added else ''}" for p in dataset.inputs)
        click.echo(f"{dataset.rootname}: using {names}")
        product = make_individual(dataset, out, parameters, plot=not no_plot)
        flux = "flux calibrated" if product.curve.is_calibrated else "UNCALIBRATED (no x1d)"
        click.echo(f"{product.path}  {len(product.curve)} bins, {flux}")


@lightcurve_group.command("composite")
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@pass_cli
@_extraction_options
@output_directory_option("output directory", name="out")
def composite_command(
    cli_ctx: CliContext,
    files: tuple[Path, ...],
    *,
    parameters: ExtractionParameters,
    no_plot: bool,
    out: Path,
) -> None:
    """Write one HLSP composite per target and configuration found in FILES."""
    from photonpipe.lightcurves.products import make_composites

    for product in make_composites(files, out, parameters, plot=not no_plot):
        n = len(product.curve.meta.get("datasets", []))
        click.echo(f"{product.path}  {n} datasets, {len(product.curve)} bins")


@lightcurve_group.command("stats")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@pass_cli
def stats_command(cli_ctx: CliContext, file: Path, fmt: str) -> None:
    """Variability statistics and periodogram peaks of a light-curve file."""
    from photonpipe.lightcurves.curve import LightCurve
    from photonpipe.lightcurves.stats import variability_statistics

    threshold = float(cli_ctx.settings["lightcurve.fap_threshold"])
    result = variability_statistics(LightCurve.read(file), threshold=threshold).to_dict()
    if fmt == "json":
        click.echo(json.dumps(result, indent=2))
        return
    for key in (
        "quantity",
        "mean",
        "std",
        "poisson_factor",
        "pearson_r",
        "pearson_p",
        "significant_period",
        "period_verdict",
    ):
        click.echo(f"{key:20s} {result[key]}")
    p = result["periodogram"]
    if p is None:
        click.echo(f"{'period search':20s} {result['period_note']}")
    elif p["peak_period"] is not None:
        click.echo(
            f"{'period search':20s} {p['min_period']:.1f}-{p['max_period']:.1f} s; highest peak "
            f"{p['peak_period']:.6g} s, power {p['power']:.3g} = "
            f"{p['z']:.3g} x continuum, FAP {p['false_alarm_probability']:.3g}"
            + ("  SIGNIFICANT" if p["significant"] else "")
        )


@lightcurve_group.command("plot")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="PNG to write (default: FILE with .png)",
)
def plot_command(file: Path, out: Path | None) -> None:
    """Draw the quicklook PNG of a light-curve file."""
    from photonpipe.lightcurves.curve import LightCurve

    target = out or file.with_suffix(".png")
    LightCurve.read(file).plot(target)
    click.echo(str(target))


@lightcurve_group.command("tag2corrtag")
@click.argument("tag", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("x1d", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--flat", type=_INPUT_FILE, help="low-res flat field")
@click.option("--badpix", type=_INPUT_FILE, help="bad-pixel image")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="output (default: <rootname>_corrtag.fits beside TAG)",
)
def tag2corrtag_command(
    tag: Path, x1d: Path, flat: Path | None, badpix: Path | None, out: Path | None
) -> None:
    """Convert a STIS tag file to a corrtag-like event list using its x1d."""
    from photonpipe.lightcurves.formats import rootname_of
    from photonpipe.lightcurves.stis import tag_to_corrtag, write_corrtag

    events = tag_to_corrtag(tag, x1d, flat=flat, badpix=badpix)
    target = out or tag.with_name(f"{rootname_of(tag)}_corrtag.fits")
    click.echo(str(write_corrtag(events, target)))


# --- the archive pipeline -----------------------------------------------------------------


def _archive_database(cli_ctx: CliContext, *, read_only: bool = False) -> Any:
    from photonpipe.cli.platform_commands import open_database

    return open_database(cli_ctx.settings, read_only=read_only)


def _layout(cli_ctx: CliContext, ingest_dir: Path | None = None) -> Any:
    from photonpipe.lightcurves.ingest import ArchiveLayout

    # A relative --ingest-dir is relative to the working directory, like every path given.
    chosen = None if ingest_dir is None else ingest_dir.absolute()
    return ArchiveLayout.from_settings(cli_ctx.settings, chosen)


@lightcurve_group.command("ingest")
@click.option(
    "--ingest-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="directory to ingest, inside the archive root, since its files are moved into the "
    "archive (default: setting lightcurve.ingest_dir, else <archive>/lightcurves/ingest)",
)
@click.option("--step", type=float, help="bin width [s] (default: setting lightcurve.step)")
@click.option("--no-plot", is_flag=True, help="skip the quicklook PNGs")
@click.option("--retry-failed", is_flag=True, help="give datasets that failed before new tries")
@click.option("--progress/--no-progress", default=None, help="progress bar (default: on a TTY)")
@pass_cli
def ingest_command(
    cli_ctx: CliContext,
    ingest_dir: Path | None,
    step: float | None,
    no_plot: bool,
    retry_failed: bool,
    progress: bool | None,
) -> None:
    """Ingest tag, corrtag and x1d files: database, filesystem by target, light curves.

    Bad files (no events, bad EXPFLAG, non-linear time, a single event time, EXPTIME < 1 s,
    unreadable) are recorded in bad_data and moved to lightcurves/bad_data/. Composites are
    rebuilt for the targets and configurations that gained or lost a dataset. Safe to re-run
    and to run twice at once.
    """
    from photonpipe.lightcurves.ingest import ingest

    layout = _layout(cli_ctx, ingest_dir)
    database = _archive_database(cli_ctx)
    parameters = _parameters(cli_ctx, step, None, None, None, None)
    report = ingest(
        layout,
        database,
        parameters,
        settings=cli_ctx.settings,
        plot=not no_plot,
        retry_failed=retry_failed,
        progress=progress,
    )
    click.echo(report.summary())
    if not report.ok:
        click.get_current_context().exit(EXIT_FAILED)


def _confirm(yes: bool, question: str) -> None:
    if not yes:
        click.confirm(question, abort=True)


@lightcurve_group.command("reset-database")
@click.option(
    "--table",
    "tables",
    multiple=True,
    type=click.Choice(["metadata", "outputs", "bad_data", "stats", "composite", "target_alias"]),
    help="empty only this table (repeatable); emptying metadata empties outputs too",
)
@click.option("--all", "all_tables", is_flag=True, help="empty every table but target_alias")
@click.option("--keep-bad-data", is_flag=True, help="leave the bad_data table alone")
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
@click.option("--dry-run", is_flag=True, help="only say what would be deleted")
@pass_cli
def reset_database_command(
    cli_ctx: CliContext,
    tables: tuple[str, ...],
    all_tables: bool,
    keep_bad_data: bool,
    yes: bool,
    dry_run: bool,
) -> None:
    """Empty the light-curve tables (default: all but the alias table) and their ledger units."""
    from photonpipe.lightcurves.reset import plan_database_reset, reset_database

    if tables and all_tables:
        raise click.UsageError("--table and --all exclude each other")
    database = _archive_database(cli_ctx)
    chosen = list(tables) or None
    plan = plan_database_reset(database, chosen, keep_bad_data=keep_bad_data)
    for line in plan.describe():
        click.echo(("would " if dry_run else "") + line)
    if dry_run:
        return
    _confirm(yes, f"Delete these rows from {database.dialect} database?")
    reset_database(database, chosen, keep_bad_data=keep_bad_data)
    click.echo("light-curve tables reset")


@lightcurve_group.command("reset-filesystem")
@click.option(
    "--ingest-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="where the files go back to (default as for ingest)",
)
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
@click.option("--dry-run", is_flag=True, help="only say what would be moved and removed")
@pass_cli
def reset_filesystem_command(
    cli_ctx: CliContext, ingest_dir: Path | None, yes: bool, dry_run: bool
) -> None:
    """Move archived and rejected files back to the ingest directory; remove the products.

    Only lightcurves/ inside the archive root is touched; symbolic links are left alone.
    """
    from photonpipe.lightcurves.reset import plan_filesystem_reset, reset_filesystem

    layout = _layout(cli_ctx, ingest_dir)
    plan = plan_filesystem_reset(layout)
    lines = plan.describe(layout)
    for line in lines:
        click.echo(("would " if dry_run else "") + line)
    if dry_run:
        return
    if not lines:
        click.echo("nothing to reset")
        return
    _confirm(
        yes,
        f"Move {len(plan.restore)} files back to {layout.inbox} and remove "
        f"{len(plan.remove)} products?",
    )
    reset_filesystem(layout, _archive_database(cli_ctx))
    click.echo(f"{len(plan.restore)} files back in {layout.inbox}, {len(plan.remove)} removed")


@lightcurve_group.group("alias")
def alias_group() -> None:
    """Target aliases: other spellings of a target map to one directory and composite."""


@alias_group.command("add")
@click.argument("name")
@click.argument("canonical")
@pass_cli
def alias_add_command(cli_ctx: CliContext, name: str, canonical: str) -> None:
    """Map target NAME to CANONICAL for datasets ingested from now on."""
    from photonpipe.lightcurves.queries import add_alias

    alias, target, existing = add_alias(_archive_database(cli_ctx), name, canonical)
    click.echo(f"{alias} -> {target}")
    if existing:
        click.echo(
            f"note: {existing} datasets are already archived under {alias}; reset and ingest "
            "again to merge them into the composite of " + target,
            err=True,
        )


@alias_group.command("list")
@pass_cli
def alias_list_command(cli_ctx: CliContext) -> None:
    """List the aliases."""
    from photonpipe.lightcurves.queries import aliases

    for alias, target in aliases(_archive_database(cli_ctx, read_only=True)):
        click.echo(f"{alias} -> {target}")


@lightcurve_group.command("list")
@click.option("--target", help="canonical target name or an alias of it")
@click.option("--instrument", help="COS or STIS")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table",
    show_default=True,
)  # fmt: skip
@pass_cli
def list_command(cli_ctx: CliContext, target: str | None, instrument: str | None, fmt: str) -> None:
    """List archived files with their configuration and light curves."""
    import csv
    import io

    from photonpipe.lightcurves.queries import LIST_COLUMNS, list_files

    rows = list_files(
        _archive_database(cli_ctx, read_only=True), target=target, instrument=instrument
    )
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
    elif fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=LIST_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        click.echo(buffer.getvalue(), nl=False)
    else:
        shown = ("filename", "target", "instrume", "opt_elem", "cenwave", "individual")
        table = [[str(r[c] if r[c] is not None else "") for c in shown] for r in rows]
        widths = [max([len(c)] + [len(t[i]) for t in table]) for i, c in enumerate(shown)]
        click.echo("  ".join(c.ljust(w) for c, w in zip(shown, widths, strict=True)))
        for t in table:
            click.echo("  ".join(v.ljust(w) for v, w in zip(t, widths, strict=True)))
        click.echo(f"({len(rows)} files)")


@lightcurve_group.command("show")
@click.argument("filename")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@pass_cli
def show_command(cli_ctx: CliContext, filename: str, fmt: str) -> None:
    """Metadata, outputs and statistics of an archived file, or why it was rejected."""
    from photonpipe.lightcurves.queries import describe_file

    info = describe_file(_archive_database(cli_ctx, read_only=True), Path(filename).name)
    if fmt == "json":
        click.echo(json.dumps(info, indent=2, default=str))
        return
    click.echo(f"status: {info['status']}")
    for section in ("metadata", "outputs", "bad_data", "composite"):
        if info.get(section):
            click.echo(f"{section}:")
            for key, value in info[section].items():
                click.echo(f"  {key:20s} {value}")
    stats = info.get("stats") or {}
    if info["status"] == "product":
        stats = {"product": stats}
    for label, values in stats.items():
        click.echo(f"stats ({label}):")
        for key, value in values.items():
            click.echo(f"  {key:20s} {value}")


_VARIABILITY = click.Choice(["constant", "sinusoid", "flare", "eclipse"])


def _simulate(
    *,
    out: Path,
    seed: int,
    mode: str,
    variability: str,
    events: int | None,
    target: str,
    rootname: str,
    exptime: float,
    flat: bool,
) -> None:
    # The commands pass the options of _simulate_options through unchanged, by name.
    from photonpipe.lightcurves.simulate import (
        Exposure,
        Variability,
        flux_for_events,
        simulate_exposure,
    )

    flux = flux_for_events(mode, events, exptime) if events else 1.0e-14
    exposure = Exposure(
        rootname,
        mode=mode,
        target=target,
        exptime=exptime,
        flux=flux,
        variability=Variability(variability),
        flat_file=flat,
    )
    result = simulate_exposure(exposure, out, seed=seed)
    for path in [*result.files, result.truth, result.truth_spectrum]:
        click.echo(str(path))
    click.echo(f"{result.n_events} events", err=True)


def _check_targname(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """Refuse a TARGNAME a FITS header cannot hold: non-ASCII, control characters, > 68."""
    if not value.strip():
        raise click.BadParameter("must not be empty")
    bad = sorted({c for c in value if not " " <= c <= "~"})
    if bad:
        raise click.BadParameter(
            f"{value!r} has characters a FITS header cannot hold: {', '.join(map(repr, bad))} "
            "(printable ASCII only)"
        )
    if len(value) > 68:
        raise click.BadParameter(f"{len(value)} characters; a FITS header holds at most 68")
    return value


_simulate_options = option_group(
    output_directory_option("output directory", name="out"),
    seed_option(None),
    click.option(
        "--variability",
        type=_VARIABILITY,
        default="constant",
        show_default=True,
        help="injected light curve",
    ),
    click.option("--events", type=int, help="scale the source to about this many events"),
    click.option(
        "--target",
        default="SIM-STAR",
        show_default=True,
        callback=_check_targname,
        help="TARGNAME (printable ASCII, at most 68 characters, as FITS headers hold it)",
    ),
    click.option(
        "--exptime", type=float, default=1200.0, show_default=True, help="exposure length [s]"
    ),
)


@simulate_group.command("cos")
@_simulate_options
@click.option(
    "--detector",
    type=click.Choice(["FUV", "NUV"]),
    default="FUV",
    show_default=True,
    help="FUV G130M/1291 (segments A, B) or NUV G185M/1850 (stripes A, B, C)",
)
@click.option("--rootname", default="lsim01abq", show_default=True)
def simulate_cos(detector: str, rootname: str, **shared: Any) -> None:
    """Simulate a COS TIME-TAG exposure: corrtag(s), x1d and truth ECSV files."""
    mode = "G130M" if detector == "FUV" else "G185M"
    _simulate(mode=mode, rootname=rootname, flat=False, **shared)


@simulate_group.command("stis")
@_simulate_options
@click.option(
    "--mode",
    type=click.Choice(["G140L", "E140M"]),
    default="G140L",
    show_default=True,
    help="first-order G140L or echelle E140M",
)
@click.option("--rootname", default="osim01abq", show_default=True)
@click.option(
    "--flat/--no-flat",
    default=True,
    show_default=True,
    help="write a low-res flat (<rootname>_lfl.fits) and apply its pattern",
)
def simulate_stis(mode: str, rootname: str, flat: bool, **shared: Any) -> None:
    """Simulate a STIS TIME-TAG exposure: tag, x1d, optional flat and truth ECSV files."""
    _simulate(mode=mode, rootname=rootname, flat=flat, **shared)


def register(cli: click.Group) -> None:
    """Add ``lightcurve`` to the command and the COS/STIS simulators to ``simulate``."""
    cli.add_command(lightcurve_group)
    assert "cos" in simulate_group.commands
