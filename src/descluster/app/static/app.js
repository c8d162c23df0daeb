/* descluster labelling app: every page's behaviour. No network but this server; text goes in with
   textContent only (never innerHTML), so no string from the data can become markup. */
"use strict";
const DATA = JSON.parse(document.getElementById("page-data").textContent);
const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
  "#bcbd22", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d"];

function setStatus(msg, bad) {
  const s = document.getElementById("status");
  s.textContent = msg || "";
  s.className = bad ? "bad" : "";
}

function el(tag, props, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k === "style") Object.assign(e.style, v);
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) e.append(c);
  return e;
}

async function api(path, body) {
  const opts = {credentials: "same-origin", headers: {}};
  if (body !== undefined) {
    opts.method = "POST";
    opts.headers["content-type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const r = await fetch(path, opts);
  if (!r.ok) {
    let msg = r.statusText;
    try { msg = (await r.json()).error || msg; } catch (e) { /* not JSON */ }
    const err = new Error(msg);
    err.status = r.status;
    throw err;
  }
  return r.json();
}

function pct(x, digits) { return x === null || x === undefined ? "–" : (100 * x).toFixed(digits ?? 1) + " %"; }
function q(s) { return encodeURIComponent(s); }

/* ------------------------------------------------------------------ tasks */
function tasksView() {
  const form = document.getElementById("new-task");
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const name = document.getElementById("task-name").value.trim();
    const classes = document.getElementById("task-classes").value.split(",").map((c) => c.trim()).filter(Boolean);
    try {
      await api("/api/tasks", {name, classes});
      location.href = "/question?task=" + q(name);
    } catch (e) { setStatus(e.message, true); }
  });
}

/* ------------------------------------------------------------------ question */
function progressBlock(p) {
  const box = document.getElementById("progress");
  if (!box || !p) return;
  box.replaceChildren(
    el("div", {text: `Labelled: ${pct(p.labelled_share)} (${p.labelled.toLocaleString()} of ${p.n_samples.toLocaleString()} answered)`}),
    el("div", {text: p.estimated_accuracy === null ? `Estimated accuracy: not yet (${p.estimate_method})` :
      `Estimated accuracy: ${pct(p.estimated_accuracy)}` +
      (p.interval && p.interval[0] !== null ? ` [${pct(p.interval[0])}, ${pct(p.interval[1])}] (95 %)` : "") +
      (p.n_checked ? ` from ${p.n_checked} checked` : "")}),
    el("div", {text: `Decisions: ${p.decisions}` + (p.pending ? ` · ${p.pending} split parts waiting` : "")}),
    el("div", {class: "muted", text: p.space_reason || ""}));
  if (p.refit_error) box.append(el("div", {class: "bad-line", text: "Propagation refit failed (figures from an older fit): " + p.refit_error}));
}

