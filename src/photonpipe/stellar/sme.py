"""SME (Valenti & Piskunov 1996) through PySME (``pysme-astro``), behind the common interface.

PySME ships the compiled SME library in its wheel (``pip install photonpipe[sme]``), so no
compiler is needed. photonpipe uses only the library calls (line list, model, abundances,
opacities, radiative transfer) and feeds it its own model atmospheres, abundances and lines:
nothing is interpolated or downloaded by PySME. The calls run in a worker process
(:mod:`photonpipe.stellar.sme_worker`) whose ``HOME`` is ``$XDG_CACHE_HOME/photonpipe/sme-home``
(importing ``pysme`` writes ``~/.sme``) and which refuses network connections.

* Model: ρx (depth scale ``RHOX``), T and n_e of the photosphere; the atom number density
  XNA = P/kT − n_e and the density ρ = XNA μ m_u with μ the mean atomic mass of the abundances;
  the model's particle and electron densities are used (``Ionization(0)``).
* Abundances: Asplund et al. (2009) scaled by the model [M/H] (H and He unscaled), elements
  given explicitly override it.
* Equivalent widths: each line synthesised alone over ± ``window`` Å (default 3), intensities
  at 7 Gauss-Legendre μ points integrated to flux and normalised by the continuum, 1 − F/F_c
  integrated (trapezoids on SME's adaptive grid).
* Abundances from EWs: LTE line strength depends on gf · ε only (the model's electron and
  particle densities are kept), so each line's log gf is shifted until its EW matches
  (secant steps on log EW, all lines per worker call, to 10⁻⁴ in log EW).
* Damping: van der Waals from the line list's ``damp_vdw`` when it is log γ₆ (negative, VALD's
  convention), else SME's Unsöld approximation; radiative and Stark from the list or SME's
  approximations. H I lines: SME computes their profiles itself from their level numbers
  (given in the Stark and vdW columns, :func:`hydrogen_levels`).
* Synthesis: the normalised flux of a region with all its lines, on a uniform grid.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import json
import math
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
from numpy.typing import ArrayLike

from photonpipe.stellar.abundances import SOLAR_ASPLUND2009
from photonpipe.stellar.linelist import ELEMENTS, Line
from photonpipe.stellar.photospheres import K_BOLTZMANN, Photosphere
from photonpipe.stellar.radiative_transfer import (
    RadiativeTransfer,
    RadiativeTransferError,
    Synthesis,
    check_lines,
    checked_equivalent_widths,
    line_label,
)

DEFAULT_SETTINGS: dict[str, Any] = {
    "window": 3.0,
    "mu_points": 7,
    "accrt": 1e-4,
    "accwi": 3e-3,
    "ionization": 0,
    "vdw_scale": 1.0,
    "h2_broadening": True,
    "solar": "Asplund et al. 2009",
}

ATOMIC_MASS_UNIT = 1.66053906660e-24  # g
#: Standard atomic weights of H–Zn (IUPAC), heavier elements approximated by 2.4 Z.
_WEIGHTS = [
    1.008, 4.0026, 6.94, 9.0122, 10.81, 12.011, 14.007, 15.999, 18.998, 20.180, 22.990, 24.305,
    26.982, 28.085, 30.974, 32.06, 35.45, 39.948, 39.098, 40.078, 44.956, 47.867, 50.942,
    51.996, 54.938, 55.845, 58.933, 58.693, 63.546, 65.38,
]  # fmt: skip


def sme_available() -> bool:
    """Whether ``pysme-astro`` is installed."""
    return importlib.util.find_spec("pysme") is not None


def sme_home() -> Path:
    """``HOME`` of the worker process: ``$XDG_CACHE_HOME/photonpipe/sme-home``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "photonpipe" / "sme-home"


def scaled_solar(metallicity: float, overrides: Mapping[int, float]) -> dict[int, float]:
    """Log ε of every element: Asplund et al. (2009) + [M/H] (not H, He), then ``overrides``."""
    values = {z: v + (metallicity if z > 2 else 0.0) for z, v in SOLAR_ASPLUND2009.items()}
    values.update({int(z): float(v) for z, v in overrides.items()})
    return values


