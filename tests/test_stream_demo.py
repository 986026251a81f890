"""examples/stream_demo.py, the README's streaming example, runs and finds today's row of
every factor equal to a batch run (on a smaller market than its default)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_streaming_demo_appends_a_bar_and_matches_a_batch_run(compiled):
    module = compiled(ROOT / "examples" / "alphas101.py")
    site = Path(module.__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT / "examples")])}
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "stream_demo.py"), "400", "150"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "bit for bit: True" in proc.stdout
    assert "alpha101's top 5 assets today" in proc.stdout
