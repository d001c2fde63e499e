"""The light-curve archive pipeline: ingest, bad data, composites, resets, queries, aliases."""

from __future__ import annotations

import contextlib
import grp
import json
import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from astropy.table import Table

from helpers.lightcurve_archive import (
    SMALL_PLAN,
    check_consistency,
    copy_delivery,
    fast_settings,
    snapshot,
)
from photonpipe.cli.main import main
from photonpipe.errors import ConfigError
from photonpipe.lightcurves.curve import LightCurve
from photonpipe.lightcurves.extract import ExtractionParameters
from photonpipe.lightcurves.ingest import ArchiveLayout, ingest, quality_check
from photonpipe.lightcurves.models import BAD_DATA_REASONS, BadData, Composite, Metadata, Stats
from photonpipe.lightcurves.queries import add_alias, describe_file, list_files
from photonpipe.lightcurves.reset import reset_database, reset_filesystem
from photonpipe.lightcurves.simulate_archive import DeliveredDataset, deliver, spoil
from photonpipe.platform.archive import Archive
from photonpipe.platform.db import Database
from photonpipe.platform.ledger import WorkUnitRecord

PARAMETERS = ExtractionParameters(step=10.0)

#: Every observing mode, two aliases of one target, and every bad_data reason.
FULL_PLAN: tuple[tuple[str, str, str, float, str | None], ...] = (
    ("lfa01abq", "G130M", "STAR-A", 58000.10, None),
    ("lfa02abq", "G130M", "STAR-A", 58000.20, None),
    ("lnb01abq", "G185M", "STAR-B", 58000.30, None),
    ("ofc01abq", "G140L", "STAR-C", 58001.10, None),
    ("ofc02abq", "G140L", "HD 1234", 58001.20, None),  # alias of STAR-C
    ("oec01abq", "E140M", "STAR-C", 58001.30, None),
    *(
        (f"lbd{i:02d}abq", "G130M" if i % 2 else "G140L", "STAR-D", 58002.0 + i / 10, reason)
        for i, reason in enumerate(BAD_DATA_REASONS, start=1)
    ),
)


def _rename_stis(plan: tuple[tuple[str, str, str, float, str | None], ...]) -> list[tuple]:
    # HST rootnames start with l for COS and o for STIS; keep that for the bad ones too.
    return [(("o" + r[1:]) if m in ("G140L", "E140M") else r, m, t, e, b) for r, m, t, e, b in plan]


@pytest.fixture(scope="module")
def full_delivery(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[DeliveredDataset]]:
    """The full plan simulated once; tests copy the ingest directory."""
    root = tmp_path_factory.mktemp("full")
    delivered = deliver(root / "inbox", root / "truth", _rename_stis(FULL_PLAN), seed=3)
    return root / "inbox", delivered


@pytest.fixture(scope="module")
def small_delivery(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[DeliveredDataset]]:
    """The small plan, tiny exposures (for the many fault-injection trials)."""
    root = tmp_path_factory.mktemp("small")
    delivered = deliver(
        root / "inbox", root / "truth", SMALL_PLAN, seed=5, exptime=120.0, events=400
    )
    return root / "inbox", delivered


def _layout(tmp_path: Path, **modes: object) -> ArchiveLayout:
    archive = Archive(tmp_path / "archive", **modes)  # type: ignore[arg-type]
    archive.create()
    return ArchiveLayout(archive)


def _database(layout: ArchiveLayout) -> Database:
    return Database(f"sqlite:///{layout.archive.root / 'photonpipe.db'}")


# --- quality checks ---------------------------------------------------------------------------


@pytest.mark.parametrize("reason", BAD_DATA_REASONS)
def test_each_quality_check_names_its_reason(
    small_delivery: tuple[Path, list[DeliveredDataset]], tmp_path: Path, reason: str
) -> None:
    inbox, _ = small_delivery
    good = tmp_path / "lfa01abq_corrtag_a.fits"
    shutil.copy(inbox / good.name, good)
    assert quality_check(good) is None
    spoil(good, reason)
    rejection = quality_check(good)
    assert rejection is not None
    assert rejection.reason == reason
    assert good.name in rejection.detail


