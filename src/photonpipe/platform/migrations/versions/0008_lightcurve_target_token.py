"""Light curves: the directory and HLSP name of each canonical target (table ``target_token``).

Revision ID: 0008_lightcurve_target_token
Revises: 0007_ledger_deaths
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_lightcurve_target_token"
down_revision: str | None = "0007_ledger_deaths"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create table ``target_token`` (target, directory and HLSP name each unique)."""
    op.create_table(
        "target_token",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("target", sa.String(128), nullable=False),
        sa.Column("directory", sa.String(64), nullable=False),
        sa.Column("hlsp", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_target_token")),
        sa.UniqueConstraint("target", name=op.f("uq_target_token_target")),
        sa.UniqueConstraint("directory", name=op.f("uq_target_token_directory")),
        sa.UniqueConstraint("hlsp", name=op.f("uq_target_token_hlsp")),
    )


def downgrade() -> None:
    """Drop table ``target_token``."""
    op.drop_table("target_token")
