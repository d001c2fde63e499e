"""Model atmospheres: Kurucz/ATLAS and MARCS readers, and a grid that interpolates between them.

A :class:`Photosphere` holds one 1-D plane-parallel LTE model on its depth points: column mass
``rhox`` [g cm⁻²], temperature [K], gas pressure [dyn cm⁻²], electron number density [cm⁻³],
Rosseland mean opacity [cm² g⁻¹] and the Rosseland optical depth (log10). Readers:

* :func:`read_kurucz` -- Kurucz/ATLAS "READ DECK6" models (the format MOOG reads as KURUCZ; a
  file may hold several models one after the other). τ_Ross is integrated from ``rhox`` and
  ``ABROSS`` (τ₁ = κ₁ ρx₁, then the trapezoid rule), as MOOG does for this model type.
* :func:`read_marcs` -- MARCS ``.mod`` files (Gustafsson et al. 2008): ``lgTauR``, ``T``,
  ``Pe``, ``Pg`` from the first block, ``KappaRoss`` and ``RHOX`` from the second;
  n_e = Pe / (k T).

An :class:`AtmosphereGrid` is a set of models at nodes (Teff, log g, [M/H]). It interpolates
multilinearly between the 2--8 nodes that bracket the requested parameters, on a common
Rosseland optical-depth scale: every node model is first resampled (linearly in log τ_Ross) onto
the log τ points of the node with the largest weight, cut to the depth range all the nodes
share; then T, log P, log n_e, log κ and log ρx are averaged with the multilinear weights. It
refuses to extrapolate (a parameter outside the grid, or a bracketing node missing, is an
:class:`AtmosphereGridError`) and every interpolated model lists the nodes it used.

The default grid is the Kurucz (1993) ATLAS9 subset bundled as package data
(``stellar/data/kurucz1993_atlas9_subset.npz``, see :func:`bundled_grid` and
``stellar/data/README.md``): 2230 models, Teff 3750--6750 K, log g 0--5, [M/H] −4…+0.5. The
file stores every number of the original text files as integers (mantissa digits and decimal
exponents) plus the header and trailer text, so :meth:`AtmosphereGrid.model_text` gives back
each original file byte for byte (tested), and the grid's SHA-256 is that of the original
directory (:func:`photonpipe.stellar.physics.hash_directory`).
"""

from __future__ import annotations

import functools
import hashlib
import io
import math
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from photonpipe.errors import InputFileError, PhotonpipeError
from photonpipe.stellar.physics import hash_directory

#: Boltzmann constant [erg K⁻¹].
K_BOLTZMANN = 1.380649e-16

BUNDLED_GRID_FILE = "kurucz1993_atlas9_subset.npz"

#: Description of the bundled grid.
BUNDLED_GRID = {
    "name": "Kurucz 1993 ATLAS9 (subset)",
    "version": "CD-ROM 13, vturb 2 km/s, l/H 1.25, AG89 solar mix, as packaged in pymoog 0.0.28",
    "ads_reference": "1993KurCD..13.....K",
}

MARCS_REFERENCE = "2008A&A...486..951G"
CASTELLI_KURUCZ_REFERENCE = "2003IAUS..210P.A20C"


class AtmosphereGridError(PhotonpipeError):
    """A model atmosphere cannot be given for these parameters (outside the grid, or a hole)."""


@dataclass(frozen=True)
class Photosphere:
    """One 1-D plane-parallel LTE model atmosphere.

    Attributes
    ----------
    teff : float
        Effective temperature [K].
    logg : float
        log10 of the surface gravity [cm s⁻²].
    metallicity : float
        [M/H] of the model [dex].
    microturbulence : float
        Microturbulence the model was computed with [km s⁻¹].
    log_tau_ross : ndarray
        log10 Rosseland optical depth per depth point, increasing inwards.
    rhox : ndarray
        Column mass [g cm⁻²].
    temperature : ndarray
        Temperature [K].
    gas_pressure : ndarray
        Gas pressure [dyn cm⁻²].
    electron_density : ndarray
        Electron number density [cm⁻³].
    kappa_ross : ndarray
        Rosseland mean opacity [cm² g⁻¹].
    alpha : float
        [α/M] of the model [dex].
    source : str
        File or grid the model comes from.
    nodes : tuple of (float, float, float, float)
        For an interpolated model, the grid nodes used: (Teff, log g, [M/H], weight).
    """

    teff: float
    logg: float
    metallicity: float
    microturbulence: float
    log_tau_ross: np.ndarray
    rhox: np.ndarray
    temperature: np.ndarray
    gas_pressure: np.ndarray
    electron_density: np.ndarray
    kappa_ross: np.ndarray
    alpha: float = 0.0
    source: str = ""
    nodes: tuple[tuple[float, float, float, float], ...] = field(default=())

    def __len__(self) -> int:
        return len(self.temperature)

    @property
    def parameters(self) -> tuple[float, float, float]:
        """(Teff [K], log g, [M/H])."""
        return (self.teff, self.logg, self.metallicity)


