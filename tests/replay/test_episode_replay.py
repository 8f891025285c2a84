"""`scaleenv replay --episode`: conversation, state and diff at step K; both id forms; stepping."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from scaleenv._replay.projection import fold
from scaleenv._replay.timeline import EpisodeReplay
from scaleenv._store.log import Log

EP = "d00/t000/g0"


def test_last_step_state_equals_the_projection(shop_run: Path) -> None:
    with Log.open(shop_run, readonly=True) as lg:
        replay = EpisodeReplay.load(lg, EP)
        view = replay.at(replay.last_step)
        assert view["state"] == fold(lg.read()).episodes[EP].state
        assert [s["type"] for s in view["conversation"]][:3] == ["episode.message", "episode.message", "episode.tool"]


def test_step_k_shows_conversation_state_and_diff(shop_run: Path, cli) -> None:
    code, out, _ = cli("replay", "--log", shop_run, "--episode", EP, "--step", 9, "--json")
    assert code == 0
    view = json.loads(out)
    assert view["step"] == 9 and len(view["conversation"]) == 9
    last = view["conversation"][-1]
    assert last["tool"] == "cancel_order" and last["ok"] is True
    assert view["state"]["orders"]["ord_0001"]["status"] == "cancelled"
    changed = {(c["table"], c["key"]): c for c in view["diff"]}
    assert set(changed) == {("customers", "c1"), ("orders", "ord_0001")}
    assert changed[("orders", "ord_0001")]["before"]["status"] == "pending"
    marks = {(m["table"], m["key"]): m["mark"] for m in view["marks"]}
    assert marks[("orders", "ord_0002")] == "distractor" and marks[("customers", "c1")] == "needed"
    # The failed call at step 3 changed nothing.
    _, out3, _ = cli("replay", "--log", shop_run, "--episode", EP, "--step", 3, "--json")
    step3 = json.loads(out3)
    assert step3["conversation"][-1]["ok"] is False and step3["diff"] == []


def test_text_output_marks_distractors_and_changes(shop_run: Path, cli) -> None:
    code, out, _ = cli("replay", "--log", shop_run, "--episode", f"episode/{EP}", "--step", 9)
    assert code == 0
    assert "[distractor] ord_0002" in out
    assert "~ orders[ord_0001].status [needed]: 'pending' -> 'cancelled'" in out
    assert "[9] tool cancel_order" in out


def test_unknown_episode_is_bad_input_and_lists_some(shop_run: Path, cli) -> None:
    code, out, err = cli("replay", "--log", shop_run, "--episode", "d09/t999/g0")
    assert code == 2 and out == ""
    assert "d00/t000/g0" in err
    code, _, err = cli("replay", "--log", shop_run, "--episode", EP, "--step", 99)
    assert code == 2 and "--step" in err


def test_llm_calls_shown_on_request(golden_run: Path, cli) -> None:
    with Log.open(golden_run, readonly=True) as lg:
        eid = next(s for s, _ in lg.streams("episode/")).split("/", 1)[1]
    code, out, _ = cli("replay", "--log", golden_run, "--episode", eid, "--step", 1, "--llm-calls", "--json")
    assert code == 0
    first = json.loads(out)["conversation"][0]
    assert first["llm_calls"] and first["llm_calls"][0]["role"] == "user" and "attempt" in first["llm_calls"][0]


def test_interactive_steps_with_piped_commands(shop_run: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "scaleenv", "replay", "--log", str(shop_run), "--episode", EP, "--interactive"],
        input="n\nn\np\ng 9\nbogus\nq\nn\n", capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    shown = [line.split()[2] for line in proc.stdout.splitlines() if line.startswith("-- step ")]
    assert shown == ["0/14.", "1/14.", "2/14.", "1/14.", "9/14."]  # q stops before the last n
    assert "?? 'bogus'" in proc.stdout
