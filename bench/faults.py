"""Fault trials on the whole engine: SIGKILL mid-run then resume, sandbox workers killed
mid-run, a full disk. Prints one row per fault: trials, survived, events lost (must be 0),
resumed with a digest identical to an uninterrupted run.

Usage: .venv/bin/python bench/faults.py [--trials N] [--seed S] [--json]
(--trials: SIGKILL trials, each killing the run 1-3 times, every kill placed at an event
count drawn from the seed (a stage drawn uniformly, then a seq in it past what the log
holds; inside the writer's transaction or just after its commit), so every planned kill
lands whatever the load; the other faults run max(1, N // 10) trials each.) Each row gives its counts (trials, survived, events lost, resumed to the
uninterrupted digest, SIGKILLs sent) and its wall seconds; the reference run's wall time
is the baseline a trial's cost compares with.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.faults.disk import can_mount_tmpfs, disk_full_trial  # noqa: E402
from tests.faults.runs import SMALL, kill_trial, reference  # noqa: E402
from tests.faults.workerkill import worker_kill_trial  # noqa: E402


def row(fault: str, trials: int, survived: int, lost: int, identical: int | None, note: str = "", *,
        kills: int | None = None, seconds: float = 0.0) -> dict[str, Any]:
    return {"fault": fault, "trials": trials, "survived": survived, "events_lost": lost,
            "resumed_identical": identical, "kills": kills, "seconds": round(seconds, 1), "note": note}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=30, help="SIGKILL-and-resume trials (default 30)")
    ap.add_argument("--seed", type=int, default=3, help="run seed of the trials (default 3)")
    ap.add_argument("--json", action="store_true", help="print one JSON object on the last line")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    config = SMALL
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="scaleenv-faults-") as tmp:
        work = Path(tmp)
        ref = reference(work, args.seed, config)
        print(f"reference: {ref.events} events, digest {ref.digest[:16]}..., {ref.wall_s:.1f} s, "
              f"{ref.disk_kib} KiB on disk", file=sys.stderr)
        survived = lost = identical = kills = landed = 0
        stages: dict[str, int] = {}
        phases: dict[str, int] = {}
        started = time.monotonic()
        for i in range(args.trials):
            t0 = time.monotonic()
            t = kill_trial(work, args.seed, config, ref, rng)
            kills += len(t.kills)
            landed += t.landed
            survived += t.survived(ref)
            lost += t.events_lost
            identical += t.identical(ref)
            for s in t.stages:
                stages[s] = stages.get(s, 0) + 1
            for k in t.kills:
                phases[k.phase] = phases.get(k.phase, 0) + 1
            print(f"  kill {i}: at={[(k.at_seq, k.phase, k.last_seq) for k in t.kills]} stages={t.stages} "
                  f"survived={t.survived(ref)} resume {t.resumed.wall_s:.1f} s, trial {time.monotonic() - t0:.1f} s",
                  file=sys.stderr)
        rows.append(row("sigkill run, resume", args.trials, survived, lost, identical,
                        "kills by stage: " + ", ".join(f"{k}={v}" for k, v in sorted(stages.items()))
                        + "; by phase: " + ", ".join(f"{k}={v}" for k, v in sorted(phases.items()))
                        + f"; {landed} trials with every kill landed where placed",
                        kills=kills, seconds=time.monotonic() - started))
        n_other = max(1, args.trials // 10)
        started = time.monotonic()
        wk = [worker_kill_trial(work, args.seed, config, rng) for _ in range(n_other)]
        rows.append(row("sigkill sandbox workers", n_other, sum(t.survived for t in wk), 0, None,
                        f"crashed calls={sum(t.crashed_calls for t in wk)}, "
                        f"environment-fault episodes={sum(t.environment_faults for t in wk)}",
                        kills=sum(t.kills for t in wk), seconds=time.monotonic() - started))
        if can_mount_tmpfs():
            # Disks too small for the run: fractions of what the finished log takes (a log
            # written in fewer, larger commits takes less, so fixed sizes would go stale).
            sizes = [(max(512, int(ref.disk_kib * rng.choice([0.3, 0.45, 0.6, 0.75]))), 0)
                     for _ in range(n_other)] + [(512, 480)]
            started = time.monotonic()
            df = [disk_full_trial(work, args.seed, config, size, pre) for size, pre in sizes]
            rows.append(row("disk full (tmpfs)", len(df), sum(t.survived(ref) for t in df), 0,
                            sum(t.resumed.digest == ref.digest for t in df),
                            "committed before full: " + ", ".join(str(t.committed) for t in df),
                            seconds=time.monotonic() - started))
        else:
            rows.append(row("disk full (tmpfs)", 0, 0, 0, None, "skipped: cannot mount a tmpfs here"))
    print(f"{'fault':<26} {'trials':>6} {'survived':>8} {'lost':>5} {'identical':>9} {'kills':>6} {'s/trial':>8}  note")
    for r in rows:
        ident = "-" if r["resumed_identical"] is None else str(r["resumed_identical"])
        k = "-" if r["kills"] is None else str(r["kills"])
        per = f"{r['seconds'] / r['trials']:.1f}" if r["trials"] else "-"
        print(f"{r['fault']:<26} {r['trials']:>6} {r['survived']:>8} {r['events_lost']:>5} {ident:>9} {k:>6} {per:>8}  "
              f"{r['note']}")
    print(f"baseline: the uninterrupted reference run took {ref.wall_s:.1f} s (machine possibly shared)")
    total = {
        "trials": sum(r["trials"] for r in rows),
        "survived": sum(r["survived"] for r in rows),
        "events_lost": sum(r["events_lost"] for r in rows),
        "resumed_identical": sum(r["resumed_identical"] or 0 for r in rows),
        "trials_asked": args.trials,
        "baseline": {"reference_digest": ref.digest, "reference_events": ref.events, "config": list(config),
                     "seed": args.seed, "reference_seconds": round(ref.wall_s, 1)},
        "faults": rows,
    }
    if args.json:
        print(json.dumps(total))
    return 0 if total["survived"] == total["trials"] and total["events_lost"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
