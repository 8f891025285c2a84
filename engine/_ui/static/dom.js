// DOM helpers and the generic renderer. Everything on the page is built with DOM calls
// and text nodes (never an HTML parser): what a model wrote is shown as text, never as markup.

export function h(tag, attrs, ...children) {
  const el = document.createElementNS(tag.startsWith("svg:") ? "http://www.w3.org/2000/svg" : "http://www.w3.org/1999/xhtml",
    tag.startsWith("svg:") ? tag.slice(4) : tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.setAttribute("class", Array.isArray(v) ? v.filter(Boolean).join(" ") : v);
    else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "dataset") for (const [dk, dv] of Object.entries(v)) el.dataset[dk] = dv;
    else if (k === "style") {  // through the CSSOM: the CSP allows no inline style attribute
      for (const decl of String(v).split(";")) {
        const i = decl.indexOf(":");
        if (i > 0) el.style.setProperty(decl.slice(0, i).trim(), decl.slice(i + 1).trim());
      }
    }
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

export function svg(tag, attrs, ...children) { return h("svg:" + tag, attrs, ...children); }

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); return el; }

// Replace an element's children (null, undefined and false children are left out).
export function mount(el, ...children) { clear(el); append(el, children); return el; }

export function link(href, ...children) {
  return h("a", { href, onclick: (ev) => { if (!ev.ctrlKey && !ev.metaKey && !ev.shiftKey && ev.button === 0) { ev.preventDefault(); window.scaleenvUi.go(href); } } }, ...children);
}

export const fmt = {
  num(v, digits = 2) {
    if (v === null || v === undefined) return "—";
    if (typeof v !== "number") return String(v);
    if (Number.isInteger(v)) return v.toLocaleString("en-US");
    return v.toFixed(digits).replace(/\.?0+$/, "") || "0";
  },
  pct(v) { return v === null || v === undefined ? "—" : (100 * v).toFixed(1) + "%"; },
  bytes(n) { const u = ["B", "kB", "MB", "GB", "TB"]; let i = 0; while (n >= 1000 && i < u.length - 1) { n /= 1000; i++; } return n.toFixed(i ? 1 : 0) + " " + u[i]; },
  time(ns) { return ns ? new Date(ns / 1e6).toISOString().replace("T", " ").slice(0, 19) : "—"; },
};

export function badge(text, kind) { return h("span", { class: ["badge", kind ? "badge-" + kind : null] }, text); }

export function section(title, ...children) {
  return h("section", { class: "card" }, h("h2", null, title), ...children);
}

export function kv(pairs) {
  return h("dl", { class: "kv" }, pairs.filter(Boolean).map(([k, v]) => [h("dt", null, k), h("dd", null, v)]));
}

export function pre(text, cls) { return h("pre", { class: cls || "text" }, text); }

export function details(summary, ...children) {
  return h("details", null, h("summary", null, summary), ...children);
}

// A <details> whose content is built the first time it is opened: a long table or history
// costs the page nothing until someone looks at it.
export function lazyDetails(summary, build) {
  const el = h("details", null, h("summary", null, summary));
  el.addEventListener("toggle", () => {
    if (el.open && !el.dataset.built) {
      el.dataset.built = "1";
      el.append(build());
    }
  });
  return el;
}

// -- the generic renderer: any JSON value, so new fields show without code changes -----

const isPlainObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
const isScalar = (v) => v === null || ["string", "number", "boolean"].includes(typeof v);
const LONG = 160;

export function renderValue(v, depth = 0) {
  if (v === null || v === undefined) return h("span", { class: "muted" }, "—");
  if (typeof v === "boolean") return h("span", { class: "bool" }, String(v));
  if (typeof v === "number") return h("span", { class: "num" }, fmt.num(v, 4));
  if (typeof v === "string") {
    if (v.length > 2000) return details(v.slice(0, 120).replace(/\s+/g, " ") + "… (" + v.length + " characters)", pre(v));
    if (v.length > LONG || v.includes("\n")) return pre(v);
    return h("span", { class: "str" }, v);
  }
  if (Array.isArray(v)) {
    if (!v.length) return h("span", { class: "muted" }, "[]");
    if (v.every(isScalar)) return h("span", { class: "chips" }, v.map((x) => h("span", { class: "chip" }, x === null ? "—" : String(x))));
    if (v.every((x) => Array.isArray(x) && x.every(isScalar))) {
      return h("span", { class: "chips" }, v.map((x) => h("span", { class: "chip" }, x.map(String).join(" / "))));
    }
    if (v.every(isPlainObject)) return renderTable(v, depth);
    return h("ol", { class: "list" }, v.map((x) => h("li", null, renderValue(x, depth + 1))));
  }
  if (isPlainObject(v)) {
    const keys = Object.keys(v);
    if (!keys.length) return h("span", { class: "muted" }, "{}");
    const body = kv(keys.map((k) => [k, renderValue(v[k], depth + 1)]));
    return depth >= 3 ? details(keys.length + " fields", body) : body;
  }
  return h("span", null, String(v));
}

