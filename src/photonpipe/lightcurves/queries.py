"""Queries of the light-curve archive and the target alias table.

``lightcurve list`` and ``lightcurve show`` are thin wrappers around :func:`list_files` and
:func:`describe_file`; :func:`add_alias` edits the alias table.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from photonpipe.errors import EXIT_USAGE, PhotonpipeError
from photonpipe.lightcurves.ingest import alias_key, normalise_target
from photonpipe.lightcurves.models import BadData, Composite, Metadata, Output, Stats, TargetAlias
from photonpipe.platform.db import Database, upsert

LIST_COLUMNS = (
    "filename",
    "dataset",
    "target",
    "targname",
    "instrume",
    "detector",
    "opt_elem",
    "cenwave",
    "aperture",
    "ingest_date",
    "individual",
    "composite",
)


class UnknownFileError(PhotonpipeError):
    """A file name that is neither archived nor rejected."""

    exit_code = EXIT_USAGE  # the user's input or request, not failed work


def _columns(row: Any, model: Any) -> dict[str, Any]:
    out = {}
    for column in model.__table__.columns:
        value = getattr(row, column.key)
        out[column.key] = value.isoformat() if hasattr(value, "isoformat") else value
    return out


def list_files(
    database: Database, *, target: str | None = None, instrument: str | None = None
) -> list[dict[str, Any]]:
    """List archived files with their configuration and products, by target, dataset and name.

    Parameters
    ----------
    target : str, optional
        Canonical target, or any alias of it.
    instrument : str, optional
        ``COS`` or ``STIS`` (case does not matter).
    """
    query = sa.select(Metadata, Output).outerjoin(Output, Output.metadata_id == Metadata.id)
    with database.session() as session:
        if target is not None:
            name = normalise_target(target)
            canonical = session.scalar(
                sa.select(TargetAlias.canonical).where(TargetAlias.alias == alias_key(name))
            )
            # a query ignores case (targets differing only in case are listed together)
            query = query.where(sa.func.upper(Metadata.target) == alias_key(canonical or name))
        if instrument is not None:
            query = query.where(sa.func.upper(Metadata.instrume) == instrument.strip().upper())
        query = query.order_by(Metadata.target, Metadata.dataset, Metadata.filename)
        rows = []
        for meta, output in session.execute(query).all():
            individual = composite = ""
            if output is not None and output.individual_filename:
                individual = f"{output.individual_path}/{output.individual_filename}"
            if output is not None and output.composite_filename:
                composite = f"{output.composite_path}/{output.composite_filename}"
            rows.append(
                {
                    "filename": meta.filename,
                    "dataset": meta.dataset,
                    "target": meta.target,
                    "targname": meta.targname,
                    "instrume": meta.instrume,
                    "detector": meta.detector,
                    "opt_elem": meta.opt_elem,
                    "cenwave": meta.cenwave,
                    "aperture": meta.aperture,
                    "ingest_date": meta.ingest_date.isoformat(timespec="seconds"),
                    "individual": individual,
                    "composite": composite,
                }
            )
    return rows


def describe_file(database: Database, filename: str) -> dict[str, Any]:
    """Everything recorded about one input file (or light-curve product).

    Returns
    -------
    dict
        ``status`` (``archived``, ``rejected`` or ``product``) and ``metadata``, ``outputs``,
        ``stats`` (of the individual curve and of the composite), or ``bad_data``.

    Raises
    ------
    UnknownFileError
        The name is in none of the tables.
    """
    with database.session() as session:
        meta = session.scalar(sa.select(Metadata).where(Metadata.filename == filename))
        if meta is not None:
            output = session.scalar(sa.select(Output).where(Output.metadata_id == meta.id))
            result: dict[str, Any] = {
                "status": "archived",
                "metadata": _columns(meta, Metadata),
                "outputs": _columns(output, Output) if output is not None else None,
                "stats": {},
            }
            for label in ("individual", "composite"):
                name = getattr(output, f"{label}_filename", None) if output else None
                stats = session.scalar(sa.select(Stats).where(Stats.filename == name))
                if stats is not None:
                    result["stats"][label] = _columns(stats, Stats)
            return result
        bad = session.scalar(sa.select(BadData).where(BadData.filename == filename))
        if bad is not None:
            return {"status": "rejected", "bad_data": _columns(bad, BadData)}
        stats = session.scalar(sa.select(Stats).where(Stats.filename == filename))
        if stats is not None:
            result = {"status": "product", "stats": _columns(stats, Stats)}
            composite = session.scalar(sa.select(Composite).where(Composite.filename == filename))
            if composite is not None:
                result["composite"] = _columns(composite, Composite)
            return result
    raise UnknownFileError(
        f"{filename}: not in the light-curve archive (metadata, bad_data, stats)"
    )


def add_alias(database: Database, alias: str, canonical: str) -> tuple[str, str, int]:
    """Map target name ``alias`` to ``canonical`` (both normalised: upper case, single blanks).

    A canonical name that is itself an alias is resolved first, so chains cannot form.

    Returns
    -------
    tuple
        (alias, canonical, number of datasets already archived under the alias's own name;
        they stay where they are until reset and ingested again).

    Raises
    ------
    PhotonpipeError
        The alias would map a name to itself, or the alias is some other name's canonical.
    """
    # aliases and their canonical names ignore case (upper case, as HST TARGNAMEs are)
    name, target = alias_key(alias), alias_key(canonical)
    with database.session() as session:
        resolved = session.scalar(
            sa.select(TargetAlias.canonical).where(TargetAlias.alias == alias_key(target))
        )
        target = resolved or target
        if name == target:
            raise PhotonpipeError(f"alias {name!r} would map the target to itself")
        if session.scalar(
            sa.select(TargetAlias.id).where(sa.func.upper(TargetAlias.canonical) == name)
        ):
            raise PhotonpipeError(
                f"{name!r} is the canonical name of other aliases; alias those to {target!r} first"
            )
        upsert(session, TargetAlias, [{"alias": name, "canonical": target}], key=("alias",))
        existing = session.scalar(
            sa.select(sa.func.count(sa.distinct(Metadata.dataset))).where(Metadata.target == name)
        )
    return name, target, int(existing or 0)


def aliases(database: Database) -> list[tuple[str, str]]:
    """All (alias, canonical) pairs, sorted."""
    with database.session() as session:
        return [
            (a, c)
            for a, c in session.execute(
                sa.select(TargetAlias.alias, TargetAlias.canonical).order_by(TargetAlias.alias)
            ).all()
        ]
