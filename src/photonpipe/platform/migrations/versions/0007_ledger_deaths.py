"""Ledger: deaths of a try recorded apart from failures (``work_unit.deaths``, ``failures``).

A try whose process died (SIGKILL, power loss) is no longer charged against the unit's try limit
as long as no attempt of the unit ever raised; ``deaths`` counts those tries and ``failures`` the
attempts that raised.

Revision ID: 0007_ledger_deaths
Revises: 0006_lightcurve_period_verdict
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_ledger_deaths"
down_revision: str | None = "0006_lightcurve_period_verdict"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``work_unit.deaths`` and ``work_unit.failures`` (0 for existing rows)."""
    with op.batch_alter_table("work_unit") as batch:
        batch.add_column(sa.Column("deaths", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("failures", sa.Integer(), nullable=False, server_default="0"))
    # a failed unit's tries so far are what the old ledger charged it: count them as failures
    op.execute("UPDATE work_unit SET failures = tries WHERE status = 'failed'")


def downgrade() -> None:
    """Drop ``work_unit.deaths`` and ``work_unit.failures``."""
    with op.batch_alter_table("work_unit") as batch:
        batch.drop_column("failures")
        batch.drop_column("deaths")
