"""idlutils trace sets: per-fibre functions of the CCD row coordinate, as BOSS stores them.

A trace set (idlutils ``traceset2xy``) holds, for each of ``ntrace`` fibres, ``ncoeff``
coefficients of a Legendre (or Chebyshev) series in a normalised coordinate

    x' = 2 (x_nat − x_mid) / (XMAX − XMIN),   x_mid = (XMIN + XMAX) / 2,

so that ``XMIN..XMAX`` maps onto ``[−1, 1]``. BOSS CCDs are read through two amplifiers per
half, and the half read last is offset by a fraction of a pixel: trace sets carry ``XJUMPLO``,
``XJUMPHI`` and ``XJUMPVAL``, and the "natural" coordinate is

    x_nat = x + XJUMPVAL · clip((x − XJUMPLO) / (XJUMPHI − XJUMPLO), 0, 1).

Evaluated at every pixel (``x = XMIN … XMIN + nx − 1`` with ``nx = int(XMAX − XMIN + 1)``) the
wavelength trace set of an spFrame gives log10 of the vacuum wavelength in Å, and the dispersion
trace set the Gaussian sigma of the line-spread function in native pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from astropy.io import fits

FloatArray = npt.NDArray[np.float64]


#: Series a trace set may use (idlutils ``traceset2xy``).
FUNCTIONS = ("legendre", "chebyshev")
#: Largest pixel span and number of terms accepted from a file (BOSS: 4112 pixels, ≤ 10 terms).
MAX_PIXELS = 65536
MAX_COEFFICIENTS = 64


def legendre_basis(x: npt.ArrayLike, ncoeff: int) -> FloatArray:
    """Legendre polynomials P_0 … P_{ncoeff−1} at ``x`` (idlutils ``flegendre``).

    Parameters
    ----------
    x : array_like
        Normalised coordinate (dimensionless, nominally in [−1, 1]), shape ``(n,)``.
    ncoeff : int
        Number of polynomials.

    Returns
    -------
    numpy.ndarray
        Shape ``(ncoeff, n)``.
    """
    # numpy's Bonnet recursion; it multiplies in another order than idlutils' (equal to a few ulp)
    x = np.asarray(x, dtype=np.float64).ravel()
    return np.ascontiguousarray(np.polynomial.legendre.legvander(x, ncoeff - 1).T)


def chebyshev_basis(x: npt.ArrayLike, ncoeff: int) -> FloatArray:
    """Chebyshev polynomials T_0 … T_{ncoeff−1} at ``x`` (idlutils ``fchebyshev``).

    Parameters
    ----------
    x : array_like
        Normalised coordinate, shape ``(n,)``.
    ncoeff : int
        Number of polynomials.

    Returns
    -------
    numpy.ndarray
        Shape ``(ncoeff, n)``.
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    return np.ascontiguousarray(np.polynomial.chebyshev.chebvander(x, ncoeff - 1).T)


def _table_names(data: fits.FITS_rec) -> set[str]:
    """Check a trace-set table's shape and required columns; return its column names.

    Parameters
    ----------
    data : astropy.io.fits.FITS_rec
        The table.

    Returns
    -------
    set of str
        Its column names, upper case.

    Raises
    ------
    KeyError, ValueError
        Not a table, a required column missing, or not one row.
    """
    if data is None or not hasattr(data, "dtype") or data.dtype.names is None:
        raise ValueError("not a table (a trace set is a one-row binary table)")
    names = {n.upper() for n in data.dtype.names}
    missing = {"FUNC", "XMIN", "XMAX", "COEFF"} - names
    if missing:
        raise KeyError(f"trace set lacks column(s) {', '.join(sorted(missing))}")
    if len(data) != 1:
        raise ValueError(f"trace-set table has {len(data)} rows, expected 1")
    return names


