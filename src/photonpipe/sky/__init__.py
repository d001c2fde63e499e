"""Sky application: a dataset of every BOSS sky-fibre spectrum with its observing conditions.

Modelled on SkyModelling (P. Fagrelius, A. Slosar): BOSS ``spFrame`` files are read, the sky
fibres (``OBJTYPE == "SKY"``) are converted from flat-fielded electrons to flux, and each
spectrum is stored with the header, plug-map and observing-condition metadata of its exposure.

Modules
-------
pixmask
    SPPIXMASK bits by name.
traceset
    idlutils trace sets (Legendre in a scaled pixel coordinate, with the BOSS readout jump).
formats
    Readers (and writers, for the simulator) of spFrame, spCFrame and spFluxcalib files.
flux
    Flat-fielded electrons of sky fibres to 10⁻¹⁷ erg s⁻¹ cm⁻² Å⁻¹.
conditions
    Observing conditions (Moon, Sun, coordinates, zodiacal light, starlight, solar flux).
moonlight
    Krisciunas & Schaefer (1991) scattered-moonlight brightness.
simulate
    ``photonpipe simulate boss``.
storage
    HDF5 spectra + Parquet metadata, FITS export, lazy Dask readers.
pipeline
    ``photonpipe sky build``: plates as resumable work units.
lines
    Line strengths and continuum levels per spectrum (Ciddor vacuum positions).
mean
    Mean spectra per exposure and camera; airglow/continuum separation.
analysis
    The per-plate analysis run by ``sky build`` (and sky brightness).
catalog
    ``photonpipe sky catalog``: all / good / good_clean tables.
model
    The sky model: ``photonpipe sky model`` and ``sky predict``.
quicklook
    Mean-spectrum and metadata-distribution quicklooks.
"""

from typing import TYPE_CHECKING

from photonpipe._exports import install_lazy_exports

if TYPE_CHECKING:
    from photonpipe.sky.catalog import build_catalog
    from photonpipe.sky.formats import read_spcframe, read_spfluxcalib, read_spframe
    from photonpipe.sky.model import (
        SkyModel,
        evaluate,
        fit_sky_model,
        predicted_spectrum,
        training_set,
        write_prediction,
    )
    from photonpipe.sky.pipeline import build_sky_dataset
    from photonpipe.sky.simulate import simulate_boss
    from photonpipe.sky.storage import (
        export_metadata_fits,
        metadata_dask,
        read_metadata,
        read_plate_spectra,
        spectra_dask,
    )

# The main API, imported on first use (``import photonpipe.sky`` itself stays cheap).
_EXPORTS = {
    "build_sky_dataset": ".pipeline",
    "read_metadata": ".storage",
    "read_plate_spectra": ".storage",
    "export_metadata_fits": ".storage",
    "metadata_dask": ".storage",
    "spectra_dask": ".storage",
    "build_catalog": ".catalog",
    "SkyModel": ".model",
    "fit_sky_model": ".model",
    "training_set": ".model",
    "evaluate": ".model",
    "predicted_spectrum": ".model",
    "write_prediction": ".model",
    "simulate_boss": ".simulate",
    "read_spframe": ".formats",
    "read_spcframe": ".formats",
    "read_spfluxcalib": ".formats",
}
__all__ = [
    "SkyModel",
    "build_catalog",
    "build_sky_dataset",
    "evaluate",
    "export_metadata_fits",
    "fit_sky_model",
    "metadata_dask",
    "predicted_spectrum",
    "read_metadata",
    "read_plate_spectra",
    "read_spcframe",
    "read_spfluxcalib",
    "read_spframe",
    "simulate_boss",
    "spectra_dask",
    "training_set",
    "write_prediction",
]
install_lazy_exports(__name__, _EXPORTS)
