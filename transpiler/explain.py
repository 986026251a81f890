"""The optimized plan of a DAG, as the generated crate will run it (`sray-gen explain`),
and its cost model: the bytes each kernel moves (bench/run.py reads it too).

For each DAG: the schedule levels, and for each node the passes over memory its kernel
makes (fused elementwise maps with the ops inside them, window and row kernels), what
each reads and writes, and the bytes moved per cell (8 per array read or written), per
dims: a DAG of (T x N) panels moves "B bytes per (T, N) cell"; one with `@` also moves
bytes per cell of its other dims, e.g. (T, K). And each node's lookback
(analyses.lookback): the rows of the inputs before an output row that the row depends on,
with the rows its own kernel reads of its dependencies where that differs (a node reading
another node's value); the DAG's header line gives the largest.
"""

from __future__ import annotations

from . import ir
from .analyses.graph import levels, topological_order
from .analyses.lookback import NodeLookback, lookbacks
from .analyses.shapes import infer_dims
from .backend.lower import plan_kernel


def explain(module: ir.Module) -> str:
    out = []
    for dag in module.dags:
        private = [n.name for n in dag.nodes if n.private]
        lv = levels(dag)
        lbs = lookbacks(dag)
        out.append(
            f"DAG {dag.name}: {len(dag.inputs)} inputs, {len(dag.public_nodes)} nodes"
            + (f" + {len(private)} private ({', '.join(private)})" if private else "")
            + f", {len(lv)} levels, lookback up to {_rows(max((lb.total for lb in lbs.values()), default=0))}"
        )
        dims, _ = infer_dims(dag)
        total: dict[tuple[str, str], int] = {}
        order = {n: k for k, n in enumerate(topological_order(dag))}
        for k, level in enumerate(lv):
            out.append(f"  level {k} (runs in parallel): {', '.join(level)}")
            for name in sorted(level, key=order.__getitem__):
                steps = plan_kernel(dag.node(name)).steps
                moved = _bytes_moved(steps, dims, dims[name])
                for d, b in moved.items():
                    total[d] = total.get(d, 0) + b
                out.append(f"    {name}{_dims_note(dims[name])}: {len(steps)} kernel{'s' if len(steps) != 1 else ''}, "
                           f"{_per_cell(moved)}, {_lookback_note(lbs[name])}")
                for s in steps:
                    inside = f" [{', '.join(s.ops)}]" if s.ops else ""
                    out.append(f"      {s.writes} <- {s.kind}{inside} reads {', '.join(s.reads) or '-'}")
        out.append(f"  all nodes: {_per_cell(total)} moved")
    return "\n".join(out)


def _bytes_moved(steps, dims: dict, node_dims) -> dict:
    """Bytes read and written by a node's steps, per dims of the arrays: 8 per cell."""
    local = dict(dims)
    moved: dict[tuple[str, str], int] = {}
    for s in steps:
        shapes = [local[r] for r in s.reads]
        if s.kind == "matmul":
            written = (shapes[0][0], shapes[1][1])
        else:
            written = shapes[0] if shapes else node_dims
        local[s.writes] = written
        for d in shapes + [written]:
            moved[d] = moved.get(d, 0) + 8
    return moved


def _per_cell(moved: dict) -> str:
    """{("T", "N"): 24} -> "24 bytes per (T, N) cell"; panels first."""
    keys = sorted(moved, key=lambda d: (d != ir.PANEL_DIMS, d))
    return " + ".join(f"{moved[d]} bytes per {ir.dims_str(d)} cell" for d in keys) or "0 bytes"


def _rows(n: int) -> str:
    return f"{n} row{'s' if n != 1 else ''}"


def _lookback_note(lb: NodeLookback) -> str:
    """"lookback 24 rows (5 in its kernel)"; a node without the time dim has none."""
    if not lb.timed:
        return "no lookback (rows are not time)"
    kernel = f" ({lb.local} in its kernel)" if lb.local != lb.total else ""
    return f"lookback {_rows(lb.total)}{kernel}"


def _dims_note(d) -> str:
    return "" if d == ir.PANEL_DIMS else f" {ir.dims_str(d)}"

