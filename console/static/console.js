// OpenFnF console: draws the flow graph (laid out by dagre), shows a clicked state's details,
// checks the start form's JSON, copies JSON, and keeps a running execution's page up to date.
// Every page already shows its data without this script; this only adds to it.
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";

  function el(name, attrs, parent) {
    var node = document.createElementNS(SVG, name);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (parent) parent.appendChild(node);
    return node;
  }

  function readJson(id) {
    var node = document.getElementById(id);
    if (!node) return null;
    try { return JSON.parse(node.textContent); } catch (e) { return null; }
  }

  function nodeSize(n) {
    if (n.kind === "start" || n.kind === "end") return { width: 56, height: 28 };
    if (n.kind === "join") return { width: 14, height: 14 };
    return { width: Math.max(90, Math.min(220, 18 + 7.2 * n.label.length)), height: 36 };
  }

  function labelOf(e) {
    if (!e.label || (e.kind !== "choice" && e.kind !== "default" && e.kind !== "catch")) return "";
    return e.label.length > 28 ? e.label.slice(0, 27) + "\u2026" : e.label;
  }

  function showState(nodeId) {
    var sections = document.querySelectorAll("#states .state");
    var found = false;
    sections.forEach(function (s) {
      var match = s.getAttribute("data-node") === nodeId;
      s.hidden = !match;
      found = found || match;
    });
    if (!found) sections.forEach(function (s) { s.hidden = false; });
    document.querySelectorAll("#graph g.node").forEach(function (g) {
      g.classList.toggle("selected", g.getAttribute("data-node") === nodeId);
    });
  }

  function drawGraph() {
    var box = document.getElementById("graph");
    var data = readJson("graph-data");
    if (!box || !data || typeof dagre === "undefined") return;
    var colours = readJson("overlay-data") || {};
    var g = new dagre.graphlib.Graph({ compound: true, multigraph: true });
    g.setGraph({ rankdir: "TB", nodesep: 24, ranksep: 36, marginx: 12, marginy: 12 });
    g.setDefaultEdgeLabel(function () { return {}; });
    data.groups.forEach(function (grp) { g.setNode(grp.id, { label: grp.label, group: true, paddingTop: 24 }); });
    data.groups.forEach(function (grp) { if (grp.parent) g.setParent(grp.id, grp.parent); });
    data.nodes.forEach(function (n) {
      var size = nodeSize(n);
      g.setNode(n.id, { label: n.label, kind: n.kind, width: size.width, height: size.height });
      if (n.group) g.setParent(n.id, n.group);
    });
    data.edges.forEach(function (e, i) {
      var shown = labelOf(e);
      // a labelled edge gets room for its label in the layout (dagre places it at e.x, e.y)
      g.setEdge(e.source, e.target, shown ? { kind: e.kind, label: e.label, shown: shown, width: 6.2 * shown.length + 6, height: 14, labelpos: "c" }
        : { kind: e.kind, label: e.label }, "e" + i);
    });
    dagre.layout(g);
    var size = g.graph();
    box.textContent = "";
    var svg = el("svg", { width: Math.ceil(size.width), height: Math.ceil(size.height),
      viewBox: "0 0 " + Math.ceil(size.width) + " " + Math.ceil(size.height), "class": "flow-graph" }, box);
    var defs = el("defs", {}, svg);
    ["next", "catch"].forEach(function (kind) {
      var m = el("marker", { id: "arrow-" + kind, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" }, defs);
      el("path", { d: "M 0 0 L 10 5 L 0 10 z", "class": "arrow-" + kind }, m);
    });
    data.groups.forEach(function (grp) {
      var c = g.node(grp.id);
      if (!c || c.width === undefined) return;
      var gg = el("g", { "class": "group" }, svg);
      el("rect", { x: c.x - c.width / 2, y: c.y - c.height / 2, width: c.width, height: c.height, rx: 6 }, gg);
      var t = el("text", { x: c.x - c.width / 2 + 6, y: c.y - c.height / 2 + 14 }, gg);
      t.textContent = grp.label;
    });
    g.edges().forEach(function (ref) {
      var e = g.edge(ref);
      var pts = e.points.map(function (p) { return p.x.toFixed(1) + "," + p.y.toFixed(1); }).join(" ");
      var kind = e.kind === "catch" ? "catch" : "next";
      var line = el("polyline", { points: pts, "class": "edge edge-" + e.kind, "marker-end": "url(#arrow-" + kind + ")" }, svg);
      var title = el("title", {}, line);
      title.textContent = e.kind + (e.label ? ": " + e.label : "");
      if (e.shown && e.x !== undefined) {
        var lt = el("text", { x: e.x, y: e.y + 4, "text-anchor": "middle", "class": "edge-label" }, svg);
        lt.textContent = e.shown;
      }
    });
    data.nodes.forEach(function (n) {
      var p = g.node(n.id);
      var status = colours[n.id] || "";
      var gg = el("g", { "class": "node kind-" + n.kind + (status ? " st-" + status : ""), "data-node": n.id, "data-status": status,
        "data-name": n.label, tabindex: 0 }, svg);
      if (n.kind === "join") {
        el("circle", { cx: p.x, cy: p.y, r: 6 }, gg);
      } else if (n.kind === "start" || n.kind === "end" || n.kind === "succeed" || n.kind === "fail") {
        el("rect", { x: p.x - p.width / 2, y: p.y - p.height / 2, width: p.width, height: p.height, rx: p.height / 2 }, gg);
      } else if (n.kind === "choice") {
        var w = p.width / 2, h = p.height / 2;
        el("polygon", { points: [p.x - w, p.y, p.x, p.y - h, p.x + w, p.y, p.x, p.y + h].join(" ") }, gg);
      } else {
        el("rect", { x: p.x - p.width / 2, y: p.y - p.height / 2, width: p.width, height: p.height, rx: 4 }, gg);
      }
      if (n.kind !== "join") {
        var t = el("text", { x: p.x, y: p.y + 4, "text-anchor": "middle" }, gg);
        t.textContent = n.label;
        var title = el("title", {}, gg);
        title.textContent = n.label + " (" + n.kind + (status ? ", " + status : "") + ")";
      }
      if (n.kind !== "start" && n.kind !== "end" && n.kind !== "join") {
        gg.addEventListener("click", function () { showState(n.id); });
        gg.addEventListener("keydown", function (ev) { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); showState(n.id); } });
      }
    });
  }

  function startForm() {
    var form = document.getElementById("start-form");
    if (!form) return;
    form.addEventListener("submit", function (ev) {
      var area = document.getElementById("start-input");
      var out = document.getElementById("start-input-error");
      var text = area.value.trim();
      var problem = "";
      if (text) {
        try {
          var value = JSON.parse(text);
          if (value === null || typeof value !== "object" || Array.isArray(value)) problem = "The input must be a JSON object, like {\"key\": \"value\"}.";
        } catch (e) { problem = "The input is not valid JSON: " + e.message; }
      }
      if (problem) {
        ev.preventDefault();
        out.textContent = problem;
        out.hidden = false;
      } else {
        out.hidden = true;
      }
    });
  }

  function copyButtons() {
    document.querySelectorAll("button.copy").forEach(function (b) {
      b.addEventListener("click", function () {
        var target = document.getElementById(b.getAttribute("data-copy"));
        if (target && navigator.clipboard) navigator.clipboard.writeText(target.textContent);
      });
    });
  }

  function init() {
    drawGraph();
    startForm();
    copyButtons();
    live();
  }

  // A running execution: poll its status and history length; when either changes, fetch the
  // page again and swap its content in (no reload), until the execution ends.
  var timer = null;
  function live() {
    var box = document.getElementById("execution");
    if (timer) { clearTimeout(timer); timer = null; }
    if (!box || !box.getAttribute("data-live-url")) return;
    var url = box.getAttribute("data-live-url");
    var pageUrl = box.getAttribute("data-page-url");
    var chunks = parseInt(box.getAttribute("data-hseq"), 10);
    function poll() {
      fetch(url, { credentials: "same-origin", cache: "no-store" }).then(function (r) {
        if (!r.ok) throw new Error("status " + r.status);
        return r.json();
      }).then(function (now) {
        var changed = now.chunks !== chunks;
        var ended = now.status !== "Running" && now.status !== "Starting";
        chunks = now.chunks;
        if (changed || ended || now.status !== box.getAttribute("data-status")) {
          return refresh(pageUrl + window.location.search);
        }
        timer = setTimeout(poll, 1000);
      }).catch(function () { timer = setTimeout(poll, 3000); });
    }
    timer = setTimeout(poll, 1000);
  }

  function refresh(pageUrl) {
    return fetch(pageUrl, { credentials: "same-origin", cache: "no-store" }).then(function (r) { return r.text(); }).then(function (html) {
      var doc = new DOMParser().parseFromString(html, "text/html");
      var fresh = doc.getElementById("content");
      var main = document.getElementById("content");
      if (!fresh || !main) return;
      var selected = document.querySelector("#graph g.node.selected");
      main.innerHTML = fresh.innerHTML;
      init();
      if (selected) showState(selected.getAttribute("data-node"));
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
