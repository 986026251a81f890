"""Passes: IR -> IR rewrites. The order lives in PIPELINE, the one list.

A pass is a function `Module -> Module` that returns its argument unchanged (the same
object) when it has nothing to rewrite; `run_pipeline` repeats the list until a whole
round changes nothing. Adding a pass is a new file plus one line here.
"""

from __future__ import annotations

from typing import Callable

from .. import ir
from .eliminate_common_subexpressions import eliminate_common_subexpressions
from .eliminate_dead_locals import eliminate_dead_locals
from .fold_constants import fold_constants
from .fuse_private_nodes import fuse_private_nodes

Pass = Callable[[ir.Module], ir.Module]

PIPELINE: list[Pass] = [
    fold_constants,
    fuse_private_nodes,
    eliminate_common_subexpressions,
    eliminate_dead_locals,
]

MAX_ROUNDS = 20


def run_pipeline(module: ir.Module, passes: list[Pass] | None = None, check: bool = False) -> ir.Module:
    """Runs the passes to a fixed point; with `check`, runs `ir.check_ir` after each pass."""
    for _ in range(MAX_ROUNDS):
        before = module
        for p in PIPELINE if passes is None else passes:
            module = p(module)
            if check and (problems := ir.check_ir(module)):
                raise AssertionError(f"{p.__name__} broke the IR: {problems}")
        if module == before:
            return module
    return module