def test_checks_run_in_hstlc_order(
    small_delivery: tuple[Path, list[DeliveredDataset]], tmp_path: Path
) -> None:
    """A file both empty and flagged is 'No events'; flagged and short is 'Bad EXPFLAG'."""
    inbox, _ = small_delivery
    path = tmp_path / "lfa01abq_corrtag_a.fits"
    shutil.copy(inbox / path.name, path)
    spoil(path, "Short exposure")
    spoil(path, "Bad EXPFLAG")
    assert quality_check(path).reason == "Bad EXPFLAG"  # type: ignore[union-attr]
    spoil(path, "No events")
    assert quality_check(path).reason == "No events"  # type: ignore[union-attr]


# --- end to end on every database -------------------------------------------------------------


def test_end_to_end(
    database: Database, full_delivery: tuple[Path, list[DeliveredDataset]], tmp_path: Path
) -> None:
    inbox, delivered = full_delivery
    group = grp.getgrgid(os.getgid()).gr_name
    layout = _layout(tmp_path, file_mode=0o640, dir_mode=0o750, group=group)
    copy_delivery(inbox, layout)
    add_alias(database, "hd 1234", "star-c")
    report = ingest(layout, database, PARAMETERS, settings=fast_settings(2))
    assert report.ok, report.summary()
    assert report.found == len(delivered)
    assert sorted(report.archived) == sorted(d.rootname for d in delivered if d.bad is None)
    assert {reason: len(v) for reason, v in report.rejected.items()} == dict.fromkeys(
        BAD_DATA_REASONS, 1
    )
    # the aliased dataset joins STAR-C's directory and composite
    expected = [
        d if d.target != "HD 1234" else DeliveredDataset(d.rootname, d.mode, "STAR-C",
                                                          d.expstart, d.bad, d.files, d.truth)
        for d in delivered
    ]  # fmt: skip
    summary = check_consistency(layout, database, expected)
    g140l = "hlsp_hstlc_hst_stis-fuv-mama_star-c_g140l_1425_52x0.2_v1_sci.fits"
    assert summary["groups"][g140l] == {"ofc01abq", "ofc02abq"}
    assert sorted(report.composites) == sorted(summary["groups"])
    assert len(summary["groups"]) == 4  # STAR-A G130M, STAR-B G185M, STAR-C G140L and E140M
    with database.session() as session:
        assert (
            session.scalar(
                sa.select(Metadata.targname).where(Metadata.filename == "ofc02abq_tag.fits")
            )
            == "HD 1234"
        )
    # permissions and group on archived files, products and directories
    gid = grp.getgrnam(group).gr_gid
    for path in [
        layout.archive.path("lightcurves/filesystem/STAR-C/ofc02abq_tag.fits"),
        layout.archive.path("lightcurves/outputs/STAR-C", g140l),
        layout.archive.path("lightcurves/bad_data/lbd01abq_corrtag_a.fits"),
    ]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o640, path
        assert path.stat().st_gid == gid
    for directory in ("lightcurves/filesystem/STAR-C", "lightcurves/outputs/STAR-C"):
        assert stat.S_IMODE(layout.archive.path(directory).stat().st_mode) == 0o750
    # the stats row is the product's, and the flux is the simulator's truth
    constant = next(d for d in delivered if d.rootname == "lfa01abq")
    curve = LightCurve.read(layout.archive.path("lightcurves/outputs/STAR-A/lfa01abq_curve.fits"))
    with database.session() as session:
        row = session.scalar(sa.select(Stats).where(Stats.filename == "lfa01abq_curve.fits"))
        assert row is not None
        flux = np.asarray(curve["FLUX"], float)
        assert row.mean == pytest.approx(float(np.mean(flux[np.isfinite(flux)])), rel=1e-12)
        assert row.quantity == "FLUX"
        assert row.periodogram is False
        assert row.best_period is None
        assert row.period_verdict == "no significant period"
    truth = Table.read(constant.truth)
    exposure = np.asarray(curve["BIN_EXPTIME"], float)
    weighted = float(np.sum(flux * exposure) / np.sum(exposure))
    assert weighted == pytest.approx(truth.meta["band_flux"], rel=0.06)
    # a second run changes nothing
    before = snapshot(layout, database)
    again = ingest(layout, database, PARAMETERS, settings=fast_settings(2))
    assert again.found == 0
    assert not again.composites
    assert again.ok
    assert snapshot(layout, database) == before


