"""Extraction of order spectra: box sums and optimal extraction (Horne 1986).

Both work on an aperture of ±``half_width`` rows about each trace centre. The optimal
extraction weights the pixels of each column by the spatial profile measured on the master flat
(the flat's flux in each aperture pixel over its column sum), with variances from a noise model
(read noise and calibration variance plus the model's own photon noise, as Horne recommends), and
rejects cosmic rays: the worst pixel of a column deviating by more than ``cosmic_sigma`` is masked
and the column re-fitted, until none is left.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.interpolate import make_lsq_spline

from photonpipe.echelle.preprocess import MASK_BAD, MASK_COSMIC, MASK_SATURATED, ProcessedImage
from photonpipe.echelle.traces import TraceSet
from photonpipe.spectra.robust import robust_sigma

HALF_WIDTH = 6
#: Knot spacing of the smooth blaze fitted to the extracted master flat [px].
BLAZE_KNOT_SPACING = 64.0


@dataclass
class ExtractedSpectra:
    """1-D spectra of several (order index, fibre) pairs on the read-out columns.

    Attributes
    ----------
    keys : list of (int, int)
    flat_flux : ndarray, shape (n, nx) or None
        Optimal extraction only: the master flat summed over each aperture [e⁻] (bad flat pixels
        interpolated), i.e. the lamp spectrum times the blaze.
    x : ndarray, shape (nx,)
        Full-detector columns [px].
    flux, variance : ndarray, shape (n, nx)
        Counts per column [e⁻] and their variance [e⁻²].
    mask : ndarray of uint8, shape (n, nx)
        OR of the mask bits of the pixels that carry weight; 8 = no data.
    """

    keys: list[tuple[int, int]]
    x: NDArray[np.float64]
    flux: NDArray[np.float64]
    variance: NDArray[np.float64]
    mask: NDArray[np.uint8]
    flat_flux: NDArray[np.float64] | None = None

    def index(self, order: int, fibre: int) -> int:
        """Return the row of (order, fibre) in the arrays."""
        return self.keys.index((order, fibre))


def _aperture(
    image: ProcessedImage, traces: TraceSet, key: tuple[int, int], half_width: int
) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.bool_]]:
    ny, nx = image.data.shape
    x = image.x0 + np.arange(nx, dtype=float)
    centre = traces.centre(key[0], key[1], x) - image.y0
    rows = (
        np.rint(centre).astype(np.intp)[None, :] + np.arange(-half_width, half_width + 1)[:, None]
    )
    columns = np.broadcast_to(np.arange(nx), rows.shape)
    inside = (rows >= 0) & (rows < ny)
    return np.clip(rows, 0, ny - 1), columns, inside


def keys_on_image(
    image: ProcessedImage, traces: TraceSet, fibres: tuple[int, ...], half_width: int = HALF_WIDTH
) -> list[tuple[int, int]]:
    """Traces of the given fibres whose whole aperture is on the image."""
    keys = []
    for key in traces:
        if key[1] not in fibres:
            continue
        _, _, inside = _aperture(image, traces, key, half_width)
        if inside.all():
            keys.append(key)
    return keys


def box_extract(
    image: ProcessedImage,
    traces: TraceSet,
    keys: list[tuple[int, int]],
    half_width: int = HALF_WIDTH,
) -> ExtractedSpectra:
    """Sum the aperture of each trace (variance: sum of the pixel variances)."""
    nx = image.data.shape[1]
    flux = np.zeros((len(keys), nx))
    variance = np.zeros((len(keys), nx))
    mask = np.zeros((len(keys), nx), np.uint8)
    for i, key in enumerate(keys):
        rows, columns, _ = _aperture(image, traces, key, half_width)
        data = image.data[rows, columns].astype(np.float64)
        error = image.uncertainty[rows, columns].astype(np.float64)
        bits = image.mask[rows, columns]
        flux[i] = data.sum(axis=0)
        variance[i] = (error**2).sum(axis=0)
        mask[i] = np.bitwise_or.reduce(bits, axis=0)
    return ExtractedSpectra(keys, image.x0 + np.arange(nx, dtype=float), flux, variance, mask)


def spatial_profile(
    flat: ProcessedImage, traces: TraceSet, key: tuple[int, int], half_width: int = HALF_WIDTH
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Normalised spatial profile (2·half_width+1, nx) of a trace from a master flat.

    Bad flat pixels are replaced by the mean of the same aperture row two columns either side.
    Also returns the flat's sum over the aperture per column [e⁻].
    """
    rows, columns, _ = _aperture(flat, traces, key, half_width)
    values = flat.data[rows, columns].astype(np.float64)
    bad = (flat.mask[rows, columns] & (MASK_BAD | MASK_SATURATED)) > 0
    if bad.any():
        left = np.roll(values, 2, axis=1)
        right = np.roll(values, -2, axis=1)
        values = np.where(bad, 0.5 * (left + right), values)
    values = np.clip(values, 0.0, None)
    total = values.sum(axis=0)
    return np.asarray(values / np.where(total > 0, total, 1.0)), np.asarray(total)


