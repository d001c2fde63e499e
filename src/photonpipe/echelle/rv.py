"""NRES radial velocities of reduced science frames, and the ZEROs of a night's stars.

* **RV** (``reduced/rv/``, table ``echelle_rv``): the blaze-normalised science orders against the
  ZERO's orders (:mod:`photonpipe.echelle.templates`) with
  :func:`photonpipe.spectra.rv.measure_velocity` (coarse CCF, 12 blocks per order, telluric and
  edge masks, the ZERO's noise in the weights, uncertainty from the robust scatter of the
  blocks), combined with the barycentric correction relativistically
  (:func:`photonpipe.spectra.rv.barycentric_velocity`); BJD_TDB at the mid-point: the
  flux-weighted mid-time of the science fibre's exposure-meter counts when the reduction found a
  usable record in the raw frame (header ``EMMIDTIM``, see :mod:`photonpipe.echelle.expmeter`),
  else the geometric DATE-OBS + EXPTIME/2 (keyword ``MIDTYPE``: ``flux-weighted`` or
  ``geometric``); with a record, the correction is the flux-weighted mean over the exposure to
  second order (:func:`~photonpipe.echelle.observation.frame_barycentric`).
* **A night's ZEROs** (:func:`night_zeros`): a star observed at least twice with no ZERO gets
  one from the night's frames, each frame's RV measured against the ZERO of the others.

The targets registry is :mod:`photonpipe.echelle.targets`, the csv exports
:mod:`photonpipe.echelle.exports`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.time import Time
from sqlalchemy import select

from photonpipe.echelle.models import RadialVelocityRecord, ZeroRecord
from photonpipe.echelle.observation import (
    Barycentric,
    frame_barycentric,
    pointing,
    science_name,
    science_orders,
    signal_to_noise,
)
from photonpipe.echelle.targets import find_target
from photonpipe.echelle.templates import (
    Zero,
    choose_template,
    combine_rest_orders,
    lit_fibres,
    read_zero,
    rest_frames,
    write_zero,
)
from photonpipe.errors import InputFileError, PhotonpipeError
from photonpipe.platform.archive import Archive, atomic_output
from photonpipe.platform.db import Database, upsert
from photonpipe.spectra.rv import (
    RadialVelocity,
    RadialVelocityError,
    barycentric_velocity,
    coarse_velocity,
    measure_velocity,
)
from photonpipe.spectra.spectrum import C_KMS

log = logging.getLogger("photonpipe.echelle.rv")  # one logger for the RV modules

#: Fewest orders with fitted blocks for a usable velocity.
MIN_ORDERS = 3
#: Start of the reason of an RV missing only for want of a template.
NO_TEMPLATE = "no ZERO template"


# --------------------------------------------------------------------------- velocities


@dataclass
class FrameVelocity:
    """The RV of one reduced frame, or the reason it has none."""

    target: str
    rv_kms: float | None = None
    error_kms: float | None = None
    barycentric: Barycentric | None = None
    template: str | None = None
    snr: float = 0.0
    result: RadialVelocity | None = None
    reason: str | None = None
    #: The template was the night's ZERO made without this frame (see :func:`night_zeros`).
    leave_one_out: bool = False

    @property
    def needs_template(self) -> bool:
        """True when the only thing missing for an RV was a ZERO template."""
        return self.rv_kms is None and (self.reason or "").startswith(NO_TEMPLATE)


def measure_spectrum(
    path: str | Path,
    header: fits.Header,
    table: fits.FITS_rec,
    zero: Zero,
) -> tuple[RadialVelocity, Barycentric]:
    """Velocity of a reduced spectrum against a ZERO, with its barycentric correction.

    Returns
    -------
    RadialVelocity
        ``velocity`` relative to the ZERO (c·z, topocentric) [km/s].
    Barycentric

    Raises
    ------
    InputFileError
        ZERO of another instrument or lit-fibre set, too few usable orders, no velocity.
    """
    instrument_name = str(header.get("TELESCOP", "")).strip()
    fibres = lit_fibres(str(header.get("OBJECTS", "")))
    if zero.instrument != instrument_name:
        raise InputFileError(
            path, f"ZERO {zero.path.name} is from {zero.instrument}, not {instrument_name}"
        )
    if zero.fibres != fibres:
        raise InputFileError(
            path, f"ZERO {zero.path.name} has fibres {zero.fibres} lit, the frame {fibres}"
        )
    orders = science_orders(table, int(header.get("SCIFIBRE", 0)))
    common = [o for o in sorted(orders) if o in zero.orders]
    usable = [o for o in common if (orders[o].ivar > 0).sum() > 200]
    if len(usable) < MIN_ORDERS:
        raise InputFileError(
            path,
            f"too few usable orders for an RV ({len(usable)} shared with {zero.path.name}, "
            f"need {MIN_ORDERS})",
        )
    bary = frame_barycentric(path, header)
    try:
        result = measure_velocity(
            [orders[o] for o in usable], [zero.orders[o] for o in usable], template_noise=True
        )
    except RadialVelocityError as exc:
        raise InputFileError(path, f"no radial velocity: {exc}") from None
    used_orders = {b.order for b in result.blocks if b.used}
    if len(used_orders) < MIN_ORDERS:
        raise InputFileError(
            path, f"too few usable orders for an RV ({len(used_orders)} with accepted blocks)"
        )
    return result, bary


def rv_header_cards(header: fits.Header, velocity: FrameVelocity) -> None:
    """Add RV, RVERR, BARYCORR, BJD, ZEROFILE (or RVFLAG with the reason) to a header."""
    header["RVTARGET"] = (velocity.target, "target of the RV")
    if velocity.rv_kms is None or velocity.barycentric is None or velocity.result is None:
        reason = (velocity.reason or "no RV")[:68]
        # a card holds 80 characters: a long reason goes without its comment (no truncation)
        header["RVFLAG"] = (reason, "RV unusable") if len(reason) <= 54 else reason
        return
    header["RV"] = (velocity.rv_kms, "[km/s] barycentric radial velocity")
    header["RVERR"] = (velocity.error_kms, "[km/s] RV uncertainty (block scatter)")
    header["RVFORMAL"] = (velocity.result.formal_uncertainty, "[km/s] formal RV uncertainty")
    header["RVRAW"] = (velocity.result.velocity, "[km/s] c*z relative to the ZERO")
    header["RVCOARSE"] = (velocity.result.coarse_velocity, "[km/s] peak of the summed CCF")
    header["BARYCORR"] = (velocity.barycentric.correction_kms, "[km/s] barycentric correction")
    header["BJD"] = (velocity.barycentric.bjd_tdb, "[d] BJD_TDB of the mid-point")
    header["MIDTIME"] = (velocity.barycentric.midpoint, "exposure mid-point (UTC)")
    header["MIDTYPE"] = (velocity.barycentric.midtype, "mid-point: flux-weighted or geometric")
    header["ZEROFILE"] = (Path(velocity.template or "").name, "template (ZERO) used")
    if velocity.leave_one_out:
        header["ZEROLOO"] = (True, "this frame was left out of ZEROFILE for its RV")
    header["RVNBLK"] = (velocity.result.n_used, "blocks in the RV")
    header["RVSNR"] = (velocity.snr, "S/N at the blaze peak (median of orders)")


def rv_product(header: fits.Header, velocity: FrameVelocity) -> fits.HDUList:
    """RV product: primary header with the RV keywords, CCF and BLOCKS tables."""
    primary = fits.PrimaryHDU(header=header.copy())
    rv_header_cards(primary.header, velocity)
    hdus: list[Any] = [primary]
    result = velocity.result
    if result is not None:
        hdus.append(
            fits.BinTableHDU.from_columns(
                [
                    fits.Column("VELOCITY", "D", unit="km/s", array=result.ccf_velocity),
                    fits.Column("CCF", "D", array=result.ccf),
                ],
                name="CCF",
            )
        )
        blocks = result.blocks
        hdus.append(
            fits.BinTableHDU.from_columns(
                [
                    fits.Column("ORDERIDX", "J", array=[b.order for b in blocks]),
                    fits.Column("BLOCK", "J", array=[b.block for b in blocks]),
                    fits.Column(
                        "WAVELENGTH", "D", unit="Angstrom", array=[b.wavelength for b in blocks]
                    ),
                    fits.Column("VELOCITY", "D", unit="km/s", array=[b.velocity for b in blocks]),
                    fits.Column(
                        "UNCERTAINTY", "D", unit="km/s", array=[b.uncertainty for b in blocks]
                    ),
                    fits.Column("NPIXELS", "J", array=[b.n_pixels for b in blocks]),
                    fits.Column("CHI2RED", "D", array=[b.chi2_reduced for b in blocks]),
                    fits.Column("USED", "L", array=[b.used for b in blocks]),
                ],
                name="BLOCKS",
            )
        )
    return fits.HDUList(hdus)


def frame_velocity(
    archive: Archive,
    database: Database,
    path: Path,
    header: fits.Header,
    table: fits.FITS_rec,
    template: Path | None = None,
) -> FrameVelocity:
    """Find the target and template of a reduced frame and measure its RV.

    Every problem (unknown target, no template, too few orders, metadata missing) becomes the
    ``reason`` of an unusable RV rather than an exception.
    """
    name = science_name(str(header.get("OBJECTS", ""))) or "unknown"
    when = datetime.fromisoformat(str(header["DATE-OBS"])).replace(tzinfo=UTC)
    snr = signal_to_noise(table, int(header.get("SCIFIBRE", 0)))
    target = find_target(database, name=name, position=pointing(header), when=when)
    if target is None:
        return FrameVelocity(name, snr=snr, reason=f"target {name} not in the targets registry")
    velocity = FrameVelocity(target.name, snr=snr)
    try:
        if template is None:
            record = choose_template(
                database,
                target,
                str(header.get("TELESCOP", "")).strip(),
                lit_fibres(str(header.get("OBJECTS", ""))),
                float(Time(when).jd),
            )
            if record is None:
                velocity.reason = f"{NO_TEMPLATE} for {target.name} (nor a general standard)"
                return velocity
            template = archive.path(record.path)
        zero = read_zero(template)
        result, bary = measure_spectrum(path, header, table, zero)
    except (InputFileError, ValueError) as exc:
        velocity.reason = str(exc)
        return velocity
    _set_velocity(archive, velocity, result, bary, template)
    return velocity


def _set_velocity(
    archive: Archive,
    velocity: FrameVelocity,
    result: RadialVelocity,
    bary: Barycentric,
    template: Path,
) -> None:
    velocity.result = result
    velocity.barycentric = bary
    velocity.template = archive.relative(template) if archive.contains(template) else str(template)
    velocity.rv_kms = barycentric_velocity(result.velocity, bary.correction_kms)
    # d RV / d v = (1 + z_b)
    velocity.error_kms = result.uncertainty * (1.0 + bary.correction_kms / C_KMS)
    velocity.reason = None


def record_velocity(
    database: Database, archive: Archive, spectrum: Path, header: fits.Header, v: FrameVelocity
) -> None:
    """Insert or update the frame's row of table ``echelle_rv``."""
    row = {
        "spectrum": archive.relative(spectrum),
        "rawfile": str(header.get("RAWFILE", spectrum.name)),
        "target": v.target,
        "site": str(header.get("SITEID", "")),
        "instrument": str(header.get("TELESCOP", "")),
        "exptime": float(header.get("EXPTIME", 0.0)),
        "bjd": v.barycentric.bjd_tdb if v.barycentric else None,
        "rv": v.rv_kms,
        "rv_error": v.error_kms,
        "barycorr": v.barycentric.correction_kms if v.barycentric else None,
        "template": v.template,
        "snr": v.snr,
        "n_blocks": v.result.n_used if v.result else 0,
        "reason": (v.reason or None) and v.reason[:256],
        "created": datetime.now(UTC),
    }
    with database.session() as session:
        upsert(session, RadialVelocityRecord, [row], key=("spectrum",))


