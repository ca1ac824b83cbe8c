"""Open a page in headless Chromium and inspect it over the DevTools protocol (test helper).

Chromium is driven through ``--remote-debugging-pipe``: JSON messages ending in
a NUL byte, written to its fd 3 and read from its fd 4, so no port is opened and
no websocket library is needed. Everything the page requested is recorded from
the Network domain, and console messages (Content-Security-Policy violations
among them) from the Log domain.
"""

from __future__ import annotations

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


def visit(path: str | Path, expression: str, timeout: float = 60) -> PageVisit:
    """Load ``path`` (a local file) in a fresh headless Chromium, evaluate ``expression`` after load."""
    to_chrome_r, to_chrome_w = os.pipe()
    from_chrome_r, from_chrome_w = os.pipe()
    # Chromium's ends are moved above 9, so that putting them at 3 and 4 cannot clobber them
    to_chrome_r, from_chrome_w = (_above_nine(fd) for fd in (to_chrome_r, from_chrome_w))
    with tempfile.TemporaryDirectory(prefix="aegen-chromium-") as profile:
        argv = [chromium_path(), *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-pipe"]
        # bash puts the two pipe ends where Chromium expects them (fd 3 in, fd 4 out)
        script = (
            f'exec "$@" 3<&{to_chrome_r} 4>&{from_chrome_w} {to_chrome_r}<&- {from_chrome_w}>&-'
        )
        proc = subprocess.Popen(
            ["bash", "-c", script, "chromium", *argv, "about:blank"],
            pass_fds=(to_chrome_r, from_chrome_w),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        pipe = _Pipe(proc, to_chrome_w, from_chrome_r)
        out = PageVisit()
        try:
            target = pipe.call("Target.createTarget", {"url": "about:blank"}, timeout=timeout)
            session = pipe.call(
                "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
            )["sessionId"]
            for domain in ("Network", "Page", "Log", "Runtime"):
                pipe.call(f"{domain}.enable", session=session)
            pipe.events.clear()  # about:blank's own events
            pipe.call("Page.navigate", {"url": Path(path).resolve().as_uri()}, session=session)
            pipe.wait_event("Page.loadEventFired", timeout=timeout)
            value = pipe.call(
                "Runtime.evaluate",
                {"expression": expression, "returnByValue": True, "awaitPromise": True},
                session=session,
            )
            out.result = value.get("result", {}).get("value")
            for msg in pipe.events:
                params = msg.get("params", {})
                if msg.get("method") == "Network.requestWillBeSent":
                    out.requests.append(params["request"]["url"])
                elif msg.get("method") == "Network.loadingFailed":
                    out.failed.append(params)
                elif msg.get("method") == "Log.entryAdded":
                    out.console.append(params["entry"].get("text", ""))
            try:
                pipe.call("Browser.close", timeout=10)
            except (RuntimeError, TimeoutError):
                pass
        finally:
            os.close(to_chrome_w)
            os.close(from_chrome_r)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
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
