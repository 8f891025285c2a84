"""Shared fixtures for sandbox tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from scaleenv._sandbox import Limits, SandboxPool


@pytest.fixture
async def pool() -> AsyncIterator[SandboxPool]:
    """A 2-worker pool with short timeouts (keeps the suite fast)."""
    async with SandboxPool(workers=2, limits=Limits(timeout_s=0.5, kill_grace_s=0.5)) as p:
        yield p