# --- crash safety -----------------------------------------------------------------------------

#: (checkpoint, N-th time it is reached): ≥ 20 different kill points, with one worker so that
#: the order is fixed: lfa01abq, lfa02abq, lfb01abq (bad), ofc01abq; then 2 composites.
KILL_POINTS = [
    ("dataset_start", 1),
    ("dataset_start", 3),
    ("dataset_start", 4),
    ("individual_written", 1),
    ("individual_written", 2),
    ("individual_written", 3),
    ("committed", 1),  # SIGKILL between the database commit and the first file move
    ("committed", 2),
    ("committed", 3),
    ("moved", 1),  # between the moves of one dataset's files
    ("moved", 2),
    ("moved", 4),
    ("moved", 8),
    ("dataset_done", 1),
    ("dataset_done", 3),
    ("bad_committed", 1),  # rejection recorded, files not yet moved
    ("bad_moved", 1),  # one of the bad dataset's files moved
    ("composite_start", 1),
    ("composite_written", 1),
    ("composite_written", 2),
    ("composite_committed", 1),
    ("composite_committed", 2),
]


def _run_child(layout: ArchiveLayout, kill: str | None, workers: int = 1) -> int:
    """Run an ingest in a forked child (its own process group); return its exit code."""
    import multiprocessing

    def target() -> None:
        os.setpgrp()
        if kill:
            os.environ["PHOTONPIPE_TEST_LIGHTCURVE_KILL"] = kill
        database = _database(layout)
        ingest(layout, database, PARAMETERS, settings=fast_settings(workers), plot=False)

    process = multiprocessing.get_context("fork").Process(target=target)
    process.start()
    process.join(120)
    return int(process.exitcode if process.exitcode is not None else 999)


@pytest.mark.parametrize(("point", "nth"), KILL_POINTS, ids=[f"{p}@{n}" for p, n in KILL_POINTS])
def test_killed_ingest_is_completed_by_the_next_run(
    small_delivery: tuple[Path, list[DeliveredDataset]], tmp_path: Path, point: str, nth: int
) -> None:
    inbox, delivered = small_delivery
    layout = _layout(tmp_path)
    copy_delivery(inbox, layout)
    _database(layout).upgrade()
    code = _run_child(layout, f"{point}@{nth}")
    assert code == -9, f"ingest was not killed at {point}@{nth} (exit {code})"
    database = _database(layout)
    report = ingest(layout, database, PARAMETERS, settings=fast_settings(), plot=False)
    assert report.ok, report.summary()
    check_consistency(layout, database, delivered)
    with database.session() as session:
        units = session.execute(
            sa.select(WorkUnitRecord.kind, WorkUnitRecord.key, WorkUnitRecord.status)
        ).all()
    # A unit whose work finished but whose success the killed batch never recorded stays
    # "running" under its dead owner; its files are archived, so no run needs it again.
    assert "failed" not in {u.status for u in units}, units


@pytest.mark.parametrize(
    "delay",
    [
        pytest.param(0.3, marks=pytest.mark.slow),
        0.8,
        pytest.param(1.4, marks=pytest.mark.slow),
        pytest.param(2.0, marks=pytest.mark.slow),
    ],
)
def test_ingest_killed_at_a_random_time(
    small_delivery: tuple[Path, list[DeliveredDataset]], tmp_path: Path, delay: float
) -> None:
    """SIGKILL to the whole ingest (batch process and workers) after ``delay`` seconds."""
    import multiprocessing
    import signal
    import time

    inbox, delivered = small_delivery
    layout = _layout(tmp_path)
    copy_delivery(inbox, layout)
    _database(layout).upgrade()

    def target() -> None:
        os.setpgrp()
        ingest(layout, _database(layout), PARAMETERS, settings=fast_settings(2), plot=True)

    process = multiprocessing.get_context("fork").Process(target=target)
    process.start()
    time.sleep(delay)
    with contextlib.suppress(ProcessLookupError):  # already finished
        os.killpg(process.pid, signal.SIGKILL)
    process.join(60)
    database = _database(layout)
    report = ingest(layout, database, PARAMETERS, settings=fast_settings(), plot=True)
    assert report.ok, report.summary()
    check_consistency(layout, database, delivered)


