/* descluster report: hover thumbnails and the labelling workflow. Plain JS, no network.
 *
 * Data (script#report-data, JSON): n, paths[n], clusters[n] (int), ids (cluster ids),
 * thumbs {tile, cols, per, sheets[], shown[]}: shown[j] is the image row whose thumbnail
 * is tile j (sheet floor(j / per), position j % per, row-major with `cols` tiles a row);
 * browse {cluster id: rows with a thumbnail, nearest the centre first}, page_size: the
 * cluster pager (details.browse) draws one page of those tiles when opened.
 *
 * labels.csv rules (same as descluster.labelling.resolve): a merged cluster takes the id and
 * the name of its target (chains followed); a discarded cluster, or one merged into a
 * discarded one, keeps its id and gets the name "discard"; no name -> empty name.
 */
(function () {
  "use strict";
  var DATA = JSON.parse(document.getElementById("report-data").textContent);
  var DISCARD = "discard";
  var STORE = "descluster:" + location.pathname + ":" + DATA.n;

  // ---- hover thumbnails --------------------------------------------------------------
  var slotOf = new Map();
  DATA.thumbs.shown.forEach(function (row, j) { slotOf.set(row, j); });
  var thumbBox = document.getElementById("hover-thumb");
  var caption = document.getElementById("hover-caption");
  var SHOW = 192;

  function showImage(row) {
    var j = slotOf.get(row);
    caption.textContent = "";
    var p = document.createElement("div");
    p.className = "hover-path";
    p.textContent = DATA.paths[row];
    var c = document.createElement("div");
    c.textContent = "cluster " + DATA.clusters[row] + " · row " + row;
    caption.appendChild(p);
    caption.appendChild(c);
    if (j === undefined) { thumbBox.hidden = true; return; }
    var t = DATA.thumbs, scale = SHOW / t.tile;
    var pos = j % t.per, col = pos % t.cols, line = Math.floor(pos / t.cols);
    thumbBox.style.backgroundImage = "url('" + t.sheets[Math.floor(j / t.per)] + "')";
    thumbBox.style.backgroundSize = (t.cols * t.tile * scale) + "px auto";
    thumbBox.style.backgroundPosition = (-col * t.tile * scale) + "px " + (-line * t.tile * scale) + "px";
    thumbBox.dataset.row = String(row);
    thumbBox.hidden = false;
  }

  function attachHover(id, tries) {
    var gd = document.getElementById(id);
    if (!gd) return;
    if (typeof gd.on !== "function") {
      if (tries < 100) setTimeout(function () { attachHover(id, tries + 1); }, 100);
      return;
    }
    gd.on("plotly_hover", function (ev) {
      if (ev && ev.points && ev.points.length) showImage(Number(ev.points[0].customdata));
    });
  }
  attachHover("map2d", 0);
  var details3d = document.getElementById("map3d-details");
  if (details3d) {
    details3d.addEventListener("toggle", function () {
      var gd = document.getElementById("map3d");
      if (!details3d.open || gd.dataset.drawn) return;
      var fig = JSON.parse(document.getElementById("map3d-data").textContent);
      gd.dataset.drawn = "1";
      window.Plotly.newPlot(gd, fig.data, fig.layout, fig.config).then(function () { attachHover("map3d", 0); });
    });
  }
  window.addEventListener("load", function () {  // fit the plots to their (flex) boxes
    var gd = document.getElementById("map2d");
    if (gd && window.Plotly && gd._fullLayout) window.Plotly.Plots.resize(gd);
  });

  // ---- browsing a cluster page by page (tiles of the hover sprite sheets) --------------
  function spriteTile(row, size) {
    var j = slotOf.get(row), t = DATA.thumbs, el = document.createElement("div");
    el.className = "tile";
    el.title = DATA.paths[row] + " · row " + row;
    el.dataset.row = String(row);
    if (j === undefined) return el;
    var scale = size / t.tile, pos = j % t.per, col = pos % t.cols, line = Math.floor(pos / t.cols);
    el.style.backgroundImage = "url('" + t.sheets[Math.floor(j / t.per)] + "')";
    el.style.backgroundSize = (t.cols * t.tile * scale) + "px auto";
    el.style.backgroundPosition = (-col * t.tile * scale) + "px " + (-line * t.tile * scale) + "px";
    return el;
  }

  each("details.browse", function (box) {
    var rows = (DATA.browse || {})[box.dataset.cluster] || [], size = DATA.page_size || 60, page = 0;
    var pages = Math.max(1, Math.ceil(rows.length / size));
    var tiles = box.querySelector(".tiles"), info = box.querySelector(".page-info");
    var buttons = {first: box.querySelector(".page-first"), prev: box.querySelector(".page-prev"),
                   next: box.querySelector(".page-next"), last: box.querySelector(".page-last")};
    function draw() {
      var start = page * size, end = Math.min(rows.length, start + size), frag = document.createDocumentFragment();
      for (var i = start; i < end; i++) frag.appendChild(spriteTile(rows[i], 64));
      tiles.textContent = "";
      tiles.appendChild(frag);
      info.textContent = "page " + (page + 1) + " of " + pages + " · images " + (start + 1) + "–" + end +
        " of " + rows.length + " by distance to the centre";
      buttons.first.disabled = buttons.prev.disabled = page === 0;
      buttons.next.disabled = buttons.last.disabled = page >= pages - 1;
    }
    function go(p) { page = Math.max(0, Math.min(pages - 1, p)); draw(); }
    buttons.first.addEventListener("click", function () { go(0); });
    buttons.prev.addEventListener("click", function () { go(page - 1); });
    buttons.next.addEventListener("click", function () { go(page + 1); });
    buttons.last.addEventListener("click", function () { go(pages - 1); });
    tiles.addEventListener("click", function (ev) {
      var row = ev.target && ev.target.dataset ? ev.target.dataset.row : undefined;
      if (row !== undefined) showImage(Number(row));
    });
    box.addEventListener("toggle", function () { if (box.open && !tiles.childElementCount) draw(); });
  });

  // ---- labelling state ---------------------------------------------------------------
  var state = { names: {}, merge: {}, discard: {} };
  try { var saved = JSON.parse(localStorage.getItem(STORE) || "null"); if (saved) state = saved; } catch (e) { /* private mode */ }
  function save() { try { localStorage.setItem(STORE, JSON.stringify(state)); } catch (e) { /* ignore */ } }

  function each(sel, fn) { Array.prototype.forEach.call(document.querySelectorAll(sel), fn); }

  function refresh() {
    each("article.cluster", function (art) {
      var id = art.dataset.cluster;
      art.classList.toggle("discarded", !!state.discard[id]);
      art.classList.toggle("named", !!(state.names[id] || "").trim());
    });
    var named = Object.keys(state.names).filter(function (k) { return (state.names[k] || "").trim(); }).length;
    var merged = Object.keys(state.merge).filter(function (k) { return state.merge[k] !== ""; }).length;
    var dropped = Object.keys(state.discard).filter(function (k) { return state.discard[k]; }).length;
    document.getElementById("label-status").textContent =
      named + " named, " + merged + " merged, " + dropped + " discarded of " + DATA.ids.length + " clusters";
  }

  each("input.name", function (el) {
    var id = el.dataset.cluster;
    el.value = state.names[id] || "";
    el.addEventListener("input", function () { state.names[id] = el.value; save(); refresh(); });
  });
  each("select.merge", function (el) {
    var id = el.dataset.cluster;
    el.value = state.merge[id] || "";
    el.addEventListener("change", function () { state.merge[id] = el.value; save(); refresh(); });
  });
  each("input.discard", function (el) {
    var id = el.dataset.cluster;
    el.checked = !!state.discard[id];
    el.addEventListener("change", function () { state.discard[id] = el.checked; save(); refresh(); });
  });

  // Final (id, name) of one cluster; throws on a merge cycle.
  function resolve(c) {
    var chain = [c], cur = c, dropped = !!state.discard[c];
    while (state.merge[cur] !== undefined && state.merge[cur] !== "" && Number(state.merge[cur]) !== cur) {
      var next = Number(state.merge[cur]);
      if (chain.indexOf(next) >= 0) throw new Error("merge cycle: " + chain.concat([next]).join(" -> "));
      chain.push(next);
      cur = next;
      dropped = dropped || !!state.discard[cur];
    }
    if (dropped) return [c, DISCARD];
    return [cur, (state.names[cur] || "").trim()];
  }

  function csvField(s) {
    s = String(s);
    // formula injection (OWASP): a cell a spreadsheet would run gets a leading quote, as
    // descluster.io.tables.neutralise_cell does; descluster's readers remove it again
    if (/^[=+\-@\t\r']/.test(s)) s = "'" + s;
    return /[",\n\r]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
  }

  function download(name, text) {
    var blob = new Blob([text], { type: "text/csv;charset=utf-8" });
    var a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = name;
    document.body.appendChild(a);
    a.click();
    setTimeout(function () { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
  }

  function labelsCsv() {
    var table = {};
    DATA.ids.forEach(function (id) { table[id] = resolve(id); });
    var out = new Array(DATA.n + 1);
    out[0] = "path,cluster,name";
    for (var i = 0; i < DATA.n; i++) {
      var r = table[DATA.clusters[i]];
      out[i + 1] = csvField(DATA.paths[i]) + "," + r[0] + "," + csvField(r[1]);
    }
    return out.join("\n") + "\n";
  }

  function namesCsv() {
    var lines = ["cluster,name,merge_into,discard"];
    DATA.ids.forEach(function (id) {
      var n = (state.names[id] || "").trim(), m = state.merge[id] || "", d = state.discard[id] ? "1" : "";
      if (n || m || d) lines.push([id, csvField(n), m, d].join(","));
    });
    return lines.join("\n") + "\n";
  }

  document.getElementById("download-labels").addEventListener("click", function () {
    try { download("labels.csv", labelsCsv()); } catch (e) { alert(e.message); }
  });
  document.getElementById("download-names").addEventListener("click", function () {
    download("names.csv", namesCsv());
  });
  document.getElementById("clear-names").addEventListener("click", function () {
    if (!confirm("Clear every name, merge and discard?")) return;
    state = { names: {}, merge: {}, discard: {} };
    save();
    each("input.name", function (el) { el.value = ""; });
    each("select.merge", function (el) { el.value = ""; });
    each("input.discard", function (el) { el.checked = false; });
    refresh();
  });
  refresh();
  window.descluster = { labelsCsv: labelsCsv, namesCsv: namesCsv, resolve: resolve, showImage: showImage,
                        spriteTile: spriteTile };
})();
