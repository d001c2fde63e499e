"""Echelle commands: ``photonpipe echelle …`` and ``photonpipe simulate nres``.

``echelle`` has stack, trace, trace-refine, reduce and night.

The data tree is the archive root (``--archive``): raw frames under
``{root}/{site}/{nresNN}/{YYYYMMDD}/raw/``, products under ``{root}/{site}/{nresNN}/reduced/``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from photonpipe.cli.common import (
    DAY_OBS,
    CliContext,
    output_directory_option,
    pass_cli,
    seed_option,
    simulate_group,
)
from photonpipe.errors import EXIT_FAILED, InputFileError

_log = logging.getLogger("photonpipe.echelle.cli")


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@click.group("echelle")
def echelle_group() -> None:
    """NRES echelle reduction: master calibrations, traces, extraction, wavelength solution."""
    import photonpipe.echelle.settings  # noqa: F401  (registers the "echelle" settings)


@echelle_group.command("stack")
@click.option("--site", required=True, help="Site code (lsc, elp, cpt).")
@click.option("--camera", required=True, help="Camera (e.g. fl09).")
@click.option("--instrument", "instrument_name", required=True, help="Instrument (e.g. nres01).")
@click.option(
    "--calibration-type",
    "ctype",
    required=True,
    type=click.Choice(["BIAS", "DARK", "FLAT", "ARC", "TEMPLATE"], case_sensitive=False),
)
@click.option("--start", required=True, type=click.DateTime(), help="Start of the range (UTC).")
@click.option("--end", required=True, type=click.DateTime(), help="End of the range (UTC).")
@click.option("--target", default=None, help="TEMPLATE only: the standard star (registry name).")
@pass_cli
def echelle_stack(
    cli_ctx: CliContext,
    site: str,
    camera: str,
    instrument_name: str,
    ctype: str,
    start: datetime,
    end: datetime,
    target: str | None,
) -> None:
    """Stack the calibration frames of a time range into masters (FLAT/ARC per lit-fibre pair).

    After an ARC stack the TRIPLE wavelength solution is made when a TRACE and both flats exist.
    TEMPLATE stacks the reduced spectra of a standard star (``--target``) into a ZERO.
    """
    from photonpipe.cli.platform_commands import open_database
    from photonpipe.echelle.calibrations import make_triple, stack_calibration
    from photonpipe.echelle.settings import Options
    from photonpipe.platform.archive import Archive
    from photonpipe.platform.progress import Progress

    settings = cli_ctx.settings
    archive = Archive.from_settings(settings)
    database = open_database(settings)
    options = Options.from_settings(settings)
    if ctype.upper() == "TEMPLATE":
        from photonpipe.echelle.templates import make_zero

        if not target:
            raise click.UsageError("--calibration-type TEMPLATE needs --target")
        zero = make_zero(
            archive,
            database,
            site=site,
            instrument_name=instrument_name,
            camera=camera,
            target=target,
            start=_utc(start),
            end=_utc(end),
        )
        click.echo(f"ZERO: {archive.relative(zero.path)} from {len(zero.inputs)} spectra")
        for skipped, error in sorted(zero.skipped.items()):
            click.echo(f"skipped {skipped}: {error}")
        if zero.skipped:
            click.get_current_context().exit(EXIT_FAILED)
        return
    with Progress(0, f"echelle stack {ctype.upper()}", "frame", logger=_log) as bar:
        result = stack_calibration(
            archive,
            database,
            site=site,
            camera=camera,
            instrument_name=instrument_name,
            ctype=ctype.upper(),
            start=_utc(start),
            end=_utc(end),
            options=options,
            progress=bar,
        )
    for path in result.masters:
        click.echo(f"master: {archive.relative(path)}")
    for skipped, error in sorted(result.skipped.items()):
        click.echo(f"skipped {skipped}: {error}")
    if ctype.upper() == "ARC":
        click.echo(
            f"TRIPLE: {archive.relative(make_triple(archive, database, result.masters, options))}"
        )
    if result.skipped:
        click.get_current_context().exit(EXIT_FAILED)


@echelle_group.command("trace")
@click.option(
    "--initial",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="Hand trace file (nres-pipe format).",
)
@click.option(
    "--blind", is_flag=True, help="Find the traces blind on master flats (--flat) instead."
)
@click.option(
    "--flat",
    "flats",
    multiple=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Master flat to trace blind (repeat for both lit-fibre pairs).",
)
@click.option("--site", default=None, help="Site code (with --initial).")
@click.option(
    "--instrument", "instrument_name", default=None, help="Instrument, nres01 (with --initial)."
)
@pass_cli
def echelle_trace(
    cli_ctx: CliContext,
    initial: Path | None,
    blind: bool,
    flats: tuple[Path, ...],
    site: str | None,
    instrument_name: str | None,
) -> None:
    """Make a starting trace product: from a hand trace file, or found blind on master flats.

    ``--initial FILE --site S --instrument I`` → trace/{FILE}-initial.fits;
    ``--blind --flat F [--flat F2]`` → trace/{F}-blind.fits (site and instrument from the flat).
    Either is a starting trace for ``trace-refine --initial``.
    """
    from photonpipe.echelle.calibrations import write_blind_traces, write_initial_traces
    from photonpipe.platform.archive import Archive

    if blind == (initial is not None):
        raise click.UsageError("give either --initial FILE or --blind --flat FILE")
    archive = Archive.from_settings(cli_ctx.settings)
    archive.create()
    if blind:
        if not flats:
            raise click.UsageError("--blind needs at least one --flat FILE")
        click.echo(archive.relative(write_blind_traces(archive, list(flats))))
        return
    assert initial is not None
    if site is None or instrument_name is None:
        raise click.UsageError("--initial needs --site and --instrument")
    click.echo(archive.relative(write_initial_traces(archive, initial, site, instrument_name)))


@echelle_group.command("trace-refine")
@click.option(
    "--flat1",
    required=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Master flat, fibres 0+1 lit.",
)
@click.option(
    "--flat2",
    required=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Master flat, fibres 1+2 lit.",
)
@click.option(
    "--initial",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="Starting trace (hand trace file or trace product); default the site's.",
)
@click.option(
    "--blind/--no-blind",
    default=None,
    help="Start from traces found blind on the flats (default: setting echelle.blind_trace).",
)
@pass_cli
def echelle_trace_refine(
    cli_ctx: CliContext, flat1: Path, flat2: Path, initial: Path | None, blind: bool | None
) -> None:
    """Refine traces on two master flats and record the TRACE calibration."""
    from photonpipe.cli.platform_commands import open_database
    from photonpipe.echelle.calibrations import make_traces
    from photonpipe.echelle.settings import Options
    from photonpipe.platform.archive import Archive

    settings = cli_ctx.settings
    archive = Archive.from_settings(settings)
    options = Options.from_settings(settings)
    if initial is not None and (blind or (blind is None and options.blind_trace)):
        if blind:
            raise click.UsageError("--initial and --blind exclude each other")
        blind = False
    path = make_traces(
        archive, open_database(settings), [flat1, flat2], initial, options, blind=blind
    )
    click.echo(archive.relative(path))


@echelle_group.command("reduce")
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--retry-failed", is_flag=True, help="Give frames that failed before new tries.")
@pass_cli
def echelle_reduce(cli_ctx: CliContext, files: tuple[Path, ...], retry_failed: bool) -> None:
    """Check raw frames and reduce the science frames among them with the best calibrations.

    Calibration frames are checked and left for ``photonpipe echelle stack``.
    """
    from photonpipe.cli.platform_commands import open_database
    from photonpipe.echelle.science import reduce_files
    from photonpipe.platform.archive import Archive

    settings = cli_ctx.settings
    archive = Archive.from_settings(settings)
    report = reduce_files(archive, open_database(settings), list(files), settings)
    click.echo(report.summary())
    for key, result in sorted(report.results.items()):
        click.echo(
            f"{Path(key).name}: {result.get('type')}"
            + (f" → {result['products']['1d']}" if "products" in result else "")
        )
    for key, error in sorted(report.failed.items()):
        click.echo(f"failed {key}: {error}")
    if report.failed:
        click.get_current_context().exit(EXIT_FAILED)


@echelle_group.command("night")
@click.option("--site", required=True, help="Site code (lsc, elp, cpt).")
@click.option("--instrument", "instrument_name", required=True, help="Instrument (e.g. nres01).")
@click.option(
    "--date",
    "day_obs",
    required=True,
    type=DAY_OBS,
    help="Night (DAY-OBS) as YYYY-MM-DD or YYYYMMDD.",
)
@pass_cli
def echelle_night(cli_ctx: CliContext, site: str, instrument_name: str, day_obs: str) -> None:
    """Reduce a whole night: biases → darks → flats → traces → arcs → science → RVs.

    Stars listed in the instrument's reduced/csv/targets.csv join the targets registry; a star
    observed two or more times with no ZERO gets one from the night's frames (each frame's RV
    measured against the ZERO of the others). Prints every science frame's RV ± uncertainty.
    """
    from photonpipe.cli.platform_commands import open_database
    from photonpipe.echelle.pipeline import reduce_night
    from photonpipe.platform.archive import Archive

    settings = cli_ctx.settings
    archive = Archive.from_settings(settings)
    raw = archive.path(site, instrument_name, day_obs.replace("-", ""), "raw")
    if not raw.is_dir():  # checked before the database is opened, so nothing is created
        raise InputFileError(raw, "no such directory: no raw frames for this night")
    report = reduce_night(
        archive, open_database(settings), site, instrument_name, day_obs, settings
    )
    click.echo(report.summary())
    for name in report.targets:
        click.echo(f"target {name} added from reduced/csv/targets.csv")
    for path in report.masters:
        click.echo(f"calibration: {archive.relative(path)}")
    for path in report.zeros:
        click.echo(f"ZERO: {archive.relative(path)} (from this night's frames)")
    for key in sorted(set(report.products) | set(report.velocities)):
        parts = [report.products[key]["1d"]] if key in report.products else []
        if key in report.velocities:
            parts.append(report.velocities[key].line())
        click.echo(f"{Path(key).name}: {'  '.join(parts)}")
    for key, error in sorted(report.failed.items()):
        click.echo(f"failed {key}: {error}")
    if not report.ok:
        click.get_current_context().exit(EXIT_FAILED)


class _Coordinate(click.ParamType):
    """RA or Dec on the command line: degrees or sexagesimal (as raw headers write them)."""

    def __init__(self, axis: str) -> None:
        self.axis = axis
        self.name = "RA" if axis == "ra" else "DEC"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        from photonpipe.echelle.targets import parse_coordinate

        try:
            return parse_coordinate(value, self.axis)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


@echelle_group.group("targets")
def targets_group() -> None:
    """Targets registry (nres-pipe's targets.csv format)."""


@targets_group.command("add")
@click.argument("name")
@click.option(
    "--ra",
    type=_Coordinate("ra"),
    required=True,
    help="RA (ICRS, J2000.0): degrees (311.2388) or hours hh:mm:ss.s (20:44:57.31).",
)
@click.option(
    "--dec",
    type=_Coordinate("dec"),
    required=True,
    help="Dec (ICRS, J2000.0): degrees (-5.0445) or ±dd:mm:ss.s (-05:02:40.2).",
)
@click.option("--vmag", type=float, default=None)
@click.option("--bmag", type=float, default=None)
@click.option("--jmag", type=float, default=None)
@click.option("--kmag", type=float, default=None)
@click.option("--pmra", type=float, default=None, help="[mas/yr], μα cos δ.")
@click.option("--pmdec", type=float, default=None, help="[mas/yr].")
@click.option("--parallax", type=float, default=None, help="[mas].")
@click.option("--rv", type=float, default=None, help="Catalogue RV [km/s].")
@click.option("--teff", type=float, default=None, help="[K].")
@click.option("--logg", type=float, default=None, help="[cgs].")
@pass_cli
def targets_add(cli_ctx: CliContext, name: str, ra: float, dec: float, **values: float) -> None:
    """Add (or update) a target."""
    from photonpipe.cli.platform_commands import open_database
    from photonpipe.echelle.targets import add_targets

    add_targets(open_database(cli_ctx.settings), [{"name": name, "ra": ra, "dec": dec, **values}])
    click.echo(f"target {name} recorded")


@targets_group.command("list")
@pass_cli
def targets_list(cli_ctx: CliContext) -> None:
    """List the registry: name, RA, Dec [deg], V, RV [km/s], Teff [K], log g."""
    from photonpipe.cli.platform_commands import open_database
    from photonpipe.echelle.targets import list_targets

    def show(value: float | None, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    for t in list_targets(open_database(cli_ctx.settings, read_only=True)):
        click.echo(
            f"{t.name:16s} {t.ra:10.5f} {t.dec:+10.5f} V={show(t.vmag, '.2f')} "
            f"RV={show(t.rv, '.3f')} Teff={show(t.teff, '.0f')} logg={show(t.logg, '.2f')}"
        )


@targets_group.command("import")
@click.argument("csv_file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@pass_cli
def targets_import(cli_ctx: CliContext, csv_file: Path) -> None:
    """Load a targets.csv file (−99.9 = missing; RA/Dec in degrees or sexagesimal)."""
    from photonpipe.cli.platform_commands import open_database
    from photonpipe.echelle.targets import import_targets

    click.echo(f"{import_targets(open_database(cli_ctx.settings), csv_file)} targets imported")


@targets_group.command("export")
@click.argument("csv_file", type=click.Path(dir_okay=False, path_type=Path))
@pass_cli
def targets_export(cli_ctx: CliContext, csv_file: Path) -> None:
    """Write the registry as targets.csv."""
    from photonpipe.cli.platform_commands import open_database
    from photonpipe.echelle.exports import export_targets

    database = open_database(cli_ctx.settings, read_only=True)
    click.echo(f"{export_targets(database, csv_file)} targets exported")


@echelle_group.group("zeros")
def zeros_group() -> None:
    """ZERO templates registry (nres-pipe's zeros.csv)."""


@zeros_group.command("list")
@pass_cli
def zeros_list(cli_ctx: CliContext) -> None:
    """List the ZEROs: flags, file, target, frames, Teff, log g."""
    from photonpipe.cli.platform_commands import open_database
    from photonpipe.echelle.templates import list_zeros

    for z in list_zeros(open_database(cli_ctx.settings, read_only=True)):
        click.echo(f"{z.flags} {z.path} {z.target} n={z.navg} Teff={z.teff} logg={z.logg}")


@zeros_group.command("flag")
@click.argument("zero_file")
@click.argument("flags")
@pass_cli
def zeros_flag(cli_ctx: CliContext, zero_file: str, flags: str) -> None:
    """Set a ZERO's four-character FLAGS ([0] 0 good; [1] 1 general standard; [2] fibres)."""
    from photonpipe.cli.platform_commands import open_database
    from photonpipe.echelle.templates import flag_zero
    from photonpipe.platform.archive import Archive

    settings = cli_ctx.settings
    record = flag_zero(open_database(settings), Archive.from_settings(settings), zero_file, flags)
    click.echo(f"{record.path}: flags {record.flags}")


@zeros_group.command("export")
@click.argument("csv_file", type=click.Path(dir_okay=False, path_type=Path))
@pass_cli
def zeros_export(cli_ctx: CliContext, csv_file: Path) -> None:
    """Write the zeros registry as zeros.csv."""
    from photonpipe.cli.platform_commands import open_database
    from photonpipe.echelle.exports import export_zeros

    click.echo(
        f"{export_zeros(open_database(cli_ctx.settings, read_only=True), csv_file)} ZEROs exported"
    )


@echelle_group.command("rv")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option(
    "--template",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="ZERO to use (default: the template choice rule).",
)
@click.option(
    "--export",
    "export_csv",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the RV table of all frames as rv.csv.",
)
@pass_cli
def echelle_rv(
    cli_ctx: CliContext, files: tuple[Path, ...], template: Path | None, export_csv: Path | None
) -> None:
    """(Re)measure the RVs of reduced 1-D spectra (…-1d.fits); export the RV table."""
    from photonpipe.cli.platform_commands import open_database
    from photonpipe.echelle.exports import export_velocities
    from photonpipe.echelle.rv import measure_files
    from photonpipe.platform.archive import Archive

    settings = cli_ctx.settings
    archive = Archive.from_settings(settings)
    database = open_database(settings)
    unusable = 0
    for name, v in measure_files(archive, database, files, template).items():
        if v.rv_kms is None:
            unusable += 1
            click.echo(f"{Path(name).name}: no RV: {v.reason}")
        else:
            click.echo(f"{Path(name).name}: {v.target} RV {v.rv_kms:.5f} ± {v.error_kms:.5f} km/s")
    if export_csv is not None:
        click.echo(f"{export_velocities(database, export_csv)} RVs exported to {export_csv}")
    if unusable:
        click.get_current_context().exit(EXIT_FAILED)


@click.command("nres")
@click.option("--site", default="lsc", show_default=True, help="Site code (lsc, elp, cpt).")
@click.option("--night", required=True, type=DAY_OBS, help="Observing night YYYY-MM-DD.")
@output_directory_option("Root of the data tree.")
@click.option(
    "--small", is_flag=True, help="Read out a 1024×1024 window (about 15 orders) for speed."
)
@seed_option()
def simulate_nres_command(site: str, night: str, out_dir: Path, small: bool, seed: int) -> None:
    """Simulate a night of raw NRES frames (fpacked, LCO layout) with a truth file."""
    from photonpipe.echelle.simulate import simulate_night

    result = simulate_night(out_dir, site=site, night=night, small=small, seed=seed)
    click.echo(f"{len(result.frames)} raw frames in {result.raw_dir}")
    click.echo(f"truth: {result.truth_path}")
    click.echo(f"target {result.target} registered in {result.targets_path}")


def register(cli: click.Group) -> None:
    """Add ``photonpipe echelle`` and ``photonpipe simulate nres``."""
    import photonpipe.echelle.settings  # noqa: F401  (settings must exist before they are loaded)

    cli.add_command(echelle_group)
    simulate_group.add_command(simulate_nres_command)
