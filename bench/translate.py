"""Translations of a DAG's IR into the code a researcher would otherwise write, for the
benchmarks: pandas (the expressions of docs/ops.md, one DataFrame per panel) and polars
(expressions over a long frame of (date, asset) rows, `.over("asset")` along time and
`.over("date")` across assets). Both compute every node of a DAG, as the compiled module
does, so the timings compare the same work.

Where docs/ops.md writes an op as a Python call per window (`rolling(d).apply(...)`:
ts_argmin, ts_argmax, ts_product, decay_linear), that is the op's meaning, not the code a
competent user would time: it costs minutes on a 2000 x 3000 panel. The translations use
vectorised equivalents instead, which give the same values (tests/test_bench.py checks
them against the docs/ops.md expressions):
- pandas: numpy over `sliding_window_view` (argmin/argmax, product), and decay_linear as
  a weighted sum of d shifted panels;
- polars: a list of the d shifted values per row (`concat_list`) for argmin/argmax, the
  product of the d shifted columns for ts_product, and polars' own weighted
  `rolling_sum` for decay_linear.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
try:
    import polars as pl
except ImportError:  # the pandas translation works without it (tests/test_bench.py)
    pl = None

from sray_transpiler import ir
from sray_transpiler.analyses.graph import topological_order

# -- pandas ----------------------------------------------------------------------------------


def _windows(x: pd.DataFrame, d: int) -> np.ndarray:
    """The trailing window of every cell as a (T, N, d) view (oldest first), NaN before
    the first full window."""
    a = x.to_numpy(dtype=np.float64)
    padded = np.vstack([np.full((d - 1, a.shape[1]), np.nan), a])
    return np.lib.stride_tricks.sliding_window_view(padded, d, axis=0)


def _like(x: pd.DataFrame, values: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(values, index=x.index, columns=x.columns)


def ts_arg_pd(x: pd.DataFrame, d: int, largest: bool) -> pd.DataFrame:
    """`x.rolling(d).apply(np.argmax, raw=True) + 1` (or argmin), without a call per window."""
    w = _windows(x, d)
    position = (w.argmax(axis=2) if largest else w.argmin(axis=2)) + 1.0
    return _like(x, np.where(np.isnan(w).any(axis=2), np.nan, position))


def ts_product_pd(x: pd.DataFrame, d: int) -> pd.DataFrame:
    """`x.rolling(d).apply(np.prod, raw=True)`: NaN windows give NaN, as min_periods=d."""
    return _like(x, _windows(x, d).prod(axis=2))


def decay_linear_pd(x: pd.DataFrame, d: int) -> pd.DataFrame:
    """`x.rolling(d).apply(lambda w: w @ np.arange(1, d + 1) / (d * (d + 1) / 2), raw=True)`
    as a weighted sum of shifted panels (the newest weighted d)."""
    total = sum((k + 1) * x.shift(d - 1 - k) for k in range(d))
    return total / (d * (d + 1) / 2)


def _truthy_pd(x):
    return (x != 0) & x.notna()


def _pandas_call(op: str, a: list, k: list):
    x = a[0] if a else None
    match op:
        case "add": return a[0] + a[1]
        case "sub": return a[0] - a[1]
        case "mul": return a[0] * a[1]
        case "div": return a[0] / a[1]
        case "pow": return a[0] ** a[1]
        case "neg": return -x
        case "lt": return (a[0] < a[1]).astype(float)
        case "le": return (a[0] <= a[1]).astype(float)
        case "gt": return (a[0] > a[1]).astype(float)
        case "ge": return (a[0] >= a[1]).astype(float)
        case "eq": return (a[0] == a[1]).astype(float)
        case "ne": return (a[0] != a[1]).astype(float)
        case "and": return (_truthy_pd(a[0]) & _truthy_pd(a[1])).astype(float)
        case "or": return (_truthy_pd(a[0]) | _truthy_pd(a[1])).astype(float)
        case "not": return (~_truthy_pd(x)).astype(float)
        case "where":
            c, t, f = a
            frame = next(v for v in a if isinstance(v, pd.DataFrame))
            t = t if isinstance(t, pd.DataFrame) else pd.DataFrame(t, index=frame.index, columns=frame.columns)
            return t.where(_truthy_pd(c), f)
        case "abs": return x.abs()
        case "log": return np.log(x)
        case "exp": return np.exp(x)
        case "sqrt": return np.sqrt(x)
        case "sign": return np.sign(x)
        case "minimum": return np.minimum(a[0], a[1])
        case "maximum": return np.maximum(a[0], a[1])
        case "signedpower": return np.sign(x) * x.abs() ** a[1]
        case "delay": return x.shift(k[0])
        case "delta": return x - x.shift(k[0])
        case "ts_sum": return x.rolling(k[0]).sum()
        case "ts_mean": return x.rolling(k[0]).mean()
        case "ts_std": return x.rolling(k[0]).std()
        case "ts_min": return x.rolling(k[0]).min()
        case "ts_max": return x.rolling(k[0]).max()
        case "ts_argmin": return ts_arg_pd(x, k[0], largest=False)
        case "ts_argmax": return ts_arg_pd(x, k[0], largest=True)
        case "ts_rank": return x.rolling(k[0]).rank() / k[0]  # average ties, as docs/ops.md
        case "ts_product": return ts_product_pd(x, k[0])
        case "decay_linear": return decay_linear_pd(x, k[0])
        case "correlation": return a[0].rolling(k[0]).corr(a[1])
        case "covariance": return a[0].rolling(k[0]).cov(a[1])
        case "rank": return x.rank(axis=1, pct=True)
        case "scale": return x.div(x.abs().sum(axis=1), axis=0) * k[0]
        case "demean": return x.sub(x.mean(axis=1), axis=0)
        case "zscore": return x.sub(x.mean(axis=1), axis=0).div(x.std(axis=1), axis=0)
        case "indneutralize":
            labels = a[1].iloc[0].to_numpy()
            return x - x.T.groupby(labels).transform("mean").T
    raise NotImplementedError(op)


def _split(op_name: str, args):
    from sray_transpiler.optable import OPS

    op = OPS[op_name]
    arrays = [a for p, a in zip(op.params, args) if p in op.panel_params]
    literals = [a for p, a in zip(op.params, args) if p not in op.panel_params]
    return arrays, literals


def pandas_dag(dag: ir.Dag):
    """A function `inputs (DataFrames) -> {node: DataFrame}` computing every node."""
    order = topological_order(dag)

    def run(inputs: dict[str, pd.DataFrame]) -> dict:
        values: dict = dict(inputs)
        for name in order:
            node = dag.node(name)
            env: dict = {}

            def ev(e):
                match e:
                    case ir.Const(value=v):
                        return v
                    case ir.Ref(name=n):
                        return values[n]
                    case ir.Local(name=n):
                        return env[n]
                    case ir.Call(op=op, args=args):
                        arrays, literals = _split(op, [ev(x) for x in args])
                        literals = [int(v) if float(v).is_integer() else v for v in literals]
                        return _pandas_call(op, arrays, literals)

            for b in node.body:
                env[b.name] = ev(b.value)
            values[name] = ev(node.result)
        return {n.name: values[n.name] for n in dag.public_nodes}

    return run


# -- polars ----------------------------------------------------------------------------------


from sray_transpiler.optable import OPS as _OPS  # noqa: E402

OPS_KIND = {name: op.kind for name, op in _OPS.items()}


def _truthy_pl(x):
    return (x != 0) & x.is_not_nan()


def _f(x):
    return x.cast(pl.Float64)


def _cs(x):
    """NaN -> null, so that cross-sectional statistics skip it as pandas does."""
    return x.fill_nan(None)


def _shifted(x: pl.Expr, d: int) -> list[pl.Expr]:
    """The d values of each row's trailing window, oldest first (null before the start)."""
    return [x.shift(d - 1 - k) for k in range(d)]


