"""The interface every backend implements: submit one attempt of a call, shut down.

The user API (api.py) never branches on the backend: dependencies, retries and progress
live above this interface, where they work the same everywhere.
"""

from __future__ import annotations

import abc
from concurrent.futures import Future


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
