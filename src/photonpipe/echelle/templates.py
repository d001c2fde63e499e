"""NRES ZERO templates (``reduced/zero/``, table ``echelle_zero``) and their choice.

* **ZERO**: the reduced spectra of a standard star shifted to rest,
  ``λ_rest = λ_obs (1 + z_b) / (1 + z_cat)`` (z_b the barycentric correction at the exposure
  mid-point, z_cat the catalogue RV). Per order, pixels that disagree with the other frames by
  more than 5σ (cosmic rays the extraction could not see: a track along a column over most of
  the fibre's core) are dropped; each frame is interpolated (quintic spline in ln λ) onto a ln λ
  grid oversampled ×2, averaged with inverse-variance weights (IVAR: the inverse variance of the
  template's value), and smoothed with a Gaussian of σ = 0.7 native pixel; one template per
  order. A symmetric kernel does not move lines or blends: for a template T and T_s = T * g with
  g even, Σ (T − T_s(x − s))² is stationary at s = 0. The smoothing damps the noise in the
  template's derivative, which the fine fit of :mod:`photonpipe.spectra.rv` uses and which,
  between a block's few lines, is pure noise (measured on simulated full-size frames: RV error
  RMS 4.6 m/s unsmoothed, 4.0 m/s smoothed). Flags as nres-pipe's zeros.csv (four characters,
  see :func:`~photonpipe.echelle.observation.fibre_flag`).
* **Template choice**: the target's own good ZERO (same instrument and lit fibres, nearest in
  time), else the good ZERO vetted as a general standard nearest in (Teff, log g).
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.time import Time
from numpy.typing import NDArray
from scipy.ndimage import gaussian_filter1d, median_filter
from sqlalchemy import select

from photonpipe import __version__
from photonpipe.echelle.models import TargetRecord, ZeroRecord
from photonpipe.echelle.observation import (
    fibre_flag,
    frame_barycentric,
    science_name,
    science_orders,
)
from photonpipe.echelle.targets import MISSING, find_target, normalise_name
from photonpipe.errors import InputFileError, PhotonpipeError
from photonpipe.platform.archive import Archive
from photonpipe.platform.db import Database, upsert
from photonpipe.spectra.rv import (
    RadialVelocityError,
    Template,
)
from photonpipe.spectra.spectrum import C_KMS, Spectrum

log = logging.getLogger("photonpipe.echelle.rv")  # one logger for the RV modules

#: Oversampling of the ZERO's ln λ grid relative to the spectra's pixels.
ZERO_OVERSAMPLING = 2
#: Gaussian smoothing σ of the ZERO [native pixels]: the fine fit uses the template's derivative,
#: which in a noisy template is dominated by noise between the (sparse) lines; see the module
#: docstring.
ZERO_SMOOTHING = 0.7
#: Pixels of a ZERO's input frame further than this from the other frames are dropped [σ].
ZERO_CLIP = 5.0


# --------------------------------------------------------------------------- ZERO templates


@dataclass
class Zero:
    """A ZERO template: its header and one rest-frame spectrum per order."""

    path: Path
    header: fits.Header
    orders: dict[int, Spectrum]

    @property
    def instrument(self) -> str:
        """Instrument (TELESCOP) the ZERO was made on."""
        return str(self.header.get("TELESCOP", "")).strip()

    @property
    def fibres(self) -> str:
        """Lit fibres of the frames stacked (``110`` or ``011``)."""
        return str(self.header.get("FIBRES", "")).strip()


def read_zero(path: str | Path) -> Zero:
    """Read a ZERO file (table ``ZERO``: ORDER, WAVELENGTH [Å, rest], FLUX, IVAR)."""
    try:
        with fits.open(path) as hdul:
            header = hdul[0].header.copy()
            data = hdul["ZERO"].data
            orders = {
                int(row["ORDER"]): Spectrum(
                    np.array(row["WAVELENGTH"], float),
                    np.array(row["FLUX"], float),
                    np.array(row["IVAR"], float),
                )
                for row in data
            }
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise InputFileError(path, f"not a ZERO template ({exc})") from None
    if header.get("OBSTYPE") != "ZERO":
        raise InputFileError(path, "not a ZERO template (OBSTYPE is not ZERO)")
    return Zero(Path(path), header, orders)


def _reject_outliers(
    spectra: Sequence[Spectrum], loglam: NDArray[np.float64], clip: float
) -> list[Spectrum]:
    """Give ivar 0 to pixels of each frame that stand out from the other frames.

    Every frame is compared with the median of all frames (with two frames, with the other
    one) on a common ln λ grid, each scaled to it by a smooth ratio (continuum and throughput
    differ between exposures); pixels more than ``clip`` σ away, and their neighbours, are
    dropped. These are cosmic rays the extraction missed (a track along a column that covers
    most of the fibre's core) and bad columns: averaged into the template they would be
    features that exist in no star. With two frames only the higher pixel goes (cosmic rays
    only add charge); one frame is returned as it is.
    """
    if len(spectra) < 2:
        return list(spectra)
    values = np.full((len(spectra), loglam.size), np.nan)
    for i, spectrum in enumerate(spectra):
        try:
            value, _, trusted = Template(spectrum)(loglam)
        except RadialVelocityError:
            continue
        values[i] = np.where(trusted, value, np.nan)
    out = []
    for i, spectrum in enumerate(spectra):
        others = np.delete(values, i, axis=0) if len(spectra) == 2 else values
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # columns no frame covers: NaN
            reference = np.nanmedian(others, axis=0)
        own_loglam = np.log(spectrum.wavelength)
        covered = np.isfinite(reference)
        if covered.sum() < 50:
            out.append(spectrum)
            continue
        ref = np.interp(own_loglam, loglam[covered], reference[covered], left=np.nan, right=np.nan)
        good = (spectrum.ivar > 0) & np.isfinite(ref) & (ref > 0)
        if good.sum() < 50:
            out.append(spectrum)
            continue
        ratio = np.where(good, spectrum.flux / np.where(good, ref, 1.0), np.nan)
        # smooth ratio: running median over 101 pixels of the good ones, interpolated
        idx = np.flatnonzero(good)
        smooth = median_filter(ratio[idx], size=min(101, idx.size | 1), mode="nearest")
        scale = np.interp(np.arange(len(spectrum)), idx, smooth)
        sigma = 1.0 / np.sqrt(np.where(good, spectrum.ivar, 1.0))
        if len(spectra) == 2:
            # the two frames' noise: compare with the combined σ, drop only the higher
            other = spectra[1 - i]
            other_ivar = np.interp(own_loglam, np.log(other.wavelength), other.ivar)
            sigma = np.sqrt(
                sigma**2 + np.where(other_ivar > 0, 1.0 / np.maximum(other_ivar, 1e-300), np.inf)
            )
            residual = (spectrum.flux / scale - ref) / (sigma / scale)
            bad = good & (residual > clip)
        else:
            residual = (spectrum.flux / scale - ref) / (sigma / scale)
            bad = good & (np.abs(residual) > clip)
        if not bad.any():
            out.append(spectrum)
            continue
        bad = bad | np.roll(bad, 1) | np.roll(bad, -1)
        out.append(Spectrum(spectrum.wavelength, spectrum.flux, np.where(bad, 0.0, spectrum.ivar)))
    return out


def combine_rest_orders(
    frames: Sequence[dict[int, Spectrum]],
    oversampling: int = ZERO_OVERSAMPLING,
    smoothing: float = ZERO_SMOOTHING,
    clip: float = ZERO_CLIP,
) -> dict[int, Spectrum]:
    """Average rest-frame orders of several frames on an oversampled ln λ grid per order.

    Pixels that disagree with the other frames by more than ``clip`` σ are dropped first
    (:func:`_reject_outliers`). Each frame's order is then interpolated with a quintic spline
    in ln λ (its good pixels only); its inverse variance, interpolated linearly, is the weight,
    and the sum of the weights is the ZERO's IVAR: the inverse variance of the template's value
    at a point (the grid's points are not independent: neighbours share the native pixels'
    noise). The grid spans the part of the order every frame covers. The weighted mean is then
    smoothed with a Gaussian of ``smoothing`` native pixels (σ) to damp the noise in the template's
    derivative.
    """
    out: dict[int, Spectrum] = {}
    common = set.intersection(*(set(frame) for frame in frames)) if frames else set()
    for order in sorted(common):
        spectra = [frame[order] for frame in frames]
        bounds = []
        for spectrum in spectra:
            good = np.flatnonzero(spectrum.ivar > 0)
            if good.size < 20:
                break
            bounds.append((spectrum.wavelength[good[0]], spectrum.wavelength[good[-1]]))
        if len(bounds) != len(spectra):
            continue
        low = max(b[0] for b in bounds)
        high = min(b[1] for b in bounds)
        if high <= low:
            continue
        n = oversampling * len(spectra[0])
        loglam = np.linspace(math.log(low), math.log(high), n)
        if clip > 0:
            spectra = _reject_outliers(spectra, loglam, clip)
        total = np.zeros(n)
        weight = np.zeros(n)
        for spectrum in spectra:
            try:
                value, _, trusted = Template(spectrum)(loglam)
            except RadialVelocityError:
                continue
            ivar = np.interp(loglam, np.log(spectrum.wavelength), spectrum.ivar)
            w = np.where(trusted, ivar, 0.0)
            total += w * np.where(trusted, value, 0.0)
            weight += w
        if smoothing > 0:
            # a symmetric kernel does not move lines (nor blends): see the module docstring
            width = smoothing * oversampling
            total = gaussian_filter1d(total, width, mode="nearest")
            smoothed_weight = gaussian_filter1d(weight, width, mode="nearest")
        else:
            smoothed_weight = weight
        good = (weight > 0) & (smoothed_weight > 0)
        flux = np.where(good, total / np.where(good, smoothed_weight, 1.0), 0.0)
        out[order] = Spectrum(np.exp(loglam), flux, np.where(good, weight, 0.0))
    return out


@dataclass
class ZeroResult:
    """A ZERO written by :func:`make_zero` and the spectra skipped with their reasons."""

    path: Path
    inputs: list[str]
    skipped: dict[str, str] = field(default_factory=dict)
    frames: list[RestFrame] = field(default_factory=list)  # the spectra stacked, at rest


def spectrum_files(archive: Archive, site: str, instrument_name: str) -> list[Path]:
    """Reduced 1-D science spectra of an instrument."""
    return sorted(archive.path(site, instrument_name, "reduced", "spec").glob("*-1d.fits"))


@dataclass
class RestFrame:
    """A reduced spectrum of a standard star shifted to rest, as a ZERO input."""

    path: Path
    orders: dict[int, Spectrum]
    jd: float  # JD (UTC) of the exposure mid-point
    objects: str  # OBJECTS of the frame


def rest_frames(
    archive: Archive,
    record: TargetRecord,
    *,
    site: str,
    instrument_name: str,
    camera: str,
    start: datetime,
    end: datetime,
    spectra: Sequence[Path] | None = None,
) -> tuple[list[RestFrame], dict[str, str]]:
    """Read the reduced spectra of a star observed in [start, end] and shift them to rest.

    ``λ_rest = λ_obs (1 + z_b) / (1 + z_cat)`` (barycentric correction at the mid-point,
    catalogue RV of ``record``), science fibre, blaze-normalised orders.

    Parameters
    ----------
    spectra : sequence of Path, optional
        The 1-D spectra to consider (default: every reduced spectrum of the instrument).

    Returns
    -------
    frames : list of RestFrame
    skipped : dict
        Spectra of the star that could not be used, with the reason.
    """
    if record.rv is None:
        raise PhotonpipeError(f"target {record.name} has no catalogue RV to shift it to rest")
    frames: list[RestFrame] = []
    skipped: dict[str, str] = {}
    candidates = spectrum_files(archive, site, instrument_name) if spectra is None else spectra
    for path in candidates:
        try:
            with fits.open(path) as hdul:
                header = hdul[0].header.copy()
                table = hdul["SPECTRUM"].data.copy()
        except (OSError, KeyError) as exc:
            skipped[str(path)] = f"unreadable ({exc})"
            continue
        name = science_name(str(header.get("OBJECTS", "")))
        if name is None or normalise_name(name) != normalise_name(record.name):
            continue
        if str(header.get("INSTRUME", "")).strip() != camera:
            continue
        when = datetime.fromisoformat(str(header["DATE-OBS"])).replace(tzinfo=UTC)
        if not start <= when <= end:
            continue
        try:
            bary = frame_barycentric(path, header)
        except InputFileError as exc:
            skipped[str(path)] = str(exc)
            continue
        # λ_rest = λ_obs (1 + z_b) / (1 + z_cat)
        factor = (1.0 + bary.correction_kms / C_KMS) / (1.0 + record.rv / C_KMS)
        orders = science_orders(table, int(header.get("SCIFIBRE", 0)))
        frames.append(
            RestFrame(
                Path(path),
                {o: Spectrum(s.wavelength * factor, s.flux, s.ivar) for o, s in orders.items()},
                float(Time(bary.midpoint, scale="utc").jd),
                str(header.get("OBJECTS", "")),
            )
        )
    return frames, skipped


def make_zero(
    archive: Archive,
    database: Database,
    *,
    site: str,
    instrument_name: str,
    camera: str,
    target: str,
    start: datetime,
    end: datetime,
    spectra: Sequence[Path] | None = None,
) -> ZeroResult:
    """Stack the reduced spectra of a standard star observed in [start, end] into a ZERO.

    Parameters
    ----------
    spectra : sequence of Path, optional
        The 1-D spectra to stack from (default: every reduced spectrum of the instrument); only
        those of ``target`` from ``camera`` observed in [start, end] are used.

    Raises
    ------
    PhotonpipeError
        Target unknown or without catalogue RV, no spectra, spectra with different lit fibres.
    """
    record = find_target(database, name=target)
    if record is None:
        raise PhotonpipeError(f"target {target!r} is not in the targets registry")
    frames, skipped = rest_frames(
        archive,
        record,
        site=site,
        instrument_name=instrument_name,
        camera=camera,
        start=start,
        end=end,
        spectra=spectra,
    )
    if not frames:
        raise PhotonpipeError(
            f"no reduced spectra of {record.name} from {camera} between "
            f"{start:%Y-%m-%dT%H:%M} and {end:%Y-%m-%dT%H:%M} (reduce the frames first)"
        )
    return write_zero(
        archive,
        database,
        record,
        frames,
        site=site,
        instrument_name=instrument_name,
        camera=camera,
        skipped=skipped,
    )


def write_zero(
    archive: Archive,
    database: Database,
    record: TargetRecord,
    frames: Sequence[RestFrame],
    *,
    site: str,
    instrument_name: str,
    camera: str,
    skipped: dict[str, str] | None = None,
) -> ZeroResult:
    """Combine rest frames of a standard star into a ZERO file and record it (:func:`make_zero`).

    Raises
    ------
    PhotonpipeError
        Frames with different lit fibres, or no order they all share.
    """
    fibre_sets = {lit_fibres(frame.objects) for frame in frames}
    if len(fibre_sets) != 1:
        raise PhotonpipeError(f"spectra of {record.name} have different lit fibres {fibre_sets}")
    fibres = fibre_sets.pop()
    orders = combine_rest_orders([frame.orders for frame in frames])
    if not orders:
        raise PhotonpipeError(f"the spectra of {record.name} share no usable order")
    inputs = [frame.path.name for frame in frames]
    jdate = float(np.mean([frame.jd for frame in frames]))
    stamp = Time(jdate, format="jd").datetime.strftime("%Y%m%d%H%M")
    nres = instrument_name.replace("nres", "")
    destination = archive.path(
        site,
        instrument_name,
        "reduced",
        "zero",
        f"zero_{normalise_name(record.name)}_{site}nrs{nres}-{camera}-{stamp}.fits",
    )
    header = fits.Header()
    header["SOFTWARE"] = (f"photonpipe {__version__}", "software that made this file")
    header["OBSTYPE"] = ("ZERO", "rest-frame template")
    header["OBJECT"] = (record.name, "standard star")
    header["SITEID"], header["TELESCOP"], header["INSTRUME"] = site, instrument_name, camera
    header["FIBRES"] = (fibres, "fibres lit in the frames stacked")
    header["NAVG"] = (len(frames), "spectra combined")
    header["JDATE"] = (jdate, "[d] mean JD (UTC) of the exposure mid-points")
    header["CATRV"] = (record.rv, "[km/s] catalogue RV removed")
    header["TEFF"] = (record.teff if record.teff is not None else MISSING, "[K]")
    header["LOGG"] = (record.logg if record.logg is not None else MISSING, "[cgs]")
    header["OVERSAMP"] = (ZERO_OVERSAMPLING, "ln-lambda grid oversampling")
    for number, name in enumerate(inputs, start=1):
        header[f"INPUT{number:03d}"] = (name, "input spectrum")
    keys = sorted(orders)
    n = len(orders[keys[0]])
    table = fits.BinTableHDU.from_columns(
        [
            fits.Column("ORDER", "J", array=keys),
            fits.Column(
                "WAVELENGTH",
                f"{n}D",
                unit="Angstrom",
                array=np.array([orders[k].wavelength for k in keys]),
            ),
            fits.Column("FLUX", f"{n}D", array=np.array([orders[k].flux for k in keys])),
            fits.Column("IVAR", f"{n}D", array=np.array([orders[k].ivar for k in keys])),
        ],
        name="ZERO",
    )
    with archive.atomic_path(destination.relative_to(archive.root)) as temp:
        fits.HDUList([fits.PrimaryHDU(header=header), table]).writeto(temp)
    b_v = record.bmag - record.vmag if record.bmag is not None and record.vmag is not None else None
    j_k = record.jmag - record.kmag if record.jmag is not None and record.kmag is not None else None
    with database.session() as session:
        upsert(
            session,
            ZeroRecord,
            [
                {
                    "path": archive.relative(destination),
                    "navg": len(frames),
                    "site": site,
                    "instrument": instrument_name,
                    "camera": camera,
                    "jdate": jdate,
                    "target": record.name,
                    "teff": record.teff,
                    "logg": record.logg,
                    "b_v": b_v,
                    "j_k": j_k,
                    "flags": f"00{fibre_flag(fibres)}0",
                    "created": datetime.now(UTC),
                }
            ],
            key=("path",),
        )
    log.info("ZERO %s from %d spectra of %s", destination.name, len(frames), record.name)
    return ZeroResult(destination, inputs, dict(skipped or {}), list(frames))


def lit_fibres(objects: str) -> str:
    """Return the lit-fibre flags of OBJECTS (``star&thar&none`` → ``110``)."""
    return "".join("0" if p.strip().lower() == "none" else "1" for p in objects.split("&"))


def list_zeros(database: Database) -> list[ZeroRecord]:
    """All ZERO records, oldest first."""
    with database.session() as session:
        records = list(session.scalars(select(ZeroRecord).order_by(ZeroRecord.jdate)))
        session.expunge_all()
    return records


def flag_zero(database: Database, archive: Archive, path: str | Path, flags: str) -> ZeroRecord:
    """Set the four-character flags of a ZERO (by its path or file name).

    Raises
    ------
    PhotonpipeError
        Flags not four characters, or no such ZERO.
    """
    if len(flags) != 4:
        raise PhotonpipeError(f"ZERO flags must have four characters, got {flags!r}")
    wanted = Path(path).name
    with database.session() as session:
        for record in session.scalars(select(ZeroRecord)):
            if Path(record.path).name == wanted:
                record.flags = flags
                session.flush()
                session.expunge(record)
                return record
    raise PhotonpipeError(f"no ZERO {wanted} in the zeros registry")


def choose_template(
    database: Database,
    target: TargetRecord,
    instrument_name: str,
    fibres: str,
    jdate: float,
) -> ZeroRecord | None:
    """Return the ZERO for a science frame.

    The target's own good ZERO (same instrument and lit fibres, nearest in time), else the good
    general standard (flag [1] = ``1``) nearest in Teff and log g, distance
    √((ΔTeff/500 K)² + (Δlog g/0.5)²); None when neither exists.
    """
    code = fibre_flag(fibres)
    usable = [
        z
        for z in list_zeros(database)
        if z.flags[0] == "0" and z.instrument == instrument_name and z.flags[2] == code
    ]
    own = [z for z in usable if normalise_name(z.target) == normalise_name(target.name)]
    if own:
        return min(own, key=lambda z: abs(z.jdate - jdate))
    standards = [z for z in usable if z.flags[1] == "1"]
    if not standards:
        return None
    if target.teff is None:
        return None

    def distance(z: ZeroRecord) -> float:
        dt = ((z.teff or 0.0) - (target.teff or 0.0)) / 500.0
        dg = ((z.logg or 4.5) - (target.logg if target.logg is not None else 4.5)) / 0.5
        return math.hypot(dt, dg)

    return min(standards, key=distance)
