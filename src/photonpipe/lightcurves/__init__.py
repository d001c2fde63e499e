"""Light curves from HST COS and STIS TIME-TAG data (the hstlc science library).

Read corrtag, tag and x1d files (:mod:`.formats`), convert STIS tag to corrtag (:mod:`.stis`),
extract flux-calibrated light curves (:mod:`.extract`) as :class:`~.curve.LightCurve` objects,
stack composites and write HLSP products (:mod:`.products`), compute variability statistics and
periodograms (:mod:`.stats`), draw quicklooks (:mod:`.plot`). :mod:`.simulate` writes COS and
STIS files with a known truth.
"""

from photonpipe.lightcurves.curve import LightCurve
from photonpipe.lightcurves.dataset import Dataset, read_dataset
from photonpipe.lightcurves.extract import ExtractionParameters, extract

__all__ = ["Dataset", "ExtractionParameters", "LightCurve", "extract", "read_dataset"]
