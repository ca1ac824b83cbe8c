"""Open a page in headless Chromium and inspect it over the DevTools protocol (test helper).

Chromium is driven through ``--remote-debugging-pipe``: JSON messages ending in
a NUL byte, written to its fd 3 and read from its fd 4, so no port is opened and
no websocket library is needed. Everything the page requested is recorded from
the Network domain, and console messages (Content-Security-Policy violations
among them) from the Log domain.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


def chromium_path() -> str:
    """The Chromium executable; setup.sh installs Debian's ``chromium`` when it is missing."""
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    raise AssertionError(
        "chromium is not installed; run ./setup.sh (it installs Debian's chromium)"
    )


@dataclass
class PageVisit:
    """What one page load did: its requests, console messages and an evaluated expression."""

    requests: list[str] = field(default_factory=list)  # every URL the page asked for
    failed: list[dict[str, Any]] = field(default_factory=list)  # Network.loadingFailed params
    console: list[str] = field(default_factory=list)  # Log.entryAdded texts
    result: Any = None  # the value of the expression evaluated after "load"


class _Pipe:
    def __init__(self, proc: subprocess.Popen, write_fd: int, read_fd: int):
        self.proc, self.write_fd, self.read_fd = proc, write_fd, read_fd
        self.buffer = b""
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> int:
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.write_fd, json.dumps(msg).encode() + b"\0")
        return self.next_id

    def receive(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("chromium did not answer in time")
            ready, _, _ = select.select([self.read_fd], [], [], left)
            if ready:
                chunk = os.read(self.read_fd, 1 << 16)
                if not chunk:
                    raise RuntimeError(f"chromium closed the pipe (exit {self.proc.poll()})")
                self.buffer += chunk
        raw, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, params=None, session=None, timeout: float = 30) -> dict[str, Any]:
        """Send a command and wait for its answer; events that arrive meanwhile are kept."""
        want = self.send(method, params, session)
        deadline = time.monotonic() + timeout
        while True:
            msg = self.receive(deadline)
            if msg.get("id") == want:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_event(self, method: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        for i, msg in enumerate(self.events):
            if msg.get("method") == method:
                return self.events.pop(i)
        while True:
            msg = self.receive(deadline)
            if msg.get("method") == method:
                return msg
            self.events.append(msg)


def _above_nine(fd: int) -> int:
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return high


class Browser:
    """One headless Chromium, driven over the pipe, for page loads and mouse input (a context manager).

    Everything the pages request, every console message and every JavaScript error
    is recorded (``requests``, ``failed``, ``console``, ``errors``) until ``clear()``.
    ``width``/``height`` fix the viewport, so mouse coordinates and screenshots are
    the same on every machine.
    """

    def __init__(self, width: int | None = None, height: int | None = None, timeout: float = 60):
        self.size = (width, height) if width and height else None
        self.timeout = timeout
        self.requests: list[str] = []
        self.failed: list[dict[str, Any]] = []
        self.console: list[str] = []
        self.errors: list[str] = []  # console errors, failed loads and uncaught exceptions

    def __enter__(self) -> Browser:
        to_chrome_r, to_chrome_w = os.pipe()
        from_chrome_r, from_chrome_w = os.pipe()
        # Chromium's ends are moved above 9, so that putting them at 3 and 4 cannot clobber them
        to_chrome_r, from_chrome_w = (_above_nine(fd) for fd in (to_chrome_r, from_chrome_w))
        self._profile = tempfile.TemporaryDirectory(prefix="aegen-chromium-")
        argv = [
            chromium_path(),
            *FLAGS,
            f"--user-data-dir={self._profile.name}",
            "--remote-debugging-pipe",
        ]
        # bash puts the two pipe ends where Chromium expects them (fd 3 in, fd 4 out)
        script = (
            f'exec "$@" 3<&{to_chrome_r} 4>&{from_chrome_w} {to_chrome_r}<&- {from_chrome_w}>&-'
        )
        self.proc = subprocess.Popen(
            ["bash", "-c", script, "chromium", *argv, "about:blank"],
            pass_fds=(to_chrome_r, from_chrome_w),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self.pipe = _Pipe(self.proc, to_chrome_w, from_chrome_r)
        try:
            target = self.pipe.call(
                "Target.createTarget", {"url": "about:blank"}, timeout=self.timeout
            )
            self.session = self.pipe.call(
                "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
            )["sessionId"]
            for domain in ("Network", "Page", "Log", "Runtime"):
                self.call(f"{domain}.enable")
            if self.size:
                w, h = self.size
                self.call(
                    "Emulation.setDeviceMetricsOverride",
                    {"width": w, "height": h, "deviceScaleFactor": 1, "mobile": False},
                )
            self.pipe.events.clear()  # about:blank's own events
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            self.pipe.call("Browser.close", timeout=10)
        except (RuntimeError, TimeoutError, OSError):
            pass
        finally:
            os.close(self.pipe.write_fd)
            os.close(self.pipe.read_fd)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self._profile.cleanup()

    def call(self, method: str, params: dict | None = None) -> dict[str, Any]:
        """A DevTools command in the page's session; the events it brings are recorded."""
        result = self.pipe.call(
            method, params, session=getattr(self, "session", None), timeout=self.timeout
        )
        self._record()
        return result

    def _record(self) -> None:
        for msg in self.pipe.events:
            method, params = msg.get("method"), msg.get("params", {})
            if method == "Network.requestWillBeSent":
                self.requests.append(params["request"]["url"])
            elif method == "Network.loadingFailed":
                self.failed.append(params)
                self.errors.append(f"load failed: {params.get('errorText')}")
            elif method == "Log.entryAdded":
                entry = params["entry"]
                self.console.append(entry.get("text", ""))
                if entry.get("level") == "error":
                    self.errors.append(f"{entry.get('text', '')} {entry.get('url', '')}".strip())
            elif method == "Runtime.consoleAPICalled":
                text = " ".join(
                    str(a.get("value", a.get("description", ""))) for a in params["args"]
                )
                self.console.append(text)
                if params.get("type") in ("error", "assert"):
                    self.errors.append(text)
            elif method == "Runtime.exceptionThrown":
                d = params["exceptionDetails"]
                self.errors.append(d.get("exception", {}).get("description") or d.get("text", ""))
        self.pipe.events.clear()

    def clear(self) -> None:
        self.requests, self.failed, self.console, self.errors = [], [], [], []

    def goto(self, url: str) -> None:
        """Load ``url`` (http:// or file://) and wait for its load event (none comes when only
        the #fragment changes: the page itself then sees a hashchange)."""
        answer = self.pipe.call("Page.navigate", {"url": url}, self.session, self.timeout)
        if "loaderId" in answer:  # a new document; a change of #fragment only loads nothing
            self.pipe.wait_event("Page.loadEventFired", timeout=self.timeout)
        self._record()

    def evaluate(self, expression: str, raise_errors: bool = True) -> Any:
        """The value of a JavaScript expression (promises awaited); a thrown error raises here
        unless ``raise_errors`` is False (the value is None then)."""
        answer = self.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in answer and raise_errors:
            d = answer["exceptionDetails"]
            raise RuntimeError(d.get("exception", {}).get("description") or d.get("text"))
        return answer.get("result", {}).get("value")

    def mouse(self, kind: str, x: float, y: float, buttons: int = 0, modifiers: int = 0) -> None:
        """One mouse event at viewport (x, y): kind is mouseMoved, mousePressed or mouseReleased."""
        params = {"type": kind, "x": x, "y": y, "modifiers": modifiers, "buttons": buttons}
        if kind != "mouseMoved":
            params.update(button="left", clickCount=1)
        self.call("Input.dispatchMouseEvent", params)

    def click(self, x: float, y: float, modifiers: int = 0) -> None:
        self.mouse("mouseMoved", x, y, modifiers=modifiers)
        self.mouse("mousePressed", x, y, buttons=1, modifiers=modifiers)
        self.mouse("mouseReleased", x, y, modifiers=modifiers)

    def screenshot(self, png: str | Path) -> Path:
        """The viewport as a PNG file."""
        data = self.call("Page.captureScreenshot", {"format": "png"})["data"]
        Path(png).write_bytes(base64.b64decode(data))
        return Path(png)


def visit(path: str | Path, expression: str, timeout: float = 60) -> PageVisit:
    """Load ``path`` (a local file) in a fresh headless Chromium, evaluate ``expression`` after load."""
    with Browser(timeout=timeout) as browser:
        browser.goto(Path(path).resolve().as_uri())
        out = PageVisit(result=browser.evaluate(expression, raise_errors=False))
        out.requests, out.failed, out.console = browser.requests, browser.failed, browser.console
    return out


def screenshot(path: str | Path, png: str | Path, width: int = 1280, height: int = 2000) -> Path:
    """A full-width PNG of a local page, for the docs."""
    with tempfile.TemporaryDirectory(prefix="aegen-chromium-") as profile:
        subprocess.run(
            [
                chromium_path(),
                *FLAGS,
                f"--user-data-dir={profile}",
                f"--window-size={width},{height}",
                f"--screenshot={Path(png).resolve()}",
                Path(path).resolve().as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
    return Path(png)
