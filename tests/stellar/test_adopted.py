"""A solve that is not adopted leaves the adopted stellar parameters alone."""

from __future__ import annotations

from typing import Any

import pytest

from photonpipe.stellar import analysis
from photonpipe.stellar.analysis import adopted_parameters, solve_parameters


class _Physics:
    code = grid = None

    def record(self) -> dict[str, Any]:
        return {"code": "stand-in"}


class _Session:
    path = None

    def __init__(self) -> None:
        self.state: dict[str, Any] = {
            "stellar_parameters": {"adopted": None, "methods": {}},
            "history": [],
        }


def test_no_adopt_keeps_the_adopted_result(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = iter([4600.0, 4400.0])

    def solve(*args: Any, **kwargs: Any) -> dict[str, Any]:
        return {"teff": next(answers), "logg": 1.6, "vt": 2.0, "feh": -2.6, "converged": True}

    monkeypatch.setattr(analysis, "usable_lines", lambda session: [])
    monkeypatch.setattr(analysis, "solve_excitation_ionisation", solve)
    session: Any = _Session()
    solve_parameters(session, _Physics())  # type: ignore[arg-type]
    first = adopted_parameters(session)
    assert first is not None
    assert first["teff"] == 4600.0
    trial = solve_parameters(session, _Physics(), adopt=False)  # type: ignore[arg-type]
    assert trial["teff"] == 4400.0
    assert session.state["stellar_parameters"]["methods"]["excitation-ionisation"]["teff"] == 4400.0
    kept = adopted_parameters(session)
    assert kept is not None
    assert kept["teff"] == 4600.0  # was 4400: the trial replaced it


def test_sessions_saved_before_adopted_result_still_read() -> None:
    session: Any = _Session()
    section = session.state["stellar_parameters"]
    section["adopted"] = "excitation-ionisation"
    section["methods"]["excitation-ionisation"] = {"teff": 4500.0}
    assert adopted_parameters(session) == {"teff": 4500.0}
