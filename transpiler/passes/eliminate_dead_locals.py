"""Removes local bindings whose value nothing reads.

    x = self.open * 2      # dead: nothing reads x
    y = self.close + 1
    return y * y       ->  y = self.close + 1; return y * y

Besides saving work, this keeps the generated Rust free of unused variables.
"""

from __future__ import annotations

from dataclasses import replace

from .. import ir
from ._rewrite import rewrite_module


def eliminate_dead_locals(module: ir.Module) -> ir.Module:
    return rewrite_module(module, lambda dag, node: _node(node))


def _node(node: ir.Node) -> ir.Node:
    live = {e.name for e in ir.walk(node.result) if isinstance(e, ir.Local)}
    kept = []
    for b in reversed(node.body):
        if b.name in live:
            kept.append(b)
            live |= {e.name for e in ir.walk(b.value) if isinstance(e, ir.Local)}
    if len(kept) == len(node.body):
        return node
    return replace(node, body=tuple(reversed(kept)))
