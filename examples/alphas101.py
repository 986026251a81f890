"""A factor library in the style of "101 Formulaic Alphas" (Kakushadze, 2016).

Formulas are written almost as printed, with the op names of docs/ops.md: `ts_std` is
the paper's `stddev`, `ts_sum` its `sum`, `x ** a` its `x^a`, `where(c, a, b)` its
`c ? a : b`. Some windows are shortened to suit a few years of daily data.

    python examples/make_data.py            # a synthetic market in data/ (no download)
    sray-gen build examples/alphas101.py    # compiles the module `alphas101_rs`
    python examples/alphas_demo.py          # computes every factor, compiled and in Python
"""

from serverless_ray import Input, dag

# flake8: noqa: F821 - ops and bare input names are resolved by sray-gen


@dag
class Alphas:
    """Thirty-two price-volume factors over a (days x assets) panel."""

    open: Input
    high: Input
    low: Input
    close: Input
    volume: Input
    vwap: Input
    returns: Input
    industry: Input  # group label of each asset, broadcast over days

    def _adv20(self):
        """Average daily volume over 20 days (private: shared by the factors using it)."""
        return ts_mean(volume, 20)

    def alpha001(self):
        x = where(returns < 0, ts_std(returns, 20), close)
        return rank(ts_argmax(signedpower(x, 2.0), 5)) - 0.5

    def alpha002(self):
        return -1 * correlation(rank(delta(log(volume), 2)), rank((close - open) / open), 6)

    def alpha003(self):
        return -1 * correlation(rank(open), rank(volume), 10)

    def alpha004(self):
        return -1 * ts_rank(rank(low), 9)

    def alpha005(self):
        return rank(open - ts_sum(vwap, 10) / 10) * (-1 * abs(rank(close - vwap)))

    def alpha006(self):
        return -1 * correlation(open, volume, 10)

    def alpha007(self):
        moved = delta(close, 7)
        return where(self._adv20 < volume, -1 * ts_rank(abs(moved), 60) * sign(moved), -1)

    def alpha008(self):
        x = ts_sum(open, 5) * ts_sum(returns, 5)
        return -1 * rank(x - delay(x, 10))

    def alpha009(self):
        d = delta(close, 1)
        return where(0 < ts_min(d, 5), d, where(ts_max(d, 5) < 0, d, -1 * d))

    def alpha010(self):
        d = delta(close, 1)
        return rank(where(0 < ts_min(d, 4), d, where(ts_max(d, 4) < 0, d, -1 * d)))

    def alpha011(self):
        gap = vwap - close
        return (rank(ts_max(gap, 3)) + rank(ts_min(gap, 3))) * rank(delta(volume, 3))

    def alpha012(self):
        return sign(delta(volume, 1)) * (-1 * delta(close, 1))

    def alpha013(self):
        return -1 * rank(covariance(rank(close), rank(volume), 5))

    def alpha014(self):
        return (-1 * rank(delta(returns, 3))) * correlation(open, volume, 10)

    def alpha015(self):
        return -1 * ts_sum(rank(correlation(rank(high), rank(volume), 3)), 3)

    def alpha016(self):
        return -1 * rank(covariance(rank(high), rank(volume), 5))

    def alpha017(self):
        a = -1 * rank(ts_rank(close, 10))
        b = rank(delta(delta(close, 1), 1))
        return a * b * rank(ts_rank(volume / self._adv20, 5))

    def alpha018(self):
        body = close - open
        return -1 * rank(ts_std(abs(body), 5) + body + correlation(close, open, 10))

    def alpha019(self):
        return (-1 * sign(close - delay(close, 7) + delta(close, 7))) * (1 + rank(1 + ts_sum(returns, 250)))

    def alpha020(self):
        a = -1 * rank(open - delay(high, 1))
        return a * rank(open - delay(close, 1)) * rank(open - delay(low, 1))

    def alpha022(self):
        return -1 * (delta(correlation(high, volume, 5), 5) * rank(ts_std(close, 20)))

    def alpha023(self):
        return where(ts_sum(high, 20) / 20 < high, -1 * delta(high, 2), 0)

    def alpha024(self):
        trend = delta(ts_sum(close, 100) / 100, 100) / delay(close, 100)
        return where(trend <= 0.05, -1 * (close - ts_min(close, 100)), -1 * delta(close, 3))

    def alpha025(self):
        return rank(-1 * returns * self._adv20 * vwap * (high - close))

    def alpha026(self):
        return -1 * ts_max(correlation(ts_rank(volume, 5), ts_rank(high, 5), 5), 3)

    def alpha028(self):
        return scale(correlation(self._adv20, low, 5) + (high + low) / 2 - close)

    def alpha030(self):
        c1, c2, c3 = delay(close, 1), delay(close, 2), delay(close, 3)
        signs = sign(close - c1) + sign(c1 - c2) + sign(c2 - c3)
        return (1.0 - rank(signs)) * ts_sum(volume, 5) / ts_sum(volume, 20)

    def alpha033(self):
        return rank(-1 * (1 - open / close))

    def alpha034(self):
        return rank(1 - rank(ts_std(returns, 2) / ts_std(returns, 5)) + (1 - rank(delta(close, 1))))

    def alpha035(self):
        a = ts_rank(volume, 32) * (1 - ts_rank(close + high - low, 16))
        return a * (1 - ts_rank(returns, 32))

    def alpha041(self):
        return (high * low) ** 0.5 - vwap

    def alpha048(self):
        d = delta(close, 1)
        x = correlation(d, delta(delay(close, 1), 1), 250) * d / close
        return indneutralize(x, industry) / ts_sum((d / delay(close, 1)) ** 2, 250)

    def alpha054(self):
        return (-1 * ((low - close) * open ** 5)) / ((low - high) * close ** 5)

    def alpha072(self):
        a = rank(decay_linear(correlation((high + low) / 2, ts_mean(volume, 40), 9), 10))
        b = rank(decay_linear(correlation(ts_rank(vwap, 4), ts_rank(volume, 19), 7), 3))
        return a / b

    def alpha101(self):
        return (close - open) / ((high - low) + 0.001)

    def momentum(self):
        """Ten-day compounded return, z-scored across assets."""
        return zscore(ts_product(1 + returns, 10) - 1)

    def reversal(self):
        """Five-day mean return against its cross-sectional mean, weighted by recency."""
        return demean(decay_linear(returns, 5))
