"""Tests of photonpipe.platform.db on SQLite, PostgreSQL and MariaDB/MySQL.

Every test that takes ``database_url`` or ``database`` runs once per dialect (see conftest.py);
the SQLite-specific and error tests use their own URLs.
"""

from __future__ import annotations

import importlib.util
import multiprocessing
import os
import pickle
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from photonpipe.errors import EXIT_USAGE, DatabaseError
from photonpipe.platform.db import (
    _UPSERT_CHUNK,
    MIGRATIONS_DIR,
    Database,
    masked_url,
    upsert,
    utcnow,
)
from photonpipe.platform.ledger import WorkUnitRecord

KEY = ("kind", "key")
CREATED = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
WORK_UNIT_COLUMNS = {
    "id": False,
    "kind": False,
    "key": False,
    "status": False,
    "tries": False,
    "deaths": False,
    "failures": False,
    "checksum": True,
    "done_checksum": True,
    "error": True,
    "result": True,
    "owner": True,
    "created": False,
    "started": True,
    "finished": True,
    "heartbeat": True,
}  # column name -> nullable


@pytest.fixture
def make_database() -> Iterator[Callable[..., Database]]:
    """Factory of Database objects that are disposed when the test ends."""
    created: list[Database] = []

    def make(url: str, **kwargs: Any) -> Database:
        database = Database(url, **kwargs)
        created.append(database)
        return database

    yield make
    for database in created:
        database.dispose()


def _revision_chain() -> list[str]:
    """Every shipped migration revision, oldest first (read independently of Database)."""
    script = ScriptDirectory(str(MIGRATIONS_DIR))
    return [r.revision for r in reversed(list(script.walk_revisions()))]


def _table_names(database: Database) -> set[str]:
    return set(sa.inspect(database.engine).get_table_names())


def _alembic_versions(database: Database) -> list[str]:
    with database.connect() as conn:
        return list(conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars())


def _unit_rows(
    keys: Sequence[str],
    *,
    kind: str = "test",
    status: str = "pending",
    tries: int = 0,
    checksum: str | None = None,
) -> list[dict[str, Any]]:
    return [
        {
            "kind": kind,
            "key": key,
            "status": status,
            "tries": tries,
            "checksum": checksum,
            "created": CREATED,
        }
        for key in keys
    ]


def _units(database: Database) -> dict[tuple[str, str], sa.Row[Any]]:
    """Every work_unit row by natural key."""
    c = WorkUnitRecord.__table__.c
    with database.session() as session:
        rows = session.execute(
            sa.select(c.id, c.kind, c.key, c.status, c.tries, c.checksum).order_by(c.id)
        ).all()
    return {(row.kind, row.key): row for row in rows}


def _new_unit(key: str, kind: str = "test") -> WorkUnitRecord:
    return WorkUnitRecord(kind=kind, key=key, status="pending", tries=0, created=utcnow())


def _server_connection_id(connection: sa.Connection | Session, dialect: str) -> int | None:
    """Server-side id of the connection (None on SQLite)."""
    if dialect == "postgresql":
        return connection.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
    if dialect in ("mysql", "mariadb"):
        return connection.execute(sa.text("SELECT CONNECTION_ID()")).scalar_one()
    return None


# --- migrations ---------------------------------------------------------------------------------


def test_empty_database_has_no_revision(
    database_url: str, make_database: Callable[..., Database]
) -> None:
    database = make_database(database_url, auto_upgrade=False)
    chain = _revision_chain()
    assert chain[0] == "0001_work_unit_ledger"
    assert database.head_revision() == chain[-1]
    assert database.current_revision() is None
    assert database.pending_revisions() == chain
    assert database.pending_revisions()[-1] == database.head_revision()
    # Asking did not migrate anything.
    assert "work_unit" not in _table_names(database)
    assert database.current_revision() is None


