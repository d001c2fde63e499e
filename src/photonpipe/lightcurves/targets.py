"""Target names as keys: one safe, collision-free token per canonical target.

A TARGNAME is free text (``a/b``, ``.``, ``HD 1234``, names differing only in case); the archive
needs a directory name and a part of the HLSP composite file name for it. :func:`target_token`
maps a name to both, deterministically and injectively:

* a *plain* name, upper-case letters, digits, ``+`` and ``-`` in words separated by single
  blanks and at most 60 characters (what HST TARGNAMEs are), keeps its spelling: blanks become
  ``_`` in the directory (``AV 75`` → ``AV_75``) and ``.`` in the HLSP part (``av.75``);
* any other name (lower case, other punctuation, control characters, non-ASCII, empty, ``.``,
  ``..``, over-long) is reduced to a safe stem and gets ``~`` and the first 10 hex digits of the
  SHA-256 of its UTF-8 bytes: ``a/b`` → ``a_b~…``, ``A_B`` → ``A_B~…``, ``abc`` → ``abc~…``.

Plain directory names never contain ``~`` and never differ only in case (they are upper case),
so no two names share a directory, even on a case-insensitive file system, nor an HLSP name.
The mapping of every target met is stored in table ``target_token`` (migration
``0008_lightcurve_target_token``), whose unique constraints catch what a hash collision would
break.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from photonpipe.errors import ArchiveError

#: Longest plain name kept as it is [characters].
MAX_PLAIN = 60
#: Longest stem of a hashed token [characters].
MAX_STEM = 40
_PLAIN = re.compile(r"[A-Z0-9][A-Z0-9+-]*(?: [A-Z0-9+-]+)*")
_UNSAFE_STEM = re.compile(r"[^A-Za-z0-9+-]")


@dataclass(frozen=True)
class TargetToken:
    """Where a canonical target's files go.

    Attributes
    ----------
    target : str
        The canonical target name.
    directory : str
        Directory name under ``filesystem/`` and ``outputs/``.
    hlsp : str
        The target's part of the HLSP composite file name (lower case, no ``_``).
    """

    target: str
    directory: str
    hlsp: str


def _digest(name: str) -> str:
    return hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:10]


def target_token(name: str) -> TargetToken:
    """Return the directory and HLSP token of a canonical target name (see the module doc).

    >>> target_token("AV 75")
    TargetToken(target='AV 75', directory='AV_75', hlsp='av.75')
    >>> target_token("a/b").directory
    'a_b~c14cddc033'
    """
    if len(name) <= MAX_PLAIN and _PLAIN.fullmatch(name):
        return TargetToken(name, name.replace(" ", "_"), name.lower().replace(" ", "."))
    stem = _UNSAFE_STEM.sub("_", name)[:MAX_STEM].strip("_-") or "target"
    suffix = "~" + _digest(name)
    hlsp = stem.lower().replace("_", ".").strip(".") or "target"
    return TargetToken(name, stem + suffix, hlsp + suffix)


def register_targets(session: sa.orm.Session, names: list[str]) -> dict[str, TargetToken]:
    """Record the tokens of ``names`` in table ``target_token`` (once each) and return them.

    Raises
    ------
    ArchiveError
        Two targets would share a directory or an HLSP name (a hash collision: never seen).
    """
    from photonpipe.lightcurves.models import TargetTokenRecord
    from photonpipe.platform.db import insert_ignore

    tokens = {n: target_token(n) for n in names}
    table = TargetTokenRecord.__table__

    def recorded() -> list[Any]:
        return list(
            session.execute(
                sa.select(table.c.target, table.c.directory, table.c.hlsp).where(
                    sa.or_(
                        table.c.target.in_(list(tokens)),
                        table.c.directory.in_([t.directory for t in tokens.values()]),
                        table.c.hlsp.in_([t.hlsp for t in tokens.values()]),
                    )
                )
            )
        )

    def check(rows: list[Any]) -> None:
        for row in rows:
            mine = tokens.get(row.target)
            if mine is None:
                # another target holds one of the tokens: a hash collision, never seen
                other = next(
                    t.target
                    for t in tokens.values()
                    if row.directory == t.directory or row.hlsp == t.hlsp
                )
                raise ArchiveError(
                    f"targets {row.target!r} and {other!r} would share the directory or HLSP "
                    f"name {row.directory!r}"
                )
            if (row.directory, row.hlsp) != (mine.directory, mine.hlsp):
                raise ArchiveError(
                    f"target {row.target!r} is recorded with directory {row.directory!r}, not "
                    f"{mine.directory!r}"
                )

    # Rows of the same target are no clash: two workers registering one new target at once
    # both get here, one inserts, the other's insert is skipped (on whichever unique constraint
    # it meets first), and both read the same row.
    check(recorded())
    insert_ignore(
        session,
        TargetTokenRecord,
        [{"target": t.target, "directory": t.directory, "hlsp": t.hlsp} for t in tokens.values()],
    )
    check(recorded())
    return tokens
