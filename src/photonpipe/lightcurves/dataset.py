"""Datasets: the event files and x1d of one exposure, grouped by HST rootname.

A COS FUV dataset has segments A and B in two corrtags; COS NUV and STIS have one event file.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits

from photonpipe.lightcurves.formats import (
    SPT,
    STIS_TAG,
    X1D,
    EventFile,
    LightCurveInputError,
    X1DFile,
    identify,
    intersect_intervals,
    read_events,
    read_x1d,
    rootname_of,
)
from photonpipe.lightcurves.orbit import HSTOrbit, read_spt, support_file_beside
from photonpipe.lightcurves.stis import tag_to_corrtag

#: Keywords that define one instrument configuration; composites stack datasets sharing them.
CONFIGURATION_KEYWORDS = ("INSTRUME", "DETECTOR", "TARGNAME", "OPT_ELEM", "CENWAVE", "APERTURE")


@dataclass
class Dataset:
    """One exposure: its corrtag-like event files, its x1d (if any) and the files read.

    Attributes
    ----------
    rootname : str
        HST rootname (lower case).
    events : list of EventFile
        One per FUV segment, or a single file (COS NUV, STIS).
    x1d : X1DFile or None
        The exposure's x1d, the source of the wavelength grid and the sensitivity.
    inputs : list of Path
        Every file read (event files, tag, x1d, support file).
    orbit : HSTOrbit or None
        HST's orbital elements from the support file (``_spt.fits``), given or found beside the
        event files; None: barycentric times are computed for the geocentre.
    """

    rootname: str
    events: list[EventFile]
    x1d: X1DFile | None = None
    inputs: list[Path] = field(default_factory=list)
    orbit: HSTOrbit | None = None

    @property
    def primary(self) -> fits.Header:
        """Primary header of the first event file (astropy Header)."""
        return self.events[0].primary

    def keyword(self, name: str, default: object = "") -> object:
        """Return a primary keyword, stripped if a string."""
        value = self.primary.get(name, default)
        return value.strip() if isinstance(value, str) else value

    @property
    def configuration(self) -> tuple[str, ...]:
        """(INSTRUME, DETECTOR, TARGNAME, OPT_ELEM, CENWAVE, APERTURE) as strings, upper case."""
        return tuple(str(self.keyword(k)).upper() for k in CONFIGURATION_KEYWORDS)

    @property
    def expstart(self) -> float:
        """Earliest EXPSTART of the event files [MJD]."""
        return min(e.expstart for e in self.events)

    @property
    def gti(self) -> np.ndarray:
        """Good time shared by all event files [s since :attr:`expstart`], shape (n, 2)."""
        common: np.ndarray | None = None
        for events in self.events:
            shifted = events.gti + (events.expstart - self.expstart) * 86400.0
            common = shifted if common is None else intersect_intervals(common, shifted)
        assert common is not None
        return common


def group_files(paths: Iterable[str | os.PathLike[str]]) -> dict[str, list[Path]]:
    """Group file paths by rootname, in first-seen order."""
    groups: dict[str, list[Path]] = {}
    for path in paths:
        groups.setdefault(rootname_of(path), []).append(Path(path))
    return groups


def assemble_dataset(
    paths: Sequence[str | os.PathLike[str]],
    *,
    flat: str | os.PathLike[str] | None = None,
    badpix: str | os.PathLike[str] | None = None,
    support_beside: bool = True,
    stream: bool = False,
) -> Dataset:
    """Read the files of one exposure into a :class:`Dataset`.

    Parameters
    ----------
    paths : sequence of path-like
        Event files (corrtag, or STIS tag), at most one x1d and at most one support file
        (``_spt.fits``), all of one rootname. Without a support file among them, one beside the
        first event file is used (unless ``support_beside`` is false).
    flat, badpix : path-like, optional
        STIS low-res flat field and bad-pixel image for the tag → corrtag conversion.
    support_beside : bool
        Look for ``<rootname>_spt.fits`` beside the events when none is among ``paths``.
    stream : bool
        Leave the corrtags' events in the files, to be read chunk by chunk by the extraction
        (memory bounded by the chunk; see :func:`~photonpipe.lightcurves.formats.read_events`).
        STIS tag files are always read whole (they are converted to corrtags in memory).

    Raises
    ------
    LightCurveInputError
        No event file, two x1ds, a STIS tag without its x1d, mixed rootnames, or any reader error.
    """
    files = [Path(p) for p in paths]
    roots = {rootname_of(p) for p in files}
    if len(roots) != 1:
        raise LightCurveInputError(files[0], f"files of several rootnames: {sorted(roots)}")
    x1d: X1DFile | None = None
    orbit: HSTOrbit | None = None
    read: list[EventFile] = []
    for path in files:
        kind = identify(path)
        if kind == X1D:
            if x1d is not None:
                raise LightCurveInputError(path, f"second x1d for {rootname_of(path)}")
            x1d = read_x1d(path)
        elif kind == SPT:
            if orbit is not None:
                raise LightCurveInputError(path, f"second support file for {rootname_of(path)}")
            orbit = read_spt(path)
        else:
            read.append(read_events(path, stream=stream))
    return dataset_from_files(
        files, read, x1d, flat=flat, badpix=badpix, orbit=orbit, support_beside=support_beside
    )


def dataset_from_files(
    files: Sequence[Path],
    event_files: Sequence[EventFile],
    x1d: X1DFile | None,
    *,
    flat: str | os.PathLike[str] | None = None,
    badpix: str | os.PathLike[str] | None = None,
    orbit: HSTOrbit | None = None,
    support_beside: bool = True,
) -> Dataset:
    """Make a :class:`Dataset` of event files and an x1d already read.

    A pipeline that has read the files for its own checks need not read them again.

    Parameters
    ----------
    files : sequence of Path
        All the dataset's files (recorded as its inputs; the first names its rootname).
    event_files : sequence of EventFile
        Its event files, read with :func:`~photonpipe.lightcurves.formats.read_events`
        (validated); STIS tag files are converted to corrtag with the x1d.
    x1d : X1DFile or None
        Its x1d.
    flat, badpix : path-like, optional
        STIS low-res flat field and bad-pixel image for the tag → corrtag conversion.
    orbit : HSTOrbit, optional
        HST's orbital elements; when None, a support file beside the first event file is read
        (unless ``support_beside`` is false: then the geocentre stands in for HST).
    support_beside : bool
        Whether to look for that support file.

    Raises
    ------
    LightCurveInputError
        No event file, a STIS tag without its x1d, two files of one segment, an unreadable
        support file beside the events.
    """
    events = [e for e in event_files if e.kind != STIS_TAG]
    tags = [e for e in event_files if e.kind == STIS_TAG]
    for tag in tags:
        if x1d is None:
            raise LightCurveInputError(tag.path, "STIS tag file needs its x1d for wavelengths")
        events.append(tag_to_corrtag(tag, x1d, flat=flat, badpix=badpix))
    if not events:
        raise LightCurveInputError(files[0], "no event file (corrtag or tag) for this rootname")
    segments = [str(e.primary.get("SEGMENT", "")).strip().upper() for e in events]
    if len(events) > 1 and len(set(segments)) != len(segments):
        raise LightCurveInputError(events[1].path, f"two event files for segment {segments[1]}")
    events.sort(key=lambda e: str(e.primary.get("SEGMENT", "")))
    inputs = list(files)
    if orbit is None and support_beside:
        beside = support_file_beside(event_files[0].path)
        if beside is not None:
            orbit = read_spt(beside)
            if beside not in inputs:
                inputs.append(beside)
    return Dataset(rootname_of(files[0]), events, x1d, inputs, orbit)


def read_datasets(
    paths: Iterable[str | os.PathLike[str]],
    *,
    flat: str | os.PathLike[str] | None = None,
    badpix: str | os.PathLike[str] | None = None,
    support_beside: bool = True,
    stream: bool = False,
) -> list[Dataset]:
    """Group files by rootname and read each group with :func:`assemble_dataset`.

    A group of only an x1d (no events) is an error: a light curve needs events.
    ``support_beside`` and ``stream`` are passed on to :func:`assemble_dataset`.
    """
    return [
        assemble_dataset(
            group, flat=flat, badpix=badpix, support_beside=support_beside, stream=stream
        )
        for group in group_files(paths).values()
    ]


def read_dataset(*paths: str | os.PathLike[str]) -> Dataset:
    """Read the files of exactly one exposure (convenience for notebooks)."""
    datasets = read_datasets(paths)
    if len(datasets) != 1:
        raise LightCurveInputError(
            Path(paths[0]), f"files of {len(datasets)} datasets, expected one"
        )
    return datasets[0]


#: Event-file name endings of one exposure, by kind: FUV segments A and B, one corrtag (COS NUV,
#: STIS corrtag), a STIS tag. A dataset's event files are of one of these kinds.
_EVENT_FAMILIES = (("_corrtag_a.fits", "_corrtag_b.fits"), ("_corrtag.fits",), ("_tag.fits",))
_X1D_ENDING = "_x1d.fits"
_SPT_ENDING = "_spt.fits"


def _ending(path: Path) -> str:
    name = path.name.lower()
    root = rootname_of(path)
    return name[len(root) :] if name.startswith(root) else ""


def with_companion_files(paths: Iterable[str | os.PathLike[str]]) -> tuple[list[Path], list[Path]]:
    """Add the files of the same exposure that lie beside the given ones, as STScI's ``lightcurve``.

    For each rootname given: the other FUV segment of a ``_corrtag_a``/``_corrtag_b``; the
    ``_x1d.fits`` and the support file ``_spt.fits`` (HST's orbit, for barycentric times) when
    none was given; and, when only an x1d was given, the exposure's event
    files (``_corrtag_a`` + ``_corrtag_b``, else ``_corrtag``, else ``_tag``). Only files that
    exist in the same directory as a given file of that rootname are added; an event file of
    another kind than the one given (a ``_corrtag`` written beside a ``_tag``) is not.

    Parameters
    ----------
    paths : iterable of path-like
        The files a user named.

    Returns
    -------
    (list of Path, list of Path)
        Every file to use (the given ones first, in order, then the added ones), and the added
        ones alone.
    """
    given = [Path(p) for p in paths]
    known = {p.resolve() for p in given}
    added: list[Path] = []

    def add(candidate: Path) -> None:
        if candidate.is_file() and candidate.resolve() not in known:
            known.add(candidate.resolve())
            added.append(candidate)

    groups: dict[tuple[Path, str], list[Path]] = {}
    for path in given:
        groups.setdefault((path.parent, rootname_of(path)), []).append(path)
    for (directory, _), members in groups.items():
        stem = members[0].name[: len(rootname_of(members[0]))]  # the rootname as spelled
        endings = {_ending(p) for p in members}
        events_given = [f for f in _EVENT_FAMILIES if endings & set(f)]
        for family in events_given:
            for ending in family:
                add(directory / f"{stem}{ending}")
        if not events_given:
            for family in _EVENT_FAMILIES:
                present = [directory / f"{stem}{e}" for e in family]
                if any(p.is_file() for p in present):
                    for candidate in present:
                        add(candidate)
                    break
        if _X1D_ENDING not in endings:
            add(directory / f"{stem}{_X1D_ENDING}")
        if _SPT_ENDING not in endings:
            add(directory / f"{stem}{_SPT_ENDING}")
    return given + added, added