def test_two_ingests_at_once_never_process_a_dataset_twice(
    full_delivery: tuple[Path, list[DeliveredDataset]], tmp_path: Path
) -> None:
    import multiprocessing

    inbox, delivered = full_delivery
    layout = _layout(tmp_path)
    copy_delivery(inbox, layout)
    _database(layout).upgrade()
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(2)
    results = context.Queue()

    def target() -> None:
        barrier.wait()
        report = ingest(layout, _database(layout), PARAMETERS, settings=fast_settings(1))
        processed = report.archived + [d for v in report.rejected.values() for d in v]
        results.put((processed, report.completed, report.composites, report.ok))

    processes = [context.Process(target=target) for _ in range(2)]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=300) for _ in processes]
    for process in processes:
        process.join(60)
        assert process.exitcode == 0
    first, second = (set(o[0]) for o in outcomes)
    assert all(o[3] for o in outcomes)
    assert not first & second, f"processed by both: {first & second}"
    assert first | second == {d.rootname for d in delivered}
    assert first, "the second ingest did everything: concurrency was not exercised"
    assert second, "the first ingest did everything: concurrency was not exercised"
    database = _database(layout)
    with database.session() as session:
        tries = session.scalars(
            sa.select(WorkUnitRecord.tries).where(WorkUnitRecord.kind == "lightcurve.ingest")
        ).all()
    assert tries
    assert set(tries) == {1}
    check_consistency(layout, database, delivered)


def test_new_dataset_rebuilds_only_its_targets_composite(
    small_delivery: tuple[Path, list[DeliveredDataset]], tmp_path: Path
) -> None:
    inbox, delivered = small_delivery
    layout = _layout(tmp_path)
    copy_delivery(inbox, layout)
    database = _database(layout)
    first = ingest(layout, database, PARAMETERS, settings=fast_settings(), plot=False)
    assert len(first.composites) == 2
    with database.session() as session:
        built = {c.filename: c.built for c in session.scalars(sa.select(Composite))}
    star_c = next(f for f in built if "star-c" in f)
    star_c_file = layout.archive.path("lightcurves/outputs/STAR-C", star_c)
    mtime = star_c_file.stat().st_mtime_ns
    more = deliver(
        layout.inbox, tmp_path / "truth", [("lfa03abq", "G130M", "STAR-A", 58000.4, None)],
        seed=9, exptime=120.0, events=400,
    )  # fmt: skip
    second = ingest(layout, database, PARAMETERS, settings=fast_settings(), plot=False)
    star_a = next(f for f in built if "star-a" in f)
    assert second.archived == ["lfa03abq"]
    assert second.composites == [star_a]
    with database.session() as session:
        after = {c.filename: (c.built, c.members) for c in session.scalars(sa.select(Composite))}
    assert after[star_c][0] == built[star_c]
    assert after[star_a][0] > built[star_a]
    assert after[star_a][1] == "lfa01abq,lfa02abq,lfa03abq"
    assert star_c_file.stat().st_mtime_ns == mtime
    check_consistency(layout, database, [*delivered, *more])


# --- resets, queries, aliases through the command line ------------------------------------------


