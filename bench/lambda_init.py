"""Init time of a Lambda `bootstrap`: process start to its first request for an event.

A tiny HTTP server on 127.0.0.1 stands in for the Lambda Runtime API and timestamps the
first `GET /2018-06-01/runtime/invocation/next`; the time from just before the process
is spawned to that request is the init time (what Lambda bills as "Init Duration" for a
custom runtime, minus unpacking the zip). For scale, the same is measured for spawning a
process that does nothing (`/bin/true`, start to exit), and both are set against the
issue's target of 30 ms.

    python bench/lambda_init.py                      # builds dist/alpha_rs-lambda.zip first
    python bench/lambda_init.py --zip dist/x-lambda.zip --runs 50
"""

from __future__ import annotations

import argparse
import http.server
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_MS = 30.0


class _Api(http.server.BaseHTTPRequestHandler):
    first: threading.Event
    at: list

    def do_GET(self):  # noqa: N802 - http.server's naming
        if self.path.endswith("/runtime/invocation/next"):
            self.server.at.append(time.perf_counter())  # type: ignore[attr-defined]
            self.server.first.set()  # type: ignore[attr-defined]
            # Hold the long poll like Lambda does; the process is killed next.
            self.server.release.wait(10)  # type: ignore[attr-defined]
        self.send_response(404)
        self.end_headers()

    def log_message(self, *_):
        pass


def init_time(binary: Path) -> float:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    server.first, server.release, server.at = threading.Event(), threading.Event(), []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {"AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{server.server_address[1]}", "AWS_LAMBDA_FUNCTION_NAME": "bench",
           "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024", "PATH": "/usr/bin:/bin"}
    t0 = time.perf_counter()
    proc = subprocess.Popen([str(binary)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if not server.first.wait(10):
            raise RuntimeError(f"{binary} sent no request for an event within 10 s")
        return server.at[0] - t0
    finally:
        proc.kill()
        proc.wait()
        server.release.set()
        server.shutdown()
        server.server_close()


def spawn_time() -> float:
    t0 = time.perf_counter()
    subprocess.run(["/bin/true"], check=True)
    return time.perf_counter() - t0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--zip", type=Path, help="a built <module>-lambda.zip (default: build examples/alpha.py's)")
    p.add_argument("--runs", type=int, default=30)
    args = p.parse_args(argv)
    z = args.zip
    if z is None:
        from sray_transpiler.targets.lambda_ import build_lambda_zip

        z = build_lambda_zip(ROOT / "examples" / "alpha.py", ROOT / "dist", echo=lambda line: print(line, flush=True))
    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(z) as zf:
            zf.extract("bootstrap", tmp)
        binary = Path(tmp) / "bootstrap"
        binary.chmod(0o755)
        init_time(binary)  # warm the page cache, as a warm Lambda host would have it
        inits = sorted(init_time(binary) for _ in range(args.runs))
        spawns = sorted(spawn_time() for _ in range(args.runs))
    med, p90 = statistics.median(inits) * 1e3, inits[int(0.9 * (len(inits) - 1))] * 1e3
    base = statistics.median(spawns) * 1e3
    print(f"zip: {z} ({z.stat().st_size / 1e6:.2f} MB; target <= 10 MB)")
    print(f"bootstrap init, start to first /invocation/next, {args.runs} runs: median {med:.2f} ms, "
          f"min {inits[0] * 1e3:.2f} ms, p90 {p90:.2f} ms")
    print(f"  vs the 30 ms target: {med / TARGET_MS:.2f}x;  vs spawning /bin/true ({base:.2f} ms): {med / base:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
