"""Database tables of the echelle application.

``echelle_calibration``: one row per master calibration product (BIAS, DARK, FLAT, ARC, TRIPLE,
TRACE) with what selection needs: instrument, type, fibres lit, observation date and validity
window, path, and a bad flag. Frames that fail are recorded in the platform's work-unit ledger
(kind ``echelle.frame``).
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from photonpipe.platform.db import Base, UTCDateTime, utcnow


class CalibrationRecord(Base):
    """A master calibration product and its validity.

    Natural key: ``path`` (relative to the archive root).
    """

    __tablename__ = "echelle_calibration"
    __table_args__ = (
        sa.UniqueConstraint("path"),
        sa.Index("ix_echelle_calibration_lookup", "instrument", "type", "fibres_lit", "dateobs"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    type: Mapped[str] = mapped_column(sa.String(16))
    site: Mapped[str] = mapped_column(sa.String(8))
    instrument: Mapped[str] = mapped_column(sa.String(16))
    camera: Mapped[str] = mapped_column(sa.String(16))
    fibres_lit: Mapped[str] = mapped_column(sa.String(8))
    dateobs: Mapped[datetime] = mapped_column(UTCDateTime())
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime())
    valid_to: Mapped[datetime] = mapped_column(UTCDateTime())
    path: Mapped[str] = mapped_column(sa.String(512))
    n_frames: Mapped[int] = mapped_column(default=0)
    is_bad: Mapped[bool] = mapped_column(default=False)
    created: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ProcessedFile(Base):
    """A raw frame seen by the operations path (workers, ``watch``): NRES's processed files.

    Natural key: ``filename`` (relative to the archive root). ``checksum`` is the MD5 of the
    contents the last attempt read; ``status`` is ``running``, ``done`` or ``failed``; ``tries``
    counts attempts at the current checksum (the claims themselves are the work-unit ledger's,
    kind ``echelle.frame``, the same units ``photonpipe echelle reduce`` uses).
    """

    __tablename__ = "echelle_processed_file"
    __table_args__ = (sa.UniqueConstraint("filename"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    filename: Mapped[str] = mapped_column(sa.String(512))
    checksum: Mapped[str] = mapped_column(sa.String(32))
    frame_id: Mapped[int | None] = mapped_column(sa.BigInteger, nullable=True)
    status: Mapped[str] = mapped_column(sa.String(16), index=True)
    success: Mapped[bool] = mapped_column(default=False)
    tries: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    frame_type: Mapped[str | None] = mapped_column(sa.String(16), nullable=True)
    created: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    duration: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
