"""Rebuild the bundled RV templates and the RV test cut-outs from the smhr MIKE spectra.

Not a test and not run by the tests: a record of how the files were made. Run by hand as

    python tests/data/stellar/make_rv_data.py DIR

with DIR holding ``hd122563_mike.fits`` and ``hd140283_mike.fits`` (Magellan/MIKE, smhr test
data, github.com/andycasey/smhr, MIT licence) and
``frebel2013_hd122563_ew.moog2`` (Frebel et al. 2013 line list). It writes

* ``src/photonpipe/stellar/data/rv_template_giant_hd122563.fits`` and
  ``rv_template_subgiant_hd140283.fits``: 4900-5500 Å, shifted to the rest frame of the
  laboratory wavelengths of the Frebel et al. (2013) lines (see :func:`zero_point`);
* ``tests/data/stellar/hd122563_mike_rv.fits.gz`` and ``hd140283_mike_rv.fits.gz``:
  5000-5450 Å exactly as in the source files (HD 140283 with its observing header), the
  observed spectra of the real-data RV tests.
"""

from __future__ import annotations

import gzip
import io
import sys
from pathlib import Path

import numpy as np
from astropy.io import fits
from numpy.polynomial import legendre
from scipy.interpolate import make_interp_spline

from photonpipe.spectra.linefit import LineFitError, fit_absorption_line
from photonpipe.spectra.spectrum import C_KMS, Spectrum
from photonpipe.stellar.linelist import read_linelist
from photonpipe.stellar.readers import read_spectrum

ROOT = Path(__file__).resolve().parents[3]
PACKAGE_DATA = ROOT / "src" / "photonpipe" / "stellar" / "data"
TEST_DATA = ROOT / "tests" / "data" / "stellar"
WCS_KEYS = ("CRVAL1", "CDELT1", "CD1_1", "CRPIX1", "CTYPE1", "DC-FLAG", "NAXIS1", "LTV1", "LTM1_1")

STARS = {
    "hd122563": ("rv_template_giant_hd122563.fits", "HD 122563, metal-poor red giant"),
    "hd140283": ("rv_template_subgiant_hd140283.fits", "HD 140283, metal-poor subgiant"),
}


#: Degree of the Legendre series of the template velocity in wavelength.
ZERO_POINT_DEGREE = 3


def line_velocities(
    spectrum: Spectrum, lines_path: Path, start: float, end: float
) -> tuple[np.ndarray, np.ndarray]:
    """Laboratory wavelengths [Å] and velocities c·(λ_fit/λ_lab − 1) [km/s] of the lines.

    Every line of 15-150 mÅ (reference EW) inside ``start``-``end`` is fitted with a Gaussian
    (±0.75 Å window, centre free within 0.2 Å).
    """
    waves, velocities = [], []
    for line in read_linelist(lines_path):
        ew = line.reference_ew
        if ew is None or not 15.0 < ew < 150.0 or not start + 2 < line.wavelength < end - 2:
            continue
        try:
            fit = fit_absorption_line(
                spectrum.wavelength, spectrum.flux, spectrum.ivar, line.wavelength,
                window=0.75, max_center_shift=0.2,
            )  # fmt: skip
        except LineFitError:
            continue
        if fit.success and fit.ew > 0.005:
            waves.append(line.wavelength)
            velocities.append(C_KMS * (fit.parameters["center"] / line.wavelength - 1.0))
    return np.array(waves), np.array(velocities)


def zero_point(
    spectrum: Spectrum, lines_path: Path, start: float, end: float
) -> tuple[np.ndarray, float, float, int]:
    """Velocity of the spectrum relative to laboratory wavelengths, as a function of λ.

    A Legendre series of degree :data:`ZERO_POINT_DEGREE` in wavelength (scaled to [−1, 1]
    over ``start``-``end``) is fitted to the line velocities of :func:`line_velocities`, lines
    more than 3 robust σ away being dropped iteratively.

    Returns the coefficients, the robust σ of one line about the fit [km/s], the mean velocity
    over the range [km/s] and the number of lines kept.
    """
    waves, velocities = line_velocities(spectrum, lines_path, start, end)
    x = (2.0 * waves - (start + end)) / (end - start)
    use = np.ones(waves.size, dtype=bool)
    for _ in range(10):
        coeffs = legendre.legfit(x[use], velocities[use], ZERO_POINT_DEGREE)
        residual = velocities - legendre.legval(x, coeffs)
        spread = 1.4826 * float(np.median(np.abs(residual[use])))
        new = np.abs(residual) < 3.0 * spread
        if np.array_equal(new, use):
            break
        use = new
    return coeffs, spread, float(coeffs[0]), int(use.sum())


