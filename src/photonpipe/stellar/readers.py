"""Readers of the spectrum formats a session accepts; each returns one Spectrum per order.

Formats are recognised by content, not by file name:

* **1-D FITS image** with a linear wavelength WCS (``CRVAL1``, ``CDELT1`` or ``CD1_1``,
  ``CRPIX1``; IRAF ``DC-FLAG = 0`` or ``WAT1 system=equispec``) or a logarithmic one (IRAF
  ``DC-FLAG = 1``: log10 λ linear in pixels; FITS ``CTYPE1 = 'WAVE-LOG'``: λ = CRVAL·exp(CDELT·
  (p − CRPIX)/CRVAL)). One order.
* **IRAF multispec echelle** (``WAT1_001 = 'wtype=multispec'``): one order per image row, the
  dispersion of each in ``specN`` of the concatenated ``WAT2_nnn`` cards: linear (dtype 0),
  log-linear (1) or non-linear (2: Chebyshev, Legendre, linear/cubic spline, sampled pixel
  coordinates), with Doppler factor ``z``. A 3-D image (bands) takes the flux from the band
  whose ``BANDIDn`` says "object"/"spectrum" (else band 1) and the σ from a "noise"/"sigma"
  band when present.
* **FITS tables**: one binary-table row per order with array columns, or one table HDU per order
  with scalar columns: wavelength (``wavelength``, ``wave``, ``lambda``), flux (``flux``) and
  optionally ``uncertainty``/``error``/``sigma``/``err`` (σ) or ``ivar`` (inverse variance).
* **ASCII**: whitespace- or comma-separated columns wavelength [Å], flux, optional σ; ``#``
  comments.
* **anything specutils reads** (the ``specutils`` extra): when none of the above recognises the
  file, specutils' registry of loaders is asked (highest priority first); each 1-D spectrum it
  returns becomes one order. ``meta["reader"]`` says which reader was used. specutils' generic
  loaders of the layouts above (:data:`GENERIC_SPECUTILS_LOADERS`) are not asked: photonpipe
  refused the file for the reason it gives, and they would fill in what the file lacks (e.g.
  ``wcs1d-fits`` takes pixel numbers for Å when there is no WCS).

Wavelengths are in Å as written in the file (air or vacuum as the file has them). The flux unit
is the file's (``BUNIT``, or the flux column's ``TUNIT``) when astropy parses it, else
dimensionless.
"""

from __future__ import annotations

import gzip
import importlib
import io
import re
import tempfile
import warnings
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.utils.exceptions import AstropyWarning
from numpy.polynomial import chebyshev, legendre
from numpy.typing import NDArray

from photonpipe.errors import InputFileError
from photonpipe.platform.headers import FITS_PARSE_ERRORS, check_fits_structure
from photonpipe.spectra.spectrum import Spectrum

_WAVE_NAMES = ("wavelength", "wave", "lambda", "wavelength_air", "wavelength_vacuum")
_FLUX_NAMES = ("flux", "normalized_flux", "flux_normalized")
_SIGMA_NAMES = ("uncertainty", "error", "sigma", "err", "flux_error", "noise")
_IVAR_NAMES = ("ivar", "inverse_variance")

#: specutils loaders of layouts photonpipe reads itself; never used as a fallback (see above).
GENERIC_SPECUTILS_LOADERS = frozenset(
    {"wcs1d-fits", "tabular-fits", "iraf", "ASCII", "ECSV", "IPAC"}
)

#: Header keywords copied into each order's ``meta["header"]`` (for barycentric corrections;
#: RVZEROSD/RVZERON: the zero-point accuracy of an RV template, see stellar/data/README.md).
HEADER_KEYWORDS = (
    "OBJECT", "RA", "DEC", "RA-D", "DEC-D", "EQUINOX", "SITENAME", "SITELAT", "SITELONG",
    "SITEALT", "OBSERVAT", "TELESCOP", "INSTRUME", "DATE-OBS", "UT-DATE", "UT-START", "UT-TIME",
    "MJD-OBS", "EXPTIME", "DOPCOR01", "DOPCOR02", "DOPCOR03", "RVZEROSD", "RVZERON",
)  # fmt: skip


