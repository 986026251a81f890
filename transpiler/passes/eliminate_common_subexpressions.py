"""Computes each repeated window or row kernel once, across nodes.

    def a(self): return rank(delta(close, 1))
    def b(self): return delta(close, 1) * volume
  ->
    def _cse1(self): return delta(close, 1)          # a new private node
    def a(self): return rank(self._cse1)
    def b(self): return self._cse1 * volume

Calls are compared with the node's locals substituted, so `d = delta(close, 1)` in one
node and `delta(close, 1)` in another are the same call. When a node's whole value is the
repeated call, the others read that node instead of a new one. Elementwise code is not
shared: recomputing it inside a fused loop is cheaper than a pass over memory.
"""

from __future__ import annotations

from dataclasses import replace

from .. import ir
from ..optable import OPS
from ._rewrite import rewrite_dags

_MAX_SIZE = 10_000  # expanded trees larger than this are not considered


def _expand(node: ir.Node) -> tuple[list[ir.Call], ir.Expr]:
    """With the node's locals substituted: its window and row kernel calls, and its value."""
    env: dict[str, ir.Expr] = {}
    found: list[ir.Call] = []

    def expand(e: ir.Expr) -> ir.Expr:
        match e:
            case ir.Local(name=n):
                return env[n]
            case ir.Call(op=op, args=args):
                out = ir.Call(op, tuple(expand(a) for a in args))
                if not OPS[op].elementwise:
                    found.append(out)
                return out
        return e

    for b in node.body:
        env[b.name] = expand(b.value)
    return found, expand(node.result)


def _size(e: ir.Expr) -> int:
    return sum(1 for _ in ir.walk(e))


def _replace_calls(node: ir.Node, key: ir.Expr, ref: ir.Ref) -> ir.Node:
    """Replaces every call of `node` whose expanded form equals `key` by `ref`."""
    env: dict[str, ir.Expr] = {}

    def rewrite(e: ir.Expr) -> tuple[ir.Expr, ir.Expr]:
        """(rewritten e, expanded original e)."""
        match e:
            case ir.Local(name=n):
                return e, env[n]
            case ir.Call(op=op, args=args):
                pairs = [rewrite(a) for a in args]
                expanded = ir.Call(op, tuple(x for _, x in pairs))
                if expanded == key:
                    return replace(ref, span=e.span), expanded
                new_args = tuple(r for r, _ in pairs)
                same = all(r is a for r, a in zip(new_args, args))
                return (e if same else replace(e, args=new_args)), expanded
        return e, e

    body = []
    for b in node.body:
        value, expanded = rewrite(b.value)
        env[b.name] = expanded
        body.append(b if value is b.value else replace(b, value=value))
    result, _ = rewrite(node.result)
    if result is node.result and all(a is b for a, b in zip(body, node.body)):
        return node
    return replace(node, body=tuple(body), result=result)


def _dag(dag: ir.Dag) -> ir.Dag:
    counts: dict[ir.Expr, int] = {}
    order: list[ir.Expr] = []
    whole: dict[ir.Expr, str] = {}  # a call that is some node's entire value -> that node
    for node in dag.nodes:
        calls, value = _expand(node)
        for call in calls:
            if _size(call) > _MAX_SIZE:
                continue
            if call not in counts:
                order.append(call)
            counts[call] = counts.get(call, 0) + 1
        whole.setdefault(value, node.name)
    repeated = [c for c in order if counts[c] > 1]
    if not repeated:
        return dag
    # The largest repeated call first; calls inside it are shared in a later round.
    key = max(repeated, key=_size)
    taken = {n.name for n in dag.nodes}
    if key in whole:
        owner = whole[key]
        ref = ir.Ref(owner, "node")
        nodes = tuple(n if n.name == owner else _replace_calls(n, key, ref) for n in dag.nodes)
        return replace(dag, nodes=nodes)
    k = 1
    while f"_cse{k}" in taken:
        k += 1
    name = f"_cse{k}"
    ref = ir.Ref(name, "node")
    shared = ir.Node(name, (), key, f"shared by the optimizer: {OPS[key.op].name}(...)", None, private=True)
    nodes = tuple(_replace_calls(n, key, ref) for n in dag.nodes) + (shared,)
    return replace(dag, nodes=nodes)


def eliminate_common_subexpressions(module: ir.Module) -> ir.Module:
    return rewrite_dags(module, _dag)
