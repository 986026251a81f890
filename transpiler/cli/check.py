"""`sray-gen check FILE`: validates a DAG file and prints its graph, or every problem."""

from __future__ import annotations

from .. import ir
from ..analyses.graph import levels, node_dependencies
from ..driver import parse_checked


def summary(module: ir.Module) -> str:
    lines = []
    for dag in module.dags:
        lv = levels(dag)
        deps = node_dependencies(dag)
        lines.append(
            f"DAG {dag.name} ({dag.form} form): {len(dag.inputs)} inputs, {len(dag.nodes)} nodes, {len(lv)} levels"
        )
        lines.append("  inputs: " + ", ".join(i.name for i in dag.inputs))
        lines.append("  nodes:")
        width = max(len(n.name) for n in dag.nodes)
        for n in dag.nodes:
            doc = f"  # {n.doc.splitlines()[0]}" if n.doc else ""
            lines.append(f"    {n.name:<{width}} <- {', '.join(deps[n.name])}{doc}")
        lines.append("  levels:")
        for k, level in enumerate(lv):
            lines.append(f"    {k}: {', '.join(level)}")
    return "\n".join(lines)


def run(config) -> int:
    module = parse_checked(config.file)
    count = len(module.dags)
    print(f"{config.file}: ok, {count} DAG{'s' if count != 1 else ''}")
    print(summary(module))
    return 0
