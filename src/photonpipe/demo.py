"""``photonpipe demo``: a fresh archive, every application run on simulated data, an index page.

Each application contributes a *demo step*: a function that simulates its instrument's data
into the archive, runs its pipeline and returns a :class:`DemoSection` listing the products and
quicklooks to link, registered in :mod:`photonpipe.platform.demo` when the modules of
:data:`DEMO_MODULES` are imported; a step that fails is reported on
the page (and in the exit code) and the others still run.
"""

from __future__ import annotations

import html
import importlib
import platform as python_platform
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from photonpipe import __version__
from photonpipe.errors import ArchiveError, PhotonpipeError
from photonpipe.platform.archive import Archive
from photonpipe.platform.config import Settings
from photonpipe.platform.db import Database, masked_url
from photonpipe.platform.demo import DemoSection, DemoStep, registered_demo_steps
from photonpipe.platform.ledger import ledger_counts
from photonpipe.platform.logs import get_logger
from photonpipe.platform.progress import Progress

log = get_logger(__name__)

DEMO_MARKER = ".photonpipe-demo"
_STYLE = (
    "<style>body{font-family:sans-serif;max-width:70em;margin:2em auto;line-height:1.4}"
    "table{border-collapse:collapse}td{border:1px solid #ccc;padding:2px 8px;"
    "font-family:monospace}.failed{color:#a00}img{max-width:100%;border:1px solid #ddd}"
    "</style></head><body>"
)


#: The applications' demo modules, imported only when the demo runs. Each registers its step
#: with :func:`photonpipe.platform.demo.register_demo_step`, which sets its place on the page.
DEMO_MODULES: tuple[str, ...] = (
    "photonpipe.lightcurves.demo",
    "photonpipe.sky.demo",
    "photonpipe.stellar.demo",
    "photonpipe.echelle.demo",
)


def demo_steps() -> list[tuple[str, DemoStep]]:
    """Import and return the applications' demo steps, in page order."""
    for module_name in DEMO_MODULES:
        importlib.import_module(module_name)
    return registered_demo_steps()


@dataclass
class DemoResult:
    """Outcome of :func:`run_demo`."""

    archive: Archive
    index: Path
    sections: list[DemoSection]

    @property
    def ok(self) -> bool:
        """True when every step succeeded."""
        return all(s.ok for s in self.sections)


def _fresh_archive(settings: Settings) -> Archive:
    archive = Archive.from_settings(settings)
    root = archive.root
    if root.exists():
        if not root.is_dir():
            raise ArchiveError(f"demo archive {root} exists and is not a directory")
        if (root / DEMO_MARKER).is_file():
            shutil.rmtree(root)
        elif any(root.iterdir()):
            raise ArchiveError(
                f"demo archive {root} exists, is not empty and was not made by photonpipe demo; "
                "choose another --archive"
            )
    archive.create()
    archive.write_text(f"photonpipe {__version__} demo archive\n", DEMO_MARKER)
    return archive


def _platform_section(archive: Archive, database: Database, settings: Settings) -> DemoSection:
    rows = [
        ("photonpipe", __version__),
        ("Python", f"{python_platform.python_version()} ({sys.platform})"),
        ("archive root", str(archive.root)),
        ("database", f"{masked_url(database.url)} ({database.dialect})"),
        ("schema revision", str(database.current_revision())),
    ]
    for setting in settings:
        if setting.name.split(".")[0] in ("executor", "logging"):
            value = "(unset)" if setting.value is None else setting.value
            rows.append((setting.name, f"{value} [{setting.source}]"))
    counts = ledger_counts(database)
    for kind, by_status in sorted(counts.items()):
        rows.append((f"work units {kind}", ", ".join(f"{n} {s}" for s, n in by_status.items())))
    built = [name for name, _ in demo_steps()]
    summary = (
        "Applications run in this demo: " + ", ".join(built) + "."
        if built
        else "No application has been built yet, so none ran: the light-curve, echelle, sky "
        "and stellar applications each add their section to this page as they are built. "
        "This archive and database were created and migrated by the platform."
    )
    return DemoSection("Platform", summary, table=rows)


