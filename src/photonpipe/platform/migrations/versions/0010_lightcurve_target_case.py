"""Light curves: target names compared case-sensitively on MariaDB and MySQL.

Revision ID: 0010_lightcurve_target_case
Revises: 0009_echelle_rejected_messages
Create Date: 2026-12-07

MariaDB and MySQL compare text with the database's default collation, case-insensitively
(``utf8mb4_general_ci``): there ``ABC`` and ``abc``, two targets to photonpipe, were one key of
``target_token`` (the second's token was never stored, and registering it failed) and one
target in every query of ``metadata``, ``stats`` and ``composite``. The target-name columns get
the binary collation ``utf8mb4_bin``. SQLite and PostgreSQL compare text case-sensitively
already; nothing changes there.
"""

from collections.abc import Sequence

from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0010_lightcurve_target_case"
down_revision: str | None = "0009_echelle_rejected_messages"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: (table, column, nullable) of every column holding a target name.
COLUMNS = (
    ("metadata", "targname", True),
    ("metadata", "target", False),
    ("stats", "target", False),
    ("target_alias", "canonical", False),
    ("target_token", "target", False),
    ("composite", "target", False),
)


def _alter(collation: str | None) -> None:
    if op.get_bind().dialect.name not in ("mysql", "mariadb"):
        return
    for table, column, nullable in COLUMNS:
        op.alter_column(
            table,
            column,
            type_=mysql.VARCHAR(128, charset="utf8mb4", collation=collation),
            existing_nullable=nullable,
        )


def upgrade() -> None:
    """Give the target-name columns the binary collation (MariaDB and MySQL only)."""
    _alter("utf8mb4_bin")


def downgrade() -> None:
    """Give them back the case-insensitive default collation (MariaDB and MySQL only)."""
    _alter("utf8mb4_general_ci")
