"""Platform: the work-unit ledger.

Revision ID: 0001_work_unit_ledger
Revises:
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from photonpipe.platform.db import UTCDateTime

revision: str = "0001_work_unit_ledger"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create table ``work_unit``."""
    op.create_table(
        "work_unit",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("key", sa.String(512), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("tries", sa.Integer(), nullable=False),
        sa.Column("checksum", sa.String(128), nullable=True),
        sa.Column("done_checksum", sa.String(128), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("owner", sa.String(255), nullable=True),
        sa.Column("created", UTCDateTime(), nullable=False),
        sa.Column("started", UTCDateTime(), nullable=True),
        sa.Column("finished", UTCDateTime(), nullable=True),
        sa.Column("heartbeat", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_work_unit")),
        sa.UniqueConstraint("kind", "key", name=op.f("uq_work_unit_kind_key")),
    )
    op.create_index(op.f("ix_work_unit_status"), "work_unit", ["status"])


def downgrade() -> None:
    """Drop table ``work_unit``."""
    op.drop_index(op.f("ix_work_unit_status"), table_name="work_unit")
    op.drop_table("work_unit")
