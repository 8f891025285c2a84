// Tables of list rows shared by several pages.
import { h, link, fmt, badge, renderTable } from "./dom.js";
import { enc } from "./net.js";

export function episodeTable(page) {
  return renderTable(page.items.map((e) => ({
    episode: e.episode_id, task: e.task_id, status: e.status, ending: e.ending, turns: e.turns, "tool calls": e.tool_calls,
    reward: e.reward, events: e.events, started: fmt.time(e.started_ns),
  })), 0, { cell: (col, v) => col === "episode" ? link(`/episodes/${enc(v)}`, v) : col === "task" ? link(`/tasks/${enc(v)}`, v)
    : col === "status" ? badge(v, v) : col === "reward" && v !== null ? h("span", { class: v >= 1 ? "good" : v <= 0 ? "bad" : null }, fmt.num(v, 4)) : null });
}
