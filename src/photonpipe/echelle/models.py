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


class TargetRecord(Base):
    """A star of the targets registry (nres-pipe's targets.csv; −99.9 there → NULL here).

    Natural key: ``name``. Positions are ICRS at epoch J2000.0, proper motions in mas/yr
    (``pmra`` includes cos δ), parallax in mas, RV in km/s.
    """

    __tablename__ = "echelle_target"
    __table_args__ = (sa.UniqueConstraint("name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(64))
    ra: Mapped[float] = mapped_column(sa.Float)
    dec: Mapped[float] = mapped_column(sa.Float)
    vmag: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    bmag: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    gmag: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    rmag: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    imag: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    jmag: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    kmag: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    pmra: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    pmdec: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    parallax: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    rv: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    teff: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    logg: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    zero: Mapped[str | None] = mapped_column(sa.String(512), nullable=True)


class ZeroRecord(Base):
    """A ZERO (stacked rest-frame template of a standard star), as in nres-pipe's zeros.csv.

    ``flags`` has four characters: [0] ``0`` good, anything else bad; [1] ``1`` vetted as a
    general standard; [2] lit fibres (``1`` → 0+1, ``2`` → 1+2, ``3`` → 0+1+2); [3] unused.
    Natural key: ``path`` (relative to the archive root).
    """

    __tablename__ = "echelle_zero"
    __table_args__ = (sa.UniqueConstraint("path"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    path: Mapped[str] = mapped_column(sa.String(512))
    navg: Mapped[int] = mapped_column(default=0)
    site: Mapped[str] = mapped_column(sa.String(8))
    instrument: Mapped[str] = mapped_column(sa.String(16))
    camera: Mapped[str] = mapped_column(sa.String(16))
    jdate: Mapped[float] = mapped_column(sa.Float)
    target: Mapped[str] = mapped_column(sa.String(64))
    teff: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    logg: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    b_v: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    j_k: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    flags: Mapped[str] = mapped_column(sa.String(4), default="0010")
    created: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class RadialVelocityRecord(Base):
    """The radial velocity of one reduced science frame (the rv.csv table).

    ``rv`` is the barycentric radial velocity [km/s] or NULL with ``reason`` when no usable
    velocity could be measured. Natural key: ``spectrum`` (the 1-D product, archive-relative).
    """

    __tablename__ = "echelle_rv"
    __table_args__ = (
        sa.UniqueConstraint("spectrum"),
        sa.Index("ix_echelle_rv_target", "target", "bjd"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    spectrum: Mapped[str] = mapped_column(sa.String(512))
    rawfile: Mapped[str] = mapped_column(sa.String(128))
    target: Mapped[str] = mapped_column(sa.String(64))
    site: Mapped[str] = mapped_column(sa.String(8))
    instrument: Mapped[str] = mapped_column(sa.String(16))
    exptime: Mapped[float] = mapped_column(sa.Float)
    bjd: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    rv: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    rv_error: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    barycorr: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    template: Mapped[str | None] = mapped_column(sa.String(512), nullable=True)
    snr: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    n_blocks: Mapped[int] = mapped_column(default=0)
    reason: Mapped[str | None] = mapped_column(sa.String(256), nullable=True)
    created: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ProcessedFile(Base):
    """A raw frame seen by the operations path (workers, ``watch``): NRES's processed files.

    Natural key: ``filename`` (relative to the archive root). ``checksum`` is the MD5 of the
    contents the last attempt read (of the message body, for a message naming no readable file);
    ``status`` is ``running``, ``done``, ``failed`` or ``rejected`` (a message or file that was
    dead-lettered, ``error`` says why, ``message`` holds the start of the body); ``tries``
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
    #: The start of the message body, for a message the listener or a worker rejected.
    message: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
