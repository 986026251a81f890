"""One node -> the Rust body of its kernel: fused elementwise maps around window and row
kernels.

Elementwise work is fused into `map` closures (one pass over memory, no temporaries);
a time-series or cross-sectional op needs its array arguments materialized, so each
becomes a statement of its own, and the elementwise code around it becomes the maps
that feed it and the final map that reads it:

    return rank(ts_mean(close - open, 5)) * close
  ->
    let a0 = c0.rows(rows, 4, |rows, _| map([tail(args[0], rows), tail(args[1], rows)], |[close, open]| close - open));
    let t0 = ts::ts_mean(tail(a0, rows + 4), 5);
    let t1 = cs::rank(tail(t0.view(), rows));
    map([tail(t1.view(), rows), tail(args[0], rows)], |[t1, close]| t1 * close)

A kernel computes the last `rows` rows of its node (all of them in a batch run; the new
ones after an append): it gets the last rows of its arguments (`args`, views), as many as
those rows read, and every op reads the last rows of its operands that it needs
(`tail`): the rows it computes plus, for a window op, its lookback (d - 1, or d for
`delay`/`delta`). Operands that are not time-indexed (their row dim is not "T", e.g. a
(N, K) loadings matrix) are read whole. A statement whose value later ops read before the
kernel's first row (`a0` above: `ts_mean` reads 4 earlier rows) must produce `rows +
need` rows; it goes through a slot of the kernel's cache (`c0`, sray_runtime::cache),
which keeps its last `need` rows between runs, so after an append it computes only the
new rows. The result holds at least the last `rows` rows (a window op's result may hold
more: the rows of its operand before the first one asked for); the engine keeps the last
`rows`. `KernelPlan.lookback` is what the kernel reads of its arguments before its first
row: the node's local lookback.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from .. import ir
from ..analyses.shapes import Dims
from ..optable import OPS
from .expr import rust_expr, rust_float
from .names import IdentAllocator

_TEMP = "\0t"  # prefix of the IR names of materialized temporaries (never a user name)
_MARK = "\x01"  # brackets a placeholder for an operand in a statement's text, until `rows` are known
TIME_DIM = ir.PANEL_DIMS[0]  # the row dim of time-indexed values
# `a @ b` whose left operand's rows are time: computed row by row in a fixed order, so that
# a row's bits do not depend on the rows around it (the GEMM of `la::matmul` does).
_ROW_LOCAL_MATMUL = "la::matmul_rows({0}, {1})"
# Window ops whose long-window kernels keep a running state between runs of a node's
# kernel (`ts::<op>_from(x.., d, rows, state)`, sray_runtime::cache::OpState): after an
# append they continue from the previous run's last row instead of rebuilding their
# window. Windows up to ts::SMALL_WINDOW values are computed directly and keep none.
RESUMABLE: frozenset[str] = frozenset(
    {"ts_sum", "ts_mean", "decay_linear", "ts_std", "covariance", "correlation"}
)
SMALL_WINDOW = 16


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
    uses: set[str] = field(default_factory=set)  # runtime items used: map, s, ts, cs, la, pool, tail
    steps: list[Step] = field(default_factory=list)
    # Rows of its time-indexed arguments before its first output row that the kernel reads:
    # per argument (`reads`, in the order of `args`), and the most of them (`lookback`).
    lookback: int = 0
    reads: list[int] = field(default_factory=list)
    # The cache slots of intermediates read before the kernel's first row (idents), and
    # those intermediates (views of their slot, not recycled).
    slots: list[str] = field(default_factory=list)
    cached: set[str] = field(default_factory=set)


def op_lookback(call: ir.Call) -> int:
    """Rows before an output row that `call` reads of its array operands: d - 1 for a
    window, d for `delay`/`delta`, 0 for the rest (docs/ops.md)."""
    op = OPS[call.op]
    windows = [int(a.value) for p, a in zip(op.params, call.args) if p in op.windows]
    if not windows:
        return 0
    return windows[0] if op.name in ("delay", "delta") else windows[0] - 1


class _Lowering:
    def __init__(self, node: ir.Node, dims: dict[str, Dims] | None):
        self.node = node
        self.dims = dims
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
        self.operands: list[ir.Expr] = []  # the leaves placeholders stand for, by number
        self.op_lookbacks: dict[str, int] = {}  # statement ident -> lookback of its op
        self.temp_dims: dict[str, Dims | None] = {}  # temporary (IR name) -> dims
        self.stateful: set[str] = set()  # statements whose op keeps a running state

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
        call = ir.Call(e.op, args, e.span)
        self.temp_dims[temp] = self.dims_of(call)
        self.plan.uses.add(op.rust.split("::")[0])
        rust = op.rust
        if op.kind == "linalg" and self.timed(args[0]):
            rust = _ROW_LOCAL_MATMUL  # its rows are time: row-local bits (docs/ops.md)
        if op.name in RESUMABLE and op_lookback(call) >= SMALL_WINDOW and self.timed(call):
            rust = rust.replace(f"ts::{op.name}(", f"ts::{op.name}_from(").removesuffix(")") + ", rows, state)"
            self.stateful.add(self.names(temp))
        self.plan.statements.append((self.names(temp), rust.format(*rendered)))
        self.op_lookbacks[self.names(temp)] = op_lookback(call)
        arrays = [r for p, r in zip(op.params, rendered) if p in op.panel_params]
        self.plan.steps.append(Step(self.names(temp), op.name, (), tuple(self.describe(a) for a in arrays)))
        return ir.Local(temp)

    def describe(self, panel: str) -> str:
        """The name of an operand placeholder, for explain: an input, node or temporary."""
        leaf = self.operands[int(panel.strip(_MARK))]
        return leaf.name if isinstance(leaf, ir.Ref) else self.names(leaf.name)

    def dims_of(self, e: ir.Expr) -> Dims | None:
        """The dims of a value inside the kernel (None: a constant, or unknown)."""
        match e:
            case ir.Ref(name=n):
                return (self.dims or {}).get(n)
            case ir.Local(name=n) if n.startswith(_TEMP):
                return self.temp_dims.get(n)
            case ir.Local(name=n):
                return self.dims_of(self.lets[n])
            case ir.Call(op=name, args=args):
                op = OPS[name]
                operands = [self.dims_of(a) for p, a in zip(op.params, args) if p in op.panel_params]
                if op.kind == "linalg":
                    a, b = operands
                    return (a[0], b[1]) if a and b else None
                return next((d for d in operands if d is not None), None)
        return None

    def timed(self, leaf: ir.Expr) -> bool:
        """Whether a leaf is time-indexed (rows are "T"); unknown dims count as timed."""
        d = self.dims_of(leaf) if self.dims is not None else None
        return d is None or d[0] == TIME_DIM

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
        """A placeholder for an operand (a kernel argument or a temporary): it becomes a
        `View` of the rows the op reads once every statement's rows are known (`render`)."""
        self.operands.append(leaf)
        return f"{_MARK}{len(self.operands) - 1}{_MARK}"

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
        panels = [self.panel(x) for x in leaves]
        self.plan.steps.append(Step(writes, "fused map", ops, tuple(self.describe(p) for p in panels)))
        return f"map([{', '.join(panels)}], |[{', '.join(params)}]| {closure})"

    def materialize(self, e: ir.Expr) -> str:
        if isinstance(e, ir.Ref) or (isinstance(e, ir.Local) and e.name.startswith(_TEMP)):
            return self.panel(e)
        temp = self.fresh("a")
        self.temp_dims[temp] = self.dims_of(e)
        self.plan.statements.append((self.names(temp), self.map_call([], e, self.names(temp))))
        self.op_lookbacks[self.names(temp)] = 0
        return self.panel(ir.Local(temp))

    # -- rows: what each statement computes, what each operand view holds ----------------

    def render(self) -> None:
        """Replaces the operand placeholders by views of the rows each op reads. A
        statement must produce `rows + need` rows, where `need` is the most that a reader
        of its value asks beyond `rows`; it reads `need + lookback of its op` more rows of
        its operands. The result needs `rows` rows."""
        need = {ident: 0 for ident, _ in self.plan.statements}
        arg_need: dict[int, int] = {}

        def demand(text: str, extra: int) -> None:
            for part in text.split(_MARK)[1::2]:
                leaf = self.operands[int(part)]
                if not self.timed(leaf):
                    continue
                if isinstance(leaf, ir.Ref):
                    k = self.slot[leaf.name]
                    arg_need[k] = max(arg_need.get(k, 0), extra)
                else:
                    ident = self.names(leaf.name)
                    need[ident] = max(need[ident], extra)

        demand(self.plan.result, 0)
        for ident, text in reversed(self.plan.statements):
            demand(text, need[ident] + self.op_lookbacks[ident])
        self.plan.lookback = max(arg_need.values(), default=0)
        self.plan.reads = [arg_need.get(k, 0) for k in range(len(self.reads))]

        # An intermediate read before the kernel's first row keeps its last rows in a slot
        # of the kernel's cache between runs (sray_runtime::cache): after an append it
        # computes only the new rows too.
        slotted = [i for i, _ in self.plan.statements if need[i] > 0 or i in self.stateful]
        slots = {ident: self.names(_TEMP + "slot" + ident, f"c{k}") for k, ident in enumerate(slotted)}
        cached = {ident: slot for ident, slot in slots.items() if need[ident] > 0}

        def view(text: str, extra: int) -> str:
            parts = text.split(_MARK)
            for i in range(1, len(parts), 2):
                leaf = self.operands[int(parts[i])]
                if isinstance(leaf, ir.Ref):
                    v = f"args[{self.slot[leaf.name]}]"
                else:
                    ident = self.names(leaf.name)
                    v = ident if ident in cached else f"{ident}.view()"
                if self.timed(leaf):
                    self.plan.uses.add("tail")
                    v = f"tail({v}, rows + {extra})" if extra else f"tail({v}, rows)"
                parts[i] = v
            return "".join(parts)

        statements = []
        for ident, text in self.plan.statements:
            # `rows` inside the closure of a cached one is the rows it computes.
            text = view(text, self.op_lookbacks[ident])
            state = "state" if ident in self.stateful else "_"
            if ident in cached:
                text = f"{cached[ident]}.rows(rows, {need[ident]}, |rows, {state}| {text})"
            elif ident in slots:
                text = f"{slots[ident]}.run(rows, |rows, {state}| {text})"
            statements.append((ident, text))
        self.plan.statements = statements
        self.plan.slots = list(slots.values())
        self.plan.cached = set(cached)
        self.plan.result = view(self.plan.result, 0)

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
        self.render()
        self.plan.recycled = [ident for ident, _ in self.plan.statements
                              if ident != self.plan.result and ident not in self.plan.cached]
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


def plan_kernel(node: ir.Node, dims: dict[str, Dims] | None = None) -> KernelPlan:
    """The kernel of `node`. `dims`: the dims of the DAG's inputs and nodes
    (analyses.shapes.infer_dims), which say which operands are time-indexed; without them
    every operand counts as time-indexed (enough for explain's steps)."""
    return _Lowering(node, dims).run()