def rv_path(archive: Archive, spectrum: Path, header: fits.Header) -> Path:
    """Where the RV product of a 1-D spectrum goes (``reduced/rv/…-rv.fits``)."""
    site = str(header.get("SITEID", "")).strip()
    instrument_name = str(header.get("TELESCOP", "")).strip()
    return archive.path(
        site, instrument_name, "reduced", "rv", spectrum.name.replace("-1d.fits", "-rv.fits")
    )


def write_velocity(
    archive: Archive, database: Database, spectrum: Path, header: fits.Header, v: FrameVelocity
) -> Path:
    """Write the RV product and the database row of a frame; return the product's path."""
    destination = rv_path(archive, spectrum, header)
    with archive.atomic_path(destination.relative_to(archive.root)) as temp:
        rv_product(header, v).writeto(temp)
    record_velocity(database, archive, spectrum, header, v)
    return destination


def measure_files(
    archive: Archive,
    database: Database,
    spectra: Iterable[Path],
    template: Path | None = None,
) -> dict[str, FrameVelocity]:
    """(Re)measure the RV of reduced 1-D spectra: RV product, DB row, keywords in the 1-D file.

    A file that cannot be read is reported with its reason; the others go on.
    """
    from photonpipe.platform.progress import track

    out: dict[str, FrameVelocity] = {}
    for item in track(list(spectra), "echelle rv", "spectrum", logger=log, status=_name):
        spectrum = Path(item)
        try:
            with fits.open(spectrum) as hdul:
                header = hdul[0].header.copy()
                table = hdul["SPECTRUM"].data.copy()
                spectrum_hdu = hdul["SPECTRUM"].copy()
        except (OSError, KeyError) as exc:
            out[str(spectrum)] = FrameVelocity("unknown", reason=f"{spectrum}: unreadable ({exc})")
            continue
        velocity = frame_velocity(archive, database, spectrum, header, table, template)
        store_velocity(archive, database, spectrum, header, spectrum_hdu, velocity)
        out[str(spectrum)] = velocity
    return out


