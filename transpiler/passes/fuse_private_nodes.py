"""Elementwise fusion across nodes: a private node (one nobody can ask for) is inlined
into the nodes that read it, so that its elementwise code runs inside their loops and its
value is never materialized.

    def _mid(self): return (self.high + self.low) / 2        # private
    def spread(self): return (self.high - self.low) / self._mid
  ->
    def spread(self): _mid = (high + low) / 2; return (high - low) / _mid    # one loop

A private node is inlined when its code is all elementwise (recomputing it per element
costs less than a pass over memory), or when it has a single reader. Otherwise (a window
or row kernel read in several places) it stays a shared, materialized node. Public nodes
are never inlined: the user can ask for them, so they stay materialized.
"""

from __future__ import annotations

from dataclasses import replace

from .. import ir
from ..optable import OPS
from ._rewrite import fresh_name, rewrite_dags


def _elementwise(node: ir.Node) -> bool:
    return all(OPS[e.op].elementwise for t in ir.node_exprs(node) for e in ir.walk(t) if isinstance(e, ir.Call))


def _reads(node: ir.Node, name: str) -> int:
    return sum(1 for t in ir.node_exprs(node) for e in ir.walk(t) if isinstance(e, ir.Ref) and e.name == name)


def _inline(reader: ir.Node, private: ir.Node) -> ir.Node:
    """`reader` with the private node's bindings prepended and its reads replaced by a local."""
    taken = {b.name for b in reader.body}
    renamed: dict[str, str] = {}

    def rename(e: ir.Expr) -> ir.Expr:
        return ir.Local(renamed[e.name], e.span) if isinstance(e, ir.Local) else e

    lets = []
    for b in private.body:
        renamed[b.name] = fresh_name(f"{private.name}/{b.name}", taken)
        lets.append(ir.Let(renamed[b.name], ir.map_bottom_up(b.value, rename), b.span))
    value = fresh_name(private.name, taken)
    lets.append(ir.Let(value, ir.map_bottom_up(private.result, rename), private.span))

    def substitute(e: ir.Expr) -> ir.Expr:
        return ir.Local(value, e.span) if isinstance(e, ir.Ref) and e.name == private.name else e

    body = tuple(lets) + tuple(replace(b, value=ir.map_bottom_up(b.value, substitute)) for b in reader.body)
    return replace(reader, body=body, result=ir.map_bottom_up(reader.result, substitute))


def _dag(dag: ir.Dag) -> ir.Dag:
    for private in dag.nodes:
        if not private.private:
            continue
        readers = [n for n in dag.nodes if _reads(n, private.name)]
        if not readers:
            continue
        if not (_elementwise(private) or sum(_reads(n, private.name) for n in readers) == 1):
            continue
        nodes = tuple(_inline(n, private) if n in readers else n for n in dag.nodes if n is not private)
        return replace(dag, nodes=nodes)  # one at a time; the pipeline repeats to a fixed point
    return dag


def fuse_private_nodes(module: ir.Module) -> ir.Module:
    return rewrite_dags(module, _dag)
