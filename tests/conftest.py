"""Shared fixtures: settings isolated from the developer's environment, and databases.

``database_url`` is parametrised over SQLite, PostgreSQL and MariaDB/MySQL. The server-backed
variants read ``PHOTONPIPE_TEST_POSTGRES_URL`` / ``PHOTONPIPE_TEST_MYSQL_URL``: when the variable
is unset they are skipped; when it is set, each test gets a freshly created database on that
server (dropped afterwards), and a server that does not answer fails the test.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from photonpipe.platform.db import Database

SERVER_ENV = {
    "postgresql": "PHOTONPIPE_TEST_POSTGRES_URL",
    "mysql": "PHOTONPIPE_TEST_MYSQL_URL",
}


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No developer settings leak into a test: clean PHOTONPIPE_* and a scratch cwd."""
    for var in list(os.environ):
        if var.startswith("PHOTONPIPE_") and not var.startswith("PHOTONPIPE_TEST_"):
            monkeypatch.delenv(var)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)


@pytest.fixture(autouse=True)
def _reset_photonpipe_logging() -> Iterator[None]:
    """Each test starts with the photonpipe logger as the library leaves it: no handler."""
    yield
    logger = logging.getLogger("photonpipe")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    logger.setLevel(logging.NOTSET)
    logger.propagate = True


def _server_url(dialect: str) -> str:
    url = os.environ.get(SERVER_ENV[dialect])
    if not url:
        pytest.skip(f"{SERVER_ENV[dialect]} is not set")
    return url


@pytest.fixture(scope="session")
def _server_engines() -> Iterator[dict[str, sa.Engine]]:
    engines: dict[str, sa.Engine] = {}
    yield engines
    for engine in engines.values():
        engine.dispose()


def create_scratch_database(dialect: str, engines: dict[str, sa.Engine]) -> tuple[str, str]:
    """Create an empty database on the test server; return (its URL, its name)."""
    base = _server_url(dialect)
    if dialect not in engines:
        engines[dialect] = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    name = f"pp_test_{uuid.uuid4().hex[:12]}"
    # A server that does not answer raises here: the test fails, it is not skipped.
    with engines[dialect].connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    return make_url(base).set(database=name).render_as_string(hide_password=False), name


def drop_scratch_database(dialect: str, name: str, engines: dict[str, sa.Engine]) -> None:
    """Drop a database made by :func:`create_scratch_database`."""
    drop = f"DROP DATABASE {name}" + (" WITH (FORCE)" if dialect == "postgresql" else "")
    with engines[dialect].connect() as conn:
        conn.execute(sa.text(drop))


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgres),
        pytest.param("mysql", marks=pytest.mark.mysql),
    ]
)
def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, _server_engines: dict[str, sa.Engine]
) -> Iterator[str]:
    """URL of an empty database of each dialect."""
    dialect = request.param
    if dialect == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    url, name = create_scratch_database(dialect, _server_engines)
    try:
        yield url
    finally:
        for database in list(_DATABASES_TO_DISPOSE):
            database.dispose()
        _DATABASES_TO_DISPOSE.clear()
        drop_scratch_database(dialect, name, _server_engines)


_DATABASES_TO_DISPOSE: list[Database] = []


@pytest.fixture
def database(database_url: str) -> Database:
    """A migrated database of each dialect."""
    db = Database(database_url)
    db.upgrade()
    _DATABASES_TO_DISPOSE.append(db)
    return db


@pytest.fixture
def sqlite_database(tmp_path: Path) -> Database:
    """A migrated SQLite database (for tests that are about the ledger logic, not dialects)."""
    db = Database(f"sqlite:///{tmp_path / 'ledger.db'}")
    db.upgrade()
    return db
