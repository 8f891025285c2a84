"""A run's :class:`~scaleenv._serve.environments.Environments` in a background trio thread,
for callers that are not trio programs (gymnasium, the trainer adapters).

:meth:`EngineThread.acquire` starts one engine (trio, the log writer, the sandbox pool,
the user's LLM port) per log and process, in a daemon thread, and hands it to every
caller on that log; :meth:`EngineThread.call` runs one of its methods there and waits
for the answer (``trio.from_thread``), from any thread that is not a trio thread. The
last :meth:`release` stops it, which ends the episodes still open (reason ``error``,
fault ``environment``, as a stopping server does). At interpreter exit, engines still
held are stopped the same way, so a script that forgets ``close()`` leaves no episode
open in its log.

The log is opened for writing: one process at a time (the writer lock), and only the
first acquirer's engine options and idle timeout count (later ones share its engine).
"""

from __future__ import annotations

import atexit
import inspect
import threading
from functools import partial
from pathlib import Path
from typing import Any

import trio

from scaleenv._runner import EngineOptions
from scaleenv._serve.environments import Environments, open_environments


class EngineThread:
    """The engine of one log in a background trio thread, shared by its callers."""

    _engines: dict[str, EngineThread] = {}
    _lock = threading.Lock()

    def __init__(self, path: str, options: Any, idle_timeout: float) -> None:
        self.path = path
        self.users = 0
        self.envs: Environments | None = None
        self._token: Any = None
        self._error: BaseException | None = None
        self._ready = threading.Event()
        self._stop: trio.Event | None = None
        self._thread = threading.Thread(target=self._run, args=(options, idle_timeout),
                                        name=f"scaleenv-engine:{path}", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    def _run(self, options: Any, idle_timeout: float) -> None:
        async def main() -> None:
            async with open_environments(self.path, options, idle_timeout=idle_timeout) as envs:
                self.envs = envs
                self._token = trio.lowlevel.current_trio_token()
                self._stop = trio.Event()
                self._ready.set()
                await self._stop.wait()

        try:
            trio.run(main)
        except BaseException as exc:  # noqa: BLE001 - handed to the thread that asked for the engine
            self._error = exc
        finally:
            self._ready.set()

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Run ``Environments.<name>(*args, **kwargs)`` on the engine's thread and return
        its answer (its exceptions propagate). Blocks the calling thread until then; an
        interrupted wait does not cancel the call, whose effects are recorded in full."""
        if self.envs is None or self._token is None:
            raise RuntimeError(f"the engine of {self.path} is not running")
        fn = getattr(self.envs, name)
        if inspect.iscoroutinefunction(fn):
            return trio.from_thread.run(partial(fn, *args, **kwargs), trio_token=self._token)
        return trio.from_thread.run_sync(partial(fn, *args, **kwargs), trio_token=self._token)

    @staticmethod
    def _key(path: str) -> str:
        return str(Path(path).resolve())

    @classmethod
    def acquire(cls, path: str, options: Any = None, idle_timeout: float = 600.0) -> EngineThread:
        """The engine of the run at ``path`` (started on first use; ValueError if the path
        holds no run, the log's own error if it cannot be opened for writing)."""
        if options is None:
            options = EngineOptions(progress=False)
        with cls._lock:
            engine = cls._engines.get(cls._key(path))
            if engine is None:
                engine = cls._engines[cls._key(path)] = EngineThread(path, options, idle_timeout)
            engine.users += 1
            return engine

    def release(self) -> None:
        """Give the engine back; the last user stops it (its open episodes are ended)."""
        with self._lock:
            self.users -= 1
            if self.users > 0:
                return
            if self._engines.get(self._key(self.path)) is self:
                del self._engines[self._key(self.path)]
        self._shutdown()

    def _shutdown(self) -> None:
        if self._stop is not None and self._thread.is_alive():
            trio.from_thread.run_sync(self._stop.set, trio_token=self._token)
        self._thread.join()

    @classmethod
    def stop_all(cls) -> None:
        """Stop every engine still held (at interpreter exit)."""
        with cls._lock:
            engines = list(cls._engines.values())
            cls._engines.clear()
        for engine in engines:
            engine._shutdown()


atexit.register(EngineThread.stop_all)
