"""The ASGI application of ``photonpipe serve`` (Starlette).

URLs::

    /                                   home: the archive's views, sessions to open, upload
    /lightcurves/  /lightcurves/targets/KEY.html    the light-curve archive pages
    /lightcurves/files/PATH             products under <root>/lightcurves/
    /files/PATH                         any other file under the archive root (the demo page)
    /static/NAME  /lightcurves/static/NAME          photonpipe's and Bokeh's scripts
    /session/open?path=REL | ?cli=N     open a session under the root / given on the command line
    /session/upload                     POST a .smh file (read with the safe loader)
    /session/ID/                        the workbench of an opened session
    /session/ID/api/...                 its data (GET: summary, order/N, line/KEY, parameters)
                                        and actions (POST with its token: normalize, review,
                                        refit, solve, abundances, save)

Handlers are plain functions, run in Starlette's thread pool, that call the applications'
APIs. See :mod:`photonpipe.web.security` for the checks every request passes.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Route

from photonpipe.errors import PhotonpipeError
from photonpipe.lightcurves.catalog import Catalog, archive_catalog
from photonpipe.platform.archive import Archive
from photonpipe.platform.db import Database
from photonpipe.stellar.analysis import Physics, make_physics
from photonpipe.stellar.radiative_transfer import available_codes
from photonpipe.stellar.session import Session
from photonpipe.web import pages
from photonpipe.web.security import (
    TOKEN_HEADER,
    GuardMiddleware,
    RefusedPath,
    archive_file,
    check_relative_path,
    new_token,
    token_ok,
)
from photonpipe.web.site import archive_index_page, static_files, target_page_html
from photonpipe.web.workbench import ActionError, OpenSession

#: Largest body of a request other than an upload [bytes].
MAX_REQUEST_BYTES = 1 << 20
#: Default largest uploaded session file [bytes].
DEFAULT_MAX_UPLOAD = 256 << 20
#: Most sessions open at once (the least recently opened is closed first).
MAX_OPEN_SESSIONS = 16
#: Most session files listed from the archive root.
MAX_LISTED_SESSIONS = 500
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass
class ServeConfig:
    """What ``photonpipe serve`` serves.

    Attributes
    ----------
    archive : Archive
        The archive root: files under it may be served.
    database_url : str or None
        The archive's database; None when there is none (no light-curve archive).
    read_only : bool
        Refuse every write (session edits, saves, uploads).
    sessions : list of Path
        Session files given on the command line (openable, saved beside themselves).
    max_upload : int
        Largest session upload [bytes].
    allowed_hosts : tuple of str
        Host names the server answers to (``*``: any).
    physics : dict
        The ``stellar`` settings of the solve and the abundances: ``atmospheres`` (grid
        directory or None), ``radiative_transfer`` (auto, moog, sme), ``moog`` (executable or
        None), ``moog_auto_build`` (bool), as :func:`~photonpipe.stellar.analysis.make_physics`
        takes them; missing keys take the settings' defaults.
    """

    archive: Archive
    database_url: str | None
    read_only: bool = False
    sessions: list[Path] = field(default_factory=list)
    max_upload: int = DEFAULT_MAX_UPLOAD
    allowed_hosts: tuple[str, ...] = LOOPBACK_HOSTS
    physics: dict[str, Any] = field(default_factory=dict)


class _State:
    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.token = new_token()  # for the home page's upload form
        self.open: OrderedDict[str, OpenSession] = OrderedDict()
        self.lock = threading.Lock()
        self._database: Database | None = None
        self._physics: Physics | None = None
        self._physics_lock = threading.Lock()  # not self.lock: building MOOG takes a minute
        self.static = static_files()

    def physics(self) -> Physics:
        """Return the model atmospheres and radiative-transfer code (made once, on first use).

        Raises ``NoRadiativeTransferError`` (saying how to get a code) each time none is
        available, so that installing one while the server runs is noticed.
        """
        with self._physics_lock:
            if self._physics is None:
                options = self.config.physics
                self._physics = make_physics(
                    options.get("atmospheres"),
                    options.get("radiative_transfer", "auto"),
                    options.get("moog"),
                    build=options.get("moog_auto_build", True),
                )
            return self._physics

    def database(self) -> Database | None:
        url = self.config.database_url
        if url is None:
            return None
        if self._database is None:
            self._database = Database(url, auto_upgrade=False)
        return self._database

    def add(self, opened: OpenSession) -> OpenSession:
        with self.lock:
            self.open[opened.id] = opened
            while len(self.open) > MAX_OPEN_SESSIONS:
                self.open.popitem(last=False)
        return opened

    def get(self, session_id: str) -> OpenSession:
        with self.lock:
            opened = self.open.get(session_id)
        if opened is None:
            raise _HTTPProblemError(404, "no such open session (it may have been closed)")
        return opened


class _HTTPProblemError(PhotonpipeError):
    """A request the views answer with an HTTP error ``status`` and a one-line message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _state(request: Request) -> _State:
    state: _State = request.app.state.photonpipe
    return state


