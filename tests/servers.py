"""Real local stand-ins for AWS, started and stopped by the tests (always on 127.0.0.1).

- `moto_server()`: moto's S3/Lambda/IAM HTTP server on a free port; yields its endpoint URL.
- `lambda_emulator(workdir)`: cargo-lambda's Lambda Runtime API emulator
  (`cargo lambda watch --only-lambda-apis`); yields (invoke endpoint, runtime API address).

Both stop their process group by process id on exit, whatever the test did.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

HOST = "127.0.0.1"

# Credentials for the local servers only; never a real account.
FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _wait_listening(port: int, proc: subprocess.Popen, log: Path, timeout: float = 30.0) -> None:
    """Waits until something accepts TCP connections on HOST:port (the emulator's routes
    other than its own block or 404, so a plain connect is the honest readiness check)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listened on {HOST}:{port} within {timeout:.0f}s:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    """Stops the process group of `proc`: SIGTERM, then SIGKILL after 5 s."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


@contextlib.contextmanager
def moto_server(logdir: Path):
    """Yields the endpoint URL of a fresh moto server (all services, in memory)."""
    port = free_port()
    log = Path(logdir) / f"moto-{port}.log"
    exe = shutil.which("moto_server")
    cmd = [exe] if exe else [sys.executable, "-m", "moto.server"]
    with open(log, "wb") as out:
        proc = subprocess.Popen([*cmd, "-H", HOST, "-p", str(port)], stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        url = f"http://{HOST}:{port}"
        _wait_listening(port, proc, log)
        yield url
    finally:
        _stop(proc)


@contextlib.contextmanager
def lambda_emulator(workdir: Path):
    """Starts cargo-lambda's Runtime API emulator in `workdir`; yields
    (invoke endpoint for boto3, value for AWS_LAMBDA_RUNTIME_API).

    The emulator wants a Cargo package in its working directory; an empty one is made
    when `workdir` has none. It does not start any function: the test runs the real
    bootstrap (or awslambdaric) against the runtime API itself.
    """
    if shutil.which("cargo-lambda") is None:
        pytest.fail("cargo-lambda is not installed: python -m pip install -e '.[test]'")
    workdir = Path(workdir)
    if not (workdir / "Cargo.toml").exists():
        (workdir / "src").mkdir(parents=True, exist_ok=True)
        (workdir / "src" / "main.rs").write_text("fn main() {}\n")
        (workdir / "Cargo.toml").write_text('[package]\nname = "emulator-home"\nversion = "0.0.0"\nedition = "2021"\n\n[workspace]\n')
    port = free_port()
    log = workdir / f"emulator-{port}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(["cargo", "lambda", "watch", "--only-lambda-apis", "-A", HOST, "-P", str(port)],
                                cwd=workdir, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_listening(port, proc, log, timeout=60)
        yield f"http://{HOST}:{port}", f"{HOST}:{port}/.rt"
    finally:
        _stop(proc)
