"""Drive the real ``descluster serve`` (uvicorn in a subprocess) in headless Chromium.

Create a task, answer five questions by keyboard (images marked as not belonging
by cursor keys and ``x``, each answer checked in the engine), undo (the engine back
at the exact state before the answer), split, colour the map by label and by
confidence (the drawn pixels of the WebGL canvas checked against the served labels
and confidences), lasso a known set of rows on the map (drawn on the canvas above
the points; named, then opened as a question), download labels.csv and compare it with
the engine; kill -9 the server, restart it and get the same labels. Two tabs on one
session: the stale tab's answer is refused (409) and said so. A page without WebGL
gets the 2-D canvas's pixel buffer, the same colours. Skipped only where no
chromium binary exists; a chromium that Playwright cannot launch fails
(``conftest.start_chromium``).
"""

from __future__ import annotations

import os
import re
import shutil
import json
import math
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import start_chromium

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

    def api(self, path: str, body: dict | None = None, raw: bool = False):
        """``GET`` (or ``POST`` ``body`` as JSON) ``path`` with the token header: the JSON answer, or bytes."""
        import urllib.request

        base, token = self.url.split("/?token=")
        req = urllib.request.Request(base + path, data=None if body is None else json.dumps(body).encode(),
                                     headers={"x-descluster-token": token, "content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            data = r.read()
        return data if raw else json.loads(data)

    def wait_fitted(self, task: str, timeout: float = 60) -> dict:
        """Wait until the task's background refit has caught up with its answers; its progress then."""
        deadline = time.monotonic() + timeout
        while True:
            p = self.api(f"/api/progress?task={task}")
            if p["fit_version"] is not None and p["fit_version"] == p["version"]:
                return p
            if time.monotonic() > deadline:
                raise AssertionError(f"refit of {task} did not catch up in {timeout} s: {p}")
            time.sleep(0.1)

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
                         "n_rows: window.__desc.q.n_rows, rows: window.__desc.q.shown.map(s => s.row), "
                         "classes: window.__desc.q.classes}")


def _wait_new_question(page, old_id: str) -> dict:
    try:
        page.wait_for_function("(old) => window.__desc.q && window.__desc.q.id !== old && !window.__desc.busy",
                               arg=old_id, timeout=15000)
    except Exception as exc:
        raise AssertionError(f"no new question; status line: {page.locator('#status').inner_text()!r}") from exc
    return _question(page)


def _progress(page) -> str:
    return page.locator("#progress").inner_text()


def _decisions(page) -> int:
    """The ``Decisions: N`` figure of the page's progress block."""
    m = re.search(r"Decisions: (\d+)\b", _progress(page))
    assert m, _progress(page)
    return int(m.group(1))


def _engine(out) -> tuple[np.ndarray, np.ndarray, int]:
    """``(label, source, n_decisions)`` of task ``kind`` as the engine folds the session's log now."""
    with _session(out) as s:
        st = s.state("kind")
        return st.label.copy(), st.source.copy(), st.n_decisions


def _cursor_to(page, j: int) -> None:
    """Move the question grid's cursor to tile ``j`` with the arrow keys."""
    cur = page.evaluate("() => window.__desc.cursor")
    for _ in range(abs(j - cur)):
        page.keyboard.press("ArrowRight" if j > cur else "ArrowLeft")
    assert page.evaluate("() => window.__desc.cursor") == j
    assert page.locator(".tile").nth(j).get_attribute("class").split().count("cursor") == 1


def _mark(page, j: int, cls: str, classes: list[str]) -> None:
    """Mark tile ``j`` as not belonging by keyboard (cursor keys, ``x``) and give it class ``cls`` (a digit)."""
    _cursor_to(page, j)
    before = page.locator(".tile.marked").count()
    page.keyboard.press("x")
    assert page.locator(".tile.marked").count() == before + 1
    page.keyboard.press(str(classes.index(cls) + 1))
    assert page.locator(".tile").nth(j).locator("figcaption").inner_text() == "→ " + cls


def _js_const(name: str):
    """A constant array of app.js (``PALETTE``, ``RAMP``), parsed from the source the page runs."""
    from descluster.app.security import static_file

    text = static_file("app.js")[0].decode()
    m = re.search(rf"const {name} = (\[.*?\]);", text, re.S)
    return json.loads(m.group(1).replace("\n", " "))


def _expected_rgb(code: int, conf: int, by_conf: bool) -> tuple[int, int, int]:
    """What app.js's ``draw()`` paints for a row of label code ``code`` (0 = none) and confidence byte ``conf``."""
    if by_conf:
        ramp = _js_const("RAMP")
        x = min(0.9999, max(0.0, conf / 255)) * (len(ramp) - 1)
        i = math.floor(x)
        f = x - i
        return tuple(math.floor(v + f * (ramp[i + 1][k] - v) + 0.5) for k, v in enumerate(ramp[i]))  # Math.round
    if code == 0:
        return (190, 190, 190)
    h = _js_const("PALETTE")[(code - 1) % 16]
    return tuple(int(h[k:k + 2], 16) for k in (1, 3, 5))


def _canvas_px(page) -> np.ndarray:
    """Canvas pixel position (``toPx``) of every row's dot, shape (n, 2), float64."""
    return np.asarray(page.evaluate("() => { const m = window.__map, out = []; for (let i = 0; i < m.meta.n; i++)"
                                    " out.push(m.toPx(m.pts[2 * i], m.pts[2 * i + 1])); return out; }"))


def _pixels(page, xy) -> list[tuple[int, int, int]]:
    """RGB of the points' canvas ``#map`` at integer canvas pixels ``xy``, whichever renderer drew it: the
    canvas (WebGL, drawn with ``preserveDrawingBuffer``, or 2-D) is copied into a 2-D canvas and read there."""
    return [tuple(v) for v in page.evaluate(
        "(xy) => { const m = document.getElementById('map'), c = document.createElement('canvas');"
        " c.width = m.width; c.height = m.height; const g = c.getContext('2d'); g.drawImage(m, 0, 0);"
        " return xy.map(([x, y]) => Array.from(g.getImageData(x, y, 1, 1).data.slice(0, 3))); }",
        [[int(x), int(y)] for x, y in xy])]


def _webgl_available(page) -> bool:
    """Whether this browser gives a page a WebGL context (headless chromium: SwiftShader, no GPU needed)."""
    return page.evaluate("() => { const c = document.createElement('canvas');"
                         " return !!(c.getContext('webgl2') || c.getContext('webgl')); }")


#: Makes a page's WebGL context requests answer null, as in a browser with WebGL disabled.
NO_WEBGL = ("(() => { const get = HTMLCanvasElement.prototype.getContext;"
            " HTMLCanvasElement.prototype.getContext = function (type, ...rest) {"
            " return /webgl/i.test(type) ? null : get.call(this, type, ...rest); }; })();")


def _clean_rows(px: np.ndarray, dot: int) -> list[int]:
    """Rows whose dot's top-left pixel ``floor(px)`` shows that row's own colour under either renderer.

    A dot covers the ``dot`` x ``dot`` pixels from ``floor(px)``, later rows over earlier ones. The WebGL
    renderer maps data to pixels in float32 (the vertex shader), which can floor a coordinate within
    1e-3 px of an integer to the neighbouring pixel: such rows are not checked, and their dots are taken
    one pixel wider on each side when deciding what they may cover.
    """
    xy = np.floor(px).astype(int)
    frac = px - xy
    near = ((frac < 1e-3) | (frac > 1 - 1e-3)).any(axis=1)
    lo, hi = xy - near[:, None], xy + dot + near[:, None]
    clean = []
    for i in np.flatnonzero(~near):
        later = slice(i + 1, None)
        if not ((lo[later] <= xy[i]) & (xy[i] < hi[later])).all(axis=1).any():
            clean.append(int(i))
    return clean


def _check_map_colours(page, server, task: str) -> None:
    """The map's drawn pixels against the served labels and confidences, coloured by label, by
    confidence, and by label again (every clean row, :func:`_clean_rows`), and the legend with each."""
    n, dot = page.evaluate("() => [window.__map.meta.n, window.__map.dot]")
    assert dot == (3 if n < 20000 else 2)
    lab = np.frombuffer(server.api(f"/api/map/labels?task={task}", raw=True), np.uint8)
    codes, conf = lab[:n], lab[n:]
    px = _canvas_px(page)
    clean = _clean_rows(px, dot)
    xy = np.floor(px[clean]).astype(int)
    assert len(clean) > n // 2
    by_label = [_expected_rgb(codes[i], conf[i], False) for i in clean]
    by_conf = [_expected_rgb(codes[i], conf[i], True) for i in clean]
    assert by_label != by_conf and len(set(conf[clean])) > 1 and len(set(by_label)) > 1
    assert _pixels(page, xy) == by_label
    W, H = page.evaluate("() => [window.__map.W, window.__map.H]")
    assert _pixels(page, [(1, 1), (W - 2, H - 2)]) == [(255, 255, 255)] * 2  # the background (padding)
    assert "no label yet" in page.inner_text("#legend")
    page.select_option("#colour-by", "confidence")
    assert _pixels(page, xy) == by_conf
    assert page.inner_text("#legend").startswith("low confidence")
    page.select_option("#colour-by", "label")
    assert _pixels(page, xy) == by_label


def _gap_rect(page):
    """A lasso rectangle from the canvas's left edge to the middle of the widest gap between dots (so no
    dot lies near its border), and the rows it holds: exactly the dots left of that gap."""
    px = _canvas_px(page)
    W, H = page.evaluate("() => [window.__map.W, window.__map.H]")
    xs = np.sort(px[:, 0])
    gaps = np.diff(xs)[10:-10]  # at least 10 dots on each side
    g = int(gaps.argmax()) + 10
    assert gaps.max() > 8, f"no clear gap between the map's dots (widest {gaps.max():.1f} px)"
    split_x = (xs[g] + xs[g + 1]) / 2
    assert px[:, 1].min() > 3 and px[:, 1].max() < H - 3 and px[:, 0].min() > 3
    return [(3, 3), (split_x, 3), (split_x, H - 3), (3, H - 3)], np.flatnonzero(px[:, 0] < split_x)


def _lasso(page, poly) -> None:
    """Drag the mouse around ``poly`` (canvas pixel coordinates), closing it at its first vertex."""
    box = page.locator("#map").bounding_box()
    W, H = page.evaluate("() => [window.__map.W, window.__map.H]")

    def at(x, y):
        return box["x"] + x * box["width"] / W, box["y"] + y * box["height"] / H

    page.mouse.move(*at(*poly[0]))
    page.mouse.down()
    for x, y in poly[1:] + poly[:1]:
        page.mouse.move(*at(x, y), steps=4)
    page.mouse.up()


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
        decisions, states, marked_any = 0, [], False
        for i in range(5):
            t = [truth[paths[r]] for r in q["rows"]]
            values, counts = np.unique(t, return_counts=True)
            major = str(values[counts.argmax()])
            page.keyboard.press(str(classes.index(major) + 1))
            marks = {q["rows"][j]: c for j, c in enumerate(t) if c != major}  # every true outsider
            if not marked_any and not marks:  # one image marked at least once: the last, as another class
                marks = {q["rows"][-1]: classes[(classes.index(major) + 1) % 3]}
            for j, r in enumerate(q["rows"]):
                if r in marks:
                    _mark(page, j, marks[r], classes)
            assert page.locator(".tile.marked").count() == len(marks)
            marked_any = marked_any or bool(marks)
            states.append(_engine(out))
            page.keyboard.press("Enter")
            answered = q
            q = _wait_new_question(page, q["id"])
            decisions += 1 + len(marks)
            assert _decisions(page) == decisions
            # the engine has the answer: each shown row its mark's class, the others the group's; all "given"
            label, source, n_dec = _engine(out)
            want = [classes.index(marks.get(r, major)) for r in answered["rows"]]
            assert label[answered["rows"]].tolist() == want and (source[answered["rows"]] == 1).all()
            assert n_dec == decisions
        assert marked_any
        # undo the fifth answer: the engine is back at the exact state before it
        page.keyboard.press("u")
        q = _wait_new_question(page, q["id"])
        page.wait_for_function("() => document.getElementById('status').textContent.startsWith('undone')")
        assert page.locator("#status").inner_text() == "undone: name"
        label, source, n_dec = _engine(out)
        label4, source4, n_dec4 = states[-1]
        assert np.array_equal(label, label4) and np.array_equal(source, source4) and n_dec == n_dec4
        assert _decisions(page) == n_dec4 == decisions - 1 - len(marks)
        # split the current group: its parts come next
        page.keyboard.press("s")
        q = _wait_new_question(page, q["id"])
        assert q["kind"] == "subgroup"
        with _session(out) as s:
            assert s.decisions("kind")["payload"].str.contains('"action":"split"').any()

        # the map, once the refit has caught up (so the served labels do not change under the page)
        server.wait_fitted("kind")
        page.goto(server.url.split("?")[0] + "map?task=kind")
        page.wait_for_function("() => window.__map && window.__map.ready")
        n = page.evaluate("() => window.__map.meta.n")
        # drawn with WebGL where the browser has it (headless chromium: SwiftShader), and said so
        webgl = _webgl_available(page)
        assert page.evaluate("() => window.__map.renderer") == ("webgl" if webgl else "2d")
        assert page.inner_text("#map-how").endswith(
            "· drawn with WebGL" if webgl else "· drawn in a 2-D canvas (WebGL unavailable)")
        _check_map_colours(page, server, "kind")

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

        # lasso: a rectangle holding exactly the dots left of the widest gap between them; drawing it
        # touches only the lasso's canvas, not the points' one
        rect, expected = _gap_rect(page)
        W, H = page.evaluate("() => [window.__map.W, window.__map.H]")
        grid = [(x, y) for x in range(0, W, 7) for y in range(0, H, 7)]
        before = _pixels(page, grid)
        label_before, source_before, _ = _engine(out)
        _lasso(page, rect)
        assert page.evaluate("() => window.__map.lasso.n") == expected.size
        assert page.inner_text("#lasso-line") == f"{expected.size:,} images in the lasso"
        assert _pixels(page, grid) == before
        alpha = page.evaluate("([W, H]) => { const c = document.getElementById('map-lasso').getContext('2d');"
                              " return [3, W - 2].map((x) => c.getImageData(x, H >> 1, 1, 1).data[3]); }", [W, H])
        assert alpha[0] > 0 and alpha[1] == 0  # on the top canvas: the outline at the left edge, nothing past the lasso
        page.select_option("#lasso-label", "k2")
        page.click("#btn-lasso-label")
        page.wait_for_function("() => document.getElementById('status').textContent.includes('named k2')")
        assert page.inner_text("#status") == f"{expected.size:,} images named k2"
        label, source, _ = _engine(out)
        outside = np.setdiff1d(np.arange(n), expected)
        # the engine's rule (labelling/state.py): the name applies to every lassoed row, except that a group
        # name never replaces an earlier given label of a row the question did not show
        with _session(out) as s:
            last = [e for e in s.state("kind").entries if e.kind == "answer"][-1]
            assert last.payload["action"] == "name" and last.payload["label"] == "k2"
            shown = np.asarray(last.payload["question"]["shown"], dtype=np.int64)
        assert shown.size == min(64, expected.size) and np.isin(shown, expected).all()
        kept = np.setdiff1d(expected[source_before[expected] == 1], shown)
        named = np.setdiff1d(expected, kept)
        assert (label[named] == classes.index("k2")).all() and (source[named] > 0).all()
        assert np.array_equal(label[kept], label_before[kept]) and (source[kept] == 1).all()
        assert np.array_equal(label[outside], label_before[outside])
        assert np.array_equal(source[outside], source_before[outside])
        # the same lasso opened as a question: that question holds exactly those rows
        _lasso(page, rect)
        assert page.evaluate("() => window.__map.lasso.n") == expected.size
        page.click("#btn-lasso-ask")
        page.wait_for_url("**/question?task=kind")
        page.wait_for_function("() => window.__desc && window.__desc.q")
        lq = _question(page)
        assert lq["kind"] == "custom" and lq["n_rows"] == expected.size
        assert set(lq["rows"]) <= set(expected.tolist()) and len(lq["rows"]) == min(64, expected.size)
        assert page.locator(".tile").count() == len(lq["rows"])
        assert page.locator("#proposal .kind").inner_text().startswith(f"custom question · {expected.size:,} images")
        with _session(out) as s:
            status, engine_q = s.question(lq["id"])
        assert status == "open" and engine_q.rows == expected.tolist()

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

        # kill -9 and restart: same decisions, same open question, same labels
        page.goto(server.url.split("?")[0] + "question?task=kind")
        page.wait_for_function("() => window.__desc && window.__desc.q")
        open_id = _question(page)["id"]
        label_before, source_before, _ = _engine(out)
        server.kill()
        server = Server(out)
        page.goto(server.url)
        page.goto(server.url.split("?")[0] + "question?task=kind")
        page.wait_for_function("() => window.__desc && window.__desc.q")
        assert _question(page)["id"] == open_id
        assert _decisions(page) == n_dec
        assert page.locator("table.tasks").count() == 0  # question view, not the list
        codes = np.frombuffer(server.api("/api/map/labels?task=kind", raw=True), np.uint8)[:n]
        answered = label_before >= 0
        assert np.array_equal(codes[answered], label_before[answered] + 1)  # the restarted server's labels
        page.goto(server.url.split("?")[0] + "export?task=kind")
        with page.expect_download() as dl:
            page.click("#dl-csv")
        again = pd.read_csv(dl.value.path(), keep_default_na=False)
        pd.testing.assert_frame_equal(again[["path", "kind", "kind_source"]], got[["path", "kind", "kind_source"]])
        label, source, _ = _engine(out)
        assert np.array_equal(label, label_before) and np.array_equal(source, source_before)
        page.goto(server.url.split("?")[0])
        assert "kind" in page.locator("table.tasks").inner_text()
        assert not errors, errors
    finally:
        context.close()
        server.kill()


def test_map_without_webgl(browser, out):
    """A browser that gives no WebGL context gets the 2-D canvas's pixel buffer: said so on the page, the
    same colours dot by dot as the WebGL renderer is checked against, and the same lasso."""
    server = Server(out)
    server.api("/api/tasks", {"name": "kind", "classes": ["k0", "k1", "k2"]})
    for cls in ("k0", "k1", "k2"):  # three groups named, one per class
        q = server.api("/api/question?task=kind")["question"]
        server.api("/api/answer", {"task": "kind", "question": q["id"], "action": "name", "label": cls, "marks": []})
    server.wait_fitted("kind")
    context = browser.new_context(viewport={"width": 1400, "height": 950})
    context.add_init_script(NO_WEBGL)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(server.url)
        assert not _webgl_available(page)  # the stub holds
        page.goto(server.url.split("?")[0] + "map?task=kind")
        page.wait_for_function("() => window.__map && window.__map.ready")
        assert page.evaluate("() => window.__map.renderer") == "2d"
        assert page.inner_text("#map-how").endswith("· drawn in a 2-D canvas (WebGL unavailable)")
        _check_map_colours(page, server, "kind")
        rect, expected = _gap_rect(page)
        _lasso(page, rect)
        assert page.evaluate("() => window.__map.lasso.n") == expected.size
        assert page.inner_text("#lasso-line") == f"{expected.size:,} images in the lasso"
        assert not errors, errors
    finally:
        context.close()
        server.kill()


def test_two_tabs_stale_answer_refused(browser, out):
    """Tab B answering the question tab A has answered is refused (409), told so, and shown the current one."""
    server = Server(out)
    server.api("/api/tasks", {"name": "kind", "classes": ["k0", "k1"]})
    context = browser.new_context(viewport={"width": 1400, "height": 950})
    a, b = context.new_page(), context.new_page()
    errors, answers_b = [], []
    for p in (a, b):
        p.on("pageerror", lambda e: errors.append(str(e)))
    b.on("response", lambda r: answers_b.append(r.status) if "/api/answer" in r.url else None)
    try:
        a.goto(server.url)  # sets the token cookie for the context (both tabs)
        for p in (a, b):
            p.goto(server.url.split("?")[0] + "question?task=kind")
            p.wait_for_function("() => window.__desc && window.__desc.q")
        q = _question(a)
        assert _question(b)["id"] == q["id"]
        a.bring_to_front()
        a.keyboard.press("1")
        a.keyboard.press("Enter")
        qa = _wait_new_question(a, q["id"])
        assert _decisions(a) == 1
        b.bring_to_front()
        b.keyboard.press("2")  # another class, on the question tab A has answered
        b.keyboard.press("Enter")
        qb = _wait_new_question(b, q["id"])
        assert answers_b == [409]
        status = b.locator("#status")
        assert f"question {q['id']} is answered already" in status.inner_text()
        assert status.get_attribute("class") == "bad"
        assert qb["id"] == qa["id"] and _decisions(b) == 1  # the current question, nothing counted
        label, source, n_dec = _engine(out)
        assert n_dec == 1 and label[q["rows"]].tolist() == [0] * len(q["rows"])  # A's answer, not B's
        assert (label == 1).sum() == 0
        for p in (a, b):
            p.reload()
            p.wait_for_function("() => window.__desc && window.__desc.q")
        assert _question(a) == _question(b) and _question(a)["id"] == qa["id"]
        assert _progress(a) == _progress(b) and _decisions(a) == 1
        assert not errors, errors
    finally:
        context.close()
        server.kill()


def test_installed_chromium_that_cannot_start_fails(tmp_path):
    """A chromium binary Playwright cannot launch fails the test with the reason; no binary at all skips."""
    pytest.importorskip("playwright.sync_api")
    fake = tmp_path / "chromium"
    fake.write_text("#!/bin/sh\necho 'cannot start' >&2\nexit 1\n")
    fake.chmod(0o755)
    got = []

    def attempt(candidates):  # in a thread: a module's browser may hold this thread's Playwright loop
        try:
            start_chromium(candidates)
        except BaseException as exc:  # noqa: BLE001 - the outcome is what is checked
            got.append(exc)

    for candidates in ([str(fake)], [str(tmp_path / "none")]):
        th = threading.Thread(target=attempt, args=(candidates,))
        th.start()
        th.join(120)
    failed, skipped = got
    assert isinstance(failed, pytest.fail.Exception)
    assert f"chromium is installed ({fake}) but Playwright cannot launch it" in str(failed)
    assert isinstance(skipped, pytest.skip.Exception) and "no chromium binary" in str(skipped)


def _session(out):
    from descluster.labelling import Session

    return Session(out, refit="sync")
