"""Echelle operations: rejected messages in the processed-file table.

Revision ID: 0009_echelle_rejected_messages
Revises: 0008_lightcurve_target_token
Create Date: 2026-12-04

Adds ``echelle_processed_file.message``: the start of the body of a message that the listener
or a worker rejected (status ``rejected``, or ``failed`` after a worker's retries).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_echelle_rejected_messages"
down_revision: str | None = "0008_lightcurve_target_token"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add column ``echelle_processed_file.message``."""
    op.add_column("echelle_processed_file", sa.Column("message", sa.Text(), nullable=True))


def downgrade() -> None:
    """Drop column ``echelle_processed_file.message``."""
    with op.batch_alter_table("echelle_processed_file") as batch:
        batch.drop_column("message")
