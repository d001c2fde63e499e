"""Echelle operations: processed-file table.

Revision ID: 0004_echelle_operations
Revises: 0003_echelle_calibrations
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from photonpipe.platform.db import UTCDateTime

revision: str = "0004_echelle_operations"
down_revision: str | None = "0003_echelle_calibrations"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create table ``echelle_processed_file``."""
    op.create_table(
        "echelle_processed_file",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("filename", sa.String(512), nullable=False),
        sa.Column("checksum", sa.String(32), nullable=False),
        sa.Column("frame_id", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("success", sa.Boolean(), nullable=False),
        sa.Column("tries", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("frame_type", sa.String(16), nullable=True),
        sa.Column("created", UTCDateTime(), nullable=False),
        sa.Column("started", UTCDateTime(), nullable=True),
        sa.Column("finished", UTCDateTime(), nullable=True),
        sa.Column("duration", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_echelle_processed_file")),
        sa.UniqueConstraint("filename", name=op.f("uq_echelle_processed_file_filename")),
    )
    op.create_index(op.f("ix_echelle_processed_file_status"), "echelle_processed_file", ["status"])


def downgrade() -> None:
    """Drop table ``echelle_processed_file``."""
    op.drop_index(op.f("ix_echelle_processed_file_status"), table_name="echelle_processed_file")
    op.drop_table("echelle_processed_file")
