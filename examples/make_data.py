"""Writes a synthetic market to data/<name>.npy (see market.py).

    python examples/make_data.py [--days 1000] [--assets 500] [--out data]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from market import synthetic_market  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=1000)
    parser.add_argument("--assets", type=int, default=500)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path("data"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, values in synthetic_market(args.days, args.assets, args.seed).items():
        tmp = args.out / f".{name}.npy.tmp"
        with open(tmp, "wb") as f:
            np.save(f, values)
        tmp.replace(args.out / f"{name}.npy")  # never a half-written file
    print(f"wrote {args.days} days x {args.assets} assets to {args.out}/")


if __name__ == "__main__":
    main()
