"""The op table: the one place where an op is declared.

Each `Op` says how DAG code may spell it (an operator symbol, a bare or `ops.`-qualified
name, numpy spellings), its parameters, its kind, its exact meaning (`meaning`: a numpy
or pandas expression), its Python reference (a function of `serverless_ray.ops`, the
oracle, looked up there by name) and its Rust kernel. The frontend, validation, the
reference evaluator, code generation and the docs all read this table: the op tables of
docs/ops.md are generated from it (`sray-gen ops --markdown`, sray_transpiler.opdoc).

For elementwise ops the Rust side is a scalar expression template over the arguments
(`{0}`, `{1}`, ...) that the backend inlines into one fused per-element closure;
`rust_prec` is the Rust precedence of an operator template (None for a function call,
which never needs parentheses around it).

`meaning` is written over the names docs/ops.md defines: `a`, `b`, `cond` and `x` are
float64 numpy arrays for elementwise ops; `x`, `y` and `g` are pandas DataFrames (rows
are time, oldest first; columns are assets) for the others, `d` the window, `a` of
`scale` a number; `truthy(v)` is `(v != 0) & ~np.isnan(v)`. tests/test_opdoc.py
evaluates every `meaning` against `serverless_ray.ops`. `doc` is the short note shown by
`sray-gen ops`, with the NaN, tie and flat-window rules that the expression leaves open.
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
    meaning: str = ""  # the exact meaning, a numpy / pandas expression (see the module docstring)

    @property
    def elementwise(self) -> bool:
        return self.kind == "elementwise"

    @property
    def panel_params(self) -> tuple[str, ...]:
        """The parameters that take arrays (the others take literals)."""
        return tuple(p for p in self.params if p not in self.windows and p not in self.literals)


def _binop(name, symbol, rust, prec, numpy, doc, meaning, python=None):
    return Op(name, ("a", "b"), "elementwise", python or name, rust, doc, prec, symbol, numpy, callable=False,
              meaning=meaning)


def _fn(name, params, doc, meaning, numpy=(), rust_name=None):
    args = ", ".join(f"{{{i}}}" for i in range(len(params)))
    return Op(name, tuple(params), "elementwise", name, f"s::{rust_name or name}({args})", doc, None, None, numpy,
              meaning=meaning)


_TABLE = [
    _binop("add", "+", "{0} + {1}", PREC_ADD, ("add",), "sum", "a + b"),
    _binop("sub", "-", "{0} - {1}", PREC_ADD, ("subtract",), "difference", "a - b"),
    _binop("mul", "*", "{0} * {1}", PREC_MUL, ("multiply",), "product", "a * b"),
    _binop("div", "/", "{0} / {1}", PREC_MUL, ("divide", "true_divide"), "quotient (x/0 gives ±inf, 0/0 NaN)", "a / b"),
    _binop("pow", "**", "s::pow({0}, {1})", None, ("power",), "power (a negative base to a fractional power: NaN)",
           "a ** b"),
    Op("neg", ("a",), "elementwise", "neg", "-{0}", "negation", PREC_UNARY, "-", ("negative",), callable=False,
       meaning="-a"),
    _binop("lt", "<", "s::lt({0}, {1})", None, (), "1.0 where a < b, else 0.0 (NaN compares false)",
           "(a < b).astype(float)"),
    _binop("le", "<=", "s::le({0}, {1})", None, (), "1.0 where a <= b, else 0.0 (NaN compares false)",
           "(a <= b).astype(float)"),
    _binop("gt", ">", "s::gt({0}, {1})", None, (), "1.0 where a > b, else 0.0 (NaN compares false)",
           "(a > b).astype(float)"),
    _binop("ge", ">=", "s::ge({0}, {1})", None, (), "1.0 where a >= b, else 0.0 (NaN compares false)",
           "(a >= b).astype(float)"),
    _binop("eq", "==", "s::eq({0}, {1})", None, (), "1.0 where a == b, else 0.0 (NaN equals nothing)",
           "(a == b).astype(float)"),
    _binop("ne", "!=", "s::ne({0}, {1})", None, (), "1.0 where a != b (also where either is NaN), else 0.0",
           "(a != b).astype(float)"),
    _binop("and", "&", "s::and({0}, {1})", None, (), "logical and of truthiness (nonzero and not NaN), 1.0 / 0.0",
           "(truthy(a) & truthy(b)).astype(float)", "and_"),
    _binop("or", "|", "s::or({0}, {1})", None, (), "logical or of truthiness, 1.0 / 0.0",
           "(truthy(a) | truthy(b)).astype(float)", "or_"),
    Op("not", ("a",), "elementwise", "not_", "s::not({0})", "logical not of truthiness (~NaN is 1.0)", None, "~", (),
       callable=False, meaning="(~truthy(a)).astype(float)"),
    _fn("where", ("cond", "a", "b"), "a where cond is truthy (a NaN cond picks b), else b",
        "np.where(truthy(cond), a, b)", ("where",), rust_name="where_"),
    _fn("abs", ("x",), "absolute value", "np.abs(x)", ("abs", "absolute")),
    _fn("log", ("x",), "natural logarithm (-inf at 0, NaN below 0)", "np.log(x)", ("log",)),
    _fn("exp", ("x",), "e ** x", "np.exp(x)", ("exp",)),
    _fn("sqrt", ("x",), "square root (NaN below 0)", "np.sqrt(x)", ("sqrt",)),
    _fn("sign", ("x",), "-1, 0 or 1 (0 for ±0; NaN stays NaN)", "np.sign(x)", ("sign",)),
    _fn("minimum", ("a", "b"), "elementwise minimum (NaN if either is NaN)", "np.minimum(a, b)", ("minimum",)),
    _fn("maximum", ("a", "b"), "elementwise maximum (NaN if either is NaN)", "np.maximum(a, b)", ("maximum",)),
    _fn("signedpower", ("x", "a"), "sign(x) * abs(x) ** a: the power keeps the sign of x",
        "np.sign(x) * np.abs(x) ** a"),
]


def _ts(name, doc, meaning, params=("x", "d")):
    args = ", ".join(f"{{{i}}}" for i in range(len(params)))
    return Op(name, params, "timeseries", name, f"ts::{name}({args})", doc, windows=("d",), meaning=meaning)


def _cs(name, doc, meaning, params=("x",), literals=(), defaults=()):
    args = ", ".join(f"{{{i}}}" for i in range(len(params)))
    return Op(name, params, "crosssection", name, f"cs::{name}({args})", doc, literals=literals, defaults=defaults,
              meaning=meaning)


_TABLE += [
    _ts("delay", "the value d rows earlier; the first d rows are NaN", "x.shift(d)"),
    _ts("delta", "today minus d rows earlier; the first d rows are NaN", "x - x.shift(d)"),
    _ts("ts_sum", "sum of the window", "x.rolling(d).sum()"),
    _ts("ts_mean", "mean of the window", "x.rolling(d).mean()"),
    _ts("ts_std", "sample std (ddof=1); exactly 0.0 on a flat window; NaN for d = 1", "x.rolling(d).std()"),
    _ts("ts_min", "minimum of the window", "x.rolling(d).min()"),
    _ts("ts_max", "maximum of the window", "x.rolling(d).max()"),
    _ts("ts_argmin", "1-based position of the window's minimum (1 = oldest row; the oldest on ties)",
        "x.rolling(d).apply(np.argmin, raw=True) + 1"),
    _ts("ts_argmax", "1-based position of the window's maximum (1 = oldest row; the oldest on ties)",
        "x.rolling(d).apply(np.argmax, raw=True) + 1"),
    _ts("ts_rank", "average rank of today's value in its window (ties share their mean rank) over d: "
        "1/d .. 1; also `x.rolling(d).rank() / d`",
        "x.rolling(d).apply(lambda w: ((w < w[-1]).sum() + ((w == w[-1]).sum() + 1) / 2) / d, raw=True)"),
    _ts("ts_product", "product of the window", "x.rolling(d).apply(np.prod, raw=True)"),
    _ts("decay_linear", "weighted mean of the window, weights 1 (oldest) .. d (newest) over their sum d(d+1)/2",
        "x.rolling(d).apply(lambda w: w @ np.arange(1, d + 1) / (d * (d + 1) / 2), raw=True)"),
    _ts("correlation", "Pearson correlation of the two windows; NaN where either window is flat; NaN for d = 1",
        "x.rolling(d).corr(y)", ("x", "y", "d")),
    _ts("covariance", "sample covariance (ddof=1); exactly 0.0 where either window is flat (and neither holds "
        "a NaN); NaN for d = 1", "x.rolling(d).cov(y)", ("x", "y", "d")),
    _cs("rank", "average rank among the row's non-NaN values (ties share their mean rank) over their count: "
        "(0, 1]; NaN stays NaN", "x.rank(axis=1, pct=True)"),
    _cs("scale", "x over the row's sum of |x| (NaN skipped), times a (a number literal, default 1); "
        "a row summing to 0 gives NaN", "x.div(x.abs().sum(axis=1), axis=0) * a", ("x", "a"), ("a",),
        (("a", 1.0),)),
    _cs("demean", "x minus the mean of the row's non-NaN values", "x.sub(x.mean(axis=1), axis=0)"),
    _cs("zscore", "(x - row mean) / row std (ddof=1, NaN skipped); a row with one value is NaN, "
        "a flat row divides by an exact 0 (NaN or ±inf)",
        "x.sub(x.mean(axis=1), axis=0).div(x.std(axis=1), axis=0)"),
    _cs("indneutralize", "x minus the mean of x over the row's cells with the same label in g (g: a float label "
        "per cell, dims as x; NaN x skipped in the mean); a NaN label gives NaN",
        'x.apply(lambda r: r - r.groupby(g.loc[r.name]).transform("mean"), axis=1)', ("x", "g")),
]

_TABLE += [
    Op("matmul", ("a", "b"), "linalg", "matmul", "la::matmul({0}, {1})",
       "matrix product: (m, k) @ (k, n) -> (m, n), dims matched by name; NaN and ±inf propagate as in BLAS",
       symbol="@", numpy=("matmul", "dot"), meaning="np.matmul(a, b)"),
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