def _table_func(data: fits.FITS_rec) -> str:
    """Read the basis function named in a trace-set table's FUNC column, lower case.

    Parameters
    ----------
    data : astropy.io.fits.FITS_rec
        A one-row table with a FUNC column.

    Returns
    -------
    str
        One of :data:`FUNCTIONS`.

    Raises
    ------
    ValueError
        FUNC is not text or not a known function.
    """
    if data.dtype["FUNC"].kind not in "SU":
        raise ValueError(f"trace-set FUNC holds {data.dtype['FUNC']}, not text")
    func = data["FUNC"][0]
    func = func.decode("ascii", "replace") if isinstance(func, bytes) else str(func)
    func = func.strip().lower()
    if func not in FUNCTIONS:
        raise ValueError(f"trace-set FUNC {func!r} is not one of {', '.join(FUNCTIONS)}")
    return func


def _check_numeric(data: fits.FITS_rec, names: set[str]) -> None:
    """Refuse a trace-set table whose numeric columns hold something else.

    Parameters
    ----------
    data : astropy.io.fits.FITS_rec
        A trace-set table.
    names : set of str
        Its column names, upper case.

    Raises
    ------
    ValueError
        XMIN, XMAX, COEFF or a readout-jump column holds text or other non-numbers.
    """
    for key in ("XMIN", "XMAX", "COEFF", "XJUMPLO", "XJUMPHI", "XJUMPVAL"):
        if key in names and data.dtype[key].base.kind not in "iuf":
            raise ValueError(f"trace-set {key} holds {data.dtype[key].base}, not numbers")


def _table_coeff(data: fits.FITS_rec) -> FloatArray:
    """Read the coefficients of a trace-set table, shape ``(ntrace, ncoeff)``.

    Parameters
    ----------
    data : astropy.io.fits.FITS_rec
        A one-row table with a numeric COEFF column.

    Returns
    -------
    numpy.ndarray
        Coefficients; a single trace's 1-D row becomes shape ``(1, ncoeff)``.

    Raises
    ------
    ValueError
        Empty, not two-dimensional, more than :data:`MAX_COEFFICIENTS` terms, or not finite.
    """
    coeff = np.array(data["COEFF"][0], dtype=np.float64)
    if coeff.ndim == 1:
        coeff = coeff[np.newaxis, :]
    if coeff.ndim != 2 or coeff.size == 0:
        raise ValueError(f"trace-set COEFF has shape {coeff.shape}, expected (ntrace, ncoeff)")
    if coeff.shape[1] > MAX_COEFFICIENTS:
        raise ValueError(f"trace-set COEFF has {coeff.shape[1]} > {MAX_COEFFICIENTS} terms")
    if not bool(np.isfinite(coeff).all()):
        raise ValueError("trace-set COEFF has NaN or infinite values")
    return coeff


def _table_range(data: fits.FITS_rec) -> tuple[float, float]:
    """Read the pixel range XMIN, XMAX of a trace-set table [pixel].

    Parameters
    ----------
    data : astropy.io.fits.FITS_rec
        A one-row table with numeric XMIN and XMAX columns.

    Returns
    -------
    xmin, xmax : float
        Finite, with XMAX > XMIN and at most :data:`MAX_PIXELS` pixels [pixel].

    Raises
    ------
    ValueError
        Not finite, XMAX ≤ XMIN, or too wide.
    """
    xmin, xmax = float(data["XMIN"][0]), float(data["XMAX"][0])
    if not (np.isfinite(xmin) and np.isfinite(xmax) and xmax > xmin):
        raise ValueError(f"trace-set XMIN = {xmin}, XMAX = {xmax}: not finite with XMAX > XMIN")
    if xmax - xmin + 1 > MAX_PIXELS:
        raise ValueError(f"trace set spans {xmax - xmin + 1:g} > {MAX_PIXELS} pixels")
    return xmin, xmax