function questionView() {
  const task = DATA.task;
  const st = {q: null, cursor: 0, cls: null, marks: new Map(), pending: null, busy: false, cols: 8};
  window.__desc = st;
  const grid = document.getElementById("grid");

  function classes() { return st.q ? st.q.classes : []; }

  function render() {
    const qq = st.q;
    grid.replaceChildren();
    if (!qq) {
      document.getElementById("proposal").textContent = "Every image has an answer. Nothing more to ask.";
      document.getElementById("q-description").textContent = "";
      document.getElementById("q-cluster").textContent = "";
      document.getElementById("q-reason").textContent = "";
      document.getElementById("classes").replaceChildren();
      return;
    }
    qq.shown.forEach((s, i) => {
      const mark = st.marks.has(s.row);
      const badge = mark ? (st.marks.get(s.row) === null ? "? not this" : "→ " + st.marks.get(s.row)) : "";
      const tile = el("figure", {class: "tile" + (i === st.cursor ? " cursor" : "") + (mark ? " marked" : ""),
                                 "data-row": String(s.row), "data-index": String(i), title: s.path},
        el("img", {src: "/thumb/" + s.row, alt: s.path, width: 96, height: 96, draggable: false}),
        el("figcaption", {text: badge}));
      tile.addEventListener("mouseenter", () => { st.cursor = i; paintCursor(); });
      tile.addEventListener("click", () => { st.cursor = i; toggleMark(); });
      grid.append(tile);
    });
    const label = currentLabel();
    const prop = document.getElementById("proposal");
    prop.replaceChildren(
      el("div", {class: "kind", text: `${qq.kind} question · ${qq.n_rows.toLocaleString()} images` +
        (qq.n_rows > qq.shown.length ? ` (${qq.shown.length} shown)` : "")}),
      el("div", {class: "label", text: label ? label : "pick a class (1–9)"}),
      el("div", {class: "muted", text: qq.proposed ? `proposed: ${qq.proposed}` +
        (qq.confidence !== null ? ` (${pct(qq.confidence, 0)} confidence)` : "") : "no proposal yet"}));
    const list = document.getElementById("classes");
    list.replaceChildren(...classes().map((c, i) => el("li", {class: c === label ? "on" : ""},
      el("kbd", {text: i < 9 ? String(i + 1) : " "}), el("span", {text: " " + c}))));
    document.getElementById("q-description").textContent = qq.description;
    document.getElementById("q-cluster").textContent = qq.cluster_description || "";
    document.getElementById("q-reason").textContent = "Why now: " + qq.reason;
    const n = st.marks.size;
    document.getElementById("marks-line").textContent = n ? `${n} image(s) marked as not belonging` +
      (st.pending !== null ? " — press a digit for the marked image's class (0 = junk)" : "") : "";
  }

  function paintCursor() {
    grid.querySelectorAll(".tile").forEach((t, i) => t.classList.toggle("cursor", i === st.cursor));
  }

  function currentLabel() {
    if (st.cls !== null) return st.cls;
    return st.q ? st.q.proposed : null;
  }

  function show(payload) {
    st.q = payload.question; st.cursor = 0; st.cls = null; st.marks = new Map(); st.pending = null;
    render(); progressBlock(payload.progress);
  }

  async function load() {
    try { show(await api("/api/question?task=" + q(task))); } catch (e) { setStatus(e.message, true); }
  }

  function toggleMark() {
    if (!st.q) return;
    const row = st.q.shown[st.cursor].row;
    if (st.marks.has(row)) { st.marks.delete(row); if (st.pending === row) st.pending = null; }
    else { st.marks.set(row, null); st.pending = row; }
    render();
  }

  function pick(i) {
    const cs = classes();
    if (st.pending !== null) {
      const c = i === -1 ? "junk" : cs[i];
      if (c === undefined) return setStatus(`no class ${i + 1}`, true);
      st.marks.set(st.pending, c); st.pending = null; render(); return;
    }
    if (i === -1 || cs[i] === undefined) return setStatus(`no class ${i + 1}; add classes on the right`, true);
    st.cls = cs[i]; render();
  }

  async function send(action) {
    if (!st.q || st.busy) return;
    const body = {task, question: st.q.id, action};
    if (action === "name") {
      const label = currentLabel();
      if (!label) return setStatus("pick the group's class first (1–9)", true);
      const open = [...st.marks.entries()].filter(([, c]) => c === null);
      if (open.length) return setStatus("give each marked image its class (a digit) first", true);
      body.label = label;
      body.marks = [...st.marks.entries()].filter(([, c]) => c !== label);
    }
    st.busy = true;
    const t0 = performance.now();
    try {
      const r = await api("/api/answer", body);
      show(r);
      window.__lastLatency = performance.now() - t0;
      setStatus(`${action === "name" ? "named " + body.label : action}: saved (${Math.round(window.__lastLatency)} ms)`);
    } catch (e) {
      setStatus(e.message, true);
      if (e.status === 409) await load();
    } finally { st.busy = false; }
  }

  async function undo() {
    if (st.busy) return;
    st.busy = true;
    try {
      const r = await api("/api/undo", {task, question: st.q ? st.q.id : null});
      show(r);
      setStatus(r.undone ? `undone: ${r.undone.action || r.undone.kind}` : "nothing to undo");
    } catch (e) {
      setStatus(e.message, true);
      if (e.status === 409) await load();
    } finally { st.busy = false; }
  }

  document.getElementById("btn-confirm").onclick = () => send("name");
  document.getElementById("btn-split").onclick = () => send("split");
  document.getElementById("btn-junk").onclick = () => send("junk");
  document.getElementById("btn-skip").onclick = () => send("skip");
  document.getElementById("btn-undo").onclick = undo;
  document.getElementById("add-class").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const inp = document.getElementById("new-class");
    try {
      const r = await api("/api/classes", {task, class: inp.value.trim()});
      if (st.q) st.q.classes = r.classes;
      inp.value = ""; inp.blur(); render();
    } catch (e) { setStatus(e.message, true); }
  });
  document.addEventListener("keydown", (ev) => {
    if (ev.target.closest && ev.target.closest("input, select, textarea")) return;
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const k = ev.key;
    const n = st.q ? st.q.shown.length : 0;
    let handled = true;
    if (/^[1-9]$/.test(k)) pick(Number(k) - 1);
    else if (k === "0") pick(-1);
    else if (k === "ArrowRight" || k === "l") st.cursor = Math.min(n - 1, st.cursor + 1), paintCursor();
    else if (k === "ArrowLeft" || k === "h") st.cursor = Math.max(0, st.cursor - 1), paintCursor();
    else if (k === "ArrowDown") st.cursor = Math.min(n - 1, st.cursor + st.cols), paintCursor();
    else if (k === "ArrowUp") st.cursor = Math.max(0, st.cursor - st.cols), paintCursor();
    else if (k === "x") toggleMark();
    else if (k === "Enter") send("name");
    else if (k === "s") send("split");
    else if (k === "j") send("junk");
    else if (k === "n") send("skip");
    else if (k === "u") undo();
    else if (k === "Escape") { st.marks = new Map(); st.pending = null; st.cls = null; render(); }
    else handled = false;
    if (handled) ev.preventDefault();
  });
  load();
}

