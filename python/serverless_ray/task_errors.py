"""Exceptions of remote tasks, and how a task's exception comes back to the caller.

`get()` raises a failed task's own exception (same type, same arguments), with the
traceback from where it ran attached as its cause, as `concurrent.futures` does:

    ValueError: bad n                         <- what `get()` raises
    The above exception was the direct cause ...
    RemoteTraceback:                          <- the worker's traceback, as text
      File "run.py", line 7, in heavy ...

An exception that cannot cross the process boundary (unpicklable) becomes a `TaskError`
carrying the original type's name, message and traceback.
"""

from __future__ import annotations


class RemoteTraceback(Exception):
    """The traceback of a task, as text from where it ran (set as the exception's cause)."""

    def __init__(self, tb: str):
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return "\n" + self.tb


class TaskError(RuntimeError):
    """A task failed with an exception that could not be sent back as itself."""

    def __init__(self, type_name: str, message: str, remote_traceback: str = ""):
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.remote_traceback = remote_traceback

    def __reduce__(self):
        return (TaskError, (self.type_name, self.args[0].split(": ", 1)[-1], self.remote_traceback))


class TaskTimeoutError(TimeoutError):
    """A task ran longer than its `timeout_s` (on the local backend its worker process is
    killed; a thread task is abandoned, see docs/remote.md)."""


class GetTimeoutError(TimeoutError):
    """`get(..., timeout=...)` ran out of time before the results were ready (the tasks go on)."""


class WorkerCrashedError(RuntimeError):
    """The worker running a task died (killed, segfault, out of memory, os._exit)."""


class TaskCancelledError(RuntimeError):
    """The session was closed before the task finished."""


class BackendError(RuntimeError):
    """The backend itself failed (for example Lambda answered with an error of its own)."""


def attach_remote_traceback(exc: BaseException, tb: str) -> BaseException:
    """Sets `tb` (text) as the cause of `exc` and as `exc.remote_traceback`; returns `exc`."""
    if tb:
        cause = RemoteTraceback(tb)
        exc.__cause__ = cause
        try:
            exc.remote_traceback = tb
        except AttributeError:  # exceptions with __slots__
            pass
    return exc