def _catalog(state: _State) -> tuple[Catalog | None, str]:
    database = state.database()
    if database is None:
        return None, f"no light-curve archive database in {state.config.archive.root}"
    try:
        if database.current_revision() != database.head_revision():
            return None, "the database schema is not up to date: run `photonpipe db upgrade`"
        return archive_catalog(database, state.config.archive), ""
    except PhotonpipeError as exc:
        return None, str(exc)


# --- pages --------------------------------------------------------------------------------------


def _archive_sessions(archive: Archive) -> list[str]:
    root = archive.root
    found: list[str] = []
    if not root.is_dir():
        return found
    for directory, subdirs, files in os.walk(root):  # does not follow symbolic links
        top = Path(directory) == root
        # the light-curve area holds only FITS files, possibly very many
        subdirs[:] = sorted(
            d for d in subdirs if not d.startswith(".") and not (top and d == "lightcurves")
        )
        for name in sorted(files):
            if name.endswith(".smh") and not name.startswith("."):
                path = Path(directory) / name
                if not path.is_symlink():
                    found.append(path.relative_to(root).as_posix())
                    if len(found) >= MAX_LISTED_SESSIONS:
                        return found
    return found


def home(request: Request) -> Response:
    """Render the home page."""
    state = _state(request)
    archive = state.config.archive
    with state.lock:
        open_sessions = list(state.open.values())
    html = pages.render(
        "home.html",
        rel="/",
        live=True,
        root=str(archive.root),
        has_archive=state.database() is not None,
        demo_page=(archive.root / "index.html").is_file(),
        cli_sessions=[(i, p) for i, p in enumerate(state.config.sessions)],
        archive_sessions=_archive_sessions(archive),
        open_sessions=open_sessions,
        read_only=state.config.read_only,
        token=state.token,
        max_upload=state.config.max_upload,
    )
    return HTMLResponse(html)


def lightcurve_index(request: Request) -> Response:
    """Render the light-curve archive's front page."""
    state = _state(request)
    catalog, problem = _catalog(state)
    if catalog is None:
        return HTMLResponse(
            pages.render(
                "message.html", rel="", live=True, title="Light-curve archive", message=problem
            )
        )
    return HTMLResponse(archive_index_page(catalog, state.config.archive, live=True))


def lightcurve_target(request: Request) -> Response:
    """Render one target's page."""
    state = _state(request)
    catalog, problem = _catalog(state)
    if catalog is None:
        return PlainTextResponse(problem, status_code=404)
    target = catalog.target(request.path_params["key"])
    if target is None:
        return PlainTextResponse("no such target", status_code=404)
    return HTMLResponse(target_page_html(catalog, state.config.archive, target, live=True))


def _file(request: Request, under: str | None) -> Response:
    state = _state(request)
    try:
        path = archive_file(state.config.archive, request.path_params["path"], under=under)
    except RefusedPath as exc:
        return PlainTextResponse(f"refused: {exc}", status_code=403)
    except FileNotFoundError:
        return PlainTextResponse("no such file", status_code=404)
    return FileResponse(path)


def lightcurve_file(request: Request) -> Response:
    """Serve a file under ``<root>/lightcurves/``."""
    return _file(request, "lightcurves")


def archive_file_response(request: Request) -> Response:
    """Serve any other file under the archive root."""
    return _file(request, None)


