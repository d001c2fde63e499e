"""The sky demo step runs, writes its products and quicklooks, and measures O I against truth."""

from __future__ import annotations

from pathlib import Path

import pytest

from photonpipe.platform.archive import Archive
from photonpipe.platform.config import load_settings
from photonpipe.platform.db import Database
from photonpipe.sky.demo import step


def test_sky_demo_step(tmp_path: Path) -> None:
    archive = Archive(tmp_path / "archive")
    archive.create()
    database = Database(f"sqlite:///{tmp_path / 'demo.db'}")
    database.upgrade()
    section = step(archive, database, load_settings(None, env={}), seed=3)
    assert section.ok, section.summary
    for _, relative in section.links:
        assert (archive.root / relative).is_file()
    for relative in section.images:
        assert (archive.root / relative).is_file()
    assert any("mean_r1" in image for image in section.images)
    page = (archive.root / "sky" / "metadata_distributions.html").read_text()
    assert "OI_FLUX" in page
    assert "metadata_distributions.png" in page
    rows = dict(section.table)
    assert float(rows["O I 557.7 line strength / truth (median over fibres)"]) == pytest.approx(
        1.0, abs=0.02
    )
