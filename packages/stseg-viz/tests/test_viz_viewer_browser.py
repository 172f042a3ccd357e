"""The HTML viewer in headless Chromium, driven over the DevTools protocol (--remote-debugging-pipe).

Checks: the page loads without console errors or exceptions, the canvas shows non-background
pixels, and switching the colouring (URL hash at load, and a click on the UI control) changes them;
a file name, title and class names made of HTML (`<!--<script>`, `</script><script>...`, U+2028)
still give a page that reaches its ready state and shows them as text.
Skipped, with the reason, only when no Chromium binary is installed (Debian: apt-get install chromium).
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import queue
import shutil
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from stseg_data.ply import write_ply
from stseg_viz.palettes import SCANNET20_COLORS, Palette
from stseg_viz.viewer import viewer_html, write_viewer

CHROMIUM = next(
    (
        shutil.which(name)
        for name in ("chromium", "chromium-browser", "google-chrome")
        if shutil.which(name)
    ),
    None,
)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium binary on PATH (CI: apt-get install -y chromium)"
)
BACKGROUND = np.array([0.13, 0.14, 0.16])  # the viewer's clear colour


class DevTools:
    """Minimal Chrome DevTools Protocol client over the NUL-separated JSON pipe on fds 3 and 4."""

    def __init__(self, binary: str, profile: Path) -> None:
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()

        def wire() -> None:  # runs in the child: chromium reads fd 3 and writes fd 4
            os.dup2(to_child_r, 3)
            os.dup2(from_child_w, 4)

        flags = [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--enable-unsafe-swiftshader", "--remote-debugging-pipe", "--window-size=800,600",
            f"--user-data-dir={profile}", "about:blank",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            [binary, *flags],
            preexec_fn=wire,  # only dup2 before exec
            pass_fds=(3, 4),  # keep the dup2-ed ends open through close_fds
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_child_r)
        os.close(from_child_w)
        self._next_id = 0
        self._messages: queue.Queue = queue.Queue()
        self.events: list[dict] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        buffer = b""
        while chunk := os.read(self._from_child, 1 << 16):
            buffer += chunk
            *complete, buffer = buffer.split(b"\0")
            for raw in complete:
                self._messages.put(json.loads(raw))

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self._next_id += 1
        message: dict = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_child, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + 30
        while True:
            reply = self._messages.get(timeout=max(deadline - time.monotonic(), 0.01))
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def drain(self) -> None:
        """Move messages that arrived after the last reply into `events`."""
        while True:
            try:
                self.events.append(self._messages.get_nowait())
            except queue.Empty:
                return

    def close(self) -> None:
        with contextlib.suppress(Exception):  # the browser may already be gone
            self.send("Browser.close")
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._to_child)


class Page:
    def __init__(self, tools: DevTools) -> None:
        self.tools = tools
        target = tools.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = tools.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        for domain in ("Runtime.enable", "Log.enable", "Page.enable"):
            self.call(domain)

    def call(self, method: str, params: dict | None = None) -> dict:
        return self.tools.send(method, params, self.session)

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def open(self, url: str) -> str:
        """A fresh load of `url` (via about:blank, so a changed #hash is not an in-page jump)."""
        self.call("Page.navigate", {"url": "about:blank"})
        for _ in range(100):
            if self.evaluate("location.href") == "about:blank":
                break
            time.sleep(0.05)
        self.call("Page.navigate", {"url": url})
        for _ in range(200):
            status = self.evaluate("document.body && document.body.dataset.status")
            if status in ("ready", "error"):
                return status
            time.sleep(0.05)
        return "timeout"

    def canvas_pixels(self) -> np.ndarray:
        """RGB floats of a screenshot, taken after two animation frames so the last draw is shown."""
        self.call(
            "Runtime.evaluate",
            {
                "expression": "new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))",
                "awaitPromise": True,
            },
        )
        shot = self.call("Page.captureScreenshot", {"format": "png"})["data"]
        return imread(io.BytesIO(base64.b64decode(shot)))[..., :3]

    def problems(self) -> list[str]:
        """Exceptions, console.error calls and error log entries seen so far in this browser."""
        self.evaluate("1")  # a round trip, so everything logged before it has arrived
        self.tools.drain()
        found = []
        for event in self.tools.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                found.append(json.dumps(params["exceptionDetails"])[:300])
            elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
                found.append(json.dumps(params.get("args"))[:300])
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                found.append(params["entry"].get("text", "")[:300])
        return found


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):
    tools = DevTools(CHROMIUM, tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield tools
    finally:
        tools.close()


PANEL_RIGHT = 340  # pixels; the control panel (top left, at most 300 px wide) is excluded


def _non_background(pixels: np.ndarray) -> np.ndarray:
    """bool [H, W - PANEL_RIGHT]: canvas pixels right of the control panel that are not background."""
    return np.abs(pixels[:, PANEL_RIGHT:] - BACKGROUND).max(axis=-1) > 0.05


def _changed(before: np.ndarray, after: np.ndarray) -> float:
    """Share of the drawn pixels (in either picture) whose colour changed visibly."""
    drawn = _non_background(before) | _non_background(after)
    moved = np.abs(after - before).max(axis=-1)[:, PANEL_RIGHT:] > 0.08
    return float(moved[drawn].mean())


def test_viewer_loads_draws_and_switches_colouring(browser: DevTools, room: dict) -> None:
    html = room["dir"] / "viewer.html"
    write_viewer(room["scene"], html, labels=room["pred"])
    page = Page(browser)

    assert page.open(f"{html.as_uri()}#color=rgb") == "ready", page.evaluate(
        "document.getElementById('status').textContent"
    )
    assert page.evaluate("stsegViewer.state.mode") == "rgb"
    assert (
        page.evaluate("document.getElementById('panel').getBoundingClientRect().right")
        < PANEL_RIGHT
    )
    rgb = page.canvas_pixels()
    drawn = _non_background(rgb)
    assert drawn.mean() > 0.02, "the canvas shows (almost) only background"

    # The hash chooses the colouring at load.
    assert page.open(f"{html.as_uri()}#color=label") == "ready"
    assert page.evaluate("document.getElementById('color-label').checked") is True
    label = page.canvas_pixels()
    assert _changed(rgb, label) > 0.5, "label colouring looks like rgb"
    # Label colours come from the ScanNet palette: the wall colour is on screen.
    wall = np.array([174, 199, 232]) / 255.0
    assert (np.abs(label[:, PANEL_RIGHT:] - wall).max(axis=-1) < 0.02).sum() > 50

    # The UI control switches too, and updates the hash.
    page.evaluate("document.getElementById('color-error').click()")
    assert page.evaluate("stsegViewer.state.mode") == "error"
    assert page.evaluate("location.hash") == "#color=error"
    error = page.canvas_pixels()
    assert _changed(label, error) > 0.5

    # A class toggle hides points: switching every class off leaves only background.
    page.evaluate("document.getElementById('hide-all').click()")
    assert _non_background(page.canvas_pixels()).mean() < 0.001
    page.evaluate("document.getElementById('show-all').click()")
    assert _non_background(page.canvas_pixels()).mean() > 0.02

    assert page.problems() == []


def test_viewer_of_bare_points_loads_cleanly(browser: DevTools, tmp_path: Path) -> None:
    # xyz only: one grey colouring, no class toggles, still no console error.
    scene = tmp_path / "bare.ply"
    write_ply(scene, np.random.default_rng(0).uniform(0, 1, (2000, 3)))
    html = tmp_path / "bare.html"
    write_viewer(scene, html)
    page = Page(browser)
    assert page.open(html.as_uri()) == "ready"
    assert page.evaluate("stsegViewer.modes") == ["rgb"]
    assert page.evaluate("document.getElementById('color-label').disabled") is True
    assert _non_background(page.canvas_pixels()).mean() > 0.01
    assert page.problems() == []


HOSTILE_NAMES = ("<!--<script>", "</script><script>alert(1)</script>", "line\u2028break\u2029here")


def _texts(page: Page, selector: str) -> list[str]:
    return page.evaluate(
        f"Array.from(document.querySelectorAll({json.dumps(selector)})).map(e => e.textContent)"
    )


def test_hostile_file_name_title_and_class_names_show_as_text(
    browser: DevTools, room: dict, tmp_path: Path
) -> None:
    # A scene file whose name (the default title) opens a comment and a script in HTML.
    scene = tmp_path / f"{HOSTILE_NAMES[0]} {HOSTILE_NAMES[2]}.ply"
    shutil.copyfile(room["scene"], scene)
    by_file = tmp_path / "by-file.html"
    write_viewer(scene, by_file, labels=room["pred"])
    page = Page(browser)
    assert page.open(by_file.as_uri()) == "ready", page.evaluate(
        "document.getElementById('status').textContent"
    )
    assert page.evaluate("document.getElementById('title').textContent") == scene.name
    assert page.evaluate("document.title") == f"{scene.name} — stseg viewer"

    # A title and class names that close the script element and start another one.
    names = tuple(f"{HOSTILE_NAMES[i % 3]} #{i}" for i in range(len(SCANNET20_COLORS)))
    title = "".join(HOSTILE_NAMES)
    html, _ = viewer_html(
        room["cloud"], palette=Palette("hostile", SCANNET20_COLORS, names), title=title
    )
    by_names = tmp_path / "by-names.html"
    by_names.write_text(html, encoding="utf-8")
    assert page.open(by_names.as_uri()) == "ready", page.evaluate(
        "document.getElementById('status').textContent"
    )
    assert page.evaluate("document.getElementById('title').textContent") == title
    shown = _texts(page, "#legend label.row")
    present = sorted(set(room["cloud"].labels.tolist()))
    counts = np.bincount(room["cloud"].labels)
    assert shown == [f"{names[k]} ({counts[k]:,})" for k in present]
    assert _non_background(page.canvas_pixels()).mean() > 0.02
    assert page.evaluate("typeof stsegViewer") == "object"
    page.problems()  # collects the events
    dialogs = [e for e in browser.events if e.get("method") == "Page.javascriptDialogOpening"]
    assert dialogs == [] and page.problems() == []