def _window_has_nan_or_is_short(x: pl.Expr, d: int) -> pl.Expr:
    # rolling_sum is null until the window is full, > 0 once it holds a NaN.
    nans = _f(x.is_nan()).rolling_sum(d)
    return nans.is_null() | (nans > 0)


def ts_arg_pl(x: pl.Expr, d: int, largest: bool) -> pl.Expr:
    """1-based position of the window's max (min), first occurrence on ties."""
    window = pl.concat_list(_shifted(x, d))
    position = (window.list.arg_max() if largest else window.list.arg_min()).cast(pl.Float64) + 1
    return pl.when(_window_has_nan_or_is_short(x, d)).then(float("nan")).otherwise(position)


def ts_product_pl(x: pl.Expr, d: int) -> pl.Expr:
    """The product of the window's values, oldest first (null before a full window)."""
    product = x.shift(d - 1)
    for k in range(1, d):
        product = product * x.shift(d - 1 - k)
    return product


def _polars_call(op: str, a: list, k: list):
    x = a[0] if a else None
    nan = pl.lit(float("nan"))
    match op:
        case "add": return a[0] + a[1]
        case "sub": return a[0] - a[1]
        case "mul": return a[0] * a[1]
        case "div": return a[0] / a[1]
        case "pow": return a[0].pow(a[1])
        case "neg": return -x
        case "lt": return _f(a[0] < a[1])
        case "le": return _f(a[0] <= a[1])
        case "gt": return _f(a[0] > a[1])
        case "ge": return _f(a[0] >= a[1])
        case "eq": return _f(a[0] == a[1])
        case "ne": return _f(a[0] != a[1])
        case "and": return _f(_truthy_pl(a[0]) & _truthy_pl(a[1]))
        case "or": return _f(_truthy_pl(a[0]) | _truthy_pl(a[1]))
        case "not": return _f(~_truthy_pl(x))
        case "where": return pl.when(_truthy_pl(a[0])).then(a[1]).otherwise(a[2])
        case "abs": return x.abs()
        case "log": return x.log()
        case "exp": return x.exp()
        case "sqrt": return x.sqrt()
        case "sign": return x.sign()
        case "minimum": return pl.when(a[0].is_nan() | a[1].is_nan()).then(nan).otherwise(pl.min_horizontal(a[0], a[1]))
        case "maximum": return pl.when(a[0].is_nan() | a[1].is_nan()).then(nan).otherwise(pl.max_horizontal(a[0], a[1]))
        case "signedpower": return x.sign() * x.abs().pow(a[1])
        case "delay": return x.shift(k[0]).over("asset")
        case "delta": return (x - x.shift(k[0])).over("asset")
        case "ts_sum": return x.rolling_sum(k[0]).over("asset")
        case "ts_mean": return x.rolling_mean(k[0]).over("asset")
        case "ts_std": return x.rolling_std(k[0]).over("asset")
        case "ts_min": return x.rolling_min(k[0]).over("asset")
        case "ts_max": return x.rolling_max(k[0]).over("asset")
        case "ts_argmin": return ts_arg_pl(x, k[0], largest=False).over("asset")
        case "ts_argmax": return ts_arg_pl(x, k[0], largest=True).over("asset")
        case "ts_rank": return (x.rolling_rank(k[0]) / k[0]).over("asset")
        case "ts_product": return ts_product_pl(x, k[0]).over("asset")
        case "decay_linear":
            d = k[0]
            return (x.rolling_sum(d, weights=[float(w) for w in range(1, d + 1)]) / (d * (d + 1) / 2)).over("asset")
        case "correlation": return pl.rolling_corr(a[0], a[1], window_size=k[0]).over("asset")
        case "covariance": return pl.rolling_cov(a[0], a[1], window_size=k[0]).over("asset")
        case "rank": return (_cs(x).rank("average") / _cs(x).count()).over("date")
        case "scale": return (x / _cs(x).abs().sum() * k[0]).over("date")
        case "demean": return (x - _cs(x).mean()).over("date")
        case "zscore": return ((x - _cs(x).mean()) / _cs(x).std()).over("date")
        case "indneutralize": return (x - _cs(x).mean()).over(["date", a[1]])
    raise NotImplementedError(op)


