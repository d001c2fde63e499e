"""A night as an ordered list of stages: one runner, headers read once, archive size no cost."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from astropy.io import fits

from photonpipe.echelle import settings, stages
from photonpipe.echelle.pipeline import NightReport, reduce_night
from photonpipe.echelle.settings import NIGHT_STEPS, NIGHTLY_STEPS, Options, Step
from photonpipe.echelle.simulate import NightPlan, simulate_night
from photonpipe.errors import PhotonpipeError
from photonpipe.platform.archive import Archive
from photonpipe.platform.db import Database

NIGHT = "2026-03-05"
OTHER_NIGHTS = ("2026-03-03", "2026-03-07")
#: a short night: enough frames for every step (two science frames make the night's ZERO)
PLAN = NightPlan(biases=3, science=2)
#: the other nights are only there to be ignored
OTHER_PLAN = NightPlan(biases=1, darks=1, flats_per_pair=1, arcs_per_pair=1, science=2)


def _reduce_counting(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[NightReport, Counter[str]]:
    """Reduce NIGHT under ``root``, counting the opens of raw frames per night directory."""
    opens: Counter[str] = Counter()
    real_open = fits.open

    def counting_open(name: Any, *args: Any, **kwargs: Any) -> Any:
        path = Path(str(name))
        if path.parent.name == "raw":
            opens[path.parent.parent.name] += 1
        return real_open(name, *args, **kwargs)

    monkeypatch.setattr(fits, "open", counting_open)
    database = Database(f"sqlite:///{root / 'photonpipe.db'}")
    database.upgrade()
    try:
        report = reduce_night(
            Archive(root), database, "lsc", "nres01", NIGHT, workers=1, progress=False
        )
    finally:
        monkeypatch.setattr(fits, "open", real_open)
    return report, opens


def _crowded_archive(root: Path) -> None:
    """NIGHT between two other nights of the same instrument."""
    simulate_night(root, site="lsc", night=NIGHT, small=True, seed=5, plan=PLAN)
    for seed, night in enumerate(OTHER_NIGHTS, start=6):
        simulate_night(root, site="lsc", night=night, small=True, seed=seed, plan=OTHER_PLAN)


def test_other_nights_are_never_opened(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With 3 nights in the archive, a night opens only its own frames, each at most twice.

    Counted in this process (the ledger units run in worker processes, each opening its own
    frame): a frame's header once for the night's context, a calibration frame's pixels once
    more in its stack.
    """
    _crowded_archive(tmp_path)
    report, opens = _reduce_counting(tmp_path, monkeypatch)
    night_dir = NIGHT.replace("-", "")
    assert report.ok, report.failed
    assert set(opens) == {night_dir}  # the other nights' frames are never opened
    n_frames = len(list((tmp_path / "lsc" / "nres01" / night_dir / "raw").glob("*.fits*")))
    assert n_frames <= opens[night_dir] <= 2 * n_frames


@pytest.mark.slow
def test_header_reads_do_not_grow_with_the_archive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A night's raw-frame reads and its results are the same with 1 or 3 nights in the archive."""
    alone, crowded = tmp_path / "one", tmp_path / "three"
    simulate_night(alone, site="lsc", night=NIGHT, small=True, seed=5, plan=PLAN)
    _crowded_archive(crowded)
    report_alone, opens_alone = _reduce_counting(alone, monkeypatch)
    report_crowded, opens_crowded = _reduce_counting(crowded, monkeypatch)
    assert report_alone.ok, report_alone.failed
    assert report_crowded.summary() == report_alone.summary()
    assert opens_crowded == opens_alone


def test_the_steps_are_data() -> None:
    """Every step names a known stage; the night's order is the documented one."""
    for steps in (NIGHT_STEPS, *NIGHTLY_STEPS.values()):
        assert all(step.stage in stages.STAGES for step in steps)
    assert [(s.stage, s.argument) for s in NIGHT_STEPS] == [
        ("CheckFrames", None),
        ("StackMasters", "BIAS"),
        ("StackMasters", "DARK"),
        ("StackMasters", "FLAT"),
        ("TraceFlats", None),
        ("StackMasters", "ARC"),
        ("SolveTriple", None),
        ("ReduceScience", None),
        ("MeasureRV", None),
    ]


def test_unknown_stage_is_refused_before_any_step(tmp_path: Path) -> None:
    """A misspelt stage stops the run before it starts, naming the known stages."""
    from photonpipe.echelle import instrument

    context = stages.NightContext(
        Archive(tmp_path), Database("sqlite://"), instrument.site_info("lsc"), Options()
    )
    with pytest.raises(PhotonpipeError, match=r"unknown echelle stage 'StackMaster'.*StackMasters"):
        stages.run_steps(context, (Step("MeasureRV"), Step("StackMaster", "BIAS")))
    assert not context.velocities
    assert not context.failed


def test_options_defaults_are_the_settings_defaults() -> None:
    """The one home of the defaults: the ``echelle`` section's declarations."""
    defaults = {option.key: option.default for option in settings.ECHELLE_OPTIONS}
    assert vars(Options()) == defaults