def kurucz_tau_ross(rhox: np.ndarray, kappa: np.ndarray) -> np.ndarray:
    """Rosseland optical depth from column mass and Rosseland opacity (log10 τ).

    Parameters
    ----------
    rhox : ndarray
        Column mass [g cm⁻²], increasing inwards.
    kappa : ndarray
        Rosseland mean opacity [cm² g⁻¹].

    Returns
    -------
    ndarray
        log10 τ_Ross: τ₁ = κ₁ ρx₁, then the trapezoid rule.
    """
    tau = np.empty_like(rhox)
    tau[0] = kappa[0] * rhox[0]
    tau[1:] = tau[0] + np.cumsum(0.5 * (kappa[1:] + kappa[:-1]) * np.diff(rhox))
    return np.log10(tau)


# --- Kurucz / ATLAS "READ DECK6" ---------------------------------------------------------------

_TEFF = re.compile(r"^TEFF\s+([0-9.+-Ee]+)\s+GRAVITY\s+([0-9.+-Ee]+)")
_TITLE_MH = re.compile(r"\[\s*([+-]?\d+(?:\.\d*)?)\s*\]")
_VTURB = re.compile(r"VTURB[\s=]*([0-9.]+)")
_SCALE = re.compile(r"ABUNDANCE SCALE\s+([0-9.Ee+-]+)")


def read_kurucz(path: str | os.PathLike[str], text: str | None = None) -> list[Photosphere]:
    """Read Kurucz/ATLAS models in "READ DECK6" format (one or several per file).

    Parameters
    ----------
    path : str or PathLike
        The file (read unless ``text`` is given; named in errors).
    text : str, optional
        Contents of the file.

    Returns
    -------
    list of Photosphere

    Raises
    ------
    InputFileError
        Missing file, or not a READ DECK6 model (what is wrong and on which line).
    """
    name = Path(path)
    if text is None:
        text = _read_text(name)
    lines = text.splitlines()
    models: list[Photosphere] = []
    i = 0
    while i < len(lines):
        match = _TEFF.match(lines[i].strip())
        if not match:
            i += 1
            continue
        start = i
        teff, logg = float(match.group(1)), float(match.group(2))
        mh: float | None = None
        vturb = math.nan
        scale: float | None = None
        i += 1
        while i < len(lines) and not lines[i].startswith("READ DECK6"):
            line = lines[i]
            if line.startswith("TITLE"):
                if found := _TITLE_MH.search(line):
                    mh = float(found.group(1))
                if found := _VTURB.search(line):
                    vturb = float(found.group(1))
            if found := _SCALE.search(line):
                scale = float(found.group(1))
            if _TEFF.match(line.strip()):
                raise InputFileError(name, f"line {i + 1}: new model before READ DECK6")
            i += 1
        if i >= len(lines):
            raise InputFileError(name, f"line {start + 1}: model has no READ DECK6 block")
        try:
            n_depth = int(lines[i].split()[2])
        except (IndexError, ValueError):
            raise InputFileError(name, f"line {i + 1}: READ DECK6 without a depth count") from None
        rows = lines[i + 1 : i + 1 + n_depth]
        try:
            data = np.array([[float(v) for v in row.split()[:5]] for row in rows])
        except ValueError:
            raise InputFileError(name, f"lines {i + 2}-{i + 1 + n_depth}: not numbers") from None
        if data.shape != (n_depth, 5):
            raise InputFileError(
                name, f"line {i + 1}: READ DECK6 announces {n_depth} depths of 5+ numbers"
            )
        if mh is None:
            if scale is None or scale <= 0:
                raise InputFileError(name, f"line {start + 1}: no [M/H] in TITLE or SCALE")
            mh = round(math.log10(scale), 3)
        models.append(_checked(name, start, teff, logg, mh, vturb, data))
        i += 1 + n_depth
    if not models:
        raise InputFileError(name, "no Kurucz READ DECK6 model (no TEFF ... GRAVITY line)")
    return models


