"""Pre-processing of raw frames: overscan, trim, gain, masks, uncertainty, bias and dark.

Every processed image is in electrons and carries a per-pixel 1σ uncertainty [e⁻] and a bit mask
(:data:`MASK_SATURATED`, :data:`MASK_BAD`, :data:`MASK_COSMIC`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits
from numpy.typing import NDArray

from photonpipe.echelle.formats import RawFrame, parse_section
from photonpipe.errors import InputFileError

MASK_SATURATED = 1
MASK_BAD = 2
MASK_COSMIC = 4


@dataclass
class ProcessedImage:
    """A pre-processed frame or master calibration.

    Attributes
    ----------
    data : ndarray (float32)
        Signal [e⁻] (a master dark: [e⁻/s]).
    uncertainty : ndarray (float32)
        1σ uncertainty of ``data``, same unit.
    mask : ndarray (uint8)
        Bit mask: 1 saturated, 2 bad pixel, 4 cosmic ray.
    header : astropy.io.fits.Header
        Raw header (or the master's header).
    x0, y0 : int
        Full-detector column and row of pixel (0, 0).
    path : Path
        File the image came from.
    """

    data: NDArray[np.float32]
    uncertainty: NDArray[np.float32]
    mask: NDArray[np.uint8]
    header: fits.Header
    x0: int = 0
    y0: int = 0
    path: Path = field(default_factory=Path)
    inputs: list[str] = field(default_factory=list)


def overscan_level(frame: RawFrame) -> float:
    """Median of the overscan region BIASSEC [ADU]."""
    rows, cols = parse_section(frame.path, str(frame.header["BIASSEC"]))
    region = frame.data[rows, cols]
    if region.size == 0:
        raise InputFileError(frame.path, f"empty BIASSEC {frame.header['BIASSEC']}")
    return float(np.median(region))


def preprocess(
    frame: RawFrame,
    bias: ProcessedImage | None = None,
    dark: ProcessedImage | None = None,
    bad_pixels: NDArray[np.bool_] | None = None,
) -> ProcessedImage:
    """Overscan-subtract, trim, convert to electrons, mask, and remove bias and dark.

    Parameters
    ----------
    frame : RawFrame
    bias : ProcessedImage, optional
        Master bias [e⁻], subtracted with its uncertainty.
    dark : ProcessedImage, optional
        Master dark [e⁻/s], scaled by EXPTIME and subtracted.
    bad_pixels : ndarray of bool, optional
        Extra bad-pixel mask (trimmed shape).

    Returns
    -------
    ProcessedImage
        Data and uncertainty in electrons.
    """
    level = overscan_level(frame)
    rows, cols = parse_section(frame.path, str(frame.header["TRIMSEC"]))
    raw = frame.data[rows, cols]
    if raw.size == 0:
        raise InputFileError(frame.path, f"empty TRIMSEC {frame.header['TRIMSEC']}")
    gain = float(frame.header["GAIN"])
    read_noise = float(frame.header["RDNOISE"])
    if not gain > 0:
        raise InputFileError(frame.path, f"GAIN {gain} is not positive")
    saturate = float(frame.header.get("SATURATE", 65535.0))
    mask = (raw >= saturate).astype(np.uint8) * np.uint8(MASK_SATURATED)
    data = (raw - np.float32(level)) * np.float32(gain)
    variance = np.float32(read_noise**2) + np.maximum(data, np.float32(0.0))
    x0, y0 = frame.offset
    for calibration, scale in ((bias, 1.0), (dark, float(frame.header["EXPTIME"]))):
        if calibration is None or scale == 0.0:
            continue
        if calibration.data.shape != data.shape or (calibration.x0, calibration.y0) != (x0, y0):
            raise InputFileError(
                frame.path, f"does not match the read-out window of {calibration.path.name}"
            )
        data -= np.float32(scale) * calibration.data
        variance += (np.float32(scale) * calibration.uncertainty) ** 2
        mask |= calibration.mask & MASK_BAD
    if bad_pixels is not None:
        mask |= np.where(bad_pixels, MASK_BAD, 0).astype(np.uint8)
    return ProcessedImage(
        data=data.astype(np.float32, copy=False),
        uncertainty=np.sqrt(variance).astype(np.float32, copy=False),
        mask=mask,
        header=frame.header.copy(),
        x0=x0,
        y0=y0,
        path=frame.path,
    )


def write_image(path: Path, image: ProcessedImage, header: fits.Header) -> None:
    """Write SCI, ERR and MASK extensions with ``header`` as the primary header."""
    header = header.copy()
    header["X0"] = (image.x0, "full-detector column of pixel 0")
    header["Y0"] = (image.y0, "full-detector row of pixel 0")
    fits.HDUList(
        [
            fits.PrimaryHDU(header=header),
            fits.ImageHDU(image.data, name="SCI"),
            fits.ImageHDU(image.uncertainty, name="ERR"),
            fits.ImageHDU(image.mask, name="MASK"),
        ]
    ).writeto(path)


def read_image(path: str | Path) -> ProcessedImage:
    """Read an image written by :func:`write_image` (a master calibration)."""
    path = Path(path)
    try:
        with fits.open(path) as hdul:
            header = hdul[0].header.copy()
            return ProcessedImage(
                data=np.asarray(hdul["SCI"].data, dtype=np.float32),
                uncertainty=np.asarray(hdul["ERR"].data, dtype=np.float32),
                mask=np.asarray(hdul["MASK"].data, dtype=np.uint8),
                header=header,
                x0=int(header.get("X0", 0)),
                y0=int(header.get("Y0", 0)),
                path=path,
            )
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise InputFileError(path, f"unreadable calibration image ({exc})") from None
