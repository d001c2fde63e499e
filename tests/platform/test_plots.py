from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.image import imread

from photonpipe.platform.archive import TEMP_MARK, Archive
from photonpipe.platform.plots import new_figure, save_figure


def test_save_figure_writes_a_png_atomically(tmp_path: Path) -> None:
    archive = Archive(tmp_path / "archive", file_mode=0o640)
    archive.create()
    figure = new_figure(6, 3)
    axes = figure.add_subplot()
    x = np.linspace(0, 10, 200)
    axes.plot(x, np.sin(x), color="black")
    axes.set_xlabel("time [s]")
    path = Path(save_figure(figure, archive, "plots", "sine.png", dpi=50))
    assert path == archive.path("plots", "sine.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_mode & 0o777 == 0o640
    image = imread(path)
    assert image.shape[:2] == (150, 300)  # 3 x 6 inch at 50 dpi
    # The curve was drawn: the image is not blank.
    assert image[..., :3].min() < 0.2
    assert not list(archive.root.rglob(f"*{TEMP_MARK}*"))
