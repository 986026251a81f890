"""Streaming: a day's new bar arrives; append it and print today's factor ranks.

    sray-gen build examples/alphas101.py && python examples/stream_demo.py [DAYS ASSETS]

The object keeps a bounded window (`keep=`), computes only the new row of every factor,
and checks it against a batch run over the whole history.
"""

import sys
import time

import numpy as np

import alphas101_rs
from market import synthetic_market

days, assets = (int(a) for a in sys.argv[1:3]) if len(sys.argv) > 2 else (2000, 3000)
market = synthetic_market(days + 1, assets)           # the history, then today
history = {k: v[:-1] for k, v in market.items()}
bar = {k: v[-1] for k, v in market.items()}           # today's bar: one (N,) row per input

alphas = alphas101_rs.Alphas(keep=300, **history)
names = alphas.nodes()
alphas.compute(names)                                 # the batch run
alphas.append(**bar)                                  # today's row, first append (moves buffers)
start = time.perf_counter()
today = alphas.compute(names, last=1)                 # only the new row of each factor
print(f"today's row of {len(names)} factors in {1e3 * (time.perf_counter() - start):.1f} ms; "
      f"alpha101 looks back {alphas.lookback('alpha101')} rows")
ranks = {n: v[0].argsort().argsort() for n, v in today.items()}
top = np.argsort(-np.nan_to_num(today["alpha101"][0], nan=-np.inf))[:5]
print("alpha101's top 5 assets today:", top.tolist())

batch = alphas101_rs.Alphas(**market).compute(names)
same = all(np.array_equal(today[n][0], batch[n][-1], equal_nan=True) for n in names)
print(f"equal to a batch run over all {days + 1} days, bit for bit:", same)
assert same
