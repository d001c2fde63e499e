"""Light curves: the archive tables (metadata, outputs, bad_data, stats, target_alias, composite).

Revision ID: 0002_lightcurve_archive
Revises: 0001_work_unit_ledger
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from photonpipe.platform.db import UTCDateTime

revision: str = "0002_lightcurve_archive"
down_revision: str | None = "0001_work_unit_ledger"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the light-curve archive tables."""
    op.create_table(
        "metadata",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("ingest_date", UTCDateTime(), nullable=False),
        sa.Column("telescop", sa.String(16), nullable=True),
        sa.Column("instrume", sa.String(16), nullable=True),
        sa.Column("targname", sa.String(128), nullable=True),
        sa.Column("cal_ver", sa.String(32), nullable=True),
        sa.Column("obstype", sa.String(32), nullable=True),
        sa.Column("cenwave", sa.Integer(), nullable=True),
        sa.Column("aperture", sa.String(32), nullable=True),
        sa.Column("detector", sa.String(16), nullable=True),
        sa.Column("opt_elem", sa.String(16), nullable=True),
        sa.Column("fppos", sa.Integer(), nullable=True),
        sa.Column("dataset", sa.String(64), nullable=False),
        sa.Column("target", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("expstart", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_metadata")),
        sa.UniqueConstraint("filename", name=op.f("uq_metadata_filename")),
    )
    op.create_index(op.f("ix_metadata_dataset"), "metadata", ["dataset"])
    op.create_index(op.f("ix_metadata_target"), "metadata", ["target"])
    op.create_table(
        "outputs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("metadata_id", sa.Integer(), nullable=False),
        sa.Column("individual_path", sa.String(1024), nullable=True),
        sa.Column("individual_filename", sa.String(255), nullable=True),
        sa.Column("composite_path", sa.String(1024), nullable=True),
        sa.Column("composite_filename", sa.String(255), nullable=True),
        sa.ForeignKeyConstraint(
            ["metadata_id"],
            ["metadata.id"],
            name=op.f("fk_outputs_metadata_id_metadata"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outputs")),
        sa.UniqueConstraint("metadata_id", name=op.f("uq_outputs_metadata_id")),
    )
    op.create_table(
        "bad_data",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("ingest_date", UTCDateTime(), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("dataset", sa.String(64), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bad_data")),
        sa.UniqueConstraint("filename", name=op.f("uq_bad_data_filename")),
    )
    op.create_index(op.f("ix_bad_data_dataset"), "bad_data", ["dataset"])
    op.create_table(
        "stats",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("target", sa.String(128), nullable=False),
        sa.Column("quantity", sa.String(16), nullable=False),
        sa.Column("mean", sa.Double(), nullable=True),
        sa.Column("std", sa.Double(), nullable=True),
        sa.Column("poisson_factor", sa.Double(), nullable=True),
        sa.Column("pearson_r", sa.Double(), nullable=True),
        sa.Column("pearson_p", sa.Double(), nullable=True),
        sa.Column("periodogram", sa.Boolean(), nullable=False),
        sa.Column("best_period", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stats")),
        sa.UniqueConstraint("filename", name=op.f("uq_stats_filename")),
    )
    op.create_index(op.f("ix_stats_target"), "stats", ["target"])
    op.create_table(
        "target_alias",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("alias", sa.String(128), nullable=False),
        sa.Column("canonical", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_target_alias")),
        sa.UniqueConstraint("alias", name=op.f("uq_target_alias_alias")),
    )
    op.create_table(
        "composite",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("target", sa.String(128), nullable=False),
        sa.Column("members", sa.Text(), nullable=False),
        sa.Column("n_members", sa.Integer(), nullable=False),
        sa.Column("built", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_composite")),
        sa.UniqueConstraint("filename", name=op.f("uq_composite_filename")),
    )
    op.create_index(op.f("ix_composite_target"), "composite", ["target"])


def downgrade() -> None:
    """Drop the light-curve archive tables."""
    op.drop_index(op.f("ix_composite_target"), table_name="composite")
    op.drop_table("composite")
    op.drop_table("target_alias")
    op.drop_index(op.f("ix_stats_target"), table_name="stats")
    op.drop_table("stats")
    op.drop_index(op.f("ix_bad_data_dataset"), table_name="bad_data")
    op.drop_table("bad_data")
    op.drop_table("outputs")
    op.drop_index(op.f("ix_metadata_target"), table_name="metadata")
    op.drop_index(op.f("ix_metadata_dataset"), table_name="metadata")
    op.drop_table("metadata")
