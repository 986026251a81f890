"""examples/run_1.py and examples/run_2.py, run as a user runs them (subprocesses)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_example(name: str, *args: str, cwd=None) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / name), *args], capture_output=True, text=True,
                          timeout=300, cwd=cwd)
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def test_run_1_maps_in_parallel():
    out = run_example("run_1.py", "--sleep", "1").stdout
    assert "heavy_computation.map([1, 2, 3]) = [2, 4, 6]" in out