#: RV keywords of a 1-D product's header, replaced when the RV is measured again.
RV_KEYWORDS = (
    "RV",
    "RVERR",
    "RVFORMAL",
    "RVRAW",
    "RVCOARSE",
    "BARYCORR",
    "BJD",
    "MIDTIME",
    "MIDTYPE",
    "ZEROFILE",
    "ZEROLOO",
    "RVNBLK",
    "RVSNR",
    "RVFLAG",
    "RVTARGET",
)


def store_velocity(
    archive: Archive,
    database: Database,
    spectrum: Path,
    header: fits.Header,
    spectrum_hdu: fits.BinTableHDU,
    velocity: FrameVelocity,
) -> Path:
    """Record a (re)measured RV: RV product, database row, keywords of the 1-D file.

    Returns
    -------
    pathlib.Path
        The RV product.
    """
    for key in RV_KEYWORDS:
        header.remove(key, ignore_missing=True, remove_all=True)
    product = write_velocity(archive, database, spectrum, header, velocity)
    rv_header_cards(header, velocity)
    with atomic_output(spectrum) as temp:
        fits.HDUList([fits.PrimaryHDU(header=header), spectrum_hdu]).writeto(temp)
    return product


#: Fewest frames of a star in a night for :func:`night_zeros` to make a ZERO of it.
MIN_NIGHT_ZERO_FRAMES = 2
#: Largest spread [km/s] of a night's coarse velocities (frames against the first one) for its
#: frames to be stacked into a ZERO: beyond it the star is not constant over the night.
NIGHT_ZERO_MAX_SPREAD_KMS = 3.0
#: Largest reduced χ² of a night's leave-one-out RVs about their weighted mean for its ZERO to
#: be kept: beyond it the star varies (or the errors are wrong) and its template would be smeared.
NIGHT_ZERO_MAX_CHI2 = 25.0


