"""Stage 1 over shard workers (in-process, no Ray): whole domains per worker, the same streams and digest as one machine.

Also the worker's own edge: a :class:`ShardWorker` closed while its ``start`` still loads
what it was shipped (the driver interrupted meanwhile) must not start an engine.
"""

from __future__ import annotations

import threading
from pathlib import Path

import msgspec
import trio

from scaleenv._distributed import context_chunks, distributed_domains, distributed_tasks, plan
from scaleenv._runner import project, summary
from scaleenv._shard_worker import ShardJob, ShardWorker
from scaleenv._shards import shards_dir
from scaleenv._store.log import Log
from scaleenv._streams import DOMAIN, TOOL, slot_id

from .conftest import CONFIG, OPTIONS, Base, bounded, stream_digests


def run_digest(path: Path) -> str:
    with Log.open(path, readonly=True) as log:
        return summary(project(log))["digest"]


def test_sharded_stage1_gives_the_single_machine_streams_and_digest(tmp_path: Path, synth_only: Path) -> None:
    main = tmp_path / "main"  # a new log: the driver creates it
    result = bounded(distributed_domains, str(main), CONFIG, OPTIONS, shards=2, executor="inprocess",
                     chunk_records=32)
    d = result["distributed"]
    assert d["kind"] == "domains" and d["failures"] == []
    assert d["domains_assigned"] == CONFIG.domains and d["domains_already_done"] == 0
    # Each domain went whole to one shard (a stable hash of its stream id); both shards worked here.
    assert sorted(w["domains"] for w in d["workers"]) == [1, 1]
    assert all(w["fresh"] == w["completed"] == 1 and w["shipped_out_chunks"] == 0 for w in d["workers"])
    assert all(w["shipped_back"]["chunks"] > 1 and w["shipped_back"]["largest"] <= 32 for w in d["workers"])
    assert not shards_dir(main).exists()
    # Every stream of stage 1 (domains and their tools) as one machine made it, and so the run digest.
    single = stream_digests(synth_only)
    assert any(s.startswith(TOOL) for s in single) and sum(s.startswith(DOMAIN) for s in single) == CONFIG.domains
    assert stream_digests(main) == single
    assert result["digest"] == run_digest(synth_only)
    # Again: every domain is done, nothing runs or merges.
    again = bounded(distributed_domains, str(main), CONFIG, OPTIONS, shards=3, executor="inprocess")
    assert again["distributed"]["domains_assigned"] == 0 and again["distributed"]["merge"]["events_merged"] == 0
    assert again["digest"] == result["digest"]


def test_sharded_stage1_resumes_domains_a_single_machine_run_left_half_done(tmp_path: Path, synth_only: Path,
                                                                           base: Base) -> None:
    # What an interrupted single-machine stage 1 leaves (built from the finished log rather
    # than by interrupting a live run, which could finish first under load): domain d00
    # whole, and of d01 what its first half of commits held (its design and part of its
    # tools' streams).
    main = tmp_path / "main"
    with Log.open(synth_only, readonly=True) as single:
        kept = [r for r in single.read() if r.stream == DOMAIN + slot_id(0) or r.stream.startswith(TOOL + slot_id(0) + "/")]
        d1 = [r for r in single.read() if r.stream == DOMAIN + slot_id(1) or r.stream.startswith(TOOL + slot_id(1) + "/")]
    cut = d1[: len(d1) // 2]
    assert any(r.stream.startswith(TOOL) for r in cut) and len(cut) < len(d1)

    async def interrupted() -> None:
        with Log.open(main) as log:
            log.meta_set("run_config", msgspec.to_builtins(CONFIG))
            async with log.writer() as w:
                await w.append([(r.stream, r.n, r.cause, r.actor, r.event) for r in kept + cut])

    bounded(trio.run, interrupted)
    result = bounded(distributed_domains, str(main), CONFIG, OPTIONS, shards=2, executor="inprocess")
    d = result["distributed"]
    assert d["domains_already_done"] == 1 and d["domains_assigned"] == 1
    (worker,) = d["workers"]
    assert worker["resumed"] == 1 and worker["fresh"] == 0  # d01 resumed from the main log's prefix
    assert stream_digests(main) == stream_digests(synth_only)
    # And stage 2 on top, over shards too: the base run's task streams.
    bounded(distributed_tasks, str(main), CONFIG, OPTIONS, shards=2, executor="inprocess")
    tasks = {s: h for s, h in stream_digests(base.tasks).items()}
    assert stream_digests(main) == tasks


def test_a_worker_closed_while_it_loads_its_context_starts_no_engine(tmp_path: Path, synth_only: Path) -> None:
    # The driver plans a tasks shard (it needs its domains' streams shipped); the context it
    # hands over blocks after the first chunk until the worker has been closed, as when a
    # driver is interrupted while a worker still fetches its context from the object store.
    with Log.open(synth_only, readonly=True) as main:
        works, _ = plan(main, str(synth_only), CONFIG, OPTIONS, 1, chunk_records=8, kind="tasks")
        (work,) = works
        chunks = list(context_chunks(main, work))
    job = ShardJob(index=0, of=1, attempt=0, items=work.items, kind="tasks", config=CONFIG, options=OPTIONS)
    worker = ShardWorker(root=str(tmp_path))
    reading, closed = threading.Event(), threading.Event()

    def context():  # type: ignore[no-untyped-def]
        yield chunks[0]
        reading.set()
        assert closed.wait(600), "close() did not return"
        yield from chunks[1:]

    out: dict[str, BaseException | dict[str, object]] = {}

    def start() -> None:
        try:
            out["info"] = worker.start(job, context(), iter(()))
        except BaseException as exc:  # noqa: BLE001 - looked at below
            out["error"] = exc

    t = threading.Thread(target=start, daemon=True)
    t.start()
    assert reading.wait(600)
    worker.close()  # removes the worker's directory
    closed.set()
    t.join(600)
    assert not t.is_alive()
    assert isinstance(out.get("error"), RuntimeError) and "closed" in str(out["error"]), out
    assert worker._thread is None  # no engine was started
    assert not Path(worker.workdir).exists()  # nor a log made again in the removed directory
