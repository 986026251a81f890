"""Client side of the task wire format (worker_core.py is the worker side).

- `dumps_call(args, kwargs)`: cloudpickle, so closures, lambdas and functions defined in
  `__main__` travel by value.
- `decode_error(error_tuple)`: the task's exception, as its own type when it can be
  rebuilt, with the remote traceback attached (task_errors.attach_remote_traceback).
"""

from __future__ import annotations

import pickle

import cloudpickle

from .task_errors import TaskError, attach_remote_traceback


def dumps(obj) -> bytes:
    return cloudpickle.dumps(obj, protocol=5)


def loads(blob: bytes):
    return pickle.loads(blob)


def decode_error(error: tuple) -> BaseException:
    blob, type_name, message, tb = error
    exc = None
    if blob is not None:
        try:
            exc = pickle.loads(blob)
        except Exception:  # noqa: BLE001 - e.g. the exception's class exists only on the worker
            exc = None
    if not isinstance(exc, BaseException):
        exc = TaskError(type_name, message, tb)
    return attach_remote_traceback(exc, tb)
