"""The light-curve archive pages, served or written as a static site.

:func:`archive_index_page` and :func:`target_page_html` give the pages ``photonpipe serve``
answers under ``/lightcurves/``; :func:`write_site` writes the same pages, the products they
link (FITS HLSPs and quicklook PNGs, copied) and the scripts they need (photonpipe's and
Bokeh's, from the installed packages) into a directory that can be published as is.
"""

from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from photonpipe.errors import ArchiveError, PhotonpipeError
from photonpipe.lightcurves.catalog import Catalog, TargetEntry, archive_catalog
from photonpipe.platform.archive import Archive
from photonpipe.platform.db import Database
from photonpipe.web import pages
from photonpipe.web.lcplots import CurvePlot, curve_plot

SITE_MARKER = ".photonpipe-site"


def static_files() -> dict[str, Path]:
    """Return the files served under ``static/``: name → file (photonpipe's and Bokeh's scripts)."""
    from bokeh.util.paths import bokehjs_path

    out: dict[str, Path] = {}
    package = resources.files("photonpipe.web") / "static"
    for entry in package.iterdir():
        if entry.name.endswith((".js", ".css")):
            out[entry.name] = Path(str(entry))
    bokeh_js = Path(bokehjs_path()) / "js"
    for name in pages.BOKEH_SCRIPTS:
        out[f"bokeh/{name}"] = bokeh_js / name
    return out


@lru_cache(maxsize=256)
def _cached_plot(path: str, mtime_ns: int, name: str, title: str) -> CurvePlot:
    del mtime_ns  # part of the key: a rebuilt product is plotted again
    return curve_plot(Path(path), name, title)


def target_plots(
    archive: Archive, target: TargetEntry
) -> tuple[dict[str, CurvePlot], dict[str, str]]:
    """Make the plots of every product of a target, and why any could not be made.

    Returns
    -------
    plots : dict of str to CurvePlot
        Archive-relative product path → plot.
    problems : dict of str to str
        Archive-relative product path → the error.
    """
    plots: dict[str, CurvePlot] = {}
    problems: dict[str, str] = {}
    products = [("composite", c) for c in target.composites] + [
        (d.dataset, d.individual) for d in target.datasets if d.individual is not None
    ]
    for index, (label, product) in enumerate(products):
        assert product is not None
        try:
            path = archive.path(product.path)
            mtime = path.stat().st_mtime_ns
            plots[product.path] = _cached_plot(
                str(path), mtime, f"p{index}", f"{target.name}: {label}"
            )
        except (OSError, PhotonpipeError) as exc:
            problems[product.path] = str(exc)
    return plots, problems


def archive_index_page(catalog: Catalog, archive: Archive, *, live: bool) -> str:
    """HTML of the archive's front page."""
    return pages.archive_index(catalog, live=live, root_label=str(archive.root))


def target_page_html(catalog: Catalog, archive: Archive, target: TargetEntry, *, live: bool) -> str:
    """HTML of one target's page."""
    plots, problems = target_plots(archive, target)
    return pages.target_page(catalog, target, plots, problems, live=live)


@dataclass
class SiteReport:
    """What :func:`write_site` wrote.

    Attributes
    ----------
    directory : Path
        The site.
    pages : int
        HTML pages written.
    files : int
        Products and quicklooks copied.
    problems : dict of str to str
        Products without a plot, and why.
    """

    directory: Path
    pages: int
    files: int
    problems: dict[str, str]


def _check_destination(out: Path, archive: Archive) -> None:
    if out.exists() and not out.is_dir():
        raise ArchiveError(f"{out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not (out / SITE_MARKER).is_file():
        raise ArchiveError(
            f"{out}: not empty and not a site written by photonpipe; choose another directory"
        )
    real = out.resolve()
    if real == archive.real_root or archive.real_root.is_relative_to(real):
        raise ArchiveError(f"{out}: the site cannot replace the archive root or a parent of it")


def write_site(out: str | os.PathLike[str], database: Database, archive: Archive) -> SiteReport:
    """Write the light-curve archive pages as a static site.

    The site is built in a temporary directory beside ``out`` and moved into place when
    complete, so a failure leaves an earlier site untouched. An existing ``out`` is replaced
    only when it is empty or a site written by this function.

    Parameters
    ----------
    out : path
        Site directory.
    database : Database
        The archive's database.
    archive : Archive
        The archive root.

    Returns
    -------
    SiteReport

    Raises
    ------
    ArchiveError
        ``out`` holds something else, or the site cannot be written there.
    """
    out = Path(out).absolute()
    _check_destination(out, archive)
    catalog = archive_catalog(database, archive)
    out.parent.mkdir(parents=True, exist_ok=True)
    temp = out.with_name(f".{out.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    problems: dict[str, str] = {}
    copied = 0
    try:
        temp.mkdir()
        (temp / "targets").mkdir()
        (temp / "index.html").write_text(
            archive_index_page(catalog, archive, live=False), encoding="utf-8"
        )
        for target in catalog.targets:
            plots, missing = target_plots(archive, target)
            problems.update(missing)
            html = pages.target_page(catalog, target, plots, missing, live=False)
            (temp / "targets" / f"{target.key}.html").write_text(html, encoding="utf-8")
        for name, source in static_files().items():
            destination = temp / "static" / name
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, destination)
        products = [c for t in catalog.targets for c in t.composites] + [
            d.individual for d in catalog.datasets if d.individual is not None
        ]
        for product in products:
            for relative in (product.path, product.quicklook):
                if relative is None:
                    continue
                try:
                    source = archive.path(relative)
                except PhotonpipeError as exc:
                    problems[relative] = str(exc)
                    continue
                if not source.is_file():
                    problems[relative] = "file missing from the archive"
                    continue
                destination = temp / "files" / relative
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, destination)
                copied += 1
        (temp / SITE_MARKER).write_text("photonpipe light-curve site\n")
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}-{secrets.token_hex(4)}")
            out.rename(old)
            temp.rename(out)
            shutil.rmtree(old)
        else:
            temp.rename(out)
    except OSError as exc:
        raise ArchiveError(f"{out}: cannot write the site: {exc.strerror or exc}") from None
    finally:
        if temp.exists():
            shutil.rmtree(temp, ignore_errors=True)
    return SiteReport(out, 1 + len(catalog.targets), copied, problems)