/* ------------------------------------------------------------------ map */
function hexRgb(h) { return [parseInt(h.slice(1, 3), 16), parseInt(h.slice(3, 5), 16), parseInt(h.slice(5, 7), 16)]; }
const RAMP = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];  // viridis stops
function ramp(t) {
  const x = Math.min(0.9999, Math.max(0, t)) * (RAMP.length - 1), i = Math.floor(x), f = x - i;
  return RAMP[i].map((v, j) => Math.round(v + f * (RAMP[i + 1][j] - v)));
}

/* The map's points through WebGL: one gl.POINTS draw call in row order (a later row on top of an
   earlier one). The vertex shader maps data coordinates to canvas pixels as toPx does (bounds, padding,
   y flipped), takes the pixel's floor and puts the point's centre dot / 2 past it, so that a point covers
   the same dot x dot pixels as in the pixel buffer. Positions are uploaded once; colours (RGB bytes,
   normalized) on each draw. Returns the draw function, or null where the browser gives no WebGL context. */
const POINT_VS = `
attribute vec2 a_xy;
attribute vec3 a_rgb;
uniform vec2 u_lo, u_scale, u_size;
uniform float u_pad, u_dot;
varying vec3 v_rgb;
void main() {
  vec2 px = vec2(u_pad + (a_xy.x - u_lo.x) * u_scale.x, u_size.y - u_pad - (a_xy.y - u_lo.y) * u_scale.y);
  vec2 c = floor(px) + 0.5 * u_dot;
  gl_Position = vec4(2.0 * c.x / u_size.x - 1.0, 1.0 - 2.0 * c.y / u_size.y, 0.0, 1.0);
  gl_PointSize = u_dot;
  v_rgb = a_rgb;
}`;
const POINT_FS = `
#ifdef GL_FRAGMENT_PRECISION_HIGH
precision highp float;
#else
precision mediump float;
#endif
varying vec3 v_rgb;
void main() { gl_FragColor = vec4(v_rgb, 1.0); }`;