def model_for_sme(photosphere: Photosphere, abundances: Mapping[int, float]) -> dict[str, list]:
    """Give the photosphere as SME's depth arrays: ρx, T, n_e, atom density XNA, density ρ."""
    n_total = photosphere.gas_pressure / (K_BOLTZMANN * photosphere.temperature)
    xna = n_total - photosphere.electron_density
    numbers = {z: 10.0 ** (v - 12.0) for z, v in abundances.items()}
    mean_mass = sum(
        n * (_WEIGHTS[z - 1] if z <= 30 else 2.4 * z) for z, n in numbers.items()
    ) / sum(numbers.values())
    return {
        "rhox": photosphere.rhox.tolist(),
        "temperature": photosphere.temperature.tolist(),
        "xne": photosphere.electron_density.tolist(),
        "xna": xna.tolist(),
        "rho": (xna * mean_mass * ATOMIC_MASS_UNIT).tolist(),
    }


#: Rydberg constant of hydrogen [Å⁻¹] and its ionisation energy [eV].
RYDBERG_H = 1.0967758e-3
IONISATION_H = 13.598


def hydrogen_levels(line: Line) -> tuple[int, int]:
    """Principal quantum numbers (lower, upper) of an H I line from its EP and wavelength.

    Raises
    ------
    RadiativeTransferError
        The EP and wavelength are not those of a hydrogen transition.
    """
    if not 0.0 <= line.expot < IONISATION_H:
        raise RadiativeTransferError(f"{line_label(line)}: not an H I lower level")
    lower = round(1.0 / math.sqrt(1.0 - line.expot / IONISATION_H))
    term = 1.0 / lower**2 - 1.0 / (RYDBERG_H * line.wavelength)
    upper = round(1.0 / math.sqrt(term)) if term > 0 else 0
    if lower < 1 or upper <= lower:
        raise RadiativeTransferError(f"{line_label(line)}: not a hydrogen transition")
    expected = 1.0 / (RYDBERG_H * (1.0 / lower**2 - 1.0 / upper**2))
    if abs(expected - line.wavelength) > 5.0:  # air or vacuum, both within a few Å
        raise RadiativeTransferError(f"{line_label(line)}: not a hydrogen transition")
    return lower, upper


def _line_record(line: Line, loggf: float) -> dict[str, Any]:
    z = int(line.species)
    ion = round((line.species - z) * 10) + 1
    gamvw = line.damp_vdw if math.isfinite(line.damp_vdw) and line.damp_vdw < 0 else 0.0
    gamrad = line.damp_rad if math.isfinite(line.damp_rad) else 0.0
    gamqst = line.damp_stark if math.isfinite(line.damp_stark) else 0.0
    if z == 1 and ion == 1:
        # SME reads an H I line's Stark and vdW columns as its lower and upper level numbers
        # and computes its profile itself
        lower, upper = hydrogen_levels(line)
        gamqst, gamvw = float(lower), float(upper)
    return {
        "species": f"{ELEMENTS[z - 1]} {ion}", "ion": ion, "wavelength": line.wavelength,
        "expot": line.expot, "loggf": loggf, "gamvw": gamvw, "gamrad": gamrad, "gamqst": gamqst,
    }  # fmt: skip


