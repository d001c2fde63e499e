"""Master calibrations: robust stacks of bias, dark, lamp-flat and arc frames.

Each pixel of a stack is the mean of the frames left after rejecting values more than
:data:`CLIP_SIGMA` robust standard deviations from the median, the deviation being 1.4826 × the
median absolute deviation (floored at the median propagated uncertainty, so a stack of three frames
that happen to agree does not clip honest noise). The uncertainty of the mean is
√(Σ σᵢ²)/n over the kept frames.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from scipy.ndimage import median_filter

from photonpipe.echelle.preprocess import MASK_BAD, ProcessedImage
from photonpipe.errors import PhotonpipeError
from photonpipe.spectra.robust import robust_sigma_along

CLIP_SIGMA = 4.0
#: Fewest frames a master of each type is made from (FLAT and ARC: per lit-fibre pair).
MIN_FRAMES = {"BIAS": 3, "DARK": 3, "FLAT": 2, "ARC": 1}


class CalibrationError(PhotonpipeError):
    """A master calibration cannot be made or none is usable for a frame."""


def sigma_clipped_mean(
    data: NDArray[np.float32],
    uncertainty: NDArray[np.float32],
    clip: float = CLIP_SIGMA,
    rows_per_block: int = 256,
) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.int16]]:
    """MAD-clipped mean of a stack along axis 0, with its propagated uncertainty.

    Parameters
    ----------
    data, uncertainty : ndarray, shape (n, ny, nx)
        Values and their 1σ uncertainties.
    clip : float
        Rejection threshold in robust standard deviations.
    rows_per_block : int
        Rows processed at once (bounds memory for 4096² frames).

    Returns
    -------
    mean, mean_uncertainty : ndarray, shape (ny, nx)
    n_used : ndarray of int16
        Frames kept per pixel.
    """
    n, ny, nx = data.shape
    mean = np.empty((ny, nx), np.float32)
    error = np.empty((ny, nx), np.float32)
    used = np.empty((ny, nx), np.int16)
    for start in range(0, ny, rows_per_block):
        block = data[:, start : start + rows_per_block].astype(np.float64)
        sigma = uncertainty[:, start : start + rows_per_block].astype(np.float64)
        median = np.median(block, axis=0)
        mad = robust_sigma_along(block, 0, center=median)
        scale = np.maximum(mad, np.median(sigma, axis=0))
        keep = np.abs(block - median) <= clip * scale if n > 2 else np.ones_like(block, bool)
        count = keep.sum(axis=0)
        count_safe = np.maximum(count, 1)
        mean[start : start + rows_per_block] = np.where(
            count > 0, (block * keep).sum(axis=0) / count_safe, median
        )
        error[start : start + rows_per_block] = np.sqrt((sigma**2 * keep).sum(axis=0)) / count_safe
        used[start : start + rows_per_block] = count
    return mean, error, used


def stack_images(images: Sequence[ProcessedImage], calibration_type: str) -> ProcessedImage:
    """Combine pre-processed frames into a master.

    DARK frames are divided by their EXPTIME first, so the master dark is a rate [e⁻/s].
    Masks are combined with OR of the bad-pixel bit; saturated pixels are flagged when any
    input was saturated.

    Raises
    ------
    CalibrationError
        Fewer frames than :data:`MIN_FRAMES`, or frames of different shapes.
    """
    minimum = MIN_FRAMES[calibration_type]
    if len(images) < minimum:
        raise CalibrationError(
            f"{calibration_type} stack needs at least {minimum} frames, got {len(images)}"
            + (f" ({', '.join(i.path.name for i in images)})" if images else "")
        )
    shapes = {(image.data.shape, image.x0, image.y0) for image in images}
    if len(shapes) != 1:
        raise CalibrationError(f"{calibration_type} frames differ in size or read-out window")
    data = np.stack([image.data for image in images])
    error = np.stack([image.uncertainty for image in images])
    if calibration_type == "DARK":
        exptimes = np.array([float(image.header["EXPTIME"]) for image in images], np.float32)
        if np.any(exptimes <= 0):
            raise CalibrationError("a DARK frame has EXPTIME ≤ 0")
        data = data / exptimes[:, None, None]
        error = error / exptimes[:, None, None]
    mean, mean_error, _ = sigma_clipped_mean(data, error)
    mask = np.bitwise_or.reduce(np.stack([image.mask for image in images]), axis=0)
    if calibration_type == "DARK":
        mask |= hot_pixels(mean, mean_error)
    if calibration_type == "FLAT":
        mask |= dead_pixels(mean)
    return ProcessedImage(
        data=mean,
        uncertainty=mean_error,
        mask=mask,
        header=images[0].header.copy(),
        x0=images[0].x0,
        y0=images[0].y0,
        path=images[0].path,
        inputs=[image.path.name for image in images],
    )


def hot_pixels(dark_rate: NDArray[np.float32], error: NDArray[np.float32]) -> NDArray[np.uint8]:
    """Bad-pixel bits where the dark rate is 10σ above the frame's median rate."""
    median = float(np.median(dark_rate))
    hot = dark_rate > median + 10.0 * np.maximum(error, 1e-6) + 0.1
    return np.where(hot, MASK_BAD, 0).astype(np.uint8)


def dead_pixels(flat: NDArray[np.float32]) -> NDArray[np.uint8]:
    """Bad-pixel bits where a well-lit flat is below half of its running median along the row."""
    reference = median_filter(flat, size=(1, 7), mode="nearest")
    dead = (reference > 200.0) & (flat < 0.5 * reference)
    return np.where(dead, MASK_BAD, 0).astype(np.uint8)
