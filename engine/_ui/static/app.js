// scaleenv ui: the router, the live follower, and the run and episode-list pages.
// Every page fetches its data from /api/... (the same JSON scripts get) and draws it.
import { h, clear, mount, link, fmt, badge, section, kv, renderValue, renderTable, pager } from "./dom.js";
import { barChart, lineChart } from "./charts.js";
import { domainPage } from "./domain.js";
import { toolPage } from "./tool.js";
import { taskPage } from "./task.js";
import { episodePage } from "./episode.js";
import { ApiError, api, enc } from "./net.js";
import { episodeTable } from "./rows.js";

// -- the run page -------------------------------------------------------------------

function rangeLabels(edges, width) {
  return edges.slice(0, -1).map((e, i) => width === 1 ? String(e) : `${e}–${edges[i + 1] - 1}`);
}

function seriesBySlot(per, slots, names) {
  return slots.filter((s) => per[s]).map((s) => ({ name: names[s] || s, values: per[s] }));
}

function renderRun(main, data) {
  const t = data.totals, log = data.log;
  const names = Object.fromEntries(data.domains.map((d) => [d.slot, d.name ? `${d.slot} ${d.name}` : d.slot]));
  const slots = data.domains.map((d) => d.slot);
  const c = data.charts;
  const endingKeys = [...new Set(Object.values(c.endings).flatMap((e) => Object.keys(e)))]
    .sort((a, b) => slots.reduce((x, s) => x + ((c.endings[s] || {})[b] || 0), 0) - slots.reduce((x, s) => x + ((c.endings[s] || {})[a] || 0), 0));
  const tp = data.throughput;
  const stat = (label, value, sub) => h("div", { class: "stat" }, h("div", { class: "stat-value" }, value), h("div", { class: "stat-label" }, label), sub ? h("div", { class: "stat-sub muted" }, sub) : null);
  mount(main, 
    h("header", { class: "page-head" }, h("h1", null, "Run"), h("span", { class: "muted mono" }, log.path)),
    h("div", { class: "stats" },
      stat("domains", fmt.num(t.domains)),
      stat("tools verified", fmt.num(t.tools_verified), `${fmt.num(t.tools_rejected)} rejected`),
      stat("tasks kept", fmt.num(t.tasks_kept), `of ${fmt.num(t.tasks)}`),
      stat("episodes scored", fmt.num(t.episodes_scored), `${fmt.num(t.episodes_running)} running · ${fmt.num(t.episodes_served)} served`),
      stat("mean reward", fmt.num(t.mean_reward, 4)),
      stat("LLM calls", fmt.num(t.llm_calls)),
      stat("tool calls", fmt.num(t.tool_calls)),
      stat("events", fmt.num(log.events), log.caught_up ? `seq ${fmt.num(log.seq)}` : `indexing: ${fmt.num(log.seq)} of ${fmt.num(log.log_seq)}`)),
    data.problems.count || data.problems.unknown_events ? section("Problems in the log",
      h("p", null, `${fmt.num(data.problems.count)} damaged record(s) skipped; ${fmt.num(data.problems.unknown_events)} event(s) of types this version does not know. `,
        h("span", { class: "muted" }, "scaleenv log check lists every one.")),
      data.problems.first.length ? renderTable(data.problems.first) : null) : null,
    section("Domains", renderTable(data.domains.map((d) => ({
      slot: d.slot, domain: d.name, status: d.status, verified: d.tools_verified, rejected: d.tools_rejected, repairs: d.repair_rounds,
      edges: `${d.graph_edges} (${d.state_edges} state)`, "llm calls": d.llm_calls, tokens: d.tokens,
      tasks: d.tasks, discarded: Object.values(d.tasks_discarded).reduce((a, b) => a + b, 0), episodes: d.episodes,
      running: d.episodes_running, "pass@1": d.pass_at_1, [`pass@k`]: d.pass_at_k, k: d.k, turns: d.mean_turns, "tool calls": d.mean_tool_calls,
    })), 0, { cell: (col, v, row) => col === "slot" ? link(`/domains/${enc(v)}`, v) : col === "domain" && v ? link(`/domains/${enc(row.slot)}`, v) : null })),
    h("div", { class: "charts" },
      barChart({ title: "Reward (scored episodes)", categories: c.reward.edges.slice(0, -1).map((e, i) => `${e.toFixed(1)}–${c.reward.edges[i + 1].toFixed(1)}`),
        series: seriesBySlot(c.reward.series, slots, names), yLabel: "episodes", xLabel: "reward" }),
      barChart({ title: "pass@1 and pass@k by domain", categories: data.domains.filter((d) => d.pass_at_1 !== null).map((d) => d.slot), mode: "group", max: 1,
        series: [{ name: "pass@1", values: data.domains.filter((d) => d.pass_at_1 !== null).map((d) => d.pass_at_1) },
          { name: "pass@k", values: data.domains.filter((d) => d.pass_at_1 !== null).map((d) => d.pass_at_k) }], yLabel: "rate" }),
      barChart({ title: "Turns per episode", categories: rangeLabels(c.turns.edges, c.turns.width), series: seriesBySlot(c.turns.series, slots, names), yLabel: "episodes", xLabel: "turns" }),
      barChart({ title: "Tool calls per episode", categories: rangeLabels(c.tool_calls.edges, c.tool_calls.width), series: seriesBySlot(c.tool_calls.series, slots, names), yLabel: "episodes", xLabel: "tool calls" }),
      barChart({ title: "Episode endings (reason/fault)", categories: endingKeys, yLabel: "episodes",
        series: slots.filter((s) => c.endings[s]).map((s) => ({ name: names[s], values: endingKeys.map((k) => c.endings[s][k] || 0) })),
        onClick: (i) => window.scaleenvUi.go(`/episodes?ending=${encodeURIComponent(endingKeys[i])}`) }),
      tp.t.length ? lineChart({ title: `Throughput (per second; buckets of ${tp.bucket_s}s from ${fmt.time(tp.start_ns)})`, x: tp.t, xLabel: "time since the first commit",
        series: [{ name: "events/s", values: tp.series.events }, { name: "LLM calls/s", values: tp.series.llm_calls }] }) : null,
      tp.t.length ? lineChart({ title: "Episodes and tool calls per second", x: tp.t, xLabel: "time since the first commit",
        series: [{ name: "tool calls/s", values: tp.series.tool_calls }, { name: "episodes ended/s", values: tp.series.episodes_ended }] }) : null),
    section("Log", kv([["path", h("span", { class: "mono" }, log.path)], ["run config", renderValue(log.config)],
      ["format", renderValue(log.header)], ["event types", renderValue(data.event_types)]])),
  );
}

