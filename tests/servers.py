"""Real local stand-ins for AWS, started and stopped by the tests (always on 127.0.0.1).

- `moto_server()`: moto's S3/Lambda/IAM HTTP server on a free port; yields its endpoint URL.
- `lambda_emulator(workdir)`: cargo-lambda's Lambda Runtime API emulator
  (`cargo lambda watch --only-lambda-apis`); yields (invoke endpoint, runtime API address).

Both stop their process group by process id on exit, whatever the test did. The
emulator's recipe is shared with `sray-gen invoke --local` (sray_transpiler.toolchain.emulator).
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
from pathlib import Path

from sray_transpiler.toolchain import emulator

HOST = emulator.HOST

# Credentials for the local servers only; never a real account.
FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


free_port = emulator.free_port
_wait_listening = emulator.wait_listening
_stop = emulator.stop
# The emulator lives in the package (`sray-gen invoke --local` uses it too).
lambda_emulator = emulator.lambda_emulator


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
