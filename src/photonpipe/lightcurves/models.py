"""Tables of the light-curve archive (hstlc's ``metadata``, ``outputs``, ``bad_data``, ``stats``).

The seed's names and columns are kept; extra columns say which dataset (rootname) a file belongs
to, its canonical target (after aliases) and the detail behind a rejection. Two tables are
photonpipe's own: ``target_alias`` (different spellings of one target) and ``composite`` (the
members each composite was built from, so that only composites whose membership changed are
rebuilt).
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import Mapped, mapped_column

from photonpipe.platform.db import Base, UTCDateTime

#: The reasons a file is rejected, in the order the checks run (hstlc's bad_data reasons).
BAD_DATA_REASONS = (
    "Unreadable file",
    "No events",
    "Bad EXPFLAG",
    "Non-linear time",
    "Singular event",
    "Short exposure",
    "Bad TARGNAME",
)
#: Longest target name the tables keep [characters]; a longer TARGNAME is rejected at ingest.
TARGET_CHARS = 128
#: Column type of a target name: compared case-sensitively on every database. MariaDB and
#: MySQL compare text case-insensitively by default (utf8mb4_general_ci), which would make
#: ``ABC`` and ``abc`` one target there; they get the binary collation (migration 0010).
TargetName = sa.String(TARGET_CHARS).with_variant(
    mysql.VARCHAR(TARGET_CHARS, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"
)


class Metadata(Base):
    """One archived input file (event file or x1d) and its configuration keywords."""

    __tablename__ = "metadata"

    id: Mapped[int] = mapped_column(primary_key=True)
    filename: Mapped[str] = mapped_column(sa.String(255), unique=True)
    #: Directory of the archived file, relative to the archive root.
    path: Mapped[str] = mapped_column(sa.String(1024))
    ingest_date: Mapped[datetime] = mapped_column(UTCDateTime)
    telescop: Mapped[str | None] = mapped_column(sa.String(16))
    instrume: Mapped[str | None] = mapped_column(sa.String(16))
    targname: Mapped[str | None] = mapped_column(TargetName)
    cal_ver: Mapped[str | None] = mapped_column(sa.String(32))
    obstype: Mapped[str | None] = mapped_column(sa.String(32))
    cenwave: Mapped[int | None] = mapped_column(sa.Integer)
    aperture: Mapped[str | None] = mapped_column(sa.String(32))
    detector: Mapped[str | None] = mapped_column(sa.String(16))
    opt_elem: Mapped[str | None] = mapped_column(sa.String(16))
    fppos: Mapped[int | None] = mapped_column(sa.Integer)
    #: HST rootname of the dataset the file belongs to (lower case).
    dataset: Mapped[str] = mapped_column(sa.String(64), index=True)
    #: Canonical target name (TARGNAME after the alias table): the directory and composite name.
    target: Mapped[str] = mapped_column(TargetName, index=True)
    #: ``cos_corrtag``, ``stis_tag``, ``stis_corrtag`` or ``x1d``.
    kind: Mapped[str] = mapped_column(sa.String(16))
    #: Exposure start of the dataset [MJD].
    expstart: Mapped[float | None] = mapped_column(sa.Double)


class Output(Base):
    """The light curves made from one archived file: its individual curve and its composite."""

    __tablename__ = "outputs"

    id: Mapped[int] = mapped_column(primary_key=True)
    metadata_id: Mapped[int] = mapped_column(
        sa.ForeignKey("metadata.id", ondelete="CASCADE"), unique=True
    )
    individual_path: Mapped[str | None] = mapped_column(sa.String(1024))
    individual_filename: Mapped[str | None] = mapped_column(sa.String(255))
    composite_path: Mapped[str | None] = mapped_column(sa.String(1024))
    composite_filename: Mapped[str | None] = mapped_column(sa.String(255))


class BadData(Base):
    """A rejected input file, its reason (one of :data:`BAD_DATA_REASONS`) and the detail."""

    __tablename__ = "bad_data"

    id: Mapped[int] = mapped_column(primary_key=True)
    filename: Mapped[str] = mapped_column(sa.String(255), unique=True)
    ingest_date: Mapped[datetime] = mapped_column(UTCDateTime)
    reason: Mapped[str] = mapped_column(sa.String(32))
    #: Dataset (rootname) the file came with.
    dataset: Mapped[str] = mapped_column(sa.String(64), index=True)
    #: What exactly was wrong, naming the file at fault.
    detail: Mapped[str | None] = mapped_column(sa.Text)


class Stats(Base):
    """Variability statistics and the periodogram flag of one light-curve product."""

    __tablename__ = "stats"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: Product file name (``{rootname}_curve.fits`` or the HLSP composite name).
    filename: Mapped[str] = mapped_column(sa.String(255), unique=True)
    #: ``individual`` or ``composite``.
    kind: Mapped[str] = mapped_column(sa.String(16))
    target: Mapped[str] = mapped_column(TargetName, index=True)
    #: ``FLUX`` or ``NET`` (uncalibrated): the quantity the statistics describe.
    quantity: Mapped[str] = mapped_column(sa.String(16))
    mean: Mapped[float | None] = mapped_column(sa.Double)
    std: Mapped[float | None] = mapped_column(sa.Double)
    poisson_factor: Mapped[float | None] = mapped_column(sa.Double)
    pearson_r: Mapped[float | None] = mapped_column(sa.Double)
    pearson_p: Mapped[float | None] = mapped_column(sa.Double)
    #: Whether a Lomb-Scargle peak is significant (false-alarm probability below threshold).
    periodogram: Mapped[bool] = mapped_column(sa.Boolean)
    #: Period of the significant peak [s]; NULL when there is none.
    best_period: Mapped[float | None] = mapped_column(sa.Double)
    #: The period search in words: ``period 240.1 s (FAP 3e-09)`` or ``no significant period``.
    period_verdict: Mapped[str] = mapped_column(
        sa.String(64), server_default="no significant period"
    )


class TargetAlias(Base):
    """Another spelling of a target: files with TARGNAME = ``alias`` go to ``canonical``."""

    __tablename__ = "target_alias"

    id: Mapped[int] = mapped_column(primary_key=True)
    alias: Mapped[str] = mapped_column(sa.String(TARGET_CHARS), unique=True)
    canonical: Mapped[str] = mapped_column(TargetName)


class TargetTokenRecord(Base):
    """Where a canonical target's files go (see :mod:`photonpipe.lightcurves.targets`)."""

    __tablename__ = "target_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    target: Mapped[str] = mapped_column(TargetName, unique=True)
    directory: Mapped[str] = mapped_column(sa.String(64), unique=True)
    hlsp: Mapped[str] = mapped_column(sa.String(64), unique=True)


class Composite(Base):
    """A composite light curve and the datasets it was built from."""

    __tablename__ = "composite"

    id: Mapped[int] = mapped_column(primary_key=True)
    filename: Mapped[str] = mapped_column(sa.String(255), unique=True)
    path: Mapped[str] = mapped_column(sa.String(1024))
    target: Mapped[str] = mapped_column(TargetName, index=True)
    #: Member rootnames, sorted, separated by commas.
    members: Mapped[str] = mapped_column(sa.Text)
    n_members: Mapped[int] = mapped_column(sa.Integer)
    built: Mapped[datetime] = mapped_column(UTCDateTime)
