"""How the simulated users of a run's episodes turned their agents down: corrections and
refusals per episode, with the episodes' turns, tool calls, user messages and pass@1.

    .venv/bin/python bench/user_reasons.py RUN.lmdb [--json]

Counts ``MessageSent.reason`` of the user's turns ("correct", "refuse_info",
"refuse_action"). A log written before the field existed has none; for it (and beside
the field in any log) ``text_*`` counts the sim user's own wording of the same turns
(its "I don't know that" refusals predate the field). A figure script, not a benchmark:
it reads the log once and prints means per episode.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scaleenv._store.events.episodes import EpisodeEnded, MessageSent, RewardGiven  # noqa: E402
from scaleenv._store.log import Log  # noqa: E402

TEXT = {
    "correct": re.compile(r"^(No, that's not the right one:|No, not that one\. To be clear,|No, that's wrong:)"),
    "refuse_info": re.compile(r"^(I'd rather not share|I won't give out|I don't have an internal|I don't have any internal|"
                              r"I don't know that, sorry|I'm afraid I don't have that|I don't have that\.)"),
    "refuse_action": re.compile(r"^(No, please don't|No thanks, I only want what I asked for)"),
}


def figures(path: str) -> dict[str, object]:
    per: dict[str, Counter[str]] = defaultdict(Counter)
    ended: dict[str, EpisodeEnded] = {}
    reward: dict[str, float] = {}
    with Log.open(path, readonly=True) as lg:
        for r in lg.read():
            if not r.stream.startswith("episode/"):
                continue
            e = r.event
            c = per[r.stream]
            if isinstance(e, MessageSent) and e.role == "user":
                c["user_messages"] += 1
                reason = getattr(e, "reason", "")
                if reason:
                    c[reason] += 1
                for name, pat in TEXT.items():
                    if pat.match(e.content):
                        c["text_" + name] += 1
            elif isinstance(e, EpisodeEnded):
                ended[r.stream] = e
            elif isinstance(e, RewardGiven):
                reward[r.stream] = e.reward
    eps = sorted(ended)
    n = len(eps) or 1
    out: dict[str, object] = {"log": path, "episodes": len(eps)}
    keys = ["correct", "refuse_info", "refuse_action", "text_correct", "text_refuse_info", "text_refuse_action",
            "user_messages"]
    for k in keys:
        out[f"{k}_per_episode"] = round(sum(per[s][k] for s in eps) / n, 3)
    out["episodes_with_a_correction"] = sum(1 for s in eps if per[s]["correct"])
    out["mean_turns"] = round(sum(ended[s].turns for s in eps) / n, 2)
    out["mean_tool_calls"] = round(sum(ended[s].tool_calls for s in eps) / n, 2)
    out["pass_at_1"] = round(sum(reward.get(s, 0.0) for s in eps) / n, 3)
    out["pass_at_1_with_a_correction"] = round(
        sum(reward.get(s, 0.0) for s in eps if per[s]["correct"]) / max(1, out["episodes_with_a_correction"]), 3)
    out["end_reasons"] = dict(Counter(f"{ended[s].reason}/{ended[s].fault}" for s in eps))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("log")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if not Path(args.log).exists():
        print(f"user_reasons: no log at {args.log}", file=sys.stderr)
        return 2
    out = figures(args.log)
    if args.json:
        print(json.dumps(out, sort_keys=True))
    else:
        for k, v in out.items():
            print(f"{k:36} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
