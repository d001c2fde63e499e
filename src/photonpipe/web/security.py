"""Request checks of ``photonpipe serve``: paths, tokens, body size, hosts, headers.

* A path in a URL is a relative POSIX path of plain names: no ``..`` or ``.``, no hidden
  names (temporaries, markers), no backslash or NUL; it is then resolved inside the archive
  root by :meth:`~photonpipe.platform.archive.Archive.path`, which follows symbolic links
  and refuses any that lead out of the root. The database files are never served.
* Every request that changes something is a POST carrying the page's token in the
  ``X-CSRF-Token`` header (compared in constant time); a missing or wrong token is refused
  with 403 before anything is read or changed.
* Request bodies are bounded: the declared length is checked before reading and the bytes
  actually received are counted (413 past the bound).
* Only requests naming this server as their ``Host`` are answered (DNS rebinding).
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path, PurePosixPath
from typing import Any

from photonpipe.errors import PathConfinementError, PhotonpipeError
from photonpipe.platform.archive import Archive

#: Names never served even inside the archive root (the SQLite database and its journals).
_NEVER_SERVED = (".db", ".db-wal", ".db-shm", ".db-journal", ".lock")
TOKEN_HEADER = "x-csrf-token"
MAX_PATH_CHARS = 1024

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Any  # an ASGI application: await app(scope, receive, send)


class RefusedPath(PhotonpipeError, ValueError):  # noqa: N818 - a refusal, raised for a client's bad path
    """A path from a request that may not be served (the message says why)."""


def check_relative_path(text: str) -> PurePosixPath:
    """Check a path taken from a URL and return it.

    Parameters
    ----------
    text : str
        The (decoded) path, relative to the archive root.

    Raises
    ------
    RefusedPath
        Empty, too long, absolute, with ``.``/``..``, hidden names, backslashes or NUL.
    """
    if not text or len(text) > MAX_PATH_CHARS:
        raise RefusedPath("empty or over-long path")
    if "\0" in text or "\\" in text:
        raise RefusedPath("path contains NUL or a backslash")
    path = PurePosixPath(text)
    if path.is_absolute() or text.startswith("/"):
        raise RefusedPath("absolute path")
    parts = text.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise RefusedPath("path with '.', '..' or an empty component")
    if any(part.startswith(".") for part in parts):
        raise RefusedPath("hidden file or directory")
    if text.endswith(_NEVER_SERVED):
        raise RefusedPath("database files are not served")
    return path


def archive_file(archive: Archive, text: str, *, under: str | None = None) -> Path:
    """Return the file a URL path names inside the archive root.

    Parameters
    ----------
    archive : Archive
        The archive.
    text : str
        Relative path from the URL.
    under : str, optional
        A directory (relative to the root) the file must lie in.

    Raises
    ------
    RefusedPath
        The path is malformed, leads out of the root (also through a symbolic link) or out
        of ``under``.
    FileNotFoundError
        There is no such regular file.
    """
    relative = check_relative_path(text)
    if under is not None and not relative.is_relative_to(under):
        raise RefusedPath(f"only files under {under}/ are served here")
    try:
        path = archive.path(relative)
        if under is not None:
            archive.confine(path)
            real = path.resolve()
            if not real.is_relative_to((archive.root / under).resolve()):
                raise RefusedPath(f"only files under {under}/ are served here")
    except PathConfinementError:
        raise RefusedPath("path leads outside the archive root") from None
    if not path.is_file():
        raise FileNotFoundError(text)
    return path


def new_token() -> str:
    """Return a fresh unguessable token (URL-safe text)."""
    return secrets.token_urlsafe(32)


def token_ok(expected: str, given: str | None) -> bool:
    """Whether a request's token equals the expected one (constant-time comparison)."""
    return given is not None and secrets.compare_digest(expected.encode(), given.encode())


SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (
        b"content-security-policy",
        # Bokeh compiles its CustomJS callbacks with Function(): 'unsafe-eval'; no inline
        # script runs (plot data travel as application/json elements).
        (
            b"default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self' "
            b"'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; "
            b"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
        ),
    ),
)


async def _plain_response(send: Send, status: int, text: str) -> None:
    body = text.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                *SECURITY_HEADERS,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class GuardMiddleware:
    """ASGI middleware: Host check, body bound, security headers on every response.

    Parameters
    ----------
    app : ASGI application
        The application.
    allowed_hosts : iterable of str
        Host names (without port) this server answers to.
    body_limit : callable
        ``body_limit(path) -> int``: the most bytes a request body to ``path`` may have.
    """

    def __init__(
        self, app: ASGIApp, allowed_hosts: Iterable[str], body_limit: Callable[[str], int]
    ) -> None:
        self.app = app
        self.allowed_hosts = {h.lower() for h in allowed_hosts}
        self.body_limit = body_limit

    def _host_ok(self, scope: Scope) -> bool:
        if "*" in self.allowed_hosts:
            return True
        headers = dict(scope.get("headers") or [])
        host = headers.get(b"host", b"").decode("latin-1").lower()
        if host.startswith("["):
            name = host[1 : host.find("]")] if "]" in host else host
        else:
            name = host.rsplit(":", 1)[0] if ":" in host else host
        return name in self.allowed_hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection scope."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if not self._host_ok(scope):
            await _plain_response(send, 421, "this server does not answer to that Host")
            return
        limit = self.body_limit(scope["path"])
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                await _plain_response(send, 400, "bad Content-Length")
                return
            if length > limit:
                await _plain_response(send, 413, f"request body over {limit} bytes")
                return
        # Read the body first (bounded), so that an oversized one is refused before the
        # application sees any of it; then hand it over in one piece.
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            received += len(body)
            if received > limit:
                await _plain_response(send, 413, f"request body over {limit} bytes")
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        async def guarded_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in SECURITY_HEADERS if k not in names]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, replay, guarded_send)
