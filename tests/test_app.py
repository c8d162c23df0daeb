"""The labelling web app through Starlette's TestClient: access rules, escaping, persistence, 409."""

from __future__ import annotations

import os
import shutil
import sqlite3
import warnings

import numpy as np
import pandas as pd
import pytest

starlette = pytest.importorskip("starlette")
pytest.importorskip("httpx")
pytestmark = pytest.mark.filterwarnings("ignore:.*httpx.*")
warnings.filterwarnings("ignore", message=".*httpx.*")  # Starlette 1.x suggests httpx2 for its TestClient

from starlette.testclient import TestClient  # noqa: E402

from descluster.app import create_app  # noqa: E402
from descluster.app.security import TOKEN_COOKIE  # noqa: E402
from descluster.labelling import Session  # noqa: E402

TOKEN = "t" * 12 + "0123456789abcdef"


@pytest.fixture
def out(small_results, tmp_path):
    """A private copy of the small results folder (the app writes labels.sqlite and exports into it)."""
    dest = tmp_path / "out"
    shutil.copytree(small_results[0], dest, symlinks=True)
    return dest


def client(out, **kw):
    app = create_app(out, token=TOKEN, hosts=["testserver"], refit="sync", **kw)
    c = TestClient(app)
    c.cookies.set(TOKEN_COOKIE, TOKEN)
    return app, c


