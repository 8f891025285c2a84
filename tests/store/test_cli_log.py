"""``scaleenv log info|dump|tail|check`` on real logs (the real event types)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import lmdb

from scaleenv._cli import main
from scaleenv._store import Log
from scaleenv._store.events.llm import LlmExhausted
from scaleenv._store.log import LOG_FORMAT_VERSION, seq_key


async def _make(path) -> None:
    with Log.open(path) as log:
        log.meta_set("seed", 7)
        async with log.writer() as w:
            await w.append([(f"tool/retail.t{i % 2}", i // 2, None, "coder",
                             LlmExhausted(role="coder", attempts=3, last_error=f"e{i}"))
                            for i in range(6)])
            await w.append([("episode/1", 0, None, "policy",
                             LlmExhausted(role="policy", attempts=1, last_error="x"))])


async def test_info_dump_check(tmp_path, capsys) -> None:
    p = tmp_path / "run.lmdb"
    await _make(p)
    assert main(["log", "info", "--log", str(p), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["last_seq"] == 7 and info["events"] == 7 and info["streams"] == 3
    assert info["events_by_type"] == {"llm.exhausted": 7}
    assert info["events_by_stream_prefix"] == {"episode": 1, "tool": 6}
    assert info["format"]["format"] == LOG_FORMAT_VERSION and info["config"] == {"seed": 7}

    assert main(["log", "dump", "--log", str(p), "--json", "--stream", "tool/retail.t1"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["n"] for x in lines] == [0, 1, 2]
    assert lines[0]["type"] == "llm.exhausted" and lines[0]["event"]["last_error"] == "e1"
    assert main(["log", "dump", "--log", str(p), "--from", "6"]) == 0
    assert [json.loads(x)["seq"] for x in capsys.readouterr().out.splitlines()] == [6, 7]

    assert main(["log", "check", "--log", str(p), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"ok": True, "last_seq": 7, "damaged": []}

    env = lmdb.open(str(p), max_dbs=8)
    with env.begin(write=True) as txn:
        db = env.open_db(b"events", txn=txn)
        txn.put(seq_key(2), b"SE\x01junkjunk", db=db)
        txn.put(seq_key(5), b"nope", db=db)
    env.close()
    assert main(["log", "check", "--log", str(p), "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert [d["seq"] for d in out["damaged"]] == [2, 5]
    assert main(["log", "check", "--log", str(p)]) == 1
    assert "seq 2:" in capsys.readouterr().out


def test_bad_input_is_exit_2(tmp_path, capsys) -> None:
    assert main(["log", "info", "--log", str(tmp_path / "none")]) == 2
    assert "not a scaleenv log" in capsys.readouterr().err
    (tmp_path / "x").mkdir()
    assert main(["log", "check", "--log", str(tmp_path / "x")]) == 2


async def test_tail_follows_and_stops_on_ctrl_c(tmp_path) -> None:
    p = tmp_path / "run.lmdb"
    await _make(p)
    scaleenv = [sys.executable, "-c", "import sys; from scaleenv._cli import main; sys.exit(main())"]
    with subprocess.Popen([*scaleenv, "log", "tail", "--log", str(p), "--from", "1", "--poll", "0.02"],
                          stdout=subprocess.PIPE, text=True) as child:
        try:
            seqs = [json.loads(child.stdout.readline())["seq"] for _ in range(7)]
            assert seqs == list(range(1, 8))
            time.sleep(0.1)
            child.send_signal(signal.SIGINT)
            assert child.wait(timeout=60) == 0
        finally:
            child.kill()  # a child that did not stop must not hang the suite in Popen.__exit__


async def test_check_prints_a_run_of_missing_seqs_once(tmp_path, capsys) -> None:
    p = tmp_path / "run.lmdb"
    await _make(p)
    env = lmdb.open(str(p), max_dbs=8)
    with env.begin(write=True) as txn:
        db = env.open_db(b"events", txn=txn)
        for seq in (2, 3, 4):
            txn.delete(seq_key(seq), db=db)
    env.close()
    assert main(["log", "check", "--log", str(p), "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert [(d["seq"], d.get("through")) for d in out["damaged"]] == [(2, 4)]
    assert main(["log", "check", "--log", str(p)]) == 1
    assert "seq 2: missing: seqs 2..4, 3 records" in capsys.readouterr().out
