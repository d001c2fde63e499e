"""Echelle: master calibration records.

Revision ID: 0003_echelle_calibrations
Revises: 0002_lightcurve_archive
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from photonpipe.platform.db import UTCDateTime

revision: str = "0003_echelle_calibrations"
down_revision: str | None = "0002_lightcurve_archive"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create table ``echelle_calibration``."""
    op.create_table(
        "echelle_calibration",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("site", sa.String(8), nullable=False),
        sa.Column("instrument", sa.String(16), nullable=False),
        sa.Column("camera", sa.String(16), nullable=False),
        sa.Column("fibres_lit", sa.String(8), nullable=False),
        sa.Column("dateobs", UTCDateTime(), nullable=False),
        sa.Column("valid_from", UTCDateTime(), nullable=False),
        sa.Column("valid_to", UTCDateTime(), nullable=False),
        sa.Column("path", sa.String(512), nullable=False),
        sa.Column("n_frames", sa.Integer(), nullable=False),
        sa.Column("is_bad", sa.Boolean(), nullable=False),
        sa.Column("created", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_echelle_calibration")),
        sa.UniqueConstraint("path", name=op.f("uq_echelle_calibration_path")),
    )
    op.create_index(
        "ix_echelle_calibration_lookup",
        "echelle_calibration",
        ["instrument", "type", "fibres_lit", "dateobs"],
    )


def downgrade() -> None:
    """Drop table ``echelle_calibration``."""
    op.drop_index("ix_echelle_calibration_lookup", table_name="echelle_calibration")
    op.drop_table("echelle_calibration")
