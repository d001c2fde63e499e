"""``photonpipe sky catalog``: all / good / good_clean tables of a dataset, and the removed rows.

``--full``: one row per sky spectrum (the dataset's metadata with its line strengths,
continuum levels and sky brightness). ``--mean``: one row per mean spectrum (plate, exposure,
camera), with the median over its fibres of every numeric column (conditions, line strengths,
magnitudes) and the number of fibres.

* ``all``: every row;
* ``good``: without the plate-MJDs that the BOSS plate list flags as bad (PLATEQUALITY);
* ``good_clean``: also without rows whose line and continuum values are all zero or NaN.

``removed`` lists every row left out of ``good_clean`` with the reason. Each table is written as
Parquet and as a FITS binary table (nulls as TNULL for integers, NaN for floats), atomically.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from astropy.table import MaskedColumn, Table

from photonpipe.errors import InputFileError
from photonpipe.platform.archive import atomic_output
from photonpipe.platform.progress import track
from photonpipe.sky.lines import feature_columns, read_features
from photonpipe.sky.reference import boss_plates
from photonpipe.sky.storage import read_metadata

log = logging.getLogger("photonpipe.sky.catalog")

KEYS_FULL = ["PLATE", "MJD", "IMG", "CAMERAS", "FIB", "SPECNO"]
KEYS_MEAN = ["PLATE", "MJD", "IMG", "CAMERAS"]


def _write(frame: pd.DataFrame, destination: Path) -> list[Path]:
    """Write ``destination``.parquet and ``destination``.fits atomically."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    parquet = destination.with_suffix(".parquet")
    with atomic_output(parquet) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    columns: dict[str, Any] = {}
    for name in frame.columns:
        column = frame[name]
        mask = column.isna().to_numpy()
        values: Any
        if pd.api.types.is_bool_dtype(column):
            values = column.fillna(False).to_numpy(dtype=bool)
        elif not pd.api.types.is_numeric_dtype(column):
            values = column.astype(object).where(~mask, "").to_numpy().astype(str)
        elif np.issubdtype(column.dtype, np.floating):
            values = column.to_numpy(dtype=np.float64)
            mask = np.zeros(len(column), dtype=bool)
        else:
            values = column.fillna(0).to_numpy()
        columns[name] = MaskedColumn(values, mask=mask, copy=False) if mask.any() else values
    out = Table(columns, copy=False)
    fits_path = destination.with_suffix(".fits")
    with atomic_output(fits_path) as tmp:
        out.write(tmp, format="fits")
    return [parquet, fits_path]


def _value_columns(frame: pd.DataFrame) -> list[str]:
    wanted = feature_columns(read_features())
    values = [c for c in wanted if c in frame.columns and not c.endswith(("_ERR", "_CONT"))]
    if not values:
        raise InputFileError(
            Path("metadata"), "no line-strength columns: build the dataset with sky.analysis on"
        )
    return values


def _mean_rows(meta: pd.DataFrame) -> pd.DataFrame:
    numeric = [
        c
        for c in meta.columns
        if c not in [*KEYS_MEAN, "FIB", "SPECNO", "ROW", "XFOCAL", "YFOCAL"]
        and pd.api.types.is_numeric_dtype(meta[c])
    ]
    grouped = meta.groupby(KEYS_MEAN, sort=True)
    medians = grouped[numeric].median().reset_index()
    medians.insert(len(KEYS_MEAN), "N_FIBRES", grouped.size().to_numpy())
    return medians


def build_catalog(
    dataset: str | os.PathLike[str], out_dir: str | os.PathLike[str], kind: str = "full"
) -> dict[str, list[Path]]:
    """Write the all / good / good_clean / removed tables of a dataset.

    Parameters
    ----------
    dataset : path
        Dataset root (``metadata/*.parquet`` built with ``sky.analysis`` on).
    out_dir : path
        Output directory (created).
    kind : {"full", "mean"}
        One row per spectrum or per mean spectrum (plate, exposure, camera).

    Returns
    -------
    dict of str to list of pathlib.Path
        Files written per table (``all``, ``good``, ``good_clean``, ``removed``).

    Raises
    ------
    InputFileError
        No metadata, or metadata without line strengths.
    """
    if kind not in ("full", "mean"):
        raise ValueError(f"kind must be 'full' or 'mean', not {kind!r}")
    meta = read_metadata(dataset).to_pandas()
    values = _value_columns(meta)
    rows = meta if kind == "full" else _mean_rows(meta)
    keys = KEYS_FULL if kind == "full" else KEYS_MEAN
    quality = {(p.plate, p.mjd): p.quality for p in boss_plates()}
    plate_quality = [
        quality.get((int(p), int(m))) for p, m in zip(rows["PLATE"], rows["MJD"], strict=True)
    ]
    bad_plate = np.array([q == "bad" for q in plate_quality])
    block = rows[values].to_numpy(dtype=np.float64)
    empty = np.all(~np.isfinite(block) | (block == 0), axis=1)
    reasons = np.where(
        bad_plate,
        "plate quality 'bad' in the BOSS plate list",
        np.where(empty, "line and continuum values all zero or NaN", ""),
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    prefix = f"sky_{kind}"
    removed = rows.loc[reasons != "", keys].copy()
    removed["REASON"] = reasons[reasons != ""]
    tables = {
        "all": lambda: rows,
        "good": lambda: rows[~bad_plate],
        "good_clean": lambda: rows[reasons == ""],
        "removed": lambda: removed,
    }
    written: dict[str, list[Path]] = {}
    # a full survey's catalogue takes tens of seconds per table (Parquet + FITS)
    for name in track(list(tables), f"sky catalog {kind}", "table", logger=log, status=str):
        written[name] = _write(tables[name](), out / f"{prefix}_{name}")
    return written
