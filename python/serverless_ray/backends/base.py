"""The interface every backend implements: submit one attempt of a call, shut down.

The user API (api.py) never branches on the backend: dependencies, retries and progress
live above this interface, where they work the same everywhere.
"""

from __future__ import annotations

import abc
import heapq
import itertools
import threading
import time
from concurrent.futures import Future
from typing import Callable


class Backend(abc.ABC):
    name = "backend"

    @abc.abstractmethod
    def submit(self, fn, args: tuple, kwargs: dict, options) -> Future:
        """Runs one attempt of `fn.function(*args, **kwargs)` (args hold values, never refs).
        `fn` has `.key` (stable id), `.function`, `.name` and `.blob()` (cloudpickled
        function, cached). Returns a Future that fails with the task's own exception, or
        TaskTimeoutError after `options.timeout_s`."""

    @abc.abstractmethod
    def shutdown(self, cancel: bool = True) -> None:
        """Releases workers and clients; with cancel, unfinished futures are cancelled."""

    def resource_warnings(self, options) -> list[str]:
        """What this backend cannot honour in `options`, and what it does instead."""
        return []


class Watchdog:
    """One daemon thread for every deadline of a backend (not a timer thread per task):
    `watch(seconds, action)` runs `action()` on that thread once the time has passed,
    unless the returned cancel function was called first. Actions must be quick."""

    def __init__(self, name: str = "sray-watchdog"):
        self._name = name
        self._cv = threading.Condition()
        self._heap: list[tuple[float, int]] = []  # (deadline, id), the earliest first
        self._actions: dict[int, Callable[[], None]] = {}  # id -> action, while not cancelled
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None
        self._closed = False

    def watch(self, seconds: float, action: Callable[[], None]) -> Callable[[], None]:
        with self._cv:
            key = next(self._ids)
            self._actions[key] = action
            heapq.heappush(self._heap, (time.monotonic() + seconds, key))
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                self._thread.start()
            self._cv.notify()

        def cancel() -> None:
            with self._cv:
                self._actions.pop(key, None)

        return cancel

    def close(self) -> None:
        """Stops the thread; deadlines still pending never fire."""
        with self._cv:
            self._closed = True
            self._actions.clear()
            self._cv.notify()

    def _loop(self) -> None:
        while True:
            with self._cv:
                while not self._closed:
                    while self._heap and self._heap[0][1] not in self._actions:
                        heapq.heappop(self._heap)  # cancelled
                    if not self._heap:
                        self._cv.wait()
                        continue
                    wait = self._heap[0][0] - time.monotonic()
                    if wait <= 0:
                        break
                    self._cv.wait(wait)
                if self._closed:
                    return
                _, key = heapq.heappop(self._heap)
                action = self._actions.pop(key)
            action()  # outside the lock: it may take the backend's own locks
