"""HLSP products: individual light curves and composites.

Individual light curves are ``{rootname}_curve.fits``, composites
``hlsp_hstlc_hst_{instrume}-{detector}_{targname}_{opt_elem}_{cenwave}_{aperture}_v1_sci.fits``
(lower case), each with its quicklook PNG beside it.

Every product records its provenance in the primary header: inputs with SHA-256 checksums,
wavelength range, excluded windows, bin width, extraction regions, flux calibration and software
version; the variability statistics are there too (VARMEAN, VARSTD, POISFACT, PEARSONR, PERSIG,
PERTEXT — the period search's result in words, "no significant period" when there is none —
and, only for a significant period, PERBEST [s] and PERFAP; PERMIN/PERMAX the search band [s]),
and the barycentric-time keywords (BJDEPHEM, BJDORIG, BJDERR, BJDSPT) of TIME_BJD_TDB.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from photonpipe.lightcurves.curve import LightCurve
from photonpipe.lightcurves.dataset import CONFIGURATION_KEYWORDS, Dataset, read_datasets
from photonpipe.lightcurves.extract import ExtractionParameters, extract, extract_composite
from photonpipe.lightcurves.plot import quicklook
from photonpipe.lightcurves.stats import (
    FALSE_ALARM_THRESHOLD,
    VariabilityStatistics,
    variability_statistics,
)

_UNSAFE = re.compile(r"[^a-z0-9.+~-]+")  # "~": the hash mark of a target token


def _part(value: object) -> str:
    return _UNSAFE.sub("-", str(value).strip().lower()).strip("-") or "none"


def hlsp_filename(configuration: Sequence[str] | dict[str, object]) -> str:
    """HLSP composite file name for (INSTRUME, DETECTOR, TARGNAME, OPT_ELEM, CENWAVE, APERTURE).

    >>> hlsp_filename(("COS", "FUV", "AV 75", "G130M", "1291", "PSA"))
    'hlsp_hstlc_hst_cos-fuv_av-75_g130m_1291_psa_v1_sci.fits'
    """
    if isinstance(configuration, dict):
        configuration = [str(configuration[k]) for k in CONFIGURATION_KEYWORDS]
    instrume, detector, targname, opt_elem, cenwave, aperture = (_part(v) for v in configuration)
    return (
        f"hlsp_hstlc_hst_{instrume}-{detector}_{targname}_{opt_elem}_{cenwave}_{aperture}"
        "_v1_sci.fits"
    )


def individual_filename(rootname: str) -> str:
    """Individual light-curve file name: ``{rootname}_curve.fits``."""
    return f"{rootname.lower()}_curve.fits"


def provenance(inputs: Iterable[str | os.PathLike[str]]) -> dict[str, list[dict[str, str]]]:
    """Names and SHA-256 checksums of the input files."""
    return {"inputs": [{"name": Path(p).name, "sha256": sha256_of(Path(p))} for p in inputs]}


def sha256_of(path: Path, chunk_size: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes, hexadecimal (what ``sha256sum`` prints)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


def _with_statistics(curve: LightCurve, threshold: float) -> VariabilityStatistics:
    statistics = variability_statistics(curve, threshold=threshold)
    search = statistics.periodogram
    significant = statistics.significant_period and search is not None
    curve.header.update(
        {
            "VARMEAN": statistics.mean,
            "VARSTD": statistics.std,
            "POISFACT": statistics.poisson_factor,
            "PEARSONR": statistics.pearson_r,
            "PERSIG": statistics.significant_period,
            # never a number when there is no period: the keywords are left out
            "PERBEST": statistics.best_period if significant else None,
            "PERFAP": search.false_alarm_probability if significant and search else None,
            "PERTEXT": statistics.period_verdict,
            "PERMIN": search.min_period if search is not None else None,
            "PERMAX": search.max_period if search is not None else None,
        }
    )
    return statistics


@dataclass
class Product:
    """A written light-curve product."""

    curve: LightCurve
    path: Path
    quicklook: Path | None
    statistics: VariabilityStatistics


def write_product(
    curve: LightCurve,
    path: Path,
    inputs: Iterable[str | os.PathLike[str]],
    *,
    plot: bool = True,
    threshold: float = FALSE_ALARM_THRESHOLD,
) -> Product:
    """Compute statistics, write the FITS product and (optionally) its quicklook PNG.

    ``threshold`` is the false-alarm probability of a significant period.
    """
    statistics = _with_statistics(curve, threshold)
    curve.to_fits(path, provenance(inputs))
    png = None
    if plot:
        png = path.with_suffix(".png")
        quicklook(curve, png, statistics=statistics)
    return Product(curve, path, png, statistics)


def make_individual(
    dataset: Dataset,
    out: str | os.PathLike[str],
    parameters: ExtractionParameters | None = None,
    *,
    plot: bool = True,
) -> Product:
    """Extract one dataset and write ``{rootname}_curve.fits`` (+ PNG) into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    curve = extract(dataset, parameters)
    return write_product(
        curve, out / individual_filename(dataset.rootname), dataset.inputs, plot=plot
    )


def make_composite(
    datasets: Sequence[Dataset],
    out: str | os.PathLike[str],
    parameters: ExtractionParameters | None = None,
    *,
    plot: bool = True,
    filename: str | None = None,
) -> Product:
    """Composite of datasets of one configuration, written under its HLSP name (+ PNG).

    ``filename`` replaces the HLSP name made from the headers (the archive names composites
    by its target tokens).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    curve = extract_composite(datasets, parameters)
    inputs = [p for d in sorted(datasets, key=lambda d: d.expstart) for p in d.inputs]
    name = filename or hlsp_filename(datasets[0].configuration)
    return write_product(curve, out / name, inputs, plot=plot)


def make_composites(
    paths: Iterable[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    parameters: ExtractionParameters | None = None,
    *,
    plot: bool = True,
    progress: bool | None = None,
) -> list[Product]:
    """Read the files, group datasets by configuration and write one composite per group.

    ``progress``: a bar of the composites written (default: on a terminal, otherwise one
    summary line in the log; see :mod:`photonpipe.platform.progress`).
    """
    from photonpipe.platform.progress import track

    groups: dict[tuple[str, ...], list[Dataset]] = {}
    for dataset in read_datasets(paths):
        groups.setdefault(dataset.configuration, []).append(dataset)
    return [
        make_composite(group, out, parameters, plot=plot)
        for group in track(
            list(groups.values()),
            "lightcurve composite",
            "composite",
            enabled=progress,
            logger=logging.getLogger("photonpipe.lightcurves.products"),
        )
    ]
