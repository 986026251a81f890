"""Build targets: what `sray-gen build --target NAME` makes of a DAG file.

Every target is a module of this package holding `TARGET = Target(...)`: the part it adds
to each generated crate (templates, Cargo features, binaries) and the function that
builds its artifact from the generated crate (see base.py). `registry()` lists them in
order; adding a target is a new module plus one line there. The CLI (`--target` choices,
help, progress steps) and crate generation read everything from here: every generated
crate holds every target's part, so building another target later regenerates nothing.
"""

from __future__ import annotations

import time
from pathlib import Path

from ..backend.rust import render_crate
from ..config import Config, module_name_problem
from ..driver import load
from ..toolchain.crate import ToolchainError, rustfmt, write_crate
from .base import Progress, Target


def registry() -> dict[str, Target]:
    """The build targets, by name, in the order `all` builds them."""
    from . import lambda_, python

    return {t.name: t for t in (python.TARGET, lambda_.TARGET)}


def select(name: str) -> list[Target]:
    """The targets `--target name` builds: one, or every one for `all`."""
    targets = registry()
    if name == "all":
        return list(targets.values())
    if name not in targets:
        raise ToolchainError(f"unknown build target `{name}`; choose one of {', '.join([*targets, 'all'])}")
    return [targets[name]]


def render(module, crate_name: str) -> dict[str, str]:
    """The files of a DAG module's crate with every target's part, rustfmt-ed."""
    return rustfmt(render_crate(module, crate_name, tuple(t.part for t in registry().values())))


def generate(config: Config, say=print) -> Path:
    """Parses, checks and optimizes the DAG file, and writes its crate with every target's
    part (so that building another target later regenerates nothing); returns its directory."""
    problem = module_name_problem(config.module_name)
    if problem:
        raise ToolchainError(problem)
    module = load(config.file)
    say(f"  {config.file}: {', '.join(f'{d.name} ({len(d.nodes)} nodes)' for d in module.dags)}")
    changed = write_crate(render(module, config.module_name), config.crate_dir)
    say(f"  crate {config.crate_dir} ({len(changed)} file(s) changed)")
    return config.crate_dir


def build(config: Config, say=print) -> list[str]:
    """`sray-gen build`: generates the crate, then builds each selected target, with
    progress lines; returns what each target made."""
    targets = select(config.target)
    progress = Progress(1 + sum(t.steps(config) for t in targets), bool(config.verbose), say)
    progress.step(f"generating the Rust crate of {config.file}")
    crate = generate(config, say=lambda line: say(line, flush=True))
    made = [t.build(crate, config, progress) for t in targets]
    say(f"done in {time.perf_counter() - progress.t0:.1f}s: {'; '.join(made)}", flush=True)
    return made
