"""The model backend on shard workers (in-process executor, no Ray): a ``recorded:LOG``
recording shipped by the driver, and a different ``--llm`` per shard (``--shard-llm``).

The same on a two-node Ray cluster, with the workers watched for the driver's files:
``tests/distributed/test_ray.py``.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import msgspec
import pytest

from scaleenv._cli import main as cli_main
from scaleenv._errors import WorkFailed
from scaleenv._distributed import distributed_domains, distributed_rollouts, distributed_tasks, shard_options
from scaleenv._runner import rollouts

from .conftest import CONFIG, OPTIONS, Base, SimServers, bounded, calls_by_shard, run_stages, stream_digests


def test_recorded_llm_is_shipped_to_the_shards(tmp_path: Path, base: Base) -> None:
    # The single-machine run's own log is the recording: each shard is shipped the recorded
    # calls of its episodes' streams and is served from them (the worker never opens the path).
    main = base.copy(tmp_path / "main")
    options = msgspec.structs.replace(OPTIONS, llm=f"recorded:{base.single}")
    result = bounded(distributed_rollouts, str(main), CONFIG, options, shards=2, executor="inprocess",
                     chunk_records=16)
    assert result["digest"] == base.digest
    assert stream_digests(main) == base.streams
    workers = result["distributed"]["workers"]
    expected = calls_by_shard(base.single, 2)
    assert {w["index"]: w["recorded_calls"] for w in workers} == expected
    assert all(n > 16 for n in expected.values())  # several chunks each


def test_a_recording_that_lacks_a_shards_calls_fails_that_shard_and_names_the_call(tmp_path: Path, base: Base) -> None:
    # Recorded from stages 1-2 only: no episode's calls are in it; the shards fail with the
    # recorded backend's divergence, the driver says which shards, and nothing is lost.
    main = base.copy(tmp_path / "main")
    options = msgspec.structs.replace(OPTIONS, llm=f"recorded:{base.tasks}")
    with pytest.raises(WorkFailed, match=r"2 shard\(s\) did not finish \(shard 0: WorkFailed: shard 0: "
                                         r"RecordedDivergence: .*never called in the recorded run"):
        bounded(distributed_rollouts, str(main), CONFIG, options, shards=2, executor="inprocess")


def test_each_shard_calls_its_own_server_and_the_digest_is_one_machines(
        tmp_path: Path, base: Base, two_sim_servers: SimServers) -> None:
    (url_a, a), (url_b, b) = two_sim_servers
    options = msgspec.structs.replace(OPTIONS, llm=f"openai:{url_a}", model="scaleenv-sim-1")
    # One machine, one server: the digest to match.
    single = base.copy(tmp_path / "single")
    run_stages(single, rollouts, options=options)
    single_streams = stream_digests(single)
    a.served = 0
    # Two shards, each on its own server.
    main = base.copy(tmp_path / "main")
    result = bounded(distributed_rollouts, str(main), CONFIG, options, shards=2, executor="inprocess",
                     shard_llms=[f"openai:{url_a}", f"openai:{url_b}"])
    assert stream_digests(main) == single_streams
    assert result["distributed"]["llm"] == {"0": f"openai:{url_a}", "1": f"openai:{url_b}"}
    calls = calls_by_shard(main, 2)
    assert calls[0] > 0 and calls[1] > 0
    # Every call of shard 0's episodes reached server A, every call of shard 1's server B.
    assert (a.served, b.served) == (calls[0], calls[1])
    shutil.rmtree(single)


def test_shard_llm_is_round_robin() -> None:
    specs = ["openai:http://a/v1", "openai:http://b/v1"]
    assert [shard_options(OPTIONS, k, specs).llm for k in range(5)] == [specs[k % 2] for k in range(5)]
    assert shard_options(OPTIONS, 3, ()) == OPTIONS


@pytest.mark.parametrize(("args", "says"), [
    (["--shard-llm", "sim"], "--shard-llm needs --ray"),
    (["--ray", "local", "--shard-llm", "sim", "--shard-llm", "bogus:x"], "bad --shard-llm value 'bogus:x'"),
    (["--ray", "local", "--shard-llm", "openai:http://127.0.0.1:9/v1"], "needs --model"),
    (["--ray", "local", "--llm", "recorded:no/such/log"], "no log at no/such/log"),
    (["--ray", "local", "--shard-llm", "env:", "--shard-llm", "sim"], "bad --shard-llm value 'env:'"),
    (["--ray", "local", "--llm", "env:1X"], "bad --llm value 'env:1X'"),
])
def test_bad_shard_llm_values_exit_2_before_ray_starts(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                        args: list[str], says: str) -> None:
    log = tmp_path / "log"
    assert cli_main(["rollout", "--log", str(log), "--quiet", *args]) == 2
    assert says in capsys.readouterr().err
    assert not log.exists()  # nothing created
    ray = sys.modules.get("ray")
    assert ray is None or not ray.is_initialized()  # and Ray not started


def test_every_stage_on_shards_served_from_a_recording(tmp_path: Path, base: Base) -> None:
    # Stage 1 (a domain's calls: its own stream's and its tools'), stage 2 (a task's) and the
    # rollouts, each shard served only the recorded calls of its own items: the recorded run, again.
    main = tmp_path / "main"
    options = msgspec.structs.replace(OPTIONS, llm=f"recorded:{base.single}")
    for stage in (distributed_domains, distributed_tasks, distributed_rollouts):
        result = bounded(stage, str(main), CONFIG, options, shards=2, executor="inprocess")
        assert all(w["recorded_calls"] > 0 for w in result["distributed"]["workers"])
    assert result["digest"] == base.digest
    assert stream_digests(main) == base.streams


def test_env_llm_is_read_where_the_worker_runs(tmp_path: Path, base: Base, two_sim_servers: SimServers,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    # --llm env:NAME: the driver ships the name, each worker reads the value on its node
    # (here, in-process workers: this process's environment, set after the driver checked).
    (url_a, a), (url_b, b) = two_sim_servers
    monkeypatch.setenv("SCALEENV_TEST_LLM", f"openai:{url_b}")
    options = msgspec.structs.replace(OPTIONS, llm="env:SCALEENV_TEST_LLM", model="scaleenv-sim-1")
    main = base.copy(tmp_path / "main")
    result = bounded(distributed_rollouts, str(main), CONFIG, options, shards=2, executor="inprocess")
    assert result["distributed"]["llm"] == {"0": "env:SCALEENV_TEST_LLM", "1": "env:SCALEENV_TEST_LLM"}
    assert {w["llm"] for w in result["distributed"]["workers"]} == {f"openai:{url_b}"}
    assert a.served == 0 and b.served == sum(calls_by_shard(main, 2).values()) > 0
    # Unset on the worker's node: the shards fail, naming the variable and the node.
    monkeypatch.delenv("SCALEENV_TEST_LLM")
    more = msgspec.structs.replace(CONFIG, episodes_per_task=CONFIG.episodes_per_task + 1)
    with pytest.raises(WorkFailed, match=r"the environment variable SCALEENV_TEST_LLM is not set on node "):
        bounded(distributed_rollouts, str(main), more, options, shards=2, executor="inprocess")
    # Set to a bad value there: the same, naming the value.
    monkeypatch.setenv("SCALEENV_TEST_LLM", "bogus:x")
    with pytest.raises(WorkFailed, match=r"shard 0: bad --llm value 'bogus:x'"):
        bounded(distributed_rollouts, str(main), more, options, shards=2, executor="inprocess")


def test_env_llm_on_one_machine_is_this_process_s(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "log"
    monkeypatch.delenv("SCALEENV_TEST_LLM", raising=False)
    assert cli_main(["synth", "--log", str(log), "--quiet", "--domains", "1", "--llm", "env:SCALEENV_TEST_LLM"]) == 2
    assert "the environment variable SCALEENV_TEST_LLM is not set" in capsys.readouterr().err
    assert not log.exists()
    monkeypatch.setenv("SCALEENV_TEST_LLM", "bogus:x")
    assert cli_main(["synth", "--log", str(log), "--quiet", "--domains", "1", "--llm", "env:SCALEENV_TEST_LLM"]) == 2
    assert "bad --llm value 'bogus:x'" in capsys.readouterr().err
    assert not log.exists()
