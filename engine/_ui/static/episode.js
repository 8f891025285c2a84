// The episode replay page: the conversation step by step, with the environment's state and
// what changed at step K (`scaleenv replay --episode ID --step K`, from replay.timeline),
// and the reward breakdown. /episodes/<id>?step=K is the URL of step K.
import { h, clear, mount, link, fmt, badge, section, kv, renderValue, renderState, markMap, details, pre } from "./dom.js";
import { api, enc } from "./net.js";

const CHECKERS = { verify: "replay --verify", rerun: "rerun" };

// Where a recorded check (`scaleenv replay --verify`, `scaleenv rerun`) found this episode
// diverging: "diverged at step K: expected X, got Y", linking to step K's anchor.
function divergenceView(episodeId, d) {
  const diffs = d.differences.length ? d.differences : [{ field: d.kind, expected: null, got: null }];
  return h("div", { class: "divergence", "data-checker": d.checker, "data-step": d.step },
    h("div", { class: "divergence-head" }, badge(CHECKERS[d.checker] || d.checker, "rejected"), " diverged at ",
      link(`/episodes/${enc(episodeId)}?step=${d.step}#step-${d.step}`, `step ${d.step}`),
      h("span", { class: "muted" }, ` (#${d.n}, ${d.kind}${d.where ? ", " + d.where : ""}; ${d.check})`)),
    h("ul", { class: "divergence-fields" }, diffs.map((f) => h("li", null, h("code", null, f.field), ": expected ",
      h("span", { class: "expected" }, renderValue(f.expected, 2)), ", got ", h("span", { class: "got" }, renderValue(f.got, 2))))),
    d.detail ? details("the checker's report", pre(d.detail)) : null);
}

function stepView(s, k, go, diverged) {
  const cls = ["step", "t-" + s.type.replace(/\./g, "-"), s.step === k ? "current" : s.step > k ? "future" : null,
    diverged.has(s.step) ? "diverged" : null];
  const calls = (s.llm_calls || []).map((c) => h("span", { class: ["llm", c.ok === false || c.exhausted ? "bad" : null] },
    `${c.role} #${c.n}${c.attempt !== undefined ? " attempt " + c.attempt : ""}${c.exhausted ? " exhausted" : ""}${c.error ? ": " + c.error : ""}`));
  let body;
  if (s.type === "episode.message") {
    body = [h("div", { class: "bubble role-" + s.role }, h("div", { class: "msg-role" }, s.role === "assistant" ? "policy" : s.role),
      s.content ? h("div", { class: "content" }, s.content) : h("div", { class: "muted" }, "(no text)"),
      (s.tool_calls || []).map((c) => h("div", { class: "tool-call" }, "→ ", h("code", null, `${c.name}(${c.arguments})`), h("span", { class: "muted" }, ` ${c.id}`))))];
  } else if (s.type === "episode.tool") {
    body = [h("div", { class: ["tool-result", s.ok ? "ok" : "err"] },
      h("div", null, h("code", null, s.tool), " ", s.ok ? badge("ok", "accepted") : badge(s.error_kind || "error", "rejected"),
        s.delta && s.delta.length ? h("span", { class: "muted" }, ` ${s.delta.length} record(s) changed`) : null),
      h("div", { class: "muted" }, "arguments"), renderValue(s.args, 2),
      s.ok ? [h("div", { class: "muted" }, "result"), renderValue(s.result, 2)] : h("div", { class: "error-message" }, s.error))];
  } else if (s.type === "episode.ended") {
    body = [h("div", { class: "ended" }, `episode ended: ${s.reason} (fault ${s.fault}), ${s.turns} turns, ${s.tool_calls} tool calls`, s.detail ? ": " + s.detail : "")];
  } else if (s.type === "episode.reward") {
    body = [h("div", { class: "reward-line" }, "reward ", h("strong", null, fmt.num(s.reward, 4)), h("span", { class: "muted" }, ` (${s.reward_version})`))];
  } else {
    const rest = Object.fromEntries(Object.entries(s).filter(([key]) => !["step", "n", "type", "actor", "llm_calls"].includes(key)));
    body = [badge(s.type, "type"), renderValue(rest, 2)];
  }
  return h("li", { class: cls, id: `step-${s.step}`, "data-step": s.step, onclick: () => go(s.step) },
    h("div", { class: "step-head" }, h("span", { class: "step-no" }, `step ${s.step}`), h("span", { class: "muted" }, ` ${s.actor} · #${s.n}`), calls.length ? h("span", { class: "llms" }, calls) : null),
    body);
}

