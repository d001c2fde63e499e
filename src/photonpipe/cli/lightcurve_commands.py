"""``photonpipe lightcurve`` and the COS and STIS simulators (``photonpipe simulate``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from photonpipe.cli.common import simulate_group
from photonpipe.cli.main import CliContext, pass_cli


def _parameters(
    cli_ctx: CliContext,
    step: float | None,
    wave_min: float | None,
    wave_max: float | None,
    fluxtab: Path | None,
    tdstab: Path | None,
) -> Any:
    from photonpipe.lightcurves.extract import ExtractionParameters
    from photonpipe.lightcurves.settings import parse_windows

    settings = cli_ctx.settings
    try:
        return ExtractionParameters(
            step=step if step is not None else float(settings["lightcurve.step"]),
            wave_min=wave_min,
            wave_max=wave_max,
            exclude=parse_windows(str(settings["lightcurve.exclude"] or "")),
            fluxtab=fluxtab,
            tdstab=tdstab,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


def _extraction_options(function: Any) -> Any:
    options = [
        click.option("--step", type=float, help="bin width [s] (default: setting lightcurve.step)"),
        click.option("--wave-min", type=float, help="band start [Angstrom] (default: data edge)"),
        click.option("--wave-max", type=float, help="band end [Angstrom] (default: data edge)"),
        click.option(
            "--fluxtab",
            type=click.Path(exists=True, path_type=Path),
            help="COS FLUXTAB; with --tdstab replaces the x1d sensitivity",
        ),
        click.option(
            "--tdstab",
            type=click.Path(exists=True, path_type=Path),
            help="COS TDSTAB (time-dependent sensitivity)",
        ),
        click.option("--no-plot", is_flag=True, help="skip the quicklook PNG"),
    ]
    for option in reversed(options):
        function = option(function)
    return function


@click.group("lightcurve")
def lightcurve_group() -> None:
    """Light curves from HST COS and STIS TIME-TAG data."""
    import photonpipe.lightcurves.settings  # noqa: F401  (registers the section)


@lightcurve_group.command("make")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
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
    type=click.Path(exists=True, path_type=Path),
    help="STIS low-res flat field for tag files (EPSILON = 1/flat)",
)
@click.option(
    "--badpix",
    type=click.Path(exists=True, path_type=Path),
    help="STIS low-res bad-pixel image for tag files (DQ)",
)
@pass_cli
def make_command(
    cli_ctx: CliContext,
    files: tuple[Path, ...],
    step: float | None,
    wave_min: float | None,
    wave_max: float | None,
    fluxtab: Path | None,
    tdstab: Path | None,
    no_plot: bool,
    out: Path,
    flat: Path | None,
    badpix: Path | None,
) -> None:
    """Write {rootname}_curve.fits (and .png) for each dataset in FILES.

    FILES are corrtag (FUV _a/_b pairs), STIS tag and x1d files; they are grouped by rootname.
    """
    from photonpipe.lightcurves.dataset import read_datasets
    from photonpipe.lightcurves.products import make_individual

    parameters = _parameters(cli_ctx, step, wave_min, wave_max, fluxtab, tdstab)
    for dataset in read_datasets(files, flat=flat, badpix=badpix):
        product = make_individual(dataset, out, parameters, plot=not no_plot)
        flux = "flux calibrated" if product.curve.is_calibrated else "UNCALIBRATED (no x1d)"
        click.echo(f"{product.path}  {len(product.curve)} bins, {flux}")


@lightcurve_group.command("composite")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@_extraction_options
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="output directory",
)
@pass_cli
def composite_command(
    cli_ctx: CliContext,
    files: tuple[Path, ...],
    step: float | None,
    wave_min: float | None,
    wave_max: float | None,
    fluxtab: Path | None,
    tdstab: Path | None,
    no_plot: bool,
    out: Path,
) -> None:
    """Write one HLSP composite per target and configuration found in FILES."""
    from photonpipe.lightcurves.products import make_composites

    parameters = _parameters(cli_ctx, step, wave_min, wave_max, fluxtab, tdstab)
    for product in make_composites(files, out, parameters, plot=not no_plot):
        n = len(product.curve.meta.get("datasets", []))
        click.echo(f"{product.path}  {n} datasets, {len(product.curve)} bins")


@lightcurve_group.command("stats")
@click.argument("file", type=click.Path(path_type=Path))
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
        "best_period",
    ):
        click.echo(f"{key:20s} {result[key]}")
    for p in result["periodograms"]:
        click.echo(
            f"periodogram {p['name']:9s} {p['min_period']:.1f}-{p['max_period']:.1f} s: best "
            f"{p['best_period']:.2f} s, power {p['power']:.3f}, FAP "
            f"{p['false_alarm_probability']:.3g}{'  SIGNIFICANT' if p['significant'] else ''}"
        )


@lightcurve_group.command("plot")
@click.argument("file", type=click.Path(path_type=Path))
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
@click.argument("tag", type=click.Path(path_type=Path))
@click.argument("x1d", type=click.Path(path_type=Path))
@click.option("--flat", type=click.Path(exists=True, path_type=Path), help="low-res flat field")
@click.option("--badpix", type=click.Path(exists=True, path_type=Path), help="bad-pixel image")
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


_VARIABILITY = click.Choice(["constant", "sinusoid", "flare", "eclipse"])


def _simulate(
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


def _simulate_options(function: Any) -> Any:
    options = [
        click.option(
            "--out",
            type=click.Path(file_okay=False, path_type=Path),
            required=True,
            help="output directory",
        ),
        click.option("--seed", type=int, default=1, show_default=True),
        click.option(
            "--variability",
            type=_VARIABILITY,
            default="constant",
            show_default=True,
            help="injected light curve",
        ),
        click.option("--events", type=int, help="scale the source to about this many events"),
        click.option("--target", default="SIM-STAR", show_default=True, help="TARGNAME"),
        click.option(
            "--exptime", type=float, default=1200.0, show_default=True, help="exposure length [s]"
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


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
def simulate_cos(
    out: Path,
    seed: int,
    variability: str,
    events: int | None,
    target: str,
    exptime: float,
    detector: str,
    rootname: str,
) -> None:
    """Simulate a COS TIME-TAG exposure: corrtag(s), x1d and truth ECSV files."""
    _simulate(
        out,
        seed,
        "G130M" if detector == "FUV" else "G185M",
        variability,
        events,
        target,
        rootname,
        exptime,
        False,
    )


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
def simulate_stis(
    out: Path,
    seed: int,
    variability: str,
    events: int | None,
    target: str,
    exptime: float,
    mode: str,
    rootname: str,
    flat: bool,
) -> None:
    """Simulate a STIS TIME-TAG exposure: tag, x1d, optional flat and truth ECSV files."""
    _simulate(out, seed, mode, variability, events, target, rootname, exptime, flat)


def register(cli: click.Group) -> None:
    """Add ``lightcurve`` to the command and the COS/STIS simulators to ``simulate``."""
    cli.add_command(lightcurve_group)
    assert "cos" in simulate_group.commands
