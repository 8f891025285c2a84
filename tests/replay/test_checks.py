"""`replay --verify` and `rerun` record what they found in the log (`check/verify`, `check/rerun`):
at the right stream position, as a fold, under the writer lock, never changing the run digest,
and not at all with --no-record."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import trio

from scaleenv._replay.checks import CheckReport, append_check, read_findings
from scaleenv._replay.projection import fold
from scaleenv._store.events.checks import CheckFinished, StreamDiverged
from scaleenv._store.events.episodes import MessageSent, ToolExecuted
from scaleenv._store.log import Log
from scaleenv._store.record import CHECK_STREAMS, Record, run_digest
from scaleenv._streams import CHECK
from tests.replay.shoplog import tamper
from tests.conftest import copy_log as copy_dir, roll_out


def _digest(path: Path) -> tuple[str, int]:
    with Log.open(path, readonly=True) as lg:
        return run_digest(fold(lg.read()).stream_digests()), lg.last_seq()


def _tampered_shop(shop_run: Path, dest: Path) -> Record:
    return tamper(shop_run, dest, lambda r: isinstance(r.event, ToolExecuted) and r.event.tool == "list_customer_orders",
                   result=[])


def test_verify_records_the_first_divergence_and_the_run_digest_stays(shop_run: Path, tmp_path: Path, cli) -> None:
    dest = tmp_path / "tampered.lmdb"
    target = _tampered_shop(shop_run, dest)
    digest, seq = _digest(dest)
    code, out, _ = cli("replay", "--log", dest, "--verify", "--json")
    got = json.loads(out)
    assert code == 1 and got["divergences"] == 1 and got["recorded"] is True
    with Log.open(dest, readonly=True) as lg:
        records = list(lg.read_stream("check/verify"))
        findings = read_findings(lg)
    assert [type(r.event) for r in records] == [StreamDiverged, CheckFinished]
    finding = findings.for_stream(target.stream)
    assert [(f.checker, f.event.stream, f.event.n, f.event.kind) for f in finding] == [
        ("verify", target.stream, target.n, "episode")]
    [diff] = finding[0].event.differences
    assert diff.field == "result" and diff.expected == [] and diff.got[0]["order_id"] == "ord_0001"
    assert findings.finished["verify"].divergences == 1 and findings.finished["verify"].checked == got["checked"]
    # the check is about the run, not part of it: the run digest is the same, seq moved
    after, after_seq = _digest(dest)
    assert after == digest and after_seq == seq + 2
    code, out, _ = cli("diff", dest, shop_run, "--json")
    d = json.loads(out)  # the tampered record differs from the original, nothing else (no check/ stream)
    assert code == 1 and [x["stream"] for x in d["differences"]] == [target.stream] and d["streams_only_in_a"] == []


def test_no_record_only_reads(shop_run: Path, tmp_path: Path, cli) -> None:
    dest = tmp_path / "tampered.lmdb"
    _tampered_shop(shop_run, dest)
    _, seq = _digest(dest)
    code, out, _ = cli("replay", "--log", dest, "--verify", "--no-record", "--json")
    assert code == 1 and json.loads(out)["recorded"] is False
    assert _digest(dest)[1] == seq


def test_a_later_check_replaces_the_findings_of_the_one_before(shop_run: Path, tmp_path: Path, cli) -> None:
    dest = tmp_path / "tampered.lmdb"
    target = _tampered_shop(shop_run, dest)
    assert cli("replay", "--log", dest, "--verify", "--json")[0] == 1
    with Log.open(dest) as lg:  # the same checker again, finding nothing (as after a fix)
        n = trio.run(append_check, lg, CheckReport(checker="verify", divergences=[], streams=3, checked=8))
        findings = read_findings(lg)
    assert n == 2 and findings.for_stream(target.stream) == []
    assert findings.finished["verify"].divergences == 0


def test_a_locked_log_is_left_as_it_is_and_the_findings_still_print(shop_run: Path, tmp_path: Path) -> None:
    dest = tmp_path / "tampered.lmdb"
    _tampered_shop(shop_run, dest)
    _, seq = _digest(dest)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from scaleenv._store.log import Log\n"
         f"lg = Log.open({str(dest)!r})\nprint('held', flush=True)\nsys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        out = subprocess.run([sys.executable, "-m", "scaleenv", "replay", "--log", str(dest), "--verify", "--json"],
                             capture_output=True, text=True, timeout=600)
    finally:
        holder.communicate("", timeout=120)
    got = json.loads(out.stdout.splitlines()[-1])
    assert out.returncode == 1 and got["divergences"] == 1 and got["recorded"] is False
    assert "the findings were not recorded" in out.stderr
    assert _digest(dest)[1] == seq


def test_rerun_records_where_an_agent_diverged(template: Path, tmp_path: Path, cli) -> None:
    """A policy message edited in the log: the re-run policy says what its recorded model
    output says, so rerun finds the episode diverging at that message."""
    src = roll_out(copy_dir(template, tmp_path / "run"), 1)
    dest = tmp_path / "tampered.lmdb"
    target = tamper(src, dest, lambda r: isinstance(r.event, MessageSent) and r.event.role == "assistant"
                     and bool(r.event.content), content="tampered")
    digest, _ = _digest(dest)
    code, out, _ = cli("rerun", "--log", dest, "--quiet", "--json")
    got = json.loads(out)
    assert code == 1 and got["recorded"] is True and got["streams_not_rerun"] == []
    assert [(d["stream"], d["n"]) for d in got["first"]] == [(target.stream, target.n)]
    with Log.open(dest, readonly=True) as lg:
        [finding] = read_findings(lg).for_stream(target.stream)
    assert (finding.checker, finding.event.n, finding.event.kind, finding.event.where) == (
        "rerun", target.n, "event", "episode.message")
    [diff] = finding.event.differences
    assert diff.field == "event.content" and diff.expected == "tampered" and diff.got != "tampered"
    assert _digest(dest)[0] == digest
    # a second rerun sees the same divergence and no unknown stream (check/rerun is not re-run)
    code, out, _ = cli("rerun", "--log", dest, "--quiet", "--json", "--no-record")
    assert code == 1 and json.loads(out)["streams_not_rerun"] == []


def test_the_check_prefix_is_one() -> None:
    assert CHECK == CHECK_STREAMS
