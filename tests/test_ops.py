"""Every op of shared/OPS.md in three places that must agree: the Rust kernel (through a
compiled module), the Python reference (serverless_ray.ops) and the pandas expression
of shared/OPS.md, on panels with NaN, ties, flat windows, windows longer than T, T = 1
and N = 1."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import FIXTURES, assert_agree
from serverless_ray import load
from sray_transpiler.optable import OPS

ALL_OPS = FIXTURES / "dags" / "all_ops.py"


def _avg_rank_last(w):
    return (np.sum(w < w[-1]) + (np.sum(w == w[-1]) + 1) / 2) / len(w)


# The pandas meaning of each op, as written in shared/OPS.md (x, y DataFrames; g labels).
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
# Where pandas' own running sums are not the exact answer shared/OPS.md asks for: on a
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
            if name in PANDAS:
                expected = PANDAS[name](*frames).to_numpy()
                if name in FLAT_SENSITIVE:
                    flat = np.isclose(want[name], 0) | np.isnan(want[name])
                    expected = np.where(flat, want[name], expected)
                assert_agree(got[name], expected, rtol=1e-7, atol=1e-10)
        except AssertionError as e:
            raise AssertionError(f"op node `{name}`, scenario {scenario}: {e}") from None


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
