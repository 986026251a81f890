"""Running a Lambda `bootstrap` locally: cargo-lambda's Runtime API emulator
(`cargo lambda watch --only-lambda-apis`), the real bootstrap polling it, and a boto3
Invoke against it. Everything listens on 127.0.0.1 and is stopped by process id.

Facts this relies on (cargo-lambda 1.x): the emulator wants a Cargo package in its
working directory (an empty one is made), serves the Runtime API under
`http://HOST:PORT/.rt` and the Invoke API at `http://HOST:PORT` (function `_`), and
answers a function error with HTTP 500 (real Lambda: 200 and a FunctionError header).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .crate import ToolchainError

HOST = "127.0.0.1"
FUNCTION = "_"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_listening(port: int, proc: subprocess.Popen, log: Path, timeout: float = 30.0) -> None:
    """Waits until something accepts TCP connections on HOST:port (the emulator's routes
    other than its own block or 404, so a plain connect is the honest readiness check)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ToolchainError(f"{proc.args[0]} exited with {proc.returncode}:\n{Path(log).read_text()[-3000:]}")
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise ToolchainError(f"nothing listened on {HOST}:{port} within {timeout:.0f}s:\n{Path(log).read_text()[-3000:]}")


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def stop(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """Stops the whole process group of `proc` (started with start_new_session): SIGTERM,
    then SIGKILL for whatever is left after `grace` seconds. The group, not just `proc`:
    `cargo lambda` runs the emulator as a child that, on SIGTERM, waits for open
    connections and can outlive its parent."""
    pgid = proc.pid
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if proc.poll() is not None and not _group_alive(pgid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    proc.wait(5)


@contextlib.contextmanager
def lambda_emulator(workdir: Path):
    """Starts cargo-lambda's Runtime API emulator in `workdir`; yields
    (invoke endpoint for boto3, runtime API address `HOST:PORT/.rt`).

    It does not start any function: run the real bootstrap against the runtime API
    (`run_bootstrap`)."""
    if shutil.which("cargo-lambda") is None:
        raise ToolchainError("cargo-lambda is not installed: python -m pip install cargo-lambda "
                             "(or `python -m pip install 'serverless_ray[lambda]'`)")
    workdir = Path(workdir)
    if not (workdir / "Cargo.toml").exists():
        (workdir / "src").mkdir(parents=True, exist_ok=True)
        (workdir / "src" / "main.rs").write_text("fn main() {}\n")
        (workdir / "Cargo.toml").write_text(
            '[package]\nname = "emulator-home"\nversion = "0.0.0"\nedition = "2021"\n\n[workspace]\n')
    port = free_port()
    log = workdir / f"emulator-{port}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(["cargo", "lambda", "watch", "--only-lambda-apis", "-A", HOST, "-P", str(port)],
                                cwd=workdir, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_listening(port, proc, log, timeout=60)
        yield f"http://{HOST}:{port}", f"{HOST}:{port}/.rt"
    finally:
        stop(proc)


def bootstrap_env(runtime_api: str, extra: dict | None = None, memory_mb: int = 1024) -> dict[str, str]:
    """The environment Lambda gives a function, pointed at a local runtime API."""
    api = runtime_api if "://" in runtime_api else f"http://{runtime_api}"
    return {
        **os.environ,
        "AWS_LAMBDA_RUNTIME_API": api,
        "AWS_LAMBDA_FUNCTION_NAME": FUNCTION,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb),
        **(extra or {}),
    }


@contextlib.contextmanager
def run_bootstrap(binary: Path, runtime_api: str, log: Path, env: dict | None = None):
    """Runs a bootstrap against `runtime_api` until the block ends; yields its Popen."""
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(binary)], env=bootstrap_env(runtime_api, env), stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        stop(proc)


@dataclass
class InvokeResult:
    """One invocation's answer: the payload (parsed JSON), and the error type when the
    function failed (`payload` is then {"errorType", "errorMessage"})."""

    payload: object
    error_type: str | None
    status: int

    @property
    def ok(self) -> bool:
        return self.error_type is None


def interpret(status: int, function_error: str | None, body: bytes) -> InvokeResult:
    """Reads an Invoke answer under both conventions: real Lambda (200 with a
    FunctionError header) and the emulator (HTTP 500 with the error document)."""
    try:
        payload = json.loads(body) if body else None
    except ValueError:
        payload = body.decode("utf-8", "replace")
    failed = bool(function_error) or status >= 400
    if not failed:
        return InvokeResult(payload, None, status)
    kind = payload.get("errorType") if isinstance(payload, dict) else None
    return InvokeResult(payload, kind or function_error or f"HTTP {status}", status)


def lambda_client(endpoint_url: str | None = None, read_timeout: int = 900):
    """A boto3 Lambda client that never retries an invocation (a retried failed
    invocation would run the function again)."""
    import boto3
    from botocore.config import Config

    config = Config(retries={"total_max_attempts": 1}, read_timeout=read_timeout, connect_timeout=10)
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if endpoint_url:
        # The emulator takes any credentials; keep real ones out of local traffic.
        return boto3.client("lambda", endpoint_url=endpoint_url, config=config, region_name=region or "us-east-1",
                            aws_access_key_id="local", aws_secret_access_key="local")
    return boto3.client("lambda", config=config, region_name=region)


def invoke(client, payload: bytes, function_name: str = FUNCTION) -> InvokeResult:
    """Invokes synchronously, whichever error convention the endpoint follows."""
    from botocore.exceptions import ClientError

    raw: dict = {}

    def grab(http_response, **_):
        # botocore drops the body of an error status; keep it (a success streams on).
        if http_response.status_code >= 300:
            raw["body"] = http_response.content

    client.meta.events.register("after-call.lambda.Invoke", grab)
    try:
        r = client.invoke(FunctionName=function_name, Payload=payload)
    except ClientError as e:
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if status >= 500 and raw.get("body"):
            return interpret(status, None, raw["body"])
        raise
    finally:
        client.meta.events.unregister("after-call.lambda.Invoke", grab)
    return interpret(r["StatusCode"], r.get("FunctionError"), r["Payload"].read())