def _checked(
    name: Path, start: int, teff: float, logg: float, mh: float, vturb: float, data: np.ndarray
) -> Photosphere:
    rhox, temperature, pressure, ne, kappa = data.T
    if not (
        np.all(np.diff(rhox) > 0)
        and np.all(temperature > 0)
        and np.all(pressure > 0)
        and np.all(ne > 0)
        and np.all(kappa > 0)
    ):
        raise InputFileError(
            name,
            f"model at line {start + 1}: RHOX must increase and T, P, XNE, ABROSS be positive",
        )
    return Photosphere(
        teff=teff,
        logg=logg,
        metallicity=mh,
        microturbulence=vturb,
        log_tau_ross=kurucz_tau_ross(rhox, kappa),
        rhox=rhox.copy(),
        temperature=temperature.copy(),
        gas_pressure=pressure.copy(),
        electron_density=ne.copy(),
        kappa_ross=kappa.copy(),
        source=name.name,
    )


# --- MARCS ---------------------------------------------------------------------------------------


def read_marcs(path: str | os.PathLike[str], text: str | None = None) -> Photosphere:
    """Read a MARCS ``.mod`` model atmosphere.

    Parameters
    ----------
    path : str or PathLike
        The file (read unless ``text`` is given; named in errors).
    text : str, optional
        Contents of the file.

    Returns
    -------
    Photosphere

    Raises
    ------
    InputFileError
        Missing file or not a MARCS ``.mod`` model.
    """
    name = Path(path)
    if text is None:
        text = _read_text(name)
    lines = text.splitlines()

    def value(label: str) -> tuple[list[str], int]:
        for k, line in enumerate(lines[:40]):
            if label in line:
                return line.split(), k
        raise InputFileError(name, f"not a MARCS model: no {label!r} line")

    try:
        teff = float(value("Teff [K]")[0][0])
        logg = math.log10(float(value("Surface gravity")[0][0]))
        vt = float(value("Microturbulence")[0][0])
        metal = value("Metallicity [Fe/H]")[0]
        mh, alpha = float(metal[0]), float(metal[1])
        depth_line, k = value("Number of depth points")
        n_depth = int(depth_line[0])
    except (ValueError, IndexError):
        raise InputFileError(name, "MARCS header values are not numbers") from None
    blocks: list[dict[str, np.ndarray]] = []
    k += 1
    while len(blocks) < 2 and k < len(lines):
        header = lines[k].split()
        if header[:2] == ["k", "lgTauR"]:
            rows = lines[k + 1 : k + 1 + n_depth]
            try:
                table = np.array([[float(v) for v in row.split()] for row in rows])
            except ValueError:
                raise InputFileError(
                    name, f"lines {k + 2}-{k + 1 + n_depth}: not numbers"
                ) from None
            if table.shape != (n_depth, len(header)):
                raise InputFileError(name, f"line {k + 1}: block is not {n_depth} rows")
            blocks.append(dict(zip(header, table.T, strict=True)))
            k += n_depth
        k += 1
    if len(blocks) < 2:
        raise InputFileError(name, "MARCS model lacks its two structure blocks")
    merged = {**blocks[0], **blocks[1]}
    missing = [c for c in ("lgTauR", "T", "Pe", "Pg", "KappaRoss", "RHOX") if c not in merged]
    if missing:
        raise InputFileError(name, f"MARCS model lacks column(s) {', '.join(missing)}")
    temperature = merged["T"]
    rhox = merged["RHOX"]
    if not (np.all(np.diff(rhox) > 0) and np.all(temperature > 0) and np.all(merged["Pg"] > 0)):
        raise InputFileError(name, "MARCS model: RHOX must increase and T, Pg be positive")
    return Photosphere(
        teff=teff,
        logg=round(logg, 4),
        metallicity=mh,
        microturbulence=vt,
        log_tau_ross=merged["lgTauR"].copy(),
        rhox=rhox.copy(),
        temperature=temperature.copy(),
        gas_pressure=merged["Pg"].copy(),
        electron_density=merged["Pe"] / (K_BOLTZMANN * temperature),
        kappa_ross=merged["KappaRoss"].copy(),
        alpha=alpha,
        source=name.name,
    )