def _cutout(path: Path, start: float, end: float) -> tuple[fits.Header, np.ndarray, float, float]:
    with fits.open(path) as hdul:
        header = hdul[0].header.copy()
        data = np.asarray(hdul[0].data, dtype=np.float64)
    (spectrum,) = read_spectrum(path)
    keep = np.flatnonzero((spectrum.wavelength >= start) & (spectrum.wavelength <= end))
    wave = spectrum.wavelength[keep]
    step = (wave[-1] - wave[0]) / (wave.size - 1)
    return header, data[keep], float(wave[0]), float(step)


def _header(source: fits.Header, crval: float, cdelt: float) -> fits.Header:
    header = fits.Header()
    for card in source.cards:
        if (
            card.keyword
            and card.keyword not in WCS_KEYS
            and not card.keyword.startswith(
                ("SIMPLE", "BITPIX", "NAXIS", "EXTEND", "HISTORY", "COMMENT", "WAT")
            )
        ):
            header.append(card)
    header["CTYPE1"] = "LINEAR"
    header["CRPIX1"] = 1.0
    header["CRVAL1"] = crval
    header["CDELT1"] = cdelt
    return header


def main(source_dir: Path) -> None:
    lines = source_dir / "frebel2013_hd122563_ew.moog2"
    for star, (template_name, description) in STARS.items():
        path = source_dir / f"{star}_mike.fits"
        # the template: 4900-5500 Å at the laboratory rest frame
        source, flux, crval, cdelt = _cutout(path, 4900.0, 5500.0)
        wave = crval + cdelt * np.arange(flux.size)
        coeffs, spread, mean, count = zero_point(Spectrum(wave, flux), lines, 4900.0, 5500.0)
        x = (2.0 * wave - 10400.0) / 600.0
        beta = legendre.legval(x, coeffs) / C_KMS
        rest = wave / np.sqrt((1.0 + beta) / (1.0 - beta))
        # resample onto a linear grid (cubic interpolation: 5 pixels per resolution element)
        step = cdelt * (rest[-1] - rest[0]) / (wave[-1] - wave[0])
        grid = rest[0] + step * np.arange(int((rest[-1] - rest[0]) / step) + 1)
        flux = make_interp_spline(rest, flux, k=3)(grid)
        header = _header(source, float(grid[0]), float(step))
        header["RVZERO"] = (round(mean, 4), "[km/s] mean velocity removed (vs lab lines)")
        header["RVZEROSD"] = (round(spread, 4), "[km/s] robust sigma of one line about it")
        header["RVZERON"] = (count, "lines used")
        for k, c in enumerate(coeffs):
            header[f"RVZERO{k}"] = (round(float(c), 4), f"[km/s] Legendre coefficient {k}")
        header["HISTORY"] = (
            f"Cut-out 4900-5500 A of {path.name} ({description}) from the test data of smhr "
            "(github.com/andycasey/smhr, MIT licence); continuum-normalised as there."
        )
        header["HISTORY"] = (
            f"Wavelengths moved to the rest frame of the laboratory wavelengths of {count} Frebel "
            f"et al. (2013) lines of 15-150 mA: their Gaussian-fit velocities, a Legendre series "
            f"of degree {ZERO_POINT_DEGREE} in wavelength over 4900-5500 A (coefficients "
            "RVZERO0..), were removed and the spectrum resampled (cubic spline) onto a linear "
            "grid (tests/data/stellar/make_rv_data.py)."
        )
        fits.PrimaryHDU(flux.astype(np.float32), header).writeto(
            PACKAGE_DATA / template_name, overwrite=True
        )
        print(
            f"{template_name}: mean zero point {mean:+.3f} km/s, coefficients "
            f"{np.round(coeffs, 3)}, {spread:.2f} km/s per line, {count} lines"
        )
        # the test cut-out: 5000-5450 Å exactly as in the source
        source, flux, crval, cdelt = _cutout(path, 5000.0, 5450.0)
        header = _header(source, crval, cdelt)
        header["HISTORY"] = (
            f"Cut-out 5000-5450 A of {path.name} ({description}), wavelengths as in the "
            "source, from the test data of smhr (github.com/andycasey/smhr, MIT licence)."
        )
        buffer = io.BytesIO()
        fits.PrimaryHDU(flux.astype(np.float32), header).writeto(buffer)
        out = TEST_DATA / f"{star}_mike_rv.fits.gz"
        out.write_bytes(gzip.compress(buffer.getvalue(), mtime=0))
        print(f"{out.name}: {flux.size} pixels")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