def polars_dag(dag: ir.Dag, inputs: list[str]) -> list[list[pl.Expr]]:
    """Stages of `with_columns` expressions computing every node on a long frame.

    Every window or row kernel gets a column of its own (polars cannot nest a window
    expression `.over("asset")` inside one `.over("date")`), placed in the first stage
    after the columns it reads, so independent columns are computed together.
    """
    stage_of: dict[str, int] = {name: -1 for name in inputs}
    stages: dict[int, list[pl.Expr]] = {}
    counter = [0]

    def add(expr: pl.Expr, reads: set[str], alias: str) -> str:
        stage = 1 + max((stage_of[r] for r in reads), default=-1)
        stages.setdefault(stage, []).append(expr.fill_null(float("nan")).alias(alias))
        stage_of[alias] = stage
        return alias

    for name in topological_order(dag):
        node = dag.node(name)
        env: dict = {}

        def ev(e) -> tuple[pl.Expr, set[str]]:
            """(expression, columns it reads)."""
            match e:
                case ir.Const(value=v):
                    return pl.lit(v), set()
                case ir.Ref(name=n):
                    return pl.col(n), {n}
                case ir.Local(name=n):
                    return env[n]
                case ir.Call(op=op, args=args):
                    arrays, literals = _split(op, list(args))
                    literals = [int(v.value) if float(v.value).is_integer() else v.value for v in literals]
                    parts = [ev(x) for x in arrays]
                    reads = set().union(*(r for _, r in parts))
                    expr = _polars_call(op, [x for x, _ in parts], literals)
                    if OPS_KIND[op] == "elementwise":
                        return expr, reads
                    counter[0] += 1
                    column = add(expr, reads, f"__t{counter[0]}")
                    return pl.col(column), {column}
            raise TypeError(e)

        for b in node.body:
            env[b.name] = ev(b.value)
        expr, reads = ev(node.result)
        add(expr, reads, name)
    return [stages[k] for k in sorted(stages)]


def long_frame(inputs: dict[str, np.ndarray]) -> pl.DataFrame:
    """Panels (days x assets) -> one row per (asset, date), sorted by asset then date."""
    days, assets = next(iter(inputs.values())).shape
    columns = {"asset": np.repeat(np.arange(assets), days), "date": np.tile(np.arange(days), assets)}
    columns.update({k: np.asarray(v, dtype=np.float64).T.reshape(-1) for k, v in inputs.items()})
    return pl.DataFrame(columns)


def polars_run(frame: pl.DataFrame, plan: list[list[pl.Expr]], keep: list[str] | None = None) -> pl.DataFrame:
    """Runs the stages of `polars_dag`; `keep` selects the columns returned (the nodes),
    so polars can drop the temporary columns once the last stage reading them is done."""
    lazy = frame.lazy()
    for exprs in plan:
        lazy = lazy.with_columns(exprs)
    if keep is not None:
        lazy = lazy.select(keep)
    return lazy.collect()


def from_long(frame: pl.DataFrame, name: str, shape) -> np.ndarray:
    days, assets = shape
    return frame[name].to_numpy().reshape(assets, days).T
