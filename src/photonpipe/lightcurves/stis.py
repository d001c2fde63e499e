"""STIS TIME-TAG (``_tag``) → corrtag-like event lists, as hstlc's ``stis_corrtag`` did.

A STIS tag file gives, per event, TIME [s], AXIS1 and AXIS2 (Doppler-corrected position in
*high-resolution* MAMA pixels, 0-based, 2048 per axis) and DETAXIS1 (AXIS1 before the Doppler
correction). The x1d of the same exposure is sampled in low-resolution pixels (1024 per axis) and
gives the wavelength of each column and the extraction box of each order. The conversion:

* XCORR = XFULL = AXIS1 / 2 − 0.25 and YCORR = YFULL = AXIS2 / 2 − 0.25 [low-res pixel, centre
  convention, so that a high-res pixel falls inside the low-res pixel that contains it];
  XDOPP = DETAXIS1 / 2 − 0.25; RAWX, RAWY = AXIS1, AXIS2; PHA = 0 (the MAMAs have none).
* WAVELENGTH: first-order modes (one x1d row) interpolate the row's WAVELENGTH array at XCORR;
  echelle modes (several SPORDER rows) give an event the wavelength of the order whose extraction
  box (EXTRLOCY or A2CENTER ± EXTRSIZE/2; x1d positions are 1-based) contains it, otherwise 0.
* EPSILON = 1 / flat and DQ = bad-pixel value at the event's low-res pixel when a flat field or
  bad-pixel image is given; otherwise EPSILON = 1 and DQ = 0. Header keywords EPSSRC and DQSRC
  record which.
* Extraction keywords SP_LOC_A ... B_HGT2_A (first order, trace slope fitted to EXTRLOCY, measured
  from SP_XREF) or a REGIONS table (echelle, one row per order) so that the corrtag extracts
  exactly like a COS one.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from astropy.io import fits

from photonpipe import __version__
from photonpipe.lightcurves.formats import (
    STIS_CORRTAG,
    STIS_TAG,
    EventFile,
    ExtractionRegion,
    LightCurveInputError,
    MissingColumnError,
    X1DFile,
    X1DRow,
    read_events,
    read_x1d,
)
from photonpipe.platform.archive import atomic_output
from photonpipe.platform.headers import check_fits_structure, header_int

#: Low-resolution STIS MAMA frame size [pixel].
LOWRES_SIZE = 1024
#: CALSTIS default serious-data-quality bits, used when neither file gives SDQFLAGS.
STIS_DEFAULT_SDQFLAGS = 31743


def _lowres(axis: np.ndarray) -> np.ndarray:
    return axis.astype(np.float32) / np.float32(2.0) - np.float32(0.25)


def _box_center(row: X1DRow, x: np.ndarray | float) -> np.ndarray:
    """0-based centre of the order's extraction box at low-res column ``x`` [pixel]."""
    if "EXTRLOCY" in row.extras:
        locy = np.asarray(row.extras["EXTRLOCY"], dtype=np.float64) - 1.0
        return np.asarray(np.interp(x, np.arange(len(locy)), locy))
    if "A2CENTER" not in row.extras:
        raise KeyError("A2CENTER")
    return np.full(np.shape(x), float(row.extras["A2CENTER"]) - 1.0)


def _region(row: X1DRow, path: Path) -> ExtractionRegion:
    needed = ("A2CENTER", "EXTRSIZE", "BK1SIZE", "BK2SIZE", "BK1OFFST", "BK2OFFST")
    missing = [k for k in needed if k not in row.extras]
    if missing:
        raise MissingColumnError(path, f"x1d SCI table lacks {', '.join(missing)} ({row.name})")
    x_ref = LOWRES_SIZE / 2.0
    if "EXTRLOCY" in row.extras:
        locy = np.asarray(row.extras["EXTRLOCY"], dtype=np.float64) - 1.0
        columns = np.arange(len(locy))
        slope, center = np.polyfit(columns - x_ref, locy, 1)
    else:
        slope, center = 0.0, float(row.extras["A2CENTER"]) - 1.0
    return ExtractionRegion(
        row.name,
        float(center),
        float(row.extras["EXTRSIZE"]),
        float(slope),
        x_ref,
        (float(center + row.extras["BK1OFFST"]), float(center + row.extras["BK2OFFST"])),
        (float(row.extras["BK1SIZE"]), float(row.extras["BK2SIZE"])),
        x1d_row=row.name,
    )


