"""Building a generated crate into a wheel with maturin, and installing it.

Every build shares one cargo target directory (`target_dir()`), so building a second or
edited DAG recompiles only the generated crate, not its dependencies.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from .crate import ToolchainError


def target_dir() -> Path:
    """$SRAY_TARGET_DIR, else <user cache dir>/serverless_ray/target."""
    if os.environ.get("SRAY_TARGET_DIR"):
        return Path(os.environ["SRAY_TARGET_DIR"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "serverless_ray" / "target"


def _run(cmd: list[str], what: str, env: dict | None = None, echo=None) -> str:
    """Runs a command, streaming its output lines to `echo`; raises ToolchainError on failure."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if echo is not None:
            echo(line.rstrip("\n"))
    if proc.wait() != 0:
        tail = "".join(lines[-60:])
        raise ToolchainError(f"{what} failed (exit {proc.returncode}): {' '.join(cmd)}\n{tail}")
    return "".join(lines)


def build_wheel(crate_dir: Path, dist_dir: Path, *, release: bool = True, target: Path | None = None, echo=None) -> Path:
    """`maturin build` of the crate; returns the wheel, left in `dist_dir`."""
    if shutil.which("cargo") is None:
        raise ToolchainError("cargo was not found on PATH; install Rust (https://rustup.rs) and retry")
    dist_dir = Path(dist_dir).resolve()
    dist_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CARGO_TARGET_DIR": str(target or target_dir())}
    cmd = [sys.executable, "-m", "maturin", "build", "--manifest-path", str(Path(crate_dir) / "Cargo.toml"),
           "--out", str(dist_dir), "--interpreter", sys.executable]
    if release:
        cmd.append("--release")
    output = _run(cmd, "maturin build", env=env, echo=echo)
    wheels = [line.split("Built wheel", 1)[1].strip() for line in output.splitlines() if "Built wheel" in line]
    if not wheels:
        raise ToolchainError(f"maturin did not report a wheel:\n{output[-2000:]}")
    path = wheels[-1].split(" to ", 1)[-1].strip()
    return Path(path)


def install_wheel(wheel: Path, echo=None) -> None:
    """Installs the wheel into the running Python environment (replacing an older build)."""
    _run([sys.executable, "-m", "pip", "install", "--no-deps", "--force-reinstall", "--quiet", str(wheel)],
         "pip install", echo=echo)

