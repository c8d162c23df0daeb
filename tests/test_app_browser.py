"""Drive the real ``descluster serve`` (uvicorn in a subprocess) in headless Chromium.

Create a task, answer five questions by keyboard (one with an image marked as not
belonging), undo, split, lasso on the map, download labels.csv and compare it with
the engine; kill -9 the server, restart it and see the same state. Skipped (with
the reason) when playwright or /usr/bin/chromium is missing or cannot start.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python -m descluster serve OUT`` on a free port; ``url`` is the printed URL with its token."""

    def __init__(self, out: Path):
        self.port = _free_port()
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen([sys.executable, "-m", "descluster", "serve", str(out), "--port", str(self.port)],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        self.lines = []
        deadline = time.monotonic() + 60
        self.url = None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            m = re.search(r"open: (http://\S+)", line)
            if m:
                self.url = m.group(1)
                break
        assert self.url, "server printed no URL:\n" + "".join(self.lines)
        import urllib.error
        import urllib.request

        base, token = self.url.split("/?token=")
        for _ in range(600):  # wait until the session is open (the server answers 503 while it loads)
            req = urllib.request.Request(base + "/api/tasks", headers={"x-descluster-token": token})
            try:
                with urllib.request.urlopen(req, timeout=10):
                    return
            except urllib.error.HTTPError as exc:
                if exc.code != 503:
                    raise AssertionError(f"server answered {exc.code}: {exc.read()[:300]!r}") from exc
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError("server did not open its session in 60 s")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)


@pytest.fixture
def out(small_results, tmp_path):
    dest = tmp_path / "out"
    shutil.copytree(small_results[0], dest, symlinks=True)
    return dest


def _question(page) -> dict:
    return page.evaluate("() => window.__desc.q && {id: window.__desc.q.id, kind: window.__desc.q.kind, "
                         "rows: window.__desc.q.shown.map(s => s.row), classes: window.__desc.q.classes}")


def _wait_new_question(page, old_id: str) -> dict:
    try:
        page.wait_for_function("(old) => window.__desc.q && window.__desc.q.id !== old && !window.__desc.busy",
                               arg=old_id, timeout=15000)
    except Exception as exc:
        raise AssertionError(f"no new question; status line: {page.locator('#status').inner_text()!r}") from exc
    return _question(page)


def _progress(page) -> str:
    return page.locator("#progress").inner_text()


