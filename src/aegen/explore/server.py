"""The explorer's HTTP server: the standard library's ThreadingHTTPServer, JSON in and out.

Routes (nothing else exists; no path is ever looked up on disk)::

    GET  /                          the page (index.html)
    GET  /assets/NAME               its script and style sheet, from memory
    GET  /api/runs                  [{name, kind, title}, …]
    GET  /api/RUN/ACTION            actions without a body (info, codebook)
    POST /api/RUN/ACTION            the rest, with a JSON object as body

Every request is untrusted. A malformed one — unknown run or action, a body that
is not a JSON object or is too large, a field of the wrong type or out of range —
gets a 4xx with ``{"error": "<one line>"}``; a bug in a page gets a 500 the same
way and the server goes on. Host headers other than the address it listens on
are refused (a web page elsewhere cannot reach it through DNS rebinding), and
the Content-Security-Policy lets the page load nothing that is not from here.
Model calls are serialised by one lock: several tabs work, one computation at a time.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import unquote, urlsplit

from ..files import json_text
from .pages import Page, RequestError

__all__ = ["ExploreServer", "assets", "make_server", "start_in_thread"]

MAX_BODY = 64 * 1024  # bytes: the largest request the page sends is a few hundred
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def assets() -> dict[str, bytes]:
    """The page's files (package data under aegen/explore/assets), read once into memory."""
    folder = resources.files("aegen.explore") / "assets"
    return {f.name: f.read_bytes() for f in folder.iterdir() if f.is_file()}


class ExploreServer(ThreadingHTTPServer):
    """Serves ``pages`` and the page's assets; ``url`` is the address to open."""

    daemon_threads = True  # a stuck browser connection never keeps the process alive
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], pages: Sequence[Page]):
        super().__init__(address, ExploreHandler)
        self.pages = {p.name: p for p in pages}
        self.files = assets()
        self.compute = threading.Lock()
        host, port = self.server_address[:2]
        self.url = f"http://{'[' + host + ']' if ':' in host else host}:{port}/"
        listening = {host, *LOCAL_HOSTS} if host in LOCAL_HOSTS else None
        # None: bound to another interface on purpose (--host); any Host header is accepted then
        self.allowed_hosts = (
            None
            if listening is None
            else {f"{h}:{port}" if ":" not in h else f"[{h}]:{port}" for h in listening}
        )


class ExploreHandler(BaseHTTPRequestHandler):
    server: ExploreServer
    server_version = "aegen-explore"
    protocol_version = "HTTP/1.1"  # kept-alive connections: a hovering mouse sends many
    # headers and body leave in two writes; with Nagle's algorithm the second waits for the
    # client's delayed ACK, which delayed every answer (measured: docs/explore.md)
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # quiet: a hovering mouse makes dozens of requests a second

    # ------------------------------------------------------------------ answers

    def _send(self, status: int, body: bytes, content_type: str, cache: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", f"{content_type}; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Cache-Control", "max-age=60" if cache else "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj: Any) -> None:
        self._send(status, json_text(obj, separators=(",", ":")).encode(), "application/json")

    def _error(self, status: int, message: str) -> None:
        line = " ".join(str(message).split())[:300]  # one line, whatever the cause
        self._json(status, {"error": line})

    # ------------------------------------------------------------------ routing

    def _host_ok(self) -> bool:
        allowed = self.server.allowed_hosts
        return allowed is None or (self.headers.get("Host") or "").lower() in allowed

    def _route(self, method: str) -> None:
        if not self._host_ok():
            self._error(HTTPStatus.MISDIRECTED_REQUEST, "unexpected Host header")
            return
        path = urlsplit(self.path).path
        parts = [unquote(p) for p in path.split("/")[1:]]
        try:
            if method in ("GET", "HEAD") and path in ("/", "/index.html"):
                self._send(200, self.server.files["index.html"], "text/html")
            elif len(parts) == 2 and parts[0] == "assets":
                self._asset(parts[1])
            elif parts == ["api", "runs"]:
                pages = [p.summary() for p in self.server.pages.values()]
                self._json(200, {"runs": pages})
            elif len(parts) == 3 and parts[0] == "api":
                self._api(method, parts[1], parts[2])
            else:
                raise RequestError(f"no such page: {path[:80]}", 404)
        except RequestError as e:
            self._error(e.status, str(e))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the tab went away
        except Exception as e:  # a bug: say so, keep serving
            self._error(500, f"internal error: {type(e).__name__}: {e}")

    def _asset(self, name: str) -> None:
        data = self.server.files.get(name)
        suffix = name[name.rfind(".") :] if "." in name else ""
        if data is None or name == "index.html" or suffix not in TYPES:
            raise RequestError(f"no such asset: {name[:80]}", 404)
        self._send(200, data, TYPES[suffix], cache=True)

    def _body(self) -> dict[str, Any]:
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding"):
            raise RequestError("send the body with a Content-Length, not chunked", 411)
        if length is None:
            raise RequestError("a POST needs a Content-Length", 411)
        try:
            n = int(length)
        except ValueError:
            raise RequestError("Content-Length must be a number") from None
        if n < 0:
            raise RequestError("Content-Length must not be negative")
        if n > MAX_BODY:
            self.close_connection = True  # the unread body must not be taken for a request
            raise RequestError(f"request body over {MAX_BODY} bytes", 413)
        raw = self.rfile.read(n)
        try:
            body = json.loads(raw or b"{}")
        except (UnicodeDecodeError, ValueError):
            raise RequestError("the body is not JSON") from None
        if not isinstance(body, dict):
            raise RequestError("the body must be a JSON object")
        return body

    def _api(self, method: str, run: str, action: str) -> None:
        page = self.server.pages.get(run)
        if page is None:
            raise RequestError(f"no run named {run[:80]!r}", 404)
        body = self._body() if method == "POST" else {}
        with self.server.compute:
            answer = page.handle(action, body, "GET" if method == "HEAD" else method)
        self._json(200, answer)

    # ------------------------------------------------------------------ methods

    def do_GET(self) -> None:  # noqa: N802
        self._route("GET")

    def do_HEAD(self) -> None:  # noqa: N802
        self._route("HEAD")

    def do_POST(self) -> None:  # noqa: N802
        self._route("POST")

    def _not_allowed(self) -> None:
        self._error(HTTPStatus.METHOD_NOT_ALLOWED, f"{self.command} is not supported here")

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed  # noqa: N815


def make_server(pages: Sequence[Page], host: str = "127.0.0.1", port: int = 0) -> ExploreServer:
    """A server for ``pages`` bound to ``host:port`` (port 0: any free one); not yet serving."""
    return ExploreServer((host, port), pages)


def start_in_thread(server: ExploreServer, stop_after: float | None = None) -> threading.Thread:
    """Serve in a daemon thread; with ``stop_after`` seconds it shuts itself down then."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.daemon = True
    thread.start()
    if stop_after is not None:
        deadline = time.monotonic() + stop_after

        def stop() -> None:
            while thread.is_alive() and time.monotonic() < deadline:
                time.sleep(0.2)
            if thread.is_alive():
                server.shutdown()

        threading.Thread(target=stop, daemon=True).start()
    return thread