async function runPage(main) {
  let last = null;
  const draw = async () => {
    const data = await api("/api/run");
    const key = JSON.stringify({ ...data, log: { ...data.log, log_seq: 0 } });
    if (key !== last) { last = key; renderRun(main, data); }
  };
  await draw();
  return { refresh: draw };
}

// -- the episode list ---------------------------------------------------------------

async function episodesPage(main, query) {
  const domains = (await api("/api/domains")).domains;
  const q = Object.fromEntries(["domain", "task", "ending", "status", "min_reward", "max_reward", "offset"].map((k) => [k, query.get(k) || ""]));
  const table = h("div");
  const input = (name, attrs) => h("input", { name, value: q[name], ...attrs, onchange: (ev) => { q[name] = ev.target.value; q.offset = ""; load(); } });
  const select = (name, options) => h("select", { name, onchange: (ev) => { q[name] = ev.target.value; q.offset = ""; load(); } },
    options.map(([v, label]) => h("option", { value: v, selected: q[name] === v ? true : null }, label)));
  async function load() {
    const params = new URLSearchParams(Object.entries(q).filter(([, v]) => v !== ""));
    history.replaceState(null, "", "/episodes" + (params.toString() ? "?" + params : ""));
    const page = await api("/api/episodes?" + params);
    mount(table, episodeTable(page), pager(page, (off) => { q.offset = String(off); load(); }));
  }
  mount(main, 
    h("header", { class: "page-head" }, h("h1", null, "Episodes")),
    h("form", { class: "filters", onsubmit: (ev) => ev.preventDefault() },
      h("label", null, "domain ", select("domain", [["", "all"], ...domains.map((d) => [d.slot, `${d.slot} ${d.name}`])])),
      h("label", null, "task ", input("task", { placeholder: "d00/t003", size: 10 })),
      h("label", null, "ending ", input("ending", { placeholder: "user_gave_up/policy", size: 18 })),
      h("label", null, "status ", select("status", [["", "any"], ["running", "running"], ["ended", "ended"], ["scored", "scored"]])),
      h("label", null, "reward ", input("min_reward", { placeholder: "min", size: 4 }), " – ", input("max_reward", { placeholder: "max", size: 4 }))),
    section("Episodes", table));
  await load();
  return { refresh: load };
}

// -- routing and the live follower ----------------------------------------------------

const ROUTES = [
  [/^\/$/, (m, _, q) => runPage(m, q)],
  [/^\/episodes$/, (m, _, q) => episodesPage(m, q)],
  [/^\/domains\/([^/]+)$/, (m, g, q) => domainPage(m, g[1], q)],
  [/^\/tools\/([^/]+)\/([^/]+)$/, (m, g) => toolPage(m, g[1], g[2])],
  [/^\/tasks\/(.+)$/, (m, g, q) => taskPage(m, g[1], q)],
  [/^\/episodes\/(.+)$/, (m, g, q) => episodePage(m, g[1], q)],
];