def read_spectrum_bytes(data: bytes, name: str | Path) -> list[Spectrum]:
    """Read every order of a spectrum file held in memory.

    Parameters
    ----------
    data : bytes
        The file's contents.
    name : str or Path
        The file's name (for messages and ``meta["source"]``).

    Returns
    -------
    list of Spectrum
        One per order, in file order, with ``meta`` keys ``source``, ``index`` (order index in
        the file), ``label``, ``header`` (selected keywords), ``noise_known`` (whether the
        file gave uncertainties; if not, ``ivar`` is 1 for every finite pixel) and ``reader``
        (e.g. ``"photonpipe IRAF multispec"``, ``"specutils 'SDSS-III/IV spec'"``).

    Raises
    ------
    InputFileError
        The content is not a recognised spectrum format or is corrupt.
    """
    plain_name = Path(name).name
    if data[:2] == b"\x1f\x8b":  # gzip-compressed (e.g. .fits.gz)
        data = _gunzip(data, Path(name))
        plain_name = plain_name.removesuffix(".gz").removesuffix(".gzip") or "spectrum"
    try:
        if data[:9] == b"SIMPLE  =":
            orders = _read_fits(data, Path(name))
        else:
            orders = _tag(_read_ascii(data, Path(name)), "ASCII")
    except InputFileError as native:
        orders = _read_with_specutils(data, Path(name), plain_name, native)
    if not orders:
        raise InputFileError(name, "no spectrum found in the file")
    for index, order in enumerate(orders):
        order.meta.setdefault("label", str(index))
        order.meta.setdefault("noise_known", False)
        order.meta["source"] = Path(name).name
        order.meta["index"] = index
        if len(order) < 2:
            raise InputFileError(name, f"order {index} has fewer than 2 pixels")
        if not np.all(np.diff(order.wavelength) > 0):
            raise InputFileError(name, f"order {index}: wavelengths are not increasing")
    return orders


