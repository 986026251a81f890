"""The benchmarks of bench/RESULTS.md, in one process, on the same data, side by side.

    python -m pip install -e '.[bench]'
    python bench/run.py [--scale 1.0] [--repeat 5] [--out bench/RESULTS.md]

(a) an elementwise DAG of 50 nodes on a 2000 x 5000 panel: compiled vs numpy vs numexpr;
(b) 37 factors of examples/alphas101.py on a 2000 x 3000 panel: compiled vs the numpy
    reference (serverless_ray) vs pandas (the expressions of docs/ops.md, vectorised
    where docs/ops.md calls Python per window: bench/translate.py) vs polars;
(c) incremental: one of 5 inputs changes; recompute vs the cone's share of a full run,
    the share measured with nodes computed one at a time;
(d) memory bandwidth: a plain Rust triad over the same bytes (runtime-rs/examples);
(e) the cost of a window of 250 against a window of 20, per window op;
(g) streaming: the 37 factors on 2000 x 3000, then one new row appended and the new row of
    every factor asked for (`append` + `compute(names, last=1)`), against a full compute
    of the same object and against pandas recomputing the factors on the last `lookback`
    rows; and 250 single-row appends against one append of the same 250 rows.

Every contender runs `--repeat` times (default 5) and the median is reported, with the
cores it used (process CPU seconds over wall seconds, all threads counted) beside the
threads it was allowed. The compiled module uses every core (rayon's global pool; numpy
and pandas use one): (a) and (b) also time it on one thread, in a child process started
with RAYON_NUM_THREADS=1, so the single-core ratio is printed too. Compiled times
include constructing the object (copying the inputs in); the construction is also shown
on its own. This machine is shared and noisy, so read the ratios. `--scale` shrinks the
panels (rows and columns) for a quick look.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT / "examples")]

from make_dags import elementwise  # noqa: E402
from market import synthetic_market  # noqa: E402

from sray_transpiler import load as load_ir  # noqa: E402
from sray_transpiler.explain import explain  # noqa: E402
from sray_transpiler.targets.python import build_and_import  # noqa: E402


def measure(fn, repeat: int) -> dict:
    """Wall seconds of `repeat` calls of `fn`: their median, every run, and the cores the
    calls kept busy (process CPU seconds, all threads, over wall seconds)."""
    walls, cpus = [], []
    for _ in range(repeat):
        cpu, start = time.process_time(), time.perf_counter()
        fn()
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
    return {"median": statistics.median(walls), "runs": walls, "cores": sum(cpus) / sum(walls)}


def measure_compiled(make, compute, repeat: int, keep: list | None = None) -> dict:
    """Like `measure`, for a compiled DAG: each run constructs a fresh object (`make`,
    which copies the inputs in) and computes (`compute(obj)`); the time is both together,
    and the medians of the construction and the compute alone come along. `keep`, if
    given, holds the last run's output (cleared before each run, so the previous output is
    freed first)."""
    totals, constructs, computes, cpus = [], [], [], []
    for _ in range(repeat):
        if keep is not None:
            keep.clear()
        cpu, start = time.process_time(), time.perf_counter()
        obj = make()
        built = time.perf_counter()
        out = compute(obj)
        end = time.perf_counter()
        cpus.append(time.process_time() - cpu)
        totals.append(end - start)
        constructs.append(built - start)
        computes.append(end - built)
        if keep is not None:
            keep.append(out)
        del obj, out
    med = statistics.median
    return {"median": med(totals), "runs": totals, "construct": med(constructs), "compute": med(computes),
            "cores": sum(cpus) / sum(totals)}


def rayon_threads() -> int:
    """Threads of rayon's global pool, which the compiled modules run on: RAYON_NUM_THREADS
    if set (rayon reads it when it builds the pool), else one per core."""
    env = os.environ.get("RAYON_NUM_THREADS", "")
    return int(env) if env.strip().isdigit() and int(env) > 0 else (os.cpu_count() or 1)


def one_thread(section: str, workdir: Path, module, rows: int, cols: int, repeat: int) -> dict:
    """The compiled module of `section` timed as in this process, but in a child process
    started with RAYON_NUM_THREADS=1 (the module is imported from where build_and_import
    unpacked it, `workdir/site`, not rebuilt)."""
    site = workdir / "site"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", section, "--site", str(site),
           "--module", module.__name__, "--rows", str(rows), "--cols", str(cols), "--repeat", str(repeat)]
    env = dict(os.environ, RAYON_NUM_THREADS="1")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"the one-thread run of ({section}) failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def child(args) -> None:
    """`--child a|b`: the compiled module of (a) or (b) on the current rayon pool (the
    parent sets RAYON_NUM_THREADS=1); prints the timings as JSON."""
    sys.path.insert(0, args.site)
    module = importlib.import_module(args.module)
    if args.child == "a":
        data = elementwise_data(args.rows, args.cols)
        names = [n for n, _ in elementwise()[1]]
        r = measure_compiled(lambda: module.Elementwise(**data), lambda o: o.compute(names), args.repeat)
    else:
        data = synthetic_market(args.rows, args.cols)
        names = module.Alphas(**data).nodes()
        r = measure_compiled(lambda: module.Alphas(**data), lambda o: o.compute(names), args.repeat)
    r["threads"] = rayon_threads()
    print(json.dumps(r))


def peak_gib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def bytes_per_cell(path: Path) -> int:
    last = explain(load_ir(path)).splitlines()[-1]
    return int(last.split(":")[1].split()[0])


def triad(rows: int, cols: int) -> dict[str, float]:
    out = subprocess.run(
        ["cargo", "run", "--release", "-q", "--example", "triad", "--", str(rows), str(cols), "9"],
        cwd=ROOT / "runtime-rs", capture_output=True, text=True, check=True,
    ).stdout
    result = {}
    for line in out.splitlines():
        kind = "fresh" if "fresh" in line else "reused"
        result[kind] = float(line.split(",")[1].split()[0])  # GB/s
    return result


def elementwise_data(rows: int, cols: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {k: rng.standard_normal((rows, cols)) for k in ("a", "b", "c", "d")}


def bench_elementwise(build: Path, rows: int, cols: int, repeat: int) -> dict:
    import numexpr

    path = HERE / "dags" / "elementwise50.py"
    module = build_and_import(path, build / "elementwise")
    _, formulas = elementwise()
    data = elementwise_data(rows, cols)
    names = [n for n, _ in formulas]
    numpy_env = {"where": np.where, "abs": np.abs, "sqrt": np.sqrt, "log": np.log, "exp": np.exp}

    def numpy_run():
        env = dict(data)
        with np.errstate(all="ignore"):
            for name, formula in formulas:
                env[name] = eval(formula, numpy_env, env)  # noqa: S307 - our own generated formulas

    def numexpr_run():
        env = dict(data)
        for name, formula in formulas:
            env[name] = numexpr.evaluate(formula, local_dict=env)

    r = {"compiled": measure_compiled(lambda: module.Elementwise(**data), lambda o: o.compute(names), repeat)}
    r["compiled"]["threads"] = rayon_threads()
    r["compiled, 1 thread"] = one_thread("a", build / "elementwise", module, rows, cols, repeat)
    r["numpy"] = measure(numpy_run, repeat)
    r["numpy"]["threads"] = 1
    r["numexpr"] = measure(numexpr_run, repeat)
    r["numexpr"]["threads"] = numexpr.get_num_threads()
    moved = bytes_per_cell(path) * rows * cols
    return {"results": r, "gbs": moved / r["compiled"]["compute"] / 1e9}


def bench_factors(build: Path, rows: int, cols: int, repeat: int, slow_repeat: int,
                  reference_columns: int = 750) -> dict:
    import pandas as pd
    import polars as pl

    from serverless_ray import load
    from translate import from_long, long_frame, pandas_dag, polars_dag, polars_run

    path = ROOT / "examples" / "alphas101.py"
    module = build_and_import(path, build / "alphas")
    data = synthetic_market(rows, cols)
    names = module.Alphas(**data).nodes()
    dag_ir = load_ir(path).dags[0]
    frames = {k: pd.DataFrame(v) for k, v in data.items()}
    pandas_fn = pandas_dag(dag_ir)
    plan = polars_dag(dag_ir, list(data))
    frame = long_frame(data)
    reference = load(path)

    results: dict[str, dict] = {}
    agree: dict[str, int] = {}
    differ: dict[str, list[str]] = {}

    def report(label):
        r = results[label]
        print(f"    ... {label}: {r['median']:.3f} s, median of {len(r['runs'])} "
              f"({', '.join(f'{x:.2f}' for x in r['runs'])}); {r['cores']:.2f} cores busy "
              f"(peak memory so far {peak_gib():.1f} GiB)", flush=True)

    def timed(label, fn, times, threads, scale=1.0):
        """Median seconds of `fn` (times `scale`); keeps only the last output (these panels
        are big)."""
        out = []

        def run():
            out.clear()  # the previous run's output is freed first, for every contender
            out.append(fn())

        r = results[label] = measure(run, times)
        r["threads"] = threads
        r["median"] *= scale
        r["runs"] = [x * scale for x in r["runs"]]
        report(label)
        return out[0]

    kept: list = []
    results["compiled"] = measure_compiled(lambda: module.Alphas(**data), lambda o: o.compute(names), repeat, kept)
    results["compiled"]["threads"] = rayon_threads()
    report("compiled")
    got = kept[0]
    results["compiled, 1 thread"] = one_thread("b", build / "alphas", module, rows, cols, repeat)
    report("compiled, 1 thread")

    def count_agreeing(label, value_of):
        """How many factors the baseline computes as the compiled module does."""
        agree[label], differ[label] = 0, []
        for name in names:
            a, b = got[name], value_of(name)
            fa, fb = np.isfinite(a), np.isfinite(b)
            if np.array_equal(fa, fb) and np.allclose(a[fa], b[fb], rtol=1e-6, atol=1e-9):
                agree[label] += 1
            else:
                differ[label].append(name)

    # One baseline's output at a time: all of them together outgrow 24 GiB at full size.
    out = timed("polars", lambda: polars_run(frame, plan, names), slow_repeat, pl.thread_pool_size())
    count_agreeing("polars", lambda name: from_long(out, name, (rows, cols)))
    del out, frame
    # The numpy reference keeps every intermediate panel: about 30 GiB at full size, more
    # than this machine has. It runs on the first `reference_columns` assets and its time
    # is scaled by the column ratio (every op is per column or per row, so the work is
    # linear in the columns; rank's sort is slightly worse than linear, so the scaled
    # time, if anything, flatters the reference).
    ref_cols = min(cols, reference_columns)
    subset = {k: np.ascontiguousarray(v[:, :ref_cols]) for k, v in data.items()}
    timed("numpy reference", lambda: reference(**subset).compute(names), slow_repeat, 1, cols / ref_cols)
    out = timed("pandas", lambda: pandas_fn(frames), slow_repeat, 1)
    count_agreeing("pandas", lambda name: out[name].to_numpy())
    return {"results": results, "factors": len(names), "agree": agree, "differ": differ,
            "reference_columns": ref_cols}


def isolated_seconds(dag) -> dict[str, float]:
    """Kernel seconds of every node with the machine to itself: public nodes computed one
    at a time in `nodes()` order on a fresh engine, so each runs after its dependencies
    and its (rayon-parallel) kernels share the cores with no other node. In a full
    compute, nodes run concurrently and a node's clock also counts work of other nodes
    that its thread picks up while it waits (rayon's work stealing), which makes per-node
    seconds of a concurrent run a poor measure of each node's cost."""
    for name in dag.nodes():
        dag.cal(name)
    return {name: st["seconds"] for name, st in dag.stats().items()}


def bench_incremental(build: Path, rows: int, cols: int, repeat: int) -> dict:
    path = HERE / "dags" / "incremental.py"
    module = build_and_import(path, build / "incremental")
    rng = np.random.default_rng(1)
    data = {k: rng.standard_normal((rows, cols)) for k in "abcde"}
    changed = {"e": rng.standard_normal((rows, cols))}
    fulls, recomputes, shares, concurrent_shares, cone_kernels = [], [], [], [], []
    for _ in range(repeat):
        dag = module.Incremental(**data)
        names = dag.nodes()
        start = time.perf_counter()
        dag.compute(names)
        fulls.append(time.perf_counter() - start)
        before = dag.stats()
        dag.update(**changed)
        start = time.perf_counter()
        dag.compute(names)
        recomputes.append(time.perf_counter() - start)
        after = dag.stats()
        cone = [n for n in after if after[n]["computes"] > before[n]["computes"]]
        total = sum(s["seconds"] for s in before.values())
        concurrent_shares.append(sum(before[n]["seconds"] for n in cone) / total)
        cone_kernels.append(sum(after[n]["seconds"] - before[n]["seconds"] for n in cone))
        del dag
        alone = isolated_seconds(module.Incremental(**data))
        shares.append(sum(alone[n] for n in cone) / sum(alone.values()))
    med = statistics.median
    return {"full": med(fulls), "recompute": med(recomputes), "share": med(shares),
            "concurrent_share": med(concurrent_shares), "cone_kernels": med(cone_kernels),
            "cone": cone, "nodes": len(after)}


def bench_windows(build: Path, rows: int, cols: int, repeat: int) -> dict[str, float]:
    """Kernel seconds of each window op at d=250 over d=20 (from the engine's stats)."""
    from make_dags import WINDOW_OPS

    module = build_and_import(HERE / "dags" / "windows.py", build / "windows")
    rng = np.random.default_rng(2)
    data = {"x": np.cumsum(rng.standard_normal((rows, cols)), axis=0), "y": rng.standard_normal((rows, cols))}
    seconds: dict[str, list[float]] = {}
    for _ in range(repeat):
        dag = module.Windows(**data)
        for name in dag.nodes():  # one at a time, so that kernels do not share the cores
            dag.cal(name)
        for name, st in dag.stats().items():
            seconds.setdefault(name, []).append(st["seconds"])
    median = {k: statistics.median(v) for k, v in seconds.items()}
    return {op: median[f"{op}_250"] / median[f"{op}_20"] for op in [*WINDOW_OPS, "correlation"]}


def bench_streaming(build: Path, rows: int, cols: int, repeat: int, steps: int = 250) -> dict:
    """(g): appends of new rows to the 37 factors' inputs, and the new rows asked for."""
    import pandas as pd

    from sray_transpiler.analyses.lookback import max_lookback
    from translate import pandas_dag

    path = ROOT / "examples" / "alphas101.py"
    module = build_and_import(path, build / "alphas")
    data = synthetic_market(rows + steps, cols)
    head = {k: np.ascontiguousarray(v[:rows]) for k, v in data.items()}
    names = module.Alphas(**head).nodes()
    dag_ir = load_ir(path).dags[0]
    lookback = max_lookback(dag_ir)

    def fresh():
        obj = module.Alphas(**head)
        obj.compute(names)
        return obj

    full = measure_compiled(lambda: module.Alphas(**head), lambda o: o.compute(names), repeat)
    obj = fresh()
    start = time.perf_counter()
    obj.append(**{k: v[rows] for k, v in data.items()})
    obj.compute(names, last=1)
    first = time.perf_counter() - start
    singles = []
    for t in range(rows + 1, rows + steps):
        row = {k: v[t] for k, v in data.items()}
        start = time.perf_counter()
        obj.append(**row)
        obj.compute(names, last=1)
        singles.append(time.perf_counter() - start)
    single_rows = sum(st["rows"] for st in obj.stats().values())
    del obj
    # The same rows at once, on an object in the same state (its first append done).
    chunks = []
    for _ in range(repeat):
        obj = fresh()
        obj.append(**{k: v[rows] for k, v in data.items()})
        obj.compute(names, last=1)
        start = time.perf_counter()
        obj.append(**{k: v[rows + 1:rows + steps] for k, v in data.items()})
        obj.compute(names, last=steps - 1)
        chunks.append(time.perf_counter() - start)
        del obj
    window = {k: pd.DataFrame(v[rows + steps - 1 - lookback:rows + steps]) for k, v in data.items()}
    pandas_fn = pandas_dag(dag_ir)
    tail_pandas = measure(lambda: pandas_fn(window), repeat)
    med = statistics.median
    return {"full": full["median"], "first": first, "single": med(singles), "p90": float(np.quantile(singles, 0.9)),
            "singles_total": sum(singles), "chunk": med(chunks), "steps": steps - 1, "pandas_tail": tail_pandas["median"],
            "lookback": lookback, "threads": rayon_threads(), "rows_per_step": single_rows}


def machine() -> str:
    cpu = "unknown cpu"
    if Path("/proc/cpuinfo").exists():
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    import numexpr
    import pandas
    import polars

    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    blas = ", ".join(f"{k}={os.environ[k]}" for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in os.environ)
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else ["?"]
    return (f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB; {platform.python_implementation()} "
            f"{platform.python_version()}, numpy {np.__version__}, pandas {pandas.__version__}, "
            f"polars {polars.__version__}, numexpr {numexpr.__version__}; {rustc}; "
            f"{blas or 'OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset'}; load average at start {' '.join(load)}")


def source_state() -> str:
    """The commit the compiled code comes from, and the files of the compiler and runtime
    that differ from it in the working tree (the modules are built from the tree)."""
    git = ["git", "-C", str(ROOT)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run([*git, "status", "--porcelain", "--", "runtime-rs", "templates", "transpiler"],
                           capture_output=True, text=True).stdout.split("\n")
    dirty = [line[3:] for line in dirty if line.strip()]
    return f"commit {head or '?'}; " + (f"uncommitted changes in {', '.join(dirty)}" if dirty
                                        else "compiler and runtime as committed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--slow-repeat", type=int, default=None,
                        help="repeats of the slow baselines of (b): polars, the numpy reference, pandas "
                             "(default: --repeat, as every other contender; fewer is printed beside the times)")
    parser.add_argument("--build", type=Path, default=ROOT / "build" / "bench")
    parser.add_argument("--only", default="abcdeg", help="which benchmarks to run, e.g. `ad` (default: all)")
    for hidden in ("--child", "--site", "--module"):  # the one-thread child process
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--cols", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if args.slow_repeat is None:
        args.slow_repeat = args.repeat
    s = args.scale
    size_a, size_b = (int(2000 * s), int(5000 * s)), (int(2000 * s), int(3000 * s))

    print(f"machine: {machine()}")
    print(f"source: {source_state()}\n")
    bw = triad(*size_a) if "a" in args.only or "d" in args.only else {}
    if "d" in args.only:
        print(f"(d) plain Rust triad on {size_a[0]}x{size_a[1]}: {bw['fresh']:.2f} GB/s writing a fresh output, "
              f"{bw['reused']:.2f} GB/s reusing one\n")
    if "a" in args.only:
        run_a(args, size_a, bw)
    if "b" in args.only:
        run_b(args, size_b)
    if "e" in args.only:
        w = bench_windows(args.build, *size_b, args.repeat)
        print(f"(e) cost of a window of 250 over a window of 20, {size_b[0]}x{size_b[1]} (target < 12x):")
        print("    " + ", ".join(f"{op} {ratio:.2f}x" for op, ratio in w.items()) + "\n")
    if "c" in args.only:
        run_c(args, size_b)
    if "g" in args.only:
        run_g(args, size_b)


def print_table(results: dict[str, dict], against: str = "compiled") -> None:
    """One line per contender: median, runs, threads allowed and cores busy, the ratio to
    `against` (all cores) and to the compiled module on one thread."""
    base, single = results[against]["median"], results.get(f"{against}, 1 thread", {}).get("median")
    for k, r in results.items():
        ratio = f"compiled is {r['median'] / base:6.2f}x faster"
        if single and not k.startswith("compiled"):
            ratio += f" ({r['median'] / single:5.2f}x on 1 thread)"
        elif k.startswith("compiled"):
            ratio = ""
        extra = ""
        if "construct" in r:
            extra = f"   (construct {r['construct']:.3f} s + compute {r['compute']:.3f} s)"
        print(f"    {k:<20} {r['median']:8.3f} s  median of {len(r['runs'])}, {r['threads']} thread(s), "
              f"{r['cores']:.2f} cores busy   {ratio}{extra}")


def run_a(args, size_a, bw) -> None:
    a = bench_elementwise(args.build, *size_a, args.repeat)
    r = a["results"]
    print(f"(a) 50 elementwise nodes, {size_a[0]}x{size_a[1]}; compiled times include constructing the object")
    print_table(r)
    print(f"    fused kernels (compute only) moved {a['gbs']:.2f} GB/s = {a['gbs'] / bw['fresh']:.0%} of the "
          f"fresh-output triad, {a['gbs'] / bw['reused']:.0%} of the reused-output one\n")


def run_b(args, size_b) -> None:
    b = bench_factors(args.build, *size_b, args.repeat, args.slow_repeat)
    r = b["results"]
    print(f"(b) {b['factors']} factors of examples/alphas101.py, {size_b[0]}x{size_b[1]}; compiled times "
          f"include constructing the object")
    print_table(r)
    if b["reference_columns"] < size_b[1]:
        print(f"    (the numpy reference ran on {b['reference_columns']} of {size_b[1]} columns; its times are scaled)")
    print(f"    factors equal to the compiled ones (rtol 1e-6): pandas {b['agree']['pandas']}/{b['factors']}, "
          f"polars {b['agree']['polars']}/{b['factors']}")
    for label, names in b["differ"].items():
        print(f"    {label} differs on: {', '.join(names) or 'none'}")
    print()


def run_c(args, size_b) -> None:
    c = bench_incremental(args.build, *size_b, args.repeat)
    target = c["share"] * c["full"]
    print(f"(c) incremental, {size_b[0]}x{size_b[1]}: full {c['full']:.3f} s; after changing 1 of 5 inputs, "
          f"recompute {c['recompute']:.3f} s; the cone ({len(c['cone'])} of {c['nodes']} nodes) is "
          f"{c['share']:.0%} of the kernel time (nodes run one at a time), so {target:.3f} s; "
          f"ratio {c['recompute'] / target:.2f} (target <= 1.2)")
    print(f"    measured from the per-node seconds of the concurrent full run instead, the share is "
          f"{c['concurrent_share']:.0%} (ratio {c['recompute'] / (c['concurrent_share'] * c['full']):.2f}); "
          f"the recompute's own kernels took {c['cone_kernels']:.3f} s of node time")


def run_g(args, size_b) -> None:
    f = bench_streaming(args.build, *size_b, args.repeat)
    print(f"(g) streaming, examples/alphas101.py, {size_b[0]}x{size_b[1]} then one row at a time, "
          f"{f['threads']} threads; append + compute(names, last=1) of the 37 factors:")
    print(f"    one appended row: {1e3 * f['single']:.2f} ms median over {f['steps']} appends "
          f"(p90 {1e3 * f['p90']:.2f} ms; target <= 3 ms); full compute of the same object "
          f"{f['full']:.3f} s: {f['full'] / f['single']:.0f}x (target >= 1000x)")
    print(f"    the first append after a batch compute: {f['first']:.3f} s (values move into growable "
          f"buffers once)")
    print(f"    pandas recomputing the 37 factors on the last lookback + 1 = {f['lookback'] + 1} rows, "
          f"1 thread: {1e3 * f['pandas_tail']:.1f} ms: {f['pandas_tail'] / f['single']:.1f}x the append")
    print(f"    {f['steps']} single-row appends {f['singles_total']:.3f} s vs the same rows in one append "
          f"{f['chunk']:.3f} s: {f['singles_total'] / f['chunk']:.2f}x (target <= 3x)\n")


if __name__ == "__main__":
    main()
