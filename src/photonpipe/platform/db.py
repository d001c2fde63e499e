"""Database access: one SQLAlchemy 2 metadata for every application, migrations, upserts.

SQLite (a file in the archive root) is the embedded default; the same code runs on PostgreSQL
(psycopg) and MariaDB/MySQL (PyMySQL). Choices that keep behaviour identical across them:

* SQLite runs in WAL mode with a busy timeout and foreign keys on, and every transaction is
  started with ``BEGIN IMMEDIATE`` so that concurrent writers queue on the busy timeout instead
  of failing with "database is locked" when a read transaction tries to become a write one.
* Timestamps are stored as UTC without a zone (:class:`UTCDateTime`; microseconds kept on
  MySQL) and come back as timezone-aware UTC datetimes.
* Schema changes go through Alembic only (``migrations/``, batch mode for SQLite). The schema is
  brought up to date automatically the first time a :class:`Database` is used, under a
  cross-process lock so that two processes starting at once do not both migrate.
* Engines are created lazily in the process that uses them and discarded in a forked child,
  so a :class:`Database` object is safe to hand to a process pool.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import sqlite3
import time
import weakref
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from photonpipe.errors import EXIT_FAILED, DatabaseError

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_MIGRATION_LOCK_ID = 0x70686F74  # "phot": advisory lock key on PostgreSQL
_UPSERT_CHUNK = 500

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base of every photonpipe table (one metadata for all applications)."""

    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """A timestamp stored as naive UTC and returned as an aware UTC datetime.

    Naive datetimes given to it are taken to be UTC already.
    """

    impl = sa.DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[Any]:
        """Use ``DATETIME(6)`` on MariaDB/MySQL so that microseconds are kept."""
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(sa.DateTime())

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        """Convert to naive UTC for storage."""
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        """Mark stored values as UTC."""
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


def utcnow() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.now(UTC)


def masked_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***`` (safe to print)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        # Unparseable (e.g. a non-numeric port): still hide whatever looks like a password.
        return re.sub(r"(://[^:/@]*:).*@", r"\1***@", url, count=1)


_DATABASES: weakref.WeakSet[Database] = weakref.WeakSet()


def _forget_engines_after_fork() -> None:
    for database in list(_DATABASES):
        database._after_fork()


os.register_at_fork(after_in_child=_forget_engines_after_fork)


