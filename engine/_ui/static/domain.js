// The domain page: figures, the dependency graph, the tools with their contracts, the schema,
// the design history and the domain's tasks. Spec fields this page does not know are shown
// generically (a new column property such as a reward policy appears as a column).
import { h, clear, mount, link, fmt, badge, section, kv, renderValue, renderTable, pager, lazyDetails } from "./dom.js";
import { api, enc } from "./net.js";
import { drawGraph } from "./graph.js";

const TOOL_KNOWN = ["name", "description", "params", "returns", "returns_list", "reads", "writes", "mutates", "contract"];
const TABLE_KNOWN = ["name", "description", "primary_key", "fields"];
const SPEC_KNOWN = ["name", "description", "tables", "tools"];

function others(obj, known) {
  const rest = Object.fromEntries(Object.entries(obj || {}).filter(([k]) => !known.includes(k)));
  return Object.keys(rest).length ? rest : null;
}

function schemaTable(t, tableNames) {
  const fields = (t.fields || []).map((f) => ({ ...f, name: f.name }));
  const rest = others(t, TABLE_KNOWN);
  return h("div", { class: "schema-table", "data-table": t.name },
    h("h3", null, t.name, " ", h("span", { class: "muted" }, `primary key ${t.primary_key}`)),
    t.description ? h("p", { class: "muted" }, t.description) : null,
    renderTable(fields, 1, {
      cell: (col, v, row) => {
        if (col === "name") return h("span", null, h("code", null, v), row.name === t.primary_key ? badge("PK", "pk") : null);
        if (col === "ref" && v) return h("span", null, badge("FK", "fk"), " → ", tableNames.has(v) ? h("a", { href: `#table-${v}` }, v) : v);
        return null;
      },
    }),
    rest ? kv(Object.entries(rest).map(([k, v]) => [k, renderValue(v, 1)])) : null);
}

function toolCard(slot, tool) {
  const s = tool.spec || {};
  const rest = others(s, TOOL_KNOWN);
  // The card's body is built when it is first opened: a paper-sized domain has 60-80 tools.
  const card = h("details", { class: ["tool", "status-" + tool.status], "data-tool": tool.name },
    h("summary", null, h("code", null, tool.name), " ", badge(tool.status, tool.status),
      s.mutates ? badge("writes", "writes") : badge("reads", "reads"),
      h("span", { class: "muted" }, ` ${tool.code_versions} code version${tool.code_versions === 1 ? "" : "s"}, ${tool.rounds} repair round${tool.rounds === 1 ? "" : "s"}`),
      " ", link(`/tools/${enc(slot)}/${enc(tool.name)}`, "audit →")));
  card.addEventListener("toggle", () => {
    if (card.open && !card.dataset.built) {
      card.dataset.built = "1";
      card.append(...toolBody(s, tool, rest).filter(Boolean));
    }
  });
  return card;
}

function toolBody(s, tool, rest) {
  return [
    s.description ? h("p", null, s.description) : null,
    tool.reasons && tool.reasons.length ? h("div", { class: "error-message" }, "rejected: ", renderValue(tool.reasons)) : null,
    kv([
      ["parameters", s.params && s.params.length ? renderTable(s.params, 1) : renderValue([])],
      ["returns" + (s.returns_list ? " (a list of)" : ""), s.returns && s.returns.length ? renderTable(s.returns, 1) : renderValue([])],
      ["reads", renderValue(s.reads)], ["writes", renderValue(s.writes)],
      ["contract", tool.contract.length ? h("ul", { class: "contract" }, tool.contract.map((c) =>
        h("li", null, badge(c.when, c.when), " ", h("code", null, c.text), c.why ? h("span", { class: "muted" }, " — " + c.why) : null))) : renderValue([])],
      ...Object.entries(rest || {}).map(([k, v]) => [k, renderValue(v, 1)]),
    ])];
}

