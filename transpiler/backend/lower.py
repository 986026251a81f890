"""One node -> the Rust body of its kernel: fused elementwise maps around window and row
kernels.

Elementwise work is fused into `map` closures (one pass over memory, no temporaries);
a time-series or cross-sectional op needs its array arguments materialized, so each
becomes a statement of its own, and the elementwise code around it becomes the maps
that feed it and the final map that reads it:

    return rank(ts_mean(close - open, 5)) * close
  ->
    let a0 = map([args[0], args[1]], |[close, open]| close - open);
    let t0 = ts::ts_mean(&a0, 5);
    let t1 = cs::rank(&t0);
    map([&t1, args[0]], |[t1, close]| t1 * close)
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from .. import ir
from ..optable import OPS
from .expr import rust_expr, rust_float
from .names import IdentAllocator

_TEMP = "\0t"  # prefix of the IR names of materialized temporaries (never a user name)


@dataclass(frozen=True)
class Step:
    """One pass over memory, for `sray-gen explain`."""

    writes: str  # the temporary or the node itself
    kind: str  # "fused map" or the kernel's op name
    ops: tuple[str, ...]  # ops inside a fused map, in order of appearance
    reads: tuple[str, ...]  # inputs, nodes and temporaries read


@dataclass
class KernelPlan:
    statements: list[tuple[str, str]] = field(default_factory=list)  # (ident, Rust expression)
    result: str = ""  # the returned Panel
    # Temporaries whose buffers go back to the runtime's pool once the result is
    # computed (else each would return to the OS and come back as fresh pages), and the
    # identifier the result is bound to meanwhile.
    recycled: list[str] = field(default_factory=list)
    out: str = ""
    uses: set[str] = field(default_factory=set)  # runtime items used: map, s, ts, cs, la, pool
    steps: list[Step] = field(default_factory=list)


class _Lowering:
    def __init__(self, node: ir.Node):
        self.node = node
        self.plan = KernelPlan()
        self.names = IdentAllocator()
        self.reads = ir.refs(node)
        self.slot = {r.name: k for k, r in enumerate(self.reads)}
        for r in self.reads:
            self.names(r.name)
        for b in node.body:
            self.names(b.name)
        self.lets: dict[str, ir.Expr] = {}  # hoisted values of the user's locals
        self.counter = 0

    # -- hoisting non-elementwise calls out of expressions ------------------------------

    def hoist(self, e: ir.Expr) -> ir.Expr:
        if not isinstance(e, ir.Call):
            return e
        args = tuple(self.hoist(a) for a in e.args)
        op = OPS[e.op]
        if op.elementwise:
            return ir.Call(e.op, args, e.span)
        rendered = []
        for param, arg in zip(op.params, args):
            if param in op.windows:
                rendered.append(str(int(arg.value)))
            elif param in op.literals:
                rendered.append(rust_float(arg.value)[0])
            else:
                rendered.append(self.materialize(self.expand(arg)))
        temp = self.fresh("t")
        self.plan.uses.add(op.rust.split("::")[0])
        self.plan.statements.append((self.names(temp), op.rust.format(*rendered)))
        arrays = [r.removeprefix("&") for p, r in zip(op.params, rendered) if p in op.panel_params]
        self.plan.steps.append(Step(self.names(temp), op.name, (), tuple(self.describe(a) for a in arrays)))
        return ir.Local(temp)

    def describe(self, panel: str) -> str:
        """The name of a `&Panel` expression, for explain: `args[0]` -> its input or node."""
        if panel.startswith("args["):
            return self.reads[int(panel[5:-1])].name
        return panel

    def expand(self, e: ir.Expr) -> ir.Expr:
        """`e` with the user's locals replaced by their (hoisted) values."""
        match e:
            case ir.Local(name=n) if not n.startswith(_TEMP):
                return self.expand(self.lets[n])
            case ir.Call(op=op, args=args):
                return ir.Call(op, tuple(self.expand(a) for a in args), e.span)
        return e

    def fresh(self, kind: str) -> str:
        """A new temporary: `t1` holds a kernel's result, `a2` a kernel's argument."""
        self.counter += 1
        name = f"{_TEMP}{kind}{self.counter}"
        self.names(name, f"{kind}{self.counter}")
        return name

    # -- Rust text ----------------------------------------------------------------------

    def panel(self, leaf: ir.Expr) -> str:
        """A `&Panel` expression for a leaf: a kernel argument or a temporary."""
        if isinstance(leaf, ir.Ref):
            return f"args[{self.slot[leaf.name]}]"
        return f"&{self.names(leaf.name)}"

    def leaves(self, exprs) -> list[ir.Expr]:
        seen: dict[str, ir.Expr] = {}
        for tree in exprs:
            for x in ir.walk(tree):
                if isinstance(x, ir.Ref) or (isinstance(x, ir.Local) and x.name.startswith(_TEMP)):
                    seen.setdefault(x.name, x)
        return list(seen.values())

    def map_call(self, lets: list[tuple[str, ir.Expr]], result: ir.Expr, writes: str) -> str:
        """`map([leaves], |[..]| { lets; result })` over the leaves the code reads; files
        its Step (writing `writes`) for explain."""
        leaves = self.leaves([v for _, v in lets] + [result])
        if not leaves:  # a constant: shaped like the node's first argument
            leaves, params = [self.reads[0]], ["_"]
        else:
            params = [self.names(x.name) for x in leaves]
        idents = {**{x.name: self.names(x.name) for x in leaves}, **{n: self.names(n) for n, _ in lets}}
        body = "".join(f"let {idents[n]} = {rust_expr(v, idents)[0]}; " for n, v in lets)
        expr = rust_expr(result, idents)[0]
        closure = f"{{ {body}{expr} }}" if lets else expr
        trees = [v for _, v in lets] + [result]
        ops = tuple(dict.fromkeys(x.op for t in trees for x in ir.walk(t) if isinstance(x, ir.Call)))
        self.plan.uses.add("map")
        if any(OPS[op].rust.startswith("s::") for op in ops):
            self.plan.uses.add("s")
        reads = tuple(self.describe(self.panel(x).removeprefix("&")) for x in leaves)
        self.plan.steps.append(Step(writes, "fused map", ops, reads))
        return f"map([{', '.join(self.panel(x) for x in leaves)}], |[{', '.join(params)}]| {closure})"

    def materialize(self, e: ir.Expr) -> str:
        if isinstance(e, ir.Ref) or (isinstance(e, ir.Local) and e.name.startswith(_TEMP)):
            return self.panel(e)
        temp = self.fresh("a")
        self.plan.statements.append((self.names(temp), self.map_call([], e, self.names(temp))))
        return f"&{self.names(temp)}"

    # -- the node -----------------------------------------------------------------------

    def run(self) -> KernelPlan:
        for b in self.node.body:
            self.lets[b.name] = self.hoist(b.value)
        result = self.hoist(self.node.result)
        live = _live_locals(self.lets, result)
        lets = [(n, v) for n, v in self.lets.items() if n in live]
        if not lets and isinstance(result, ir.Local):  # the value of a window or row kernel
            self.plan.result = self.names(result.name)
            self.plan.steps[-1] = replace(self.plan.steps[-1], writes=self.node.name)
        else:
            self.plan.result = self.map_call(lets, result, self.node.name)
        self.plan.recycled = [ident for ident, _ in self.plan.statements if ident != self.plan.result]
        if self.plan.recycled:
            self.plan.out = self.names(_TEMP + "out", "out")
            self.plan.uses.add("pool")
        return self.plan


def _live_locals(lets: dict[str, ir.Expr], result: ir.Expr) -> set[str]:
    live: set[str] = set()
    stack = [result]
    while stack:
        for x in ir.walk(stack.pop()):
            if isinstance(x, ir.Local) and not x.name.startswith(_TEMP) and x.name not in live:
                live.add(x.name)
                stack.append(lets[x.name])
    return live


def plan_kernel(node: ir.Node) -> KernelPlan:
    return _Lowering(node).run()