function diffList(diff) {
  if (!diff.length) return h("p", { class: "muted" }, "no record changed in this step");
  return h("ul", { class: "delta" }, diff.map((c) => {
    const tag = c.mark ? [" ", badge(c.mark, c.mark)] : null;
    if (c.before === null) return h("li", { class: "d-add" }, `+ ${c.table}[${c.key}] created `, renderValue(c.after, 2), tag);
    if (c.after === null) return h("li", { class: "d-del" }, `- ${c.table}[${c.key}] deleted`, tag);
    const fields = Object.keys({ ...c.before, ...c.after }).filter((f) => JSON.stringify(c.before[f]) !== JSON.stringify(c.after[f]));
    return h("li", { class: "d-mod" }, `~ ${c.table}[${c.key}] `, fields.map((f) => h("span", { class: "field-change" },
      h("code", null, f), `: ${JSON.stringify(c.before[f])} → ${JSON.stringify(c.after[f])} `)), tag);
  }));
}

function rewardView(rewards) {
  if (!rewards.length) return h("p", { class: "muted" }, "not scored yet");
  return h("div", null, rewards.map((r, i) => h("div", { class: ["reward", i < rewards.length - 1 ? "superseded" : null] },
    h("div", { class: "reward-line" }, "reward ", h("strong", { class: r.reward >= 1 ? "good" : r.reward <= 0 ? "bad" : null }, fmt.num(r.reward, 4)),
      h("span", { class: "muted" }, ` ${r.reward_version}${i < rewards.length - 1 ? " (superseded by a regrade)" : ""}`)),
    kv(Object.entries(r.breakdown).map(([k, v]) => [k, h("span", null, fmt.num(v, 4), " ", h("span", { class: "bar-inline" }, h("span", { style: `width:${Math.max(0, Math.min(1, v)) * 100}%` })))])),
    r.diff.length ? details(`${r.diff.length} difference(s) from the expected final state`, h("ul", { class: "reward-diff" }, r.diff.map((d) => h("li", null, d)))) : h("p", { class: "muted" }, "final state as expected"))));
}

let active = null;  // the episode page on screen, for the arrow keys
document.addEventListener("keydown", (ev) => {
  if (!active || active.path !== location.pathname || ["INPUT", "SELECT", "TEXTAREA"].includes(ev.target.tagName)) return;
  if (ev.key === "ArrowRight") active.go(1);
  if (ev.key === "ArrowLeft") active.go(-1);
});

