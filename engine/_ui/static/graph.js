// The tool dependency graph as SVG, laid out by the server (scaleenv._ui.layout): edge kinds
// drawn apart, a tool's neighbourhood highlighted while the pointer is on it.
import { h, svg, clear, badge } from "./dom.js";
import { PALETTE } from "./charts.js";

const KIND_COLORS = { data: "#4e79a7", state: "#e15759", shared: "#59a14f" };
const SPARE = PALETTE.filter((c) => !Object.values(KIND_COLORS).includes(c));

// Each edge kind its own colour; a kind this page does not know takes a spare one.
export function kindColor(kind, kinds) {
  return KIND_COLORS[kind] || SPARE[kinds.filter((k) => !(k in KIND_COLORS)).indexOf(kind) % SPARE.length];
}

export function drawGraph({ graph, edges, tools, onOpen }) {
  const W = graph.node_width, H = graph.node_height;
  const pos = new Map(graph.nodes.map((n) => [n.name, n]));
  const status = new Map(tools.map((t) => [t.name, t.status]));
  const kinds = [...new Set(edges.map((e) => e.kind))].sort();
  const pairCount = new Map();
  const neighbours = new Map(graph.nodes.map((n) => [n.name, { out: new Set(), in: new Set() }]));
  const info = h("div", { class: "graph-info muted" }, "Point at a tool to see what it feeds and what feeds it; click to open its audit.");

  const markers = svg("defs", null, kinds.map((k) => svg("marker", {
    id: "arrow-" + k, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
    svg("path", { d: "M0,0 L10,5 L0,10 z", fill: kindColor(k, kinds) }))));

  const edgeEls = edges.map((e) => {
    const a = pos.get(e.src), b = pos.get(e.dst);
    if (!a || !b) return null;
    neighbours.get(e.src).out.add(e.dst);
    neighbours.get(e.dst).in.add(e.src);
    const key = [e.src, e.dst].sort().join("\u0000");
    const nth = pairCount.get(key) || 0;
    pairCount.set(key, nth + 1);
    const bend = (nth % 2 ? -1 : 1) * Math.ceil(nth / 2) * 8;
    let d;
    if (b.column > a.column) {
      const sx = a.x + W, sy = a.y + H / 2 + bend / 2, tx = b.x, ty = b.y + H / 2 + bend / 2;
      const dx = Math.max(40, (tx - sx) / 2);
      d = `M${sx},${sy} C${sx + dx},${sy + bend} ${tx - dx},${ty + bend} ${tx},${ty}`;
    } else if (b.column < a.column) {  // against the flow (the edge closes a cycle): right to left
      const sx = a.x, sy = a.y + H / 2 + bend / 2, tx = b.x + W, ty = b.y + H / 2 + bend / 2;
      const dx = Math.max(40, (sx - tx) / 2);
      d = `M${sx},${sy} C${sx - dx},${sy + bend} ${tx + dx},${ty + bend} ${tx},${ty}`;
    } else {  // in the same column: bow out to the right
      const sx = a.x + W, sy = a.y + H / 2 + bend / 3, tx = b.x + W, ty = b.y + H / 2 - bend / 3;
      const out = 50 + Math.abs(b.row - a.row) * 6 + Math.abs(bend);
      d = `M${sx},${sy} C${sx + out},${sy} ${tx + out},${ty} ${tx},${ty}`;
    }
    const why = [e.kind, (e.feeds || []).map((f) => f.join(" → ")).join(", "), e.why].filter(Boolean).join(": ");
    return svg("path", { d, class: ["edge", "kind-" + e.kind], stroke: kindColor(e.kind, kinds), "marker-end": `url(#arrow-${e.kind})`,
      "data-src": e.src, "data-dst": e.dst, "data-kind": e.kind }, svg("title", null, `${e.src} → ${e.dst} (${why})`));
  }).filter(Boolean);

  const root = svg("svg", { class: "graph", viewBox: `0 0 ${graph.width + 80} ${graph.height}`, width: graph.width + 80, height: graph.height,
    role: "img", "aria-label": "tool dependency graph" }, markers);
  const edgeLayer = svg("g", { class: "edges" }, edgeEls);
  const nodeEls = graph.nodes.map((n) => {
    const st = status.get(n.name) || "pending";
    const g = svg("g", { class: ["node", "status-" + st], transform: `translate(${n.x},${n.y})`, "data-tool": n.name, tabindex: 0 },
      svg("rect", { width: W, height: H, rx: 6 }),
      svg("text", { x: 10, y: H / 2 + 4 }, n.name.length > 24 ? n.name.slice(0, 23) + "…" : n.name),
      svg("title", null, `${n.name} (${st})`));
    g.addEventListener("mouseenter", () => focus(n.name));
    g.addEventListener("mouseleave", () => focus(null));
    g.addEventListener("focus", () => focus(n.name));
    g.addEventListener("blur", () => focus(null));
    g.addEventListener("click", () => onOpen(n.name));
    g.addEventListener("keydown", (ev) => { if (ev.key === "Enter") onOpen(n.name); });
    return g;
  });
  root.append(edgeLayer, svg("g", { class: "nodes" }, nodeEls));

  function focus(name) {
    root.classList.toggle("focused", !!name);
    const nb = name ? neighbours.get(name) : null;
    for (const g of nodeEls) {
      const t = g.dataset.tool;
      g.classList.toggle("hl", t === name);
      g.classList.toggle("nb", !!nb && (nb.out.has(t) || nb.in.has(t)));
    }
    for (const e of edgeEls) e.classList.toggle("hl", !!name && (e.dataset.src === name || e.dataset.dst === name));
    clear(info);
    if (!name) { info.append("Point at a tool to see what it feeds and what feeds it; click to open its audit."); return; }
    info.append(h("strong", null, name), " ", badge(status.get(name) || "pending", status.get(name)),
      h("span", null, " feeds: "), h("span", { class: "chips" }, [...nb.out].sort().map((t) => h("span", { class: "chip" }, t))),
      h("span", null, " · fed by: "), h("span", { class: "chips" }, [...nb.in].sort().map((t) => h("span", { class: "chip" }, t))));
  }

  const legend = h("div", { class: "legend" },
    kinds.map((k) => h("span", { class: "legend-item" }, h("span", { class: "swatch-line", style: `border-color:${kindColor(k, kinds)}`, "data-kind": k }), k + " edge")),
    ["accepted", "rejected", "pending"].map((s) => h("span", { class: "legend-item" }, h("span", { class: "swatch node-swatch status-" + s }), s + " tool")));
  return h("div", { class: "graph-box" }, legend, h("div", { class: "graph-scroll" }, root), info);
}
