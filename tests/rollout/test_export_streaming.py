"""``export`` streams episode by episode (scaleenv._replay.export.export_to): the files it
writes are byte for byte those of the whole-log fold it replaced (``episode_rows`` over
``projection.fold``, written at once), on the golden logs and on a run with local,
served and checker episodes; a parquet file in several row groups holds the same table."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from scaleenv._replay.checkpoint import projected
from scaleenv._replay.export import KINDS, episode_rows, export_to, kind_counts, parquet_table, write_jsonl, write_parquet
from scaleenv._replay.projection import fold
from scaleenv._store.log import Log
from tests.replay.goldens import GENERATIONS, golden_log, load_prefix

from .conftest import copy_template, roll
from .test_export_roundtrip import serve_some

KIND_SETS = [c for n in range(1, len(KINDS) + 1) for c in itertools.combinations(KINDS, n)]


def whole_fold_export(path: Path, out: Path, fmt: str, kinds: tuple[str, ...]) -> dict[str, int]:
    """What ``scaleenv export`` wrote before it streamed: every episode folded whole, all
    rows in memory, written at once; returns the finished episodes of kinds left out."""
    with Log.open(path, readonly=True) as log:
        view = fold(log.read())
        seed = int((log.meta_get("run_config") or {}).get("seed", 0))
    rows = list(episode_rows(view, seed, kinds))
    if fmt == "jsonl":
        write_jsonl(rows, out)
    else:
        import pyarrow.parquet as pq

        pq.write_table(parquet_table(rows), out)
    return {k: n for k, n in kind_counts(view).items() if k not in kinds and n}


def same_files(path: Path, tmp: Path, fmt: str, kinds: tuple[str, ...]) -> int:
    before, after = tmp / f"before.{fmt}", tmp / f"after.{fmt}"
    left_out = whole_fold_export(path, before, fmt, kinds)
    with Log.open(path, readonly=True) as log:
        tally = export_to(log, after, fmt, kinds)
    assert after.read_bytes() == before.read_bytes()
    assert tally.left_out == left_out
    return tally.rows


@pytest.mark.parametrize("generation", GENERATIONS)
def test_the_golden_runs_export_as_before(generation: str, tmp_path: Path) -> None:
    path = tmp_path / "log.lmdb"
    load_prefix(golden_log(generation), 10**9, path)
    assert same_files(path, tmp_path, "jsonl", ("local", "served")) >= 1
    with Log.open(path) as log:
        projected(log)  # from a checkpoint, episodes not decoded: the same bytes
    assert same_files(path, tmp_path, "jsonl", ("local", "served")) >= 1


@pytest.fixture(scope="module")
def served_run(template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = copy_template(template, tmp_path_factory.mktemp("streamed") / "log")
    roll(path, 3)
    serve_some(path)
    return path


@pytest.mark.parametrize("kinds", KIND_SETS, ids="+".join)
def test_a_run_with_every_kind_exports_as_before(served_run: Path, tmp_path: Path, kinds: tuple[str, ...]) -> None:
    for fmt in ("jsonl", "parquet"):
        if fmt == "parquet":
            pytest.importorskip("pyarrow", reason="parquet export needs pyarrow (pip install 'scaleenv[export]')")
        same_files(served_run, tmp_path, fmt, kinds)


def test_parquet_in_several_row_groups_holds_the_same_table(served_run: Path, tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet", reason="parquet export needs pyarrow (pip install 'scaleenv[export]')")
    with Log.open(served_run, readonly=True) as log:
        view = fold(log.read())
    rows: list[dict[str, Any]] = list(episode_rows(view, 0, KINDS))
    assert len(rows) >= 5
    write_parquet(iter(rows), tmp_path / "groups.parquet", batch=2)
    pq.write_table(parquet_table(rows), tmp_path / "one.parquet")
    groups, one = pq.ParquetFile(tmp_path / "groups.parquet"), pq.ParquetFile(tmp_path / "one.parquet")
    assert groups.metadata.num_row_groups == -(-len(rows) // 2) and one.metadata.num_row_groups == 1
    assert groups.read().equals(one.read())
    assert groups.schema_arrow == one.schema_arrow
