"""`sray-gen generate FILE`: writes the Rust crate of a DAG file, without building it."""

from __future__ import annotations

from pathlib import Path

from ..backend.rust import render_crate
from ..driver import load
from ..toolchain.crate import ToolchainError, rustfmt, write_crate
from .config import module_name_problem


def generate(config, say=print) -> Path:
    """Parses, checks, optimizes and writes the crate; returns its directory."""
    problem = module_name_problem(config.module_name)
    if problem:
        raise ToolchainError(problem)
    module = load(config.file)
    say(f"  {config.file}: {', '.join(f'{d.name} ({len(d.nodes)} nodes)' for d in module.dags)}")
    files = rustfmt(render_crate(module, config.module_name))
    changed = write_crate(files, config.crate_dir)
    say(f"  crate {config.crate_dir} ({len(changed)} file(s) changed)")
    return config.crate_dir


def run(config) -> int:
    print(f"[1/1] generating the Rust crate of {config.file}")
    generate(config)
    return 0
