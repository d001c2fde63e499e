"""The command line and the workbench agree; ``lightcurve site``; ``serve`` as a process."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from starlette.testclient import TestClient

from helpers.stellar_physics import moog_or_skip
from helpers.web import build_archive, build_demo_session, build_session
from photonpipe.cli.main import main
from photonpipe.platform.archive import Archive
from photonpipe.stellar.session import Session
from photonpipe.web.app import ServeConfig, create_app

#: State keys that hold when something was done (or how long it took), not what.
VOLATILE = {"time", "fitted", "measured", "modified", "history", "solved", "computed", "seconds"}


def _comparable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list | tuple):
        return [_comparable(v) for v in value]
    if isinstance(value, np.ndarray):
        return ("array", value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, float) and np.isnan(value):
        return "nan"
    return value


def test_cli_and_workbench_give_identical_sessions(tmp_path: Path) -> None:
    source = build_session(tmp_path / "made")
    cli_copy = tmp_path / "cli" / "star.smh"
    web_copy = tmp_path / "web" / "star.smh"
    for copy in (cli_copy, web_copy):
        copy.parent.mkdir()
        shutil.copyfile(source, copy)
    keys = [m["line_hash"] for m in Session.load(source).measurements("ew")]
    rejected, refitted = keys[2], keys[5]

    # the command line
    assert main([
        "session", "normalize", str(cli_copy), "--order", "0", "--function", "legendre",
        "--degree", "4", "--knot-spacing", "8", "--low-sigma", "1.5", "--no-default-masks",
        "--mask", "4910", "4912", "--mask", "4925.5", "4926.5", "--point", "4930", "10000", "1",
    ]) == 0  # fmt: skip
    assert main(["session", "measure", str(cli_copy), "--window", "1.8"]) == 0
    assert (
        main(
            [
                "session",
                "measure",
                str(cli_copy),
                "--line",
                refitted,
                "--profile",
                "voigt",
                "--window",
                "2.5",
            ]
        )
        == 0
    )
    assert main([
        "session", "review", str(cli_copy), rejected, "--reject", "--limit", "--comment", "blend",
    ]) == 0  # fmt: skip

    # the workbench, on the same session given on the command line of serve
    config = ServeConfig(archive=Archive(tmp_path / "root"), database_url=None, sessions=[web_copy])
    client = TestClient(create_app(config), base_url="http://127.0.0.1:8000")
    url = client.get("/session/open?cli=0", follow_redirects=False).headers["location"]
    token = client.get(url).text.split('name="csrf-token" content="')[1].split('"')[0]
    headers = {"X-CSRF-Token": token}

    def post(action: str, body: dict[str, Any]) -> Any:
        response = client.post(url + f"api/{action}", json=body, headers=headers)
        assert response.status_code == 200, response.text
        return response.json()

    options = client.get(url + "api/order/0").json()["options"]
    options.update(function="legendre", degree=4, low_sigma=1.5, use_default_masks=False)
    post("normalize", {**options, "order": 0, "masks": [[4910, 4912], [4925.5, 4926.5]]})
    post("normalize", {**options, "order": 0, "masks": [[4910, 4912], [4925.5, 4926.5]],
                       "added_points": [[4930, 10000, 1]]})  # fmt: skip
    post("refit", {"lines": None, "window": 1.8})
    post("refit", {"lines": [refitted], "profile": "voigt", "window": 2.5})
    post("review", {"line": rejected, "acceptable": False})
    post("review", {"line": rejected, "upper_limit": True, "comment": "blend"})
    saved = Path(post("save", {"filename": "star-web.smh"})["path"])

    assert saved == web_copy.with_name("star-web.smh")
    by_cli = Session.load(cli_copy).state
    by_web = Session.load(saved).state
    assert _comparable(by_cli) == _comparable(by_web)
    m = by_web["measurements"][f"{rejected}|ew"]
    assert not m["acceptable"]
    assert m["is_limit"]
    assert m["upper_limit"] == pytest.approx(3 * m["ew_noise_uncertainty"])
    assert by_web["measurements"][f"{refitted}|ew"]["profile"] == "voigt"
    assert by_web["normalization"]["orders"][0]["function"] == "legendre"


def _cli_json(args: list[str], capsys: pytest.CaptureFixture[str]) -> Any:
    import json

    capsys.readouterr()
    assert main(args) == 0
    return json.loads(capsys.readouterr().out)


def test_cli_and_workbench_solve_identically(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    moog_or_skip()
    source = build_demo_session(tmp_path / "made")
    assert Session.load(source).state["stellar_parameters"].get("adopted") is None
    cli_copy = tmp_path / "cli" / "star.smh"
    web_copy = tmp_path / "web" / "star.smh"
    for copy in (cli_copy, web_copy):
        copy.parent.mkdir()
        shutil.copyfile(source, copy)
    start = {"teff": 4500.0, "logg": 1.5, "vt": 2.0, "feh": -2.5}
    given = {"teff": 4600.0, "logg": 1.6, "vt": 1.9, "feh": -2.6}
    held_at = {"teff": 4587.0, "logg": 1.61, "vt": 1.9}
    fixes = [x for k, v in held_at.items() for x in ("--fix", f"{k}={v}")]

    def options(values: dict[str, float]) -> list[str]:
        return [x for k, v in values.items() for x in (f"--{k}", str(v))]

    # the command line: solve (adopting it, with the abundances), a solve with Teff, log g
    # and vt held and not adopted, then the abundances at given parameters
    solved = _cli_json(["session", "solve", str(cli_copy), "--json", *options(start)], capsys)
    held = _cli_json(["session", "solve", str(cli_copy), "--json", *fixes, "--no-adopt"], capsys)
    at_given = _cli_json(
        ["session", "abundances", str(cli_copy), "--json", *options(given)], capsys
    )

    config = ServeConfig(archive=Archive(tmp_path / "root"), database_url=None, sessions=[web_copy])
    client = TestClient(create_app(config), base_url="http://127.0.0.1:8000")
    url = client.get("/session/open?cli=0", follow_redirects=False).headers["location"]
    token = client.get(url).text.split('name="csrf-token" content="')[1].split('"')[0]
    before = client.get(url + "api/parameters").json()
    assert before["adopted"] is None
    assert before["abundances"] is None
    assert before["item"] is None

    def post(action: str, body: dict[str, Any]) -> Any:
        response = client.post(url + f"api/{action}", json=body, headers={"X-CSRF-Token": token})
        assert response.status_code == 200, response.text
        return response.json()

    web_solved = post("solve", {"initial": start})
    view = web_solved["view"]
    at_solution = Path(post("save", {"filename": "star-solved.smh"})["path"])
    web_held = post("solve", {"fixed": held_at, "adopt": False, "abundances": False})
    web_given = post("abundances", {"parameters": given})
    saved = Path(post("save", {"filename": "star-web.smh"})["path"])

    # what is reported is what the command line prints, apart from the time it took
    for by_cli, by_web in ((solved, web_solved), (held, web_held), (at_given, web_given)):
        assert _comparable(by_web["report"]) == _comparable(by_cli)
    assert solved["converged"]
    assert web_held["report"]["logg"] == 1.61
    assert web_held["report"]["logg_error"] == 0.0
    assert "abundances" not in web_held["report"]
    # the session is the same
    assert _comparable(Session.load(cli_copy).state) == _comparable(Session.load(saved).state)
    assert view["adopted"]["teff"] == solved["teff"]
    assert _comparable(view["abundances"]["species"]) == _comparable(solved["abundances"])
    # the plotted Fe I slopes: least squares over the stored line abundances (computed at the
    # solution) of the Fe I lines the solve used, checked against numpy's polyfit
    assert view["slopes_from_solved_lines"]
    assert view["slopes"]["n"] == solved["fe1"]["n"]
    state = Session.load(at_solution).state
    used = set(
        state["stellar_parameters"]["methods"]["excitation-ionisation"]["inputs"]["line_hashes"]
    )
    lines = state["spectral_lines"]
    fe1 = [
        (lines[m["line_hash"]], m)
        for m in state["measurements"].values()
        if m["line_hash"] in used and lines[m["line_hash"]]["species"] == 26.0
    ]
    assert len(fe1) == solved["fe1"]["n"]
    abundance = [m["abundances"]["Fe"] for _, m in fe1]
    ep = [line["expot"] for line, _ in fe1]
    rw = [np.log10(m["ew"] * 1e-3 / line["wavelength"]) for line, m in fe1]
    slopes = view["slopes"]
    assert slopes["ep"]["slope"] == pytest.approx(np.polyfit(ep, abundance, 1)[0], abs=1e-9)
    assert slopes["rw"]["slope"] == pytest.approx(np.polyfit(rw, abundance, 1)[0], abs=1e-9)
    # and they are the solve's balance conditions (its own runs of the code) to within what
    # MOOG reproduces from one run to another (±0.003 dex per line): a tenth of the
    # conditions' convergence scales
    conditions = solved["conditions"]
    assert slopes["ep"]["slope"] == pytest.approx(
        conditions["slope_excitation_potential"], abs=5e-4
    )
    assert slopes["rw"]["slope"] == pytest.approx(conditions["slope_reduced_ew"], abs=2e-3)
    assert view["item"] is not None
    # at other parameters than the solution every Fe I line enters the slopes
    assert not web_given["view"]["slopes_from_solved_lines"]


def test_without_a_radiative_transfer_code_the_workbench_says_how(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = build_session(tmp_path / "made")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))  # no MOOG build
    config = ServeConfig(
        archive=Archive(tmp_path / "root"), database_url=None, sessions=[source],
        physics={"radiative_transfer": "moog", "moog_auto_build": False},
    )  # fmt: skip
    client = TestClient(create_app(config), base_url="http://127.0.0.1:8000")
    url = client.get("/session/open?cli=0", follow_redirects=False).headers["location"]
    token = client.get(url).text.split('name="csrf-token" content="')[1].split('"')[0]
    view = client.get(url + "api/parameters").json()
    assert view["codes"]["moog"] is False
    for action in ("solve", "abundances"):
        response = client.post(url + f"api/{action}", json={}, headers={"X-CSRF-Token": token})
        assert response.status_code == 400
        assert response.json()["error"] == (
            "MOOG is not installed: run `photonpipe session install-moog` (needs gfortran)"
        )


@pytest.fixture(scope="module")
def archive_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("site") / "archive"
    build_archive(root)
    return root


def test_lightcurve_site_writes_the_served_pages(archive_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "site"
    assert main(["--archive", str(archive_root), "lightcurve", "site", str(out)]) == 0
    index = (out / "index.html").read_text()
    pages = sorted(p.name for p in (out / "targets").iterdir())
    assert pages == ["STAR-A.html", "STAR-C.html"]
    for name in ("bokeh/bokeh.min.js", "archive.js", "style.css"):
        assert (out / "static" / name).is_file()
    copied = sorted(p.relative_to(out / "files") for p in (out / "files").rglob("*.*"))
    assert len(copied) == 10  # 3 individual + 2 composites, each FITS and PNG
    for relative in copied:
        assert (out / "files" / relative).read_bytes() == (archive_root / relative).read_bytes()
    for html in [index, *((out / "targets" / p).read_text() for p in pages)]:
        assert "http://" not in html.replace("http://www.w3.org", "")
        assert "https://" not in html
        for src in html.split('src="')[1:]:
            assert (out / "targets" / src.split('"')[0]).resolve().is_file() or (
                out / src.split('"')[0]
            ).is_file()
    # the same page as served, apart from the server's own link in the header
    config = ServeConfig(
        archive=Archive(archive_root), database_url=f"sqlite:///{archive_root}/photonpipe.db"
    )
    served = TestClient(create_app(config), base_url="http://127.0.0.1:8000").get("/lightcurves/")
    assert served.text.replace('· <a href="../">photonpipe serve</a>', "") == index
    # written again: replaced; a directory holding something else: refused, untouched
    assert main(["--archive", str(archive_root), "lightcurve", "site", str(out)]) == 0
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    assert main(["--archive", str(archive_root), "lightcurve", "site", str(other)]) == 2
    assert sorted(p.name for p in other.iterdir()) == ["keep.txt"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert main(["--archive", str(tmp_path / "none"), "lightcurve", "site", str(out)]) == 2
    assert not (tmp_path / "none").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_binds_loopback_and_stops_on_ctrl_c(archive_root: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHOTONPIPE_")}
    with subprocess.Popen(
        [sys.executable, "-m", "photonpipe", "--archive", str(archive_root), "serve",
         "--port", str(port), "--read-only"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    ) as process:  # fmt: skip
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            assert line.startswith(f"photonpipe serve: http://127.0.0.1:{port}/"), line
            deadline = time.monotonic() + 60
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/lightcurves/") as r:
                        page = r.read().decode()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            assert "STAR-A" in page
            listening = subprocess.run(
                ["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=False
            ).stdout
            if listening:  # ss is there: the socket is bound to loopback only
                assert f"127.0.0.1:{port}" in listening
                assert f"0.0.0.0:{port}" not in listening
        finally:
            process.send_signal(signal.SIGINT)
            _, errors = process.communicate(timeout=30)
    assert process.returncode == 0, errors


def test_serve_refuses_a_missing_session(tmp_path: Path) -> None:
    assert main(["serve", "--session", str(tmp_path / "missing.smh")]) == 2


def test_plain_serve_after_the_demo_serves_its_archive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`photonpipe demo` then `photonpipe serve` (no archive given) in the same directory.

    The demo here runs no application (its platform part only: archive, marker, database,
    index.html); test_browser's slow test runs the applications and browses them.
    """
    from photonpipe import demo as demo_module

    monkeypatch.setattr(demo_module, "demo_steps", list)
    monkeypatch.chdir(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHOTONPIPE_")}
    for key in [k for k in os.environ if k.startswith("PHOTONPIPE_")]:
        monkeypatch.delenv(key)
    assert main(["demo"]) == 0
    demo = tmp_path / "photonpipe-demo"
    page = (demo / "index.html").read_text()
    assert 'href="http://127.0.0.1:8000/lightcurves/"' in page
    assert "open in photonpipe serve: light-curve archive" in page
    port = _free_port()
    with subprocess.Popen(
        [sys.executable, "-m", "photonpipe", "serve", "--port", str(port)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as process:  # fmt: skip
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            assert line.startswith(f"photonpipe serve: http://127.0.0.1:{port}/ (archive {demo})")
            deadline = time.monotonic() + 60
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/files/index.html") as r:
                        served = r.read().decode()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            assert served == page
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/lightcurves/") as r:
                assert "Light-curve archive" in r.read().decode()
        finally:
            process.send_signal(signal.SIGINT)
            _, errors = process.communicate(timeout=30)
    assert process.returncode == 0, errors
    assert f"serving the demo archive {demo}" in errors


def test_serve_uses_the_demo_archive_only_when_nothing_else_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from photonpipe.cli.web_commands import _demo_archive_settings
    from photonpipe.demo import DEMO_MARKER
    from photonpipe.platform.config import load_settings

    monkeypatch.chdir(tmp_path)
    plain = load_settings(None, env={})
    assert _demo_archive_settings(plain) is plain  # no demo here
    (tmp_path / "photonpipe-demo").mkdir()
    assert _demo_archive_settings(plain) is plain  # not a demo archive (no marker)
    (tmp_path / "photonpipe-demo" / DEMO_MARKER).write_text("demo\n")
    found = _demo_archive_settings(plain)
    assert found["archive.root"] == tmp_path / "photonpipe-demo"
    given = load_settings(None, env={"PHOTONPIPE_ARCHIVE_ROOT": str(tmp_path / "mine")})
    assert _demo_archive_settings(given) is given
    url = load_settings(None, env={"PHOTONPIPE_DATABASE_URL": "sqlite:///x.db"})
    assert _demo_archive_settings(url) is url
    (tmp_path / "photonpipe-archive").mkdir()
    assert _demo_archive_settings(plain) is plain  # the default archive exists: it is served
