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

pytest.importorskip("starlette")

from starlette.testclient import TestClient

from helpers.web import build_archive, build_session
from photonpipe.cli.main import main
from photonpipe.platform.archive import Archive
from photonpipe.stellar.session import Session
from photonpipe.web.app import ServeConfig, create_app

#: State keys that hold when something was done, not what.
VOLATILE = {"time", "fitted", "measured", "modified", "history"}


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


def test_without_the_web_extra_the_commands_say_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # as if it were not installed
    assert main(["serve"]) == 2
    assert main(["lightcurve", "site", str(tmp_path / "out")]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert errors == [
        "photonpipe: error: photonpipe serve needs the 'web' extra: pip install 'photonpipe[web]'",
        (
            "photonpipe: error: photonpipe lightcurve site needs the 'web' extra: "
            "pip install 'photonpipe[web]'"
        ),
    ]
    assert not (tmp_path / "out").exists()
