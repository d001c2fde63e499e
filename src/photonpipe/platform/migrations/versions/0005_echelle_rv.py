"""Echelle: targets registry, ZERO templates, radial velocities.

Revision ID: 0005_echelle_rv
Revises: 0004_echelle_operations
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from photonpipe.platform.db import UTCDateTime

revision: str = "0005_echelle_rv"
down_revision: str | None = "0004_echelle_operations"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _floats(*names: str) -> list[sa.Column]:
    return [sa.Column(name, sa.Float(), nullable=True) for name in names]


def upgrade() -> None:
    """Create tables ``echelle_target``, ``echelle_zero`` and ``echelle_rv``."""
    op.create_table(
        "echelle_target",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("ra", sa.Float(), nullable=False),
        sa.Column("dec", sa.Float(), nullable=False),
        *_floats(
            "vmag",
            "bmag",
            "gmag",
            "rmag",
            "imag",
            "jmag",
            "kmag",
            "pmra",
            "pmdec",
            "parallax",
            "rv",
            "teff",
            "logg",
        ),
        sa.Column("zero", sa.String(512), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_echelle_target")),
        sa.UniqueConstraint("name", name=op.f("uq_echelle_target_name")),
    )
    op.create_table(
        "echelle_zero",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("path", sa.String(512), nullable=False),
        sa.Column("navg", sa.Integer(), nullable=False),
        sa.Column("site", sa.String(8), nullable=False),
        sa.Column("instrument", sa.String(16), nullable=False),
        sa.Column("camera", sa.String(16), nullable=False),
        sa.Column("jdate", sa.Float(), nullable=False),
        sa.Column("target", sa.String(64), nullable=False),
        *_floats("teff", "logg", "b_v", "j_k"),
        sa.Column("flags", sa.String(4), nullable=False),
        sa.Column("created", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_echelle_zero")),
        sa.UniqueConstraint("path", name=op.f("uq_echelle_zero_path")),
    )
    op.create_table(
        "echelle_rv",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("spectrum", sa.String(512), nullable=False),
        sa.Column("rawfile", sa.String(128), nullable=False),
        sa.Column("target", sa.String(64), nullable=False),
        sa.Column("site", sa.String(8), nullable=False),
        sa.Column("instrument", sa.String(16), nullable=False),
        sa.Column("exptime", sa.Float(), nullable=False),
        *_floats("bjd", "rv", "rv_error", "barycorr"),
        sa.Column("template", sa.String(512), nullable=True),
        sa.Column("snr", sa.Float(), nullable=True),
        sa.Column("n_blocks", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(256), nullable=True),
        sa.Column("created", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_echelle_rv")),
        sa.UniqueConstraint("spectrum", name=op.f("uq_echelle_rv_spectrum")),
    )
    op.create_index("ix_echelle_rv_target", "echelle_rv", ["target", "bjd"])


def downgrade() -> None:
    """Drop the three tables."""
    op.drop_index("ix_echelle_rv_target", table_name="echelle_rv")
    op.drop_table("echelle_rv")
    op.drop_table("echelle_zero")
    op.drop_table("echelle_target")