def _read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("ascii")
    except FileNotFoundError:
        raise InputFileError(path, "no such file") from None
    except IsADirectoryError:
        raise InputFileError(path, "is a directory, not a model atmosphere") from None
    except UnicodeDecodeError:
        raise InputFileError(path, "not a text model atmosphere (non-ASCII bytes)") from None


def read_photospheres(path: str | os.PathLike[str]) -> list[Photosphere]:
    """Read a model-atmosphere file of either format, recognised by its content.

    Parameters
    ----------
    path : str or PathLike
        Kurucz "READ DECK6" or MARCS ``.mod`` file.

    Returns
    -------
    list of Photosphere
    """
    name = Path(path)
    text = _read_text(name)
    if "READ DECK6" in text:
        return read_kurucz(name, text)
    if "Model structure" in text and "Teff [K]" in text:
        return [read_marcs(name, text)]
    raise InputFileError(name, "neither a Kurucz READ DECK6 nor a MARCS .mod model atmosphere")


# --- grid ----------------------------------------------------------------------------------------


class AtmosphereGrid:
    """Model atmospheres at grid nodes (Teff, log g, [M/H]), interpolated between them.

    Parameters
    ----------
    models : sequence of Photosphere
        One model per node (two at the same node are an error).
    name, version, ads_reference : str
        Description recorded with every result.
    sha256 : str
        SHA-256 of the whole grid.
    path : str, optional
        Where the grid comes from.
    texts : callable, optional
        Gives the original file text of model ``k`` (bundled grid only).
    files : sequence of str, optional
        Original file name of each model.
    """

    def __init__(
        self,
        models: Sequence[Photosphere],
        name: str,
        version: str,
        ads_reference: str,
        sha256: str,
        path: str | None = None,
        texts: Callable[[int], str] | None = None,
        files: Sequence[str] | None = None,
    ) -> None:
        if not models:
            raise AtmosphereGridError(f"model-atmosphere grid {name!r} holds no model")
        self.name = name
        self.version = version
        self.ads_reference = ads_reference
        self.sha256 = sha256
        self.path = path
        self._texts = texts
        self.files = list(files) if files is not None else [m.source for m in models]
        self.models = list(models)
        self._index: dict[tuple[float, float, float], int] = {}
        for i, model in enumerate(self.models):
            key = _key(model.teff, model.logg, model.metallicity)
            if key in self._index:
                other = self.files[self._index[key]]
                raise AtmosphereGridError(
                    f"{path or name}: two models at Teff {key[0]:g}, log g {key[1]:g}, "
                    f"[M/H] {key[2]:+g} ({other}, {self.files[i]}); keep one family per grid"
                )
            self._index[key] = i
        self.teff_nodes = np.unique([k[0] for k in self._index])
        self.logg_nodes = np.unique([k[1] for k in self._index])
        self.metallicity_nodes = np.unique([k[2] for k in self._index])

    def __len__(self) -> int:
        return len(self.models)

    @property
    def ranges(self) -> dict[str, tuple[float, float]]:
        """Range of each parameter: ``teff`` [K], ``logg``, ``metallicity`` [dex]."""
        return {
            "teff": (float(self.teff_nodes[0]), float(self.teff_nodes[-1])),
            "logg": (float(self.logg_nodes[0]), float(self.logg_nodes[-1])),
            "metallicity": (float(self.metallicity_nodes[0]), float(self.metallicity_nodes[-1])),
        }

    def record(self) -> dict[str, Any]:
        """Plain-data description: name, version, ADS reference, SHA-256, models, ranges."""
        return {
            "name": self.name,
            "version": self.version,
            "ads_reference": self.ads_reference,
            "grid_sha256": self.sha256,
            "grid_files": len(self.models),
            "grid_path": self.path,
            "ranges": {k: list(v) for k, v in self.ranges.items()},
        }

    def node(self, teff: float, logg: float, metallicity: float) -> Photosphere | None:
        """Return the model at a node, or None if the grid has none there."""
        index = self._index.get(_key(teff, logg, metallicity))
        return None if index is None else self.models[index]

    def model_text(self, index: int) -> str:
        """Original file text of model ``index`` (bundled grid only)."""
        if self._texts is None:
            raise AtmosphereGridError(f"grid {self.name!r} does not keep its original files")
        return self._texts(index)

    def interpolate(self, teff: float, logg: float, metallicity: float) -> Photosphere:
        """Interpolate a model at (Teff [K], log g, [M/H]) from the bracketing nodes.

        Parameters
        ----------
        teff : float
            Effective temperature [K].
        logg : float
            log10 surface gravity [cm s⁻²].
        metallicity : float
            [M/H] [dex].

        Returns
        -------
        Photosphere
            The model; ``nodes`` lists the grid nodes used with their weights.

        Raises
        ------
        AtmosphereGridError
            A parameter is outside the grid (no extrapolation) or a needed node is missing.
        """
        axes = []
        for label, unit, value, nodes in (
            ("Teff", " K", teff, self.teff_nodes),
            ("log g", "", logg, self.logg_nodes),
            ("[M/H]", "", metallicity, self.metallicity_nodes),
        ):
            if not math.isfinite(value):
                raise AtmosphereGridError(f"{label} {value} is not a number")
            axes.append(_bracket(label, unit, float(value), nodes, self.name))
        corners: list[tuple[Photosphere, float]] = []
        missing: list[str] = []
        for t, wt in axes[0]:
            for g, wg in axes[1]:
                for m, wm in axes[2]:
                    weight = wt * wg * wm
                    model = self.node(t, g, m)
                    if model is None:
                        missing.append(f"Teff {t:g} K, log g {g:g}, [M/H] {m:+g}")
                    elif weight > 0:
                        corners.append((model, weight))
        if missing:
            raise AtmosphereGridError(
                f"{self.name}: cannot interpolate at Teff {teff:g} K, log g {logg:g}, "
                f"[M/H] {metallicity:+g}: the grid has no model at {'; '.join(missing)}"
            )
        return _combine(corners, teff, logg, metallicity, self.name)

    # --- constructors ---------------------------------------------------------------------

    @classmethod
    def from_directory(
        cls,
        path: str | os.PathLike[str],
        name: str | None = None,
        version: str | None = None,
        ads_reference: str | None = None,
    ) -> AtmosphereGrid:
        """Read a user's grid directory of MARCS ``.mod`` or Kurucz READ DECK6 files.

        Every regular file under the directory (recursively; hidden files and README/text
        notes excepted) must be a model of either format. The grid's SHA-256 is
        :func:`~photonpipe.stellar.physics.hash_directory` of the directory.

        Parameters
        ----------
        path : str or PathLike
            Grid directory.
        name, version, ads_reference : str, optional
            Description; by default guessed from the files (MARCS: Gustafsson et al. 2008;
            Kurucz titles with "NEW ODF": Castelli & Kurucz 2003; other Kurucz: Kurucz 1993).

        Raises
        ------
        InputFileError
            Not a directory, no model in it, or a file that is not a model.
        """
        return _grid_from_directory(Path(path).resolve(), name, version, ads_reference)