class Database:
    """A database photonpipe writes to, with its schema kept at the newest migration.

    Parameters
    ----------
    url : str
        SQLAlchemy URL, e.g. ``sqlite:////data/archive/photonpipe.db``,
        ``postgresql+psycopg://user@host/db`` or ``mysql+pymysql://user@host/db``.
    echo : bool
        Log every SQL statement.
    busy_timeout : float
        SQLite only: how long a writer waits for the lock [s].
    auto_upgrade : bool
        Apply pending migrations on first use.
    """

    def __init__(
        self, url: str, *, echo: bool = False, busy_timeout: float = 30.0, auto_upgrade: bool = True
    ) -> None:
        try:
            self._url = make_url(url)
        except (ArgumentError, ValueError):
            raise DatabaseError(
                f"database URL {masked_url(url)!r} is not a valid SQLAlchemy URL"
            ) from None
        self.url = url
        self.echo = echo
        self.busy_timeout = busy_timeout
        self.auto_upgrade = auto_upgrade
        self._engine: Engine | None = None
        self._pid: int | None = None
        self._sessionmaker: sessionmaker[Session] | None = None
        self._schema_checked = False
        _DATABASES.add(self)

    @classmethod
    def from_settings(cls, settings: Any, *, auto_upgrade: bool = True) -> Database:
        """Create the database named by the settings (``database.url`` or the SQLite default).

        Parameters
        ----------
        settings : photonpipe.platform.config.Settings
            Effective settings.
        auto_upgrade : bool
            Apply pending migrations on first use.
        """
        return cls(
            settings.database_url,
            echo=settings["database.echo"],
            busy_timeout=settings["database.busy_timeout"],
            auto_upgrade=auto_upgrade,
        )

    def __repr__(self) -> str:
        return f"Database({masked_url(self.url)!r})"

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.update(_engine=None, _pid=None, _sessionmaker=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        _DATABASES.add(self)

    @property
    def dialect(self) -> str:
        """Dialect name: ``sqlite``, ``postgresql``, ``mysql`` or ``mariadb``."""
        return self._url.get_backend_name()

    @property
    def sqlite_path(self) -> Path | None:
        """Path of the SQLite database file (None for other dialects or in-memory)."""
        if self.dialect != "sqlite" or self._url.database in (None, "", ":memory:"):
            return None
        return Path(self._url.database)

    def _after_fork(self) -> None:
        if self._engine is not None:
            self._engine.dispose(close=False)
        self._engine = None
        self._sessionmaker = None
        self._pid = None

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine of this process (created on first use)."""
        if self._engine is None or self._pid != os.getpid():
            self._engine = self._create_engine()
            self._pid = os.getpid()
            self._sessionmaker = sessionmaker(self._engine, expire_on_commit=False)
        return self._engine

    def _create_engine(self) -> Engine:
        kwargs: dict[str, Any] = {"echo": self.echo, "future": True}
        if self.dialect == "sqlite":
            kwargs["connect_args"] = {"timeout": self.busy_timeout}
            path = self.sqlite_path
            if path is not None and not path.parent.is_dir():
                raise DatabaseError(
                    f"database {masked_url(self.url)}: directory {path.parent} does not exist"
                )
        else:
            kwargs["pool_pre_ping"] = True
        try:
            engine = sa.create_engine(self._url, **kwargs)
        except (NoSuchModuleError, ImportError) as exc:
            raise DatabaseError(
                f"database {masked_url(self.url)}: driver not installed ({exc}); install the "
                "photonpipe extra for it: postgres or mysql"
            ) from None
        if self.dialect == "sqlite":
            _configure_sqlite(engine, self.busy_timeout)
        return engine

    @contextlib.contextmanager
    def _unreachable_as_database_error(self) -> Iterator[None]:
        """Turn failures of the outside world inside the block into :class:`DatabaseError`.

        "Cannot connect" (exit code 2), a full disk, a read-only file or file system, a lock
        not granted in time or a connection lost mid-work: one line naming the (password-
        masked) URL and the driver's reason. Full, locked and lost are failed work (exit 1: a
        re-run resumes); read-only is the setup's (exit 2).
        """
        try:
            yield
        except OperationalError as exc:
            if _is_connection_failure(exc):
                raise DatabaseError(
                    f"cannot connect to database {masked_url(self.url)}: {_first_line(exc)}"
                ) from None
            text = _first_line(exc)
            lowered = text.lower()
            if any(m in lowered for m in _READ_ONLY_MESSAGES):
                raise DatabaseError(
                    f"cannot write to database {masked_url(self.url)}: {text}"
                ) from None
            if any(m in lowered for m in _FAILED_WORK_MESSAGES):
                error = DatabaseError(f"database {masked_url(self.url)}: {text}")
                error.exit_code = EXIT_FAILED
                raise error from None
            raise

    @contextlib.contextmanager
    def connect(self) -> Iterator[Connection]:
        """Yield a connection, turning connection failures into :class:`DatabaseError`."""
        with self._unreachable_as_database_error(), self.engine.connect() as conn:
            yield conn

    def check_connection(self) -> None:
        """Connect once and run ``SELECT 1``.

        Raises
        ------
        DatabaseError
            The server does not answer, refuses the credentials, or the file cannot be opened;
            the message names the (password-masked) URL.
        """
        with self.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """Yield an ORM session in a transaction: committed on success, rolled back on error."""
        if self.auto_upgrade and not self._schema_checked:
            self.ensure_schema()
        _ = self.engine  # creates the sessionmaker of this process too
        assert self._sessionmaker is not None
        with (
            self._unreachable_as_database_error(),
            self._sessionmaker() as session,
            session.begin(),
        ):
            # Begin now, not at the first statement: on SQLite this takes the write lock
            # (BEGIN IMMEDIATE) for the whole transaction, as documented above.
            session.connection()
            yield session

    def dispose(self) -> None:
        """Close every pooled connection of this process."""
        if self._engine is not None and self._pid == os.getpid():
            self._engine.dispose()
        self._engine = None
        self._sessionmaker = None

    # --- migrations -------------------------------------------------------------------------

    def _alembic_config(self, connection: Connection) -> Any:
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        cfg.attributes["connection"] = connection
        return cfg

    def head_revision(self) -> str | None:
        """Newest migration revision shipped with this photonpipe."""
        from alembic.script import ScriptDirectory

        return ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()

    def current_revision(self) -> str | None:
        """Migration revision the database is at (None for an empty database)."""
        from alembic.runtime.migration import MigrationContext

        with self.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def pending_revisions(self) -> list[str]:
        """Revisions not yet applied, oldest first."""
        from alembic.script import ScriptDirectory

        script = ScriptDirectory(str(MIGRATIONS_DIR))
        current = self.current_revision()
        revisions = [r.revision for r in script.iterate_revisions("head", current)]
        return list(reversed(revisions))

    def upgrade(self, revision: str = "head") -> None:
        """Apply migrations up to ``revision`` under a cross-process lock.

        Raises
        ------
        DatabaseError
            The database cannot be reached or a migration fails.
        """
        from alembic import command

        with self._migration_lock():
            try:
                with self._unreachable_as_database_error(), self.engine.begin() as conn:
                    command.upgrade(self._alembic_config(conn), revision)
            except OperationalError as exc:
                raise DatabaseError(
                    f"migration of {masked_url(self.url)} failed: {_first_line(exc)}"
                ) from exc
        self._schema_checked = True

    def downgrade(self, revision: str) -> None:
        """Revert migrations down to ``revision`` (``base`` removes every table)."""
        from alembic import command

        with self._migration_lock(), self.engine.begin() as conn:
            command.downgrade(self._alembic_config(conn), revision)
        self._schema_checked = False

    def ensure_schema(self) -> None:
        """Apply pending migrations if the database is behind this software's schema."""
        if self.current_revision() != self.head_revision():
            self.upgrade()
        self._schema_checked = True

    @contextlib.contextmanager
    def _migration_lock(self) -> Iterator[None]:
        dialect = self.dialect
        if dialect == "sqlite":
            path = self.sqlite_path
            if path is None:
                yield
                return
            lock_path = path.with_name(path.name + ".migrate.lock")
            with lock_path.open("a") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)
            return
        with self.connect() as conn:
            if dialect == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": _MIGRATION_LOCK_ID})
                unlock = sa.text("SELECT pg_advisory_unlock(:k)")
            elif dialect in ("mysql", "mariadb"):
                got = conn.execute(sa.text("SELECT GET_LOCK('photonpipe_migrate', 300)")).scalar()
                if got != 1:
                    raise DatabaseError(
                        f"database {masked_url(self.url)}: timed out waiting for the migration "
                        "lock (another process is migrating)"
                    )
                unlock = sa.text("SELECT RELEASE_LOCK('photonpipe_migrate')")
            else:
                unlock = None
            conn.commit()
            try:
                yield
            finally:
                if unlock is not None:
                    conn.execute(unlock, {"k": _MIGRATION_LOCK_ID})
                    conn.commit()