def _cli(capsys: pytest.CaptureFixture[str], layout: ArchiveLayout, *args: str) -> tuple:
    code = main(["--archive", str(layout.archive.root), *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_commands_ingest_list_show_alias_and_resets(
    small_delivery: tuple[Path, list[DeliveredDataset]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    inbox, delivered = small_delivery
    layout = _layout(tmp_path)
    copy_delivery(inbox, layout)
    # something outside the archive, reachable through a symbolic link inside it
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.fits").write_bytes(b"keep me")
    layout.archive.makedirs("lightcurves/outputs")
    (layout.archive.root / "lightcurves/outputs/link").symlink_to(outside)

    code, out, err = _cli(capsys, layout, "lightcurve", "alias", "add", "star c", "STAR-C")
    assert code == 0
    assert out.strip() == "STAR C -> STAR-C"
    code, out, err = _cli(
        capsys, layout, "--set", "executor.start_method=fork", "lightcurve", "ingest",
        "--step", "10",
    )  # fmt: skip
    assert code == 0, err
    assert "3 ingested, 1 rejected" in out
    assert "rejected, Bad EXPFLAG: 1 (lfb01abq)" in out
    assert "2 composites rebuilt" in out
    database = _database(layout)
    check_consistency(layout, database, delivered)

    code, out, _ = _cli(capsys, layout, "lightcurve", "list", "--format", "json")
    rows = json.loads(out)
    assert len(rows) == 11  # 3 archived datasets: event files, x1d and support file (spt)
    assert {r["target"] for r in rows} == {"STAR-A", "STAR-C"}
    code, out, _ = _cli(
        capsys, layout, "lightcurve", "list", "--instrument", "stis", "--format", "csv"
    )
    lines = out.strip().splitlines()
    assert lines[0].startswith("filename,dataset,target")
    assert len(lines) == 4  # header + tag, x1d and spt of the STIS dataset
    code, out, _ = _cli(capsys, layout, "lightcurve", "list", "--target", "star c")
    assert "ofc01abq_tag.fits" in out
    assert "ofc01abq_spt.fits" in out
    assert "(3 files)" in out
    code, out, _ = _cli(capsys, layout, "lightcurve", "show", "lfa01abq_corrtag_b.fits")
    assert code == 0
    assert "status: archived" in out
    assert "lfa01abq_curve.fits" in out
    assert "stats (composite):" in out
    code, out, _ = _cli(capsys, layout, "lightcurve", "show", "lfb01abq_x1d.fits")
    assert "status: rejected" in out
    assert "Bad EXPFLAG" in out
    code, out, err = _cli(capsys, layout, "lightcurve", "show", "nothing.fits")
    assert code == 2  # an input error (exit 1 before issue 16)
    assert "nothing.fits: not in the light-curve archive" in err

    # resets: dry runs and a refused confirmation change nothing
    before = snapshot(layout, database)
    code, out, _ = _cli(capsys, layout, "lightcurve", "reset-filesystem", "--dry-run")
    assert code == 0
    assert "would move lightcurves/filesystem/STAR-A/lfa01abq_x1d.fits" in out
    assert "leave symbolic link" in out
    code, out, _ = _cli(capsys, layout, "lightcurve", "reset-database", "--dry-run")
    assert "would delete 11 rows from metadata" in out  # with the three support files
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("n\n"))
    code, out, err = _cli(capsys, layout, "lightcurve", "reset-filesystem")
    assert code != 0
    assert snapshot(layout, database) == before
    code, out, _ = _cli(capsys, layout, "lightcurve", "reset-filesystem", "--yes")
    assert code == 0
    assert sorted(p.name for p in layout.inbox.iterdir()) == sorted(
        p.name for d in delivered for p in d.files
    )
    assert not [p for p in (layout.area / "outputs").rglob("*") if p.is_file()]
    assert (outside / "precious.fits").read_bytes() == b"keep me"
    code, out, _ = _cli(
        capsys, layout, "lightcurve", "reset-database", "--all", "--keep-bad-data", "--yes"
    )
    assert code == 0
    with database.session() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Metadata)) == 0
        assert (
            session.scalar(sa.select(sa.func.count()).select_from(BadData)) == 4
        )  # the rejected dataset with its support file
    # and the archive rebuilds from the ingest directory
    code, out, err = _cli(
        capsys, layout, "--set", "executor.start_method=fork", "lightcurve", "ingest",
        "--step", "10", "--no-plot",
    )  # fmt: skip
    assert code == 0, err
    check_consistency(layout, database, delivered)


def test_resets_through_the_api_round_trip(
    small_delivery: tuple[Path, list[DeliveredDataset]], tmp_path: Path
) -> None:
    inbox, delivered = small_delivery
    layout = _layout(tmp_path)
    copy_delivery(inbox, layout)
    database = _database(layout)
    ingest(layout, database, PARAMETERS, settings=fast_settings(), plot=False)
    plan = reset_filesystem(layout, database)
    assert len(plan.restore) == sum(len(d.files) for d in delivered)
    reset_database(database, ["metadata"])
    with database.session() as session:
        # the rejected dataset's event files, x1d and support file
        assert session.scalar(sa.select(sa.func.count()).select_from(BadData)) == 4
    reset_database(database)
    report = ingest(layout, database, PARAMETERS, settings=fast_settings(), plot=False)
    assert report.ok
    assert len(report.archived) == 3
    check_consistency(layout, database, delivered)
    assert describe_file(database, "ofc01abq_x1d.fits")["status"] == "archived"
    assert {r["target"] for r in list_files(database, instrument="COS")} == {"STAR-A"}


def test_ingest_directory_must_be_inside_the_archive(tmp_path: Path) -> None:
    archive = Archive(tmp_path / "archive")
    archive.create()
    with pytest.raises(ConfigError, match="must be inside the archive root"):
        ArchiveLayout.for_archive(archive, tmp_path / "elsewhere")
    layout = ArchiveLayout.for_archive(archive, "incoming")
    assert layout.inbox == archive.root / "incoming"


def test_a_file_that_differs_from_its_archived_namesake_is_left_in_place(
    small_delivery: tuple[Path, list[DeliveredDataset]], tmp_path: Path
) -> None:
    inbox, _delivered = small_delivery
    layout = _layout(tmp_path)
    copy_delivery(inbox, layout)
    database = _database(layout)
    ingest(layout, database, PARAMETERS, settings=fast_settings(), plot=False)
    changed = layout.inbox / "ofc01abq_x1d.fits"
    shutil.copy(inbox / "lfa01abq_x1d.fits", changed)  # same name as archived, other bytes
    report = ingest(layout, database, PARAMETERS, settings=fast_settings(), plot=False)
    assert not report.ok
    assert "ofc01abq" in report.failed
    assert "different file of that name" in report.failed["ofc01abq"]
    assert changed.exists()


@pytest.mark.slow
def test_ingest_on_dask(
    small_delivery: tuple[Path, list[DeliveredDataset]], tmp_path: Path
) -> None:
    """The same ingest with the Dask backend (a LocalCluster of one worker)."""
    pytest.importorskip("distributed")
    inbox, delivered = small_delivery
    layout = _layout(tmp_path)
    copy_delivery(inbox, layout)
    database = _database(layout)
    report = ingest(layout, database, PARAMETERS, backend="dask", workers=1, plot=False)
    assert report.ok, report.summary()
    assert len(report.archived) == 3
    assert len(report.composites) == 2
    check_consistency(layout, database, delivered)


def test_a_write_killed_halfway_leaves_only_a_temporary_that_the_next_run_removes(
    small_delivery: tuple[Path, list[DeliveredDataset]], tmp_path: Path
) -> None:
    """What SIGKILL inside an atomic write leaves: a hidden temporary of a dead process."""
    import subprocess
    import sys

    inbox, delivered = small_delivery
    layout = _layout(tmp_path)
    copy_delivery(inbox, layout)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    pid = int(dead.stdout)
    outputs = layout.archive.makedirs("lightcurves/outputs/STAR-A")
    half = outputs / f".lfa01abq_curve.fits.photonpipe-tmp-{pid}-0badc0de.fits"
    half.write_bytes((inbox / "lfa01abq_x1d.fits").read_bytes()[:5000])
    alive = outputs / f".lfa02abq_curve.fits.photonpipe-tmp-{os.getpid()}-0badc0de.fits"
    alive.write_bytes(b"a write in progress in a live process")
    database = _database(layout)
    report = ingest(layout, database, PARAMETERS, settings=fast_settings(), plot=False)
    assert report.ok, report.summary()
    assert not half.exists()
    assert alive.exists()  # a live writer's temporary is not touched
    alive.unlink()
    check_consistency(layout, database, delivered)
