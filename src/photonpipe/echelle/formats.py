"""Reading raw NRES frames: fpacked FITS, header checks, frame types and fibres lit.

A raw frame is ``{site}nrs{NN}-{camera}-{YYYYMMDD}-{NNNN}-{b00|d00|w00|a00|e00}.fits.fz``: an empty
primary HDU and a RICE-compressed image with the header keywords listed in
:data:`REQUIRED_KEYWORDS`. Anything else (an unreadable or truncated file, another instrument,
a missing keyword) raises :class:`~photonpipe.errors.InputFileError` naming the file.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.utils.exceptions import AstropyUserWarning
from numpy.typing import NDArray

from photonpipe.echelle import instrument
from photonpipe.errors import InputFileError
from photonpipe.platform.headers import (
    FITS_PARSE_ERRORS,
    check_fits_structure,
    header_float,
    header_str,
    malformed_fits,
)

REQUIRED_KEYWORDS = (
    "OBSTYPE",
    "OBJECTS",
    "DATE-OBS",
    "DAY-OBS",
    "EXPTIME",
    "SITEID",
    "INSTRUME",
    "TELESCOP",
    "GAIN",
    "RDNOISE",
    "BIASSEC",
    "TRIMSEC",
)

#: OBSTYPE → calibration type of the master it feeds (science frames: None).
FRAME_TYPES = {"BIAS": "BIAS", "DARK": "DARK", "LAMPFLAT": "FLAT", "DOUBLE": "ARC", "TARGET": None}

_SECTION = re.compile(r"^\[(\d+):(\d+),(\d+):(\d+)\]$")
_NAME = re.compile(
    r"^(?P<site>[a-z]{3})nrs(?P<nres>\d\d)-(?P<camera>f[a-z]\d\d)-(?P<day>\d{8})-(?P<num>\d{4})-(?P<kind>[bdwae]00)\.fits(\.fz)?$"
)


def parse_section(path: str | Path, value: str) -> tuple[slice, slice]:
    """Convert a FITS section ``[x1:x2,y1:y2]`` (1-based, inclusive) to (row, column) slices."""
    match = _SECTION.match(str(value).strip())
    if not match:
        raise InputFileError(path, f"malformed section {value!r}")
    x1, x2, y1, y2 = (int(v) for v in match.groups())
    return slice(y1 - 1, y2), slice(x1 - 1, x2)


def fibres_lit(objects: str) -> str:
    """Fibres with light from OBJECTS (``star&thar&none`` → ``"110"``)."""
    parts = objects.split("&")
    return "".join("0" if part.strip().lower() == "none" else "1" for part in parts)


@dataclass
class RawFrame:
    """A raw frame as read: header, pixel data [ADU] with overscan, and its identity."""

    path: Path
    header: fits.Header
    data: NDArray[np.float32]

    @property
    def obstype(self) -> str:
        """Return OBSTYPE (upper case)."""
        return str(self.header["OBSTYPE"]).strip().upper()

    @property
    def calibration_type(self) -> str | None:
        """Return the master type this frame feeds (None for science)."""
        return FRAME_TYPES[self.obstype]

    @property
    def fibres(self) -> str:
        """Return the fibres lit (``"110"``)."""
        return fibres_lit(str(self.header["OBJECTS"]))

    @property
    def dateobs(self) -> datetime:
        """Return DATE-OBS as an aware UTC datetime."""
        return parse_dateobs(self.path, str(self.header["DATE-OBS"]))

    @property
    def site(self) -> str:
        """Return SITEID."""
        return str(self.header["SITEID"]).strip()

    @property
    def instrument(self) -> str:
        """Return the instrument (TELESCOP, ``nres01``)."""
        return str(self.header["TELESCOP"]).strip()

    @property
    def camera(self) -> str:
        """Return the camera (INSTRUME, ``fl09``)."""
        return str(self.header["INSTRUME"]).strip()

    @property
    def offset(self) -> tuple[int, int]:
        """Full-detector (x0, y0) of the first read-out pixel (from DETSEC; 0, 0 if absent)."""
        if "DETSEC" not in self.header:
            return 0, 0
        rows, cols = parse_section(self.path, str(self.header["DETSEC"]))
        return int(cols.start), int(rows.start)


def parse_dateobs(path: str | Path, value: str) -> datetime:
    """Parse DATE-OBS (ISO 8601, UTC) to an aware datetime."""
    try:
        return datetime.fromisoformat(str(value).strip()).replace(tzinfo=UTC)
    except (ValueError, TypeError):
        raise InputFileError(path, f"DATE-OBS {value!r} is not an ISO date") from None


def _image_hdu(
    path: Path, hdul: fits.HDUList
) -> fits.ImageHDU | fits.CompImageHDU | fits.PrimaryHDU:
    for hdu in hdul:
        if (
            isinstance(hdu, fits.CompImageHDU | fits.ImageHDU | fits.PrimaryHDU)
            and hdu.header.get("NAXIS", 0) == 2
        ):
            return hdu
    raise InputFileError(path, "no 2-D image in the file (truncated, or not a raw frame)")


def check_header(path: str | Path, header: fits.Header) -> None:
    """Raise InputFileError when a keyword is missing or the frame is not from NRES."""
    missing = [key for key in REQUIRED_KEYWORDS if key not in header]
    if missing:
        raise InputFileError(path, f"missing keyword(s) {', '.join(missing)}")
    telescope = str(header["TELESCOP"]).strip().lower()
    camera = str(header["INSTRUME"]).strip()
    known_cameras = {info.camera for info in instrument.SITES.values()}
    if not telescope.startswith("nres") or camera not in known_cameras:
        raise InputFileError(
            path,
            f"not an NRES frame (TELESCOP={header['TELESCOP']!r}, INSTRUME={header['INSTRUME']!r})",
        )
    obstype = str(header["OBSTYPE"]).strip().upper()
    if obstype not in FRAME_TYPES:
        raise InputFileError(path, f"unknown OBSTYPE {obstype!r} (known: {', '.join(FRAME_TYPES)})")
    objects = header_str(header, "OBJECTS", path, upper=False)
    if len(objects.split("&")) != instrument.N_FIBRES:
        raise InputFileError(path, f"OBJECTS {header['OBJECTS']!r} does not name three fibres")
    # a bias has no exposure; every other frame type is exposed for some time
    header_float(header, "EXPTIME", path, minimum=0.0, positive=obstype != "BIAS")
    header_float(header, "GAIN", path, positive=True)
    header_float(header, "RDNOISE", path, minimum=0.0)
    header_str(header, "SITEID", path, upper=False)
    parse_dateobs(path, header_str(header, "DATE-OBS", path, upper=False))
    day = header_str(header, "DAY-OBS", path, upper=False)
    if not (len(day) == 8 and day.isdigit()):
        raise InputFileError(path, f"keyword DAY-OBS = {day!r} is not YYYYMMDD")
    height = header.get("ZNAXIS2", header.get("NAXIS2"))
    width = header.get("ZNAXIS1", header.get("NAXIS1"))
    for key in ("BIASSEC", "TRIMSEC") + (("DETSEC",) if "DETSEC" in header else ()):
        rows, cols = parse_section(path, header_str(header, key, path, upper=False))
        if rows.start < 0 or cols.start < 0 or rows.stop <= rows.start or cols.stop <= cols.start:
            raise InputFileError(path, f"keyword {key} = {header[key]!r} is an empty section")
        known = isinstance(height, int) and isinstance(width, int)
        inside = not known or (rows.stop <= height and cols.stop <= width)
        if key != "DETSEC" and not inside:
            raise InputFileError(
                path, f"keyword {key} = {header[key]!r} lies outside the {width}×{height} image"
            )


def read_header(path: str | Path) -> fits.Header:
    """Read and check the header of a raw frame without decompressing the pixels."""
    path = Path(path)
    check_fits_structure(path, path, corrupt="corrupt or truncated FITS/fpack file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AstropyUserWarning)
            with fits.open(path) as hdul:
                header = _image_hdu(path, hdul).header.copy()
    except InputFileError:
        raise
    except FITS_PARSE_ERRORS as exc:
        raise InputFileError(path, f"unreadable FITS file ({exc})") from None
    with malformed_fits(path):
        check_header(path, header)
    return header


def read_raw(path: str | Path) -> RawFrame:
    """Read and check a raw frame (header and decompressed pixels, float32 ADU).

    Raises
    ------
    InputFileError
        Unreadable, corrupt or truncated file; not an NRES frame; missing keyword.
    """
    path = Path(path)
    check_fits_structure(path, path, corrupt="corrupt or truncated FITS/fpack file")
    try:
        # warnings are recorded, not raised: a warning raised inside fits.open leaks the file
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", AstropyUserWarning)
            with fits.open(path) as hdul:
                hdu = _image_hdu(path, hdul)
                header = hdu.header.copy()
                data = np.asarray(hdu.data, dtype=np.float32)
    except InputFileError:
        raise
    except FITS_PARSE_ERRORS as exc:
        raise InputFileError(path, f"corrupt or truncated FITS/fpack file ({exc})") from None
    problems = [w for w in caught if issubclass(w.category, AstropyUserWarning)]
    if problems:
        raise InputFileError(path, f"corrupt or truncated FITS/fpack file ({problems[0].message})")
    with malformed_fits(path):
        check_header(path, header)
    if data.ndim != 2:
        raise InputFileError(path, "image is not 2-D")
    if not bool(np.isfinite(data).all()):
        raise InputFileError(path, "image has NaN or infinite pixels")
    return RawFrame(path, header, data)


def parse_name(path: str | Path) -> dict[str, str] | None:
    """Split a raw NRES file name into site, nres, camera, day, num, kind (None if not one)."""
    match = _NAME.match(Path(path).name)
    return match.groupdict() if match else None