def _configure_sqlite(engine: Engine, busy_timeout: float) -> None:
    """WAL, busy timeout, foreign keys, and ``BEGIN IMMEDIATE`` transactions on SQLite."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        cursor.execute("PRAGMA foreign_keys = ON")
        if engine.url.database not in (None, "", ":memory:"):
            _enable_wal(cursor, busy_timeout)
            cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _enable_wal(cursor: Any, busy_timeout: float) -> None:
    """Switch to WAL, retrying for ``busy_timeout`` while another connection holds the lock.

    SQLite skips the busy handler and reports "database is locked" at once when waiting could
    deadlock (two connections promoting their locks together), which happens when several
    processes open a new database at once and each switches it to WAL.
    """
    deadline = time.monotonic() + busy_timeout
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


#: Driver messages of a database that cannot be written (SQLite, PostgreSQL, MariaDB).
_READ_ONLY_MESSAGES = (
    "readonly database",
    "read-only",
    "read only",
)
#: Driver messages of faults of the outside world during work: full disk, lock, lost server.
_FAILED_WORK_MESSAGES = (
    "database or disk is full",
    "disk i/o error",
    "no space left on device",
    "could not extend file",
    "database is locked",
    "lock wait timeout",
    "deadlock",
    "lost connection",
    "server has gone away",
    "server closed the connection",
    "terminating connection",
)


def _is_connection_failure(exc: OperationalError) -> bool:
    text = str(exc.orig if exc.orig is not None else exc).lower()
    markers = (
        "connection refused",
        "could not connect",
        "can't connect",
        "unable to open database file",
        "connection to server",
        "access denied",
        "authentication failed",
        "unknown database",
        "does not exist",
        "name or service not known",
        "timeout expired",
        "lost connection",
    )
    return any(m in text for m in markers)


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def upsert(
    session: Session,
    model: type[Base] | sa.Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    key: Sequence[str],
    update: Sequence[str] | None = None,
) -> None:
    """Insert rows, or update the existing row with the same natural key.

    One helper for every dialect: ``INSERT ... ON CONFLICT (key) DO UPDATE`` on SQLite and
    PostgreSQL, ``INSERT ... ON DUPLICATE KEY UPDATE`` on MariaDB/MySQL.

    Parameters
    ----------
    session : sqlalchemy.orm.Session
        Session in a transaction.
    model : ORM class or Table
        Target table; ``key`` must be covered by a unique constraint or the primary key.
    rows : sequence of mapping
        Column name to value, all rows with the same columns and distinct keys.
    key : sequence of str
        Columns of the natural key.
    update : sequence of str, optional
        Columns overwritten when the row exists; default every given column not in ``key``.
        Empty: existing rows are left as they are (insert-if-absent).

    Raises
    ------
    ValueError
        Two rows have the same key.

    Notes
    -----
    MariaDB/MySQL cannot name the conflicting key: a row that collides with *any* unique
    constraint is updated. Give tables no unique constraint other than the natural key when the
    difference matters.
    """
    if not rows:
        return
    keys = [tuple(row[k] for k in key) for row in rows]
    if len(set(keys)) != len(keys):
        # PostgreSQL refuses to touch one row twice in a statement; SQLite and MySQL would
        # silently keep the last. Refuse everywhere so behaviour does not depend on the dialect.
        raise ValueError(f"upsert into {getattr(model, 'name', model)}: duplicate keys in rows")
    table: sa.Table = model if isinstance(model, sa.Table) else model.__table__  # type: ignore[assignment]
    columns = list(rows[0])
    if update is None:
        update = [c for c in columns if c not in key]
    dialect = session.get_bind().dialect.name
    if dialect in ("sqlite", "postgresql"):
        build = _upsert_on_conflict
    elif dialect in ("mysql", "mariadb"):
        build = _upsert_on_duplicate_key
    else:
        raise DatabaseError(f"upsert is not implemented for the {dialect} dialect")
    for start in range(0, len(rows), _UPSERT_CHUNK):
        chunk = [dict(r) for r in rows[start : start + _UPSERT_CHUNK]]
        session.execute(build(dialect, table, chunk, key, update))


def insert_ignore(
    session: Session, model: type[Base] | sa.Table, rows: Sequence[Mapping[str, Any]]
) -> None:
    """Insert rows; a row that collides with any unique constraint of the table is skipped.

    Unlike ``upsert(..., update=())``, which names the key, this also skips a row whose insert
    meets another transaction's on a second unique constraint (PostgreSQL handles a conflict
    only on the index it is told of and raises ``UniqueViolation`` for the others). Read back
    what is stored to know which rows won.

    Parameters
    ----------
    session : sqlalchemy.orm.Session
        Session in a transaction.
    model : ORM class or Table
        Target table.
    rows : sequence of mapping
        Column name to value, all rows with the same columns.
    """
    if not rows:
        return
    table: sa.Table = model if isinstance(model, sa.Table) else model.__table__  # type: ignore[assignment]
    dialect = session.get_bind().dialect.name
    for start in range(0, len(rows), _UPSERT_CHUNK):
        chunk = [dict(r) for r in rows[start : start + _UPSERT_CHUNK]]
        if dialect in ("sqlite", "postgresql"):
            from sqlalchemy.dialects import postgresql, sqlite

            insert = sqlite.insert if dialect == "sqlite" else postgresql.insert
            session.execute(insert(table).values(chunk).on_conflict_do_nothing())
        elif dialect in ("mysql", "mariadb"):
            # a no-op update: MariaDB skips a row colliding with any unique key (INSERT IGNORE
            # would also turn errors such as over-long values into warnings)
            first = next(iter(chunk[0]))
            stmt = mysql.insert(table).values(chunk)
            session.execute(stmt.on_duplicate_key_update({first: table.c[first]}))
        else:
            raise DatabaseError(f"insert_ignore is not implemented for the {dialect} dialect")


def _upsert_on_conflict(
    dialect: str,
    table: sa.Table,
    chunk: list[dict[str, Any]],
    key: Sequence[str],
    update: Sequence[str],
) -> sa.Executable:
    """``INSERT ... ON CONFLICT (key) DO UPDATE / DO NOTHING`` (SQLite, PostgreSQL)."""
    from sqlalchemy.dialects import postgresql, sqlite

    insert = sqlite.insert if dialect == "sqlite" else postgresql.insert
    stmt = insert(table).values(chunk)
    if not update:
        return stmt.on_conflict_do_nothing(index_elements=list(key))
    return stmt.on_conflict_do_update(
        index_elements=list(key), set_={c: stmt.excluded[c] for c in update}
    )


def _upsert_on_duplicate_key(
    dialect: str,
    table: sa.Table,
    chunk: list[dict[str, Any]],
    key: Sequence[str],
    update: Sequence[str],
) -> sa.Executable:
    """``INSERT ... ON DUPLICATE KEY UPDATE`` (MariaDB, MySQL); a no-op update for none."""
    stmt = mysql.insert(table).values(chunk)
    if not update:
        return stmt.on_duplicate_key_update({key[0]: table.c[key[0]]})
    return stmt.on_duplicate_key_update({c: stmt.inserted[c] for c in update})