const state = { page: null, token: 0, refreshing: false, pending: false, lastRefresh: 0 };

async function route() {
  const main = document.getElementById("app");
  const token = ++state.token;
  const t0 = performance.now();
  document.body.dataset.ready = "0";
  state.page = null;
  const path = decodeURIComponent(location.pathname).replace(/\/+$/, "") || "/";
  const query = new URLSearchParams(location.search);
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.getAttribute("href") === path);
  let found = null;
  for (const [re, fn] of ROUTES) { const m = path.match(re); if (m) { found = [fn, m]; break; } }
  try {
    if (!found) throw new ApiError(`no page at ${path}; pages are /, /episodes, /domains/<slot>, /tools/<slot>/<tool>, /tasks/<task id>, /episodes/<episode id>`, 404);
    mount(main, h("p", { class: "muted loading" }, "loading…"));
    const page = await found[0](main, found[1], query);
    if (token !== state.token) return;
    state.page = page;
    document.body.dataset.page = path === "/" ? "run" : path.split("/")[1];
    delete document.body.dataset.error;
  } catch (err) {
    if (token !== state.token) return;
    mount(main, h("section", { class: "card error" }, h("h2", null, err.status === 404 ? "Not found" : "Error"), h("p", { class: "error-message" }, err.message)));
    document.body.dataset.page = "error";
    document.body.dataset.error = String(err.status || "");
  }
  window.scaleenvUi.lastLoadMs = performance.now() - t0;
  window.scaleenvUi.readyAtMs = performance.now();  // since the browser began loading the URL
  document.body.dataset.ready = "1";
}

async function refresh() {
  if (!state.page || !state.page.refresh) return;
  if (state.refreshing) { state.pending = true; return; }
  state.refreshing = true;
  const token = state.token;
  try {
    do {
      state.pending = false;
      const wait = 1000 - (performance.now() - state.lastRefresh);  // at most one refresh a second
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      if (token !== state.token) return;
      state.lastRefresh = performance.now();
      await state.page.refresh();
      document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed || 0) + 1);
    } while (state.pending && token === state.token);
  } catch (err) {
    console.warn("refresh failed:", err.message);
  } finally { state.refreshing = false; }
}

async function follow() {
  const live = document.getElementById("live");
  let seq = -1;
  for (;;) {
    try {
      const head = await api(`/api/head?after=${seq}&wait=${seq < 0 ? 0 : 25}`);
      live.className = head.caught_up ? "live" : "live indexing";
      live.textContent = head.caught_up ? `live · ${fmt.num(head.events)} events`
        : `indexing ${Math.floor((100 * head.seq) / Math.max(1, head.log_seq))}% · ${fmt.num(head.seq)} of ${fmt.num(head.log_seq)}`;
      live.dataset.seq = head.seq;
      if (seq >= 0 && head.seq !== seq) refresh();
      seq = head.seq;
    } catch (err) {
      live.className = "live offline";
      live.textContent = "server unreachable · retrying";
      await new Promise((r) => setTimeout(r, 2000));
    }
  }
}

function go(href) {
  if (href === location.pathname + location.search) return;
  history.pushState(null, "", href);
  window.scrollTo(0, 0);
  route();
}

function jump(ev) {
  ev.preventDefault();
  const v = ev.target.elements.id.value.trim().replace(/^\/+|\/+$/g, "");
  if (!v) return;
  const parts = v.replace(/^(episode|task|domain|tool)\//, "").split("/");
  if (v.startsWith("tool/") || (parts.length === 2 && !/^t\d+$/.test(parts[1]))) go(`/tools/${enc(parts.join("/"))}`);
  else go(parts.length === 1 ? `/domains/${enc(parts[0])}` : parts.length === 2 ? `/tasks/${enc(parts.join("/"))}` : `/episodes/${enc(parts.join("/"))}`);
}

window.scaleenvUi = { go, api, route, renderValue, lastLoadMs: null };
window.addEventListener("popstate", route);
document.addEventListener("click", (ev) => {  // links to pages of this app navigate without a reload
  const a = ev.target.closest && ev.target.closest("a[href]");
  if (!a || ev.defaultPrevented || ev.button !== 0 || ev.ctrlKey || ev.metaKey || ev.shiftKey || a.target) return;
  const href = a.getAttribute("href");
  if (!href.startsWith("/") || href.startsWith("/api/") || href.startsWith("/static/")) return;
  ev.preventDefault();
  go(href);
});
document.getElementById("jump").addEventListener("submit", jump);
route();
follow();