def optimal_extract(
    image: ProcessedImage,
    flat: ProcessedImage,
    traces: TraceSet,
    keys: list[tuple[int, int]],
    half_width: int = HALF_WIDTH,
    cosmic_sigma: float = 5.0,
    max_rejections: int = 4,
) -> ExtractedSpectra:
    """Horne (1986) optimal extraction with the master flat's profile and cosmic-ray rejection.

    Parameters
    ----------
    image : ProcessedImage
        Bias- and dark-subtracted frame [e⁻].
    flat : ProcessedImage
        Master flat with the same fibres lit as those extracted (gives the profile).
    traces : TraceSet
    keys : list of (order, fibre)
    half_width : int
        Aperture half-width [px].
    cosmic_sigma : float
        Rejection threshold [σ].
    max_rejections : int
        Most pixels rejected per column.

    Returns
    -------
    ExtractedSpectra
        Flux [e⁻ per column]; pixels rejected as cosmic rays are flagged in ``image.mask``.
    """
    if (flat.x0, flat.y0, flat.data.shape) != (image.x0, image.y0, image.data.shape):
        raise ValueError(f"{flat.path.name} and {image.path.name} differ in read-out window")
    nx = image.data.shape[1]
    flux = np.zeros((len(keys), nx))
    variance = np.zeros((len(keys), nx))
    out_mask = np.zeros((len(keys), nx), np.uint8)
    flat_flux = np.zeros((len(keys), nx))
    for i, key in enumerate(keys):
        rows, columns, _ = _aperture(image, traces, key, half_width)
        profile, flat_flux[i] = spatial_profile(flat, traces, key, half_width)
        data = image.data[rows, columns].astype(np.float64)
        total_var = image.uncertainty[rows, columns].astype(np.float64) ** 2
        # Variance that does not come from this frame's photons: read noise and calibrations.
        floor = np.maximum(total_var - np.clip(data, 0.0, None), 1.0)
        # Bad pixels found on the flat (dead columns) are bad in every frame.
        bits = image.mask[rows, columns] | (flat.mask[rows, columns] & MASK_BAD)
        good = (bits & (MASK_BAD | MASK_SATURATED)) == 0
        var = total_var.copy()
        estimate = np.zeros(nx)
        # Start from the median of data/profile over the bright pixels: a cosmic ray over the
        # core of a column would pull a weighted first estimate up and hide itself.
        core = good & (profile > 0.05)
        ratio = np.sort(np.where(core, data / np.where(profile > 0, profile, 1.0), np.inf), axis=0)
        n_core = core.sum(axis=0)
        columns_index = np.arange(nx)
        middle = (
            ratio[np.maximum(n_core - 1, 0) // 2, columns_index] + ratio[n_core // 2, columns_index]
        )
        estimate = np.where(n_core > 0, 0.5 * middle, 0.0)
        for _ in range(max_rejections + 1):
            model = profile * estimate[None, :]
            var = floor + np.clip(model, 0.0, None)
            chi2 = np.where(good, (data - model) ** 2 / var, 0.0)
            reject = chi2 > cosmic_sigma**2
            # At most the worst pixels of a column go at once, never more than half of its core.
            reject &= core.sum(axis=0)[None, :] > 2 * (reject & core).sum(axis=0)[None, :]
            if reject.any():
                good &= ~reject
                hit_rows, hit_columns = np.nonzero(reject)
                image.mask[rows[hit_rows, hit_columns], hit_columns] |= MASK_COSMIC
            weight = np.where(good, profile / var, 0.0)
            norm = (weight * profile).sum(axis=0)
            estimate = np.where(
                norm > 0, (weight * data).sum(axis=0) / np.where(norm > 0, norm, 1.0), 0.0
            )
            if not reject.any():
                break
        var = floor + np.clip(profile * estimate[None, :], 0.0, None)
        weight = np.where(good, profile / var, 0.0)
        norm = (weight * profile).sum(axis=0)
        flux[i] = estimate
        variance[i] = np.where(norm > 0, 1.0 / np.where(norm > 0, norm, 1.0), np.inf)
        lost = np.where(~good, profile, 0.0).sum(axis=0)
        column_bits = np.bitwise_or.reduce(
            np.where(profile > 0.02, bits, 0).astype(np.uint8), axis=0
        )
        out_mask[i] = np.where(
            lost > 0.5, column_bits | 8, column_bits & (MASK_BAD | MASK_SATURATED)
        )
        out_mask[i] |= np.where(norm <= 0, 8, 0).astype(np.uint8)
    return ExtractedSpectra(
        keys, image.x0 + np.arange(nx, dtype=float), flux, variance, out_mask, flat_flux
    )


def blaze_function(
    flat_flux: NDArray[np.float64],
    knot_spacing: float = BLAZE_KNOT_SPACING,
    floor: float = 0.01,
    clip: float = 5.0,
) -> NDArray[np.float64]:
    """Smooth blaze of one order: a cubic B-spline fitted to the extracted master flat.

    The flat's extracted spectrum is the lamp times the blaze, which is smooth, plus the flat's
    own photon noise (a few tenths of a per cent per column). Dividing a spectrum by the raw
    flat spectrum would imprint that noise on every frame at the same columns: a pattern fixed
    on the detector that a template and a spectrum share, which pulls measured radial velocities
    towards the template's. The least-squares spline (knots every ``knot_spacing`` columns,
    far wider than a stellar line) keeps the blaze and drops the noise. Columns deviating by
    more than ``clip`` times the robust scatter (a dead column segment) are left out of the fit.

    Parameters
    ----------
    flat_flux : ndarray
        The master flat summed over the aperture, per column [e⁻].
    knot_spacing : float
        Interior knot spacing [columns].
    floor : float
        Columns below this fraction of the maximum are not fitted and are returned as they are.
    clip : float
        Rejection threshold [robust σ of the fractional residuals].

    Returns
    -------
    ndarray
        The smooth blaze, scaled to a maximum of 1 over the fitted columns.
    """
    flat_flux = np.asarray(flat_flux, dtype=np.float64)
    peak = float(np.max(flat_flux)) if flat_flux.size else 0.0
    if not peak > 0:
        return np.zeros_like(flat_flux)
    x = np.arange(flat_flux.size, dtype=np.float64)
    fitted = np.isfinite(flat_flux) & (flat_flux > floor * peak)
    columns = np.flatnonzero(fitted)
    if columns.size < 8:
        return np.asarray(flat_flux / peak)
    first, last = columns[0], columns[-1]
    n_inner = max(int((last - first) / knot_spacing) - 1, 0)
    inner = np.linspace(first, last, n_inner + 2)[1:-1]
    knots = np.concatenate([[float(first)] * 4, inner, [float(last)] * 4])
    use = fitted.copy()
    use[:first] = use[last + 1 :] = False
    smooth = flat_flux.copy()
    for _ in range(3):
        try:
            spline = make_lsq_spline(x[use], flat_flux[use], knots, k=3)
        except (ValueError, np.linalg.LinAlgError):
            return np.asarray(flat_flux / peak)  # too few columns between some knots
        smooth = spline(x[first : last + 1])
        ratio = flat_flux[first : last + 1] / np.where(smooth > 0, smooth, np.inf) - 1.0
        inside = use[first : last + 1]
        scatter = robust_sigma(ratio[inside], center=0.0)
        keep = fitted[first : last + 1] & (np.abs(ratio) <= clip * max(scatter, 1e-6))
        if np.array_equal(keep, inside):
            break
        use[first : last + 1] = keep
    out = np.asarray(flat_flux / peak)
    top = float(np.max(smooth))
    if top > 0:
        out[first : last + 1] = smooth / top
    return out
