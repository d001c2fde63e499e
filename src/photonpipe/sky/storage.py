"""Sky dataset on disk: HDF5 spectra per plate, Parquet metadata per plate, FITS export.

Layout of a dataset directory::

    spectra/{plate:04d}.h5        one file per plate, groups "b" and "r"
        {arm}/flux          float32 (nspec, npix)  10⁻¹⁷ erg s⁻¹ cm⁻² Å⁻¹, NaN = rejected
        {arm}/ivar          float32 (nspec, npix)  inverse variance [flux⁻²]
        {arm}/wavelength    float64 (nspec, npix)  native vacuum wavelength [nm]
        {arm}/mask          int32   (nspec, npix)  SPPIXMASK (spFrame | spCFrame)
        {arm}/dispersion    float32 (nspec, npix)  LSF sigma [native pixels]
        {arm}/specno        int64   (nspec,)       key into the metadata
    metadata/{plate:04d}.parquet  one row per spectrum (plate, exposure, camera, fibre)

Arrays are chunked one spectrum per chunk row (``(64, npix)`` chunks), gzip level 1 + shuffle,
so reading a few spectra reads a few chunks. Each plate's files are written to temporaries and
renamed: a dataset never holds half a plate.

Why HDF5 (h5py) and not zarr: plates are the unit of work and of re-processing, so one
self-contained file per plate is the natural container (atomic rename, one checksum, one file to
copy or delete; a zarr store is a directory of chunk files that cannot be replaced atomically).
HDF5 is read by every astronomy environment (IDL, Julia, MATLAB, C), while the Dask readers
below give the lazy, parallel, whole-survey view that zarr would have given.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq
from astropy.table import MaskedColumn, Table

from photonpipe.errors import InputFileError, require_extra
from photonpipe.platform.archive import Archive

SPECTRA_DIR = "spectra"
METADATA_DIR = "metadata"
ARRAYS = ("flux", "ivar", "wavelength", "mask", "dispersion")
_DTYPES = {
    "flux": np.float32,
    "ivar": np.float32,
    "wavelength": np.float64,
    "mask": np.int32,
    "dispersion": np.float32,
}


def spectra_name(plate: int) -> str:
    """File name of a plate's spectra (``{plate:04d}.h5``)."""
    return f"{plate:04d}.h5"


def metadata_name(plate: int) -> str:
    """File name of a plate's metadata (``{plate:04d}.parquet``)."""
    return f"{plate:04d}.parquet"


def write_plate(
    archive: Archive,
    plate: int,
    arrays: dict[str, dict[str, npt.NDArray[Any]]],
    metadata: pa.Table,
    attributes: dict[str, str],
) -> tuple[Path, Path]:
    """Write one plate's spectra (HDF5) and metadata (Parquet), each atomically.

    Parameters
    ----------
    archive : Archive
        Dataset root.
    plate : int
        Plate number.
    arrays : dict
        ``{"b": {"flux": ..., "ivar": ..., "wavelength": ..., "mask": ..., "dispersion": ...,
        "specno": ...}, "r": {...}}``; units in the module docstring.
    metadata : pyarrow.Table
        One row per spectrum.
    attributes : dict of str to str
        Provenance written as HDF5 file attributes and Parquet schema metadata.

    Returns
    -------
    (pathlib.Path, pathlib.Path)
        Spectra and metadata paths.
    """
    with archive.atomic_path(SPECTRA_DIR, spectra_name(plate)) as tmp, h5py.File(tmp, "w") as h5:
        for key, value in attributes.items():
            h5.attrs[key] = value
        for arm, data in arrays.items():
            group = h5.create_group(arm)
            for name in ARRAYS:
                values = np.asarray(data[name], dtype=_DTYPES[name])
                group.create_dataset(
                    name,
                    data=values,
                    chunks=(min(64, max(1, values.shape[0])), values.shape[1]),
                    compression="gzip",
                    compression_opts=1,
                    shuffle=True,
                )
            group.create_dataset("specno", data=np.asarray(data["specno"], dtype=np.int64))
    schema_metadata = {k.encode(): v.encode() for k, v in attributes.items()}
    table = metadata.replace_schema_metadata(schema_metadata)
    with archive.atomic_path(METADATA_DIR, metadata_name(plate)) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return archive.path(SPECTRA_DIR, spectra_name(plate)), archive.path(
        METADATA_DIR, metadata_name(plate)
    )