def static(request: Request) -> Response:
    """Serve photonpipe's and Bokeh's scripts and style sheet (a fixed list of names)."""
    path = _state(request).static.get(request.path_params["path"])
    if path is None:
        return PlainTextResponse("no such file", status_code=404)
    return FileResponse(path)


# --- sessions -----------------------------------------------------------------------------------


def open_session(request: Request) -> Response:
    """Open a session file under the archive root (``?path=``) or from the command line."""
    state = _state(request)
    archive = state.config.archive
    try:
        if "cli" in request.query_params:
            try:
                source = state.config.sessions[int(request.query_params["cli"])]
            except (ValueError, IndexError):
                return PlainTextResponse("no such session", status_code=404)
        else:
            relative = request.query_params.get("path", "")
            if not relative.endswith(".smh"):
                return PlainTextResponse("refused: not a .smh session file", status_code=403)
            source = archive_file(archive, relative)
    except RefusedPath as exc:
        return PlainTextResponse(f"refused: {exc}", status_code=403)
    except FileNotFoundError:
        return PlainTextResponse("no such file", status_code=404)
    try:
        session = Session.load(source)
    except PhotonpipeError as exc:
        return PlainTextResponse(f"cannot open: {exc}", status_code=400)
    opened = state.add(
        OpenSession(session, source.name, source.parent, source, physics=state.physics)
    )
    return RedirectResponse(f"/session/{opened.id}/", status_code=303)


def _check_write(request: Request, token: str) -> None:
    state = _state(request)
    if state.config.read_only:
        raise _HTTPProblemError(403, "the server runs with --read-only: nothing can be changed")
    if not token_ok(token, request.headers.get(TOKEN_HEADER)):
        raise _HTTPProblemError(403, "missing or wrong CSRF token")
    origin = request.headers.get("origin")
    if origin is not None and origin not in (
        f"{request.url.scheme}://{request.headers.get('host', '')}",
    ):
        raise _HTTPProblemError(403, "request from another origin")


async def upload_session(request: Request) -> Response:
    """Open an uploaded session file: written to a private temporary file, loaded safely."""
    state = _state(request)
    try:
        _check_write(request, state.token)
    except _HTTPProblemError as exc:
        return _error(exc.status, exc.message)
    body = await request.body()
    name = request.headers.get("x-filename", "upload.smh")
    label = Path(name).name or "upload.smh"
    with tempfile.TemporaryDirectory(prefix="photonpipe-upload-") as scratch:
        path = Path(scratch) / "upload.smh"
        path.write_bytes(body)
        try:
            session = Session.load(path)
        except PhotonpipeError as exc:
            return _error(400, f"{label}: {str(exc).removeprefix(str(path) + ': ')}")
    save_dir = state.config.archive.root / "stellar" / "workbench"  # created when saving
    opened = state.add(OpenSession(session, label, save_dir, None, physics=state.physics))
    return JSONResponse({"url": f"/session/{opened.id}/"})


def workbench_page(request: Request) -> Response:
    """Render the workbench of an opened session."""
    state = _state(request)
    try:
        opened = state.get(request.path_params["sid"])
    except _HTTPProblemError as exc:
        return PlainTextResponse(exc.message, status_code=exc.status)
    html = pages.render(
        "workbench.html",
        rel="/",
        live=True,
        opened=opened,
        token=opened.token,
        read_only=state.config.read_only,
    )
    return HTMLResponse(html)


def _session_get(request: Request, what: str) -> Response:
    state = _state(request)
    try:
        opened = state.get(request.path_params["sid"])
        with opened.lock:
            if what == "summary":
                return JSONResponse(opened.summary())
            if what == "parameters":
                view = opened.parameters_view()
                view["codes"] = available_codes()
                view["code_setting"] = state.config.physics.get("radiative_transfer", "auto")
                return JSONResponse(view)
            if what == "order":
                index = int(request.path_params["index"])
                return JSONResponse(
                    {"item": opened.order_plot(index), "options": opened.order_options(index)}
                )
            return JSONResponse(opened.line_detail(request.path_params["key"]))
    except _HTTPProblemError as exc:
        return _error(exc.status, exc.message)
    except (ActionError, PhotonpipeError) as exc:
        return _error(400, str(exc))


