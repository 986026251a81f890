"""`sray-gen check FILE`: validates a DAG file and prints its graph, or every problem.

The graph: inputs, nodes with what they read, levels, then the lookback of each node
(analyses.lookback: rows of the inputs before an output row that the row depends on)
and whether rows can be appended to the DAG.
"""

from __future__ import annotations

from .. import ir
from ..analyses.graph import levels, node_dependencies
from ..analyses.lookback import append_blocker, lookbacks, time_inputs
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
        lines += _lookback_lines(dag)
    return "\n".join(lines)


def _lookback_lines(dag: ir.Dag) -> list[str]:
    """The DAG's largest lookback and whether it can append, then each node's lookback."""
    lbs = lookbacks(dag)
    largest = max((lb.total for lb in lbs.values()), default=0)
    widest = [n.name for n in dag.nodes if lbs[n.name].timed and lbs[n.name].total == largest]
    head = f"at most {_rows(largest)} ({', '.join(widest)})" if largest else "0 rows"
    blocker = append_blocker(dag)
    append = f"no, {blocker}" if blocker else f"yes, rows of {', '.join(time_inputs(dag))}"
    lines = [f"  lookback: {head}; appendable: {append}",
             "  lookback per node (earlier rows of the inputs that one row depends on):"]
    width = max((len(n.name) for n in dag.nodes), default=0) + 1
    for n in dag.nodes:
        lb = lbs[n.name]
        lines.append(f"    {n.name + ':':<{width}} {_rows(lb.total) if lb.timed else '- (its rows are not time)'}")
    return lines


def _rows(n: int) -> str:
    return f"{n} row{'s' if n != 1 else ''}"


def run(config) -> int:
    module = parse_checked(config.file)
    count = len(module.dags)
    print(f"{config.file}: ok, {count} DAG{'s' if count != 1 else ''}")
    print(summary(module))
    return 0
