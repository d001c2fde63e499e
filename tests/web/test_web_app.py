"""photonpipe serve over HTTP (Starlette's test client): pages, downloads, workbench, security."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import pickle
import tarfile
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from helpers.web import build_archive, build_session
from photonpipe.lightcurves.catalog import archive_catalog
from photonpipe.platform.archive import Archive
from photonpipe.platform.db import Database
from photonpipe.stellar.session import Session
from photonpipe.web.app import ServeConfig, create_app

BASE = "http://127.0.0.1:8000"


@pytest.fixture(scope="module")
def archive_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("web") / "archive"
    build_archive(root)
    build_session(root / "stellar")
    return root


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    secret = tmp_path / "outside"
    secret.mkdir()
    (secret / "secret.fits").write_bytes(b"SECRET-BYTES")
    return secret


def _client(root: Path, **options: Any) -> TestClient:
    config = ServeConfig(archive=Archive(root), database_url=f"sqlite:///{root}/photonpipe.db")
    for key, value in options.items():
        setattr(config, key, value)
    return TestClient(create_app(config), base_url=BASE)


def _catalog(root: Path) -> Any:
    return archive_catalog(Database(f"sqlite:///{root}/photonpipe.db"), Archive(root))


def _open(client: TestClient, path: str = "stellar/star.smh") -> tuple[str, str]:
    response = client.get("/session/open", params={"path": path}, follow_redirects=False)
    assert response.status_code == 303, response.text
    url = response.headers["location"]
    page = client.get(url)
    assert page.status_code == 200
    token = page.text.split('name="csrf-token" content="')[1].split('"')[0]
    return url, token


def test_archive_pages_show_the_tables(archive_root: Path) -> None:
    client = _client(archive_root)
    home = client.get("/")
    assert home.status_code == 200
    assert "/lightcurves/" in home.text
    assert "stellar/star.smh" in home.text
    index = client.get("/lightcurves/")
    assert index.status_code == 200
    page = index.text
    for text in ("STAR-A", "STAR-C", "lfa01abq", "lfa02abq", "ofc01abq", "G130M", "G140L"):
        assert text in page
    assert "Bad EXPFLAG" in page
    assert "lfb01abq" in page
    assert "EXPFLAG = &#39;INTERRUPTED&#39;" in page or "INTERRUPTED" in page  # the detail
    assert "4 done" in page  # ingest status from the ledger (the rejection is done too)
    catalog = _catalog(archive_root)
    star = catalog.target(catalog.targets[0].key)
    assert star is not None
    assert star.name == "STAR-A"
    assert [d.dataset for d in star.datasets] == ["lfa01abq", "lfa02abq"]
    assert all(d.exposure and d.exposure > 250 for d in star.datasets)  # 300 s minus GTI gaps


def test_target_page_has_every_curve_and_downloads(archive_root: Path) -> None:
    client = _client(archive_root)
    catalog = _catalog(archive_root)
    star = catalog.targets[0]
    page = client.get(f"/lightcurves/targets/{star.key}.html")
    assert page.status_code == 200
    assert page.text.count('class="bokeh-item"') == 3  # composite + two datasets
    assert "false-alarm probability" in page.text
    variants = json.loads(
        page.text.split('class="variants" data-plot="p0">')[1].split("</script>")[0]
    )
    assert set(variants) == {"FLUX", "NET", "BACKGROUND"}
    assert set(variants["NET"]) >= {"10", "20", "50"}  # bin widths [s]
    # downloads: byte-identical to the archived products, and the quicklooks
    product = star.composites[0]
    response = client.get(f"/lightcurves/files/{product.path}")
    assert response.status_code == 200
    assert response.content == (archive_root / product.path).read_bytes()
    assert (
        client.get(f"/lightcurves/files/{product.quicklook}")
        .headers["content-type"]
        .startswith("image/png")
    )
    assert client.get("/lightcurves/targets/NOPE.html").status_code == 404
    js = client.get("/lightcurves/static/bokeh/bokeh.min.js")
    assert js.status_code == 200
    assert len(js.content) > 100_000


@pytest.mark.parametrize(
    "url",
    [
        "/files/%2e%2e/%2e%2e/etc/passwd",
        "/files/lightcurves/%2e%2e/photonpipe.db",
        "/files/photonpipe.db",
        "/files/.photonpipe-demo",
        "/lightcurves/files/..%2fphotonpipe.db",
        "/lightcurves/files/stellar/star.smh",  # outside lightcurves/
        "/files/%2Fetc%2Fpasswd",
        "/files/lightcurves%5C..%5Cphotonpipe.db",
        "/static/..%2f..%2fapp.py",
        "/session/open?path=..%2F..%2Fetc%2Fpasswd.smh",
        "/session/open?path=%2Fetc%2Fpasswd.smh",
        "/session/open?path=lightcurves%2Foutputs",
    ],
)
def test_traversal_is_refused(archive_root: Path, url: str) -> None:
    response = _client(archive_root).get(url, follow_redirects=False)
    assert response.status_code in (403, 404), response.text
    assert b"root:" not in response.content
    assert b"SQLite" not in response.content


def test_symlink_out_of_the_root_is_refused(archive_root: Path, outside: Path) -> None:
    link = archive_root / "lightcurves" / "outputs" / "leak.fits"
    link_dir = archive_root / "lightcurves" / "linked"
    link.symlink_to(outside / "secret.fits")
    link_dir.symlink_to(outside, target_is_directory=True)
    session_link = archive_root / "stellar" / "evil.smh"
    session_link.symlink_to(outside / "secret.fits")
    try:
        client = _client(archive_root)
        for url in (
            "/lightcurves/files/lightcurves/outputs/leak.fits",
            "/files/lightcurves/outputs/leak.fits",
            "/files/lightcurves/linked/secret.fits",
            "/session/open?path=stellar/evil.smh",
        ):
            response = client.get(url, follow_redirects=False)
            assert response.status_code == 403, url
            assert b"SECRET" not in response.content
        assert "evil.smh" not in client.get("/").text  # not listed either
    finally:
        link.unlink()
        link_dir.unlink()
        session_link.unlink()


def test_writes_need_the_session_token(archive_root: Path) -> None:
    client = _client(archive_root)
    url, token = _open(client)
    other_url, other_token = _open(client)
    summary = client.get(url + "api/summary").json()
    key = summary["lines"][0]["key"]
    body = {"line": key, "acceptable": False}
    assert client.post(url + "api/review", json=body).status_code == 403
    assert (
        client.post(url + "api/review", json=body, headers={"X-CSRF-Token": "x"}).status_code == 403
    )
    refused = client.post(url + "api/review", json=body, headers={"X-CSRF-Token": other_token})
    assert refused.status_code == 403
    assert "CSRF" in refused.json()["error"]
    cross = client.post(
        url + "api/review", json=body,
        headers={"X-CSRF-Token": token, "Origin": "http://evil.example"},
    )  # fmt: skip
    assert cross.status_code == 403
    assert client.get(url + "api/summary").json()["lines"][0]["acceptable"] is True
    assert client.post("/session/upload", content=b"x").status_code == 403
    for action in ("solve", "abundances"):  # the solve changes the session too
        refused = client.post(url + f"api/{action}", json={}, headers={"X-CSRF-Token": "x"})
        assert refused.status_code == 403
        assert "CSRF" in refused.json()["error"]
    ok = client.post(url + "api/review", json=body, headers={"X-CSRF-Token": token})
    assert ok.status_code == 200
    assert ok.json()["line"]["acceptable"] is False
    assert client.get(other_url + "api/summary").json()["lines"][0]["acceptable"] is True


def test_oversized_bodies_are_refused(archive_root: Path) -> None:
    client = _client(archive_root, max_upload=4096)
    url, token = _open(client)
    big = b"{" + b" " * (2 << 20) + b"}"
    headers = {"X-CSRF-Token": token, "Content-Type": "application/json"}
    assert client.post(url + "api/review", content=big, headers=headers).status_code == 413

    def chunks() -> Any:  # no Content-Length: the bytes received are counted
        for _ in range(40):
            yield b" " * 65536

    assert client.post(url + "api/review", content=chunks(), headers=headers).status_code == 413
    home = client.get("/").text
    server_token = home.split('name="csrf-token" content="')[1].split('"')[0]
    upload = client.post(
        "/session/upload", content=b"\0" * 5000, headers={"X-CSRF-Token": server_token}
    )
    assert upload.status_code == 413


def test_host_header_must_name_this_server(archive_root: Path) -> None:
    client = _client(archive_root)
    assert client.get("/", headers={"Host": "evil.example"}).status_code == 421
    assert client.get("/", headers={"Host": "localhost:8000"}).status_code == 200


def _evil_session(marker: Path) -> bytes:
    class Exploit:
        def __reduce__(self) -> Any:
            import os

            return (os.system, (f"touch {marker}",))

    payload = pickle.dumps({"schema_version": 2, "x": Exploit()}, protocol=2)
    raw = io.BytesIO()
    with gzip.GzipFile(fileobj=raw, mode="wb") as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        info = tarfile.TarInfo("session.pkl")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    return raw.getvalue()


def test_uploads_go_through_the_safe_loader(archive_root: Path, tmp_path: Path) -> None:
    client = _client(archive_root)
    server_token = client.get("/").text.split('name="csrf-token" content="')[1].split('"')[0]
    headers = {"X-CSRF-Token": server_token, "X-Filename": "evil.smh"}
    marker = tmp_path / "pwned"
    refused = client.post("/session/upload", content=_evil_session(marker), headers=headers)
    assert refused.status_code == 400
    assert "evil.smh" in refused.json()["error"]
    assert "refused" in refused.json()["error"]
    assert not marker.exists()
    good = (archive_root / "stellar" / "star.smh").read_bytes()
    opened = client.post("/session/upload", content=good, headers=headers)
    assert opened.status_code == 200
    url = opened.json()["url"]
    summary = client.get(url + "api/summary").json()
    expected = len(Session.load(archive_root / "stellar" / "star.smh").measurements("ew"))
    assert expected > 10
    assert summary["summary"]["ew_measurements"] == expected
    assert not (archive_root / "stellar" / "workbench").exists()  # nothing written yet
    token = client.get(url).text.split('name="csrf-token" content="')[1].split('"')[0]
    saved = client.post(
        url + "api/save", json={"filename": "up.smh"}, headers={"X-CSRF-Token": token}
    )
    assert saved.status_code == 200
    written = archive_root / "stellar" / "workbench" / "up.smh"
    assert Session.load(written).files == Session.load(archive_root / "stellar" / "star.smh").files
    written.unlink()


def test_read_only_refuses_every_write(archive_root: Path) -> None:
    client = _client(archive_root, read_only=True)
    url, token = _open(client)
    page = client.get(url).text
    assert "--read-only" in page
    headers = {"X-CSRF-Token": token}
    key = client.get(url + "api/summary").json()["lines"][0]["key"]
    for action, body in (
        ("review", {"line": key, "acceptable": False}),
        ("refit", {"lines": None}),
        ("normalize", {"order": 0}),
        ("solve", {}),
        ("abundances", {}),
        ("save", {"filename": "x.smh"}),
    ):
        response = client.post(url + f"api/{action}", json=body, headers=headers)
        assert response.status_code == 403
        assert "read-only" in response.json()["error"]
    assert client.get(url + "api/parameters").status_code == 200  # looking is allowed
    assert 'id="upload-file"' not in client.get("/").text
    assert not (archive_root / "stellar" / "x.smh").exists()


def test_workbench_actions_and_save(archive_root: Path) -> None:
    client = _client(archive_root)
    url, token = _open(client)
    headers = {"X-CSRF-Token": token}
    source = archive_root / "stellar" / "star.smh"
    before = hashlib.sha256(source.read_bytes()).hexdigest()
    order = client.get(url + "api/order/0").json()
    assert order["options"]["normalized"]
    assert order["options"]["function"] == "spline"
    lo = order["options"]["masks"]
    assert lo == []
    fitted = client.post(
        url + "api/normalize",
        json={**order["options"], "order": 0, "masks": [[4910.0, 4912.0]],
              "added_points": [[4930.0, 1.0e4, 1.0]]},
        headers=headers,
    ).json()  # fmt: skip
    assert fitted["masks"] == [[4910.0, 4912.0]]
    assert fitted["added_points"] == [[4930.0, 1.0e4, 1.0]]
    lines = client.get(url + "api/summary").json()["lines"]
    key = lines[3]["key"]
    detail = client.get(url + f"api/line/{key}").json()
    assert detail["item"]["doc"]
    assert detail["line"]["key"] == key
    reviewed = client.post(
        url + "api/review",
        json={"line": key, "acceptable": False, "upper_limit": True, "comment": "blend"},
        headers=headers,
    ).json()["line"]
    assert not reviewed["acceptable"]
    assert reviewed["is_limit"]
    assert reviewed["user_comment"] == "blend"
    bad = client.post(url + "api/normalize", json={"order": 99}, headers=headers)
    assert bad.status_code == 400
    assert "no order 99" in bad.json()["error"]
    bad = client.post(url + "api/review", json={"line": key, "acceptable": "no"}, headers=headers)
    assert bad.status_code == 400
    refused = client.post(url + "api/save", json={"filename": "star.smh"}, headers=headers)
    assert refused.status_code == 400
    assert "opened" in refused.json()["error"]
    for name in ("../x.smh", "x.txt", ".hidden.smh"):
        assert (
            client.post(url + "api/save", json={"filename": name}, headers=headers).status_code
            == 400
        )
    saved = client.post(url + "api/save", json={"filename": "star-edited.smh"}, headers=headers)
    assert saved.status_code == 200
    written = archive_root / "stellar" / "star-edited.smh"
    again = Session.load(written)
    m = again.state["measurements"][key]
    assert not m["acceptable"]
    assert m["is_limit"]
    assert "blend" in m["comments"]
    assert again.state["normalization"]["orders"][0]["added_points"] == [(4930.0, 1.0e4, 1.0)]
    original = Session.load(source)
    assert again.files == original.files  # input spectra byte-identical
    assert hashlib.sha256(source.read_bytes()).hexdigest() == before  # opened file untouched
    download = client.get(url + "download/star-edited.smh")
    assert download.status_code == 200
    assert download.content == written.read_bytes()
    written.unlink()


def test_demo_page_links_open_the_served_views(archive_root: Path) -> None:
    from photonpipe.demo import _browser_section

    section = _browser_section(Archive(archive_root))
    client = _client(archive_root)
    targets = [link for _, link in section.links]
    assert targets[0] == "http://127.0.0.1:8000/lightcurves/"
    assert any("stellar%2Fstar.smh" in t or "stellar/star.smh" in t for t in targets)
    for target in targets:
        response = client.get(target.removeprefix(BASE), follow_redirects=True)
        assert response.status_code == 200, target