def _image(path: str | os.PathLike[str], what: str) -> np.ndarray:
    path = Path(path)
    check_fits_structure(path, path, error=LightCurveInputError)
    try:
        with fits.open(path) as hdul:
            for hdu in hdul:
                if hdu.data is not None and np.ndim(hdu.data) == 2:
                    image = np.asarray(hdu.data, dtype=np.float64)
                    break
            else:
                raise LightCurveInputError(path, f"{what} has no 2-D image")
    except (OSError, ValueError, TypeError, IndexError, EOFError) as exc:
        raise LightCurveInputError(path, f"{what} unreadable ({exc})") from exc
    if not bool(np.isfinite(image).all()):
        raise LightCurveInputError(path, f"{what} has NaN or infinite pixels")
    if image.shape != (LOWRES_SIZE, LOWRES_SIZE):
        raise LightCurveInputError(
            path, f"{what} is {image.shape}, expected {LOWRES_SIZE}×{LOWRES_SIZE} low-res pixels"
        )
    return image


def _wavelengths(
    spectrum: X1DFile, x: np.ndarray, y: np.ndarray
) -> tuple[np.ndarray, list[ExtractionRegion]]:
    """Return the wavelength of every event (from the x1d rows) and the rows' regions.

    Parameters
    ----------
    spectrum : X1DFile
        The x1d of the exposure.
    x, y : numpy.ndarray
        Low-res event positions [pixel].

    Returns
    -------
    wavelength : numpy.ndarray
        float32 [Å]: the single row's wavelength at ``x``; with several rows (echelle), each
        row's at the events inside its extraction box, 0 outside every box.
    regions : list of ExtractionRegion
        One per x1d row.
    """
    wavelength = np.zeros(len(x), dtype=np.float32)
    if len(spectrum.rows) == 1:
        row = spectrum.rows[0]
        wavelength[:] = np.interp(x, np.arange(len(row.wavelength)), row.wavelength)
        return wavelength, [_region(row, spectrum.path)]
    regions = []
    for row in spectrum.rows:
        region = _region(row, spectrum.path)
        regions.append(region)
        inside = np.abs(y - _box_center(row, x)) <= region.height / 2.0
        wavelength[inside] = np.interp(x[inside], np.arange(len(row.wavelength)), row.wavelength)
    return wavelength, regions


