// Small SVG charts: bars (stacked or grouped series) and lines. No library, no network.
import { h, svg, fmt } from "./dom.js";

export const PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];

function niceMax(v) {
  if (v <= 0) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function ticks(max, n = 4) { return Array.from({ length: n + 1 }, (_, i) => (max * i) / n); }

function legend(series) {
  if (series.length < 2) return null;
  return h("div", { class: "legend" }, series.map((s) => h("span", { class: "legend-item" },
    h("span", { class: "swatch", style: `background:${s.color}` }), s.name)));
}

function frame(width, height, pad, max, yLabel) {
  const g = [];
  for (const t of ticks(max)) {
    const y = height - pad.b - ((height - pad.t - pad.b) * t) / max;
    g.push(svg("line", { x1: pad.l, x2: width - pad.r, y1: y, y2: y, class: "grid" }));
    g.push(svg("text", { x: pad.l - 6, y: y + 4, class: "tick", "text-anchor": "end" }, fmt.num(t, 2)));
  }
  if (yLabel) g.push(svg("text", { x: 12, y: pad.t + (height - pad.t - pad.b) / 2, class: "axis-label", transform: `rotate(-90 12 ${pad.t + (height - pad.t - pad.b) / 2})`, "text-anchor": "middle" }, yLabel));
  return g;
}

// categories: labels on x; series: [{name, values, color}]; mode: "stack" | "group".
export function barChart({ title, categories, series, mode = "stack", yLabel, xLabel, onClick, width = 520, height = 240, max: fixedMax }) {
  const pad = { l: 52, r: 10, t: 12, b: xLabel ? 52 : 38 };
  const longest = Math.max(0, ...categories.map((c) => String(c).length));
  const rotate = longest * 6 > (width - pad.l - pad.r) / Math.max(1, categories.length);  // labels wider than their bars
  if (rotate) { pad.b += Math.min(90, longest * 4.2); height += Math.min(90, longest * 4.2); }
  series = series.map((s, i) => ({ color: PALETTE[i % PALETTE.length], ...s }));
  const totals = categories.map((_, i) => mode === "stack" ? series.reduce((a, s) => a + (s.values[i] || 0), 0)
    : Math.max(0, ...series.map((s) => s.values[i] || 0)));
  const max = fixedMax || niceMax(Math.max(0, ...totals));
  const plotW = width - pad.l - pad.r, plotH = height - pad.t - pad.b;
  const band = plotW / Math.max(1, categories.length);
  const barW = Math.max(2, band * 0.75);
  const bars = [];
  categories.forEach((cat, i) => {
    let acc = 0;
    series.forEach((s, j) => {
      const v = s.values[i] || 0;
      const hgt = (plotH * v) / max;
      let x, y, w;
      if (mode === "stack") { x = pad.l + i * band + (band - barW) / 2; w = barW; y = pad.t + plotH - (plotH * (acc + v)) / max; acc += v; }
      else { w = barW / series.length; x = pad.l + i * band + (band - barW) / 2 + j * w; y = pad.t + plotH - hgt; }
      if (v > 0) bars.push(svg("rect", { x, y, width: Math.max(1, w - 1), height: Math.max(0.5, hgt), fill: s.color, class: ["bar", onClick ? "clickable" : null],
        "data-category": cat, "data-series": s.name, "data-value": v, onclick: onClick ? () => onClick(i, s) : null },
        svg("title", null, `${s.name ? s.name + " · " : ""}${cat}: ${fmt.num(v, 4)}`)));
    });
  });
  const every = Math.ceil(categories.length / Math.max(1, Math.floor(plotW / 34)));
  const labels = categories.map((cat, i) => {
    if (i % every && !rotate) return null;
    const x = pad.l + i * band + band / 2, y = height - pad.b + 14;
    return svg("text", rotate ? { x, y, class: "tick", "text-anchor": "end", transform: `rotate(-35 ${x} ${y})` }
      : { x, y, class: "tick", "text-anchor": "middle" }, String(cat));
  });
  return h("figure", { class: "chart", "data-chart": title },
    h("figcaption", null, title),
    svg("svg", { viewBox: `0 0 ${width} ${height}`, width: "100%", role: "img", "aria-label": title },
      frame(width, height, pad, max, yLabel), bars, labels,
      xLabel ? svg("text", { x: pad.l + plotW / 2, y: height - 8, class: "axis-label", "text-anchor": "middle" }, xLabel) : null),
    legend(series));
}

// x: numbers (seconds); series: [{name, values}].
export function lineChart({ title, x, series, yLabel, xLabel, width = 520, height = 220 }) {
  const pad = { l: 52, r: 10, t: 12, b: 44 };
  series = series.map((s, i) => ({ color: PALETTE[i % PALETTE.length], ...s }));
  const max = niceMax(Math.max(0, ...series.flatMap((s) => s.values)));
  const xmax = Math.max(1, ...x);
  const plotW = width - pad.l - pad.r, plotH = height - pad.t - pad.b;
  const px = (v) => pad.l + (plotW * v) / xmax, py = (v) => pad.t + plotH - (plotH * v) / max;
  const paths = series.map((s) => svg("path", { class: "line", stroke: s.color, "data-series": s.name,
    d: s.values.map((v, i) => (i ? "L" : "M") + px(x[i]).toFixed(1) + " " + py(v).toFixed(1)).join(" ") },
    svg("title", null, s.name)));
  const xt = ticks(xmax, 4).map((t) => svg("text", { x: px(t), y: height - pad.b + 14, class: "tick", "text-anchor": "middle" }, fmt.num(t, 0) + "s"));
  return h("figure", { class: "chart", "data-chart": title },
    h("figcaption", null, title),
    svg("svg", { viewBox: `0 0 ${width} ${height}`, width: "100%", role: "img", "aria-label": title },
      frame(width, height, pad, max, yLabel), paths, xt,
      xLabel ? svg("text", { x: pad.l + plotW / 2, y: height - 6, class: "axis-label", "text-anchor": "middle" }, xLabel) : null),
    legend(series));
}
