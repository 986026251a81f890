"""Plumbing shared by the passes: rebuild a module only where something changed."""

from __future__ import annotations

from dataclasses import replace

from .. import ir


def rewrite_module(module: ir.Module, rewrite_node) -> ir.Module:
    """Applies `rewrite_node(dag, node) -> node` to every node; returns `module` itself
    when every call returned its node unchanged."""
    dags = []
    for dag in module.dags:
        nodes = tuple(rewrite_node(dag, n) for n in dag.nodes)
        dags.append(dag if all(a is b for a, b in zip(nodes, dag.nodes)) else replace(dag, nodes=nodes))
    if all(a is b for a, b in zip(dags, module.dags)):
        return module
    return replace(module, dags=tuple(dags))


def rewrite_dags(module: ir.Module, rewrite_dag) -> ir.Module:
    """Applies `rewrite_dag(dag) -> dag`; returns `module` itself when nothing changed."""
    dags = tuple(rewrite_dag(d) for d in module.dags)
    if all(a is b for a, b in zip(dags, module.dags)):
        return module
    return replace(module, dags=dags)


def fresh_name(base: str, taken: set[str]) -> str:
    """`base`, or `base#2`, `base#3`, ...: the first not in `taken` (which it joins)."""
    name, k = base, 1
    while name in taken:
        k += 1
        name = f"{base}#{k}"
    taken.add(name)
    return name