def _table_jump(data: fits.FITS_rec, names: set[str]) -> list[float | None]:
    """Read the readout jump XJUMPLO, XJUMPHI, XJUMPVAL of a trace-set table [pixel].

    Parameters
    ----------
    data : astropy.io.fits.FITS_rec
        A one-row trace-set table.
    names : set of str
        Its column names, upper case.

    Returns
    -------
    list of float or None
        ``[XJUMPLO, XJUMPHI, XJUMPVAL]``, or three None when the table has no jump columns.

    Raises
    ------
    ValueError
        A jump value not finite, or XJUMPHI ≤ XJUMPLO.
    """
    jump: list[float | None] = [None, None, None]
    if {"XJUMPLO", "XJUMPHI", "XJUMPVAL"} <= names:
        jump = [float(data[k][0]) for k in ("XJUMPLO", "XJUMPHI", "XJUMPVAL")]
        if not all(np.isfinite(v) for v in jump if v is not None):
            raise ValueError(f"trace-set readout jump {jump} is not finite")
        lo, hi = jump[0], jump[1]
        if lo is not None and hi is not None and not hi > lo:
            raise ValueError(f"trace-set XJUMPHI = {hi} is not > XJUMPLO = {lo}")
    return jump


@dataclass(frozen=True)
class TraceSet:
    """A trace set as stored in a BOSS spFrame HDU.

    Attributes
    ----------
    func : str
        ``"legendre"`` or ``"chebyshev"``.
    xmin, xmax : float
        Pixel range mapped onto [−1, 1] [pixel].
    coeff : numpy.ndarray
        Coefficients, shape ``(ntrace, ncoeff)``.
    xjumplo, xjumphi, xjumpval : float or None
        Start and end of the readout jump and its size [pixel]; None when absent.
    """

    func: str
    xmin: float
    xmax: float
    coeff: FloatArray
    xjumplo: float | None = None
    xjumphi: float | None = None
    xjumpval: float | None = None

    @property
    def ntrace(self) -> int:
        """Number of traces (fibres)."""
        return int(self.coeff.shape[0])

    @property
    def ncoeff(self) -> int:
        """Number of coefficients per trace."""
        return int(self.coeff.shape[1])

    @property
    def nx(self) -> int:
        """Number of pixels the trace set describes, ``int(XMAX − XMIN + 1)``."""
        return int(self.xmax - self.xmin + 1)

    @property
    def has_jump(self) -> bool:
        """Whether the trace set carries a readout jump."""
        return self.xjumplo is not None and self.xjumphi is not None and self.xjumpval is not None

    def natural_x(self, x: npt.ArrayLike, ignore_jump: bool = False) -> FloatArray:
        """Pixel coordinate with the readout jump added [pixel].

        Parameters
        ----------
        x : array_like
            Pixel positions.
        ignore_jump : bool
            Return ``x`` unchanged.
        """
        x = np.asarray(x, dtype=np.float64)
        if not self.has_jump or ignore_jump:
            return x
        assert self.xjumplo is not None
        assert self.xjumphi is not None
        assert self.xjumpval is not None
        fraction = np.clip((x - self.xjumplo) / (self.xjumphi - self.xjumplo), 0.0, 1.0)
        return x + self.xjumpval * fraction

    def normalised_x(self, x: npt.ArrayLike, ignore_jump: bool = False) -> FloatArray:
        """Return the series argument ``2 (x_nat − x_mid) / (XMAX − XMIN)`` (dimensionless)."""
        mid = 0.5 * (self.xmin + self.xmax)
        return 2.0 * (self.natural_x(x, ignore_jump) - mid) / (self.xmax - self.xmin)

    def evaluate(
        self, x: npt.ArrayLike | None = None, ignore_jump: bool = False
    ) -> tuple[FloatArray, FloatArray]:
        """Evaluate every trace (idlutils ``traceset2xy``).

        Parameters
        ----------
        x : array_like, optional
            Pixel positions, shape ``(n,)`` (shared by all traces) or ``(ntrace, n)``; default
            every pixel ``XMIN … XMIN + nx − 1``.
        ignore_jump : bool
            Ignore the readout jump.

        Returns
        -------
        xpos, ypos : numpy.ndarray
            Positions and values, shape ``(ntrace, n)``; for a wavelength trace set ``ypos`` is
            log10(λ / Å).
        """
        basis_of = {"legendre": legendre_basis, "chebyshev": chebyshev_basis}
        if self.func not in basis_of:
            raise ValueError(f"unsupported trace-set function {self.func!r}")
        if x is None:
            x = self.xmin + np.arange(self.nx, dtype=np.float64)
        x = np.asarray(x, dtype=np.float64)
        if x.ndim == 1:
            basis = basis_of[self.func](self.normalised_x(x, ignore_jump), self.ncoeff)
            ypos = self.coeff @ basis
            return np.broadcast_to(x, ypos.shape).copy(), ypos
        if x.shape[0] != self.ntrace:
            raise ValueError(f"x has {x.shape[0]} rows for {self.ntrace} traces")
        ypos = np.empty_like(x)
        for i in range(self.ntrace):
            basis = basis_of[self.func](self.normalised_x(x[i], ignore_jump), self.ncoeff)
            ypos[i] = self.coeff[i] @ basis
        return x.copy(), ypos

    @classmethod
    def from_table(cls, data: fits.FITS_rec) -> TraceSet:
        """Read the one-row binary table of an spFrame trace-set HDU.

        Parameters
        ----------
        data : astropy.io.fits.FITS_rec
            Table with columns FUNC, XMIN, XMAX, COEFF and optionally XJUMPLO, XJUMPHI,
            XJUMPVAL.

        Raises
        ------
        KeyError, ValueError
            When a column is missing or the coefficients are not two-dimensional.
        """
        names = _table_names(data)
        func = _table_func(data)
        _check_numeric(data, names)
        coeff = _table_coeff(data)
        xmin, xmax = _table_range(data)
        jump = _table_jump(data, names)
        return cls(func, xmin, xmax, coeff, jump[0], jump[1], jump[2])

    def to_hdu(self) -> fits.BinTableHDU:
        """Return the trace set as a one-row binary table HDU (the spFrame layout)."""
        ntrace, ncoeff = self.coeff.shape
        columns = [
            fits.Column("FUNC", "10A", array=np.array([self.func])),
            fits.Column("XMIN", "D", array=np.array([self.xmin])),
            fits.Column("XMAX", "D", array=np.array([self.xmax])),
            fits.Column(
                "COEFF",
                f"{ntrace * ncoeff}D",
                dim=f"({ncoeff},{ntrace})",
                array=self.coeff[np.newaxis, :, :],
            ),
        ]
        if self.has_jump:
            columns += [
                fits.Column(key, "D", array=np.array([value]))
                for key, value in (
                    ("XJUMPLO", self.xjumplo),
                    ("XJUMPHI", self.xjumphi),
                    ("XJUMPVAL", self.xjumpval),
                )
            ]
        return fits.BinTableHDU.from_columns(columns)


