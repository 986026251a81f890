"""The seed's second sample: factors computed by name from a data store, in parallel
where their graph allows.

    python examples/run_2.py [--store data/run_2] [--work-s 1] [--compiled]

f1(open, close), f2(high, low) and f3(f1, f2) name what they read. A remote task computes
one factor by name: it loads the inputs its parameters name from the store, calls the
function, and writes the result back as {name}.npy. Mapping it over ["f1", "f2", "f3"]
runs f1 and f2 at once and f3 after both: the task's `graph` option tells `map` that f3
reads f1 and f2 (serverless_ray.FunctionGraph reads it from the parameter names).

--compiled hands the whole graph to the compiled module of examples/funcs_seed.py (the
same three functions; `sray-gen build examples/funcs_seed.py` makes `funcs_seed_rs`) in
one task, on a thread: the Rust engine runs f1 and f2 in parallel itself.

The store is a folder, a file:// URI, or s3://bucket/prefix (for the Lambda backend).
Inputs missing from the store are made first (examples/market.py, a synthetic market).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

import serverless_ray
from serverless_ray.store import open_store

HERE = Path(__file__).resolve().parent
WORK_S = float(os.environ.get("RUN_2_WORK_S", "0"))  # extra seconds per task, to make the timeline visible


def f1(open, close):
    return close - open


def f2(high, low):
    return high - low


def f3(f1, f2):
    return f1 * f2


FACTORS = serverless_ray.FunctionGraph([f1, f2, f3])


# The seed asks for num_cpus=10, num_gpus=1 and 512 GiB; no backend here can give that, and
# each says so in a ResourceRequestWarning (docs/remote.md). One core per task is honest
# here, and lets f1 and f2 share this 2-core machine.
@serverless_ray.remote(num_cpus=1, memory_mb=1024, graph=FACTORS)
def heavy_computation(factor_name, store="data/run_2"):
    """Computes one factor by name from the store; returns (name, started, finished)."""
    started = time.time()
    fn = FACTORS.functions[factor_name]
    data = open_store(store)
    inputs = {name: data.read(name) for name in FACTORS.parameters(factor_name)}
    value = fn(**inputs)
    time.sleep(WORK_S)
    data.write(factor_name, value)
    return factor_name, started, time.time()


@serverless_ray.remote(worker="thread", memory_mb=1024)
def compute_compiled(names, store="data/run_2"):
    """The whole graph in one task: the compiled engine computes `names` (in parallel
    where it can) and the results are written back."""
    try:
        import funcs_seed_rs
    except ImportError:
        raise RuntimeError("funcs_seed_rs is not installed: run `sray-gen build examples/funcs_seed.py` "
                           "first, or drop --compiled") from None
    started = time.time()
    data = open_store(store)
    inputs = sorted({i for name in FACTORS.order for i in FACTORS.inputs(name)})  # open, close, high, low
    engine = funcs_seed_rs.FuncsSeed(**{name: data.read(name) for name in inputs})
    values = engine.compute(list(names))
    time.sleep(WORK_S)
    for name in names:
        data.write(name, values[name])
    return [(name, started, time.time()) for name in names]


def ensure_inputs(store, rows: int = 250, assets: int = 50) -> None:
    """Writes open/close/high/low to the store if it has none (a synthetic market)."""
    if all(store.exists(name) for name in ("open", "close", "high", "low")):
        return
    sys.path.insert(0, str(HERE))
    from market import synthetic_market

    market = synthetic_market(rows, assets)
    for name in ("open", "close", "high", "low"):
        store.write(name, market[name])


def compute_factors(store_uri: str, names=("f1", "f2", "f3"), compiled: bool = False) -> list:
    """Runs the tasks on the configured backend; returns [(name, started, finished)]."""
    if compiled:
        return serverless_ray.get(compute_compiled.remote(list(names), store=store_uri))
    return heavy_computation.map(list(names), store=store_uri)


def check(store) -> float:
    """The largest difference between the stored f3 and (close - open) * (high - low)."""
    want = (store.read("close") - store.read("open")) * (store.read("high") - store.read("low"))
    got = store.read("f3")
    return float(np.nanmax(np.abs(got - want)))


def main(argv=None) -> list:
    global WORK_S
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", default="data/run_2", help="folder, file:// or s3:// URI (default %(default)s)")
    parser.add_argument("--work-s", type=float, default=1.0,
                        help="extra seconds each task works, to show the schedule (default %(default)s)")
    parser.add_argument("--compiled", action="store_true", help="run the whole graph in one compiled task")
    args = parser.parse_args(argv)
    os.environ["RUN_2_WORK_S"] = str(args.work_s)  # for workers that import this file as a module
    WORK_S = args.work_s

    store = open_store(args.store)
    ensure_inputs(store)
    serverless_ray.config()  # the local backend
    begin = time.time()
    with serverless_ray.start():
        timeline = compute_factors(store.uri, compiled=args.compiled)
    total = time.time() - begin
    print(f"store: {store.uri}; graph: {FACTORS}")
    for name, started, finished in timeline:
        bar = " " * int((started - begin) * 10) + "#" * max(1, int((finished - started) * 10))
        print(f"  {name}  {started - begin:5.2f} s -> {finished - begin:5.2f} s  |{bar}")
    print(f"{'one compiled task' if args.compiled else 'f1 and f2 in parallel, then f3'}: {total:.2f} s "
          f"(each task works {args.work_s:g} s)")
    diff = check(store)
    print(f"check: stored f3 == (close - open) * (high - low): largest difference {diff:.1e}")
    if not diff <= 1e-9:
        raise SystemExit("f3 in the store does not match its definition")
    return timeline


if __name__ == "__main__":
    main()