def session_summary(request: Request) -> Response:
    """Return the orders and lines of an opened session."""
    return _session_get(request, "summary")


def session_order(request: Request) -> Response:
    """Return one order's plot and continuum settings."""
    return _session_get(request, "order")


def session_parameters(request: Request) -> Response:
    """Return the stellar parameters, abundances and abundance plots of an opened session."""
    return _session_get(request, "parameters")


def session_line(request: Request) -> Response:
    """Return one line's fit, residuals and review."""
    return _session_get(request, "line")


async def session_action(request: Request) -> Response:
    """Change an opened session: normalize, review, refit, solve, abundances or save (token).

    Solve and abundances run the radiative-transfer code (seconds to minutes); the session is
    locked meanwhile, so other actions on it wait.
    """
    state = _state(request)
    action = request.path_params["action"]
    if action not in ("normalize", "review", "refit", "solve", "abundances", "save"):
        return _error(404, f"no action {action!r}")
    try:
        opened = state.get(request.path_params["sid"])
        _check_write(request, opened.token)
    except _HTTPProblemError as exc:
        return _error(exc.status, exc.message)
    try:
        payload = json.loads(await request.body() or b"{}")
    except (ValueError, UnicodeDecodeError):
        return _error(400, "the request body is not JSON")
    if not isinstance(payload, dict):
        return _error(400, "the request body must be a JSON object")
    from starlette.concurrency import run_in_threadpool

    def act() -> Any:
        with opened.lock:
            if action == "normalize":
                return opened.normalize(payload)
            if action == "review":
                return opened.review(payload)
            if action == "refit":
                return opened.refit(payload)
            if action == "solve":
                return opened.solve(payload)
            if action == "abundances":
                return opened.abundances(payload)
            written = opened.save(payload)
            return {"saved": written.name, "path": str(written), "download": written.name}

    try:
        return JSONResponse(await run_in_threadpool(act))
    except (ActionError, PhotonpipeError) as exc:
        return _error(400, str(exc))


def session_download(request: Request) -> Response:
    """Serve a session file saved from this workbench session."""
    state = _state(request)
    try:
        opened = state.get(request.path_params["sid"])
    except _HTTPProblemError as exc:
        return PlainTextResponse(exc.message, status_code=exc.status)
    name = request.path_params["name"]
    try:
        check_relative_path(name)
    except RefusedPath as exc:
        return PlainTextResponse(f"refused: {exc}", status_code=403)
    for path in opened.saved:
        if path.name == name and path.is_file():
            return FileResponse(path, filename=name)
    return PlainTextResponse("no such saved file", status_code=404)


def create_app(config: ServeConfig) -> Any:
    """Build the ASGI application (wrapped in the request guard).

    Parameters
    ----------
    config : ServeConfig
        What to serve.

    Returns
    -------
    ASGI application
    """
    routes = [
        Route("/", home),
        Route("/lightcurves/", lightcurve_index),
        Route("/lightcurves/index.html", lightcurve_index),
        Route("/lightcurves/targets/{key}.html", lightcurve_target),
        Route("/lightcurves/files/{path:path}", lightcurve_file),
        Route("/lightcurves/static/{path:path}", static),
        Route("/static/{path:path}", static),
        Route("/files/{path:path}", archive_file_response),
        Route("/session/open", open_session),
        Route("/session/upload", upload_session, methods=["POST"]),
        Route("/session/{sid}/", workbench_page),
        Route("/session/{sid}/api/summary", session_summary),
        Route("/session/{sid}/api/order/{index:int}", session_order),
        Route("/session/{sid}/api/line/{key}", session_line),
        Route("/session/{sid}/api/parameters", session_parameters),
        Route(
            "/session/{sid}/api/{action:str}",
            session_action,
            methods=["POST"],
        ),
        Route("/session/{sid}/download/{name}", session_download),
    ]
    app = Starlette(routes=routes)
    app.state.photonpipe = _State(config)
    app.state.config = config

    def body_limit(path: str) -> int:
        return config.max_upload if path == "/session/upload" else MAX_REQUEST_BYTES

    guarded = GuardMiddleware(app, config.allowed_hosts, body_limit)
    guarded.app_state = app.state  # type: ignore[attr-defined]
    return guarded
