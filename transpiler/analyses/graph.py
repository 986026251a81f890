"""The dependency graph of a DAG (networkx), and the facts read off it.

Vertices are input and node names; an edge `dep -> node` means `node` reads `dep`, and
carries the span of the first read, so that errors can point at it.
"""

from __future__ import annotations

import networkx as nx

from .. import ir


def dependency_graph(dag: ir.Dag) -> nx.DiGraph:
    g = nx.DiGraph()
    for i in dag.inputs:
        g.add_node(i.name, kind="input", span=i.span)
    for n in dag.nodes:
        g.add_node(n.name, kind="node", span=n.span)
    for n in dag.nodes:
        for r in ir.refs(n):
            g.add_edge(r.name, n.name, span=r.span)
    return g


def node_dependencies(dag: ir.Dag) -> dict[str, list[str]]:
    """For each node, the inputs and nodes it reads, in first-use order."""
    return {n.name: [r.name for r in ir.refs(n)] for n in dag.nodes}


def topological_order(dag: ir.Dag) -> list[str]:
    """Nodes in a deterministic topological order (ties broken by declaration order)."""
    g = dependency_graph(dag)
    order = {n.name: i for i, n in enumerate(dag.nodes)}
    nodes = g.subgraph(order)
    return list(nx.lexicographical_topological_sort(nodes, key=order.__getitem__))


def levels(dag: ir.Dag) -> list[list[str]]:
    """Nodes grouped by topological level: level 0 reads only inputs; level k reads
    something of level k-1. Within a level, declaration order."""
    depth: dict[str, int] = {}
    deps = node_dependencies(dag)
    for name in topological_order(dag):
        node_deps = [d for d in deps[name] if d in deps]
        depth[name] = 1 + max((depth[d] for d in node_deps), default=-1)
    out: list[list[str]] = [[] for _ in range(1 + max(depth.values(), default=-1))]
    for n in dag.nodes:
        out[depth[n.name]].append(n.name)
    return out


def cone(dag: ir.Dag, changed: str) -> set[str]:
    """The nodes downstream of an input or node: what a change to it can touch."""
    return nx.descendants(dependency_graph(dag), changed) & {n.name for n in dag.nodes}