def fit_traceset(
    y: npt.ArrayLike,
    ncoeff: int,
    *,
    xmin: float,
    xmax: float,
    jump: tuple[float, float, float] | None = None,
) -> TraceSet:
    """Least-squares Legendre trace set through values sampled at every pixel.

    Uses :func:`numpy.polynomial.legendre.legfit` (not this module's evaluator), so that a
    round trip tests the evaluation against an independent implementation.

    Parameters
    ----------
    y : array_like
        Values at pixels ``xmin … xmin + nx − 1``, shape ``(ntrace, nx)``.
    ncoeff : int
        Number of Legendre coefficients.
    xmin, xmax : float
        Pixel range mapped onto [−1, 1] [pixel].
    jump : (float, float, float), optional
        ``(XJUMPLO, XJUMPHI, XJUMPVAL)`` [pixel].

    Returns
    -------
    TraceSet
    """
    y = np.atleast_2d(np.asarray(y, dtype=np.float64))
    x = xmin + np.arange(y.shape[1], dtype=np.float64)
    if jump is not None:
        lo, hi, val = jump
        x = x + val * np.minimum(np.maximum((x - lo) / (hi - lo), 0.0), 1.0)
    u = (x - 0.5 * (xmin + xmax)) * 2.0 / (xmax - xmin)
    coeff = np.polynomial.legendre.legfit(u, y.T, ncoeff - 1).T
    lo_hi_val: tuple[float | None, float | None, float | None] = (
        jump if jump is not None else (None, None, None)
    )
    return TraceSet("legendre", float(xmin), float(xmax), np.ascontiguousarray(coeff), *lo_hi_val)
