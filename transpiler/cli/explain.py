"""`sray-gen explain FILE`: the optimized plan, as the generated crate will run it.

For each DAG: the schedule levels, and for each node the passes over memory its kernel
makes (fused elementwise maps with the ops inside them, window and row kernels), what
each reads and writes, and the bytes moved per panel cell (8 per array read or written).
"""

from __future__ import annotations

from .. import ir
from ..analyses.graph import levels, topological_order
from ..backend.lower import plan_kernel
from ..driver import load


def explain(module: ir.Module) -> str:
    out = []
    for dag in module.dags:
        private = [n.name for n in dag.nodes if n.private]
        lv = levels(dag)
        out.append(
            f"DAG {dag.name}: {len(dag.inputs)} inputs, {len(dag.public_nodes)} nodes"
            + (f" + {len(private)} private ({', '.join(private)})" if private else "")
            + f", {len(lv)} levels"
        )
        total = 0
        order = {n: k for k, n in enumerate(topological_order(dag))}
        for k, level in enumerate(lv):
            out.append(f"  level {k} (runs in parallel): {', '.join(level)}")
            for name in sorted(level, key=order.__getitem__):
                steps = plan_kernel(dag.node(name)).steps
                moved = sum(8 * (len(s.reads) + 1) for s in steps)
                total += moved
                out.append(f"    {name}: {len(steps)} kernel{'s' if len(steps) != 1 else ''}, {moved} bytes/cell")
                for s in steps:
                    inside = f" [{', '.join(s.ops)}]" if s.ops else ""
                    out.append(f"      {s.writes} <- {s.kind}{inside} reads {', '.join(s.reads) or '-'}")
        out.append(f"  all nodes: {total} bytes moved per panel cell (x T*N cells)")
    return "\n".join(out)


def run(config) -> int:
    print(explain(load(config.file)))
    return 0