def test_token_required_and_cookie_set(out):
    app = create_app(out, token=TOKEN, hosts=["testserver"], refit="sync")
    c = TestClient(app)
    for path in ("/", "/api/tasks", "/thumb/0", "/static/app.js", "/export/labels.csv"):
        assert c.get(path).status_code == 403, path
    assert c.get("/?token=wrong-token-wrong-token").status_code == 403
    assert c.get("/", headers={"x-descluster-token": "nope"}).status_code == 403
    r = c.get(f"/?token={TOKEN}", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/"
    cookie = r.headers["set-cookie"]
    assert f"{TOKEN_COOKIE}={TOKEN}" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    c.cookies.set(TOKEN_COOKIE, TOKEN)
    page = c.get("/")
    assert page.status_code == 200 and "New task" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert c.get("/api/tasks", headers={"x-descluster-token": TOKEN}).status_code == 200
    # another Host (DNS rebinding) is refused even with the token
    assert c.get("/", headers={"host": "evil.example"}).status_code == 403


def test_origin_refused_for_changes(out):
    app, c = client(out)
    assert c.post("/api/tasks", json={"name": "a", "classes": ["x"]},
                  headers={"origin": "http://evil.example"}).status_code == 403
    assert c.post("/api/tasks", json={"name": "a", "classes": ["x"]},
                  headers={"sec-fetch-site": "cross-site"}).status_code == 403
    c2 = TestClient(app)  # no token at all
    assert c2.post("/api/tasks", json={"name": "a", "classes": ["x"]}).status_code == 403
    assert [t["name"] for t in app.labelling.session.tasks()] == []
    ok = c.post("/api/tasks", json={"name": "a", "classes": ["x"]}, headers={"origin": "http://testserver"})
    assert ok.status_code == 200 and [t["name"] for t in app.labelling.session.tasks()] == ["a"]


def test_paths_outside_the_image_root_refused(out, small_results, tmp_path):
    images = tmp_path / "images"
    shutil.copytree(small_results[0].parent / "case" / "images", images)
    paths = pd.read_csv(out / "clusters.csv")["path"].tolist()
    secret = tmp_path / "secret.png"
    shutil.copyfile(images / paths[1], secret)
    os.remove(images / paths[1])
    os.symlink(secret, images / paths[1])  # a link leaving the image root
    app, c = client(out, images=images)
    assert c.get("/thumb/0").status_code == 200 and c.get("/thumb/0").headers["content-type"] == "image/jpeg"
    assert c.get("/thumb/1").status_code == 403
    for bad in ("/thumb/-1", f"/thumb/{len(paths)}", "/thumb/..%2F..%2Fetc%2Fpasswd", "/thumb/abc"):
        assert c.get(bad).status_code == 404, bad
    for bad in ("/static/../server.py", "/static/..%2Fserver.py", "/static/%2Fetc%2Fpasswd", "/static/server.py",
                "/static/__init__.py", "/export/..%2Fmanifest.json", "/export/manifest.json"):
        r = c.get(bad)
        assert r.status_code == 404, bad
        assert "def " not in r.text and "root:" not in r.text


def test_hostile_names_are_escaped(out):
    app, c = client(out)
    name = "<script>alert(1)</script>"
    r = c.post("/api/tasks", json={"name": name, "classes": ["<img src=x onerror=alert(2)>", "b&c\"'"]})
    assert r.status_code == 200
    for page in ("/", f"/question?task={name}", f"/map?task={name}", f"/clusters?task={name}",
                 f"/export?task={name}"):
        html = c.get(page, params=None).text
        assert "<script>alert" not in html and "<img src=x" not in html, page
        assert "&lt;script&gt;" in html or "\\u003cscript\\u003e" in html, page


def _answer(c, task, label, marks=()):
    q = c.get(f"/api/question?task={task}").json()["question"]
    r = c.post("/api/answer", json={"task": task, "question": q["id"], "action": "name", "label": label,
                                    "marks": [list(m) for m in marks]})
    assert r.status_code == 200, r.text
    return q, r.json()


def test_answer_persisted_restart_and_stale_409(out):
    app, c = client(out)
    c.post("/api/tasks", json={"name": "kind", "classes": ["k0", "k1", "k2"]})
    q1, got = _answer(c, "kind", "k0", marks=[])
    q = c.get("/api/question?task=kind").json()["question"]
    row = q["shown"][0]["row"]
    r = c.post("/api/answer", json={"task": "kind", "question": q["id"], "action": "name", "label": "k1",
                                    "marks": [[row, "k2"]]})
    assert r.status_code == 200 and r.json()["result"]["decisions"] == 2
    # committed in SQLite before the response: a separate connection sees both answers
    with sqlite3.connect(out / "labels.sqlite") as db:
        kinds = [k for (k,) in db.execute("SELECT kind FROM decisions WHERE task = 'kind' ORDER BY id")]
    assert kinds == ["add_task", "answer", "answer"]
    # the same question answered again (another tab) is refused, not overwritten
    stale = c.post("/api/answer", json={"task": "kind", "question": q["id"], "action": "name", "label": "k2"})
    assert stale.status_code == 409
    q_open = c.get("/api/question?task=kind").json()["question"]
    for marks in ([["abc", "k1"]], [[1.5, "k1"]], [[True, "k1"]], "x"):  # a bad mark: a clear 400, nothing stored
        bad = c.post("/api/answer", json={"task": "kind", "question": q_open["id"], "action": "name", "label": "k1",
                                          "marks": marks})
        assert bad.status_code == 400 and "marks must be a list of [row, class] pairs" in bad.text, marks
    stale_undo = c.post("/api/undo", json={"task": "kind", "question": q1["id"]})
    assert stale_undo.status_code == 409
    before = app.labelling.session.state("kind")
    label_before, decisions = before.label.copy(), before.n_decisions
    assert label_before[row] == 2 and set(label_before[[s["row"] for s in q1["shown"]]]) == {0}
    open_id = c.get("/api/question?task=kind").json()["question"]["id"]
    app.labelling.close()
    # restart: a new app on the same folder shows the same state and the same open question
    app2, c2 = client(out)
    st = app2.labelling.session.state("kind")
    assert np.array_equal(st.label, label_before) and st.n_decisions == decisions == 3
    assert c2.get("/api/question?task=kind").json()["question"]["id"] == open_id
    p = c2.get("/api/progress?task=kind").json()
    assert p["decisions"] == 3 and p["labelled"] == int((label_before >= 0).sum())
    # undo through the app: the newest answer goes, the log keeps it as an entry
    u = c2.post("/api/undo", json={"task": "kind", "question": open_id})
    assert u.status_code == 200 and u.json()["undone"]["decisions"] == 2
    assert app2.labelling.session.state("kind").label[row] == -1
    # exports agree with the engine
    csv = c2.get("/export/labels.csv?task=kind")
    assert csv.status_code == 200
    from io import StringIO

    table = pd.read_csv(StringIO(csv.text), keep_default_na=False)
    with Session(out, refit="sync") as s:
        engine = s.labels("kind")
    assert table["kind"].tolist() == engine["label"].tolist()
    assert table["kind_source"].tolist() == engine["source"].tolist()
    for kind in ("label_studio.json", "images.zip", "decisions.csv"):
        assert c2.get(f"/export/{kind}?task=kind").status_code == 200, kind


def test_split_junk_skip_lasso_and_views(out):
    app, c = client(out)
    c.post("/api/tasks", json={"name": "kind", "classes": ["k0"]})
    assert c.post("/api/classes", json={"task": "kind", "class": "k1"}).json()["classes"] == ["k0", "k1"]
    assert c.post("/api/classes", json={"task": "kind", "class": "k1"}).status_code == 400
    q = c.get("/api/question?task=kind").json()["question"]
    r = c.post("/api/answer", json={"task": "kind", "question": q["id"], "action": "split"})
    assert r.status_code == 200 and r.json()["result"]["subgroups"] >= 2
    assert r.json()["question"]["kind"] == "subgroup"
    q = r.json()["question"]
    r = c.post("/api/answer", json={"task": "kind", "question": q["id"], "action": "skip"})
    assert r.status_code == 200
    q = r.json()["question"]
    r = c.post("/api/answer", json={"task": "kind", "question": q["id"], "action": "junk"})
    assert r.status_code == 200
    assert c.post("/api/answer", json={"task": "kind", "question": r.json()["question"]["id"],
                                       "action": "explode"}).status_code == 400
    meta = c.get("/api/map/meta").json()
    assert meta["n"] == app.labelling.data.n_samples and "PCA" in meta["how"].upper()
    Y = np.frombuffer(c.get("/api/map/points").content, "<f4").reshape(-1, 2)
    x0, y0, x1, y1 = meta["bounds"]
    poly = [[x0 - 1, y0 - 1], [x1 + 1, y0 - 1], [x1 + 1, (y0 + y1) / 2], [x0 - 1, (y0 + y1) / 2]]
    inside = int((Y[:, 1] < (y0 + y1) / 2).sum())
    r = c.post("/api/lasso", json={"task": "kind", "polygon": poly, "action": "label", "label": "k1"})
    assert r.status_code == 200 and r.json()["rows"] == inside
    st = app.labelling.session.state("kind")
    assert (st.label[Y[:, 1] < (y0 + y1) / 2] == st.classes.index("k1")).all()
    lab = np.frombuffer(c.get("/api/map/labels?task=kind").content, np.uint8)
    assert lab.size == 2 * meta["n"] and (lab[: meta["n"]][Y[:, 1] < (y0 + y1) / 2] == 2).all()
    r = c.post("/api/lasso", json={"task": "kind", "polygon": poly, "action": "ask"})
    assert r.json()["question"]["kind"] == "custom" and r.json()["question"]["n_rows"] == inside
    assert c.post("/api/lasso", json={"task": "kind", "polygon": [[0, 0]], "action": "ask"}).status_code == 400
    page = c.get("/clusters?task=kind")
    assert page.status_code == 200 and "look inside" in page.text and "/thumb/" in page.text
    # the drill-down tree: a cluster's sub-clusters partition it, and can be opened again
    top = app.labelling.clusters()[0]
    inner = c.get(f"/clusters?task=kind&path={top['cluster']}")
    assert inner.status_code == 200 and f"Inside cluster {top['cluster']}" in inner.text
    subs = app.labelling.subclusters(top["cluster"])
    assert len(subs) >= 2 and sum(g["size"] for g in subs) == top["size"]
    assert np.array_equal(np.sort(np.concatenate([g["members"] for g in subs])), np.sort(top["members"]))
    assert all(f"Cluster {g['cluster']} " in inner.text for g in subs)
    big = max(subs, key=lambda g: g["size"])
    if big["drill"]:
        deeper = app.labelling.subclusters(big["cluster"])
        assert sum(g["size"] for g in deeper) == big["size"] and deeper[0]["cluster"].startswith(big["cluster"] + "/")
    assert c.get("/clusters?task=kind&path=999").status_code == 400
    assert c.get("/clusters?task=kind&path=..%2F1").status_code == 400
    assert c.get("/question?task=nope", follow_redirects=False).status_code == 303
    assert c.get("/api/question?task=nope").status_code == 400


def test_three_descriptor_mixture_space_is_rebuilt(small_results, monkeypatch):
    """A mixture key lists each preprocessing once (``mix:a+b+c/none+l2``): the engine rebuilds it from
    every descriptor's best space (manifest ``per_descriptor``) instead of failing every background refit."""
    from descluster.labelling.spaces import ResultsData

    data = ResultsData(small_results[0])
    data.manifest["per_descriptor"] = {"a": "a/none/kmeans", "b": "b/l2/kmeans", "c": "c/none/kmeans"}
    calls = []
    rng = np.random.default_rng(0)

    def reduced(descriptor, preprocessing):
        calls.append((descriptor, preprocessing))
        return rng.normal(size=(data.n_samples, 3)).astype(np.float32)

    monkeypatch.setattr(data, "_reduced", reduced)
    X = data._build_space("mix:a+b+c/none+l2")
    assert calls == [("a", "none"), ("b", "l2"), ("c", "none")]
    assert X.shape[0] == data.n_samples
    with pytest.raises(Exception, match="3 descriptors but 2 preprocessings"):
        data._build_space("mix:a+b+c/l2+none")  # not what per_descriptor says: still refused


def test_thumbnails_from_a_zip_never_unpacked(out, small_results, tmp_path):
    import zipfile

    from PIL import Image

    images = small_results[0].parent / "case" / "images"
    archive = tmp_path / "images.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in sorted(images.rglob("*.png")):
            zf.write(f, f.relative_to(images).as_posix())
        zf.writestr("../evil.png", b"not an image")
    before = sorted(p.name for p in tmp_path.iterdir())
    app, c = client(out, images=archive)
    r = c.get("/thumb/5")
    assert r.status_code == 200
    from io import BytesIO

    im = Image.open(BytesIO(r.content))
    assert im.format == "JPEG" and max(im.size) <= 128
    assert c.get("/thumb/5").content == r.content  # cached copy, same bytes
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing unpacked beside the zip


def test_failed_background_refit_is_shown(out, monkeypatch):
    from descluster.errors import LabellingError

    app = create_app(out, token=TOKEN, hosts=["testserver"], refit="background")
    c = TestClient(app)
    c.cookies.set(TOKEN_COOKIE, TOKEN)
    S = app.labelling.session
    c.post("/api/tasks", json={"name": "kind", "classes": ["k0", "k1"]})

    def broken(task):
        raise LabellingError("space 'mix:a+b/none' cannot be rebuilt")

    monkeypatch.setattr(S, "_compute", broken)
    _answer(c, "kind", "k0")
    worker = S._worker
    if worker is not None:
        worker.join(timeout=30)
    p = c.get("/api/progress?task=kind").json()
    assert p["refit_error"] == "LabellingError: space 'mix:a+b/none' cannot be rebuilt"
    monkeypatch.undo()
    S.refresh("kind")  # a refit that succeeds clears it
    assert c.get("/api/progress?task=kind").json()["refit_error"] is None
    app.labelling.close()


def test_loading_state_until_the_session_is_open(out):
    """The server answers while the session opens: a self-reloading page, 503 JSON with Retry-After."""
    import threading

    from descluster.app.views import LabellingApp

    go = threading.Event()

    def slow_open():
        assert go.wait(60)
        return LabellingApp(out, refit="sync")

    app = create_app(out, token=TOKEN, hosts=["testserver"], background=True, open_app=slow_open)
    c = TestClient(app)
    assert c.get("/").status_code == 403  # the token rule holds while loading
    c.cookies.set(TOKEN_COOKIE, TOKEN)
    n = len(pd.read_csv(out / "clusters.csv"))
    for path in ("/", "/question?task=kind"):
        r = c.get(path)
        assert r.status_code == 503 and r.headers["retry-after"] == "1", path
        assert f"Loading {n:,} images" in r.text and '<meta http-equiv="refresh" content="1">' in r.text
        assert "script-src 'self'" in r.headers["content-security-policy"]
    api = c.get("/api/tasks")
    assert api.status_code == 503 and api.headers["retry-after"] == "1"
    assert api.json() == {"error": f"the labelling session is still loading {n:,} images; retry in 1 s",
                          "loading": True, "n_images": n}
    assert c.post("/api/tasks", json={"name": "a", "classes": ["x"]}).status_code == 503
    assert c.get("/static/app.css").status_code == 200
    assert app.labelling is None and app.loader.state == "loading"
    go.set()
    assert app.loader.wait(60) and app.loader.state == "ready"
    page = c.get("/")
    assert page.status_code == 200 and "New task" in page.text and "Loading" not in page.text
    assert c.get("/api/tasks").json() == {"tasks": []}
    app.loader.thread.join(60)  # the warm-up after opening
    app.loader.close()


def test_failed_open_is_shown_and_reported(out):
    from descluster.errors import CaseError

    def broken():
        raise CaseError(f"{out / 'clusters.csv'}: no column 'path'")

    said = []
    app = create_app(out, token=TOKEN, hosts=["testserver"], background=True, open_app=broken, report=said.append)
    assert app.loader.wait(60) and app.loader.state == "failed"
    assert said == [f"{out / 'clusters.csv'}: no column 'path'"]
    c = TestClient(app)
    c.cookies.set(TOKEN_COOKIE, TOKEN)
    r = c.get("/")
    assert r.status_code == 500 and "could not be opened" in r.text and "no column &#39;path&#39;" in r.text
    assert "refresh" not in r.text and "retry-after" not in r.headers
    api = c.get("/api/question?task=x")
    assert api.status_code == 500 and api.json()["loading"] is False and "no column 'path'" in api.json()["error"]
    with pytest.raises(CaseError):  # opened at once (the default), the error is raised
        create_app(out, token=TOKEN, hosts=["testserver"], open_app=broken)


def test_drill_down_of_a_large_cluster_on_a_sample_partitions_it(out, monkeypatch):
    """Above DRILL_SAMPLE rows the sub-clusters come from a sample; every member still lands in one."""
    import descluster.app.views as views

    monkeypatch.setattr(views, "DRILL_SAMPLE", 40)
    app, c = client(out)
    top = app.labelling.clusters()[0]
    assert top["size"] > 40
    subs = app.labelling.subclusters(top["cluster"])
    assert len(subs) >= 2 and all(g["size"] > 0 for g in subs)
    assert np.array_equal(np.sort(np.concatenate([g["members"] for g in subs])), np.sort(top["members"]))


def _designed_descriptors(n_per_kind: int = 100) -> np.ndarray:
    """2-D descriptors of three far-apart kinds (centres 1,000 apart) whose rows' distances to their kind's
    mean are known: in each kind (local rows j), rows 0-7 lie within 0.04 of the mean (pairs 2m, 2m+1 at
    0.01 (m + 1)), rows 8-15 farthest (pairs 8 + 2m, 9 + 2m at 20 + m), every other row at 5; each pair is
    symmetric about the centre, so the mean is the centre."""
    off = np.zeros((n_per_kind, 2))
    for m in range(4):
        off[2 * m], off[2 * m + 1] = [(m + 1) * 0.01, 0], [-(m + 1) * 0.01, 0]
        off[8 + 2 * m], off[9 + 2 * m] = [0, 20 + m], [0, -(20 + m)]
    rest = (n_per_kind - 16) // 2
    for p in range(rest):
        t = np.pi * p / rest
        off[16 + 2 * p], off[17 + 2 * p] = [5 * np.cos(t), 5 * np.sin(t)], [-5 * np.cos(t), -5 * np.sin(t)]
    return np.concatenate([c + off for c in ([0.0, 0.0], [1000.0, 0.0], [500.0, 866.0])])


@pytest.fixture(scope="module")
def known_results(tmp_path_factory):
    """A results folder on :func:`_designed_descriptors` (the study finds the three kinds as its clusters)."""
    from conftest import make_small_results

    return make_small_results(tmp_path_factory.mktemp("known_results"), descriptors=_designed_descriptors())[0]


@pytest.fixture
def known_out(known_results, tmp_path):
    dest = tmp_path / "out"
    shutil.copytree(known_results, dest, symlinks=True)
    return dest


def _pairs(rows) -> list[set]:
    return [set(rows[i:i + 2]) for i in range(0, len(rows), 2)]


def _strip_rows(section: str, title: str) -> list[int]:
    import re

    strip = re.search(rf'<span class="strip-title">{title}</span>(.*?)</div>', section, re.S).group(1)
    return [int(r) for r in re.findall(r'src="/thumb/(\d+)"', strip)]


def test_cluster_view_known_answer(known_out):
    """Sizes, the rows nearest the centre and at the edge, and purity after labels, on clusters built to be known."""
    import re

    app, c = client(known_out)
    S = app.labelling.session
    S.add_task("kind", ["x", "y"])
    clusters = app.labelling.clusters()
    assert [g["size"] for g in clusters] == [100, 100, 100]
    assert [g["cluster"] for g in clusters] == ["0", "1", "2"]  # equal sizes: by cluster id
    kind_of = {}  # cluster id -> kind (rows 100 k .. 100 k + 99)
    for g in clusters:
        k = int(g["members"][0]) // 100
        assert sorted(g["members"].tolist()) == list(range(100 * k, 100 * k + 100))
        kind_of[g["cluster"]] = k
        base = 100 * k
        assert _pairs(g["centre"]) == [{base + 2 * m, base + 2 * m + 1} for m in range(4)]
        assert _pairs(g["edge"]) == [{base + 15 - 2 * m, base + 14 - 2 * m} for m in range(4)]
    assert sorted(kind_of.values()) == [0, 1, 2]

    def sections():
        page = c.get("/clusters?task=kind")
        assert page.status_code == 200
        return {m.group(1): m.group(0) for m in re.finditer(r'<section class="cluster card">\s*<h2>Cluster (\d+) .*?</section>',
                                                            page.text, re.S)}

    before = sections()
    assert sorted(before) == ["0", "1", "2"]
    for cid, html in before.items():
        g = next(g for g in clusters if g["cluster"] == cid)
        assert '<span class="muted">100 images</span>' in html and "look inside" in html
        assert _strip_rows(html, "nearest the centre") == g["centre"] and _strip_rows(html, "at the edge") == g["edge"]
        assert "no label reached it yet" in html
    # kind 0: rows 0-9 shown (0 and 1 marked y), 10-89 named x with them; rows 90-99 named y -> 88 x, 12 y
    q = S.ask_group("kind", range(0, 90), shown=range(10))
    S.answer(q.id, label="x", marks={0: "y", 1: "y"})
    q = S.ask_group("kind", range(90, 100), shown=range(90, 100))
    S.answer(q.id, label="y")
    # kind 1: every row named y
    q = S.ask_group("kind", range(100, 200), shown=range(100, 164))
    S.answer(q.id, label="y")
    after = sections()
    cid0 = next(cid for cid, k in kind_of.items() if k == 0)
    cid1 = next(cid for cid, k in kind_of.items() if k == 1)
    assert "Purity 88 % <b>x</b> <span class=\"muted\">(of 100 with a label)</span>" in after[cid0]
    assert "Purity 100 % <b>y</b> <span class=\"muted\">(of 100 with a label)</span>" in after[cid1]
    # kind 2 got no answer: its figure is the share of its propagated labels, as the engine's labels say
    cid2 = next(cid for cid, k in kind_of.items() if k == 2)
    final = S.labels("kind")["label"].to_numpy()[200:300]
    final = final[final != ""]
    if final.size:
        values, counts = np.unique(final, return_counts=True)
        share = f"Purity {100 * counts.max() / final.size:.0f} % <b>{values[counts.argmax()]}</b>"
        assert share in after[cid2] and f"(of {final.size} with a label)" in after[cid2]
    else:
        assert "no label reached it yet" in after[cid2]


def test_map_label_bytes_decode_to_the_engine_labels(known_out):
    """``/api/map/labels``: n label codes (class index + 1, 0 = none) then n confidence bytes (round(255 c))."""
    import json

    app, c = client(known_out)
    S = app.labelling.session
    S.add_task("kind", ["x", "y"])
    n = app.labelling.data.n_samples
    r = c.get("/api/map/labels?task=kind")
    assert json.loads(r.headers["x-classes"]) == ["x", "y"] and r.content == bytes(2 * n)  # nothing yet
    q = S.ask_group("kind", range(0, 90), shown=range(10))
    S.answer(q.id, label="x", marks={0: "y", 1: "y"})
    q = S.ask_group("kind", range(90, 100), shown=range(90, 100))
    S.answer(q.id, label="y")
    r = c.get("/api/map/labels?task=kind")
    assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"
    raw = np.frombuffer(r.content, np.uint8)
    assert raw.size == 2 * n
    codes, conf = raw[:n], raw[n:]
    engine = S.labels("kind")
    names = {"": 0, "x": 1, "y": 2}
    assert codes.tolist() == [names[v] for v in engine["label"]]
    assert conf.tolist() == np.round(engine["confidence"].to_numpy() * 255).astype(int).tolist()
    # known answers: shown and answered rows 255; the group's unshown rows its shown share 8/10 -> 204
    assert codes[:2].tolist() == [2, 2] and (codes[2:90] == 1).all() and (codes[90:100] == 2).all()
    assert (conf[:10] == 255).all() and (conf[10:90] == 204).all() and (conf[90:100] == 255).all()
