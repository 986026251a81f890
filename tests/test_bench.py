"""The benchmark's translations (bench/translate.py) compute what docs/ops.md says: the
vectorised pandas and polars forms of the ops docs/ops.md writes as a Python call per window
(ts_argmin, ts_argmax, ts_product, decay_linear) equal those `rolling(d).apply`
expressions on panels with NaN, ties, flat windows and windows longer than T."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT, assert_agree

sys.path.insert(0, str(ROOT / "bench"))
import translate  # noqa: E402


def _panels():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((60, 7))
    x[rng.random(x.shape) < 0.05] = np.nan
    ties = rng.integers(0, 3, (60, 7)).astype(float)
    flat = np.repeat(rng.standard_normal((6, 7)), 10, axis=0)
    return {"random": x, "ties": ties, "flat": flat, "short": x[:3]}


def _apply(x: pd.DataFrame, d: int):
    return {
        "ts_argmin": x.rolling(d).apply(np.argmin, raw=True) + 1,
        "ts_argmax": x.rolling(d).apply(np.argmax, raw=True) + 1,
        "ts_product": x.rolling(d).apply(np.prod, raw=True),
        "decay_linear": x.rolling(d).apply(lambda w: w @ np.arange(1, d + 1) / (d * (d + 1) / 2), raw=True),
    }


@pytest.mark.parametrize("d", [1, 4, 10])
@pytest.mark.parametrize("scenario", ["random", "ties", "flat", "short"])
def test_vectorised_pandas_equals_the_ops_md_expressions(scenario, d):
    values = _panels()[scenario]
    x = pd.DataFrame(values)
    got = {
        "ts_argmin": translate.ts_arg_pd(x, d, largest=False),
        "ts_argmax": translate.ts_arg_pd(x, d, largest=True),
        "ts_product": translate.ts_product_pd(x, d),
        "decay_linear": translate.decay_linear_pd(x, d),
    }
    for op, expected in _apply(x, d).items():
        assert_agree(got[op].to_numpy(), expected.to_numpy())


@pytest.mark.parametrize("d", [1, 4, 10])
@pytest.mark.parametrize("scenario", ["random", "ties", "flat", "short"])
def test_vectorised_polars_equals_the_ops_md_expressions(scenario, d):
    pl = pytest.importorskip("polars", reason="the polars baseline needs the bench extra: pip install -e '.[bench]'")
    values = _panels()[scenario]
    frame = translate.long_frame({"x": values})
    col = pl.col("x")
    exprs = {
        "ts_argmin": translate.ts_arg_pl(col, d, largest=False),
        "ts_argmax": translate.ts_arg_pl(col, d, largest=True),
        "ts_product": translate.ts_product_pl(col, d),
        "decay_linear": translate._polars_call("decay_linear", [col], [d]),
    }
    out = frame.with_columns([e.over("asset").fill_null(float("nan")).alias(k) for k, e in exprs.items()])
    for op, expected in _apply(pd.DataFrame(values), d).items():
        assert_agree(translate.from_long(out, op, values.shape), expected.to_numpy())
