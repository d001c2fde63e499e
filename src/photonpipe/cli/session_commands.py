"""``photonpipe session``: stellar analysis sessions (SMH data model). Thin: parse → API → print."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import click

from photonpipe.cli.common import seed_option, simulate_group
from photonpipe.stellar.export import export_measurements
from photonpipe.stellar.session import TEMPLATES, Session
from photonpipe.stellar.simulate import write_simulated_star

_SESSION = click.argument("session_file", type=click.Path(dir_okay=False, path_type=Path))


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "-"
    return str(value)


@click.group("session")
def session_group() -> None:
    """Stellar analysis sessions (.smh): RV, continuum, stacking, line measurements."""


@session_group.command("new")
@click.argument("spectra", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
    help="Session file to write (.smh).",
)  # fmt: skip
def session_new(spectra: tuple[Path, ...], output: Path) -> None:
    """Start a session from input spectra (FITS 1-D/multispec/tables, ASCII).

    Files none of these readers recognise are read with specutils' loaders when the specutils
    extra is installed; the reader of each file is printed.
    """
    session = Session.new(list(spectra))
    session.save(output)
    click.echo(f"{output}: {session.n_orders} orders from {len(spectra)} file(s)")
    for name, reader in session.readers.items():
        click.echo(f"  {name}: read by {reader}")


@session_group.command("rv")
@_SESSION
@click.option(
    "--template", default="giant", show_default=True,
    help=f"Bundled template ({', '.join(TEMPLATES)}), a file in the session, or a spectrum file.",
)  # fmt: skip
@click.option(
    "--range", "wavelength_range", nargs=2, type=float, default=(5150.0, 5300.0),
    show_default=True, metavar="START END", help="Observed wavelengths to correlate [Å].",
)  # fmt: skip
@click.option("--order", type=int, default=None, help="Order index (default: best covering).")
@click.option("--apodize", type=float, default=0.1, show_default=True, help="Taper fraction.")
@click.option("--no-normalize", is_flag=True, help="Do not divide by a continuum first.")
@click.option("--max-velocity", type=float, default=500.0, show_default=True, help="[km/s]")
@click.option("--barycentric", type=float, default=None, help="Correction [km/s] (else header).")
@click.option("--no-apply", is_flag=True, help="Measure only; keep the applied RV.")
def session_rv(
    session_file: Path,
    template: str,
    wavelength_range: tuple[float, float],
    order: int | None,
    apodize: float,
    no_normalize: bool,
    max_velocity: float,
    barycentric: float | None,
    no_apply: bool,
) -> None:
    """Measure the radial velocity by cross-correlation (and apply it)."""
    session = Session.load(session_file)
    rv = session.measure_rv(
        template, wavelength_range, order, apodize, not no_normalize, max_velocity,
        barycentric_correction=barycentric, apply=not no_apply,
    )  # fmt: skip
    session.save()
    click.echo(
        f"RV {rv['rv_measured']:.3f} ± {rv['rv_uncertainty']:.3f} km/s (order "
        f"{rv['order_index']}, template {rv['template_filename']}); barycentric correction "
        f"{_fmt(rv['barycentric_correction'])} km/s [{rv['correction_source']}]; applied "
        f"{rv['rv_applied']:.3f} km/s"
    )


@session_group.command("normalize")
@_SESSION
@click.option("--order", "orders", type=int, multiple=True, help="Order(s); default all active.")
@click.option(
    "--function", type=click.Choice(["spline", "polynomial", "legendre", "chebyshev"]),
    default="spline", show_default=True,
)  # fmt: skip
@click.option("--degree", type=int, default=3, show_default=True)
@click.option("--knot-spacing", type=float, default=20.0, show_default=True, help="[Å]")
@click.option("--low-sigma", type=float, default=2.0, show_default=True)
@click.option("--high-sigma", type=float, default=3.0, show_default=True)
@click.option("--max-iterations", type=int, default=10, show_default=True)
@click.option(
    "--mask", "masks", nargs=2, type=float, multiple=True, metavar="START END",
    help="Extra rest-frame range to exclude [Å]; may be repeated.",
)  # fmt: skip
@click.option("--no-default-masks", is_flag=True, help="No strong-line/telluric masks.")
@click.option(
    "--point", "points", nargs=3, type=float, multiple=True, metavar="WAVE FLUX WEIGHT",
    help="Continuum point always used (rest wavelength [Å], flux, weight); may be repeated.",
)  # fmt: skip
def session_normalize(
    session_file: Path,
    orders: tuple[int, ...],
    function: str,
    degree: int,
    knot_spacing: float,
    low_sigma: float,
    high_sigma: float,
    max_iterations: int,
    masks: tuple[tuple[float, float], ...],
    no_default_masks: bool,
    points: tuple[tuple[float, float, float], ...],
) -> None:
    """Fit the continuum of rest-frame orders."""
    session = Session.load(session_file)
    options: dict[str, Any] = {
        "function": function, "degree": degree, "knot_spacing": knot_spacing,
        "low_sigma": low_sigma, "high_sigma": high_sigma, "max_iterations": max_iterations,
        "masks": list(masks), "use_default_masks": not no_default_masks,
        "added_points": list(points),
    }  # fmt: skip
    if orders:
        for index in orders:
            session.normalize(index, **options)
    else:
        session.normalize_all(**options)
    session.save()
    done = list(orders) if orders else session.active_orders
    click.echo(f"normalised {len(done)} order(s) with a {function}")


@session_group.command("stack")
@_SESSION
@click.option("--step", type=float, default=0.02, show_default=True, help="[Å] or [km/s] (log).")
@click.option("--scale", type=click.Choice(["linear", "log"]), default="linear", show_default=True)
def session_stack(session_file: Path, step: float, scale: str) -> None:
    """Stack the normalised rest-frame orders onto one grid."""
    session = Session.load(session_file)
    stacked = session.stack(step=step, scale=scale)
    session.save()
    lo, hi = stacked.wavelength_range
    click.echo(f"stacked {len(stacked)} pixels, {lo:.2f}-{hi:.2f} Å")


@session_group.command("measure")
@_SESSION
@click.option(
    "--linelist", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="Line list (MOOG, VALD, ECSV, FITS); default: re-fit the session's lines.",
)  # fmt: skip
@click.option(
    "--line", "lines", multiple=True, metavar="HASH",
    help="Re-fit only this session line (line_hash of 'session export'); may be repeated.",
)  # fmt: skip
@click.option("--profile", type=click.Choice(["gaussian", "voigt"]), default="gaussian")
@click.option("--window", type=float, default=2.0, show_default=True, help="Half-width [Å].")
def session_measure(
    session_file: Path, linelist: Path | None, lines: tuple[str, ...], profile: str, window: float
) -> None:
    """Measure equivalent widths of the lines of a line list, or re-fit session lines."""
    session = Session.load(session_file)
    if linelist is not None and lines:
        raise click.UsageError("give --linelist or --line, not both")
    if linelist is not None:
        measured = session.measure(linelist, profile=profile, window=window)
    else:
        measured = session.refit(list(lines) or None, profile=profile, window=window)
    session.save()
    acceptable = sum(m["acceptable"] and not m["is_limit"] for m in measured)
    limits = sum(m["is_limit"] for m in measured)
    skipped = session.state["history"][-1].get("skipped", [])
    click.echo(
        f"measured {len(measured)} line(s): {acceptable} acceptable detections, {limits} "
        f"upper limits, {len(measured) - acceptable - limits} not acceptable; "
        f"{len(skipped)} outside the spectrum"
    )


@session_group.command("review")
@_SESSION
@click.argument("line")
@click.option("--accept/--reject", "acceptable", default=None, help="Accept or reject the line.")
@click.option(
    "--limit/--detection", "upper_limit", default=None,
    help="Treat the line as an upper limit, or as a detection.",
)  # fmt: skip
@click.option("--comment", default=None, help="Your comment ('' removes it).")
def session_review(
    session_file: Path,
    line: str,
    acceptable: bool | None,
    upper_limit: bool | None,
    comment: str | None,
) -> None:
    """Accept or reject one line measurement, mark it an upper limit, comment on it.

    LINE is the line hash (or the measurement key HASH|ew).
    """
    session = Session.load(session_file)
    m = session.review_measurement(
        line, acceptable=acceptable, upper_limit=upper_limit, comment=comment
    )
    session.save()
    verdict = "acceptable" if m["acceptable"] else "rejected"
    limit = f", upper limit {m['upper_limit']:.1f} mÅ" if m["is_limit"] else ""
    click.echo(f"{m['wavelength']:.3f} Å: EW {m['ew']:.1f} mÅ, {verdict}{limit}")


@session_group.command("export")
@_SESSION
@click.option(
    "-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
    help="Output file: .ecsv, .fits or .tex (AASTeX deluxetable).",
)  # fmt: skip
@click.option("--acceptable-only", is_flag=True, help="Leave out unacceptable measurements.")
def session_export(session_file: Path, output: Path, acceptable_only: bool) -> None:
    """Export the line measurements."""
    session = Session.load(session_file)
    export_measurements(session, output, acceptable_only)
    click.echo(f"wrote {output}")


@session_group.command("info")
@_SESSION
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def session_info(session_file: Path, fmt: str) -> None:
    """Describe a session file."""
    summary = Session.load(session_file).summary()
    if fmt == "json":
        clean = {
            k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in summary.items()
        }
        click.echo(json.dumps(clean, indent=2))
        return
    width = max(len(k) for k in summary)
    for key, value in summary.items():
        click.echo(f"{key:<{width}}  {_fmt(value)}")


@simulate_group.command("stellar")
@click.option(
    "-o", "--output", "directory", type=click.Path(file_okay=False, path_type=Path),
    default=Path("simulated-stellar"), show_default=True, help="Output directory.",
)  # fmt: skip
@click.option("--orders", type=int, default=10, show_default=True)
@click.option("--rv", type=float, default=25.0, show_default=True, help="[km/s]")
@click.option("--snr", type=float, default=100.0, show_default=True)
@seed_option(None)
@click.option(
    "--dispersion", type=click.Choice(["linear", "log", "legendre", "chebyshev"]),
    default="legendre", show_default=True,
)  # fmt: skip
def simulate_stellar(
    directory: Path, orders: int, rv: float, snr: float, seed: int, dispersion: str
) -> None:
    """Write a multispec echelle spectrum of a star with known lines and RV, and its truth."""
    spectrum, truth = write_simulated_star(directory, orders, rv, snr, seed, dispersion)
    click.echo(f"wrote {spectrum} and {truth}")


def register(cli: click.Group) -> None:
    """Add the ``session`` group (and ``simulate stellar``) to the ``photonpipe`` command."""
    cli.add_command(session_group)
