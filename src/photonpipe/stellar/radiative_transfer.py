"""One interface to radiative-transfer codes: abundances from EWs, EWs from abundances, synthesis.

A driver (:class:`RadiativeTransfer`) takes a model atmosphere
(:class:`~.photospheres.Photosphere`), a microturbulence and a list of
:class:`~.linelist.Line` and answers three questions:

* :meth:`~RadiativeTransfer.abundances` -- the abundance log ε (log N(X)/N(H) + 12) that
  reproduces each measured equivalent width;
* :meth:`~RadiativeTransfer.equivalent_widths` -- the equivalent width of each line at given
  abundances;
* :meth:`~RadiativeTransfer.synthesize` -- the normalised spectrum of a wavelength region.

Drivers: :mod:`photonpipe.stellar.moog` (MOOG, the reference, as in SMH) and
:mod:`photonpipe.stellar.sme` (PySME, when ``pysme-astro`` is installed). :func:`get_code`
picks one: by name, or the first available in that order; with none available it raises
:class:`NoRadiativeTransferError` saying how to get one. Each driver records its name, version
and settings (:meth:`~RadiativeTransfer.record`). Results are checked line by line: a line the
code did not return is an error naming the line.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from photonpipe.errors import EXIT_USAGE, PhotonpipeError
from photonpipe.stellar.linelist import Line
from photonpipe.stellar.photospheres import Photosphere

#: How to get a radiative-transfer code (printed when none is available).
HOW_TO_GET_ONE = (
    "no radiative-transfer code: run `photonpipe session install-moog` (needs gfortran) "
    "or pip install photonpipe[sme]"
)


class RadiativeTransferError(PhotonpipeError):
    """A radiative-transfer run failed or returned something unexpected (names the line/run)."""


class NoRadiativeTransferError(PhotonpipeError):
    """No radiative-transfer code is available (the message says how to get one)."""

    exit_code = EXIT_USAGE


@dataclass
class Synthesis:
    """A synthetic spectrum.

    Attributes
    ----------
    wavelength : ndarray
        Wavelength [Å] (same air/vacuum convention as the line list).
    flux : ndarray
        Normalised flux (continuum = 1).
    meta : dict
        Code, settings and inputs.
    """

    wavelength: np.ndarray
    flux: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)


class RadiativeTransfer(ABC):
    """A radiative-transfer code behind the common interface.

    Attributes
    ----------
    name : str
        Code name ("MOOG", "SME").
    version : str
        Code version.
    settings : dict
        The settings every run uses (plain values).
    """

    name: str = ""
    version: str = ""

    def __init__(self, settings: Mapping[str, Any] | None = None) -> None:
        self.settings: dict[str, Any] = dict(settings or {})

    def record(self) -> dict[str, Any]:
        """Plain-data description: ``code``, ``version``, ``settings``."""
        return {"code": self.name, "version": self.version, "settings": dict(self.settings)}

    @abstractmethod
    def abundances(
        self,
        photosphere: Photosphere,
        microturbulence: float,
        lines: Sequence[Line],
        equivalent_widths: ArrayLike,
        strict: bool = True,
    ) -> np.ndarray:
        """Abundance that reproduces each equivalent width.

        Parameters
        ----------
        photosphere : Photosphere
            Model atmosphere.
        microturbulence : float
            Microturbulence [km s⁻¹].
        lines : sequence of Line
            Atomic lines (no two with the same hash).
        equivalent_widths : array-like
            Measured EW of each line [mÅ], > 0.
        strict : bool
            Lines the code did not converge on are NaN; otherwise their last estimate is
            kept (faster; for trial models of a parameter search).

        Returns
        -------
        ndarray
            log ε of each line's element, in the order of ``lines``.

        Raises
        ------
        RadiativeTransferError
            The code failed, or did not return a line (the message names it).
        """

    @abstractmethod
    def equivalent_widths(
        self,
        photosphere: Photosphere,
        microturbulence: float,
        lines: Sequence[Line],
        abundances: Mapping[int, float],
    ) -> np.ndarray:
        """Equivalent width of each line at the given abundances.

        Parameters
        ----------
        photosphere : Photosphere
            Model atmosphere.
        microturbulence : float
            Microturbulence [km s⁻¹].
        lines : sequence of Line
            Atomic lines.
        abundances : mapping of int to float
            log ε by atomic number; other elements follow the model's [M/H] scaled solar.

        Returns
        -------
        ndarray
            EW [mÅ] in the order of ``lines``.
        """

    def synthesize(
        self,
        photosphere: Photosphere,
        microturbulence: float,
        lines: Sequence[Line],
        wavelength_range: tuple[float, float],
        step: float = 0.01,
        abundances: Mapping[int, float] | None = None,
        isotopes: Mapping[str, float] | None = None,
    ) -> Synthesis:
        """Synthesise a wavelength region (not every driver can).

        Parameters
        ----------
        photosphere : Photosphere
            Model atmosphere.
        microturbulence : float
            Microturbulence [km s⁻¹].
        lines : sequence of Line
            Lines in and near the region.
        wavelength_range : (float, float)
            Region [Å].
        step : float
            Wavelength step [Å].
        abundances : mapping of int to float, optional
            log ε by atomic number.
        isotopes : mapping of str to float, optional
            Isotope ratios, e.g. ``{"C12/C13": 10.0}``.
        """
        raise RadiativeTransferError(f"{self.name} driver cannot synthesise spectra")


def check_lines(lines: Sequence[Line]) -> None:
    """Raise unless the lines are distinct atomic lines a driver can pass on.

    Parameters
    ----------
    lines : sequence of Line
        The lines of one run.
    """
    seen: set[str] = set()
    for line in lines:
        if line.hash in seen:
            raise RadiativeTransferError(
                f"line {line.wavelength:.3f} Å ({line.species:.1f}) is given twice"
            )
        seen.add(line.hash)


def checked_equivalent_widths(lines: Sequence[Line], equivalent_widths: ArrayLike) -> np.ndarray:
    """Check the EWs of an abundance run: one per line, each finite and positive.

    Also runs :func:`check_lines`.

    Parameters
    ----------
    lines : sequence of Line
        The lines of one run.
    equivalent_widths : array_like
        EW of each line [mÅ].

    Returns
    -------
    ndarray
        The EWs as floats [mÅ].
    """
    ews = np.asarray(equivalent_widths, dtype=float)
    if ews.shape != (len(lines),):
        raise RadiativeTransferError("one equivalent width per line is needed")
    check_lines(lines)
    for line, ew in zip(lines, ews, strict=True):
        if not (np.isfinite(ew) and ew > 0):
            raise RadiativeTransferError(f"{line_label(line)}: EW {ew} mÅ is not positive")
    return ews


def line_label(line: Line) -> str:
    """Name a line for messages: ``"Fe I 4920.502 Å (line 1a2b3c4d)"``."""
    return f"{species_name(line.species)} {line.wavelength:.3f} Å (line {line.hash[:8]})"


def species_name(species: float) -> str:
    """Name of a species code: 26.0 → "Fe I", 26.1 → "Fe II"; molecules as their code."""
    from photonpipe.stellar.linelist import ELEMENTS

    z = int(species)
    ion = round((species - z) * 10)
    if 1 <= z <= len(ELEMENTS) and 0 <= ion <= 3:
        return f"{ELEMENTS[z - 1]} {'I' * (ion + 1) if ion < 3 else 'IV'}"
    return f"{species:g}"


def available_codes() -> dict[str, bool]:
    """Which drivers can run here now (MOOG built, PySME installed)."""
    from photonpipe.stellar import moog, sme

    return {"moog": moog.find_moog(build=False) is not None, "sme": sme.sme_available()}


def get_code(name: str = "auto", **options: Any) -> RadiativeTransfer:
    """Return a driver by name ("moog", "sme") or the first available ("auto": MOOG, then SME).

    Parameters
    ----------
    name : {"auto", "moog", "sme"}
        Which code.
    **options
        ``build`` (default True): build MOOG on first use where gfortran exists;
        ``executable``: a MOOGSILENT to use instead of the cached one; other options are the
        driver's settings.

    Raises
    ------
    NoRadiativeTransferError
        The code (or, for "auto", every code) is not available; says how to get one.
    """
    from photonpipe.stellar import moog, sme

    name = name.lower()
    if name not in ("auto", "moog", "sme"):
        raise NoRadiativeTransferError(
            f"unknown radiative-transfer code {name!r} (auto, moog or sme)"
        )
    build = options.pop("build", True)
    executable = options.pop("executable", None)
    if name in ("auto", "moog"):
        found = moog.find_moog(build=build, executable=executable)
        if found is not None:
            return moog.Moog(found, **options)
        if name == "moog":
            raise NoRadiativeTransferError(
                "MOOG is not installed: run `photonpipe session install-moog` (needs gfortran)"
            )
    if sme.sme_available():
        return sme.Sme(**options)
    if name == "sme":
        raise NoRadiativeTransferError("PySME is not installed: pip install photonpipe[sme]")
    raise NoRadiativeTransferError(HOW_TO_GET_ONE)
