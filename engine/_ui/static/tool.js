// The tool audit page: how one tool was made, as `scaleenv audit` gives it (replay.audit):
// every prompt and answer, each code version as a diff, reviews, test cases and their
// outcomes, repairs, and the verdict.
import { h, clear, mount, link, fmt, badge, section, kv, renderValue, renderTable, renderDiff, renderCode, details, pre } from "./dom.js";
import { api, enc } from "./net.js";

const SHOWN = ["n", "type", "actor", "cause"];

function messages(list) {
  return h("ol", { class: "messages" }, (list || []).map((m) => h("li", { class: "msg role-" + (m.role || "other") },
    h("div", { class: "msg-role" }, m.role || "?"), renderValue(m.content !== undefined ? m.content : m, 2),
    Object.keys(m).filter((k) => !["role", "content"].includes(k)).length
      ? renderValue(Object.fromEntries(Object.entries(m).filter(([k]) => !["role", "content"].includes(k))), 2) : null)));
}

function entryBody(e, testsByName) {
  switch (e.type) {
    case "llm.called":
      return [
        h("div", { class: "muted" }, `${e.role} via ${e.backend}/${e.model} · attempt ${e.attempt} · tokens ${fmt.num(e.tokens.prompt)} in, ${fmt.num(e.tokens.completion)} out`),
        details(`prompt: ${(e.messages || []).length} message(s)`, messages(e.messages)),
        h("div", { class: "label" }, "answer"), pre(e.raw || ""),
        e.error ? h("div", { class: "error-message" }, "rejected: " + e.error) : null,
      ];
    case "llm.exhausted":
      return [h("div", { class: "error-message" }, `${e.role}: every one of ${e.attempts} attempts was rejected; last: ${e.last_error}`)];
    case "tool.code_proposed":
      return [
        h("div", { class: "muted" }, `round ${e.round} by ${e.author} · digest ${e.code_digest}`),
        e.diff ? renderDiff(e.diff) : renderCode(e.code),
        e.diff ? details("the whole version", renderCode(e.code)) : null,
      ];
    case "tool.code_check_failed":
      return [h("ul", { class: "issues" }, e.issues.map((i) => h("li", { class: "error-message" }, i)))];
    case "tool.review":
      return [e.accepted ? badge("accepted", "accepted") : h("ul", { class: "issues" }, e.objections.map((o) => h("li", null, o)))];
    case "tool.tests_proposed":
      return [renderTable(e.cases.map((c) => ({ ...c, state: details(`${Object.keys(c.state || {}).length} table(s)`, renderValue(c.state, 1)) })), 1, {
        cell: (col, v) => (col === "state" ? v : col === "expect" ? badge(v, v === "ok" ? "accepted" : "rejected") : null),
      })];
    case "tool.tests_run":
      return [
        h("div", null, `round ${e.round}: `, badge(`${e.passed} passed`, "accepted"), " ", e.failed ? badge(`${e.failed} failed`, "rejected") : null,
          h("span", { class: "muted" }, ` · code ${e.code_digest}`)),
        renderTable(e.results.map((r) => ({ case: r.name, passed: r.passed, outcome: r.outcome, failure: r.failure || null, message: r.message || null,
          args: testsByName.get(r.name) ? testsByName.get(r.name).args : null, traceback: r.traceback || null })), 1, {
          cell: (col, v, row) => col === "passed" ? badge(v ? "passed" : "failed", v ? "accepted" : "rejected")
            : col === "traceback" && v ? details("traceback", pre(v)) : null,
          hide: [],
        }),
      ];
    case "tool.accepted":
    case "tool.rejected":
      return [];
    default: {
      const rest = Object.fromEntries(Object.entries(e).filter(([k]) => !SHOWN.includes(k)));
      return [renderValue(rest, 1)];
    }
  }
}

export async function toolPage(main, slot, tool) {
  let last = null;
  async function draw() {
    const a = await api(`/api/tools/${enc(slot)}/${enc(tool)}`);
    const key = JSON.stringify(a);
    if (key === last) return;
    last = key;
    const s = a.spec || {};
    const testsByName = new Map();
    for (const e of a.history) if (e.type === "tool.tests_proposed") for (const c of e.cases) testsByName.set(c.name, c);
    const counts = {};
    for (const e of a.history) counts[e.type] = (counts[e.type] || 0) + 1;
    const v = a.verdict || {};
    mount(main, 
      h("header", { class: "page-head" }, h("h1", null, a.tool), h("span", { class: "muted" }, "in ", link(`/domains/${enc(a.slot)}`, a.domain || a.slot)),
        badge(v.status, v.status), h("span", { class: "muted mono" }, a.stream)),
      s.description ? h("p", { class: "lead" }, s.description) : null,
      section("Verdict", kv(Object.entries(v).map(([k, x]) => [k, renderValue(x)]))),
      section("Contract", a.contract.length ? renderTable(a.contract.map((c) => ({ when: c.when, condition: c.condition,
        "test cases": c.cases.length ? c.cases : (c.when === "post" ? "checked after every successful call" : "no case") })), 0, {
        cell: (col, x) => col === "condition" ? h("code", null, x) : col === "when" ? badge(x, x) : null }) : h("p", { class: "muted" }, "no conditions")),
      s.params ? section("Specification", renderValue(s)) : null,
      section(`Timeline (${a.history.length} events)`,
        h("p", { class: "muted" }, Object.entries(counts).map(([k, n]) => `${n} ${k}`).join(" · ")),
        h("ol", { class: "timeline" }, a.history.map((e) => h("li", { class: ["entry", "t-" + e.type.replace(/\./g, "-")], "data-type": e.type, id: `n${e.n}` },
          h("div", { class: "entry-head" }, h("code", null, `#${e.n}`), " ", badge(e.type, "type"), " ", h("span", null, "by ", e.actor),
            e.cause ? h("span", { class: "muted" }, ` · after ${e.cause}`) : null),
          entryBody(e, testsByName))))),
      section("Graph edges", a.graph_edges.length ? renderTable(a.graph_edges, 0, {
        cell: (col, x) => (col === "src" || col === "dst") && x !== a.tool ? link(`/tools/${enc(a.slot)}/${enc(x)}`, x) : null,
      }) : h("p", { class: "muted" }, "no edge (the tool was not verified, or nothing it does feeds another tool)")),
    );
  }
  await draw();
  return { refresh: draw };
}
