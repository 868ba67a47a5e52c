"""Headless Chromium driven over the DevTools protocol on a pipe: open, evaluate, hover, screenshot.

``--remote-debugging-pipe`` makes Chromium read commands on fd 3 and write replies and
events on fd 4, each a JSON message ended by a NUL byte; no port, no WebSocket
library, no driver binary.  Console errors and uncaught exceptions are collected.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import time
from pathlib import Path
from typing import Any

__all__ = ["CHROMIUM_HINT", "Chromium", "chromium_path"]

CHROMIUM_HINT = "apt-get install -y chromium (or `make chromium`)"
#: Chromium's flags for a headless run without sandbox, GPU or network
HEADLESS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking")


def chromium_path() -> str | None:
    """The Chromium binary on PATH, or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Chromium:
    """One headless Chromium with one page, closed by :meth:`close` (or ``with``)."""

    def __init__(self, exe: str, profile: Path, width: int = 1280, height: int = 900) -> None:
        to_chrome, self._w = os.pipe()
        self._r, from_chrome = os.pipe()
        devnull = os.open(os.devnull, os.O_RDWR)
        args = [
            exe,
            *HEADLESS,
            "--disable-extensions",
            "--no-first-run",
            "--remote-debugging-pipe",
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            "about:blank",
        ]
        actions = [
            (os.POSIX_SPAWN_DUP2, devnull, 0),
            (os.POSIX_SPAWN_DUP2, devnull, 1),
            (os.POSIX_SPAWN_DUP2, devnull, 2),
            (os.POSIX_SPAWN_DUP2, to_chrome, 3),
            (os.POSIX_SPAWN_DUP2, from_chrome, 4),
        ]
        self.pid = os.posix_spawn(exe, args, dict(os.environ), file_actions=actions)
        for fd in (to_chrome, from_chrome, devnull):
            os.close(fd)
        self._buf = b""
        self._id = 0
        self._session: str | None = None
        self.events: list[dict[str, Any]] = []
        self.size = (width, height)

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read(self, timeout: float) -> dict[str, Any] | None:
        while b"\0" not in self._buf:
            ready, _, _ = select.select([self._r], [], [], max(0.0, timeout))
            if not ready:
                return None
            chunk = os.read(self._r, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed its DevTools pipe (did it crash?)")
            self._buf += chunk
        message, _, self._buf = self._buf.partition(b"\0")
        data: dict[str, Any] = json.loads(message)
        return data

    def send(self, method: str, params: dict[str, Any] | None = None, timeout: float = 60) -> Any:
        """Send one DevTools command to the page (or the browser before :meth:`open`)."""
        self._id += 1
        message: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if self._session is not None and not method.startswith(("Target.", "Browser.")):
            message["sessionId"] = self._session
        os.write(self._w, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            got = self._read(deadline - time.monotonic())
            if got is None:
                raise TimeoutError(f"chromium did not answer {method} within {timeout} s")
            if got.get("id") == self._id:
                if "error" in got:
                    raise RuntimeError(f"{method}: {got['error']}")
                return got.get("result", {})
            self.events.append(got)

    def wait_for(self, method: str, timeout: float = 60) -> dict[str, Any]:
        """The first event named *method* (already received or the next to come)."""
        for event in self.events:
            if event.get("method") == method:
                return event
        deadline = time.monotonic() + timeout
        while True:
            got = self._read(deadline - time.monotonic())
            if got is None:
                raise TimeoutError(f"no {method} event within {timeout} s")
            self.events.append(got)
            if got.get("method") == method:
                return got

    def open(self, url: str) -> None:
        """Open *url* in a new page and wait for its load event."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        attached = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})
        self._session = attached["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable")
        self.send("Page.navigate", {"url": url})
        self.wait_for("Page.loadEventFired")

    def eval(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_until(self, expression: str, timeout: float = 30) -> Any:
        """Evaluate *expression* until it is truthy; return its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.eval(expression)
            if value or time.monotonic() > deadline:
                return value
            time.sleep(0.1)

    def move_mouse(self, x: float, y: float) -> None:
        """A real mouse move (the page sees pointer events, as from a person's mouse)."""
        self.send("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x, "y": y})

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and failed loads seen so far."""
        out = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                out.append(str(params.get("exceptionDetails", {}).get("text")))
            elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
                out.append(" ".join(str(a.get("value", a)) for a in params.get("args", [])))
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                out.append(str(params["entry"].get("text")))
        return out

    def screenshot(self, path: Path, full_page: bool = False) -> Path:
        """Save a PNG of the page (of the whole page with *full_page*)."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            w, h = self.eval(
                "[document.documentElement.scrollWidth, document.documentElement.scrollHeight]"
            )
            params["clip"] = {"x": 0, "y": 0, "width": w, "height": h, "scale": 1}
            params["captureBeyondViewport"] = True
        data = self.send("Page.captureScreenshot", params)["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        """Close the browser and reap its process."""
        try:
            self.send("Browser.close", timeout=5)
        except (RuntimeError, TimeoutError, OSError):
            pass
        for fd in (self._w, self._r):
            try:
                os.close(fd)
            except OSError:
                pass
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass
