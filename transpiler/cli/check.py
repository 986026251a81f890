"""`sray-gen check FILE`: validates a DAG file and prints its graph, or every problem."""

from __future__ import annotations

from .. import ir
from ..analyses.graph import levels, node_dependencies
from ..analyses.shapes import infer_dims
from ..driver import parse_checked


def summary(module: ir.Module) -> str:
    lines = []
    for dag in module.dags:
        lv = levels(dag)
        deps = node_dependencies(dag)
        lines.append(
            f"DAG {dag.name} ({dag.form} form): {len(dag.inputs)} inputs, {len(dag.nodes)} nodes, {len(lv)} levels"
        )
        # Dims are shown where they are not the default (T, N) panel's.
        dims, _ = infer_dims(dag)
        shown = {n: "" if d == ir.PANEL_DIMS else " " + ir.dims_str(d) for n, d in dims.items()}
        lines.append("  inputs: " + ", ".join(i.name + shown.get(i.name, "") for i in dag.inputs))
        lines.append("  nodes:")
        labels = {n.name: n.name + shown.get(n.name, "") for n in dag.nodes}
        width = max(len(label) for label in labels.values())
        for n in dag.nodes:
            doc = f"  # {n.doc.splitlines()[0]}" if n.doc else ""
            lines.append(f"    {labels[n.name]:<{width}} <- {', '.join(deps[n.name])}{doc}")
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