// A list of objects as a table whose columns are every key any row has (first seen first).
export function renderTable(rows, depth = 0, opts = {}) {
  const cols = [];
  for (const r of rows) for (const k of Object.keys(r)) if (!cols.includes(k) && !(opts.hide || []).includes(k)) cols.push(k);
  return h("div", { class: "table-wrap" }, h("table", { class: "data" },
    h("thead", null, h("tr", null, cols.map((c) => h("th", null, (opts.headers || {})[c] || c)))),
    h("tbody", null, rows.map((r) => h("tr", null, cols.map((c) => h("td", { "data-col": c },
      (opts.cell && opts.cell(c, r[c], r)) || (c in r ? renderValue(r[c], depth + 1) : "")))))),
  ));
}

// A paginated table of rows fetched from an /api list route.
export function pager(page, onGo) {
  const { total, offset, limit } = page;
  const last = Math.max(0, Math.floor((total - 1) / limit) * limit);
  const btn = (label, to, disabled) => h("button", { class: "btn", disabled: disabled || null, onclick: () => onGo(to) }, label);
  return h("div", { class: "pager" },
    btn("« first", 0, offset === 0), btn("‹ prev", Math.max(0, offset - limit), offset === 0),
    h("span", { class: "muted" }, total ? `${fmt.num(offset + 1)}–${fmt.num(Math.min(total, offset + limit))} of ${fmt.num(total)}` : "none"),
    btn("next ›", offset + limit, offset + limit >= total), btn("last »", last, offset >= last));
}

// A database state (table -> key -> record) as one table per table, with marks per record.
export function renderState(state, { marks = {}, changed = new Set(), emptyText = "no records" } = {}) {
  const tables = Object.keys(state || {}).sort();
  if (!tables.length) return h("p", { class: "muted" }, emptyText);
  return h("div", { class: "state" }, tables.map((t) => {
    const rows = state[t] || {};
    const keys = Object.keys(rows).sort();
    const cols = [];
    for (const k of keys) for (const f of Object.keys(rows[k] || {})) if (!cols.includes(f)) cols.push(f);
    const nChanged = keys.filter((k) => changed.has(t + "\u0000" + k)).length;
    return h("div", { class: "state-table", "data-table": t },
      h("h3", null, t, " ", h("span", { class: "muted" }, `${keys.length} record${keys.length === 1 ? "" : "s"}`),
        nChanged ? badge(`${nChanged} changed`, "changed") : null),
      h("div", { class: "table-wrap" }, h("table", { class: "data" },
        h("thead", null, h("tr", null, h("th", null, "key"), cols.map((c) => h("th", null, c)), h("th", null, ""))),
        h("tbody", null, keys.map((k) => {
          const mark = marks[t + "\u0000" + k];
          const isChanged = changed.has(t + "\u0000" + k);
          return h("tr", { class: [mark ? "mark-" + mark : null, isChanged ? "changed" : null], "data-key": k },
            h("td", { class: "key" }, k), cols.map((c) => h("td", null, renderValue((rows[k] || {})[c], 2))),
            h("td", null, mark ? badge(mark, mark) : null, isChanged ? badge("changed", "changed") : null));
        })))));
  }));
}

export function markMap(list) {
  const out = {};
  for (const m of list || []) out[m.table + "\u0000" + m.key] = m.mark;
  return out;
}

// A unified diff, one line per row, + and - lines coloured.
export function renderDiff(text) {
  return h("pre", { class: "diff" }, text.split("\n").map((line) => h("span", {
    class: line.startsWith("+++") || line.startsWith("---") ? "d-file" : line.startsWith("@@") ? "d-hunk"
      : line.startsWith("+") ? "d-add" : line.startsWith("-") ? "d-del" : null,
  }, line + "\n")));
}

export function renderCode(text) {
  return h("pre", { class: "code" }, text.split("\n").map((line, i) => h("span", { class: "line" }, h("span", { class: "ln" }, String(i + 1)), line + "\n")));
}