def _gunzip(data: bytes, path: Path, limit: int = 4 * 1024**3) -> bytes:
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as gz:
            out = gz.read(limit + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise InputFileError(path, f"corrupt gzip data ({exc})") from None
    if len(out) > limit:
        raise InputFileError(path, f"decompresses to more than {limit} bytes")
    return out


def read_spectrum(path: str | Path) -> list[Spectrum]:
    """Read every order of a spectrum file (see :func:`read_spectrum_bytes`).

    Parameters
    ----------
    path : str or Path
        The file.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputFileError(path, "no such file") from None
    except OSError as exc:
        raise InputFileError(path, f"cannot read: {exc.strerror}") from None
    return read_spectrum_bytes(data, path)


def _read_fits(data: bytes, path: Path) -> list[Spectrum]:
    check_fits_structure(data, path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AstropyWarning)
            with fits.open(io.BytesIO(data), memmap=False) as hdul:
                hdul.verify("silentfix")
                return _read_hdul(hdul, path)
    except InputFileError:
        raise
    except FITS_PARSE_ERRORS as exc:
        raise InputFileError(path, f"corrupt or unsupported FITS file ({exc})") from None


def _header_meta(header: fits.Header) -> dict[str, Any]:
    return {k: header[k] for k in HEADER_KEYWORDS if k in header}


def _read_hdul(hdul: fits.HDUList, path: Path) -> list[Spectrum]:
    primary = hdul[0]
    header = primary.header
    if primary.data is not None and primary.data.size:
        wat1 = _wat_string(header, 1)
        if "multispec" in _wat_string(header, 0) or "multispec" in wat1:
            return _tag(_read_multispec(primary.data, header, path), "IRAF multispec")
        if primary.data.ndim == 1:
            wave = _linear_or_log_wcs(header, primary.data.size, path)
            spectrum = Spectrum(
                wave,
                primary.data,
                meta={"header": _header_meta(header)},
                unit=_flux_unit(header.get("BUNIT")),
            )
            return _tag([spectrum], "1-D FITS image")
        raise InputFileError(
            path, f"{primary.data.ndim}-D image without a multispec WCS (WAT keywords)"
        )
    orders: list[Spectrum] = []
    for hdu in hdul[1:]:
        if isinstance(hdu, fits.BinTableHDU | fits.TableHDU):
            orders.extend(_read_table(hdu, header, path))
    if not orders:
        raise InputFileError(path, "FITS file has neither a spectrum image nor a spectrum table")
    return _tag(orders, "FITS table")


def _linear_or_log_wcs(header: fits.Header, n: int, path: Path) -> NDArray[np.float64]:
    if "CRVAL1" not in header:
        raise InputFileError(path, "1-D image without a wavelength WCS (CRVAL1)")
    crval = float(header["CRVAL1"])
    cdelt = float(header.get("CDELT1", header.get("CD1_1", 0.0)))
    if cdelt == 0.0:
        raise InputFileError(path, "1-D image with no wavelength step (CDELT1/CD1_1)")
    crpix = float(header.get("CRPIX1", 1.0))
    ltv = float(header.get("LTV1", 0.0))
    pixel = np.arange(1, n + 1, dtype=np.float64) - ltv  # physical pixel numbers (IRAF)
    ctype = str(header.get("CTYPE1", "")).upper()
    offset = pixel + ltv - crpix
    if ctype.startswith("WAVE-LOG"):
        return crval * np.exp(cdelt * offset / crval)
    if int(header.get("DC-FLAG", 0)) == 1:
        return np.asarray(10.0 ** (crval + cdelt * offset), dtype=np.float64)
    return crval + cdelt * offset


def _wat_string(header: fits.Header, axis: int) -> str:
    """Concatenate ``WATn_nnn`` cards; each holds exactly 68 characters (trailing spaces kept)."""
    keys = sorted(
        (k for k in header if re.fullmatch(rf"WAT{axis}_\d{{3}}", k)), key=lambda k: int(k[5:])
    )
    return "".join(str(header[k]).ljust(68) for k in keys)


def _parse_multispec_specs(wat2: str, path: Path) -> dict[int, list[float]]:
    specs: dict[int, list[float]] = {}
    for match in re.finditer(r'spec(\d+)\s*=\s*"([^"]*)"', wat2):
        try:
            specs[int(match.group(1))] = [float(v) for v in match.group(2).split()]
        except ValueError:
            raise InputFileError(path, f"malformed multispec spec{match.group(1)}") from None
    return specs


def _nonlinear_wavelength(
    params: list[float], pixel: NDArray[np.float64], path: Path, label: int
) -> NDArray[np.float64]:
    """Evaluate IRAF multispec non-linear dispersion functions (weighted sum)."""
    wave = np.zeros_like(pixel)
    i = 0
    while i < len(params):
        try:
            weight, zero, ftype = params[i], params[i + 1], int(params[i + 2])
            if ftype in (1, 2):
                order, pmin, pmax = int(params[i + 3]), params[i + 4], params[i + 5]
                coeffs = np.array(params[i + 6 : i + 6 + order])
                if coeffs.size != order:
                    raise IndexError
                x = (2.0 * pixel - (pmax + pmin)) / (pmax - pmin)
                series = chebyshev.chebval if ftype == 1 else legendre.legval
                value = series(x, coeffs)
                i += 6 + order
            elif ftype in (3, 4):
                npieces, pmin, pmax = int(params[i + 3]), params[i + 4], params[i + 5]
                ncoef = npieces + (3 if ftype == 3 else 1)
                coeffs = np.array(params[i + 6 : i + 6 + ncoef])
                if coeffs.size != ncoef:
                    raise IndexError
                value = _iraf_spline(pixel, coeffs, npieces, pmin, pmax, cubic=ftype == 3)
                i += 6 + ncoef
            elif ftype == 5:
                npts = int(params[i + 3])
                table = np.array(params[i + 4 : i + 4 + npts])
                if table.size != npts:
                    raise IndexError
                value = np.interp(pixel, np.arange(1, npts + 1, dtype=float), table)
                i += 4 + npts
            else:
                raise InputFileError(path, f"order {label}: unsupported dispersion type {ftype}")
        except IndexError:
            raise InputFileError(path, f"order {label}: truncated dispersion function") from None
        wave += weight * (zero + value)
    return wave


def _iraf_spline(
    pixel: NDArray[np.float64],
    coeffs: NDArray[np.float64],
    npieces: int,
    pmin: float,
    pmax: float,
    *,
    cubic: bool,
) -> NDArray[np.float64]:
    s = (pixel - pmin) / (pmax - pmin) * npieces
    j = np.clip(np.floor(s).astype(int), 0, npieces - 1)
    a = j + 1 - s
    b = s - j
    if not cubic:
        return np.asarray(a * coeffs[j] + b * coeffs[j + 1], dtype=np.float64)
    z0 = a**3
    z1 = 1 + 3 * a * (1 + a * b)
    z2 = 1 + 3 * b * (1 + a * b)
    z3 = b**3
    return np.asarray(
        z0 * coeffs[j] + z1 * coeffs[j + 1] + z2 * coeffs[j + 2] + z3 * coeffs[j + 3],
        dtype=np.float64,
    )


def _band_index(header: fits.Header, nbands: int, words: tuple[str, ...]) -> int | None:
    for band in range(1, nbands + 1):
        text = str(header.get(f"BANDID{band}", "")).lower()
        if any(w in text for w in words):
            return band - 1
    return None


def _read_multispec(data: NDArray[Any], header: fits.Header, path: Path) -> list[Spectrum]:
    data = np.asarray(data, dtype=np.float64)
    sigma: NDArray[np.float64] | None = None
    if data.ndim == 3:
        nbands = data.shape[0]
        flux_band = _band_index(header, nbands, ("object", "spectrum"))
        noise_band = _band_index(header, nbands, ("noise", "sigma", "error"))
        flux = data[flux_band if flux_band is not None else 0]
        sigma = data[noise_band] if noise_band is not None else None
    elif data.ndim == 2:
        flux = data
    elif data.ndim == 1:
        flux = data[np.newaxis, :]
    else:
        raise InputFileError(path, f"multispec image with {data.ndim} axes")
    specs = _parse_multispec_specs(_wat_string(header, 2), path)
    npix = flux.shape[1]
    ltv = float(header.get("LTV1", 0.0))
    ltm = float(header.get("LTM1_1", 1.0))
    pixel = (np.arange(1, npix + 1, dtype=np.float64) - ltv) / ltm
    orders: list[Spectrum] = []
    for row in range(flux.shape[0]):
        params = specs.get(row + 1)
        if params is None or len(params) < 9:
            raise InputFileError(path, f"multispec WAT2 has no complete spec{row + 1}")
        aperture, dtype, w1, dw, nw, z = (
            int(params[0]), int(params[2]), params[3], params[4], int(params[5]), params[6],
        )  # fmt: skip
        if dtype == 0:
            wave = w1 + dw * (pixel - 1.0)
        elif dtype == 1:
            wave = 10.0 ** (w1 + dw * (pixel - 1.0))
        elif dtype == 2:
            wave = _nonlinear_wavelength(params[9:], pixel, path, aperture)
        else:
            raise InputFileError(path, f"order {aperture}: no dispersion (dtype {dtype})")
        wave = wave / (1.0 + z)
        n = min(nw, npix) if nw > 0 else npix
        ivar = None
        if sigma is not None:
            with np.errstate(divide="ignore"):
                ivar = np.where(sigma[row, :n] > 0, 1.0 / sigma[row, :n] ** 2, 0.0)
        orders.append(
            Spectrum(
                wave[:n],
                flux[row, :n],
                ivar,
                meta={
                    "label": f"aperture {aperture}",
                    "header": _header_meta(header),
                    "noise_known": ivar is not None,
                },
                unit=_flux_unit(header.get("BUNIT")),
            )
        )
    return orders


def _column(names: dict[str, str], candidates: tuple[str, ...]) -> str | None:
    for candidate in candidates:
        if candidate in names:
            return names[candidate]
    return None


def _read_table(hdu: fits.BinTableHDU, primary: fits.Header, path: Path) -> list[Spectrum]:
    table = hdu.data
    if table is None or len(table) == 0:
        return []
    names = {n.lower(): n for n in table.columns.names}
    wave_col = _column(names, _WAVE_NAMES)
    flux_col = _column(names, _FLUX_NAMES)
    if wave_col is None or flux_col is None:
        raise InputFileError(path, f"table {hdu.name or 'HDU'} has no wavelength and flux columns")
    sigma_col = _column(names, _SIGMA_NAMES)
    ivar_col = _column(names, _IVAR_NAMES)
    meta_header = {**_header_meta(primary), **_header_meta(hdu.header)}
    wave_unit = str(hdu.columns[wave_col].unit or "").strip().lower()
    flux_unit = _flux_unit(hdu.columns[flux_col].unit)
    scale = {"nm": 10.0, "um": 1e4, "micron": 1e4, "m": 1e10, "cm": 1e8}.get(wave_unit, 1.0)

    def _ivar(index: int | slice) -> NDArray[np.float64] | None:
        if ivar_col is not None:
            return np.asarray(table[ivar_col][index], dtype=np.float64)
        if sigma_col is not None:
            sig = np.asarray(table[sigma_col][index], dtype=np.float64)
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.where(sig > 0, 1.0 / sig**2, 0.0)
        return None

    first = np.asarray(table[wave_col][0])
    orders: list[Spectrum] = []
    if first.ndim == 1 and first.size > 1:  # one row per order, array columns
        order_col = _column(names, ("order", "aperture", "order_number"))
        for row in range(len(table)):
            label = str(table[order_col][row]) if order_col else str(row)
            wave = np.asarray(table[wave_col][row], dtype=np.float64) * scale
            flux = np.asarray(table[flux_col][row], dtype=np.float64)
            ivar = _ivar(row)
            good = np.isfinite(wave) & (wave > 0)  # rows may be padded
            orders.append(
                Spectrum(
                    wave[good],
                    flux[good],
                    None if ivar is None else ivar[good],
                    meta={
                        "label": f"order {label}",
                        "header": meta_header,
                        "noise_known": ivar is not None,
                    },
                    unit=flux_unit,
                )
            )
        return orders
    wave = np.asarray(table[wave_col], dtype=np.float64) * scale
    label = hdu.header.get("ORDER", hdu.name or "")
    ivar = _ivar(slice(None))
    return [
        Spectrum(
            wave,
            np.asarray(table[flux_col], dtype=np.float64),
            ivar,
            meta={"label": str(label), "header": meta_header, "noise_known": ivar is not None},
            unit=flux_unit,
        )
    ]


def _read_ascii(data: bytes, path: Path) -> list[Spectrum]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputFileError(path, "neither FITS nor a text table") from None
    rows: list[list[float]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.split("#", 1)[0].strip()
        if not stripped:
            continue
        fields = stripped.replace(",", " ").split()
        try:
            values = [float(v) for v in fields]
        except ValueError:
            if not rows:  # a header line of column names
                continue
            raise InputFileError(path, f"line {number}: not numbers: {stripped[:40]!r}") from None
        if len(values) not in (2, 3) or (rows and len(values) != len(rows[0])):
            raise InputFileError(path, f"line {number}: expected 2 or 3 columns")
        rows.append(values)
    if len(rows) < 2:
        raise InputFileError(path, "text table with fewer than 2 rows")
    array = np.array(rows)
    ivar = None
    if array.shape[1] == 3:
        with np.errstate(divide="ignore"):
            ivar = np.where(array[:, 2] > 0, 1.0 / array[:, 2] ** 2, 0.0)
    return [Spectrum(array[:, 0], array[:, 1], ivar, meta={"noise_known": ivar is not None})]


def _tag(orders: list[Spectrum], reader: str) -> list[Spectrum]:
    for order in orders:
        order.meta.setdefault("reader", f"photonpipe {reader}")
    return orders


def _flux_unit(text: object) -> u.UnitBase | None:
    """Parse a header's flux unit (FITS standard first, then astropy's generic syntax)."""
    if text is None or not str(text).strip():
        return None
    for fmt in ("fits", None):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", AstropyWarning)
                unit = u.Unit(str(text).strip(), format=fmt)
        except ValueError:
            continue
        return unit if isinstance(unit, u.UnitBase) else None
    return None  # an unknown unit string: the flux is kept, its unit is not claimed


def _read_with_specutils(
    data: bytes, path: Path, name: str, native: InputFileError
) -> list[Spectrum]:
    """Read a file none of photonpipe's readers recognise with specutils' loaders.

    The loaders are asked in order of specutils' own priority (specific formats before generic
    ones); the first that returns only 1-D spectra with a spectral axis wins.

    Raises
    ------
    InputFileError
        No loader reads it (the message keeps photonpipe's own reason), or specutils is not
        installed (the message names the extra).
    """
    try:
        specutils = importlib.import_module("specutils")
    except ModuleNotFoundError:
        raise InputFileError(
            path,
            f"{native.problem} (to try specutils' readers: pip install 'photonpipe[specutils]')",
        ) from None
    from specutils.io.registers import identify_spectrum_format

    spectrum_list = specutils.SpectrumList
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="photonpipe-spectrum-") as tmp:
        copy = Path(tmp) / name  # keep the name: some loaders identify files by extension
        copy.write_bytes(data)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AstropyWarning)
            try:
                found = identify_spectrum_format(copy, spectrum_list)
            except Exception:  # an identifier that chokes on the content recognises nothing
                found = []
        formats = [found] if isinstance(found, str) else list(found)
        formats = [f for f in formats if f not in GENERIC_SPECUTILS_LOADERS]
        # astropy's registry knows each loader's priority but lists formats unordered
        readers = getattr(spectrum_list.read.registry, "_readers", {})
        formats.sort(key=lambda f: -readers.get((f, spectrum_list), (None, 0))[1])
        for fmt in formats:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", AstropyWarning)
                    result = spectrum_list.read(copy, format=fmt)
                orders = [_order_from_specutils(item) for item in result]
            except Exception as exc:  # specutils' loaders raise anything on a file not theirs
                text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                problems.append(f"{fmt!r}: {text}")
                continue
            if orders:
                for order in orders:
                    order.meta["reader"] = f"specutils {fmt!r}"
                return orders
    tried = "; ".join(problems) if problems else "none of its loaders recognises the file"
    raise InputFileError(path, f"{native.problem} (specutils: {tried})")


def _order_from_specutils(spectrum: Any) -> Spectrum:
    """One order from a specutils spectrum; its header reduced to :data:`HEADER_KEYWORDS`."""
    meta = dict(spectrum.meta)
    header = meta.get("header")
    info: dict[str, Any] = {}
    if isinstance(header, fits.Header | dict):
        info["header"] = {k: header[k] for k in HEADER_KEYWORDS if k in header}
    return Spectrum.from_specutils(spectrum, meta=info)