class Sme(RadiativeTransfer):
    """PySME behind the common interface (see the module documentation).

    Parameters
    ----------
    **settings
        Overrides of :data:`DEFAULT_SETTINGS`.
    """

    name = "SME"

    def __init__(self, **settings: Any) -> None:
        unknown = set(settings) - set(DEFAULT_SETTINGS)
        if unknown:
            raise RadiativeTransferError(f"unknown SME setting(s): {', '.join(sorted(unknown))}")
        if not sme_available():
            raise RadiativeTransferError("PySME is not installed: pip install photonpipe[sme]")
        super().__init__({**DEFAULT_SETTINGS, **settings})
        self._process: subprocess.Popen[str] | None = None
        reply = self._ask({"op": "version"})
        self.version = f"PySME {reply['pysme']}, {reply['library'].strip()}"

    def close(self) -> None:
        """Stop the worker process."""
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(OSError):
            if process.stdin is not None:
                process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()

    def _start(self) -> subprocess.Popen[str]:
        home = sme_home()
        home.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "HOME": str(home)}
        process = subprocess.Popen(
            [sys.executable, "-m", "photonpipe.stellar.sme_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        atexit.register(self.close)
        return process

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        if self._process is None or self._process.poll() is not None:
            self._process = self._start()
        stdin: IO[str] | None = self._process.stdin
        stdout: IO[str] | None = self._process.stdout
        if stdin is None or stdout is None:  # pragma: no cover - pipes were requested
            raise RadiativeTransferError("the SME worker has no pipes")
        try:
            stdin.write(json.dumps(request) + "\n")
            stdin.flush()
            line = stdout.readline()
        except (BrokenPipeError, OSError):
            line = ""
        if not line:
            self.close()
            raise RadiativeTransferError(f"the SME worker stopped during {request['op']!r}")
        reply = json.loads(line)
        if not reply.pop("ok"):
            raise RadiativeTransferError(f"SME {request['op']} failed: {reply['error']}")
        return dict(reply)

    def _request(
        self,
        op: str,
        photosphere: Photosphere,
        microturbulence: float,
        abundances: Mapping[int, float],
        lines: list[dict[str, Any]],
        **extra: Any,
    ) -> dict[str, Any]:
        values = scaled_solar(photosphere.metallicity, abundances)
        return self._ask(
            {
                "op": op,
                "teff": float(photosphere.teff),
                "logg": float(photosphere.logg),
                "vt": float(microturbulence),
                "model": model_for_sme(photosphere, values),
                "abundances": {str(z): v for z, v in values.items() if z <= 99},
                "lines": lines,
                "settings": self.settings,
                **extra,
            }
        )

    def equivalent_widths(
        self,
        photosphere: Photosphere,
        microturbulence: float,
        lines: Sequence[Line],
        abundances: Mapping[int, float],
    ) -> np.ndarray:
        """EWs [mÅ] of the lines, each synthesised alone."""
        lines = list(lines)
        check_lines(lines)
        self._check_species(lines)
        records = [_line_record(ln, ln.loggf) for ln in lines]
        reply = self._request("ews", photosphere, microturbulence, abundances, records)
        return np.asarray(reply["ews"], dtype=float)

    def abundances(
        self,
        photosphere: Photosphere,
        microturbulence: float,
        lines: Sequence[Line],
        equivalent_widths: ArrayLike,
        strict: bool = True,
    ) -> np.ndarray:
        """Log ε reproducing each EW (log gf shifted until the EW matches; see the module)."""
        lines = list(lines)
        observed = checked_equivalent_widths(lines, equivalent_widths)
        self._check_species(lines)
        reference = scaled_solar(photosphere.metallicity, {})
        base = np.array([reference[int(ln.species)] for ln in lines])
        target = np.log10(observed)

        def log_ews(shift: np.ndarray) -> np.ndarray:
            records = [_line_record(ln, ln.loggf + s) for ln, s in zip(lines, shift, strict=True)]
            reply = self._request("ews", photosphere, microturbulence, {}, records)
            ews = np.asarray(reply["ews"], dtype=float)
            return np.log10(np.clip(ews, 1e-6, None))

        x0 = np.zeros(len(lines))
        y0 = log_ews(x0)
        x1 = x0 + 0.3 * np.sign(target - y0 + 1e-12)
        y1 = log_ews(x1)
        converged = np.zeros(len(lines), dtype=bool)
        for _ in range(12):
            slope = np.where(np.abs(y1 - y0) > 1e-9, (y1 - y0) / (x1 - x0), 1.0)
            slope = np.clip(slope, 0.02, 1.5)
            x2 = np.clip(x1 + (target - y1) / slope, x1 - 1.5, x1 + 1.5)
            x0, y0 = x1, y1
            x1, y1 = x2, log_ews(x2)
            converged = np.abs(y1 - target) < 1e-4
            if converged.all():
                break
        result = base + x1
        if strict:
            result[~converged] = np.nan
        return result

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
        """Normalised flux of a region with all the lines.

        The driver takes atomic lines only, whose isotopes SME does not separate: isotope
        ratios (for molecular lines) are recorded in the result's ``meta`` and change nothing.
        """
        lines = list(lines)
        check_lines(lines)
        self._check_species(lines)
        records = [_line_record(ln, ln.loggf) for ln in lines]
        reply = self._request(
            "synth", photosphere, microturbulence, abundances or {}, records,
            range=[float(wavelength_range[0]), float(wavelength_range[1])], step=float(step),
        )  # fmt: skip
        return Synthesis(
            np.asarray(reply["wavelength"]),
            np.asarray(reply["flux"]),
            {
                "code": self.name, "version": self.version, "settings": dict(self.settings),
                "isotopes": dict(isotopes or {}),
            },
        )  # fmt: skip

    @staticmethod
    def _check_species(lines: Sequence[Line]) -> None:
        for line in lines:
            z = int(line.species)
            ion = round((line.species - z) * 10)
            if line.species >= 100 or not 1 <= z <= 99 or ion > 2:
                raise RadiativeTransferError(
                    f"{line_label(line)}: the SME driver takes atoms (neutral to doubly ionised)"
                )