def _key(teff: float, logg: float, metallicity: float) -> tuple[float, float, float]:
    return (round(float(teff), 3), round(float(logg), 4), round(float(metallicity), 4))


def _bracket(
    label: str, unit: str, value: float, nodes: np.ndarray, grid: str
) -> list[tuple[float, float]]:
    lo, hi = float(nodes[0]), float(nodes[-1])
    tolerance = 1e-6 * max(1.0, abs(value))
    if value < lo - tolerance or value > hi + tolerance:
        raise AtmosphereGridError(
            f"{label} {value:g}{unit} is outside the model-atmosphere grid {grid} "
            f"({lo:g}-{hi:g}{unit}); photonpipe does not extrapolate"
        )
    k = int(np.searchsorted(nodes, value))
    for j in (k - 1, k):
        if 0 <= j < len(nodes) and abs(nodes[j] - value) <= tolerance:
            return [(float(nodes[j]), 1.0)]
    a, b = float(nodes[k - 1]), float(nodes[k])
    w = (value - a) / (b - a)
    return [(a, 1.0 - w), (b, w)]


def _combine(
    corners: list[tuple[Photosphere, float]],
    teff: float,
    logg: float,
    metallicity: float,
    grid: str,
) -> Photosphere:
    reference = max(corners, key=lambda c: c[1])[0]
    lo = max(float(m.log_tau_ross[0]) for m, _ in corners)
    hi = min(float(m.log_tau_ross[-1]) for m, _ in corners)
    tau = reference.log_tau_ross
    tau = tau[(tau >= lo - 1e-9) & (tau <= hi + 1e-9)]
    if len(tau) < 10:
        raise AtmosphereGridError(f"{grid}: the bracketing models share too few depths")
    total = np.zeros((5, len(tau)))
    for model, weight in corners:
        columns = (
            model.temperature,
            np.log10(model.gas_pressure),
            np.log10(model.electron_density),
            np.log10(model.kappa_ross),
            np.log10(model.rhox),
        )
        for k, column in enumerate(columns):
            total[k] += weight * np.interp(tau, model.log_tau_ross, column)
    weights = sum(w for _, w in corners)
    total /= weights
    return Photosphere(
        teff=float(teff),
        logg=float(logg),
        metallicity=float(metallicity),
        microturbulence=float(np.mean([m.microturbulence for m, _ in corners])),
        log_tau_ross=tau.copy(),
        rhox=10.0 ** total[4],
        temperature=total[0],
        gas_pressure=10.0 ** total[1],
        electron_density=10.0 ** total[2],
        kappa_ross=10.0 ** total[3],
        alpha=float(np.mean([m.alpha for m, _ in corners])),
        source=grid,
        nodes=tuple((m.teff, m.logg, m.metallicity, round(w / weights, 12)) for m, w in corners),
    )


