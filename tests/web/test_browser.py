"""The pages in a real browser: Debian's headless chromium driven by Selenium.

No browser is downloaded: the tests use /usr/bin/chromium and /usr/bin/chromedriver (apt
packages chromium and chromium-driver; .ci/run installs them) and skip, saying so, when either
is missing. The server runs in a thread on a free loopback port; every page must load only from
it. A failing test leaves a screenshot in its temporary directory.
"""

# ruff: noqa: E402  (imports after the importorskip of selenium)
from __future__ import annotations

import json
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

webdriver = pytest.importorskip("selenium.webdriver")

from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.actions.wheel_input import ScrollOrigin
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from helpers.stellar_physics import moog_or_skip
from helpers.web import build_archive, build_demo_session, build_session
from photonpipe.cli.main import main
from photonpipe.platform.archive import Archive
from photonpipe.stellar.session import Session
from photonpipe.web.app import ServeConfig, create_app

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--window-size=1300,1100",
)

pytestmark = pytest.mark.skipif(
    not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()),
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium "
    "chromium-driver): /usr/bin/chromium or /usr/bin/chromedriver is missing",
)


@pytest.fixture(scope="module")
def archive_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("browser") / "archive"
    build_archive(root)
    build_session(root / "stellar")
    build_demo_session(root / "demo-stellar")  # enough Fe lines to solve
    return root


@pytest.fixture(scope="module")
def server(archive_root: Path) -> Iterator[str]:
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    config = ServeConfig(
        archive=Archive(archive_root), database_url=f"sqlite:///{archive_root}/photonpipe.db"
    )
    server = uvicorn.Server(
        uvicorn.Config(create_app(config), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="photonpipe-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """The browser, with a screenshot in the test's tmp_path when the test fails."""
    yield browser
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        shot = tmp_path / "failure.png"
        browser.save_screenshot(str(shot))
        print(f"screenshot of the failure: {shot}")


def _wait(driver: Any, condition: Callable[[Any], Any], seconds: float = 60) -> Any:
    try:
        return WebDriverWait(driver, seconds, poll_frequency=0.1).until(condition)
    except TimeoutException:
        raise AssertionError(
            f"timed out; page says: {driver.find_element(By.TAG_NAME, 'body').text[:500]}"
        ) from None


def _only_local_resources(driver: Any, origin: str) -> None:
    urls = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name).concat([location.href])"
    )
    assert urls
    outside = [u for u in urls if not u.startswith((origin, "file://", "blob:", "data:"))]
    assert not outside, f"the page loaded from elsewhere: {outside}"


def _visible_datasets(driver: Any) -> list[str]:
    rows = driver.find_elements(By.CSS_SELECTOR, "#datasets tbody tr")
    return [r.find_element(By.TAG_NAME, "td").text for r in rows if r.is_displayed()]