export async function domainPage(main, slot, query) {
  let last = null;
  const tasksBox = h("div");
  async function loadTasks(offset) {
    const page = await api(`/api/tasks?domain=${encodeURIComponent(slot)}&offset=${offset}`);
    drawTasks(page);
  }
  function drawTasks(page) {
    mount(tasksBox, renderTable(page.items.map((t) => ({
      task: t.task_id, status: t.status, reason: t.reason || null, chain: t.chain, needed: t.needed, distractors: t.distractors, instruction: t.instruction,
    })), 0, { cell: (col, v) => col === "task" ? link(`/tasks/${enc(v)}`, v) : col === "status" ? badge(v, v) : null }),
    pager(page, loadTasks));
  }
  async function draw() {
    const d = await api(`/api/domains/${enc(slot)}`);
    const key = JSON.stringify(d);
    if (key === last) return;
    last = key;
    const spec = d.spec || {};
    const f = d.figures || {};
    const tableNames = new Set((spec.tables || []).map((t) => t.name));
    const kinds = {};
    for (const e of d.edges) kinds[e.kind] = (kinds[e.kind] || 0) + 1;
    drawTasks(d.tasks);
    const rest = others(spec, SPEC_KNOWN);
    mount(main, 
      h("header", { class: "page-head" }, h("h1", null, d.name || d.slot), h("span", { class: "muted mono" }, d.slot), badge(d.status, d.status)),
      spec.description ? h("p", { class: "lead" }, spec.description) : null,
      section("Figures", kv([
        ["tools", `${d.verified.length} verified, ${d.rejected.length} rejected, ${d.tools.length} designed`],
        ["graph", `${d.edges.length} edges (` + Object.entries(kinds).map(([k, n]) => `${n} ${k}`).join(", ") + ")"],
        ["LLM calls", `${fmt.num(d.llm_calls)} (${fmt.num(d.tokens)} tokens)`],
        ["tasks", `${fmt.num(f.tasks)} kept, ${fmt.num(Object.values(f.tasks_discarded || {}).reduce((a, b) => a + b, 0))} discarded, ${fmt.num(f.tasks_pending)} pending`],
        ["episodes", `${fmt.num(f.episodes)} scored, ${fmt.num(f.episodes_running)} running, ${fmt.num(f.served_episodes)} served`],
        ["pass@1 / pass@k", `${fmt.num(f.pass_at_1, 4)} / ${fmt.num(f.pass_at_k, 4)} (k=${f.k})`],
        ["mean turns / tool calls", `${fmt.num(f.mean_turns)} / ${fmt.num(f.mean_tool_calls)}`],
        ["endings", renderValue(f.end_reasons)],
      ])),
      section("Dependency graph", drawGraph({ graph: d.graph, edges: d.edges, tools: d.tools, onOpen: (name) => window.scaleenvUi.go(`/tools/${enc(d.slot)}/${enc(name)}`) })),
      section(`Tools (${d.tools.length})`, h("div", { class: "tools" }, d.tools.map((t) => toolCard(d.slot, t)))),
      section(`Schema (${(spec.tables || []).length} tables)`, h("div", { class: "schema" }, (spec.tables || []).map((t) => h("div", { id: `table-${t.name}` }, schemaTable(t, tableNames))))),
      rest ? section("Other design fields", renderValue(rest)) : null,
      d.design_events.length ? section("Design history", lazyDetails(`${d.design_events.length} design events`, () =>
        h("ol", { class: "events" }, d.design_events.map((e) =>
          h("li", null, h("code", null, `#${e.n}`), " ", badge(e.type, "type"), " ", h("span", { class: "muted" }, e.actor), renderValue(e.fields, 1)))))) : null,
      section("Edges", lazyDetails(`${d.edges.length} edges`, () => renderTable(d.edges, 1))),
      section("Tasks", tasksBox),
    );
  }
  await draw();
  return { refresh: draw };
}
