"""Evaluates elementwise calls whose arguments are all constants, with the op's own
float64 meaning (`sray_transpiler.elementwise`, which the Python reference re-exports).

    x * (1 / 4) + 2 ** 3   ->   x * 0.25 + 8.0
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .. import elementwise, ir
from ..optable import OPS
from ._rewrite import rewrite_module


def _fold(e: ir.Expr) -> ir.Expr:
    if isinstance(e, ir.Call) and OPS[e.op].elementwise and all(isinstance(a, ir.Const) for a in e.args):
        with np.errstate(all="ignore"):
            value = float(getattr(elementwise, OPS[e.op].python)(*(a.value for a in e.args)))
        return ir.Const(value, e.span)
    return e


def fold_constants(module: ir.Module) -> ir.Module:
    return rewrite_module(module, lambda dag, node: replace_exprs(node, _fold))


def replace_exprs(node: ir.Node, fn) -> ir.Node:
    """The node with `fn` applied bottom-up to every expression (the same object if
    nothing changed)."""
    body = tuple(replace(b, value=v) if (v := ir.map_bottom_up(b.value, fn)) is not b.value else b for b in node.body)
    result = ir.map_bottom_up(node.result, fn)
    if result is node.result and all(a is b for a, b in zip(body, node.body)):
        return node
    return replace(node, body=body, result=result)