def test_archive_table_search_sort_and_plot_zoom(page: Any, server: str) -> None:
    page.get(server + "/lightcurves/")
    assert _visible_datasets(page) == ["lfa01abq", "lfa02abq", "ofc01abq"]
    box = page.find_element(By.ID, "search")
    box.send_keys("g140l")
    assert _visible_datasets(page) == ["ofc01abq"]
    assert page.find_element(By.ID, "search-count").text == "1 of 3 datasets"
    box.clear()
    box.send_keys(" ")  # an input event with an empty query shows everything again
    assert len(_visible_datasets(page)) == 3
    header = page.find_element(By.XPATH, "//table[@id='datasets']//th[text()='dataset']")
    header.click()
    header.click()  # descending
    assert _visible_datasets(page) == ["ofc01abq", "lfa02abq", "lfa01abq"]
    bad = page.find_element(By.ID, "bad-data").text
    assert "Bad EXPFLAG" in bad
    assert "lfb01abq" in bad
    _only_local_resources(page, server)

    page.find_element(By.LINK_TEXT, "STAR-A").click()
    _wait(page, lambda d: d.execute_script("return document.body.dataset.plotsReady"))
    plot = page.find_element(By.ID, "plot-p0")
    assert plot.get_attribute("data-ready") == "true"
    page.execute_script("arguments[0].scrollIntoView()", plot)
    # the light curve is the upper of the two plots (Bokeh draws inside a shadow root)
    origin = ScrollOrigin.from_element(plot, 0, -plot.size["height"] // 4)
    ActionChains(page).scroll_from_origin(origin, 0, -600).perform()
    label = page.find_element(By.ID, "zoom-p0")
    _wait(page, lambda d: label.get_attribute("data-end"))
    span = float(label.get_attribute("data-end")) - float(label.get_attribute("data-start"))
    variants = page.execute_script(
        "return JSON.parse(document.querySelector('script.variants[data-plot=p0]').textContent)"
    )
    times = [x for x in variants["FLUX"]["10"]["x"] if x is not None]
    assert 0 < span < 0.9 * (max(times) - min(times)), "the scroll did not zoom in time"
    assert label.text.startswith("shown: ")

    controls = page.find_element(By.CSS_SELECTOR, '.controls[data-plot="p0"]')
    Select(controls.find_element(By.CSS_SELECTOR, "select.quantity")).select_by_value("NET")
    Select(controls.find_element(By.CSS_SELECTOR, "select.binning")).select_by_value("50")
    assert controls.get_attribute("data-shown") == "NET/50"
    shown = page.execute_script(
        "const el = document.getElementById('plot-p0');"
        "for (const d of Bokeh.documents) { const s = d.get_model_by_name('p0-source');"
        " if (s) return s.data.y.length; } return -1;"
    )
    assert shown == len([y for y in variants["NET"]["50"]["y"] if y is not None])
    _only_local_resources(page, server)


def test_static_site_works_from_files(page: Any, archive_root: Path, tmp_path: Path) -> None:
    from photonpipe.platform.db import Database
    from photonpipe.web.site import write_site

    site = write_site(
        tmp_path / "site",
        Database(f"sqlite:///{archive_root}/photonpipe.db"),
        Archive(archive_root),
    )
    page.get((site.directory / "index.html").as_uri())
    page.find_element(By.ID, "search").send_keys("STAR-C")
    assert _visible_datasets(page) == ["ofc01abq"]
    page.find_element(By.LINK_TEXT, "STAR-C").click()
    _wait(page, lambda d: d.execute_script("return document.body.dataset.plotsReady"))
    assert page.find_element(By.ID, "plot-p0").get_attribute("data-ready") == "true"
    _only_local_resources(page, "file://")


def _n_lines(archive_root: Path) -> int:
    """EW measurements of the demo-like session the pages show (one table row each)."""
    from photonpipe.stellar.session import Session

    return len(Session.load(archive_root / "stellar" / "star.smh").measurements("ew"))


def test_workbench_reject_a_line_mask_and_save(page: Any, server: str, archive_root: Path) -> None:
    page.get(server + "/")
    page.find_element(By.LINK_TEXT, "stellar/star.smh").click()
    _wait(page, lambda d: d.execute_script("return document.body.dataset.ready"))
    _wait(page, lambda d: d.find_element(By.ID, "order-plot").get_attribute("data-ready") == "true")
    rows = page.find_elements(By.CSS_SELECTOR, "#lines tbody tr")
    assert len(rows) == _n_lines(archive_root)
    chosen = rows[4]
    key = chosen.get_attribute("data-key")
    chosen.click()
    _wait(page, lambda d: d.find_element(By.ID, "line-info").get_attribute("data-key") == key)
    _wait(page, lambda d: d.find_element(By.ID, "line-plot").get_attribute("data-ready") == "true")
    page.find_element(By.ID, "reject").click()
    message = page.find_element(By.ID, "message")
    _wait(page, lambda d: "rejected" in message.text)
    page.find_element(By.ID, "comment").send_keys("blended with Fe I")
    page.find_element(By.ID, "comment-save").click()
    _wait(page, lambda d: "blended with Fe I" in d.find_element(By.ID, "line-info").text)
    row = page.find_element(By.CSS_SELECTOR, f'#lines tr[data-key="{key}"]')
    assert "rejected" in row.get_attribute("class")

    page.find_element(By.ID, "mask-start").send_keys("4915.0")
    page.find_element(By.ID, "mask-end").send_keys("4916.0")
    page.find_element(By.ID, "mask-add").click()
    _wait(page, lambda d: "4915.00–4916.00" in d.find_element(By.ID, "masks").text)
    page.find_element(By.CSS_SELECTOR, 'button.mode[data-mode="point"]').click()
    order_plot = page.find_element(By.ID, "order-plot")
    page.execute_script("arguments[0].scrollIntoView()", order_plot)
    upper = -order_plot.size["height"] // 4  # the flux plot, above the normalised one
    ActionChains(page).move_to_element_with_offset(order_plot, 0, upper).click().perform()
    _wait(page, lambda d: d.find_element(By.ID, "points").text not in ("", "none"))

    name = page.find_element(By.ID, "save-name")
    name.clear()
    name.send_keys("from-browser.smh")
    page.find_element(By.ID, "save").click()
    _wait(page, lambda d: "saved" in message.text and "from-browser.smh" in message.text)
    assert page.find_element(By.LINK_TEXT, "from-browser.smh")
    _only_local_resources(page, server)

    saved = Session.load(archive_root / "stellar" / "from-browser.smh")
    m = saved.state["measurements"][key]
    assert not m["acceptable"]
    assert m["user_comment"] == "blended with Fe I"
    record = saved.state["normalization"]["orders"][0]
    assert (4915.0, 4916.0, "user") in [tuple(x) for x in record["masks"]]
    assert len(record["added_points"]) == 1
    original = Session.load(archive_root / "stellar" / "star.smh")
    assert original.state["measurements"][key]["acceptable"]  # the opened file is unchanged
    assert saved.files == original.files


def test_upload_opens_a_session(page: Any, server: str, archive_root: Path) -> None:
    page.get(server + "/")
    page.find_element(By.ID, "upload-file").send_keys(str(archive_root / "stellar" / "star.smh"))
    page.find_element(By.ID, "upload-button").click()
    _wait(page, lambda d: "/session/" in d.current_url)
    _wait(page, lambda d: d.execute_script("return document.body.dataset.ready"))
    assert len(page.find_elements(By.CSS_SELECTOR, "#lines tbody tr")) == _n_lines(archive_root)
    assert page.find_element(By.TAG_NAME, "h1").text == "Session star.smh"


def _reported(value: Any) -> Any:
    """A solve report without the time it took (the one field two runs cannot share)."""
    if isinstance(value, dict):
        return {k: _reported(v) for k, v in value.items() if k != "seconds"}
    return value


def test_workbench_solve_shows_what_the_command_line_gives(
    page: Any, server: str, archive_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    moog_or_skip()
    relative = "demo-stellar/stellar/hd122563_sim.smh"
    source = archive_root / relative
    page.get(server + "/")
    started = time.perf_counter()
    page.find_element(By.LINK_TEXT, relative).click()
    _wait(page, lambda d: d.execute_script("return document.body.dataset.ready"))
    loaded = time.perf_counter() - started
    plot = page.find_element(By.ID, "abundance-plot")
    assert plot.get_attribute("data-ready") == "empty"  # no abundance before the solve
    assert page.find_element(By.ID, "solve-result").text == "No stellar parameters yet."
    assert "radiative-transfer code: auto (available here: moog" in (
        page.find_element(By.ID, "physics-note").text
    )

    start = {"teff": 4500.0, "logg": 1.5, "vt": 2.0, "feh": -2.5}
    for name, value in start.items():
        page.find_element(By.ID, f"start-{name}").send_keys(str(value))
    page.find_element(By.ID, "solve").click()
    message = page.find_element(By.ID, "message")
    _wait(page, lambda d: "solved in" in message.text or "error" in message.get_attribute("class"),
          seconds=900)  # fmt: skip
    assert "solved in" in message.text, message.text
    _wait(page, lambda d: plot.get_attribute("data-ready") == "true")
    solve_seconds = float(page.execute_script("return document.body.dataset.solveSeconds"))
    result = page.find_element(By.ID, "solve-result")
    shown = json.loads(result.get_attribute("data-last-report"))
    adopted = json.loads(result.get_attribute("data-report"))

    # the command line on a copy of the same session file, with the same starting values
    copy = tmp_path / "star.smh"
    shutil.copyfile(source, copy)
    capsys.readouterr()
    options = [x for k, v in start.items() for x in (f"--{k}", str(v))]
    assert main(["session", "solve", str(copy), "--json", *options]) == 0
    by_cli = json.loads(capsys.readouterr().out)
    assert _reported(shown) == _reported(by_cli)
    assert _reported(adopted) == _reported({k: v for k, v in by_cli.items() if k != "abundances"})

    # what the page says is that result
    text = result.text
    for expected in (
        f"Teff {by_cli['teff']:.0f} ± {by_cli['teff_error']:.0f} K",
        f"log g {by_cli['logg']:.2f} ± {by_cli['logg_error']:.2f}",
        f"vt {by_cli['vt']:.2f} ± {by_cli['vt_error']:.2f} km/s",
        f"[M/H] {by_cli['feh']:.2f} ± {by_cli['feh_error']:.2f}",
        f"{by_cli['fe1']['n']} Fe I, {by_cli['fe2']['n']} Fe II lines",
    ):
        assert expected in text, (expected, text)
    assert text.startswith("adopted: excitation-ionisation")
    rows = page.find_elements(By.CSS_SELECTOR, "#species tbody tr")
    assert [r.get_attribute("data-species") for r in rows] == list(by_cli["abundances"])
    for row in rows:
        entry = by_cli["abundances"][row.get_attribute("data-species")]
        cells = [td.text for td in row.find_elements(By.TAG_NAME, "td")]
        if entry["n"]:
            assert cells[1:3] == [str(entry["n"]), f"{entry['mean']:.2f}"]
            assert cells[5] == f"{entry['x_h']:.2f}"

    # the two abundance plots, with the Fe I slopes of the solve's balance conditions
    titles = page.execute_script(
        "const doc = document.getElementById('abundance-plot').bokehDocument;"
        "return ['abundance-ep', 'abundance-rw'].map(n => doc.get_model_by_name(n).title.text);"
    )
    slopes = page.find_element(By.ID, "slopes")
    ep, rw = float(slopes.get_attribute("data-ep")), float(slopes.get_attribute("data-rw"))
    assert f"Fe I slope {ep:+.4f} dex/eV" in titles[0]
    assert f"Fe I slope {rw:+.4f} dex/dex" in titles[1]
    # the plotted lines' slopes are the solve's balance conditions to within MOOG's
    # run-to-run reproducibility (test_web_cli checks the slope itself against numpy)
    conditions = by_cli["conditions"]
    assert ep == pytest.approx(conditions["slope_excitation_potential"], abs=5e-4)
    assert rw == pytest.approx(conditions["slope_reduced_ew"], abs=2e-3)
    assert f"Fe I slope {conditions['slope_excitation_potential']:.4f} dex/eV" in text
    _only_local_resources(page, server)
    with capsys.disabled():
        print(
            f"\nworkbench of {relative}: page ready in {loaded:.2f} s; solve in the browser "
            f"{solve_seconds:.1f} s (the command line: {by_cli['seconds']:.1f} s of solving)"
        )


@pytest.mark.parametrize(
    "applications",
    [
        # the demo of the two applications the browser shows: ~4 min here; the whole: ~5 min
        pytest.param(
            ("light curves", "stellar"), id="browsed-applications", marks=pytest.mark.slow
        ),
        pytest.param(None, id="whole-demo", marks=pytest.mark.slow),
    ],
)
def test_demo_then_serve_browse_and_work_a_session(
    page: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, applications: Any
) -> None:
    """The quick start: `photonpipe demo`, then `photonpipe serve` in the same directory.

    Slow (the demo takes minutes); ``test_web_cli`` checks in the default run that a plain
    ``serve`` finds the demo's archive.
    """
    import os
    import re
    import signal
    import subprocess
    import sys

    monkeypatch.chdir(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHOTONPIPE_")}
    for key in [k for k in os.environ if k.startswith("PHOTONPIPE_")]:
        monkeypatch.delenv(key)
    if applications is not None:
        from photonpipe import demo as demo_module

        steps = [s for s in demo_module.demo_steps() if s[0] in applications]
        monkeypatch.setattr(demo_module, "demo_steps", lambda: steps)
    assert main(["demo"]) == 0
    demo = tmp_path / "photonpipe-demo"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    # no archive given: serve finds the demo's (--port only because 8000 may be taken here)
    with subprocess.Popen(
        [sys.executable, "-m", "photonpipe", "serve", "--port", str(port)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as process:  # fmt: skip
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            assert line.startswith(f"photonpipe serve: http://127.0.0.1:{port}/ (archive {demo})")
            server = f"http://127.0.0.1:{port}"
            page.get(demo.joinpath("index.html").as_uri())
            links = {
                a.text: a.get_attribute("href")
                for a in page.find_elements(By.TAG_NAME, "a")
                if a.text.startswith("open in photonpipe serve: ")
            }
            assert len(links) >= 2, links
            assert all(h.startswith("http://127.0.0.1:8000/") for h in links.values())
            served = {k: h.replace(":8000/", f":{port}/", 1) for k, h in links.items()}

            started = time.perf_counter()
            (archive_link,) = [h for k, h in served.items() if "light-curve archive" in k]
            page.get(archive_link)
            archive_seconds = time.perf_counter() - started
            datasets = _visible_datasets(page)
            assert datasets, "the demo archive shows no dataset"
            _only_local_resources(page, server)
            first_target = page.find_element(By.CSS_SELECTOR, "#targets tbody a")
            first_target.click()
            _wait(page, lambda d: d.execute_script("return document.body.dataset.plotsReady"))

            (session_link,) = [h for k, h in served.items() if "hd122563_sim.smh" in k]
            started = time.perf_counter()
            page.get(session_link)
            _wait(page, lambda d: d.execute_script("return document.body.dataset.ready"))
            workbench_seconds = time.perf_counter() - started
            rows = page.find_elements(By.CSS_SELECTOR, "#lines tbody tr")
            original = Session.load(demo / "stellar" / "hd122563_sim.smh")
            assert len(rows) == len(original.measurements("ew"))
            if original.state["stellar_parameters"].get("adopted"):  # the demo solved (MOOG)
                result = page.find_element(By.ID, "solve-result").text
                assert result.startswith("adopted: excitation-ionisation: Teff ")
                plot = page.find_element(By.ID, "abundance-plot")
                _wait(page, lambda d: plot.get_attribute("data-ready") == "true")
            key = rows[0].get_attribute("data-key")
            rows[0].click()
            _wait(
                page, lambda d: d.find_element(By.ID, "line-info").get_attribute("data-key") == key
            )
            page.find_element(By.ID, "reject").click()
            message = page.find_element(By.ID, "message")
            _wait(page, lambda d: "rejected" in message.text)
            page.find_element(By.ID, "save").click()
            _wait(page, lambda d: "saved" in message.text)
            saved_name = re.search(r"hd122563_sim-edited-\d+\.smh", message.text)
            assert saved_name is not None, message.text
            _only_local_resources(page, server)
        finally:
            process.send_signal(signal.SIGINT)
            _, errors = process.communicate(timeout=30)
    assert process.returncode == 0, errors
    assert "serving the demo archive" in errors
    saved = Session.load(demo / "stellar" / saved_name.group(0))
    assert not saved.state["measurements"][key]["acceptable"]
    print(
        f"\ndemo then serve: archive page {archive_seconds:.2f} s, workbench ready "
        f"{workbench_seconds:.2f} s"
    )
