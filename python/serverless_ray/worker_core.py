"""What runs a task where it runs: decode the call, call it, encode the outcome.

Standard library only (cloudpickle is imported when a payload needs it), because the
local backend's worker processes load this file by path, without importing the
`serverless_ray` package (and numpy with it): a worker starts in a few tens of ms.
The Lambda worker (lambda_worker.py) imports it as a normal module.

    outcome = run_call(fn, args, kwargs)   # (True, value bytes) or (False, error tuple)

An error tuple is (pickled exception or None, "module.Type", message, traceback text);
the client turns it back into the exception (serverless_ray.codec.decode_error).
"""

from __future__ import annotations

import pickle
import traceback


def dumps(obj) -> bytes:
    """Pickles with the standard pickler, falling back to cloudpickle for what it cannot
    pickle (lambdas, closures, classes defined in __main__ ...)."""
    try:
        return pickle.dumps(obj, protocol=5)
    except Exception:
        import cloudpickle

        return cloudpickle.dumps(obj, protocol=5)


def encode_error(exc: BaseException, skip_frames: int = 1) -> tuple:
    """(pickled exception or None, qualified type name, message, traceback text).
    The first `skip_frames` frames (this machinery) are left out of the traceback."""
    tb = exc.__traceback__
    for _ in range(skip_frames):
        if tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    blob = None
    try:
        blob = dumps(exc)
        pickle.loads(blob)  # some exceptions pickle but cannot be rebuilt (required __init__ args)
    except Exception:
        blob = None
    kind = type(exc)
    return blob, f"{kind.__module__}.{kind.__qualname__}", str(exc), text


def run_call(fn, args, kwargs) -> tuple[bool, object]:
    """Calls fn(*args, **kwargs); (True, pickled value) or (False, error tuple)."""
    try:
        value = fn(*args, **kwargs)
    except BaseException as exc:  # noqa: BLE001 - everything a task raises goes back to its caller
        return False, encode_error(exc)
    try:
        return True, dumps(value)
    except BaseException as exc:  # noqa: BLE001
        wrapped = TypeError(f"the result of {getattr(fn, '__name__', fn)!r} cannot be pickled "
                            f"to send it back: {type(exc).__name__}: {exc}")
        return False, encode_error(wrapped, skip_frames=0)


def load_function(blob: bytes):
    """The function of a `RemoteFunction.blob()`, with its source file name restored."""
    fn, filename = pickle.loads(blob)
    code = getattr(fn, "__code__", None)
    if filename and code is not None and code.co_filename == "<dynamic-code>":
        try:
            fn.__code__ = code.replace(co_filename=filename)
        except (AttributeError, TypeError, ValueError):
            pass
    return fn


def serve(read_fd: int, write_fd: int) -> None:
    """The loop of a local worker process: one task at a time from `read_fd`, its outcome
    to `write_fd`, until the parent closes the pipe.

    A task message is pickle((task_id, fn_key, fn_blob or None, payload)); the function
    is sent once per worker and cached by key; payload = cloudpickle((args, kwargs)).
    An outcome message is pickle((task_id, ok, value bytes or error tuple)).
    """
    import signal
    from multiprocessing.connection import Connection

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    inbox, outbox = Connection(read_fd, writable=False), Connection(write_fd, readable=False)
    functions: dict = {}
    while True:
        try:
            message = inbox.recv_bytes()
        except (EOFError, OSError):
            return
        task_id, fn_key, fn_blob, payload = pickle.loads(message)
        try:
            if fn_blob is not None:
                functions[fn_key] = load_function(fn_blob)
            args, kwargs = pickle.loads(payload)
        except BaseException as exc:  # noqa: BLE001 - e.g. a module importable by the caller only
            ok, out = False, encode_error(exc, skip_frames=0)
        else:
            ok, out = run_call(functions[fn_key], args, kwargs)
        del payload, message
        outbox.send_bytes(pickle.dumps((task_id, ok, out), protocol=5))
