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