function glPoints(canvas, pts, n, lo, scale, pad, dot) {
  const opts = {preserveDrawingBuffer: true, antialias: false, alpha: false, depth: false, stencil: false};
  const gl = canvas.getContext("webgl2", opts) || canvas.getContext("webgl", opts);
  if (!gl) return null;
  function shader(type, src) {
    const sh = gl.createShader(type);
    gl.shaderSource(sh, src);
    gl.compileShader(sh);
    if (!gl.getShaderParameter(sh, gl.COMPILE_STATUS)) throw new Error("map shader: " + gl.getShaderInfoLog(sh));
    return sh;
  }
  const prog = gl.createProgram();
  gl.attachShader(prog, shader(gl.VERTEX_SHADER, POINT_VS));
  gl.attachShader(prog, shader(gl.FRAGMENT_SHADER, POINT_FS));
  gl.linkProgram(prog);
  if (!gl.getProgramParameter(prog, gl.LINK_STATUS)) throw new Error("map shader: " + gl.getProgramInfoLog(prog));
  gl.useProgram(prog);
  const aXy = gl.getAttribLocation(prog, "a_xy"), aRgb = gl.getAttribLocation(prog, "a_rgb");
  gl.bindBuffer(gl.ARRAY_BUFFER, gl.createBuffer());
  gl.bufferData(gl.ARRAY_BUFFER, pts.subarray(0, 2 * n), gl.STATIC_DRAW);
  gl.enableVertexAttribArray(aXy);
  gl.vertexAttribPointer(aXy, 2, gl.FLOAT, false, 0, 0);
  const rgbBuf = gl.createBuffer();
  gl.bindBuffer(gl.ARRAY_BUFFER, rgbBuf);
  gl.enableVertexAttribArray(aRgb);
  gl.vertexAttribPointer(aRgb, 3, gl.UNSIGNED_BYTE, true, 0, 0);
  gl.uniform2f(gl.getUniformLocation(prog, "u_lo"), lo[0], lo[1]);
  gl.uniform2f(gl.getUniformLocation(prog, "u_scale"), scale[0], scale[1]);
  gl.uniform2f(gl.getUniformLocation(prog, "u_size"), canvas.width, canvas.height);
  gl.uniform1f(gl.getUniformLocation(prog, "u_pad"), pad);
  gl.uniform1f(gl.getUniformLocation(prog, "u_dot"), dot);
  gl.viewport(0, 0, canvas.width, canvas.height);
  gl.disable(gl.DEPTH_TEST);
  gl.disable(gl.BLEND);
  return function draw(rgb) {  // rgb: Uint8Array of 3 n bytes, row order
    gl.bindBuffer(gl.ARRAY_BUFFER, rgbBuf);
    gl.bufferData(gl.ARRAY_BUFFER, rgb, gl.DYNAMIC_DRAW);
    gl.clearColor(1, 1, 1, 1);
    gl.clear(gl.COLOR_BUFFER_BIT);
    gl.drawArrays(gl.POINTS, 0, n);
  };
}

