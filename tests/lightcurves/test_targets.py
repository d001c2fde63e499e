"""Target names as keys: adversarial TARGNAMEs get their own directories and composites.

Before, ``a/b``, ``A_B`` and ``a-b`` all became ``hlsp_..._a-b_...``: one composite for three
targets (the other two got none, exit 0), rebuilt on every run; ``.`` wrote straight into
``lightcurves/filesystem/`` and ``lightcurves/outputs/``; names differing only in case were
merged.
"""

from __future__ import annotations

import os
import string
from pathlib import Path

import pytest
import sqlalchemy as sa

from helpers.lightcurve_archive import check_consistency, check_no_orphans, fast_settings
from photonpipe.lightcurves.extract import ExtractionParameters
from photonpipe.lightcurves.ingest import ArchiveLayout, ingest
from photonpipe.lightcurves.models import Composite, TargetTokenRecord
from photonpipe.lightcurves.simulate_archive import deliver
from photonpipe.lightcurves.targets import target_token
from photonpipe.platform.archive import Archive
from photonpipe.platform.db import Database

ADVERSARIAL = [
    "a/b",
    "A_B",
    "a-b",
    "A-B",
    "abc",
    "ABC",
    "Abc",
    ".",
    "..",
    "",
    " ",
    "../../etc",
    "a\x00b",
    "a\nb",
    "\x1b[31mred",
    "Stär",
    "星",
    "x" * 300,
    "x" * 301,
    "AV 75",
    "AV_75",
    "AV-75",
    "av 75",
    "HD 1234+5",
    "CON",
    "-rf",
    "a~b",
    "a.b",
    "a b~c14cddc033",
]


def test_tokens_are_safe_distinct_and_stable() -> None:
    tokens = [target_token(n) for n in ADVERSARIAL]
    directories = [t.directory for t in tokens]
    hlsp = [t.hlsp for t in tokens]
    # distinct, also on a case-insensitive file system, and as HLSP names
    assert len({d.casefold() for d in directories}) == len(ADVERSARIAL)
    assert len(set(hlsp)) == len(ADVERSARIAL)
    allowed = set(string.ascii_letters + string.digits + "+-_~")
    for name, t in zip(ADVERSARIAL, tokens, strict=True):
        assert set(t.directory) <= allowed, (name, t.directory)
        assert set(t.hlsp) <= set(string.ascii_lowercase + string.digits + "+-.~"), t.hlsp
        assert t.directory not in ("", ".", "..")
        assert not t.directory.startswith(("-", "."))
        assert "_" not in t.hlsp  # the field separator of HLSP names
        assert len(t.directory) <= 64
        assert len(t.hlsp) <= 64
        assert target_token(name) == t  # deterministic
    # the ordinary HST names keep their spelling
    assert target_token("AV 75").directory == "AV_75"
    assert target_token("STAR-A").directory == "STAR-A"
    assert target_token("HD 1234+5").hlsp == "hd.1234+5"


#: TARGNAMEs a FITS header can hold that used to collide or escape (plus an ordinary one).
INGESTED = ["a/b", "A_B", "a-b", "abc", "ABC", ".", "..", "Y" * 68, "STAR-A"]


@pytest.fixture(scope="module")
def adversarial_delivery(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    root = tmp_path_factory.mktemp("targets")
    plan = [
        (f"lt{i:02d}abq", "G130M", name, 58000.0 + i / 10, None)
        for i, name in enumerate(INGESTED, start=1)
    ]
    delivered = deliver(root / "inbox", root / "truth", plan, seed=4, exptime=120.0, events=400)
    return root / "inbox", delivered


def _files(layout: ArchiveLayout) -> dict[str, tuple[int, int, int]]:
    return {
        str(p.relative_to(layout.area)): (p.stat().st_ino, p.stat().st_mtime_ns, p.stat().st_size)
        for p in layout.area.rglob("*")
        if p.is_file()
    }


def test_adversarial_targets_get_their_own_composites(
    adversarial_delivery: tuple[Path, list], tmp_path: Path, database: Database
) -> None:
    """On every database: MariaDB compared target names case-insensitively (``ABC`` and
    ``abc`` one target) before migration 0010."""
    inbox, delivered = adversarial_delivery
    archive = Archive(tmp_path / "archive")
    archive.create()
    layout = ArchiveLayout(archive)
    layout.inbox.mkdir(parents=True)
    for path in inbox.iterdir():
        os.link(path, layout.inbox / path.name)
    parameters = ExtractionParameters(step=10.0)
    report = ingest(layout, database, parameters, settings=fast_settings(), plot=False)
    assert report.ok, report.summary()
    assert len(report.archived) == len(INGESTED)
    assert len(report.composites) == len(INGESTED)  # one per target, none shared
    check_consistency(layout, database, delivered)
    assert check_no_orphans(layout, database) == 2 * len(INGESTED)
    # nothing directly in filesystem/ or outputs/, nothing outside them
    for sub in ("filesystem", "outputs"):
        entries = list((layout.area / sub).iterdir())
        assert all(e.is_dir() for e in entries), entries
        assert len(entries) == len(INGESTED)
    outside = {p.name for p in tmp_path.iterdir() if not p.name.startswith("test.db")}
    assert outside == {"archive", "cwd"}
    with database.session() as session:
        mapping = {r.target: r.directory for r in session.scalars(sa.select(TargetTokenRecord))}
        composites = session.scalars(sa.select(Composite.filename)).all()
    assert mapping == {n: target_token(n).directory for n in INGESTED}
    assert len(set(composites)) == len(INGESTED)
    # a re-run with unchanged inputs rewrites no file: same inode, mtime and size everywhere
    before = _files(layout)
    again = ingest(layout, database, parameters, settings=fast_settings(), plot=False)
    assert again.ok, again.summary()
    assert again.composites == []
    assert again.archived == []
    assert _files(layout) == before


def test_workers_registering_one_new_target_at_once_agree(database_url: str) -> None:
    """Two workers meeting a new target together both get its token, and no error.

    Found by the kill test on PostgreSQL: the second worker's check for a clash saw the row the
    first had just committed for the same target and called it a collision, so its dataset
    failed, and with that failure on record its later deaths counted as tries.
    """
    import threading

    from photonpipe.lightcurves.targets import register_targets

    database = Database(database_url)
    database.upgrade()
    names = [f"RACE-{i}" for i in range(40)]
    errors: list[BaseException] = []
    for name in names:
        barrier = threading.Barrier(4)

        def register(name: str = name, barrier: threading.Barrier = barrier) -> None:
            try:
                barrier.wait()
                with database.session() as session:
                    register_targets(session, [name, "STAR-A"])
            except BaseException as exc:  # collected and reported below
                errors.append(exc)

        threads = [threading.Thread(target=register) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    with database.session() as session:
        stored = {r.target: r.directory for r in session.scalars(sa.select(TargetTokenRecord))}
    database.dispose()
    assert errors == []
    assert stored == {n: target_token(n).directory for n in [*names, "STAR-A"]}