@dataclass
class NightZeros:
    """ZEROs that :func:`night_zeros` made and the RVs it measured with them."""

    zeros: list[Path] = field(default_factory=list)
    velocities: dict[str, FrameVelocity] = field(default_factory=dict)  # 1-D path → RV
    failed: dict[str, str] = field(default_factory=dict)  # what → why no ZERO


def night_zeros(archive: Archive, database: Database, spectra: Sequence[Path]) -> NightZeros:
    """Make a ZERO of each star of a night that has none, and measure the star's RVs with it.

    The reduced spectra whose RV is missing only for want of a template (a standard star
    observed for the first time, with a catalogue RV in the registry) are grouped by star,
    instrument, camera and lit fibres; a group of at least :data:`MIN_NIGHT_ZERO_FRAMES`
    frames is stacked into a ZERO (:func:`write_zero`, recorded in the zeros registry, so later
    nights pick it). Each frame's RV is then measured against the ZERO of the *other* frames of
    the group (leave one out, ``ZEROLOO`` in the header): a frame measured against a template
    holding its own photons would have its noise partly cancelled, and errors smaller than
    reported. The star must be constant over the night (a standard): its catalogue RV sets
    the template's rest frame, so the RVs of the group scatter about it. A group whose frames
    move against each other by more than :data:`NIGHT_ZERO_MAX_SPREAD_KMS` (coarse CCF
    against the first frame), or whose leave-one-out RVs scatter about their mean with a
    reduced χ² above :data:`NIGHT_ZERO_MAX_CHI2`, gets no ZERO (its frames keep "no ZERO
    template"; the reason is in ``failed`` and the log).

    Parameters
    ----------
    spectra : sequence of Path
        Reduced 1-D spectra of the night (others are not read).

    Returns
    -------
    NightZeros
    """
    out = NightZeros()
    groups: dict[tuple[str, str, str, str, str], list[Path]] = {}
    for spectrum in spectra:
        try:
            header = fits.getheader(spectrum)
        except OSError:
            continue
        if "RV" in header or not str(header.get("RVFLAG", "")).startswith(NO_TEMPLATE):
            continue
        key = (
            str(header.get("RVTARGET", "")),
            str(header.get("SITEID", "")).strip(),
            str(header.get("TELESCOP", "")).strip(),
            str(header.get("INSTRUME", "")).strip(),
            lit_fibres(str(header.get("OBJECTS", ""))),
        )
        groups.setdefault(key, []).append(Path(spectrum))
    for (target, site, instrument_name, camera, fibres), paths in sorted(groups.items()):
        what = f"ZERO of {target} ({instrument_name}, fibres {fibres})"
        try:
            made = _night_zero(archive, database, target, site, instrument_name, camera, paths)
        except PhotonpipeError as exc:
            log.warning("no %s from this night: %s", what, exc)
            out.failed[what] = str(exc)
            continue
        out.zeros.append(made[0])
        out.velocities.update(made[1])
    return out


