"""The migrations create exactly the tables the ORM models describe, on every dialect.

Every module named ``models`` in the photonpipe package (each application keeps its tables in
one) and the ledger are imported, so a model added without its migration, or a migration that
differs from its model, fails here.
"""

from __future__ import annotations

import importlib
import pkgutil

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import photonpipe
from photonpipe.platform.db import Base, Database


def import_all_models() -> list[str]:
    names = ["photonpipe.platform.ledger"]
    for info in pkgutil.walk_packages(photonpipe.__path__, "photonpipe."):
        if info.name.rsplit(".", 1)[-1] == "models":
            names.append(info.name)
    for name in names:
        importlib.import_module(name)
    return names


def test_migrations_match_models(database: Database) -> None:
    import_all_models()
    assert "work_unit" in Base.metadata.tables
    with database.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []
