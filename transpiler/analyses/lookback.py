"""Lookback: how many earlier rows of its inputs one output row of a node depends on.

The time dim is the dim named "T" (`ir.PANEL_DIMS`' row dim); a value is *timed* when
its row dim is "T". An op call reads, of its array operands, the output row and the
rows just before it:

- a window op (`ts_mean(x, d)`, `correlation(x, y, d)`, ...) d - 1 rows,
- `delay(x, d)` and `delta(x, d)` d rows,
- elementwise, cross-sectional ops and `@` none.

Composition adds along the longest path, inside a node and across nodes:

    n1 = ts_sum(x, 20)          local 19, total 19
    n2 = delta(delay(n1, 5), 3) local 8 (of n1), total 19 + 8 = 27

`local` is what a node's own kernel reads of its timed dependencies (so it changes when
fusion or CSE move node boundaries); `total` counts rows of the DAG's inputs and does
not. A row t of a node is a function of its inputs' rows [t - total, t] only, which is
what appending rows to a DAG relies on.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import ir
from ..optable import OPS
from .graph import topological_order
from .shapes import infer_dims

TIME_DIM = ir.PANEL_DIMS[0]

# Window ops whose window reaches d rows back rather than d - 1: the row d rows earlier
# is read besides the current one.
_SHIFTS = frozenset({"delay", "delta"})


def call_lookback(call: ir.Call) -> int:
    """Rows before an output row that this op call reads of its array operands."""
    op = OPS[call.op]
    if not op.windows:
        return 0
    window = call.args[op.params.index(op.windows[0])]
    if not isinstance(window, ir.Const):
        raise TypeError(f"the window of `{call.op}` is not a literal: {window!r}")
    d = int(window.value)
    return d if call.op in _SHIFTS else d - 1


@dataclass(frozen=True)
class NodeLookback:
    local: int  # rows of its (timed) dependencies before an output row that the node's kernel reads
    total: int  # rows of the DAG's inputs (longest path through the DAG)
    timed: bool  # the node's row dim is "T"
    reads: dict[str, int]  # per timed dependency (input or node name): rows before an output row read of it


def lookbacks(dag: ir.Dag) -> dict[str, NodeLookback]:
    """The lookback of every node (private ones too), in topological order. A node whose
    dims could not be inferred (an invalid DAG) counts as not timed."""
    dims, _ = infer_dims(dag)
    timed = {name for name, d in dims.items() if d[0] == TIME_DIM}
    out: dict[str, NodeLookback] = {}
    for name in topological_order(dag):
        if name not in timed:
            out[name] = NodeLookback(0, 0, False, {})
            continue
        reads = node_reads(dag.node(name), timed)
        total = max((out[dep].total if dep in out else 0) + need for dep, need in reads.items()) if reads else 0
        out[name] = NodeLookback(max(reads.values(), default=0), total, True, reads)
    return out


def node_reads(node: ir.Node, timed: set[str]) -> dict[str, int]:
    """Per dependency in `timed`: rows before an output row that the node's kernel reads
    of it (the longest path from the node's result to a read of it)."""
    reads: dict[str, int] = {}
    local_needs: dict[str, int] = {}

    def visit(e: ir.Expr, need: int) -> None:
        match e:
            case ir.Const():
                pass
            case ir.Ref(name=n):
                if n in timed:
                    reads[n] = max(reads.get(n, need), need)
            case ir.Local(name=n):
                local_needs[n] = max(local_needs.get(n, need), need)
            case ir.Call(op=op_name, args=args):
                op = OPS[op_name]
                inner = need + call_lookback(e)
                operands = [a for p, a in zip(op.params, args) if p in op.panel_params]
                # Row t of `a @ b` reads row t of `a` and all of `b`, which is never timed
                # (its rows are `a`'s columns).
                for a in operands[:1] if op.kind == "linalg" else operands:
                    visit(a, inner)
            case _:
                raise TypeError(f"not an IR expression: {e!r}")

    visit(node.result, 0)
    # A binding is only read by later bindings and the result: walking the body backwards
    # sees every use of a local before its value.
    for b in reversed(node.body):
        if b.name in local_needs:
            visit(b.value, local_needs[b.name])
    return reads


def max_lookback(dag: ir.Dag) -> int:
    """The largest total lookback of the DAG's nodes (0 if none)."""
    return max((lb.total for lb in lookbacks(dag).values()), default=0)


def time_inputs(dag: ir.Dag) -> list[str]:
    """The inputs whose row dim is "T", in declaration order."""
    return [i.name for i in dag.inputs if i.dims[0] == TIME_DIM]


def append_blocker(dag: ir.Dag) -> str | None:
    """None when rows can be appended to the DAG's timed inputs; else why not."""
    for i in dag.inputs:
        if i.dims[1] == TIME_DIM:
            return (f"input `{i.name}` {ir.dims_str(i.dims)} has the time dim {TIME_DIM} as its column dim, "
                    "so an appended row changes every row of what reads it")
    if not time_inputs(dag):
        return f"no input has the time dim {TIME_DIM} as its row dim"
    return None
