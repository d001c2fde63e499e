"""BOSS reduction files: spFrame, spCFrame and spFluxcalib (idlspec2d v5 layout).

HDU layout (idlspec2d ``spframe_read``):

=====  ===========================================  =========================================
HDU    spFrame-{cam}-{expid}.fits[.gz]              spCFrame-{cam}-{expid}.fits
=====  ===========================================  =========================================
0      flux, flat-fielded sky-subtracted electrons  flux [10⁻¹⁷ erg s⁻¹ cm⁻² Å⁻¹]
1      inverse variance of HDU 0 [e⁻⁻²]             inverse variance [flux⁻²]
2      pixel mask (SPPIXMASK)                       pixel mask
3      wavelength trace set, log10(λ/Å) vacuum      log10(λ/Å) image
4      dispersion trace set [native pixels]         dispersion image [native pixels]
5      plug map (one row per fibre)                 plug map
6      sky model [e⁻]                               sky [flux]
7      x position on the CCD [pixel]                x position on the CCD
8      superflat                                    —
=====  ===========================================  =========================================

Images are ``(nfibre, npix)`` with 500 fibres per spectrograph. spFluxcalib-{cam}-{expid}
holds in HDU 0 the calibration image: electrons per 10⁻⁴-dex pixel per unit flux
(10⁻¹⁷ erg s⁻¹ cm⁻² Å⁻¹), the convention SkyModelling's conversion assumes.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from astropy.io import fits
from astropy.table import Table
from astropy.utils.exceptions import AstropyUserWarning

from photonpipe.errors import InputFileError
from photonpipe.platform.headers import (
    FITS_PARSE_ERRORS,
    check_fits_structure,
    header_float,
    header_int,
    header_str,
    malformed_fits,
)
from photonpipe.sky.traceset import TraceSet

FloatArray = npt.NDArray[np.float64]

#: Cameras of the two BOSS spectrographs; fibres 1–500 are on spectrograph 1, 501–1000 on 2.
CAMERAS: tuple[str, ...] = ("b1", "b2", "r1", "r2")
FIBRES_PER_SPECTROGRAPH = 500

#: Header keywords of HDU 0 that the metadata keeps (SkyModelling's list, plus TAI/time keys).
HEADER_KEYWORDS: tuple[str, ...] = (
    "PLATEID",
    "MJD",
    "EXPOSURE",
    "TAI-BEG",
    "TAI-END",
    "RA",
    "DEC",
    "CAMERAS",
    "AIRMASS",
    "ALT",
    "AZ",
    "EXPTIME",
    "SEEING20",
    "SEEING50",
    "SEEING80",
    "RMSOFF20",
    "RMSOFF50",
    "RMSOFF80",
    "DATE-OBS",
    "REDDEN01",
    "REDDEN02",
    "REDDEN03",
    "REDDEN04",
    "REDDEN05",
    "QUALITY",
    "AIRTEMP",
    "DEWPOINT",
    "DUSTA",
    "DUSTB",
    "DUSTC",
    "DUSTD",
    "GUSTD",
    "GUSTS",
    "HUMIDITY",
    "PRESSURE",
    "WINDD",
    "WINDS",
)

_NAME = re.compile(r"^(spFrame|spCFrame|spFluxcalib)-([br][12])-(\d{8})\.fits(\.gz)?$")


def parse_name(path: str | Path) -> tuple[str, str, int] | None:
    """Kind, camera and exposure number from a file name, or None if it is not one of ours.

    Parameters
    ----------
    path : str or pathlib.Path
        E.g. ``spFrame-b1-00139379.fits.gz``.
    """
    match = _NAME.match(Path(path).name)
    if match is None:
        return None
    return match.group(1), match.group(2), int(match.group(3))


def frame_name(kind: str, camera: str, exposure: int, gzip: bool = False) -> str:
    """File name of a BOSS frame file (``{kind}-{camera}-{exposure:08d}.fits[.gz]``)."""
    return f"{kind}-{camera}-{exposure:08d}.fits" + (".gz" if gzip else "")


def _open(path: Path) -> fits.HDUList:
    check_fits_structure(path, path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            hdus = fits.open(path, memmap=False, lazy_load_hdus=False)
        except FileNotFoundError as exc:
            raise InputFileError(path, "file not found") from exc
        except FITS_PARSE_ERRORS as exc:
            raise InputFileError(path, f"not a readable FITS file ({exc})") from exc
    problems = [str(w.message) for w in caught if issubclass(w.category, AstropyUserWarning)]
    if problems:
        hdus.close()
        raise InputFileError(path, f"corrupt FITS file ({problems[0]})")
    return hdus


#: Range of the MJD keyword (SDSS-III/IV BOSS ran from 2009; allow its whole future).
MJD_RANGE = (50000, 80000)
#: Range of log10(λ/Å) a BOSS wavelength may have (3400–11000 Å, with margin).
LOGLAM_RANGE = (3.3, 4.3)


def _image(
    hdus: fits.HDUList,
    index: int,
    path: Path,
    what: str,
    dtype: Any,
    *,
    finite: bool = False,
    integer: bool = False,
) -> Any:
    if len(hdus) <= index:
        raise InputFileError(path, f"missing HDU {index} ({what}); the file has {len(hdus)} HDUs")
    hdu = hdus[index]
    if not isinstance(hdu, fits.PrimaryHDU | fits.ImageHDU | fits.CompImageHDU):
        raise InputFileError(path, f"HDU {index} ({what}) is a table, not an image")
    try:
        data = hdu.data
    except (OSError, ValueError, TypeError, EOFError, IndexError) as exc:
        raise InputFileError(path, f"HDU {index} ({what}) unreadable ({exc})") from exc
    if data is None or getattr(data, "ndim", 0) != 2 or 0 in data.shape:
        raise InputFileError(path, f"HDU {index} ({what}) is not a 2-D image")
    if integer and data.dtype.kind not in "iu":
        raise InputFileError(path, f"HDU {index} ({what}) holds {data.dtype}, not integers")
    image = np.asarray(data, dtype=dtype)
    if finite and not bool(np.isfinite(image).all()):
        raise InputFileError(path, f"HDU {index} ({what}) has NaN or infinite pixels")
    return image


def _check_frame_header(header: fits.Header, path: Path) -> None:
    """Check the keywords every per-camera BOSS file carries: PLATEID, EXPOSURE, CAMERAS, MJD.

    Also the optional TAI-BEG, TAI-END [s, TAI MJD seconds] and EXPTIME [s] when present.
    """
    if "COEFF0" in header and "CAMERAS" not in header:
        raise InputFileError(
            path,
            "a co-added spPlate-like image (COEFF0 wavelength keywords, no CAMERAS), "
            "not a per-camera frame",
        )
    header_str(header, "CAMERAS", path, where="primary", choices=CAMERAS, upper=False)
    header_int(header, "EXPOSURE", path, where="primary", minimum=1)
    header_int(header, "PLATEID", path, where="primary", minimum=1)
    if "MJD" in header:
        header_int(header, "MJD", path, where="primary", minimum=MJD_RANGE[0], maximum=MJD_RANGE[1])
    begin = end = None
    if "TAI-BEG" in header:
        begin = header_float(header, "TAI-BEG", path, where="primary", positive=True)
    if "TAI-END" in header:
        end = header_float(header, "TAI-END", path, where="primary", positive=True)
    if begin is not None and end is not None and end < begin:
        raise InputFileError(path, f"primary keyword TAI-END = {end} is before TAI-BEG = {begin}")
    if "EXPTIME" in header:
        header_float(header, "EXPTIME", path, where="primary", positive=True)


def _traceset(hdus: fits.HDUList, index: int, path: Path, what: str) -> TraceSet:
    if len(hdus) <= index:
        raise InputFileError(path, f"missing HDU {index} ({what}); the file has {len(hdus)} HDUs")
    try:
        return TraceSet.from_table(hdus[index].data)
    except (KeyError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise InputFileError(path, f"HDU {index} ({what}) is not a trace set ({exc})") from exc


def _plugmap(hdus: fits.HDUList, path: Path) -> Table:
    if len(hdus) <= 5:
        raise InputFileError(path, f"missing HDU 5 (plug map); the file has {len(hdus)} HDUs")
    if not isinstance(hdus[5], fits.BinTableHDU):
        raise InputFileError(path, "HDU 5 (plug map) is not a binary table")
    try:
        table = Table(hdus[5].data)
    except (ValueError, TypeError, OSError, IndexError) as exc:
        raise InputFileError(path, f"HDU 5 (plug map) is not a table ({exc})") from exc
    missing = {"FIBERID", "OBJTYPE", "RA", "DEC", "XFOCAL", "YFOCAL"} - set(table.colnames)
    if missing:
        raise InputFileError(path, f"plug map lacks column(s) {', '.join(sorted(missing))}")
    if table["OBJTYPE"].dtype.kind not in "SU":
        raise InputFileError(path, f"plug map OBJTYPE holds {table['OBJTYPE'].dtype}, not text")
    if table["FIBERID"].dtype.kind not in "iu" or table["FIBERID"].ndim != 1:
        raise InputFileError(path, f"plug map FIBERID holds {table['FIBERID'].dtype}, not integers")
    fibres = np.asarray(table["FIBERID"])
    if len(fibres) and (fibres.min() < 1 or fibres.max() > 2 * FIBRES_PER_SPECTROGRAPH):
        raise InputFileError(path, "plug map FIBERID outside 1..1000")
    if len(np.unique(fibres)) != len(fibres):
        raise InputFileError(path, "plug map FIBERID has repeated fibres")
    for name in ("RA", "DEC", "XFOCAL", "YFOCAL"):
        column = np.asarray(table[name])
        if column.dtype.kind not in "iuf" or column.ndim != 1:
            raise InputFileError(path, f"plug map {name} holds {column.dtype}, not numbers")
    table["OBJTYPE"] = np.char.strip(np.asarray(table["OBJTYPE"]).astype(str))
    return table


@dataclass
class SpFrame:
    """An spFrame file: one camera of one exposure, extracted, flat-fielded, sky-subtracted.

    Attributes
    ----------
    path : pathlib.Path
        File read.
    header : astropy.io.fits.Header
        Primary header.
    flux : numpy.ndarray
        Sky-subtracted flat-fielded flux [e⁻ per native pixel], ``(nfibre, npix)``.
    invvar : numpy.ndarray
        Inverse variance of ``flux`` [e⁻⁻²].
    mask : numpy.ndarray
        SPPIXMASK bits (int64).
    wset : TraceSet
        Wavelength solution, log10(λ/Å) vacuum.
    dispset : TraceSet
        Line-spread-function sigma [native pixels].
    plugmap : astropy.table.Table
        One row per fibre (FIBERID, OBJTYPE, RA, DEC, XFOCAL, YFOCAL, …).
    sky : numpy.ndarray
        Sky model subtracted from ``flux`` [e⁻ per native pixel].
    ximg : numpy.ndarray or None
        Trace x position on the CCD [pixel] (HDU 7).
    superflat : numpy.ndarray
        Superflat vector already applied to ``flux`` (HDU 8).
    """

    path: Path
    header: fits.Header
    flux: npt.NDArray[np.float32]
    invvar: npt.NDArray[np.float32]
    mask: npt.NDArray[np.int64]
    wset: TraceSet
    dispset: TraceSet
    plugmap: Table
    sky: npt.NDArray[np.float32]
    ximg: npt.NDArray[np.float32] | None
    superflat: npt.NDArray[np.float32]

    @property
    def camera(self) -> str:
        """Camera name (``b1``, ``b2``, ``r1``, ``r2``) from the CAMERAS keyword."""
        return str(self.header["CAMERAS"]).strip()

    @property
    def exposure(self) -> int:
        """Exposure number."""
        return int(self.header["EXPOSURE"])

    def loglam(self, rows: npt.ArrayLike | None = None) -> FloatArray:
        """log10 of the vacuum wavelength of every pixel [log10 Å].

        Parameters
        ----------
        rows : array_like of int, optional
            Fibres (0-based rows) to evaluate; default all. Shape ``(nrows, npix)``.
        """
        return _evaluate_rows(self.wset, rows)[:, : self.flux.shape[1]]

    def dispersion(self, rows: npt.ArrayLike | None = None) -> FloatArray:
        """Line-spread-function sigma of every pixel [native pixels] (``rows`` as in loglam)."""
        return _evaluate_rows(self.dispset, rows)[:, : self.flux.shape[1]]


def _evaluate_rows(tset: TraceSet, rows: npt.ArrayLike | None) -> FloatArray:
    if rows is not None:
        tset = replace(tset, coeff=tset.coeff[np.asarray(rows, dtype=np.int64)])
    return tset.evaluate()[1]


def read_spframe(path: str | Path) -> SpFrame:
    """Read an spFrame file.

    Parameters
    ----------
    path : str or pathlib.Path
        ``spFrame-{camera}-{expid}.fits`` or ``.fits.gz``.

    Returns
    -------
    SpFrame

    Raises
    ------
    InputFileError
        Unreadable or corrupt file, a missing HDU, an image of the wrong shape, a missing
        header keyword (PLATEID, EXPOSURE, CAMERAS, MJD) or plug-map column.
    """
    path = Path(path)
    with _open(path) as hdus, malformed_fits(path):
        try:
            header = hdus[0].header.copy()
        except (OSError, ValueError, IndexError) as exc:
            raise InputFileError(path, f"primary header unreadable ({exc})") from exc
        for key in ("PLATEID", "EXPOSURE", "CAMERAS", "MJD"):
            if key not in header:
                raise InputFileError(path, f"primary header lacks {key}")
        _check_frame_header(header, path)
        flux = _image(hdus, 0, path, "flux", np.float32)
        invvar = _image(hdus, 1, path, "inverse variance", np.float32, finite=True)
        if bool((invvar < 0).any()):
            raise InputFileError(path, "HDU 1 (inverse variance) has negative values")
        frame = SpFrame(
            path=path,
            header=header,
            flux=flux,
            invvar=invvar,
            mask=_image(hdus, 2, path, "pixel mask", np.int64, integer=True),
            wset=_traceset(hdus, 3, path, "wavelength trace set"),
            dispset=_traceset(hdus, 4, path, "dispersion trace set"),
            plugmap=_plugmap(hdus, path),
            sky=_image(hdus, 6, path, "sky model", np.float32),
            ximg=_image(hdus, 7, path, "x image", np.float32) if len(hdus) > 7 else None,
            superflat=_image(hdus, 8, path, "superflat", np.float32),
        )
    shape = frame.flux.shape
    for name in ("invvar", "mask", "sky", "superflat"):
        if getattr(frame, name).shape != shape:
            raise InputFileError(
                path, f"{name} has shape {getattr(frame, name).shape}, flux has {shape}"
            )
    if frame.wset.ntrace != shape[0] or frame.wset.nx < shape[1]:
        raise InputFileError(
            path,
            f"wavelength trace set covers {frame.wset.ntrace} fibres × {frame.wset.nx} pixels, "
            f"flux is {shape[0]} × {shape[1]}",
        )
    if len(frame.plugmap) != shape[0]:
        raise InputFileError(path, f"plug map has {len(frame.plugmap)} rows for {shape[0]} fibres")
    if frame.ximg is not None and frame.ximg.shape != shape:
        raise InputFileError(path, f"ximg has shape {frame.ximg.shape}, flux has {shape}")
    if frame.dispset.ntrace != shape[0] or frame.dispset.nx < shape[1]:
        raise InputFileError(
            path,
            f"dispersion trace set covers {frame.dispset.ntrace} fibres × {frame.dispset.nx} "
            f"pixels, flux is {shape[0]} × {shape[1]}",
        )
    return frame


@dataclass
class SpCFrame:
    """An spCFrame file: the calibrated counterpart of an spFrame.

    Attributes
    ----------
    path : pathlib.Path
        File read.
    header : astropy.io.fits.Header
        Primary header.
    flux : numpy.ndarray
        Calibrated flux [10⁻¹⁷ erg s⁻¹ cm⁻² Å⁻¹].
    invvar : numpy.ndarray
        Inverse variance [flux⁻²].
    mask : numpy.ndarray
        SPPIXMASK bits (int64), including the co-addition's (COMBINEREJ).
    loglam : numpy.ndarray
        log10(λ/Å), vacuum.
    dispersion : numpy.ndarray
        LSF sigma [native pixels].
    plugmap : astropy.table.Table
        Plug map.
    """

    path: Path
    header: fits.Header
    flux: npt.NDArray[np.float32]
    invvar: npt.NDArray[np.float32]
    mask: npt.NDArray[np.int64]
    loglam: FloatArray
    dispersion: npt.NDArray[np.float32]
    plugmap: Table


def read_spcframe(path: str | Path) -> SpCFrame:
    """Read an spCFrame file.

    Parameters
    ----------
    path : str or pathlib.Path
        ``spCFrame-{camera}-{expid}.fits``.

    Raises
    ------
    InputFileError
        Unreadable file, a missing HDU or an image of the wrong shape.
    """
    path = Path(path)
    with _open(path) as hdus, malformed_fits(path):
        header = hdus[0].header.copy()
        _check_frame_header(header, path)
        frame = SpCFrame(
            path=path,
            header=header,
            flux=_image(hdus, 0, path, "flux", np.float32),
            invvar=_image(hdus, 1, path, "inverse variance", np.float32, finite=True),
            mask=_image(hdus, 2, path, "pixel mask", np.int64, integer=True),
            loglam=_loglam(hdus, path),
            dispersion=_image(hdus, 4, path, "dispersion", np.float32),
            plugmap=_plugmap(hdus, path),
        )
    for name in ("invvar", "mask", "loglam", "dispersion"):
        if getattr(frame, name).shape != frame.flux.shape:
            raise InputFileError(path, f"{name} has a shape different from the flux")
    return frame


@dataclass
class SpCFrameMask:
    """The parts of an spCFrame the flux conversion uses.

    Attributes
    ----------
    path : pathlib.Path
        File read.
    mask : numpy.ndarray
        SPPIXMASK bits (int64), ``(nfibre, npix)``.
    loglam : numpy.ndarray
        log10(λ/Å), vacuum.
    """

    path: Path
    mask: npt.NDArray[np.int64]
    loglam: FloatArray


def read_spcframe_mask_loglam(path: str | Path) -> SpCFrameMask:
    """Read only the pixel mask (HDU 2) and log wavelengths (HDU 3) of an spCFrame.

    The other HDUs are skipped (headers only), which makes this several times faster than
    :func:`read_spcframe` for what the flux conversion needs.

    Raises
    ------
    InputFileError
        Unreadable file, missing HDU, or mask and wavelengths of different shapes.
    """
    path = Path(path)
    check_fits_structure(path, path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            hdus = fits.open(path, memmap=False, lazy_load_hdus=True)
        except FileNotFoundError as exc:
            raise InputFileError(path, "file not found") from exc
        except FITS_PARSE_ERRORS as exc:
            raise InputFileError(path, f"not a readable FITS file ({exc})") from exc
        with hdus, malformed_fits(path):
            try:
                _check_frame_header(hdus[0].header, path)
                mask = _image(hdus, 2, path, "pixel mask", np.int64, integer=True)
                loglam = _loglam(hdus, path)
            except (IndexError, OSError, ValueError, TypeError, EOFError) as exc:
                raise InputFileError(path, f"unreadable or missing HDU ({exc})") from exc
    problems = [str(w.message) for w in caught if issubclass(w.category, AstropyUserWarning)]
    if problems:
        raise InputFileError(path, f"corrupt FITS file ({problems[0]})")
    if mask.shape != loglam.shape:
        raise InputFileError(path, "mask and log-wavelength images differ in shape")
    return SpCFrameMask(path, mask, loglam)


def _loglam(hdus: fits.HDUList, path: Path) -> FloatArray:
    """HDU 3 of an spCFrame: finite log10(λ/Å) in the BOSS range, increasing along each row."""
    loglam: FloatArray = _image(hdus, 3, path, "log wavelength", np.float64, finite=True)
    low, high = LOGLAM_RANGE
    if loglam.min() < low or loglam.max() > high:
        raise InputFileError(
            path,
            f"HDU 3 (log wavelength) spans {loglam.min():.3f}..{loglam.max():.3f}, "
            f"outside log10(λ/Å) {low}..{high}",
        )
    if loglam.shape[1] > 1 and not bool((np.diff(loglam, axis=1) > 0).all()):
        raise InputFileError(path, "HDU 3 (log wavelength) does not increase along the rows")
    return loglam


def read_spfluxcalib(
    path: str | Path, shape: tuple[int, int] | None = None
) -> tuple[fits.Header, npt.NDArray[np.float64]]:
    """Read an spFluxcalib file.

    Parameters
    ----------
    path : str or pathlib.Path
        ``spFluxcalib-{camera}-{expid}.fits[.gz]``.

    Returns
    -------
    header : astropy.io.fits.Header
        Primary header.
    calibration : numpy.ndarray
        Calibration image [e⁻ per 10⁻⁴-dex pixel per 10⁻¹⁷ erg s⁻¹ cm⁻² Å⁻¹],
        ``(nfibre, npix)``.

    shape : tuple of int, optional
        ``(nfibre, npix)`` of the spFrame it calibrates; another shape is refused.

    Raises
    ------
    InputFileError
        Unreadable file; a primary header without a camera's CAMERAS, EXPOSURE and PLATEID (an
        spPlate, a trace set or another BOSS file); HDU 0 not a 2-D floating-point image of at
        most 500 fibres; NaN, infinite or negative values; a shape other than ``shape``.
    """
    path = Path(path)
    with _open(path) as hdus, malformed_fits(path):
        header = hdus[0].header.copy()
        _check_frame_header(header, path)
        if hdus[0].data is not None and hdus[0].data.dtype.kind != "f":
            raise InputFileError(
                path, f"HDU 0 (calibration image) holds {hdus[0].data.dtype}, not floats"
            )
        image = _image(hdus, 0, path, "calibration image", np.float64, finite=True)
    if image.shape[0] > FIBRES_PER_SPECTROGRAPH:
        raise InputFileError(
            path,
            f"calibration image has {image.shape[0]} rows; one camera has at most "
            f"{FIBRES_PER_SPECTROGRAPH} fibres",
        )
    if bool((image < 0).any()):
        raise InputFileError(path, "calibration image has negative values")
    if shape is not None and image.shape != tuple(shape):
        raise InputFileError(
            path, f"calibration image is {image.shape}, the spFrame it calibrates {tuple(shape)}"
        )
    return header, image


def _image_hdu(data: npt.ArrayLike, header: fits.Header | None = None) -> fits.ImageHDU:
    return fits.ImageHDU(np.asarray(data), header=header)


def write_spframe(
    path: Path,
    header: fits.Header,
    *,
    flux: npt.ArrayLike,
    invvar: npt.ArrayLike,
    mask: npt.ArrayLike,
    wset: TraceSet,
    dispset: TraceSet,
    plugmap: Table,
    sky: npt.ArrayLike,
    ximg: npt.ArrayLike,
    superflat: npt.ArrayLike,
) -> None:
    """Write an spFrame file in the idlspec2d layout (HDUs 0–8); see the module docstring.

    Parameters
    ----------
    path : pathlib.Path
        Destination (written as given; atomicity is the caller's concern).
    header : astropy.io.fits.Header
        Primary header.
    flux, invvar, mask, sky, ximg, superflat : array_like
        Images ``(nfibre, npix)`` in the units of :class:`SpFrame`.
    wset, dispset : TraceSet
        Wavelength and dispersion trace sets.
    plugmap : astropy.table.Table
        Plug map.
    """
    hdus = fits.HDUList(
        [
            fits.PrimaryHDU(np.asarray(flux, dtype=np.float32), header=header),
            _image_hdu(np.asarray(invvar, dtype=np.float32)),
            _image_hdu(np.asarray(mask, dtype=np.int32)),
            wset.to_hdu(),
            dispset.to_hdu(),
            fits.table_to_hdu(plugmap),
            _image_hdu(np.asarray(sky, dtype=np.float32)),
            _image_hdu(np.asarray(ximg, dtype=np.float32)),
            _image_hdu(np.asarray(superflat, dtype=np.float32)),
        ]
    )
    hdus.writeto(path, overwrite=True)


def write_spcframe(
    path: Path,
    header: fits.Header,
    *,
    flux: npt.ArrayLike,
    invvar: npt.ArrayLike,
    mask: npt.ArrayLike,
    loglam: npt.ArrayLike,
    dispersion: npt.ArrayLike,
    plugmap: Table,
    sky: npt.ArrayLike,
    ximg: npt.ArrayLike,
) -> None:
    """Write an spCFrame file (HDUs 0–7); units as in :class:`SpCFrame`."""
    hdus = fits.HDUList(
        [
            fits.PrimaryHDU(np.asarray(flux, dtype=np.float32), header=header),
            _image_hdu(np.asarray(invvar, dtype=np.float32)),
            _image_hdu(np.asarray(mask, dtype=np.int32)),
            _image_hdu(np.asarray(loglam, dtype=np.float32)),
            _image_hdu(np.asarray(dispersion, dtype=np.float32)),
            fits.table_to_hdu(plugmap),
            _image_hdu(np.asarray(sky, dtype=np.float32)),
            _image_hdu(np.asarray(ximg, dtype=np.float32)),
        ]
    )
    hdus.writeto(path, overwrite=True)


def write_spfluxcalib(path: Path, header: fits.Header, calibration: npt.ArrayLike) -> None:
    """Write an spFluxcalib file: the calibration image in HDU 0 (units as in the reader)."""
    fits.HDUList(
        [fits.PrimaryHDU(np.asarray(calibration, dtype=np.float32), header=header)]
    ).writeto(path, overwrite=True)