def test_label_in_the_browser(browser, out, small_results, tmp_path):
    truth = small_results[1].set_index("path")["kind"]
    paths = pd.read_csv(out / "clusters.csv")["path"].tolist()
    classes = ["k0", "k1", "k2"]
    server = Server(out)
    context = browser.new_context(accept_downloads=True, viewport={"width": 1400, "height": 950})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(server.url)
        assert page.url.endswith("/") and "token=" not in page.url
        page.fill("#task-name", "kind")
        page.fill("#task-classes", ", ".join(classes))
        page.click("#new-task button")
        page.wait_for_url("**/question?task=kind")
        page.wait_for_function("() => window.__desc && window.__desc.q")
        page.wait_for_selector(".tile img")
        q = _question(page)
        decisions = 0
        marked = False
        for i in range(5):
            t = [truth[paths[r]] for r in q["rows"]]
            values, counts = np.unique(t, return_counts=True)
            major = str(values[counts.argmax()])
            page.keyboard.press(str(classes.index(major) + 1))
            odd = [j for j, c in enumerate(t) if c != major]
            if not marked:  # mark one image as not belonging (a true outsider if any, else the last image)
                j = odd[0] if odd else len(t) - 1
                other = t[j] if odd else classes[(classes.index(major) + 1) % 3]
                for _ in range(j):
                    page.keyboard.press("ArrowRight")
                page.keyboard.press("x")
                assert page.locator(".tile.marked").count() == 1
                page.keyboard.press(str(classes.index(other) + 1))
                assert "→ " + other in page.locator(".tile.marked figcaption").inner_text()
                marked = True
                decisions += 2
            else:
                for j in odd:
                    page.locator(".tile").nth(j).click()
                    page.keyboard.press(str(classes.index(t[j]) + 1))
                decisions += 1 + len(odd)
            page.keyboard.press("Enter")
            q = _wait_new_question(page, q["id"])
            assert f"Decisions: {decisions}" in _progress(page)
        # undo the fifth answer
        page.keyboard.press("u")
        q = _wait_new_question(page, q["id"])
        page.wait_for_function("() => document.getElementById('status').textContent.startsWith('undone')")
        assert f"Decisions: {decisions - 1}" in _progress(page) or f"Decisions: {decisions}" not in _progress(page)
        with _session(out) as s:
            after_undo = s.state("kind").n_decisions
        assert f"Decisions: {after_undo}" in _progress(page)
        # split the current group: its parts come next
        page.keyboard.press("s")
        q = _wait_new_question(page, q["id"])
        assert q["kind"] == "subgroup"
        with _session(out) as s:
            assert s.decisions("kind")["payload"].str.contains('"action":"split"').any()

        # lasso on the map: the left half of the canvas, named k2
        page.goto(server.url.split("?")[0] + "map?task=kind")
        page.wait_for_function("() => window.__map && window.__map.ready")
        box = page.locator("#map").bounding_box()
        # hover over image 7's dot: its thumbnail shows (a point drawn elsewhere may be nearer: any row is
        # fine as long as the tip shows the row the page found under the cursor)
        cx, cy = page.evaluate("() => { const m = window.__map; const [x, y] = m.toPx(m.pts[14], m.pts[15]);"
                               " return [x / m.W, y / m.H]; }")
        page.mouse.move(box["x"] + cx * box["width"], box["y"] + cy * box["height"], steps=3)
        page.wait_for_function("() => !document.getElementById('map-tip').hidden")
        row = page.evaluate("() => window.__map.hover")
        assert row >= 0
        page.wait_for_function("() => { const i = document.querySelector('#map-tip img'); "
                               "return i.complete && i.naturalWidth > 0; }")
        assert page.get_attribute("#map-tip img", "src") == f"/thumb/{row}"
        assert f"image {row:,}" in page.inner_text("#map-tip")
        page.mouse.move(box["x"] - 5, box["y"] - 5)
        page.wait_for_function("() => document.getElementById('map-tip').hidden")
        pts = [(0.02, 0.02), (0.5, 0.02), (0.5, 0.98), (0.02, 0.98)]
        page.mouse.move(box["x"] + pts[0][0] * box["width"], box["y"] + pts[0][1] * box["height"])
        page.mouse.down()
        for fx, fy in pts[1:] + pts[:1]:
            page.mouse.move(box["x"] + fx * box["width"], box["y"] + fy * box["height"], steps=4)
        page.mouse.up()
        n_lasso = page.evaluate("() => window.__map.lasso.n")
        assert n_lasso > 0
        page.select_option("#lasso-label", "k2")
        page.click("#btn-lasso-label")
        page.wait_for_function("() => document.getElementById('status').textContent.includes('named k2')")
        with _session(out) as s:
            st = s.state("kind")
            assert (st.label == classes.index("k2")).sum() >= n_lasso

        # export labels.csv: the rows the engine computes
        page.goto(server.url.split("?")[0] + "export?task=kind")
        with page.expect_download() as dl:
            page.click("#dl-csv")
        got = pd.read_csv(dl.value.path(), keep_default_na=False)
        with _session(out) as s:
            engine = s.labels("kind")
            n_dec = s.state("kind").n_decisions
        assert got["path"].tolist() == paths
        assert got["kind"].tolist() == engine["label"].tolist()
        assert got["kind_source"].tolist() == engine["source"].tolist()

        # kill -9 and restart: same decisions, same open question
        page.goto(server.url.split("?")[0] + "question?task=kind")
        page.wait_for_function("() => window.__desc && window.__desc.q")
        open_id = _question(page)["id"]
        server.kill()
        server = Server(out)
        page.goto(server.url)
        page.goto(server.url.split("?")[0] + "question?task=kind")
        page.wait_for_function("() => window.__desc && window.__desc.q")
        assert _question(page)["id"] == open_id
        assert f"Decisions: {n_dec}" in _progress(page)
        assert page.locator("table.tasks").count() == 0  # question view, not the list
        page.goto(server.url.split("?")[0])
        assert "kind" in page.locator("table.tasks").inner_text()
        assert not errors, errors
    finally:
        context.close()
        server.kill()


def _session(out):
    from descluster.labelling import Session

    return Session(out, refit="sync")
