"""Sky commands: ``photonpipe sky build|export-fits|catalog|model|predict|inspect``; simulator."""

from __future__ import annotations

from pathlib import Path

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


@click.group("sky")
def sky_group() -> None:
    """BOSS sky-fibre spectra: build the dataset, export its metadata, inspect frames."""
    import photonpipe.sky.settings  # noqa: F401  (registers the "sky" settings)


# The sky model's inputs other than the airmass: (flag, type, default, help), in --help order.
_CONDITIONS: tuple[tuple[str, click.ParamType, float, str], ...] = (
    ("--moon-sep", click.FloatRange(0.0, 180.0), 90.0, "Moon separation [deg]."),
    ("--moon-alt", click.FloatRange(-90.0, 90.0), -30.0, "Moon altitude [deg]."),
    ("--moon-illumination", click.FloatRange(0.0, 1.0), 0.0, "Moon illuminated fraction."),
    ("--zodi", click.FLOAT, 3.0, "Zodiacal light (SkyModelling table units)."),
    ("--isl", click.FLOAT, 1.4, "Integrated starlight (SkyModelling map units)."),
    ("--solar-flux", click.FloatRange(50.0, 400.0), 100.0, "10.7 cm solar flux [sfu]."),
    ("--hours-since-sunset", click.FloatRange(0.0, 14.0), 4.0, "Hours since sunset."),
    ("--month", click.IntRange(1, 12), 3, "Month."),
)

_observing_conditions = option_group(
    *(
        click.option(flag, type=kind, default=default, show_default=True, help=text)
        for flag, kind, default, text in _CONDITIONS
    )
)


@sky_group.command("build")
@click.option(
    "--input",
    "input_dir",
    required=True,
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Directory holding one sub-directory of spFrame/spCFrame/spFluxcalib files per plate.",
)
@output_directory_option(
    "Dataset directory (spectra/*.h5, metadata/*.parquet).", flag="--output", name="output_dir"
)
@click.option("--retry-failed", is_flag=True, help="Give plates that failed before new tries.")
@click.option(
    "--fits",
    "fits_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the whole metadata as this FITS table.",
)
@pass_cli
def sky_build(
    cli_ctx: CliContext,
    input_dir: Path,
    output_dir: Path,
    retry_failed: bool,
    fits_path: Path | None,
) -> None:
    """Convert every plate's sky fibres to flux with metadata; resumable (re-run to continue)."""
    from photonpipe.cli.platform_commands import open_database
    from photonpipe.sky.pipeline import build_sky_dataset
    from photonpipe.sky.storage import export_metadata_fits

    settings = cli_ctx.settings
    report = build_sky_dataset(
        input_dir,
        output_dir,
        database=open_database(settings),
        settings=settings,
        retry_failed=retry_failed,
    )
    click.echo(report.summary())
    for key, error in sorted(report.failed.items()):
        click.echo(f"failed {key}: {error}")
    if fits_path is not None and (report.done or report.already_done):
        click.echo(f"metadata FITS: {export_metadata_fits(output_dir, fits_path)}")
    if not report.ok:
        click.get_current_context().exit(EXIT_FAILED)


