"""Shape inference: the dims of every node's value, and the operations whose operands
disagree.

Every value is a 2-D float64 array whose dims have names. Inputs declare theirs (`Input`
is ("T", "N"), a time x assets panel; `Input["N", "K"]` names its own); inputs naming the
same dim must agree on its size, which the engines check when values are set. From there:

- elementwise ops, window (time-series) and row (cross-sectional) kernels combine
  operands of the same dims and keep them;
- `a @ b` needs the columns of `a` to be the rows of `b`: (m, k) @ (k, n) -> (m, n);
- a constant takes the dims of what it is combined with; a node whose result is a
  constant takes the dims of the first value it reads (as the kernels do).

Dims are compared by name only: two dims of equal size but different names do not
match, so a shape error is a compile error, never a runtime surprise.
"""

from __future__ import annotations

from .. import ir
from ..diagnostics import Diagnostic
from ..optable import OPS
from .graph import topological_order

Dims = tuple[str, str]


class _Failed(Exception):
    """An operand's dims are unknown because of an error already reported."""


def infer_dims(dag: ir.Dag) -> tuple[dict[str, Dims], list[Diagnostic]]:
    """The dims of every input, and of every node whose dims could be inferred; one
    diagnostic per operation whose operands disagree. Expects a DAG without cycles."""
    dims: dict[str, Dims] = {i.name: i.dims for i in dag.inputs}
    out: list[Diagnostic] = []
    for name in topological_order(dag):
        node = dag.node(name)
        env: dict[str, Dims | None] = {}
        try:
            for b in node.body:
                env[b.name] = _expr(b.value, dims, env, node, out)
            result = _expr(node.result, dims, env, node, out)
        except _Failed:
            continue
        if result is None:
            reads = ir.refs(node)
            if not reads or reads[0].name not in dims:
                continue
            result = dims[reads[0].name]
        dims[name] = result
    return dims, out


def _expr(e: ir.Expr, dims: dict[str, Dims], env: dict, node: ir.Node, out: list[Diagnostic]) -> Dims | None:
    """The dims of `e`; None for a constant (it broadcasts)."""
    match e:
        case ir.Const():
            return None
        case ir.Ref(name=n):
            if n not in dims:
                raise _Failed  # a node whose dims could not be inferred
            return dims[n]
        case ir.Local(name=n):
            return env[n]
        case ir.Call(op=op_name, args=args):
            op = OPS[op_name]
            panels = [(p, _expr(a, dims, env, node, out)) for p, a in zip(op.params, args) if p in op.panel_params]
            if op.kind == "linalg":
                return _matmul(e, panels, node, out)
            known = [d for _, d in panels if d is not None]
            if any(d != known[0] for d in known):
                shown = " and ".join(ir.dims_str(d) if d else "a constant" for _, d in panels)
                spelled = f"`{op.symbol}`" if op.symbol else f"`{op.name}`"
                out.append(Diagnostic(
                    e.span or node.span,
                    f"the operands of {spelled} in node `{node.name}` have different dims: {shown}",
                    "elementwise ops and window/row kernels combine values of the same dims; "
                    "name a dim alike in two `Input[...]` annotations when it is the same dim",
                ))
                raise _Failed
            return known[0] if known else None
    raise TypeError(f"not an IR expression: {e!r}")


def _matmul(e: ir.Call, panels, node: ir.Node, out: list[Diagnostic]) -> Dims:
    (_, a), (_, b) = panels
    if a is None or b is None:
        out.append(Diagnostic(
            e.span or node.span,
            f"`@` in node `{node.name}` multiplies a constant; both operands must be arrays",
            "scale with `*` instead",
        ))
        raise _Failed
    if a[1] != b[0]:
        out.append(Diagnostic(
            e.span or node.span,
            f"`@` in node `{node.name}` multiplies {ir.dims_str(a)} by {ir.dims_str(b)}: "
            f"the left operand's columns ({a[1]}) must be the right operand's rows ({b[0]})",
            "dims match by name: if they are the same dim, name it alike in the inputs' "
            "`Input[...]` annotations",
        ))
        raise _Failed
    return (a[0], b[1])