def test_upgrade_creates_work_unit_table(
    database_url: str, make_database: Callable[..., Database]
) -> None:
    database = make_database(database_url, auto_upgrade=False)
    database.upgrade()
    head = database.head_revision()
    assert database.current_revision() == head
    assert database.pending_revisions() == []
    assert _alembic_versions(database) == [head]

    inspector = sa.inspect(database.engine)
    assert "work_unit" in inspector.get_table_names()
    columns = {c["name"]: c for c in inspector.get_columns("work_unit")}
    assert {name: c["nullable"] for name, c in columns.items()} == WORK_UNIT_COLUMNS
    # The migration and the ORM model agree.
    assert set(columns) == set(WorkUnitRecord.__table__.columns.keys())
    assert inspector.get_pk_constraint("work_unit")["constrained_columns"] == ["id"]
    uniques = {u["name"]: u["column_names"] for u in inspector.get_unique_constraints("work_unit")}
    assert uniques == {"uq_work_unit_kind_key": ["kind", "key"]}
    indexes = {i["name"]: i["column_names"] for i in inspector.get_indexes("work_unit")}
    assert indexes["ix_work_unit_status"] == ["status"]

    # The unique constraint is enforced: same (kind, key) is refused, another kind is not.
    with database.session() as session:
        session.add_all([_new_unit("a"), _new_unit("a", kind="other")])
    duplicate = sa.insert(WorkUnitRecord).values(
        kind="test", key="a", status="pending", tries=0, created=CREATED
    )
    with pytest.raises(IntegrityError), database.session() as session:
        session.execute(duplicate)
    assert set(_units(database)) == {("test", "a"), ("other", "a")}

    # Upgrading again is a no-op.
    database.upgrade()
    assert _alembic_versions(database) == [head]


def test_downgrade_to_base_and_upgrade_again(
    database: Database, make_database: Callable[..., Database]
) -> None:
    with database.session() as session:
        session.add(_new_unit("before-downgrade"))
    database.downgrade("base")
    assert database.current_revision() is None
    assert "work_unit" not in _table_names(database)
    assert database.pending_revisions() == _revision_chain()

    database.upgrade()
    assert database.current_revision() == database.head_revision()
    assert "work_unit" in _table_names(database)
    assert _units(database) == {}  # a new, empty table
    assert _alembic_versions(database) == [database.head_revision()]


def test_first_session_upgrades_automatically(
    database_url: str, make_database: Callable[..., Database]
) -> None:
    observer = make_database(database_url, auto_upgrade=False)
    manual = make_database(database_url, auto_upgrade=False)
    with manual.session() as session:  # auto_upgrade=False: the session does not migrate
        assert session.execute(sa.text("SELECT 1")).scalar_one() == 1
    assert observer.current_revision() is None

    database = make_database(database_url)
    assert database.auto_upgrade
    assert observer.current_revision() is None  # creating the object does not touch the db
    with database.session() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(WorkUnitRecord)) == 0
        session.add(_new_unit("auto"))
    assert observer.current_revision() == observer.head_revision()
    assert list(_units(observer)) == [("test", "auto")]


# --- concurrent first use -----------------------------------------------------------------------

_RACE_SCRIPT = """
import sys, time
from pathlib import Path
import alembic.command  # import before the start signal, so that the processes race
from photonpipe.platform.db import Database

url, ready, go, mode = sys.argv[1:5]
database = Database(url, auto_upgrade=False)
database.engine
Path(ready).touch()
deadline = time.monotonic() + 30
while not Path(go).exists():
    if time.monotonic() > deadline:
        sys.exit("no start signal")
    time.sleep(0.002)
if mode == "ensure_schema":
    database.ensure_schema()
else:
    database.upgrade()
print(database.current_revision())
database.dispose()
"""