_NOTES = {"readme", "readme.txt", "readme.md", "license", "licence", "manifest.tsv"}


def _grid_from_directory(
    root: Path, name: str | None, version: str | None, ads_reference: str | None
) -> AtmosphereGrid:
    if not root.is_dir():
        raise InputFileError(root, "model-atmosphere grid is not a directory")
    files = sorted(
        p
        for p in root.rglob("*")
        if p.is_file()
        and not p.name.startswith(".")
        and p.name.lower() not in _NOTES
        and p.suffix.lower() not in (".txt", ".md", ".tsv", ".py")
    )
    if not files:
        raise InputFileError(root, "model-atmosphere grid directory holds no model")
    models: list[Photosphere] = []
    names: list[str] = []
    kinds: set[str] = set()
    new_odf = False
    for file in files:
        text = _read_text(file)
        if "READ DECK6" in text:
            found = read_kurucz(file, text)
            kinds.add("kurucz")
            new_odf = new_odf or "NEW ODF" in text
        elif "Model structure" in text and "Teff [K]" in text:
            found = [read_marcs(file, text)]
            kinds.add("marcs")
        else:
            raise InputFileError(file, "not a Kurucz READ DECK6 or MARCS .mod model atmosphere")
        rel = file.relative_to(root).as_posix()
        models.extend(replace(m, source=rel) for m in found)
        names.extend([rel] * len(found))
    if len(kinds) > 1:
        raise InputFileError(root, "grid mixes MARCS and Kurucz models; use one family")
    digest, _ = hash_directory(root)
    if "marcs" in kinds:
        guess = ("MARCS (user grid)", "", MARCS_REFERENCE)
    elif new_odf:
        guess = ("Castelli & Kurucz ATLAS9 ODFNEW (user grid)", "", CASTELLI_KURUCZ_REFERENCE)
    else:
        guess = ("Kurucz ATLAS9 (user grid)", "", BUNDLED_GRID["ads_reference"])
    return AtmosphereGrid(
        models,
        name or guess[0],
        version if version is not None else guess[1],
        ads_reference or guess[2],
        digest,
        path=str(root),
        files=names,
    )


# --- the bundled grid: a lossless integer packing of the original text files -----------------

_ROW = re.compile(
    r"^ (\d)\.(\d{8})E([+-]\d\d) +(\d+)\.(\d)"
    r" (\d)\.(\d{3})E([+-]\d\d) (\d)\.(\d{3})E([+-]\d\d) (\d)\.(\d{3})E([+-]\d\d)"
    r" (\d)\.(\d{3})E([+-]\d\d) (\d)\.(\d{3})E([+-]\d\d) (\d)\.(\d{3})E([+-]\d\d)"
    r" (\d)\.(\d{3})E([+-]\d\d)$"
)
_PACK_VERSION = 1


