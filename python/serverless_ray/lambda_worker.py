"""The generic Python worker of the Lambda backend: `serverless_ray.lambda_worker.handler`.

It parses the event, runs the call through worker_core (the code local worker processes
run), and answers; nothing else. The deploy helper packages this module with
serverless_ray and cloudpickle; the client is backends/lambda_.py.

Event (JSON; blobs are base64 inline, or S3 objects when over Lambda's payload limits):

    {"serverless_ray": 1, "key": "<function id>",
     "function": {"inline": "<b64>"} | {"s3": {"bucket": ..., "key": ...}},
     "call":     {"inline": "<b64>"} | {"s3": {...}},          # cloudpickle((args, kwargs))
     "result_s3": {"bucket": ..., "key": ...} | null,          # where a big result goes
     "inline_limit": 5000000, "timeout_s": 30.0 | null, "memory_mb": 2048 | null}

Answer: {"ok": true, "value": <blob>, "warnings": [...]} or {"ok": false, "error": <blob of
the error tuple>, "error_type": "ValueError", "error_message": "..."}. A task's own
exception is an answer, not a Lambda function error; a function error (bad event, a
crash, Lambda's timeout) means the worker itself failed.
"""

from __future__ import annotations

import base64
import contextlib
import pickle
import signal
import threading

from . import worker_core
from .task_errors import TaskTimeoutError

PROTOCOL = 1
_functions: dict = {}  # function key -> function, kept while the instance stays warm
_s3 = None


def _s3_client():
    global _s3
    if _s3 is None:
        import boto3

        _s3 = boto3.client("s3")  # the endpoint comes from AWS_ENDPOINT_URL_S3 when set (tests)
    return _s3


def fetch(blob: dict) -> bytes:
    if "inline" in blob:
        return base64.b64decode(blob["inline"])
    where = blob["s3"]
    return _s3_client().get_object(Bucket=where["bucket"], Key=where["key"])["Body"].read()


def ship(data: bytes, limit: int, where: dict | None, what: str) -> dict:
    encoded = base64.b64encode(data).decode()
    if len(encoded) <= limit:
        return {"inline": encoded}
    if not where:
        raise ValueError(f"the {what} is {len(data) / 1e6:.1f} MB, over the {limit / 1e6:.1f} MB that a Lambda "
                         "answer can carry, and no S3 location was given: configure s3_bucket= in "
                         "serverless_ray.config(backend='lambda', ...)")
    _s3_client().put_object(Bucket=where["bucket"], Key=where["key"], Body=data)
    return {"s3": where}


@contextlib.contextmanager
def _deadline(seconds):
    """Raises TaskTimeoutError in the handler after `seconds` (SIGALRM: main thread only)."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        raise TaskTimeoutError(f"the task ran longer than timeout_s={seconds:g}")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def handler(event, context):
    if not isinstance(event, dict) or event.get("serverless_ray") != PROTOCOL:
        raise ValueError("not a serverless_ray task event (protocol 1): this function is the serverless_ray "
                         "worker; invoke it through serverless_ray.config(backend='lambda', ...)")
    warnings = []
    memory = getattr(context, "memory_limit_in_mb", None)
    if event.get("memory_mb") and memory and int(event["memory_mb"]) > int(memory):
        warnings.append(f"the task asked for memory_mb={event['memory_mb']} but this function has {memory} MB: "
                        "deploy a bigger function and list it in config(memory_functions=...)")
    limit = int(event.get("inline_limit") or 5_000_000)
    key = event["key"]
    fn = _functions.get(key)
    if fn is None:
        fn = _functions[key] = worker_core.load_function(fetch(event["function"]))
    args, kwargs = pickle.loads(fetch(event["call"]))
    try:
        with _deadline(event.get("timeout_s")):
            ok, out = worker_core.run_call(fn, args, kwargs)
    except TaskTimeoutError as exc:  # raised between the call's end and the alarm's reset
        ok, out = False, worker_core.encode_error(exc, skip_frames=0)
    if ok:
        try:
            return {"ok": True, "value": ship(out, limit, event.get("result_s3"), "result"), "warnings": warnings}
        except ValueError as exc:
            ok, out = False, worker_core.encode_error(exc, skip_frames=0)
    _, type_name, message, _ = out
    return {"ok": False, "error": ship(pickle.dumps(out, protocol=5), limit, event.get("result_s3"), "error"),
            "error_type": type_name, "error_message": message[:1000], "warnings": warnings}
