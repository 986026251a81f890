"""Computes every factor of examples/alphas101.py, compiled (`alphas101_rs`, built by
`sray-gen build examples/alphas101.py`) and with the pure-Python reference, and prints a
short summary of each factor.

    python examples/alphas_demo.py [--data data]   # data from examples/make_data.py,
                                                    # generated there if missing
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import serverless_ray

HERE = Path(__file__).resolve().parent


def load_data(folder: Path) -> dict[str, np.ndarray]:
    if not (folder / "close.npy").exists():
        subprocess.run([sys.executable, str(HERE / "make_data.py"), "--out", str(folder)], check=True)
    sys.path.insert(0, str(HERE))
    from market import INPUTS

    return {name: np.load(folder / f"{name}.npy") for name in INPUTS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("data"))
    args = parser.parse_args()
    try:
        import alphas101_rs
    except ImportError:
        raise SystemExit("alphas101_rs is not installed: run `sray-gen build examples/alphas101.py` first") from None

    data = load_data(args.data)
    days, assets = data["close"].shape
    compiled = alphas101_rs.Alphas(**data)
    names = compiled.nodes()
    start = time.perf_counter()
    got = compiled.compute(names)
    t_compiled = time.perf_counter() - start
    reference = serverless_ray.load(HERE / "alphas101.py", "Alphas")(**data)
    start = time.perf_counter()
    want = reference.compute(names)
    t_reference = time.perf_counter() - start

    print(f"{len(names)} factors on {days} days x {assets} assets: compiled {t_compiled:.2f}s, "
          f"pure Python (numpy) {t_reference:.2f}s")
    future = np.vstack([data["returns"][1:], np.full((1, assets), np.nan)])  # next day's return
    print(f"{'factor':<10} {'coverage':>8} {'mean':>10} {'std':>10} {'rank IC':>8}  agrees")
    for name in names:
        value = got[name]
        finite = np.isfinite(value)
        both = finite & np.isfinite(future)
        ic = np.corrcoef(value[both], future[both])[0, 1] if both.sum() > 2 else np.nan
        ok = np.array_equal(np.isfinite(want[name]), finite) and np.allclose(value[finite], want[name][finite], rtol=1e-6, atol=1e-9)
        print(f"{name:<10} {finite.mean():>8.1%} {np.mean(value[finite]):>10.4g} {np.std(value[finite]):>10.4g} {ic:>8.4f}  {'yes' if ok else 'NO'}")


if __name__ == "__main__":
    main()
