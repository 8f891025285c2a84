"""Fixtures for the LLM port tests: real LMDB logs, real streams, a real sim server on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio

from scaleenv._serve.sim_http import SimServer, serve_sim
from scaleenv._store import Log, Stream
from scaleenv._store.events.llm import LlmCalled


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "run.lmdb"


@pytest.fixture
def log(log_path: Path) -> Any:
    """A fresh real log in tmp_path (LMDB allows one open per process: share this object)."""
    with Log.open(log_path, sync=False) as lg:
        yield lg


@pytest.fixture
async def writer(log: Log) -> AsyncIterator[Any]:
    """The writer task of ``log``."""
    async with log.writer() as w:
        yield w


def stream(writer: Any, stream_id: str = "test/stream") -> Stream:
    return Stream(writer, stream_id)


def events_of(log: Log) -> list[Any]:
    return [r.event for r in log.read()]


def llm_calls(log: Log) -> list[LlmCalled]:
    return [e for e in events_of(log) if isinstance(e, LlmCalled)]


@pytest.fixture
def sim_server() -> SimServer:
    return SimServer()


@pytest.fixture
async def sim_url(nursery: trio.Nursery, sim_server: SimServer) -> str:
    """Base URL (``http://127.0.0.1:PORT/v1``) of a sim server running in the test's nursery."""
    port = await nursery.start(partial(serve_sim, "127.0.0.1", 0, server=sim_server))
    return f"http://127.0.0.1:{port}/v1"
