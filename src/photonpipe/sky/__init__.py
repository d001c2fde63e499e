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