@sky_group.command("export-fits")
@click.argument("dataset", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.argument("destination", type=click.Path(dir_okay=False, path_type=Path))
def sky_export_fits(dataset: Path, destination: Path) -> None:
    """Write the metadata of DATASET as one FITS binary table DESTINATION."""
    from photonpipe.sky.storage import export_metadata_fits

    click.echo(str(export_metadata_fits(dataset, destination)))


@sky_group.command("catalog")
@click.argument("dataset", type=click.Path(file_okay=False, exists=True, path_type=Path))
@output_directory_option("Directory for the tables (Parquet and FITS).")
@click.option(
    "--full/--mean",
    "full",
    default=True,
    show_default=True,
    help="One row per sky spectrum, or per mean spectrum (plate, exposure, camera).",
)
def sky_catalog(dataset: Path, out_dir: Path, full: bool) -> None:
    """Write all / good / good_clean catalogues of DATASET and the removed rows with reasons."""
    from photonpipe.sky.catalog import build_catalog

    for name, paths in build_catalog(dataset, out_dir, "full" if full else "mean").items():
        click.echo(f"{name}: " + ", ".join(str(p) for p in paths))


@sky_group.command("model")
@click.argument("dataset", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option(
    "--out",
    "model_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Model file to write (JSON).",
)
@click.option(
    "--held-out",
    type=click.FloatRange(0.0, 0.9),
    default=0.25,
    show_default=True,
    help="Fraction of plates kept out of the fit to measure its quality (0: none).",
)
def sky_model(dataset: Path, model_path: Path, held_out: float) -> None:
    """Fit the sky model (continuum per bin and line strengths vs conditions) on DATASET."""
    import logging

    from photonpipe.platform.progress import Progress
    from photonpipe.sky.model import evaluate, fit_sky_model, training_set

    bar = Progress(3, "sky model", "step", logger=logging.getLogger("photonpipe.sky.model"))
    with bar:
        bar.set_status("reading the training set")
        data = training_set(dataset)
        bar.update(1)
        bar.set_status("held-out evaluation")
        quality = evaluate(data, held_out)[1] if held_out > 0 else None
        bar.update(1)
        bar.set_status("fit")
        model = fit_sky_model(data)
        model.to_json(model_path)
        bar.update(1)
    if quality is not None:
        click.echo(
            f"held-out plates: {quality['n_test']} observations "
            f"({quality['n_test_moon']} with the Moon up); continuum |pred/obs − 1| "
            f"median {quality['continuum_median_abs']:.3f}, "
            f"90% {quality['continuum_p90_abs']:.3f} (dark sky: median "
            f"{quality['continuum_median_abs_dark']:.3f}, 90% "
            f"{quality['continuum_p90_abs_dark']:.3f}; Moon up: median "
            f"{quality['continuum_median_abs_moon']:.3f}, 90% "
            f"{quality['continuum_p90_abs_moon']:.3f}); "
            f"lines median {quality['lines_median_abs']:.3f}"
        )
    seen = f"{model.n_train} observations ({model.n_moon} with the Moon up)"
    click.echo(f"model fitted on {seen}: {model_path}")


@sky_group.command("predict")
@click.option(
    "--model",
    "model_path",
    required=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Model file written by `sky model`.",
)
@click.option("--airmass", type=click.FloatRange(1.0, 3.0), required=True, help="Airmass.")
@_observing_conditions
@output_directory_option("Output directory.")
def sky_predict(
    model_path: Path,
    airmass: float,
    moon_sep: float,
    moon_alt: float,
    moon_illumination: float,
    zodi: float,
    isl: float,
    solar_flux: float,
    hours_since_sunset: float,
    month: int,
    out_dir: Path,
) -> None:
    """Predict the sky spectrum for given conditions (FITS, ECSV and PNG)."""
    from photonpipe.sky.model import SkyModel, predicted_spectrum, write_prediction

    model = SkyModel.from_json(model_path)
    if moon_alt > 0 and moon_illumination > 0 and model.n_moon == 0:
        click.echo("warning: the model saw no moon-up observation; moonlight is not predicted")
    conditions = {
        "AIRMASS": airmass,
        "ZODI": zodi,
        "ISL": isl,
        "SOLAR_FLUX_OBS": solar_flux,
        "HOURS_SINCE_SUNSET": hours_since_sunset,
        "MONTH": float(month),
        "MOON_ILLUMINATION": moon_illumination,
        "MOON_ALT": moon_alt,
        "MOON_SEP": moon_sep,
    }
    spectrum, lines = predicted_spectrum(model, conditions)
    for path in write_prediction(spectrum, lines, out_dir):
        click.echo(str(path))


@sky_group.command("inspect")
@click.argument("spframe", type=click.Path(dir_okay=False, exists=True, path_type=Path))
def sky_inspect(spframe: Path) -> None:
    """Summarise one spFrame: header, fibres, sky fibres, wavelength range, mask bits."""
    import numpy as np

    from photonpipe.sky.flux import sky_fibre_rows
    from photonpipe.sky.formats import read_spframe
    from photonpipe.sky.pixmask import decode_mask

    frame = read_spframe(spframe)
    wave = 10.0 ** frame.loglam() / 10.0
    click.echo(
        f"{spframe.name}: plate {frame.header['PLATEID']} MJD {frame.header['MJD']} "
        f"exposure {frame.exposure} camera {frame.camera}"
    )
    click.echo(
        f"{frame.flux.shape[0]} fibres × {frame.flux.shape[1]} pixels, "
        f"{sky_fibre_rows(frame).size} sky fibres, {wave.min():.1f}–{wave.max():.1f} nm"
    )
    bits = np.bitwise_or.reduce(frame.mask.ravel())
    click.echo("mask bits set: " + (", ".join(decode_mask(int(bits))) or "none"))


@click.command("boss")
@click.option(
    "--plates",
    "n_plates",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Number of real BOSS plates to simulate (chosen from the plate list).",
)
@output_directory_option("Output directory.")
@seed_option()
@click.option(
    "--fibres",
    "fibres",
    type=click.IntRange(min=10, max=500),
    default=500,
    show_default=True,
    help="Fibres per spectrograph (BOSS: 500).",
)
@click.option(
    "--exposures",
    type=click.IntRange(min=1, max=8),
    default=None,
    help="Exposures per plate (default: the plate list's, at most 4).",
)
@click.option("--no-noise", is_flag=True, help="Write noiseless data (data = truth).")
@click.option(
    "--moon-up",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Extra plates observed with the Moon up (BOSS observed mostly in dark time).",
)
def simulate_boss_command(
    n_plates: int,
    out_dir: Path,
    seed: int,
    fibres: int,
    exposures: int | None,
    no_noise: bool,
    moon_up: int,
) -> None:
    """Simulate BOSS spFrame/spCFrame/spFluxcalib files of real plates, with truth files."""
    from photonpipe.sky.simulate import iter_simulate_boss

    # one plate at a time: each line is printed as soon as its plate is written
    for plate in iter_simulate_boss(
        out_dir,
        n_plates,
        seed,
        fibres_per_spectrograph=fibres,
        exposures=exposures,
        noise=not no_noise,
        moon_up=moon_up,
    ):
        click.echo(
            f"plate {plate.plate} MJD {plate.mjd}: {len(plate.exposures)} exposures in "
            f"{plate.directory}, truth {plate.truth.name}"
        )


def register(cli: click.Group) -> None:
    """Add ``photonpipe sky`` and ``photonpipe simulate boss``."""
    import photonpipe.sky.settings  # noqa: F401  (settings must exist before they are loaded)

    cli.add_command(sky_group)
    simulate_group.add_command(simulate_boss_command)