export async function episodePage(main, episodeId, query) {
  let k = query.get("step");
  let last = null;
  let data = null;
  const go = async (step) => {
    k = String(Math.max(0, Math.min(data ? data.steps : step, step)));
    await draw(false, true);
    history.replaceState(null, "", `/episodes/${enc(episodeId)}?step=${k}`);  // once step K is on screen
  };
  active = { path: location.pathname, go: (delta) => data && go(data.step + delta) };
  async function draw(following = false, stepped = false) {
    const wasLast = data && data.step === data.steps;
    const d = await api(`/api/episodes/${enc(episodeId)}` + (k !== null && !(following && wasLast) ? `?step=${encodeURIComponent(k)}` : ""));
    if (following && wasLast && k !== null && d.step !== Number(k)) {  // at the end of a live episode: follow it
      k = String(d.step);
      history.replaceState(null, "", `/episodes/${enc(episodeId)}?step=${k}`);
    }
    const key = JSON.stringify(d);
    if (key === last) return;
    last = key;
    data = d;
    const s = d.summary;
    const marks = markMap(d.marks);
    const changed = new Set(d.diff.map((c) => c.table + "\u0000" + c.key));
    const btn = (label, to, disabled, cls) => h("button", { class: ["btn", cls], disabled: disabled || null, onclick: () => go(to) }, label);
    const ended = s.ended;
    const diverged = new Set((d.divergences || []).map((v) => v.step));
    mount(main, h("div", { class: "episode" },
      h("header", { class: "page-head" }, h("h1", null, `Episode ${d.episode}`),
        h("span", { class: "muted" }, "task ", d.task_id ? link(`/tasks/${enc(d.task_id)}`, d.task_id) : "?", " · ",
          link(`/domains/${enc(d.task_id ? d.task_id.split("/")[0] : "")}`, d.domain || "?"), ` · attempt ${d.attempt} · seed ${s.seed}`),
        ended ? badge(`${ended.reason}/${ended.fault}`, ended.fault === "none" ? "accepted" : "rejected") : badge("running", "running"),
        s.rewards.length ? badge(`reward ${fmt.num(s.rewards[s.rewards.length - 1].reward, 4)}`, s.rewards[s.rewards.length - 1].reward >= 1 ? "accepted" : "rejected") : null),
      d.task ? details(`instruction: ${d.task.instruction.slice(0, 140)}${d.task.instruction.length > 140 ? "…" : ""}`,
        h("blockquote", { class: "instruction" }, d.task.instruction), kv([["user facts", renderValue(d.task.user_facts)]]),
        details("system prompt of the policy", pre(s.system_prompt))) : null,
      (d.divergences || []).length ? h("section", { class: "divergences" }, d.divergences.map((v) => divergenceView(episodeId, v))) : null,
      h("div", { class: "stepper" },
        btn("« start", 0, d.step === 0, "first"), btn("‹ prev", d.step - 1, d.step === 0, "prev"),
        h("input", { type: "range", min: 0, max: d.steps, value: d.step, class: "slider", "aria-label": "step",
          onchange: (ev) => go(Number(ev.target.value)) }),
        h("span", { class: "step-label" }, `step ${d.step} of ${d.steps}`),
        btn("next ›", d.step + 1, d.step >= d.steps, "next"), btn("end »", d.steps, d.step >= d.steps, "last"),
        h("span", { class: "muted" }, ` ${d.events_touched} events folded` + (d.snapshot_n !== null ? ` from the snapshot at #${d.snapshot_n}` : ""))),
      h("div", { class: "replay" },
        h("div", { class: "conversation" }, h("h2", null, "Conversation"),
          h("ol", { class: "steps" }, h("li", { class: ["step", "start", d.step === 0 ? "current" : null, diverged.has(0) ? "diverged" : null], id: "step-0", "data-step": 0, onclick: () => go(0) },
            h("div", { class: "step-head" }, h("span", { class: "step-no" }, "step 0"), h("span", { class: "muted" }, " the task's initial state"))),
          d.timeline.map((st) => stepView(st, d.step, go, diverged)))),
        h("div", { class: "state-pane" },
          h("h2", null, `State at step ${d.step}`),
          h("h3", null, d.step ? `What step ${d.step} changed` : "Step 0: the initial state"), d.step ? diffList(d.diff) : null,
          renderState(d.state, { marks, changed }),
          h("h2", null, "Reward"), rewardView(s.rewards),
          h("h2", null, "Counts"), kv([["turns", fmt.num(s.turns)], ["tool calls", fmt.num(s.tool_calls)], ["environment failures", fmt.num(s.env_failures)], ["events", fmt.num(s.events)]]))),
    ));
    const cur = main.querySelector(".step.current");
    if (cur && stepped) cur.scrollIntoView({ block: "nearest" });
  }
  await draw();
  const anchored = /^#step-\d+$/.test(location.hash) && document.getElementById(location.hash.slice(1));
  if (anchored) anchored.scrollIntoView({ block: "center" });  // a link to a step (a divergence's)
  return { refresh: () => draw(true) };
}
