"""Which GEMM backs `matmul`: pure-Rust candidates side by side with numpy's BLAS.

    python bench/gemm.py [--repeat 5]

Builds bench/gemm (a crate outside the workspace, with ndarray+matrixmultiply and faer)
into $SRAY_TARGET_DIR/gemm-bench, times each candidate on the same shapes, times
np.matmul in this process, and prints GFLOP/s and the ratio to numpy. The shapes are
square matrices and the ones factor models use: (T x N) @ (N x K) and (T x K) @ (K x N).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "transpiler"))

SHAPES = [(500, 500, 500), (1000, 1000, 1000), (2000, 2000, 2000), (2000, 3000, 20), (2000, 20, 3000)]


def _blas_name() -> str:
    try:
        return np.show_config(mode="dicts")["Build Dependencies"]["blas"]["name"]
    except Exception:  # older numpy: no dict mode
        return "BLAS"


def numpy_seconds(m, k, n, repeat):
    a = np.random.default_rng(0).standard_normal((m, k))
    b = np.random.default_rng(1).standard_normal((k, n))
    np.matmul(a, b)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        np.matmul(a, b)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    from sray_transpiler.toolchain.build import target_dir

    target = target_dir() / "gemm-bench"
    subprocess.run(["cargo", "build", "--release", "--quiet", "--manifest-path", str(HERE / "gemm" / "Cargo.toml")],
                   check=True, env={**os.environ, "CARGO_TARGET_DIR": str(target)})
    exe = target / "release" / "sray-gemm-bench"
    threads = os.cpu_count()
    print(f"{threads} cpus; matrixmultiply threads = MATMUL_NUM_THREADS = {threads}; faer-rayon on all cpus")
    print(f"{'shape (m, k, n)':<20} {'candidate':<24} {'GFLOP/s':>8} {'vs numpy':>9}")
    for m, k, n in SHAPES:
        np_s = numpy_seconds(m, k, n, args.repeat)
        flops = 2.0 * m * k * n
        print(f"{str((m, k, n)):<20} {'numpy (' + _blas_name() + ')':<24} "
              f"{flops / np_s / 1e9:>8.1f} {1.0:>8.2f}x")
        env = {**os.environ, "MATMUL_NUM_THREADS": str(threads)}
        out = subprocess.run([str(exe), str(m), str(k), str(n), str(args.repeat)], capture_output=True, text=True,
                             check=True, env=env).stdout
        for line in out.splitlines():
            r = json.loads(line)
            print(f"{'':<20} {r['candidate']:<24} {r['gflops']:>8.1f} {np_s / r['seconds']:>8.2f}x")


if __name__ == "__main__":
    main()