def test_concurrent_first_use_migrates_once(
    database_url: str, make_database: Callable[..., Database], tmp_path: Path
) -> None:
    modes = ["ensure_schema", "upgrade", "ensure_schema", "upgrade"]
    signals = tmp_path / "signals"
    signals.mkdir()
    go = signals / "go"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _RACE_SCRIPT, database_url, str(signals / f"r{i}"), go, mode],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i, mode in enumerate(modes)
    ]
    try:
        deadline = time.monotonic() + 30
        while len(list(signals.glob("r*"))) < len(modes):
            assert time.monotonic() < deadline, "worker processes did not start"
            assert all(p.poll() is None for p in processes), "a worker process died early"
            time.sleep(0.01)
        go.touch()
        outputs = [p.communicate(timeout=60) for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
                p.communicate()

    database = make_database(database_url, auto_upgrade=False)
    head = database.head_revision()
    for p, (out, err) in zip(processes, outputs, strict=True):
        assert p.returncode == 0, err
        assert out.strip() == head
    assert _alembic_versions(database) == [head]
    assert database.pending_revisions() == []
    with database.session() as session:
        session.add(_new_unit("after-race"))
    assert list(_units(database)) == [("test", "after-race")]


# --- upsert -------------------------------------------------------------------------------------


def test_upsert_inserts_and_updates_on_natural_key(database: Database) -> None:
    with database.session() as session:
        upsert(session, WorkUnitRecord, _unit_rows(["a", "b", "c"]), key=KEY)
    before = _units(database)
    assert sorted(before) == [("test", "a"), ("test", "b"), ("test", "c")]
    assert {(r.status, r.tries, r.checksum) for r in before.values()} == {("pending", 0, None)}

    rows = _unit_rows(["b", "c", "d"], status="done", tries=2, checksum="sha256:1")
    rows += _unit_rows(["a"], kind="other", status="failed", tries=5)  # same key, other kind
    with database.session() as session:
        upsert(session, WorkUnitRecord, rows, key=KEY)
    after = _units(database)
    assert set(after) == set(before) | {("test", "d"), ("other", "a")}
    assert after[("test", "a")] == before[("test", "a")]  # not in the batch: untouched
    for name in ("b", "c"):
        row = after[("test", name)]
        assert row.id == before[("test", name)].id  # updated in place, same primary key
        assert (row.status, row.tries, row.checksum) == ("done", 2, "sha256:1")
    assert (after[("test", "d")].status, after[("test", "d")].tries) == ("done", 2)
    assert (after[("other", "a")].status, after[("other", "a")].tries) == ("failed", 5)
    new_ids = {after[("test", "d")].id, after[("other", "a")].id}
    assert len(new_ids) == 2
    assert not new_ids & {r.id for r in before.values()}


def test_upsert_with_empty_update_inserts_only_absent_rows(database: Database) -> None:
    with database.session() as session:
        upsert(session, WorkUnitRecord, _unit_rows(["a", "b"], status="done", tries=1), key=KEY)
    before = _units(database)
    with database.session() as session:
        rows = _unit_rows(["b", "c"], status="failed", tries=9, checksum="x")
        upsert(session, WorkUnitRecord, rows, key=KEY, update=())
    after = _units(database)
    assert after[("test", "a")] == before[("test", "a")]
    assert after[("test", "b")] == before[("test", "b")]  # existed: left as it was
    assert (after[("test", "b")].status, after[("test", "b")].tries) == ("done", 1)
    new = after[("test", "c")]
    assert (new.status, new.tries, new.checksum) == ("failed", 9, "x")
    assert len(after) == 3


def test_upsert_updates_only_listed_columns(database: Database) -> None:
    with database.session() as session:
        rows = _unit_rows(["a", "b"], status="pending", tries=1, checksum="old")
        upsert(session, WorkUnitRecord, rows, key=KEY)
    before = _units(database)
    with database.session() as session:
        rows = _unit_rows(["a", "c"], status="running", tries=7, checksum="new")
        upsert(session, WorkUnitRecord, rows, key=KEY, update=["status"])
    after = _units(database)
    a = after[("test", "a")]
    assert a.id == before[("test", "a")].id
    assert (a.status, a.tries, a.checksum) == ("running", 1, "old")  # only status changed
    assert after[("test", "b")] == before[("test", "b")]
    c = after[("test", "c")]  # inserted rows get every given column
    assert (c.status, c.tries, c.checksum) == ("running", 7, "new")


def test_upsert_more_rows_than_one_chunk(database: Database) -> None:
    count = 1203
    assert count > 2 * _UPSERT_CHUNK  # at least three chunks
    keys = [f"unit-{i:05d}" for i in range(count)]
    with database.session() as session:
        upsert(session, WorkUnitRecord, _unit_rows(keys, tries=1), key=KEY)
    first = _units(database)
    assert sorted(k for _, k in first) == keys
    assert {r.tries for r in first.values()} == {1}
    assert len({r.id for r in first.values()}) == count

    # Update every existing row and add some new ones, in one transaction.
    extra = [f"unit-{i:05d}" for i in range(count, count + 10)]
    with database.session() as session:
        upsert(session, WorkUnitRecord, _unit_rows(keys + extra, tries=2), key=KEY)
    second = _units(database)
    assert len(second) == count + 10
    assert {r.tries for r in second.values()} == {2}
    assert all(second[k].id == row.id for k, row in first.items())


def test_upsert_empty_rows_is_a_no_op(database: Database) -> None:
    with database.session() as session:
        upsert(session, WorkUnitRecord, [], key=KEY)
    assert _units(database) == {}
    with database.session() as session:
        upsert(session, WorkUnitRecord, _unit_rows(["a"]), key=KEY)
    before = _units(database)
    with database.session() as session:
        upsert(session, WorkUnitRecord, [], key=KEY)
        upsert(session, WorkUnitRecord, [], key=KEY, update=())
    assert _units(database) == before


def test_upsert_refuses_duplicate_keys_on_every_dialect(database: Database) -> None:
    rows = _unit_rows(["a", "b", "a"])
    with pytest.raises(ValueError, match="duplicate keys"), database.session() as session:
        upsert(session, WorkUnitRecord, rows, key=KEY)
    assert _units(database) == {}


def test_upsert_on_a_plain_table(database: Database) -> None:
    metadata = sa.MetaData()
    table = sa.Table(
        "pp_upsert_probe",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("value", sa.String(64)),
        sa.Column("note", sa.String(64)),
        sa.UniqueConstraint("name", "version"),
    )
    metadata.create_all(database.engine)
    try:
        with database.session() as session:
            rows = [
                {"name": "x", "version": 1, "value": "x1", "note": "n"},
                {"name": "x", "version": 2, "value": "x2", "note": "n"},
            ]
            upsert(session, table, rows, key=("name", "version"))
        with database.session() as session:
            rows = [
                {"name": "x", "version": 2, "value": "x2-new", "note": "m"},
                {"name": "y", "version": 1, "value": "y1", "note": "m"},
            ]
            upsert(session, table, rows, key=("name", "version"))
            result = session.execute(
                sa.select(table.c.name, table.c.version, table.c.value, table.c.note).order_by(
                    table.c.name, table.c.version
                )
            ).all()
        assert [tuple(r) for r in result] == [
            ("x", 1, "x1", "n"),
            ("x", 2, "x2-new", "m"),  # default update: every non-key column given
            ("y", 1, "y1", "m"),
        ]
    finally:
        metadata.drop_all(database.engine)


# --- UTCDateTime --------------------------------------------------------------------------------


def test_aware_datetime_round_trips_as_utc_with_microseconds(database: Database) -> None:
    local = timezone(timedelta(hours=-3, minutes=-30))
    value = datetime(2024, 12, 31, 23, 59, 59, 987654, tzinfo=local)
    expected_utc = datetime(2025, 1, 1, 3, 29, 59, 987654, tzinfo=UTC)
    with database.session() as session:
        session.add(WorkUnitRecord(kind="t", key="aware", status="p", tries=0, created=value))
    with database.session() as session:
        loaded = session.scalar(sa.select(WorkUnitRecord.created))
        raw = session.scalar(sa.select(sa.type_coerce(WorkUnitRecord.created, sa.DateTime())))
        found = session.scalar(sa.select(WorkUnitRecord.key).where(WorkUnitRecord.created == value))
        started = session.scalar(sa.select(WorkUnitRecord.started))
    assert loaded == value  # the same instant
    assert loaded.tzinfo is UTC
    assert loaded.microsecond == 987654
    assert (loaded.date(), loaded.time()) == (expected_utc.date(), expected_utc.time())
    assert raw == datetime(2025, 1, 1, 3, 29, 59, 987654)  # stored as naive UTC
    assert found == "aware"  # bound parameters are converted too
    assert started is None
    if database.dialect in ("mysql", "mariadb"):
        column = {c["name"]: c for c in sa.inspect(database.engine).get_columns("work_unit")}
        assert column["created"]["type"].fsp == 6


def test_naive_datetime_is_taken_as_utc(database: Database) -> None:
    naive = datetime(2024, 6, 1, 12, 0, 0, 1)
    with database.session() as session:
        session.add(
            WorkUnitRecord(kind="t", key="naive", status="p", tries=0, created=naive, started=naive)
        )
    with database.session() as session:
        created, started = session.execute(
            sa.select(WorkUnitRecord.created, WorkUnitRecord.started)
        ).one()
    assert created == started == datetime(2024, 6, 1, 12, 0, 0, 1, tzinfo=UTC)
    assert created.tzinfo is UTC
    now = utcnow()
    assert now.tzinfo is UTC
    assert abs(now - datetime.now(UTC)) < timedelta(seconds=5)


# --- SQLite specifics ---------------------------------------------------------------------------


@pytest.mark.parametrize("busy_timeout", [30.0, 1.5])
def test_sqlite_pragmas(
    tmp_path: Path, make_database: Callable[..., Database], busy_timeout: float
) -> None:
    database = make_database(f"sqlite:///{tmp_path / 'p.db'}", busy_timeout=busy_timeout)
    assert database.sqlite_path == tmp_path / "p.db"
    with database.session() as session:
        pragmas = {
            name: session.execute(sa.text(f"PRAGMA {name}")).scalar_one()
            for name in ("journal_mode", "foreign_keys", "busy_timeout")
        }
    assert pragmas == {
        "journal_mode": "wal",
        "foreign_keys": 1,
        "busy_timeout": int(busy_timeout * 1000),
    }
    with database.connect() as conn:  # every connection of the pool is configured
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one() == busy_timeout * 1000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1


def test_sqlite_session_holds_the_write_lock(
    tmp_path: Path, make_database: Callable[..., Database]
) -> None:
    url = f"sqlite:///{tmp_path / 'lock.db'}"
    first = make_database(url)
    first.upgrade()
    second = make_database(url, busy_timeout=0.2)
    second.ensure_schema()  # so that what fails below is the session's own BEGIN IMMEDIATE

    with first.session() as held:  # has done nothing yet
        start = time.monotonic()
        with (
            # one line naming the database (issue 19), the driver's reason kept
            pytest.raises(DatabaseError, match=r"^database sqlite:///.*: database is locked$"),
            second.session() as session,
        ):
            session.add(_new_unit("second-too-early"))
        waited = time.monotonic() - start
        assert 0.15 < waited < 5  # waited for its busy timeout, not for ever
        held.add(_new_unit("first"))

    with second.session() as session:
        session.add(_new_unit("second"))
    assert set(_units(first)) == {("test", "first"), ("test", "second")}


# --- fork safety and pickling -------------------------------------------------------------------


def _use_in_forked_child(database: Database, queue: Any) -> None:
    fresh = database._engine is None  # the parent's engine was forgotten at fork
    with database.session() as session:
        count = session.scalar(sa.select(sa.func.count()).select_from(WorkUnitRecord))
        connection_id = _server_connection_id(session, database.dialect)
        session.add(_new_unit("child"))
    database.dispose()
    queue.put((fresh, count, connection_id))


def test_database_works_in_forked_child_and_parent(database: Database) -> None:
    with database.session() as session:
        session.add(_new_unit("parent"))
    with database.engine.connect() as conn:  # a connection the parent holds across the fork
        parent_id = _server_connection_id(conn, database.dialect)
        conn.commit()
        context = multiprocessing.get_context("fork")
        queue = context.Queue()
        process = context.Process(target=_use_in_forked_child, args=(database, queue))
        process.start()
        try:
            fresh, count, child_id = queue.get(timeout=60)
        finally:
            process.join(60)
            queue.close()
        assert process.exitcode == 0
        process.close()
        assert fresh
        assert count == 1
        if parent_id is not None:
            assert child_id != parent_id
        # The parent's connection was not disturbed by the child.
        assert _server_connection_id(conn, database.dialect) == parent_id
        assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1
        conn.commit()
    assert set(_units(database)) == {("test", "parent"), ("test", "child")}
    assert database._pid == os.getpid()


def test_database_pickles(database: Database) -> None:
    with database.session() as session:
        session.add(_new_unit("parent"))
    engine = database.engine  # created and in use
    copy = pickle.loads(pickle.dumps(database))
    try:
        assert (copy.url, copy.busy_timeout, copy.auto_upgrade) == (
            database.url,
            database.busy_timeout,
            database.auto_upgrade,
        )
        assert copy.engine is not engine
        assert list(_units(copy)) == [("test", "parent")]
        with copy.session() as session:
            session.add(_new_unit("copy"))
    finally:
        copy.dispose()
    assert database.engine is engine
    assert set(_units(database)) == {("test", "parent"), ("test", "copy")}


# --- errors -------------------------------------------------------------------------------------

UNREACHABLE = [
    "postgresql+psycopg://postgres:secret@127.0.0.1:1/test",
    "mysql+pymysql://root:secret@127.0.0.1:1/test",
]


def _session_once(database: Database) -> None:
    with database.session():
        pass


@pytest.mark.parametrize("url", UNREACHABLE)
@pytest.mark.parametrize(
    "operation",
    [
        Database.check_connection,
        Database.current_revision,
        Database.upgrade,
        Database.ensure_schema,
        _session_once,
    ],
    ids=["check_connection", "current_revision", "upgrade", "ensure_schema", "session"],
)
def test_unreachable_server(
    url: str, operation: Callable[[Database], Any], make_database: Callable[..., Database]
) -> None:
    database = make_database(url)
    with pytest.raises(DatabaseError) as info:
        operation(database)
    message = str(info.value)
    assert "secret" not in message
    assert "***" in message
    assert masked_url(url) in message
    assert masked_url(url) == url.replace(":secret@", ":***@")
    assert "refused" in message.lower()
    assert info.value.exit_code == EXIT_USAGE


@pytest.mark.parametrize(
    "dialect",
    [
        pytest.param("postgresql", marks=pytest.mark.postgres),
        pytest.param("mysql", marks=pytest.mark.mysql),
    ],
)
def test_missing_database_on_reachable_server(
    dialect: str, make_database: Callable[..., Database]
) -> None:
    env = {"postgresql": "PHOTONPIPE_TEST_POSTGRES_URL", "mysql": "PHOTONPIPE_TEST_MYSQL_URL"}
    base = os.environ.get(env[dialect])
    if not base:
        pytest.skip(f"{env[dialect]} is not set")
    url = make_url(base).set(database="pp_no_such_database").render_as_string(False)
    database = make_database(url)
    with pytest.raises(DatabaseError, match="pp_no_such_database") as info:
        database.check_connection()
    assert masked_url(url) in str(info.value)


def test_sqlite_missing_directory(tmp_path: Path, make_database: Callable[..., Database]) -> None:
    missing = tmp_path / "missing" / "sub"
    database = make_database(f"sqlite:///{missing / 'photonpipe.db'}")
    with pytest.raises(DatabaseError) as info:
        database.check_connection()
    assert str(missing) in str(info.value)
    assert "does not exist" in str(info.value)
    with pytest.raises(DatabaseError, match="does not exist"):
        _session_once(database)
    assert not missing.exists()  # nothing was created


@pytest.mark.parametrize(
    "url", ["not a url", "", "postgresql+psycopg://user:secret@host:notaport/db"]
)
def test_malformed_url(url: str) -> None:
    with pytest.raises(DatabaseError, match="not a valid SQLAlchemy URL") as info:
        Database(url)
    assert "secret" not in str(info.value)
    assert info.value.exit_code == EXIT_USAGE


@pytest.mark.parametrize(
    ("url", "module", "mentioned"),
    [
        ("oracle+cx_oracle://u:secret@h/db", "cx_Oracle", "cx_Oracle"),
        ("postgresql+nosuchdriver://u:secret@h/db", None, "nosuchdriver"),
    ],
)
def test_driver_not_installed(
    url: str, module: str | None, mentioned: str, make_database: Callable[..., Database]
) -> None:
    if module is not None and importlib.util.find_spec(module) is not None:
        pytest.skip(f"{module} is installed here")
    database = make_database(url)
    with pytest.raises(DatabaseError, match="driver not installed") as info:
        database.check_connection()
    message = str(info.value)
    assert mentioned in message
    assert masked_url(url) in message
    assert "secret" not in message


# --- masked_url ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "postgresql+psycopg://user:secret@db.example.org:5432/pp",
            "postgresql+psycopg://user:***@db.example.org:5432/pp",
        ),
        ("mysql+pymysql://root:s%40cr%2Fet@127.0.0.1/pp", "mysql+pymysql://root:***@127.0.0.1/pp"),
        ("postgresql://user@host/pp", "postgresql://user@host/pp"),
        ("sqlite:////data/archive/photonpipe.db", "sqlite:////data/archive/photonpipe.db"),
        ("not a url", "not a url"),
        ("postgresql://user:secret@host:notaport/pp", "postgresql://user:***@host:notaport/pp"),
    ],
)
def test_masked_url(url: str, expected: str) -> None:
    assert masked_url(url) == expected


def test_repr_masks_password() -> None:
    database = Database("postgresql+psycopg://user:secret@host/pp")
    assert repr(database) == "Database('postgresql+psycopg://user:***@host/pp')"