def read_plate_spectra(path: str | os.PathLike[str], arm: str) -> dict[str, npt.NDArray[Any]]:
    """Read every array of one arm of a plate's spectra file.

    Parameters
    ----------
    path : path
        ``spectra/{plate}.h5``.
    arm : {"b", "r"}
        Spectrograph arm.

    Returns
    -------
    dict of str to numpy.ndarray
        ``flux``, ``ivar``, ``wavelength``, ``mask``, ``dispersion``, ``specno``.
    """
    path = Path(path)
    try:
        with h5py.File(path, "r") as h5:
            if arm not in h5:
                return {}
            return {name: h5[arm][name][()] for name in (*ARRAYS, "specno")}
    except OSError as exc:
        raise InputFileError(path, f"not a readable HDF5 file ({exc})") from exc


def read_metadata(dataset: str | os.PathLike[str]) -> pa.Table:
    """Read the whole metadata (every plate) into one Arrow table.

    Parameters
    ----------
    dataset : path
        Dataset root.
    """
    files = sorted((Path(dataset) / METADATA_DIR).glob("*.parquet"))
    if not files:
        raise InputFileError(Path(dataset) / METADATA_DIR, "no metadata files")
    return pa.concat_tables([pq.read_table(f) for f in files], promote_options="default")


def metadata_dask(dataset: str | os.PathLike[str]) -> Any:
    """Lazy Dask DataFrame over every plate's metadata (needs the ``dask`` extra).

    Parameters
    ----------
    dataset : path
        Dataset root.

    Returns
    -------
    dask.dataframe.DataFrame
        One partition per plate.
    """
    require_extra("dask", "dask", needed_by="photonpipe.sky.storage.metadata_dask")
    import dask.dataframe as dd

    return dd.read_parquet(str(Path(dataset) / METADATA_DIR / "*.parquet"))


def _load_array(path: str, arm: str, name: str) -> npt.NDArray[Any]:
    with h5py.File(path, "r") as h5:
        return np.asarray(h5[arm][name][()])


def spectra_dask(dataset: str | os.PathLike[str], arm: str, name: str = "flux") -> Any:
    """Lazy Dask array of one quantity of one arm over every plate (needs the ``dask`` extra).

    Parameters
    ----------
    dataset : path
        Dataset root.
    arm : {"b", "r"}
        Spectrograph arm.
    name : str
        One of ``flux``, ``ivar``, ``wavelength``, ``mask``, ``dispersion``, ``specno``.

    Returns
    -------
    dask.array.Array
        Shape ``(nspec_total, npix)`` (``(nspec_total,)`` for ``specno``); rows in plate order,
        then in each file's order. Only the shapes are read now; data is read on compute, one
        task per plate (picklable, so it runs on a distributed cluster).
    """
    require_extra("dask", "dask", needed_by="photonpipe.sky.storage.spectra_dask")
    import dask
    import dask.array as da

    pieces = []
    for path in sorted((Path(dataset) / SPECTRA_DIR).glob("*.h5")):
        with h5py.File(path, "r") as h5:
            if arm not in h5:
                continue
            dataset_ = h5[arm][name]
            shape, dtype = dataset_.shape, dataset_.dtype
        pieces.append(
            da.from_delayed(dask.delayed(_load_array)(str(path), arm, name), shape, dtype=dtype)
        )
    if not pieces:
        raise InputFileError(Path(dataset) / SPECTRA_DIR, f"no spectra of arm {arm!r}")
    return da.concatenate(pieces, axis=0)


def export_metadata_fits(
    dataset: str | os.PathLike[str], destination: str | os.PathLike[str]
) -> Path:
    """Write the whole metadata as a FITS binary table (nulls as TNULL / NaN), atomically.

    Parameters
    ----------
    dataset : path
        Dataset root.
    destination : path
        FITS file to write.

    Returns
    -------
    pathlib.Path
        The file written.
    """
    table = read_metadata(dataset)
    out = Table()
    for name in table.column_names:
        column = table.column(name)
        mask = np.asarray(column.is_null())
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            values: npt.NDArray[Any] = np.array(
                ["" if v is None else v for v in column.to_pylist()], dtype=str
            )
        elif pa.types.is_floating(column.type):
            values = np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)
        elif pa.types.is_boolean(column.type):
            values = np.array([bool(v) for v in column.to_pylist()])
        else:
            values = np.array([0 if v is None else v for v in column.to_pylist()], dtype=np.int64)
        out[name] = MaskedColumn(values, mask=mask) if mask.any() else values
    destination = Path(destination)
    archive = Archive(destination.parent)
    with archive.atomic_path(destination.name) as tmp:
        out.write(tmp, format="fits")
    return destination


def dataset_plates(dataset: str | os.PathLike[str]) -> Sequence[int]:
    """Plates present in a dataset (those with both a spectra and a metadata file)."""
    root = Path(dataset)
    spectra = {p.stem for p in (root / SPECTRA_DIR).glob("*.h5")}
    metadata = {p.stem for p in (root / METADATA_DIR).glob("*.parquet")}
    return sorted(int(s) for s in spectra & metadata)
