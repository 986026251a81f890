"""Passes: IR -> IR rewrites. The order lives in PIPELINE, the one list.

A pass is a function `Module -> Module` that returns its argument unchanged (the same
object) when it has nothing to rewrite; `run_pipeline` repeats the list until a whole
round changes nothing, and raises `PipelineDidNotConverge` if that takes more than
MAX_ROUNDS rounds (two passes undoing each other's work, or a pass that always rewrites).
Adding a pass is a new file plus one line here.
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


class PipelineDidNotConverge(RuntimeError):
    """The passes were still rewriting the module after MAX_ROUNDS rounds: a compiler bug."""

    def __init__(self, rounds: int, changing: list[str]):
        self.rounds, self.changing = rounds, changing
        super().__init__(
            f"the optimizer passes did not reach a fixed point in {rounds} rounds; still changing the module "
            f"in the last round: {', '.join(changing)} (passes that undo each other, or a pass that rewrites "
            f"a module it has already rewritten)")


def run_pipeline(module: ir.Module, passes: list[Pass] | None = None, check: bool = False) -> ir.Module:
    """Runs the passes to a fixed point; with `check`, runs `ir.check_ir` after each pass.

    Raises `PipelineDidNotConverge` when a round still changes the module after
    MAX_ROUNDS rounds."""
    for _ in range(MAX_ROUNDS):
        before = module
        changing = []
        for p in PIPELINE if passes is None else passes:
            previous, module = module, p(module)
            if module is not previous and module != previous:
                changing.append(getattr(p, "__name__", repr(p)))
            if check and (problems := ir.check_ir(module)):
                raise AssertionError(f"{getattr(p, '__name__', repr(p))} broke the IR: {problems}")
        if module == before:
            return module
    raise PipelineDidNotConverge(MAX_ROUNDS, changing)