async function mapView() {
  const task = DATA.task;
  const canvas = document.getElementById("map");  // the points: WebGL, or a 2-D canvas's pixel buffer
  const overlay = document.getElementById("map-lasso");  // stacked over it: the lasso; takes the mouse events
  const lctx = overlay.getContext("2d");
  const W = canvas.width, H = canvas.height, PAD = 12;
  const meta = await api("/api/map/meta");
  const pts = new Float32Array(await (await fetch("/api/map/points", {credentials: "same-origin"})).arrayBuffer());
  const [x0, y0, x1, y1] = meta.bounds;
  const sx = (W - 2 * PAD) / Math.max(1e-9, x1 - x0), sy = (H - 2 * PAD) / Math.max(1e-9, y1 - y0);
  const toPx = (x, y) => [PAD + (x - x0) * sx, H - PAD - (y - y0) * sy];
  const toData = (px, py) => [x0 + (px - PAD) / sx, y0 + (H - PAD - py) / sy];
  const dot = meta.n < 20000 ? 3 : 2;
  const glDraw = glPoints(canvas, pts, meta.n, [x0, y0], [sx, sy], PAD, dot);
  const ctx = glDraw ? null : canvas.getContext("2d");
  document.getElementById("map-how").textContent = "Map: " + meta.how +
    (glDraw ? " · drawn with WebGL" : " · drawn in a 2-D canvas (WebGL unavailable)");
  let codes = null, conf = null, classes = [], lasso = [], inside = null;
  const st = {meta, pts, toPx, W, H, dot, renderer: glDraw ? "webgl" : "2d"};
  window.__map = st;

  async function loadLabels() {
    const r = await fetch("/api/map/labels?task=" + q(task), {credentials: "same-origin"});
    classes = JSON.parse(r.headers.get("x-classes") || "[]");
    const buf = new Uint8Array(await r.arrayBuffer());
    codes = buf.subarray(0, meta.n); conf = buf.subarray(meta.n);
    const sel = document.getElementById("lasso-label");
    sel.replaceChildren(...classes.map((c) => el("option", {value: c, text: c})));
    draw();
  }

  function rowColour(i, byConf, cols) {
    const c = codes[i];
    return byConf ? ramp(conf[i] / 255) : (c === 0 ? [190, 190, 190] : cols[(c - 1) % cols.length]);
  }

  function drawPixels(byConf, cols) {  // without WebGL: each dot written into the canvas's pixel buffer
    const img = ctx.createImageData(W, H);
    const d = img.data;
    for (let i = 0; i < d.length; i += 4) { d[i] = d[i + 1] = d[i + 2] = 255; d[i + 3] = 255; }
    for (let i = 0; i < meta.n; i++) {
      const [px, py] = toPx(pts[2 * i], pts[2 * i + 1]);
      const rgb = rowColour(i, byConf, cols);
      for (let dx = 0; dx < dot; dx++) for (let dy = 0; dy < dot; dy++) {
        const x = Math.floor(px) + dx, y = Math.floor(py) + dy;
        if (x < 0 || y < 0 || x >= W || y >= H) continue;
        const o = 4 * (y * W + x);
        d[o] = rgb[0]; d[o + 1] = rgb[1]; d[o + 2] = rgb[2];
      }
    }
    ctx.putImageData(img, 0, 0);
  }

  function draw() {
    const byConf = document.getElementById("colour-by").value === "confidence";
    const cols = PALETTE.map(hexRgb);
    if (glDraw) {  // the same colours as RGB bytes, one draw call
      const rgb = new Uint8Array(3 * meta.n);
      for (let i = 0; i < meta.n; i++) rgb.set(rowColour(i, byConf, cols), 3 * i);
      glDraw(rgb);
    } else drawPixels(byConf, cols);
    drawLasso();
    const legend = document.getElementById("legend");
    if (byConf) legend.replaceChildren(el("span", {text: "low confidence "}), el("span", {class: "ramp"}), el("span", {text: " high"}));
    else {
      const counts = new Array(classes.length + 1).fill(0);
      for (let i = 0; i < meta.n; i++) counts[codes[i]]++;
      legend.replaceChildren(...classes.map((c, i) => el("div", {},
        el("span", {class: "swatch", style: {background: PALETTE[i % PALETTE.length]}}),
        el("span", {text: ` ${c} (${counts[i + 1].toLocaleString()})`}))),
        el("div", {}, el("span", {class: "swatch none"}), el("span", {text: ` no label yet (${counts[0].toLocaleString()})`})));
    }
  }

  function drawLasso() {  // on the transparent top canvas only: the points are not drawn again
    lctx.clearRect(0, 0, W, H);
    if (lasso.length < 2) return;
    lctx.beginPath();
    lctx.moveTo(lasso[0][0], lasso[0][1]);
    for (const [x, y] of lasso.slice(1)) lctx.lineTo(x, y);
    lctx.closePath();
    lctx.fillStyle = "rgba(0,0,0,0.08)"; lctx.fill();
    lctx.strokeStyle = "#111"; lctx.lineWidth = 1.5; lctx.stroke();
  }

  function pointIn(poly, x, y) {
    let c = false;
    for (let i = 0, j = poly.length - 1; i < poly.length; j = i++) {
      const [xi, yi] = poly[i], [xj, yj] = poly[j];
      if ((yi > y) !== (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi) c = !c;
    }
    return c;
  }

  function pos(ev) { const b = overlay.getBoundingClientRect(); return [(ev.clientX - b.left) * W / b.width, (ev.clientY - b.top) * H / b.height]; }
  // hover: the image under the cursor (nearest point within HOVER_PX canvas pixels), found through a
  // grid of HOVER_PX cells built once, so a move looks at 9 cells, not every point
  const HOVER_PX = 6, GW = Math.ceil(W / HOVER_PX), cells = new Map();
  for (let i = 0; i < meta.n; i++) {
    const [px, py] = toPx(pts[2 * i], pts[2 * i + 1]);
    const key = Math.floor(py / HOVER_PX) * GW + Math.floor(px / HOVER_PX);
    const list = cells.get(key);
    if (list) list.push(i); else cells.set(key, [i]);
  }
  function nearest(px, py) {
    let best = -1, bd = HOVER_PX * HOVER_PX;
    const cx = Math.floor(px / HOVER_PX), cy = Math.floor(py / HOVER_PX);
    for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) {
      for (const i of cells.get((cy + dy) * GW + cx + dx) || []) {
        const [x, y] = toPx(pts[2 * i], pts[2 * i + 1]);
        const d = (x - px) ** 2 + (y - py) ** 2;
        if (d < bd) { bd = d; best = i; }
      }
    }
    return best;
  }
  const tip = document.getElementById("map-tip");
  function hover(ev) {
    const [px, py] = pos(ev);
    const i = nearest(px, py);
    st.hover = i;
    if (i < 0) { tip.hidden = true; return; }
    const c = codes[i], name = c === 0 ? "no label yet" : (classes[c - 1] || "?");
    const img = tip.querySelector("img");
    if (img.dataset.row !== String(i)) { img.src = "/thumb/" + i; img.dataset.row = String(i); }
    tip.querySelector(".tip-text").textContent = `image ${i.toLocaleString()} · ${name} · confidence ${Math.round(conf[i] / 2.55)} %`;
    const b = overlay.getBoundingClientRect(), wrap = overlay.parentElement.getBoundingClientRect();
    tip.style.left = Math.min(ev.clientX - wrap.left + 14, b.width - 150) + "px";
    tip.style.top = Math.min(ev.clientY - wrap.top + 14, b.height - 150) + "px";
    tip.hidden = false;
  }
  let drawing = false;
  overlay.addEventListener("mousedown", (ev) => { drawing = true; tip.hidden = true; lasso = [pos(ev)]; });
  overlay.addEventListener("mousemove", (ev) => {
    if (!drawing) { hover(ev); return; }
    lasso.push(pos(ev));
    drawLasso();
  });
  overlay.addEventListener("mouseleave", () => { tip.hidden = true; });
  window.addEventListener("mouseup", () => {
    if (!drawing) return;
    drawing = false;
    if (lasso.length < 3) { lasso = []; drawLasso(); return; }
    const poly = lasso.map(([x, y]) => toData(x, y));
    let n = 0;
    for (let i = 0; i < meta.n; i++) if (pointIn(poly, pts[2 * i], pts[2 * i + 1])) n++;
    inside = {poly, n};
    st.lasso = inside;
    document.getElementById("lasso-line").textContent = `${n.toLocaleString()} images in the lasso`;
    document.getElementById("btn-lasso-label").disabled = n === 0 || !classes.length;
    document.getElementById("btn-lasso-ask").disabled = n === 0;
  });
  document.getElementById("colour-by").addEventListener("change", draw);
  document.getElementById("btn-lasso-label").onclick = async () => {
    const label = document.getElementById("lasso-label").value;
    try {
      const r = await api("/api/lasso", {task, polygon: inside.poly, action: "label", label});
      setStatus(`${r.rows.toLocaleString()} images named ${label}`);
      lasso = []; inside = null; await loadLabels();
    } catch (e) { setStatus(e.message, true); }
  };
  document.getElementById("btn-lasso-ask").onclick = async () => {
    try {
      await api("/api/lasso", {task, polygon: inside.poly, action: "ask"});
      location.href = "/question?task=" + q(task);
    } catch (e) { setStatus(e.message, true); }
  };
  await loadLabels();
  st.ready = true;
}

if (DATA.view === "tasks") tasksView();
else if (DATA.view === "question") questionView();
else if (DATA.view === "map") mapView().catch((e) => setStatus(e.message, true));