def _epsilon_and_dq(
    header: fits.Header,
    xi: np.ndarray,
    yi: np.ndarray,
    flat: str | os.PathLike[str] | None,
    badpix: str | os.PathLike[str] | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Look up the events' flat-field weights and data-quality flags; note their sources.

    Parameters
    ----------
    header : astropy.io.fits.Header
        The corrtag EVENTS header; EPSSRC and DQSRC are set in it.
    xi, yi : numpy.ndarray
        Low-res pixel indices of the events.
    flat, badpix : path-like, optional
        Low-res flat field and data-quality image (see :func:`tag_to_corrtag`).

    Returns
    -------
    epsilon : numpy.ndarray
        1 / flat at each event (0 where the flat is not positive), or ones without a flat.
    dq : numpy.ndarray
        int16 data-quality value at each event, or zeros without a bad-pixel image.
    """
    if flat is not None:
        flat_image = _image(flat, "flat field")
        with np.errstate(divide="ignore"):
            epsilon = np.where(flat_image[yi, xi] > 0, 1.0 / flat_image[yi, xi], 0.0)
        header["EPSSRC"] = (Path(flat).name[:60], "EPSILON = 1/flat from this file")
    else:
        epsilon = np.ones(len(xi))
        header["EPSSRC"] = ("NONE", "no flat given: EPSILON = 1")
    if badpix is not None:
        dq = _image(badpix, "bad-pixel image")[yi, xi].astype(np.int16)
        header["DQSRC"] = (Path(badpix).name[:60], "DQ from this bad-pixel image")
    else:
        dq = np.zeros(len(xi), dtype=np.int16)
        header["DQSRC"] = ("NONE", "no bad-pixel image given: DQ = 0")
    return epsilon, dq


def _sdqflags(spectrum: X1DFile, events: EventFile) -> int:
    """Return the serious-data-quality mask: the x1d's SDQFLAGS, else the tag's, or the default.

    Parameters
    ----------
    spectrum : X1DFile
        The x1d (its SCI header is looked at first).
    events : EventFile
        The tag events (its EVENTS header is looked at next).

    Returns
    -------
    int
        SDQFLAGS bit mask.

    Raises
    ------
    LightCurveInputError
        SDQFLAGS present but not a non-negative integer.
    """
    for source, where in ((spectrum, "SCI"), (events, "EVENTS")):
        source_header = source.sci_header if isinstance(source, X1DFile) else source.events_header
        if "SDQFLAGS" in source_header:
            return header_int(
                source_header, "SDQFLAGS", source.path, where=where, minimum=0,
                error=LightCurveInputError,
            )  # fmt: skip
    return STIS_DEFAULT_SDQFLAGS


def _region_keywords(header: fits.Header, regions: list[ExtractionRegion]) -> None:
    """Write the extraction region of a first-order (one-row) x1d into ``header``.

    Parameters
    ----------
    header : astropy.io.fits.Header
        The corrtag EVENTS header; SP_XREF, SP_ROW_A, SP_LOC_A … B_HGT2_A are set in it.
    regions : list of ExtractionRegion
        The x1d's regions; nothing is written unless there is exactly one.
    """
    if len(regions) != 1:
        return
    region = regions[0]
    header["SP_XREF"] = (region.x_ref, "column the trace slope is measured from")
    header["SP_ROW_A"] = (region.name, "x1d row of region A")
    for key, value in zip(
        ("SP_LOC_A", "SP_HGT_A", "SP_SLP_A", "B_BKG1_A", "B_BKG2_A", "B_HGT1_A", "B_HGT2_A"),
        (
            region.center,
            region.height,
            region.slope,
            *region.background,
            *region.background_height,
        ),
        strict=True,
    ):
        header[key] = value


def tag_to_corrtag(
    tag: str | os.PathLike[str] | EventFile,
    x1d: str | os.PathLike[str] | X1DFile,
    *,
    flat: str | os.PathLike[str] | None = None,
    badpix: str | os.PathLike[str] | None = None,
) -> EventFile:
    """Convert a STIS tag event list to a corrtag-like :class:`EventFile`.

    Parameters
    ----------
    tag : path-like or EventFile
        The ``_tag.fits`` file (or its already-read events).
    x1d : path-like or X1DFile
        The x1d of the same exposure: wavelengths and extraction boxes.
    flat : path-like, optional
        Low-res (1024×1024) flat field; EPSILON = 1 / flat.
    badpix : path-like, optional
        Low-res (1024×1024) data-quality image; an event's DQ is the value at its pixel.

    Returns
    -------
    EventFile
        Kind ``stis_corrtag`` with columns TIME, RAWX, RAWY, XCORR, YCORR, XDOPP, XFULL, YFULL,
        WAVELENGTH, EPSILON, DQ, PHA and its extraction regions.

    Raises
    ------
    LightCurveInputError
        Wrong kinds of file, missing x1d columns, badly shaped flat or bad-pixel image.
    """
    events = tag if isinstance(tag, EventFile) else read_events(tag)
    if events.kind != STIS_TAG:
        raise LightCurveInputError(events.path, f"not a STIS tag file ({events.kind})")
    spectrum = x1d if isinstance(x1d, X1DFile) else read_x1d(x1d)
    cols = events.columns
    if "DETAXIS1" not in cols:
        cols = read_events(events.path).columns
    axis1 = cols["AXIS1"].astype(np.int32)
    axis2 = cols["AXIS2"].astype(np.int32)
    x = _lowres(axis1)
    y = _lowres(axis2)
    xi = np.clip(axis1 // 2, 0, LOWRES_SIZE - 1)
    yi = np.clip(axis2 // 2, 0, LOWRES_SIZE - 1)
    wavelength, regions = _wavelengths(spectrum, x, y)
    header = events.events_header.copy()
    epsilon, dq = _epsilon_and_dq(header, xi, yi, flat, badpix)
    header["SDQFLAGS"] = _sdqflags(spectrum, events)
    header["TAG2CORR"] = (f"photonpipe {__version__}", "STIS tag converted to corrtag")
    header["TAGFILE"] = events.path.name
    header["X1DFILE"] = spectrum.path.name
    _region_keywords(header, regions)
    columns: dict[str, np.ndarray] = {
        "TIME": cols["TIME"].astype(np.float64),
        "RAWX": axis1.astype(np.int16),
        "RAWY": axis2.astype(np.int16),
        "XCORR": x,
        "YCORR": y,
        "XDOPP": _lowres(cols["DETAXIS1"].astype(np.int32)),
        "XFULL": x.copy(),
        "YFULL": y.copy(),
        "WAVELENGTH": wavelength,
        "EPSILON": epsilon.astype(np.float32),
        "DQ": dq,
        "PHA": np.zeros(len(x), dtype=np.uint8),
    }
    return EventFile(
        events.path, STIS_CORRTAG, events.primary.copy(), header, columns, events.gti, regions
    )


def corrtag_hdulist(events: EventFile) -> fits.HDUList:
    """FITS HDUs of a corrtag-like event list (EVENTS, GTI and, for echelle, REGIONS)."""
    formats = {
        "TIME": ("D", "s"),
        "RAWX": ("I", "pixel"),
        "RAWY": ("I", "pixel"),
        "XCORR": ("E", "pixel"),
        "YCORR": ("E", "pixel"),
        "XDOPP": ("E", "pixel"),
        "XFULL": ("E", "pixel"),
        "YFULL": ("E", "pixel"),
        "WAVELENGTH": ("E", "Angstrom"),
        "EPSILON": ("E", ""),
        "DQ": ("I", ""),
        "PHA": ("B", ""),
    }
    columns = [
        fits.Column(name=name, format=fmt, unit=unit or None, array=events.columns[name])
        for name, (fmt, unit) in formats.items()
    ]
    hdus: list[fits.hdu.base.ExtensionHDU] = []
    evt = fits.BinTableHDU.from_columns(columns, header=events.events_header.copy(), name="EVENTS")
    hdus.append(evt)
    gti = fits.BinTableHDU.from_columns(
        [
            fits.Column(name="START", format="D", unit="s", array=events.gti[:, 0]),
            fits.Column(name="STOP", format="D", unit="s", array=events.gti[:, 1]),
        ],
        name="GTI",
    )
    hdus.append(gti)
    if len(events.regions) > 1:
        r = events.regions
        hdus.append(
            fits.BinTableHDU.from_columns(
                [
                    fits.Column(name="NAME", format="16A", array=[g.name for g in r]),
                    fits.Column(name="SP_LOC", format="D", array=[g.center for g in r]),
                    fits.Column(name="SP_HGT", format="D", array=[g.height for g in r]),
                    fits.Column(name="SP_SLP", format="D", array=[g.slope for g in r]),
                    fits.Column(name="X_REF", format="D", array=[g.x_ref for g in r]),
                    fits.Column(name="B_BKG1", format="D", array=[g.background[0] for g in r]),
                    fits.Column(name="B_BKG2", format="D", array=[g.background[1] for g in r]),
                    fits.Column(
                        name="B_HGT1", format="D", array=[g.background_height[0] for g in r]
                    ),
                    fits.Column(
                        name="B_HGT2", format="D", array=[g.background_height[1] for g in r]
                    ),
                ],
                name="REGIONS",
            )
        )
    return fits.HDUList([fits.PrimaryHDU(header=events.primary.copy()), *hdus])


def write_corrtag(events: EventFile, path: str | os.PathLike[str]) -> Path:
    """Write a corrtag-like event list atomically (temporary file, then rename).

    Parameters
    ----------
    events : EventFile
        From :func:`tag_to_corrtag`.
    path : path-like
        Destination, conventionally ``<rootname>_corrtag.fits``.

    Returns
    -------
    Path
        The written file.
    """
    path = Path(path)
    with atomic_output(path) as temporary:
        corrtag_hdulist(events).writeto(temporary, checksum=True)
    return path