def _browser_section(archive: Archive) -> DemoSection:
    """Links to the served views of this archive (``photonpipe serve``, default address)."""
    from urllib.parse import quote

    url = "http://127.0.0.1:8000"
    here = (
        f"`photonpipe serve` in {archive.root.parent} (where the demo ran; it finds "
        f"{archive.root.name}/ there) or, from anywhere, "
        if archive.root.name == "photonpipe-demo"
        else ""
    )
    section = DemoSection(
        "In the browser (photonpipe serve)",
        f"Run {here}`photonpipe --archive {archive.root} serve`; while it runs, these links "
        f"open the served views (or open {url}/): browse the light-curve archive, and work a "
        "session in the workbench (continuum, line fits, accept/reject, the stellar-parameter "
        "solve and the abundance plots, save).",
    )
    label = "open in photonpipe serve: light-curve archive (targets, datasets, light curves)"
    section.links.append((label, f"{url}/lightcurves/"))
    for smh in sorted(archive.root.glob("stellar/*.smh")):
        path = quote(archive.relative(smh))
        link = f"{url}/session/open?path={path}"
        section.links.append((f"open in photonpipe serve: session workbench {smh.name}", link))
    return section


def _render(sections: list[DemoSection], seconds: float) -> str:
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"><title>photonpipe demo</title>',
        _STYLE,
        f"<h1>photonpipe {esc(__version__)} demo</h1>",
        f"<p>Made {esc(time.strftime('%Y-%m-%d %H:%M:%S %Z'))} in {seconds:.1f} s.</p>",
    ]
    for section in sections:
        cls = "" if section.ok else ' class="failed"'
        status = "" if section.ok else " (failed)"
        parts.append(f"<h2{cls}>{esc(section.title)}{status}</h2>")
        if section.summary:
            parts.append(f"<p{cls}>{esc(section.summary)}</p>")
        if section.table:
            parts.append("<table>")
            parts.extend(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in section.table)
            parts.append("</table>")
        if section.links:
            parts.append("<ul>")
            parts.extend(
                f'<li><a href="{esc(path, quote=True)}">{esc(label)}</a></li>'
                for label, path in section.links
            )
            parts.append("</ul>")
        parts.extend(
            f'<p><a href="{esc(p, quote=True)}"><img src="{esc(p, quote=True)}" '
            f'alt="{esc(p, quote=True)}"></a></p>'
            for p in section.images
        )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def run_demo(settings: Settings, seed: int = 1) -> DemoResult:
    """Create a fresh demo archive, run every application's demo step, write ``index.html``.

    Parameters
    ----------
    settings : Settings
        Settings whose ``archive.root`` is the demo archive (recreated if it holds an earlier
        demo; refused if it holds anything else) and whose database is used for the demo.
    seed : int
        Seed passed to every simulator.

    Returns
    -------
    DemoResult
        The archive, the index page and the sections (with their success).
    """
    start = time.perf_counter()
    archive = _fresh_archive(settings)
    database = Database.from_settings(settings)
    database.check_connection()
    database.upgrade()
    sections: list[DemoSection] = []
    steps = demo_steps()
    with Progress(len(steps), "demo", "application", logger=log) as bar:
        for name, step in steps:
            log.info("demo: running %s", name)
            bar.set_status(name)
            try:
                sections.append(step(archive, database, settings, seed))
            except PhotonpipeError as exc:
                log.error("demo: %s failed: %s", name, exc)
                sections.append(DemoSection(name, f"failed: {exc}", ok=False))
            bar.update(1)
    sections.insert(0, _platform_section(archive, database, settings))
    sections.insert(1, _browser_section(archive))
    index = archive.write_text(_render(sections, time.perf_counter() - start), "index.html")
    database.dispose()
    return DemoResult(archive, index, sections)
