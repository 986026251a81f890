"""A synthetic daily market (no download): prices as correlated random walks with
daily ranges, volumes and industries, shaped (days x assets).

Used by the examples and the benchmarks, so that they all run on the same kind of data.
"""

from __future__ import annotations

import numpy as np

INPUTS = ("open", "high", "low", "close", "volume", "vwap", "returns", "industry")


def synthetic_market(days: int, assets: int, seed: int = 7, industries: int = 12) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    market = rng.normal(0, 0.01, (days, 1))
    industry = rng.integers(0, industries, assets)
    sector = rng.normal(0, 0.006, (days, industries))[:, industry]
    log_returns = market + sector + rng.normal(0, 0.015, (days, assets))
    close = 50 * np.exp(rng.normal(0, 0.5, assets)) * np.exp(np.cumsum(log_returns, axis=0))
    open_ = close * np.exp(rng.normal(0, 0.006, (days, assets)))
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.008, (days, assets))))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.008, (days, assets))))
    volume = np.round(1e6 * np.exp(rng.normal(0, 0.4, (days, assets)) + rng.normal(0, 1, assets)))
    vwap = (high + low + close) / 3
    returns = np.vstack([np.full((1, assets), np.nan), close[1:] / close[:-1] - 1])
    # Some assets list late: their history starts with NaN.
    late = rng.random(assets) < 0.05
    start = rng.integers(0, days // 2, assets)
    listed = ~late[None, :] | (np.arange(days)[:, None] >= start[None, :])
    data = {"open": open_, "high": high, "low": low, "close": close, "volume": volume, "vwap": vwap, "returns": returns}
    data = {k: np.where(listed, v, np.nan) for k, v in data.items()}
    data["industry"] = np.broadcast_to(industry.astype(np.float64), (days, assets)).copy()
    return data
