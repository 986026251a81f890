"""The Lambda backend: each task is one synchronous invocation of the generic worker
function (serverless_ray.lambda_worker.handler, deployed by `sray-gen deploy --worker`).

    serverless_ray.config(backend="lambda", function_name="serverless-ray-worker",
                          s3_bucket="my-bucket")

- Invocations run concurrently on a bounded thread pool (`max_concurrency`, default 64),
  one boto3 client shared by all (its connection pool sized to match).
- Throttling (429 TooManyRequestsException and friends) and Lambda's own 5xx service
  errors are retried with exponential backoff and full jitter, up to `throttle_retries`
  times; botocore's own retries are off, so a task never runs twice behind our back.
  A task's own exception is not retried here (that is the `retries` option, above).
- The function and its arguments are cloudpickled; inline (base64 in the JSON event)
  when the event stays under `inline_limit` bytes (Lambda's synchronous payload limit is
  6 MB each way), otherwise put in S3 under `s3_bucket`/`s3_prefix`, and deleted once the
  task is done. Functions of modules that are not installed packages (scripts, test
  files, notebooks) travel by value, since the worker cannot import them.
- Options: the Invoke API takes no memory or timeout. `memory_mb` / `num_cpus` choose the
  function (`memory_functions={1024: "worker-1g", 10240: "worker-10g"}`: the smallest one
  that fits; Lambda gives vCPUs by memory, 1 per 1769 MB, up to 6 at 10240 MB), and the
  worker warns when its function has less memory than asked. `timeout_s` is enforced in
  the worker (a SIGALRM in the handler) and by the client (the task fails
  `timeout_grace_s` after it); the function's own timeout (max 900 s) still caps it.
- A function error (the worker itself failed: bad event, crash, Lambda's timeout) comes
  back as HTTP 200 with an X-Amz-Function-Error header from Lambda, and as HTTP 500 from
  cargo-lambda's emulator: both become a BackendError (TaskTimeoutError for timeouts).
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import random
import sys
import sysconfig
import threading
import time
import uuid
from concurrent.futures import Future, InvalidStateError, ThreadPoolExecutor

from .. import codec
from ..task_errors import BackendError, TaskTimeoutError
from .base import Backend, Watchdog

PROTOCOL = 1
MAX_MEMORY_MB = 10240
MB_PER_VCPU = 1769
MAX_VCPUS = 6
MAX_TIMEOUT_S = 900
THROTTLE_CODES = {"TooManyRequestsException", "ThrottlingException", "Throttling", "RequestLimitExceeded",
                  "EC2ThrottledException", "ServiceException", "ServiceUnavailableException",
                  "ResourceNotReadyException"}
_by_value_lock = threading.Lock()


def memory_for(options) -> int | None:
    """The memory size a task needs: memory_mb, or num_cpus x 1769 MB (Lambda's vCPU rate)."""
    need = options.memory_mb or 0
    if options.num_cpus:
        need = max(need, math.ceil(options.num_cpus * MB_PER_VCPU))
    return need or None


def _installed(module) -> bool:
    """True for modules the worker can import too: the standard library and installed packages."""
    path = getattr(module, "__file__", None) or ""
    roots = {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    return not path or any(path.startswith(r) for r in roots) or "site-packages" in path


RAW_ERROR_BODY = "SrayRawErrorBody"


def _keep_error_body(response_dict=None, customized_response_dict=None, **_):
    """botocore hook: keeps the raw body of a 5xx answer (botocore parses only AWS-shaped
    error bodies, and the emulator's function error document is the runtime's own)."""
    if response_dict and customized_response_dict is not None and response_dict.get("status_code", 0) >= 500:
        customized_response_dict[RAW_ERROR_BODY] = response_dict.get("body")


def _settle(future: Future, ok: bool, value) -> None:
    try:
        future.set_result(value) if ok else future.set_exception(value)
    except InvalidStateError:
        pass


class LambdaBackend(Backend):
    name = "lambda"

    def __init__(self, function_name: str = "serverless-ray-worker", region: str | None = None,
                 endpoint_url: str | None = None, s3_bucket: str | None = None, s3_prefix: str = "serverless_ray",
                 s3_endpoint_url: str | None = None, max_concurrency: int = 64, inline_limit: int = 5_000_000,
                 memory_functions: dict | None = None, throttle_retries: int = 8, backoff_s: float = 0.1,
                 timeout_grace_s: float = 10.0, qualifier: str | None = None):
        import boto3
        from botocore.config import Config

        if not isinstance(max_concurrency, int) or max_concurrency < 1:
            raise ValueError(f"max_concurrency={max_concurrency!r}: expected an integer >= 1")
        if not 0 < inline_limit <= 6_000_000:
            raise ValueError(f"inline_limit={inline_limit}: Lambda's synchronous payload limit is 6 MB; "
                             "use a value up to 6000000")
        self.function_name = function_name
        self.qualifier = qualifier
        self.memory_functions = dict(sorted((int(k), v) for k, v in (memory_functions or {}).items()))
        self.s3_bucket, self.s3_prefix = s3_bucket, s3_prefix.strip("/")
        self.inline_limit = inline_limit
        self.throttle_retries, self.backoff_s = throttle_retries, backoff_s
        self.timeout_grace_s = timeout_grace_s
        self.session_id = uuid.uuid4().hex[:12]
        config = Config(retries={"total_max_attempts": 1}, max_pool_connections=max_concurrency,
                        read_timeout=MAX_TIMEOUT_S + 60, connect_timeout=10, tcp_keepalive=True)
        self._lambda = boto3.client("lambda", region_name=region, endpoint_url=endpoint_url, config=config)
        self._lambda.meta.events.register("before-parse.lambda.Invoke", _keep_error_body)
        self._s3_kwargs = {"region_name": region, "endpoint_url": s3_endpoint_url,
                           "config": Config(max_pool_connections=max_concurrency)}
        self._s3 = None
        self._pool = ThreadPoolExecutor(max_concurrency, thread_name_prefix="sray-lambda")
        self._blobs: dict[str, dict] = {}   # function key -> shipped blob (inline or S3)
        self._lock = threading.Lock()
        self._pending: set[Future] = set()
        self._watchdog = Watchdog("sray-lambda-watchdog")
        self._closed = False

    # -- what cannot be honoured ---------------------------------------------------------
    def resource_warnings(self, options) -> list[str]:
        out = []
        need = memory_for(options)
        if options.num_gpus:
            out.append(f"num_gpus={options.num_gpus:g}: AWS Lambda has no GPUs; the task runs on CPUs only")
        if options.num_cpus and options.num_cpus > MAX_VCPUS:
            out.append(f"num_cpus={options.num_cpus:g}: Lambda gives at most {MAX_VCPUS} vCPUs "
                       f"(at {MAX_MEMORY_MB} MB); the task gets at most {MAX_VCPUS}")
        if need and need > MAX_MEMORY_MB:
            out.append(f"memory_mb={need}: Lambda's largest memory size is {MAX_MEMORY_MB} MB; the task runs "
                       f"on the largest function configured")
        if options.timeout_s and options.timeout_s > MAX_TIMEOUT_S:
            out.append(f"timeout_s={options.timeout_s:g}: a Lambda invocation lasts at most {MAX_TIMEOUT_S} s; "
                       "the function's own timeout ends the task first")
        if need and self.memory_functions and need > max(self.memory_functions):
            out.append(f"memory {need} MB: no configured function has that much (largest: "
                       f"{max(self.memory_functions)} MB, {self.memory_functions[max(self.memory_functions)]}); "
                       "using it")
        return out

    def function_for(self, options) -> str:
        need = memory_for(options)
        if need and self.memory_functions:
            for size, name in self.memory_functions.items():
                if size >= need:
                    return name
            return self.memory_functions[max(self.memory_functions)]
        return self.function_name

    # -- S3 ----------------------------------------------------------------------------------
    @property
    def s3(self):
        if self._s3 is None:
            import boto3

            self._s3 = boto3.client("s3", **self._s3_kwargs)
        return self._s3

    def _location(self, *parts: str) -> dict | None:
        if not self.s3_bucket:
            return None
        key = "/".join(p for p in (self.s3_prefix, self.session_id, *parts) if p)
        return {"bucket": self.s3_bucket, "key": key}

    def _ship(self, data: bytes, where: dict | None, what: str, budget: int) -> dict:
        encoded = base64.b64encode(data).decode()
        if len(encoded) <= budget:
            return {"inline": encoded}
        if where is None:
            raise ValueError(f"the {what} is {len(data) / 1e6:.1f} MB pickled, over what a Lambda invocation can "
                             f"carry inline ({self.inline_limit / 1e6:.1f} MB); give the backend an S3 bucket: "
                             "config(backend='lambda', s3_bucket=...)")
        self.s3.put_object(Bucket=where["bucket"], Key=where["key"], Body=data)
        return {"s3": where}

    def _fetch(self, blob: dict, delete: bool = True) -> bytes:
        if "inline" in blob:
            return base64.b64decode(blob["inline"])
        where = blob["s3"]
        data = self.s3.get_object(Bucket=where["bucket"], Key=where["key"])["Body"].read()
        if delete:
            with contextlib.suppress(Exception):
                self.s3.delete_object(Bucket=where["bucket"], Key=where["key"])
        return data

    def _function_blob(self, fn) -> bytes:
        """The function pickled for a worker that has only installed packages: by value
        when its module is not one of them."""
        module = sys.modules.get(getattr(fn.function, "__module__", None) or "")
        if module is None or module.__name__ == "__main__" or _installed(module):
            return fn.blob()
        import cloudpickle

        with _by_value_lock:
            cloudpickle.register_pickle_by_value(module)
            try:
                code = getattr(fn.function, "__code__", None)
                return cloudpickle.dumps((fn.function, code.co_filename if code else None), protocol=5)
            finally:
                cloudpickle.unregister_pickle_by_value(module)

    # -- submitting ------------------------------------------------------------------------
    def submit(self, fn, args, kwargs, options) -> Future:
        future: Future = Future()
        task_id = uuid.uuid4().hex
        try:
            with self._lock:
                shipped = self._blobs.get(fn.key)
            if shipped is None:
                shipped = self._ship(self._function_blob(fn), self._location("functions", fn.key), "function",
                                     self.inline_limit // 2)
                with self._lock:
                    self._blobs[fn.key] = shipped
            budget = self.inline_limit - len(shipped.get("inline", ""))
            call = self._ship(codec.dumps((args, kwargs)), self._location(task_id, "call.pkl"), "arguments",
                              budget)
        except Exception as exc:  # noqa: BLE001 - unpicklable arguments, no bucket, S3 refused
            future.set_exception(exc)
            return future
        event = {"serverless_ray": PROTOCOL, "key": fn.key, "function": shipped, "call": call,
                 "result_s3": self._location(task_id, "result.pkl"), "inline_limit": self.inline_limit,
                 "timeout_s": options.timeout_s, "memory_mb": memory_for(options)}
        with self._lock:
            if self._closed:
                raise RuntimeError("this serverless_ray session is closed; open a new one with serverless_ray.start()")
            self._pending.add(future)
        future.add_done_callback(self._forget)
        if options.timeout_s:
            error = TaskTimeoutError(f"{fn.name} did not answer within timeout_s={options.timeout_s:g} "
                                     f"(+{self.timeout_grace_s:g} s grace) on Lambda")
            cancel = self._watchdog.watch(options.timeout_s + self.timeout_grace_s,
                                          lambda: _settle(future, False, error))
            future.add_done_callback(lambda _: cancel())
        self._pool.submit(self._run, fn, event, options, future)
        return future

    def _forget(self, future: Future) -> None:
        with self._lock:
            self._pending.discard(future)

    def _run(self, fn, event: dict, options, future: Future) -> None:
        if future.done():
            return
        try:
            ok, value = self._invoke(fn, event, options)
        except Exception as exc:  # noqa: BLE001
            ok, value = False, exc
        finally:
            if "s3" in event["call"]:
                where = event["call"]["s3"]
                with contextlib.suppress(Exception):
                    self.s3.delete_object(Bucket=where["bucket"], Key=where["key"])
        _settle(future, ok, value)

    def _invoke(self, fn, event: dict, options):
        from botocore.exceptions import ClientError

        name = self.function_for(options)
        body = json.dumps(event).encode()
        kwargs = {"FunctionName": name, "InvocationType": "RequestResponse", "Payload": body}
        if self.qualifier:
            kwargs["Qualifier"] = self.qualifier
        attempt = 0
        while True:
            try:
                response = self._lambda.invoke(**kwargs)
                break
            except ClientError as exc:
                error = exc.response.get("Error", {})
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                code = error.get("Code", "")
                if code in THROTTLE_CODES and attempt < self.throttle_retries and not self._closed:
                    # exponential backoff with full jitter
                    time.sleep(random.uniform(0, self.backoff_s * 2 ** attempt))
                    attempt += 1
                    continue
                if status == 500 and code not in THROTTLE_CODES:
                    # cargo-lambda's emulator answers a function error with HTTP 500 and the
                    # runtime's error document as the body
                    try:
                        document = json.loads(exc.response.get(RAW_ERROR_BODY) or b"")
                    except ValueError:
                        document = {}
                    if not isinstance(document, dict):
                        document = {}
                    return False, self._function_error(fn, name, document or error, raw=exc)
                return False, BackendError(f"invoking Lambda function {name!r} for {fn.name} failed: {exc}"
                                           + (f" (after {attempt} throttling retries)" if attempt else ""))
        payload = response["Payload"].read()
        if response.get("FunctionError"):
            try:
                document = json.loads(payload)
            except ValueError:
                document = {"errorMessage": payload.decode(errors="replace")}
            return False, self._function_error(fn, name, document)
        answer = json.loads(payload)
        for text in answer.get("warnings", ()):
            import warnings

            from ..options import ResourceRequestWarning

            warnings.warn(f"{fn.name}: {text}", ResourceRequestWarning, stacklevel=2)
        if answer.get("ok"):
            return True, codec.loads(self._fetch(answer["value"]))
        return False, codec.decode_error(codec.loads(self._fetch(answer["error"])))

    def _function_error(self, fn, name: str, document: dict, raw=None) -> Exception:
        kind = document.get("errorType") or document.get("Code") or "FunctionError"
        message = document.get("errorMessage") or document.get("Message") or str(raw or "")
        trace = document.get("stackTrace") or []
        text = f"the worker function {name!r} failed running {fn.name}: {kind}: {message}"
        if trace:
            text += "\n" + "".join(trace if isinstance(trace, list) else [str(trace)])
        if "timed out" in message.lower() or "Timedout" in kind:
            return TaskTimeoutError(text)
        return BackendError(text)

    # -- closing -----------------------------------------------------------------------------
    def shutdown(self, cancel: bool = True) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            pending = list(self._pending)
        for f in pending:  # get() raises TaskCancelledError; the invocations themselves run to their end
            f.cancel()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._watchdog.close()
        self._delete_function_blobs()

    def _delete_function_blobs(self) -> None:
        """Functions too large to inline were put in S3 for the session; remove them (a
        bucket lifecycle rule on the prefix cleans up after a session that crashed)."""
        with self._lock:
            shipped, self._blobs = list(self._blobs.values()), {}
        for blob in shipped:
            if "s3" in blob:
                with contextlib.suppress(Exception):  # best effort: the session is over either way
                    self.s3.delete_object(Bucket=blob["s3"]["bucket"], Key=blob["s3"]["key"])
