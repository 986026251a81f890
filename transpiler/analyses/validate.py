"""Graph-level checks that need the whole DAG: cycles, nodes that cannot be computed,
names the generated module cannot carry, and operands whose dims disagree.

Name-level problems (unknown names, unsupported syntax) are found by the frontend; this
adds what only the graph shows. Every check returns diagnostics; nothing raises.
"""

from __future__ import annotations

import networkx as nx

from .. import ir
from ..diagnostics import Diagnostic, Note
from .graph import dependency_graph
from .shapes import infer_dims

# Methods of every generated DAG class; a node cannot take one of these names.
RESERVED_NAMES = frozenset({"cal", "compute", "update", "append", "lookback", "stats", "nodes", "inputs", "schedule"})
# Keywords of the generated class's constructor besides the inputs' (`Alpha(keep=100,
# close=...)`); an input cannot take one of these names.
RESERVED_INPUT_NAMES = frozenset({"keep"})


def validate(module: ir.Module, broken: dict[str, set[str]]) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for dag in module.dags:
        cycles = check_cycles(dag)
        blocked = check_broken_dependencies(dag, broken.get(dag.name, set()))
        out += cycles + blocked + check_reserved_names(dag) + check_reserved_input_names(dag)
        if not cycles and not blocked:  # else these would only add noise
            out += check_reads_an_input(dag) + infer_dims(dag)[1]
    return out


def check_cycles(dag: ir.Dag) -> list[Diagnostic]:
    """One error per strongly connected component, printed as a path with each edge."""
    g = dependency_graph(dag)
    out = []
    components = [c for c in nx.strongly_connected_components(g) if len(c) > 1 or g.has_edge(*[*c] * 2)]
    for component in components:
        order = {n.name: i for i, n in enumerate(dag.nodes)}
        start = min(component, key=order.__getitem__)
        edges = nx.find_cycle(g.subgraph(component), source=start)
        path = " -> ".join([edges[0][0]] + [v for _, v in edges])
        # Edges run dep -> reader; print them as "reader uses dep", following the cycle.
        notes = tuple(Note(g.edges[u, v]["span"], f"`{v}` uses `{u}`") for u, v in edges)
        head = g.nodes[start]["span"]
        out.append(
            Diagnostic(
                head,
                f"cycle in DAG `{dag.name}`: {' -> '.join(reversed(path.split(' -> ')))}",
                "a node cannot depend on itself, directly or through other nodes; break the cycle",
                notes,
            )
        )
    return out


def check_reserved_names(dag: ir.Dag) -> list[Diagnostic]:
    return [
        Diagnostic(
            n.span,
            f"node name `{n.name}` is taken by the generated class's method `{dag.name}.{n.name}()`",
            f"rename the node (reserved: {', '.join(sorted(RESERVED_NAMES))})",
        )
        for n in dag.public_nodes
        if n.name in RESERVED_NAMES
    ]


def check_reserved_input_names(dag: ir.Dag) -> list[Diagnostic]:
    return [
        Diagnostic(
            i.span,
            f"input name `{i.name}` is taken by the keyword `{i.name}=` of the generated class "
            f"(`{dag.name}({i.name}=..., ...)` sets how many rows it keeps)",
            f"rename the input (reserved: {', '.join(sorted(RESERVED_INPUT_NAMES))})",
        )
        for i in dag.inputs
        if i.name in RESERVED_INPUT_NAMES
    ]


def check_broken_dependencies(dag: ir.Dag, broken: set[str]) -> list[Diagnostic]:
    """Nodes that read (directly or not) a node that has errors cannot be computed either."""
    if not broken:
        return []
    g = dependency_graph(dag)
    g.add_nodes_from(broken)
    out = []
    for n in dag.nodes:
        bad = sorted(a for a in nx.ancestors(g, n.name) if a in broken) if n.name in g else []
        if bad:
            names = ", ".join(f"`{b}`" for b in bad)
            out.append(
                Diagnostic(
                    n.span,
                    f"node `{n.name}` cannot be computed: it depends on {names}, which has errors",
                    "fix the errors reported for " + names,
                )
            )
    return out


def check_reads_an_input(dag: ir.Dag) -> list[Diagnostic]:
    """A node's shape comes from the inputs it reads; a node reading none has no shape."""
    g = dependency_graph(dag)
    inputs = {i.name for i in dag.inputs}
    return [
        Diagnostic(
            n.span,
            f"node `{n.name}` reads no input, so the shape of its value is unknown",
            "make it depend on an input (write constants inside the nodes that use them)",
        )
        for n in dag.nodes
        if not (nx.ancestors(g, n.name) & inputs)
    ]
