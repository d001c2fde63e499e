"""Light curves: the period search's result in words (``stats.period_verdict``).

Revision ID: 0006_lightcurve_period_verdict
Revises: 0005_echelle_rv
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_lightcurve_period_verdict"
down_revision: str | None = "0005_echelle_rv"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``stats.period_verdict`` ("no significant period" for existing rows)."""
    with op.batch_alter_table("stats") as batch:
        batch.add_column(
            sa.Column(
                "period_verdict",
                sa.String(64),
                nullable=False,
                server_default="no significant period",
            )
        )
    # rows written by the white-noise test: say so instead of vouching for their period
    op.execute(
        "UPDATE stats SET period_verdict = 'not assessed: ingested before the red-noise test' "
        "WHERE periodogram"
    )


def downgrade() -> None:
    """Drop ``stats.period_verdict``."""
    with op.batch_alter_table("stats") as batch:
        batch.drop_column("period_verdict")
