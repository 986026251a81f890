"""Computes examples/alpha.py compiled (module `alpha_rs`, built by
`sray-gen build examples/alpha.py`) and in pure Python, and shows incremental recompute.

    python examples/alpha_demo.py [--rows 2000] [--assets 1000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

import serverless_ray

HERE = Path(__file__).resolve().parent


def market(rows: int, assets: int) -> dict[str, np.ndarray]:
    """The open, high, low and close of the synthetic market of market.py."""
    sys.path.insert(0, str(HERE))
    from market import synthetic_market

    data = synthetic_market(rows, assets)
    return {k: data[k] for k in ("open", "close", "high", "low")}


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--assets", type=int, default=1000)
    args = parser.parse_args()
    try:
        import alpha_rs
    except ImportError:
        raise SystemExit("alpha_rs is not installed: run `sray-gen build examples/alpha.py` first") from None

    data = market(args.rows, args.assets)
    nodes = ["f1", "f2", "f3", "spread", "breakout", "score"]
    print(f"panel: {args.rows} days x {args.assets} assets, inputs {', '.join(data)}")

    compiled = alpha_rs.Alpha(**data)
    reference = serverless_ray.load(HERE / "alpha.py", "Alpha")(**data)
    got, t_compiled = timed(lambda: compiled.compute(nodes))
    want, t_reference = timed(lambda: reference.compute(nodes))
    worst = max(float(np.nanmax(np.abs(got[n] - want[n]) / (1 + np.abs(want[n])))) for n in nodes)
    print(f"all {len(nodes)} nodes: compiled {t_compiled * 1e3:.1f} ms, pure Python {t_reference * 1e3:.1f} ms; "
          f"largest relative difference {worst:.1e}")
    for n in nodes:
        v = got[n]
        print(f"  {n:<9} mean {np.nanmean(v):+.5f}  std {np.nanstd(v):.5f}  {alpha_rs.Alpha.__dict__[n].__doc__}")

    # A new day of lows: only `spread`, `breakout` and `score` depend on `low`.
    before = {n: s["computes"] for n, s in compiled.stats().items()}
    compiled.update(low=data["low"] * 0.999)
    _, t_update = timed(lambda: compiled.compute(nodes))
    recomputed = [n for n, s in compiled.stats().items() if s["computes"] > before[n]]
    print(f"after update(low=...): recomputed {', '.join(recomputed)} in {t_update * 1e3:.1f} ms; "
          f"the rest came from cache")
    print("schedule (nodes per level, each level runs in parallel):", compiled.schedule())


if __name__ == "__main__":
    main()
