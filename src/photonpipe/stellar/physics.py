"""Physics provenance: which model atmospheres and radiative-transfer code a session uses.

Recorded before any abundance is computed, so a later result can be traced to its inputs: the
model-atmosphere grid (name, version, ADS reference, and a SHA-256 over the whole grid
directory, so a silently updated grid is detected), and the radiative-transfer code (name,
version, default settings). photonpipe does not run either yet.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from photonpipe.errors import InputFileError


def hash_directory(path: str | os.PathLike[str]) -> tuple[str, int]:
    """SHA-256 of every regular file under a directory (sorted relative paths and contents).

    Parameters
    ----------
    path : str or PathLike
        Grid directory.

    Returns
    -------
    digest : str
        Hex SHA-256 of, for each file in sorted order, its relative path, a NUL, its size, a
        NUL and its contents.
    n_files : int
        Files hashed.

    Raises
    ------
    InputFileError
        Not a directory, or it holds no file.
    """
    root = Path(path)
    if not root.is_dir():
        raise InputFileError(root, "model-atmosphere grid is not a directory")
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())
    if not files:
        raise InputFileError(root, "model-atmosphere grid directory holds no file")
    digest = hashlib.sha256()
    for file in files:
        rel = file.relative_to(root).as_posix()
        digest.update(rel.encode() + b"\0" + str(file.stat().st_size).encode() + b"\0")
        with file.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest(), len(files)


def physics_record(
    atmosphere_name: str,
    atmosphere_version: str = "",
    atmosphere_reference: str = "",
    atmosphere_grid: str | os.PathLike[str] | None = None,
    atmosphere_grid_hash: str | None = None,
    rt_code: str = "",
    rt_version: str = "",
    rt_settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build the ``physics`` section of a session.

    Parameters
    ----------
    atmosphere_name : str
        Model-atmosphere grid name (e.g. "MARCS 2008 spherical").
    atmosphere_version : str
        Its version.
    atmosphere_reference : str
        ADS bibcode (e.g. "2008A&A...486..951G").
    atmosphere_grid : str or PathLike, optional
        Grid directory, hashed with :func:`hash_directory`.
    atmosphere_grid_hash : str, optional
        A known hash, when the grid is not at hand.
    rt_code, rt_version : str
        Radiative-transfer code and version (e.g. "MOOG", "NOV2019").
    rt_settings : dict, optional
        The code's default settings (plain values).

    Returns
    -------
    dict
        ``model_atmospheres`` and ``radiative_transfer`` sub-dicts.
    """
    grid_hash, n_files, grid_path = atmosphere_grid_hash, None, None
    if atmosphere_grid is not None:
        grid_hash, n_files = hash_directory(atmosphere_grid)
        grid_path = str(Path(atmosphere_grid).resolve())
    return {
        "model_atmospheres": {
            "name": atmosphere_name,
            "version": atmosphere_version,
            "ads_reference": atmosphere_reference,
            "grid_sha256": grid_hash,
            "grid_files": n_files,
            "grid_path": grid_path,
        },
        "radiative_transfer": {
            "code": rt_code,
            "version": rt_version,
            "settings": dict(rt_settings or {}),
        },
    }
