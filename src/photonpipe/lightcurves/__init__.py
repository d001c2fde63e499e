"""Light curves from HST COS and STIS TIME-TAG data (the hstlc science library).

Read corrtag, tag and x1d files (:mod:`.formats`), convert STIS tag to corrtag (:mod:`.stis`),
extract flux-calibrated light curves (:mod:`.extract`) as :class:`~.curve.LightCurve` objects,
stack composites and write HLSP products (:mod:`.products`), compute variability statistics and
periodograms (:mod:`.stats`), draw quicklooks (:mod:`.plot`). :mod:`.simulate` writes COS and
STIS files with a known truth.

The names below are imported on first use, so ``import photonpipe.lightcurves`` stays cheap.
"""

from typing import TYPE_CHECKING

from photonpipe._exports import install_lazy_exports

if TYPE_CHECKING:
    from photonpipe.lightcurves.curve import LightCurve
    from photonpipe.lightcurves.dataset import Dataset, read_dataset, read_datasets
    from photonpipe.lightcurves.extract import ExtractionParameters, extract
    from photonpipe.lightcurves.ingest import ArchiveLayout, ingest
    from photonpipe.lightcurves.products import make_composites, make_individual
    from photonpipe.lightcurves.simulate import simulate_exposure
    from photonpipe.lightcurves.stats import variability_statistics

_EXPORTS = {
    "LightCurve": ".curve",
    "Dataset": ".dataset",
    "read_dataset": ".dataset",
    "read_datasets": ".dataset",
    "ExtractionParameters": ".extract",
    "extract": ".extract",
    "ArchiveLayout": ".ingest",
    "ingest": ".ingest",
    "make_composites": ".products",
    "make_individual": ".products",
    "simulate_exposure": ".simulate",
    "variability_statistics": ".stats",
}
__all__ = [
    "ArchiveLayout",
    "Dataset",
    "ExtractionParameters",
    "LightCurve",
    "extract",
    "ingest",
    "make_composites",
    "make_individual",
    "read_dataset",
    "read_datasets",
    "simulate_exposure",
    "variability_statistics",
]
install_lazy_exports(__name__, _EXPORTS)