def _format_row(
    rhox_m: int, rhox_e: int, t10: int, mant: Iterable[int], expo: Iterable[int]
) -> str:
    digits = f"{rhox_m:09d}"
    parts = [f" {digits[0]}.{digits[1:]}E{rhox_e:+03d}", f"{t10 // 10:>7d}.{t10 % 10}"]
    for m, e in zip(mant, expo, strict=True):
        d = f"{m:04d}"
        parts.append(f" {d[0]}.{d[1:]}E{e:+03d}")
    return "".join(parts)


def pack_kurucz_directory(
    source: str | os.PathLike[str], destination: str | os.PathLike[str], readme: str = ""
) -> str:
    """Pack a directory of Kurucz READ DECK6 model files into the bundled-grid format.

    Every data row must have the layout of the Kurucz (1993) grid files
    (``1.73524711E-02   2183.6 1.731E-02 ...``: column mass with 9 significant digits,
    temperature with one decimal, seven numbers with 4 significant digits); the digits are stored
    as integers and the other lines as text, so that each file can be rebuilt exactly. The
    packing is checked by rebuilding every file before anything is written.

    Parameters
    ----------
    source : str or PathLike
        Directory of ``*.dat`` model files (one model per file).
    destination : str or PathLike
        The ``.npz`` file to write.
    readme : str
        Provenance text stored in the file.

    Returns
    -------
    str
        SHA-256 of the source directory (:func:`~photonpipe.stellar.physics.hash_directory`),
        stored in the file as the grid's hash.
    """
    root = Path(source)
    files = sorted(p for p in root.iterdir() if p.is_file())
    digest, _ = hash_directory(root)
    n = len(files)
    rhox_m = np.zeros((n, 72), np.int32)
    rhox_e = np.zeros((n, 72), np.int8)
    t10 = np.zeros((n, 72), np.int32)
    mant = np.zeros((n, 72, 7), np.int16)
    expo = np.zeros((n, 72, 7), np.int8)
    heads: list[str] = []
    tails: list[str] = []
    for k, file in enumerate(files):
        text = _read_text(file)
        read_kurucz(file, text)  # refuses anything that is not a model
        head, _, rest = text.partition("\nREAD DECK6")
        deck, _, body = rest.partition("\n")
        rows = body.split("\n")
        if int(deck.split()[0]) != 72:
            raise InputFileError(file, "bundled-grid packing expects 72 depths")
        heads.append(head + "\nREAD DECK6" + deck + "\n")
        tails.append("\n".join(rows[72:]))
        for r, row in enumerate(rows[:72]):
            match = _ROW.match(row)
            if not match:
                raise InputFileError(file, f"row {r + 1} does not have the Kurucz 1993 layout")
            g = match.groups()
            rhox_m[k, r] = int(g[0] + g[1])
            rhox_e[k, r] = int(g[2])
            t10[k, r] = int(g[3] + g[4])
            for c in range(7):
                mant[k, r, c] = int(g[5 + 3 * c] + g[6 + 3 * c])
                expo[k, r, c] = int(g[7 + 3 * c])
    texts = "\0".join(heads + tails).encode("ascii")
    names = "\0".join(p.name for p in files).encode("ascii")
    arrays = {
        "pack_version": np.array([_PACK_VERSION]),
        "names": np.frombuffer(names, np.uint8),
        "texts": np.frombuffer(texts, np.uint8),
        "rhox_mantissa": rhox_m,
        "rhox_exponent": rhox_e,
        "temperature_tenths": t10,
        "mantissa": mant,
        "exponent": expo,
        "grid_sha256": np.frombuffer(digest.encode("ascii"), np.uint8),
        "readme": np.frombuffer(readme.encode("utf-8"), np.uint8),
    }
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)  # type: ignore[arg-type]
    data = buffer.getvalue()
    _, unpacked = _unpack(data)
    rebuild = _PackedTexts(unpacked, n)
    for k, file in enumerate(files):
        if rebuild(k) != _read_text(file):
            raise InputFileError(file, "packing would not rebuild this file exactly")
    Path(destination).write_bytes(data)
    return digest


def _unpack(data: bytes) -> tuple[list[str], dict[str, np.ndarray]]:
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    if int(arrays["pack_version"][0]) != _PACK_VERSION:
        raise AtmosphereGridError("bundled atmosphere file has an unknown packing version")
    names = arrays["names"].tobytes().decode("ascii").split("\0")
    return names, arrays