def _night_zero(
    archive: Archive,
    database: Database,
    target: str,
    site: str,
    instrument_name: str,
    camera: str,
    paths: Sequence[Path],
) -> tuple[Path, dict[str, FrameVelocity]]:
    """One star's night ZERO and its frames' leave-one-out RVs (see :func:`night_zeros`)."""
    if len(paths) < MIN_NIGHT_ZERO_FRAMES:
        raise PhotonpipeError(f"{len(paths)} frame, need {MIN_NIGHT_ZERO_FRAMES}")
    record = find_target(database, name=target)
    if record is None:
        raise PhotonpipeError(f"target {target!r} is not in the targets registry")
    times = [
        datetime.fromisoformat(str(fits.getval(p, "DATE-OBS"))).replace(tzinfo=UTC) for p in paths
    ]
    frames, skipped = rest_frames(
        archive,
        record,
        site=site,
        instrument_name=instrument_name,
        camera=camera,
        start=min(times),
        end=max(times),
        spectra=paths,
    )
    if len(frames) < MIN_NIGHT_ZERO_FRAMES:
        raise PhotonpipeError(f"{len(frames)} usable frame(s): {'; '.join(skipped.values())}")
    # a cheap test first: the frames at rest against the first one (coarse CCF)
    first = frames[0].orders
    coarse = []
    for frame in frames[1:]:
        common = sorted(set(first) & set(frame.orders))
        # five orders about the middle are plenty to see km/s (and cost a fraction of all 67)
        middle = max(0, len(common) // 2 - 2)
        common = common[middle : middle + 5]
        try:
            shift, _, _ = coarse_velocity(
                [frame.orders[o] for o in common], [first[o] for o in common]
            )
        except RadialVelocityError as exc:
            raise PhotonpipeError(f"{frame.path.name}: no CCF with the others ({exc})") from None
        coarse.append(shift)
    spread = max(map(abs, coarse))
    if spread > NIGHT_ZERO_MAX_SPREAD_KMS:
        raise PhotonpipeError(
            f"its frames move by up to {spread:.1f} km/s against each other "
            f"(> {NIGHT_ZERO_MAX_SPREAD_KMS} km/s): not a constant star"
        )
    zero = write_zero(
        archive,
        database,
        record,
        frames,
        site=site,
        instrument_name=instrument_name,
        camera=camera,
        skipped=skipped,
    )
    full = read_zero(zero.path)
    measured: dict[str, tuple[FrameVelocity, fits.Header, fits.BinTableHDU]] = {}
    for i, frame in enumerate(zero.frames):
        others = [f.orders for j, f in enumerate(zero.frames) if j != i]
        template = Zero(full.path, full.header, combine_rest_orders(others))
        measured[str(frame.path)] = _measure_left_out(archive, frame.path, template)
    good = [v for v, _, _ in measured.values() if v.rv_kms is not None and v.error_kms]
    if len(good) >= 2:
        rv = np.array([v.rv_kms for v in good], dtype=float)
        sigma = np.array([v.error_kms for v in good], dtype=float)
        weights = 1.0 / sigma**2
        mean = float(np.sum(weights * rv) / weights.sum())
        chi2 = float(np.sum(((rv - mean) / sigma) ** 2) / (rv.size - 1))
        if chi2 > NIGHT_ZERO_MAX_CHI2:
            _forget_zero(archive, database, zero.path)
            raise PhotonpipeError(
                f"its leave-one-out RVs scatter with reduced χ² {chi2:.0f} "
                f"(> {NIGHT_ZERO_MAX_CHI2:.0f}, RMS {np.std(rv) * 1000:.0f} m/s): "
                "not a constant star; ZERO removed"
            )
    velocities = {}
    for spectrum, (velocity, header, hdu) in measured.items():
        store_velocity(archive, database, Path(spectrum), header, hdu, velocity)
        if velocity.reason:
            log.warning("%s: no RV: %s", Path(spectrum).name, velocity.reason)
        velocities[spectrum] = velocity
    return zero.path, velocities


def _forget_zero(archive: Archive, database: Database, path: Path) -> None:
    """Remove a ZERO file and its registry row."""
    relative = archive.relative(path)
    with database.session() as session:
        for record in session.scalars(select(ZeroRecord).where(ZeroRecord.path == relative)):
            session.delete(record)
    path.unlink(missing_ok=True)


def _measure_left_out(
    archive: Archive, spectrum: Path, zero: Zero
) -> tuple[FrameVelocity, fits.Header, fits.BinTableHDU]:
    """Measure one frame against a ZERO made without it; return the RV and what to store it in."""
    with fits.open(spectrum) as hdul:
        header = hdul[0].header.copy()
        table = hdul["SPECTRUM"].data.copy()
        spectrum_hdu = hdul["SPECTRUM"].copy()
    fibre = int(header.get("SCIFIBRE", 0))
    velocity = FrameVelocity(str(zero.header.get("OBJECT", "")), snr=signal_to_noise(table, fibre))
    try:
        result, bary = measure_spectrum(spectrum, header, table, zero)
    except InputFileError as exc:
        velocity.reason = str(exc)
    else:
        _set_velocity(archive, velocity, result, bary, zero.path)
        velocity.leave_one_out = True
    return velocity, header, spectrum_hdu


def _name(path: str | Path) -> str:
    return Path(path).name


def list_velocities(database: Database) -> list[RadialVelocityRecord]:
    """Rows of the RV table, by target and BJD."""
    with database.session() as session:
        records = list(
            session.scalars(
                select(RadialVelocityRecord).order_by(
                    RadialVelocityRecord.target, RadialVelocityRecord.bjd
                )
            )
        )
        session.expunge_all()
    return records
