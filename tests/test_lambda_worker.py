"""The Lambda backend end to end, with no AWS account: the real worker handler
(serverless_ray.lambda_worker.handler) runs under the official runtime interface client
(awslambdaric) against cargo-lambda's Runtime API emulator, S3 is a moto server, and
the backend invokes function `_` through boto3 over HTTP.

What this does and does not prove:
- the emulator hands each invocation to one runtime at a time; two awslambdaric
  processes poll it here, so at most two tasks run at once (the client's thread pool
  is bigger). It proves the client overlaps invocations and the worker handles them;
  it says nothing about Lambda's scaling or cold starts.
- awslambdaric's native client crashes on a /next answer without Content-Type (real
  Lambda always sends one; the emulator does not), so the runtimes talk to the emulator
  through `Relay`, which adds that one header and changes nothing else.
- Relay also stands in for two things only real Lambda does: throttling (429
  TooManyRequestsException) and reporting a function error as HTTP 200 with an
  X-Amz-Function-Error header (the emulator answers 500); both reach the real backend
  code through boto3.
"""

from __future__ import annotations

import http.client
import http.server
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest

import serverless_ray as sr
from serverless_ray.task_errors import BackendError
from servers import FAKE_AWS_ENV, lambda_emulator, moto_server

ROOT = Path(__file__).resolve().parents[1]
BUCKET = "sray-tasks"
RUNTIMES = 2