class _PackedTexts:
    """Rebuilds the original text of each packed model on request."""

    def __init__(self, arrays: dict[str, np.ndarray], n: int) -> None:
        self._arrays = arrays
        self._n = n
        self._pieces = arrays["texts"].tobytes().decode("ascii").split("\0")

    def __call__(self, k: int) -> str:
        a = self._arrays
        rows = [
            _format_row(
                int(a["rhox_mantissa"][k, r]),
                int(a["rhox_exponent"][k, r]),
                int(a["temperature_tenths"][k, r]),
                a["mantissa"][k, r].tolist(),
                a["exponent"][k, r].tolist(),
            )
            for r in range(72)
        ]
        return self._pieces[k] + "\n".join(rows) + "\n" + self._pieces[self._n + k]


def _bundled_models(arrays: dict[str, np.ndarray], names: list[str]) -> list[Photosphere]:
    heads = arrays["texts"].tobytes().decode("ascii").split("\0")[: len(names)]
    rhox = arrays["rhox_mantissa"] * 1e-8 * 10.0 ** arrays["rhox_exponent"].astype(float)
    temperature = arrays["temperature_tenths"] / 10.0
    others = arrays["mantissa"] * 1e-3 * 10.0 ** arrays["exponent"].astype(float)
    models = []
    for k, name in enumerate(names):
        head = heads[k]
        match = _TEFF.match(head)
        title = _TITLE_MH.search(head)
        vturb = _VTURB.search(head)
        if match is None or title is None:  # pragma: no cover - checked when packed
            raise AtmosphereGridError(f"bundled atmosphere {name}: no TEFF/TITLE line")
        data = np.column_stack(
            [rhox[k], temperature[k], others[k, :, 0], others[k, :, 1], others[k, :, 2]]
        )
        models.append(
            _checked(
                Path(name),
                0,
                float(match.group(1)),
                float(match.group(2)),
                float(title.group(1)),
                float(vturb.group(1)) if vturb else math.nan,
                data,
            )
        )
    return models


@functools.cache
def bundled_grid() -> AtmosphereGrid:
    """Return the Kurucz (1993) ATLAS9 subset shipped with photonpipe (cached per process).

    Returns
    -------
    AtmosphereGrid
        2230 models; ``sha256`` is the hash of the original directory of text files.
    """
    data = (resources.files("photonpipe.stellar") / "data" / BUNDLED_GRID_FILE).read_bytes()
    names, arrays = _unpack(data)
    models = _bundled_models(arrays, names)
    digest = arrays["grid_sha256"].tobytes().decode("ascii")
    return AtmosphereGrid(
        models,
        BUNDLED_GRID["name"],
        BUNDLED_GRID["version"],
        BUNDLED_GRID["ads_reference"],
        digest,
        path=f"photonpipe.stellar/data/{BUNDLED_GRID_FILE}",
        texts=_PackedTexts(arrays, len(names)),
        files=names,
    )


def texts_sha256(names: Sequence[str], texts: Sequence[str]) -> str:
    """SHA-256 of files given by name and text, as :func:`~.physics.hash_directory` computes it.

    Parameters
    ----------
    names : sequence of str
        File names (relative paths).
    texts : sequence of str
        Their ASCII contents.
    """
    digest = hashlib.sha256()
    for name, text in sorted(zip(names, texts, strict=True)):
        data = text.encode("ascii")
        digest.update(name.encode() + b"\0" + str(len(data)).encode() + b"\0")
        digest.update(data)
    return digest.hexdigest()


@functools.cache
def _directory_grid(path: str, stamp: tuple[int, int]) -> AtmosphereGrid:
    return AtmosphereGrid.from_directory(path)


def load_grid(path: str | os.PathLike[str] | None = None) -> AtmosphereGrid:
    """Return the grid of a directory (cached while the directory is unchanged), or the bundled one.

    Parameters
    ----------
    path : str or PathLike, optional
        A user's MARCS or Kurucz grid directory (setting ``stellar.atmospheres``); None for the
        bundled Kurucz (1993) subset.
    """
    if path is None:
        return bundled_grid()
    root = Path(path).resolve()
    try:
        info = root.stat()
    except FileNotFoundError:
        raise InputFileError(root, "no such model-atmosphere grid directory") from None
    return _directory_grid(str(root), (info.st_mtime_ns, info.st_ino))
