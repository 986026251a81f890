"""Every op of docs/ops.md in three places that must agree: the Rust kernel (through a
compiled module), the Python reference (serverless_ray.ops) and the pandas expression
of docs/ops.md, on panels with NaN, ties, flat windows, windows longer than T, T = 1
and N = 1."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from conftest import FIXTURES, assert_agree
from serverless_ray import load
from sray_transpiler.optable import OPS

ALL_OPS = FIXTURES / "dags" / "all_ops.py"


def _avg_rank_last(w):
    return (np.sum(w < w[-1]) + (np.sum(w == w[-1]) + 1) / 2) / len(w)


# The pandas meaning of each op, as written in docs/ops.md (x, y DataFrames; g labels).
PANDAS = {
    "delay": lambda x, y, g, m: x.shift(3),
    "delta": lambda x, y, g, m: x - x.shift(1),
    "ts_sum": lambda x, y, g, m: x.rolling(4).sum(),
    "ts_mean": lambda x, y, g, m: x.rolling(4).mean(),
    "ts_std": lambda x, y, g, m: x.rolling(4).std(),
    "ts_min": lambda x, y, g, m: x.rolling(3).min(),
    "ts_max": lambda x, y, g, m: x.rolling(3).max(),
    "ts_argmin": lambda x, y, g, m: x.rolling(4).apply(np.argmin, raw=True) + 1,
    "ts_argmax": lambda x, y, g, m: x.rolling(4).apply(np.argmax, raw=True) + 1,
    "ts_rank": lambda x, y, g, m: x.rolling(5).apply(_avg_rank_last, raw=True),
    "ts_product": lambda x, y, g, m: x.rolling(3).apply(np.prod, raw=True),
    "decay_linear": lambda x, y, g, m: x.rolling(5).apply(lambda w: w @ np.arange(1, 6) / 15, raw=True),
    "correlation": lambda x, y, g, m: x.rolling(5).corr(y),
    "covariance": lambda x, y, g, m: x.rolling(5).cov(y),
    "rank": lambda x, y, g, m: x.rank(axis=1, pct=True),
    "scale": lambda x, y, g, m: x.div(x.abs().sum(axis=1), axis=0) * 1,
    "scale_neg": lambda x, y, g, m: x.div(x.abs().sum(axis=1), axis=0) * -2,
    "demean": lambda x, y, g, m: x.sub(x.mean(axis=1), axis=0),
    "zscore": lambda x, y, g, m: x.sub(x.mean(axis=1), axis=0).div(x.std(axis=1), axis=0),
    "indneutralize": lambda x, y, g, m: x - x.T.groupby(g).transform("mean").T,
    "long_window": lambda x, y, g, m: x.rolling(250).mean(),
    "matmul": lambda x, y, g, m: x.dot(m),
}
# Nodes of the fixture that are compositions, not one op of docs/ops.md: no pandas
# expression of their own (their parts are checked through the nodes above). Every other
# node must have an entry in PANDAS: a missing one fails the test instead of skipping.
NOT_ONE_OP = {"matmul_chain", "mixed"}
# Where pandas' own running sums are not the exact answer docs/ops.md asks for: on a
# flat window pandas leaves ~1e-8 noise (or NaN) where the variance is exactly 0.
FLAT_SENSITIVE = {"ts_std", "correlation", "covariance", "zscore"}


def _scenario(name: str):
    rng = np.random.default_rng(sum(map(ord, name)))
    if name == "random":
        x, y = rng.standard_normal((40, 6)), rng.standard_normal((40, 6))
    elif name == "ties":
        x, y = rng.integers(0, 3, (40, 6)).astype(float), rng.integers(0, 2, (40, 6)).astype(float)
    elif name == "flat":
        x = np.repeat(rng.standard_normal((5, 6)), 8, axis=0)  # constant runs of 8 days
        y = rng.standard_normal((40, 6))
    elif name == "short":
        x, y = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    elif name == "T1":
        x, y = rng.standard_normal((1, 5)), rng.standard_normal((1, 5))
    elif name == "N1":
        x, y = rng.standard_normal((30, 1)), rng.standard_normal((30, 1))
    elif name == "long":  # a high price level: running sums must not drift
        x = 1e4 + np.cumsum(rng.standard_normal((1500, 3)), axis=0)
        y = 50 + np.cumsum(rng.standard_normal((1500, 3)), axis=0)
    else:
        raise KeyError(name)
    if name in ("random", "ties", "N1", "long"):
        x[rng.random(x.shape) < 0.05] = np.nan
        y[rng.random(y.shape) < 0.05] = np.nan
    labels = rng.integers(0, 3, x.shape[1]).astype(float)
    m = rng.standard_normal((x.shape[1], x.shape[1]))  # the (N, N) right operand of matmul
    m[0, -1] = np.nan
    return x, y, labels, m


SCENARIOS = ["random", "ties", "flat", "short", "T1", "N1", "long"]


@pytest.fixture(scope="module")
def ops_module(compiled):
    return compiled(ALL_OPS)


def test_the_fixture_covers_every_non_elementwise_op():
    written = ALL_OPS.read_text()
    for op in OPS.values():
        if not op.elementwise:
            assert f"{op.name}(" in written, op.name


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_rust_reference_and_pandas_agree(ops_module, scenario):
    x, y, labels, m = _scenario(scenario)
    g = np.broadcast_to(labels, x.shape).copy()
    compiled = ops_module.Ops(x=x, y=y, g=g, w=m)
    reference = load(ALL_OPS)(x=x, y=y, g=g, w=m)
    names = compiled.nodes()
    got, want = compiled.compute(names), reference.compute(names)
    frames = (pd.DataFrame(x), pd.DataFrame(y), labels, pd.DataFrame(m))
    for name in names:
        try:
            assert_agree(got[name], want[name], rtol=1e-7, atol=1e-10)
            if name in NOT_ONE_OP:
                continue
            assert name in PANDAS, f"no pandas expression for node `{name}` in test_ops.PANDAS"
            expected = PANDAS[name](*frames).to_numpy()
            if name in FLAT_SENSITIVE:
                flat = np.isclose(want[name], 0) | np.isnan(want[name])
                expected = np.where(flat, want[name], expected)
            assert_agree(got[name], expected, rtol=1e-7, atol=1e-10)
        except AssertionError as e:
            raise AssertionError(f"op node `{name}`, scenario {scenario}: {e}") from None


def test_every_fixture_node_has_a_pandas_expression_or_is_a_composition(ops_module):
    names = set(ops_module.Ops(x=np.ones((2, 2)), y=np.ones((2, 2)), g=np.ones((2, 2)), w=np.eye(2)).nodes())
    assert names - NOT_ONE_OP <= set(PANDAS), sorted(names - NOT_ONE_OP - set(PANDAS))
    assert NOT_ONE_OP <= names and set(PANDAS) <= names, sorted((NOT_ONE_OP | set(PANDAS)) - names)


def test_flat_windows_give_exact_zero_variance_and_nan_correlation(ops_module):
    x = np.repeat(np.array([[100.1, 3.3, -7.7]]), 12, axis=0)
    y = np.random.default_rng(0).standard_normal((12, 3))
    got = ops_module.Ops(x=x, y=y, g=np.zeros_like(x), w=np.eye(3)).compute(["ts_std", "covariance", "correlation"])
    assert (got["ts_std"][3:] == 0.0).all()
    assert (got["covariance"][4:] == 0.0).all()
    assert np.isnan(got["correlation"]).all()


def test_running_sums_do_not_drift_over_long_series(ops_module):
    rng = np.random.default_rng(3)
    x = 1e6 + np.cumsum(rng.standard_normal((20000, 2)), axis=0)
    got = ops_module.Ops(x=x, y=x[::-1].copy(), g=np.zeros_like(x), w=np.eye(2)).compute(
        ["ts_mean", "ts_std", "long_window"])
    assert_agree(got["ts_mean"], pd.DataFrame(x).rolling(4).mean().to_numpy(), rtol=1e-9)
    assert_agree(got["long_window"], pd.DataFrame(x).rolling(250).mean().to_numpy(), rtol=1e-9)
    w = np.lib.stride_tricks.sliding_window_view(x, 4, axis=0)
    exact = np.vstack([np.full((3, 2), np.nan), w.std(axis=-1, ddof=1)])
    assert_agree(got["ts_std"], exact, rtol=1e-7)


def test_fortran_order_inputs_give_the_same_values(ops_module):
    x, y, labels, m = _scenario("random")
    g = np.broadcast_to(labels, x.shape).copy()
    c = ops_module.Ops(x=x, y=y, g=g, w=m).compute(ops_module.Ops(x=x, y=y, g=g, w=m).nodes())
    f = ops_module.Ops(x=np.asfortranarray(x), y=np.asfortranarray(y), g=np.asfortranarray(g), w=np.asfortranarray(m))
    for name, value in f.compute(list(c)).items():
        np.testing.assert_array_equal(value, c[name], err_msg=name)


def test_reference_ops_take_dataframes():
    from serverless_ray import ops

    frame = pd.DataFrame(np.arange(12.0).reshape(4, 3), columns=list("abc"))
    out = ops.ts_mean(frame, 2)
    assert isinstance(out, pd.DataFrame) and list(out.columns) == ["a", "b", "c"]
    pd.testing.assert_frame_equal(out, frame.rolling(2).mean())


# -- long windows ------------------------------------------------------------------------
#
# The kernels switch paths above 16 values (running sums, moments, product and decay) and
# above 64 (extremes, ts_rank): every windowed op at windows on both sides of both
# switches, on T a little above the longest window, with NaN, ties, flat runs and ±inf,
# checked against exact arithmetic (math.fsum) and the numpy reference of
# serverless_ray.ops (pandas' running sums are not exact there, and differ on ±inf).

LONG_WINDOWS = (1, 2, 5, 16, 17, 33, 64, 65, 120, 250)  # short ones too: same data, both paths
WINDOWED = [op for op in OPS.values() if op.kind == "timeseries"]


def _long_dag_source() -> str:
    lines = ["from serverless_ray import Input, dag", "", "", "@dag", "class Long:", "    x: Input", "    y: Input"]
    for op in WINDOWED:
        args = ", ".join(p if p != "d" else "{d}" for p in op.params)
        for d in LONG_WINDOWS:
            lines += [f"    def {op.name}_{d}(self):", f"        return {op.name}({args.format(d=d)})"]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def long_module(compiled, tmp_path_factory):
    path = tmp_path_factory.mktemp("long") / "long_windows.py"
    path.write_text(_long_dag_source())
    return compiled(path)


def _long_scenario(name: str, t: int = 262, n: int = 4):
    rng = np.random.default_rng(sum(map(ord, name)) + 7)
    if name == "random":  # NaN and ±inf scattered
        x, y = 50 * rng.standard_normal((t, n)), rng.standard_normal((t, n))
    elif name == "ties":  # small integers: ties everywhere, and flat stretches
        x, y = rng.integers(0, 3, (t, n)).astype(float), rng.integers(0, 2, (t, n)).astype(float)
    elif name == "flat":  # constant runs of 70 days: flat windows up to d = 70
        x = np.repeat(rng.integers(-2, 3, (t // 70 + 1, n)).astype(float), 70, axis=0)[:t]
        y = np.repeat(rng.standard_normal((t // 35 + 1, n)), 35, axis=0)[:t]
        x[:, -1] = rng.standard_normal(t)  # one column that is never flat
    elif name == "level":  # a price level: running sums must not drift
        x = 1e4 + np.cumsum(rng.standard_normal((t, n)), axis=0)
        y = 1e6 + rng.random((t, n))
    elif name == "near_one":  # products of 250 values that neither overflow nor underflow
        x = 1 + 0.05 * rng.standard_normal((t, n))
        x[rng.random((t, n)) < 0.01] = 0.0
        x[rng.random((t, n)) < 0.02] *= -1
        y = rng.standard_normal((t, n))
    else:
        raise KeyError(name)
    # NaN in columns 0 and 1, ±inf in columns 1 and 2, column 3 clean: at d = 250 most
    # windows of a column with scattered NaN hold one, and the clean column still has values.
    for a in (x, y):
        a[:, :2][rng.random((t, 2)) < 0.01] = np.nan
        if name in ("random", "ties", "near_one"):
            a[:, 1:3][rng.random((t, 2)) < 0.004] = np.inf
            a[:, 1:3][rng.random((t, 2)) < 0.004] = -np.inf
    return x, y


LONG_SCENARIOS = ["random", "ties", "flat", "level", "near_one"]


def _reference(op: str):
    from serverless_ray import ops

    return getattr(ops, OPS[op].python)


def _windows(a: np.ndarray, d: int):
    """(row, column, window) for each full window of `a`, oldest first."""
    for t in range(d - 1, a.shape[0]):
        for j in range(a.shape[1]):
            yield t, j, a[t - d + 1: t + 1, j]


def _assert_close(got: np.ndarray, want: np.ndarray, tol: np.ndarray, what: str) -> None:
    """Finite values within `tol` (per cell); non-finite values the same (NaN, +inf, -inf)."""
    got, want = np.asarray(got), np.asarray(want)
    same_nonfinite = (np.isnan(got) & np.isnan(want)) | (np.isinf(want) & (got == want))
    ok = np.where(np.isfinite(want), np.abs(got - want) <= tol, same_nonfinite)
    bad = np.argwhere(~ok)
    assert bad.size == 0, (f"{what}: {len(bad)} cells differ, first at {bad[:3].tolist()}: got "
                           f"{[got[tuple(b)] for b in bad[:3]]}, want {[want[tuple(b)] for b in bad[:3]]}")


def _exact_sums(x: np.ndarray, d: int, weights=None):
    """Correctly rounded Σ w_k·x_k of each window (math.fsum; IEEE where a value is ±inf),
    and Σ |w_k·x_k| (the scale of the rounding error a running sum may make)."""
    import math

    w = np.ones(d) if weights is None else weights
    exact, scale = np.full(x.shape, np.nan), np.full(x.shape, np.nan)
    for t, j, win in _windows(x, d):
        terms = w * win
        if np.isnan(terms).any():
            continue
        exact[t, j] = math.fsum(terms) if np.isfinite(terms).all() else terms.sum()
        scale[t, j] = np.abs(terms).sum()
    return exact, scale


@pytest.mark.parametrize("scenario", LONG_SCENARIOS)
def test_long_windows_agree_with_exact_arithmetic_and_the_reference(long_module, scenario):
    x, y = _long_scenario(scenario)
    compiled = long_module.Long(x=x, y=y)
    names = compiled.nodes()
    assert len(names) == len(WINDOWED) * len(LONG_WINDOWS)
    got = compiled.compute(names)
    eps = np.finfo(float).eps
    finite: dict[str, int] = {}
    for op in WINDOWED:
        for d in LONG_WINDOWS:
            name = f"{op.name}_{d}"
            args = (x, y) if len(op.panel_params) == 2 else (x,)
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                want = _reference(op.name)(*args, d)
                g = got[name]
                what = f"`{name}`, scenario {scenario}"
                finite[name] = finite.get(name, 0) + int(np.isfinite(want).sum())
                if op.name in ("ts_sum", "ts_mean", "decay_linear"):
                    weights = np.arange(1.0, d + 1) / (d * (d + 1) / 2) if op.name == "decay_linear" else None
                    exact, scale = _exact_sums(x, d, weights)
                    if op.name == "ts_mean":
                        exact, scale = exact / d, scale / d
                    _assert_close(g, exact, 1e-13 * scale, what + " vs math.fsum")
                    _assert_close(g, want, 1e-13 * scale, what + " vs the reference")
                elif op.name == "ts_std":
                    _assert_close(g, want, 1e-9 * np.abs(want) + 1e-300, what)
                elif op.name in ("covariance", "correlation"):
                    spread = (_reference("ts_std")(x, d) * _reference("ts_std")(y, d))
                    tol = 1e-9 * (spread if op.name == "covariance" else 1.0)
                    if op.name == "covariance":  # see test_covariance_of_a_flat_window_beside_an_infinity
                        contested = _flat_beside_inf(x, y, d)
                        g, want = np.where(contested, 0.0, g), np.where(contested, 0.0, want)
                    _assert_close(g, want, np.where(np.isfinite(tol), tol, 0.0), what)
                elif op.name == "ts_product":
                    # Any order of d - 1 roundings is within ~d ulps of the plain product.
                    _assert_close(g, want, 4 * d * eps * np.abs(want) + 1e-300, what)
                else:  # delay, delta, extremes, positions, ts_rank: exact
                    _assert_close(g, want, np.zeros_like(want), what)
    # Every node was compared on finite values, not only on NaN; but products of 120 or 250
    # values of size 50 or 1e4 overflow (they are compared as ±inf; near_one has finite
    # ones), and moments of one value are NaN by definition (ddof = 1).
    overflow = scenario in ("random", "level")
    empty = [name for name, count in finite.items() if count == 0 and not (overflow and name.startswith("ts_product"))
             and name not in ("ts_std_1", "covariance_1", "correlation_1")]
    assert not empty, empty


def _flat_beside_inf(x, y, d):
    """Cells whose windows hold no NaN, one of them flat, and a ±inf in either."""
    out = np.zeros(x.shape, dtype=bool)
    for t, j, wx in _windows(x, d):
        wy = y[t - d + 1: t + 1, j]
        both = np.concatenate([wx, wy])
        flat = wx.min() == wx.max() or wy.min() == wy.max()
        out[t, j] = flat and not np.isnan(both).any() and np.isinf(both).any()
    return out


def test_covariance_of_a_flat_window_beside_an_infinity(long_module):
    """docs/ops.md: a flat window makes the covariance exactly 0 unless a window holds a
    NaN; an infinity in the other window does not."""
    x = np.array([[1.0], [1.0], [1.0], [1.0], [2.0]])
    y = np.array([[0.0], [np.inf], [3.0], [-np.inf], [5.0]])
    x, y = np.repeat(x, 2, axis=1), np.repeat(y, 2, axis=1)
    got = long_module.Long(x=np.vstack([x, np.ones((260, 2))]), y=np.vstack([y, np.ones((260, 2))]))
    g = got.compute(["covariance_2"])["covariance_2"][:5]
    with np.errstate(all="ignore"):
        want = _reference("covariance")(x, y, 2)
    assert_agree(g, want)
    np.testing.assert_array_equal(want[:, 0], [np.nan, 0.0, 0.0, 0.0, np.nan])
