// The task page: instruction, user facts, the golden chain as a program and as executed,
// the initial state with distractors marked, the expected final state, the task's events
// and its episodes. Fields of the task view this page does not know (goals, expanded tools,
// ...) are shown generically under "Other fields".
import { h, clear, mount, link, fmt, badge, section, kv, renderValue, renderState, markMap, details, pager } from "./dom.js";
import { api, enc } from "./net.js";
import { episodeTable } from "./rows.js";

const KNOWN = ["task_id", "slot", "domain", "status", "reason", "detail", "chain", "instruction", "user_facts", "persona",
  "steps", "golden", "initial_state", "expected_final", "needed", "distractors"];

function argText(args) {
  return Object.entries(args || {}).map(([k, v]) => `${k}=${typeof v === "string" && v.startsWith("@") ? v : JSON.stringify(v)}`).join(", ");
}

function deltaLine(c) {
  const [table, key, before, after] = Array.isArray(c) ? c : [c.table, c.key, c.before, c.after];
  if (before === null) return h("li", { class: "d-add" }, `+ ${table}[${key}] created`);
  if (after === null) return h("li", { class: "d-del" }, `- ${table}[${key}] deleted`);
  const fields = Object.keys({ ...before, ...after }).filter((f) => JSON.stringify(before[f]) !== JSON.stringify(after[f]));
  return h("li", { class: "d-mod" }, `~ ${table}[${key}]: ` + fields.map((f) => `${f} ${JSON.stringify(before[f])} → ${JSON.stringify(after[f])}`).join("; "));
}

export async function taskPage(main, taskId, query) {
  let last = null;
  const episodesBox = h("div");
  function drawEpisodes(page) { mount(episodesBox, episodeTable(page), pager(page, loadEpisodes)); }
  async function loadEpisodes(offset) { drawEpisodes(await api(`/api/episodes?task=${encodeURIComponent(taskId)}&offset=${offset}`)); }
  async function draw() {
    const t = await api(`/api/tasks/${enc(taskId)}`);
    const key = JSON.stringify(t);
    if (key === last) return;
    last = key;
    const v = t.view;
    const slot = t.slot;
    const marks = markMap(t.marks);
    const changed = new Set(t.changed.map(([tb, k]) => tb + "\u0000" + k));
    const golden = v.golden || { steps: [], expected_answers: [] };
    const rest = Object.fromEntries(Object.entries(v).filter(([k]) => !KNOWN.includes(k)));
    const absent = v.initial_state ? v.distractors.filter(([tb, k]) => !((v.initial_state[tb] || {})[k])) : [];
    drawEpisodes(t.episodes);
    mount(main, 
      h("header", { class: "page-head" }, h("h1", null, `Task ${t.task_id}`), h("span", { class: "muted" }, "in ", link(`/domains/${enc(slot)}`, v.domain || slot)),
        badge(v.status, v.status), v.reason ? h("span", { class: "error-message" }, `${v.reason}${v.detail ? ": " + v.detail : ""}`) : null),
      section("Instruction", h("blockquote", { class: "instruction" }, v.instruction || h("span", { class: "muted" }, "(not written yet)")),
        kv([["persona", v.persona ? v.persona : renderValue(null)], ["user facts", renderValue(v.user_facts)],
          ["answers the agent must give", renderValue(golden.expected_answers)]])),
      Object.keys(rest).length ? section("Other fields", renderValue(rest)) : null,
      section("Golden chain", h("div", { class: "chips" }, (v.chain || []).map((n) => link(`/tools/${enc(slot)}/${enc(n)}`, h("span", { class: "chip tool-chip" }, n)))),
        h("h3", null, "Program (outputs feed inputs: @K.field is step K's output)"),
        h("pre", { class: "code program" }, (v.steps || []).map((s, i) => `${i}: ${s.tool}(${argText(s.args)})\n`)),
        h("h3", null, `Executed (${golden.steps.length} steps; final state digest ${golden.final_digest || "—"})`),
        h("ol", { class: "golden", start: 0 }, golden.steps.map((s) => h("li", null,
          h("code", null, `${s.tool}(${argText(s.args)})`), h("div", { class: "label" }, "result"), renderValue(s.result, 1),
          s.delta.length ? h("ul", { class: "delta" }, s.delta.map(deltaLine)) : h("div", { class: "muted" }, "changed nothing"))))),
      section(`Initial state (${fmt.num(v.needed.length)} needed records, ${fmt.num(v.distractors.length)} distractors marked)`,
        absent.length ? h("p", { class: "error-message absent-distractors" },
          `${absent.length} of the ${v.distractors.length} distractors task.instantiated lists are not in the initial state: `,
          absent.map(([tb, k]) => `${tb}[${k}]`).join(", ")) : null,
        renderState(v.initial_state, { marks, emptyText: "not instantiated yet" })),
      section("Expected final state (records the golden chain changed are marked)",
        renderState(v.expected_final, { marks, changed, emptyText: "the golden chain has not run yet" })),
      section(`Events of the task stream (${t.events.length}, plus ${t.llm_calls} LLM calls)`, h("ol", { class: "events" }, t.events.map((e) =>
        h("li", null, h("code", null, `#${e.n}`), " ", badge(e.type, "type"), " ", h("span", { class: "muted" }, e.actor),
          Object.keys(e.fields).length ? details(`${Object.keys(e.fields).length} more field(s)`, renderValue(e.fields, 1)) : null)))),
      section(`Episodes (${fmt.num(t.episodes.total)}; ${fmt.num(t.episodes.scored)} scored, mean reward ${fmt.num(t.episodes.mean_reward, 4)})`, episodesBox),
    );
  }
  await draw();
  return { refresh: draw };
}
