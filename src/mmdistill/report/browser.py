"""Open a page in headless Chromium and report what a user would see (used by the report tests).

Talks the Chrome DevTools Protocol over ``--remote-debugging-pipe`` (JSON messages separated by NUL
bytes on file descriptors 3 and 4), so no websocket library and no network port are needed. One
:func:`inspect_page` call loads the page and returns console errors (``console.error``/``assert``,
uncaught exceptions, browser log entries of level ``error``), the ids of visible elements, the network
requests that were not ``data:``/``file:``/``about:``, the duration and error code of every ``<audio>``/``<video>``
once its metadata loaded (up to 5 s), and a full-page PNG screenshot.
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

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--mute-audio",
         "--hide-scrollbars")


def find_chromium() -> str | None:
    """Path of a Chromium executable (``$MMDISTILL_CHROMIUM`` first), or None."""
    env = os.environ.get("MMDISTILL_CHROMIUM")
    if env:
        return env if Path(env).is_file() else None
    for name in CHROMIUM_CANDIDATES:
        p = shutil.which(name)
        if p:
            return p
    return None


@dataclass
class PageReport:
    """What :func:`inspect_page` saw."""

    console_errors: list[str] = field(default_factory=list)
    ids: dict[str, bool] = field(default_factory=dict)  # element id -> visible (non-zero size)
    external_requests: list[str] = field(default_factory=list)
    screenshot: bytes = b""
    title: str = ""
    media: list[tuple[float, int]] = field(default_factory=list)  # (duration in s or -1, MediaError code or 0)


class _Pipe:
    """CDP over a pair of pipes: write JSON + NUL to the browser, read NUL-terminated JSON back."""

    def __init__(self, to_browser: int, from_browser: int) -> None:
        self.w, self.r = to_browser, from_browser
        self.buf = b""
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None,
             timeout: float = 30.0) -> dict[str, Any]:
        self.next_id += 1
        msg: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.w, json.dumps(msg).encode() + b"\0")
        want = self.next_id
        deadline = time.monotonic() + timeout
        while True:
            m = self.read(deadline)
            if m.get("id") == want:
                if "error" in m:
                    raise RuntimeError(f"CDP {method}: {m['error']}")
                return m.get("result", {})
            self.events.append(m)

    def read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer from the browser")
            ready, _, _ = select.select([self.r], [], [], left)
            if ready:
                chunk = os.read(self.r, 1 << 20)
                if not chunk:
                    raise RuntimeError("the browser closed the DevTools pipe")
                self.buf += chunk
        raw, self.buf = self.buf.split(b"\0", 1)
        return json.loads(raw)

    def wait_event(self, method: str, timeout: float = 30.0) -> dict[str, Any]:
        for i, e in enumerate(self.events):
            if e.get("method") == method:
                return self.events.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            m = self.read(deadline)
            if m.get("method") == method:
                return m
            self.events.append(m)


def _high_fd(fd: int) -> int:
    """A close-on-exec duplicate of ``fd`` numbered >= 10 (dup2 onto 3 and 4 in the child cannot clobber it)."""
    new = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return new


_COLLECT_JS = """(async () => {
  const media = Array.from(document.querySelectorAll('audio,video'));
  await Promise.all(media.map(m => (m.readyState >= 1 || m.error) ? null : new Promise(done => {
    m.addEventListener('loadedmetadata', done, {once: true});
    m.addEventListener('error', done, {once: true});
    setTimeout(done, 5000);
  })));
  return JSON.stringify({
    title: document.title,
    ids: Array.from(document.querySelectorAll('[id]')).map(e => {
      const r = e.getBoundingClientRect(); return [e.id, r.width > 0 && r.height > 0]; }),
    media: media.map(m => [isFinite(m.duration) ? m.duration : -1, m.error ? m.error.code : 0])
  });
})()"""


def inspect_page(url: str, chromium: str | None = None, width: int = 1280, height: int = 900, timeout: float = 60.0) -> PageReport:
    """Load ``url`` in a fresh headless Chromium profile and return a :class:`PageReport`."""
    return inspect_pages([url], chromium, width, height, timeout)[0]


def inspect_pages(urls: list[str], chromium: str | None = None, width: int = 1280, height: int = 900,
                  timeout: float = 60.0) -> list[PageReport]:
    """Like :func:`inspect_page` for several pages, one tab each, in one browser (one start-up)."""
    exe = chromium or find_chromium()
    if not exe:
        raise FileNotFoundError("no Chromium found (apt-get install chromium, or set MMDISTILL_CHROMIUM)")
    cmd_r, cmd_w = os.pipe()
    res_r, res_w = os.pipe()
    child_in, child_out = _high_fd(cmd_r), _high_fd(res_w)

    def _child_fds() -> None:  # runs in the child before exec
        os.dup2(child_in, 3)
        os.dup2(child_out, 4)

    with tempfile.TemporaryDirectory(prefix="mmdistill-chromium-") as profile:
        args = [exe, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-pipe", f"--window-size={width},{height}"]
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                preexec_fn=_child_fds, close_fds=False)  # fds are close-on-exec except 3, 4
        os.close(child_in)
        os.close(child_out)
        pipe = _Pipe(cmd_w, res_r)
        try:
            out = []
            for url in urls:
                pipe.events.clear()
                out.append(_drive(pipe, url, width, height, timeout))
            return out
        finally:
            try:
                pipe.send("Browser.close", timeout=5)
            except (RuntimeError, TimeoutError, OSError):
                pass
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            os.close(cmd_w)
            os.close(res_r)


def _drive(pipe: _Pipe, url: str, width: int, height: int, timeout: float) -> PageReport:
    target = pipe.send("Target.createTarget", {"url": "about:blank"}, timeout=timeout)["targetId"]
    sid = pipe.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    for dom in ("Runtime.enable", "Log.enable", "Page.enable", "Network.enable"):
        pipe.send(dom, session=sid)
    pipe.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1,
                                                     "mobile": False}, session=sid)
    pipe.send("Page.navigate", {"url": url}, session=sid)
    pipe.wait_event("Page.loadEventFired", timeout=timeout)
    ev = pipe.send("Runtime.evaluate", {"expression": _COLLECT_JS, "returnByValue": True, "awaitPromise": True},
                   session=sid, timeout=timeout)
    info = json.loads(ev["result"]["value"])
    shot = pipe.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, session=sid, timeout=timeout)
    rep = PageReport(title=info["title"], ids={i: bool(v) for i, v in info["ids"]}, screenshot=base64.b64decode(shot["data"]),
                     media=[(float(d), int(e)) for d, e in info["media"]])
    pipe.send("Target.closeTarget", {"targetId": target})
    for e in pipe.events:
        if e.get("sessionId") != sid:
            continue
        m, p = e.get("method"), e.get("params", {})
        if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            rep.console_errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
        elif m == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            rep.console_errors.append(str(d.get("exception", {}).get("description") or d.get("text")))
        elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            entry = p["entry"]
            rep.console_errors.append(f"{entry.get('text')}" + (f" ({entry['url']})" if entry.get("url") else ""))
        elif m == "Network.requestWillBeSent":
            u = str(p.get("request", {}).get("url", ""))
            if not u.startswith(("data:", "file:", "about:")) and u != url:
                rep.external_requests.append(u)
    return rep
