"""The op table: the one place where an op is declared.

Each `Op` says how DAG code may spell it (an operator symbol, a bare or `ops.`-qualified
name, numpy spellings), its parameters, its kind, its Python reference (a function of
`serverless_ray.ops`, the oracle, looked up there by name) and its Rust kernel. The frontend, validation, the
reference evaluator, code generation and the docs all read this table.

For elementwise ops the Rust side is a scalar expression template over the arguments
(`{0}`, `{1}`, ...) that the backend inlines into one fused per-element closure;
`rust_prec` is the Rust precedence of an operator template (None for a function call,
which never needs parentheses around it). The meaning of every op is fixed by
shared/OPS.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["elementwise", "timeseries", "crosssection", "linalg"]

# Rust operator precedences (higher binds tighter); calls and atoms are ATOM.
PREC_ADD = 9
PREC_MUL = 10
PREC_UNARY = 12
ATOM = 100


@dataclass(frozen=True)
class Op:
    name: str
    params: tuple[str, ...]
    kind: Kind
    python: str  # function name in serverless_ray.ops
    rust: str  # Rust template over {0}, {1}, ...
    doc: str
    rust_prec: int | None = None  # None: a call; else the operator's precedence
    symbol: str | None = None  # Python operator spelling, for messages and explain
    numpy: tuple[str, ...] = ()  # accepted as np.<name> / numpy.<name>
    callable: bool = True  # may be called by name (`where(c, a, b)`), not only via a symbol
    windows: tuple[str, ...] = ()  # parameters that take an integer literal >= 1
    literals: tuple[str, ...] = ()  # parameters that take a number literal
    defaults: tuple[tuple[str, float], ...] = ()  # (parameter, value) for omitted literals

    @property
    def elementwise(self) -> bool:
        return self.kind == "elementwise"

    @property
    def panel_params(self) -> tuple[str, ...]:
        """The parameters that take arrays (the others take literals)."""
        return tuple(p for p in self.params if p not in self.windows and p not in self.literals)


def _binop(name, symbol, rust, prec, numpy, doc, python=None):
    return Op(name, ("a", "b"), "elementwise", python or name, rust, doc, prec, symbol, numpy, callable=False)


def _fn(name, params, doc, numpy=(), rust_name=None):
    args = ", ".join(f"{{{i}}}" for i in range(len(params)))
    return Op(name, tuple(params), "elementwise", name, f"s::{rust_name or name}({args})", doc, None, None, numpy)


_TABLE = [
    _binop("add", "+", "{0} + {1}", PREC_ADD, ("add",), "a + b"),
    _binop("sub", "-", "{0} - {1}", PREC_ADD, ("subtract",), "a - b"),
    _binop("mul", "*", "{0} * {1}", PREC_MUL, ("multiply",), "a * b"),
    _binop("div", "/", "{0} / {1}", PREC_MUL, ("divide", "true_divide"), "a / b (x/0 gives ±inf or NaN)"),
    _binop("pow", "**", "s::pow({0}, {1})", None, ("power",), "a ** b"),
    Op("neg", ("a",), "elementwise", "neg", "-{0}", "-a", PREC_UNARY, "-", ("negative",), callable=False),
    _binop("lt", "<", "s::lt({0}, {1})", None, (), "1.0 where a < b, else 0.0 (NaN compares false)"),
    _binop("le", "<=", "s::le({0}, {1})", None, (), "1.0 where a <= b, else 0.0"),
    _binop("gt", ">", "s::gt({0}, {1})", None, (), "1.0 where a > b, else 0.0"),
    _binop("ge", ">=", "s::ge({0}, {1})", None, (), "1.0 where a >= b, else 0.0"),
    _binop("eq", "==", "s::eq({0}, {1})", None, (), "1.0 where a == b, else 0.0"),
    _binop("ne", "!=", "s::ne({0}, {1})", None, (), "1.0 where a != b (also where either is NaN), else 0.0"),
    _binop("and", "&", "s::and({0}, {1})", None, (), "logical and of truthiness (nonzero and not NaN)", "and_"),
    _binop("or", "|", "s::or({0}, {1})", None, (), "logical or of truthiness", "or_"),
    Op("not", ("a",), "elementwise", "not_", "s::not({0})", "logical not of truthiness", None, "~", (), callable=False),
    _fn("where", ("cond", "a", "b"), "a where cond is truthy, else b", ("where",), rust_name="where_"),
    _fn("abs", ("x",), "absolute value", ("abs", "absolute")),
    _fn("log", ("x",), "natural logarithm", ("log",)),
    _fn("exp", ("x",), "e ** x", ("exp",)),
    _fn("sqrt", ("x",), "square root", ("sqrt",)),
    _fn("sign", ("x",), "-1, 0 or 1 (NaN stays NaN)", ("sign",)),
    _fn("minimum", ("a", "b"), "elementwise minimum (NaN propagates)", ("minimum",)),
    _fn("maximum", ("a", "b"), "elementwise maximum (NaN propagates)", ("maximum",)),
    _fn("signedpower", ("x", "a"), "sign(x) * abs(x) ** a"),
]


def _ts(name, doc, params=("x", "d")):
    args = ", ".join(f"{{{i}}}" for i in range(len(params)))
    return Op(name, params, "timeseries", name, f"ts::{name}({args})", doc, windows=("d",))


def _cs(name, doc, params=("x",), literals=(), defaults=()):
    args = ", ".join(f"{{{i}}}" for i in range(len(params)))
    return Op(name, params, "crosssection", name, f"cs::{name}({args})", doc, literals=literals, defaults=defaults)


_TABLE += [
    _ts("delay", "x.shift(d): the value d steps ago"),
    _ts("delta", "x - x.shift(d)"),
    _ts("ts_sum", "x.rolling(d).sum()"),
    _ts("ts_mean", "x.rolling(d).mean()"),
    _ts("ts_std", "x.rolling(d).std() (ddof=1; exactly 0 on a flat window)"),
    _ts("ts_min", "x.rolling(d).min()"),
    _ts("ts_max", "x.rolling(d).max()"),
    _ts("ts_argmin", "1-based position of the window's minimum (1 = oldest, first on ties)"),
    _ts("ts_argmax", "1-based position of the window's maximum (1 = oldest, first on ties)"),
    _ts("ts_rank", "rank of today's value in its window (average ties) / d"),
    _ts("ts_product", "product of the window"),
    _ts("decay_linear", "weighted mean of the window, weights 1..d (newest d)"),
    _ts("correlation", "x.rolling(d).corr(y) (NaN where either window is flat)", ("x", "y", "d")),
    _ts("covariance", "x.rolling(d).cov(y) (ddof=1; 0 where either window is flat)", ("x", "y", "d")),
    _cs("rank", "x.rank(axis=1, pct=True) (average ties; NaN not counted)"),
    _cs("scale", "x / sum(|x|) * a, per row (NaN skipped)", ("x", "a"), ("a",), (("a", 1.0),)),
    _cs("demean", "x minus its row mean"),
    _cs("zscore", "(x - row mean) / row std (ddof=1)"),
    _cs("indneutralize", "x minus the mean of its group g, per row (g: group labels, shaped like x)", ("x", "g")),
]

_TABLE += [
    Op("matmul", ("a", "b"), "linalg", "matmul", "la::matmul({0}, {1})",
       "matrix product: (m, k) @ (k, n) -> (m, n) (np.matmul; a GEMM in the compiled artifacts)",
       symbol="@", numpy=("matmul", "dot")),
]

OPS: dict[str, Op] = {op.name: op for op in _TABLE}

BINARY_SYMBOLS = {op.symbol: op for op in _TABLE if op.symbol and len(op.params) == 2}
UNARY_SYMBOLS = {op.symbol: op for op in _TABLE if op.symbol and len(op.params) == 1}

# Module names under which DAG code may qualify ops: `ops.rank(x)`, `np.where(...)`.
OPS_QUALIFIERS = ("ops", "sray", "serverless_ray", "serverless_ray.ops", "sray.ops")
NUMPY_QUALIFIERS = ("np", "numpy")

# Named float constants DAG code may use: `np.nan`, `math.pi`.
CONSTANTS = {
    f"{mod}.{name}": value
    for mod in ("np", "numpy", "math")
    for name, value in (("nan", float("nan")), ("inf", float("inf")), ("pi", 3.141592653589793), ("e", 2.718281828459045))
}


def by_bare_name(name: str) -> Op | None:
    op = OPS.get(name)
    return op if op is not None and op.callable else None


def by_numpy_name(name: str) -> Op | None:
    for op in _TABLE:
        if name in op.numpy:
            return op
    return None
