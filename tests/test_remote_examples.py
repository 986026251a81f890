"""examples/run_1.py and examples/run_2.py, run as a user runs them (subprocesses)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def run_example(name: str, *args: str, cwd=None) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / name), *args], capture_output=True, text=True,
                          timeout=300, cwd=cwd)
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def test_run_1_maps_in_parallel():
    out = run_example("run_1.py", "--sleep", "1").stdout
    assert "heavy_computation.map([1, 2, 3]) = [2, 4, 6]" in out


def test_run_2_as_a_user_runs_it(tmp_path):
    out = run_example("run_2.py", "--store", str(tmp_path / "store"), "--work-s", "0.2", cwd=tmp_path).stdout
    assert "f1 and f2 in parallel, then f3" in out
    assert "largest difference 0.0e+00" in out
    assert sorted(p.name for p in (tmp_path / "store").iterdir()) == [
        "close.npy", "f1.npy", "f2.npy", "f3.npy", "high.npy", "low.npy", "open.npy"]


def _import_run_2():
    sys.path.insert(0, str(ROOT / "examples"))
    import run_2

    return run_2


def test_run_2_respects_the_graph(tmp_path):
    run_2 = _import_run_2()
    timeline = {name: (start, end) for name, start, end in run_2.main(["--store", str(tmp_path), "--work-s", "1"])}
    (s1, e1), (s2, e2), (s3, _) = timeline["f1"], timeline["f2"], timeline["f3"]
    assert s3 >= max(e1, e2)        # f3 only after both of its inputs exist
    assert s1 < e2 and s2 < e1      # f1 and f2 ran at the same time


def test_run_2_whole_graph_in_one_compiled_task(tmp_path, compiled):
    run_2 = _import_run_2()
    module = compiled(ROOT / "examples" / "funcs_seed.py")
    assert module.__name__ == "funcs_seed_rs"
    from serverless_ray.store import open_store

    run_2.main(["--store", str(tmp_path / "py"), "--work-s", "0"])
    timeline = run_2.main(["--store", str(tmp_path / "rs"), "--work-s", "0", "--compiled"])
    assert [name for name, *_ in timeline] == ["f1", "f2", "f3"]
    py, rs = open_store(tmp_path / "py"), open_store(tmp_path / "rs")
    for name in ("f1", "f2", "f3"):
        np.testing.assert_allclose(rs.read(name), py.read(name), rtol=1e-12, equal_nan=True)