class Relay:
    """An HTTP relay on 127.0.0.1 in front of `upstream` (host:port). Options:
    add_content_type: add `Content-Type: application/json` to answers that lack it;
    throttle: answer this many invoke requests with Lambda's 429 before relaying;
    lambda_errors: turn the emulator's 500 for a function error into Lambda's
    200 + X-Amz-Function-Error: Unhandled."""

    def __init__(self, upstream: str, add_content_type=False, throttle=0, lambda_errors=False):
        self.upstream = upstream
        self.add_content_type, self.throttle, self.lambda_errors = add_content_type, throttle, lambda_errors
        self.throttled = 0
        relay = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _relay(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if relay.throttle and "/invocations" in self.path and relay.throttled < relay.throttle:
                    relay.throttled += 1
                    data = b'{"Type":"User","message":"Rate Exceeded."}'
                    return self._answer(429, {"x-amzn-ErrorType": "TooManyRequestsException",
                                              "Content-Type": "application/json"}, data)
                conn = http.client.HTTPConnection(relay.upstream, timeout=600)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                out = {k: v for k, v in resp.getheaders()
                       if k.lower() not in ("content-length", "transfer-encoding", "connection")}
                status = resp.status
                if relay.add_content_type and not any(k.lower() == "content-type" for k in out):
                    out["Content-Type"] = "application/json"
                if relay.lambda_errors and status == 500 and "/invocations" in self.path:
                    status, out["X-Amz-Function-Error"] = 200, "Unhandled"
                conn.close()
                self._answer(status, out, data)

            def _answer(self, status, headers, data):
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _relay

        class Server(http.server.ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                pass  # long polls cut when the emulator stops at the end of the module

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def aws(tmp_path_factory):
    """(invoke endpoint, moto endpoint): the emulator with RUNTIMES awslambdaric workers,
    and a moto S3 with the task bucket."""
    import boto3

    tmp = tmp_path_factory.mktemp("aws")
    saved = {k: os.environ.get(k) for k in FAKE_AWS_ENV}
    os.environ.update(FAKE_AWS_ENV)
    workers = []
    try:
        with moto_server(tmp) as s3_url, lambda_emulator(tmp / "emulator") as (invoke_url, runtime_api):
            boto3.client("s3", endpoint_url=s3_url).create_bucket(Bucket=BUCKET)
            host, _, path = runtime_api.partition("/")
            runtime_relay = Relay(host, add_content_type=True)
            env = {**os.environ, **FAKE_AWS_ENV, "AWS_ENDPOINT_URL_S3": s3_url,
                   "AWS_LAMBDA_RUNTIME_API": f"{runtime_relay.address}/{path}",
                   "AWS_LAMBDA_FUNCTION_NAME": "_", "AWS_LAMBDA_FUNCTION_VERSION": "1",
                   "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024", "PYTHONPATH": ""}
            for i in range(RUNTIMES):
                log = open(tmp / f"runtime-{i}.log", "wb")
                # cwd is an empty folder: the worker imports only what is installed, as on Lambda
                (tmp / "task_root").mkdir(exist_ok=True)
                workers.append(subprocess.Popen(
                    [sys.executable, "-m", "awslambdaric", "serverless_ray.lambda_worker.handler"],
                    env=env, cwd=tmp / "task_root", stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
            yield invoke_url, s3_url, tmp
            runtime_relay.close()
    finally:
        for proc in workers:
            proc.kill()
            proc.wait()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def lambda_config(invoke_url, s3_url, **extra):
    sr.config(backend="lambda", function_name="_", endpoint_url=invoke_url, region="us-east-1",
              s3_bucket=BUCKET, s3_endpoint_url=s3_url, **extra)


@pytest.fixture
def on_lambda(aws):
    invoke_url, s3_url, _ = aws
    lambda_config(invoke_url, s3_url)
    try:
        with sr.start() as session:
            yield session
    finally:
        sr.config()


def s3_keys(s3_url, prefix=""):
    import boto3

    listing = boto3.client("s3", endpoint_url=s3_url).list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return [o["Key"] for o in listing.get("Contents", [])]


# -- tasks: this module is not installed, so the backend ships them by value -------------------

@sr.remote
def double(n):
    return 2 * n


@sr.remote
def where_am_i():
    return os.getpid(), os.environ.get("AWS_LAMBDA_FUNCTION_NAME"), "test_lambda_worker" in sys.modules


class Unusual(Exception):
    pass


@sr.remote
def fail(kind):
    if kind == "unusual":
        raise Unusual("from the worker")
    raise KeyError("missing")


@sr.remote
def total(array):
    return np.asarray(array) * 2


@sr.remote
def sleeper(seconds):
    time.sleep(seconds)
    return seconds


@sr.remote
def barrier(me, bucket, parties):
    """Finishes only when `parties` tasks run at once (they meet through S3)."""
    import boto3

    s3 = boto3.client("s3")
    s3.put_object(Bucket=bucket, Key=f"barrier/{me}", Body=b"")
    deadline = time.monotonic() + 60
    while len(s3.list_objects_v2(Bucket=bucket, Prefix="barrier/").get("Contents", [])) < parties:
        if time.monotonic() > deadline:
            raise RuntimeError("the other tasks never arrived: they did not run at the same time")
        time.sleep(0.05)
    return me


# -- tests ---------------------------------------------------------------------------------------

def test_tasks_run_in_the_worker_under_awslambdaric(on_lambda):
    pid, function_name, module_was_imported = sr.get(where_am_i.remote())
    assert pid != os.getpid() and function_name == "_"
    assert not module_was_imported  # the function came by value, not by importing this file
    assert sr.get(double.remote(21)) == 42
    assert double.map(range(6)) == [0, 2, 4, 6, 8, 10]
    assert sr.get(double.remote(double.remote(sr.put(1)))) == 4


def test_exceptions_keep_their_type_and_remote_traceback(on_lambda):
    with pytest.raises(Unusual, match="from the worker") as info:
        sr.get(fail.remote("unusual"))
    assert "in fail" in info.value.__cause__.tb
    with pytest.raises(KeyError):
        sr.get(fail.remote("key"))


def test_large_arguments_and_results_go_through_s3(aws):
    invoke_url, s3_url, _ = aws
    lambda_config(invoke_url, s3_url, inline_limit=20_000)
    try:
        with sr.start() as session:
            big = np.arange(50_000, dtype=np.float64)  # 400 kB: over the inline limit both ways
            np.testing.assert_array_equal(sr.get(total.remote(big)), big * 2)
            session_prefix = f"serverless_ray/{session.backend.session_id}/"
            leftovers = [k for k in s3_keys(s3_url, session_prefix) if "/functions/" not in k]
            assert leftovers == []  # the call and result objects are deleted once read
    finally:
        sr.config()


def test_a_function_shipped_through_s3_is_deleted_when_the_session_ends(aws):
    invoke_url, s3_url, _ = aws
    lambda_config(invoke_url, s3_url, inline_limit=20_000)
    table = bytes(range(256)) * 100  # 25.6 kB captured: the function is over half the inline limit

    @sr.remote
    def lookup(i):
        return table[i]

    try:
        with sr.start() as session:
            assert sr.get(lookup.remote(300)) == table[300]
            session_prefix = f"serverless_ray/{session.backend.session_id}/"
            assert [k for k in s3_keys(s3_url, session_prefix) if "/functions/" in k]  # it went through S3
        assert s3_keys(s3_url, session_prefix) == []
    finally:
        sr.config()


def test_no_bucket_and_too_big_is_explained(aws):
    invoke_url, s3_url, _ = aws
    sr.config(backend="lambda", function_name="_", endpoint_url=invoke_url, region="us-east-1",
              inline_limit=20_000)
    try:
        with sr.start():
            with pytest.raises(ValueError, match="give the backend an S3 bucket"):
                sr.get(total.remote(np.zeros(50_000)))
    finally:
        sr.config()


def test_timeout_is_enforced_in_the_worker(on_lambda):
    with pytest.raises(sr.TaskTimeoutError, match="timeout_s=0.5"):
        sr.get(sleeper.options(timeout_s=0.5).remote(30))
    assert sr.get(double.remote(1)) == 2  # the worker goes on serving


def test_two_invocations_run_at_once(on_lambda, aws):
    assert barrier.map(range(RUNTIMES), bucket=BUCKET, parties=RUNTIMES) == list(range(RUNTIMES))


def test_a_worker_failure_from_the_emulator_500(on_lambda):
    # an event the handler rejects: the function error path (the emulator answers 500)
    backend = on_lambda.backend
    ok, error = backend._invoke(double, {"not": "a task"}, double._options)
    assert not ok and isinstance(error, BackendError), error
    assert "ValueError: not a serverless_ray task event" in str(error)
    assert sr.get(double.remote(2)) == 4  # the runtime goes on serving


def test_lambda_style_function_errors_and_throttling(aws):
    invoke_url, s3_url, _ = aws
    relay = Relay(urlparse(invoke_url).netloc, throttle=3, lambda_errors=True)
    try:
        lambda_config(f"http://{relay.address}", s3_url, backoff_s=0.01)
        with sr.start() as session:
            assert sr.get(double.remote(5)) == 10   # three 429s, retried with backoff
            assert relay.throttled == 3
            ok, error = session.backend._invoke(double, {"not": "a task"}, double._options)
            assert not ok and isinstance(error, BackendError), error
            assert "ValueError: not a serverless_ray task event" in str(error)
    finally:
        relay.close()
        sr.config()


def test_throttling_past_the_retries_is_an_error(aws):
    invoke_url, s3_url, _ = aws
    relay = Relay(urlparse(invoke_url).netloc, throttle=100)
    try:
        lambda_config(f"http://{relay.address}", s3_url, backoff_s=0.001, throttle_retries=2)
        with sr.start():
            with pytest.raises(BackendError, match="after 2 throttling retries"):
                sr.get(double.remote(5))
    finally:
        relay.close()
        sr.config()


def test_options_the_backend_cannot_honour_are_explained(on_lambda):
    with pytest.warns(sr.ResourceRequestWarning) as record:
        ref = double.options(num_cpus=10, num_gpus=1, memory_mb=512 * 1024).remote(1)
    text = " ".join(str(w.message) for w in record)
    assert "Lambda has no GPUs" in text and "at most 6 vCPUs" in text and "largest memory size is 10240" in text
    with pytest.warns(sr.ResourceRequestWarning, match="this function has 1024 MB"):
        assert sr.get(ref) == 2  # the worker reports its real memory size


def test_memory_chooses_the_function():
    from serverless_ray.backends.lambda_ import LambdaBackend, memory_for
    from serverless_ray.options import make

    backend = LambdaBackend(function_name="small", region="us-east-1",
                            memory_functions={1024: "w-1g", 4096: "w-4g", 10240: "w-10g"})
    try:
        assert backend.function_for(make()) == "small"
        assert backend.function_for(make(memory_mb=2000)) == "w-4g"
        assert backend.function_for(make(num_cpus=4)) == "w-10g"  # 4 vCPUs need 7076 MB
        assert memory_for(make(num_cpus=1, memory_mb=512)) == 1769
    finally:
        backend.shutdown()


def test_factors_by_name_with_an_s3_store(on_lambda, aws):
    _, s3_url, _ = aws
    sys.path.insert(0, str(ROOT / "examples"))
    import run_2
    from serverless_ray.store import S3Store

    store = S3Store(BUCKET, "run2", endpoint_url=s3_url)
    run_2.ensure_inputs(store, rows=60, assets=8)
    with pytest.warns(sr.ResourceRequestWarning, match="memory_mb=1769 but this function has 1024 MB"):
        timeline = run_2.compute_factors(f"s3://{BUCKET}/run2")
    times = {name: (start, end) for name, start, end in timeline}
    assert times["f3"][0] >= max(times["f1"][1], times["f2"][1])
    assert run_2.check(store) == 0.0
