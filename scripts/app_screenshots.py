"""Screenshots of ``descluster serve`` for the README: task list, a question, the map, the clusters.

Copies a finished demo run (never writes into it), starts the real server, answers a few questions
from the demo's truth labels over HTTP, then photographs the pages in headless Chromium.

Usage::

    python scripts/app_screenshots.py [ANSWERS]      # needs /work/demo-out and /usr/bin/chromium; PNGs in docs/
"""
import json, os, re, shutil, socket, subprocess, sys, tempfile, time, urllib.error, urllib.request
from pathlib import Path
import numpy as np, pandas as pd
from playwright.sync_api import sync_playwright

RESULTS = Path(os.environ.get("DEMO_OUT", "/work/demo-out"))
DOCS = Path(__file__).resolve().parents[1] / "docs"
out = Path(tempfile.mkdtemp(prefix="app-shots-")) / "out"
shutil.rmtree(out, ignore_errors=True)
shutil.copytree(RESULTS, out, ignore=shutil.ignore_patterns("labels.sqlite*", "exports"))
truth = pd.read_csv(Path(__file__).resolve().parents[1] / "data" / "tiny-vehicles" / "labels.csv").set_index("path")["vehicle_type"]
paths = pd.read_csv(out / "clusters.csv")["path"].tolist()
t = truth.reindex(paths).to_numpy()
with socket.socket() as s:
    s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
proc = subprocess.Popen([sys.executable, "-m", "descluster", "serve", str(out), "--port", str(port)],
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
for line in proc.stdout:
    print(line, end="")
    m = re.search(r"open: (http://\S+)", line)
    if m:
        url = m.group(1); break
base, token = url.split("/?token=")
def call(path, body=None):
    req = urllib.request.Request(base + path, data=None if body is None else json.dumps(body).encode(),
                                 method="GET" if body is None else "POST",
                                 headers={"x-descluster-token": token, "content-type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read())
for _ in range(600):  # the session opens in the background: 503 until it is ready
    try:
        call("/api/tasks")
        break
    except urllib.error.HTTPError as exc:
        if exc.code != 503:
            raise
        time.sleep(0.5)
classes = ["bike", "car", "juggernaut", "minibus", "pickup", "truck"]
call("/api/tasks", {"name": "vehicle_type", "classes": classes})
call("/api/tasks", {"name": "colour", "classes": ["white", "black", "silver", "red", "blue"]})
p = call("/api/question?task=vehicle_type")
for i in range(int(sys.argv[1]) if len(sys.argv) > 1 else 9):
    q = p["question"]
    rows = [s["row"] for s in q["shown"]]
    v, c = np.unique(t[rows], return_counts=True)
    major = str(v[c.argmax()])
    time.sleep(1.5)
    p = call("/api/answer", {"task": "vehicle_type", "question": q["id"], "action": "name", "label": major,
                              "marks": [[r, str(x)] for r, x in zip(rows, t[rows]) if x != major]})
time.sleep(4)
with sync_playwright() as pw:
    b = pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--headless", "--no-sandbox", "--disable-gpu"])
    page = b.new_page(viewport={"width": 1380, "height": 900})
    page.goto(url)
    page.wait_for_timeout(500)
    page.screenshot(path=str(DOCS / "app-tasks.png"))
    page.goto(base + "/question?task=vehicle_type")
    page.wait_for_function("() => window.__desc && window.__desc.q")
    page.wait_for_function("() => [...document.querySelectorAll('.tile img')].every(i => i.complete)")
    # show a marked image: move to the 4th image, mark it, give it a class
    for _ in range(7):
        page.keyboard.press("ArrowDown")
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    page.keyboard.press("x")
    page.keyboard.press("5")
    page.keyboard.press("ArrowRight")
    page.wait_for_timeout(300)
    page.screenshot(path=str(DOCS / "app-question.png"))
    page.goto(base + "/map?task=vehicle_type")
    page.wait_for_function("() => window.__map && window.__map.ready")
    box = page.locator("#map").bounding_box()
    pts = [(0.55, 0.1), (0.85, 0.12), (0.9, 0.45), (0.6, 0.5), (0.5, 0.3)]
    page.mouse.move(box["x"] + pts[0][0] * box["width"], box["y"] + pts[0][1] * box["height"])
    page.mouse.down()
    for fx, fy in pts[1:] + pts[:1]:
        page.mouse.move(box["x"] + fx * box["width"], box["y"] + fy * box["height"], steps=6)
    page.mouse.up()
    # then point at a dot left of the lasso: its thumbnail shows beside the cursor
    i = page.evaluate("() => { const m = window.__map; let best = 0, bd = 1e9; for (let i = 0; i < m.meta.n; i++) {"
                      " const [x, y] = m.toPx(m.pts[2 * i], m.pts[2 * i + 1]); const d = (x - 0.2 * m.W) ** 2 + (y - 0.4 * m.H) ** 2;"
                      " if (d < bd) { bd = d; best = i; } } return best; }")
    cx, cy = page.evaluate(f"() => {{ const m = window.__map; const [x, y] = m.toPx(m.pts[{2 * i}], m.pts[{2 * i + 1}]); return [x / m.W, y / m.H]; }}")
    page.mouse.move(box["x"] + cx * box["width"], box["y"] + cy * box["height"], steps=4)
    page.wait_for_function("() => { const i = document.querySelector('#map-tip img'); return !document.getElementById('map-tip').hidden && i.complete && i.naturalWidth > 0; }")
    page.wait_for_timeout(300)
    page.screenshot(path=str(DOCS / "app-map.png"))
    page.goto(base + "/clusters?task=vehicle_type")
    page.wait_for_timeout(2500)
    page.screenshot(path=str(DOCS / "app-clusters.png"))
    b.close()
proc.kill()
from PIL import Image  # noqa: E402  the two photo-heavy pages as 256-colour PNGs (a third of the size)

for name in ("question", "clusters"):
    im = Image.open(DOCS / f"app-{name}.png").convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    im.save(DOCS / f"app-{name}.png", optimize=True)
