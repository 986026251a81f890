"""Task overhead: serverless_ray's local backend side by side with concurrent.futures and Ray.

    python bench/tasks.py [--tasks 20000] [--repeat 3] [--workers N] [--only sray-process,cf-process,...]

Each case runs in a fresh interpreter (`--case NAME`), so start-up and memory are its own:
- import:     seconds to import the framework
- start-up:   seconds from opening the session / pool to the first no-op task's result
              (imports excluded); goal for serverless_ray: < 0.2 s
- per task:   ms per no-op task when N are submitted at once and all gathered, on a warm
              pool (median of --repeat runs); goal: < 0.15 ms
- latency:    ms for one submit-and-wait round trip, one task at a time (median of 200)
- 3 x sleep 2 s: wall time of three tasks that each sleep 2 s, submitted together
- pool size:  how many tasks the framework runs at once: without --workers, each one's
              default configuration (serverless_ray: max(8, 4 x cores) workers;
              ProcessPoolExecutor: one per core; ThreadPoolExecutor: cores + 4; Ray: one
              per core); with --workers N, N for every framework (serverless_ray's
              max_workers, the executors' max_workers, Ray's num_cpus)
- memory:     resident memory (MB) of the driver and every process it started, after the runs

The machine is shared: read the ratios, which compare runs made minutes apart on the same
machine, rather than the absolute times.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

CASES = {
    "sray-process": "serverless_ray, process workers",
    "sray-thread": "serverless_ray, thread workers",
    "cf-process": "concurrent.futures ProcessPoolExecutor",
    "cf-thread": "concurrent.futures ThreadPoolExecutor",
    "ray": "Ray 2.x, local cluster (ray.init())",
}


def noop():
    return None


def sleep2():
    time.sleep(2)
    return 2


def tree_rss_mb(root: int) -> tuple[float, int]:
    """Resident memory (MB) of `root` and all its descendants, and how many processes."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    total, count, stack = 0, 0, [root]
    while stack:
        pid = stack.pop()
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        count += 1
        except OSError:
            continue
        stack.extend(children.get(pid, []))
    return total / 1024, count


# -- one case, in its own interpreter ------------------------------------------------------------

def open_case(name: str, workers: int | None = None):
    """(ops, import seconds, start-up seconds, pool size); ops: submit(fn) -> handle,
    get(handle), gets(handles), close(). `workers`: the pool size (None: the default)."""
    t0 = time.perf_counter()
    if name.startswith("sray"):
        import serverless_ray as sr

        imported = time.perf_counter()
        if workers:
            sr.config(max_workers=workers)
        session = sr.start()
        pool_size = session.__enter__().backend.max_workers
        fn = sr.remote(noop) if name == "sray-process" else sr.remote(worker="thread")(noop)
        sleeper = sr.remote(sleep2) if name == "sray-process" else sr.remote(worker="thread")(sleep2)
        ops = {"submit": lambda f: (fn if f is noop else sleeper).remote(), "get": sr.get,
               "gets": sr.get, "close": lambda: session.__exit__(None, None, None)}
    elif name.startswith("cf"):
        import concurrent.futures as cf

        imported = time.perf_counter()
        pool = (cf.ProcessPoolExecutor if name == "cf-process" else cf.ThreadPoolExecutor)(max_workers=workers)
        pool_size = pool._max_workers
        ops = {"submit": pool.submit, "get": lambda h: h.result(), "gets": lambda hs: [h.result() for h in hs],
               "close": pool.shutdown}
    elif name == "ray":
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        import ray

        imported = time.perf_counter()
        ray.init(include_dashboard=False, log_to_driver=False, logging_level="ERROR", num_cpus=workers)
        pool_size = int(ray.cluster_resources().get("CPU", 0))
        remote = {noop: ray.remote(noop), sleep2: ray.remote(sleep2)}
        ops = {"submit": lambda f: remote[f].remote(), "get": ray.get, "gets": ray.get, "close": ray.shutdown}
    else:
        raise SystemExit(f"unknown case {name!r}; choose from {', '.join(CASES)}")
    ops["get"](ops["submit"](noop))
    started = time.perf_counter()
    return ops, imported - t0, started - imported, pool_size


def run_case(name: str, tasks: int, repeat: int, workers: int | None = None) -> dict:
    ops, import_s, startup_s, pool_size = open_case(name, workers)
    submit, gets, get = ops["submit"], ops["gets"], ops["get"]
    gets([submit(noop) for _ in range(max(100, tasks // 10))])  # warm the pool up to its size
    per_task = []
    for _ in range(repeat):
        t = time.perf_counter()
        gets([submit(noop) for _ in range(tasks)])
        per_task.append((time.perf_counter() - t) / tasks * 1e3)
    latency = []
    for _ in range(200):
        t = time.perf_counter()
        get(submit(noop))
        latency.append((time.perf_counter() - t) * 1e3)
    t = time.perf_counter()
    gets([submit(sleep2) for _ in range(3)])
    sleep3 = time.perf_counter() - t
    rss, processes = tree_rss_mb(os.getpid())
    ops["close"]()
    return {"case": name, "import_s": import_s, "startup_s": startup_s, "per_task_ms": statistics.median(per_task),
            "per_task_runs_ms": per_task, "latency_ms": statistics.median(latency), "sleep3_s": sleep3,
            "rss_mb": rss, "processes": processes, "tasks": tasks, "pool_size": pool_size,
            "configured": "default" if workers is None else workers}


# -- the driver ------------------------------------------------------------------------------------

def measure(name: str, tasks: int, repeat: int, workers: int | None = None, ray_path: str | None = None) -> dict | None:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--case", name, "--tasks", str(tasks), "--repeat", str(repeat)]
    if workers:
        cmd += ["--workers", str(workers)]
    env = None
    if name == "ray" and ray_path:  # Ray installed aside (pip install --target), for its case only
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ray_path, os.environ.get("PYTHONPATH")])))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, env=env)
    if proc.returncode != 0:
        print(f"{name}: failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def table(results: list[dict], workers: int | None = None) -> str:
    base = next((r for r in results if r["case"] == "sray-process"), None)
    pool = "pool size (default configuration)" if workers is None else f"pool size (--workers {workers})"
    lines = [f"| | import | start-up | per task (N at once) | latency (one at a time) | {pool} | 3 x sleep 2 s | memory |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        def ratio(key):
            if base is None or r is base or not base[key]:
                return ""
            return f" ({r[key] / base[key]:.1f}x)"

        lines.append(f"| {CASES[r['case']]} | {r['import_s']:.2f} s | {r['startup_s']:.3f} s{ratio('startup_s')} | "
                     f"{r['per_task_ms']:.3f} ms{ratio('per_task_ms')} | {r['latency_ms']:.3f} ms{ratio('latency_ms')} | "
                     f"{r['pool_size']} | {r['sleep3_s']:.2f} s | {r['rss_mb']:.0f} MB in {r['processes']} processes |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=20000, help="no-op tasks per timed run (Ray: a tenth)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", default=",".join(CASES), help="comma-separated cases: " + ", ".join(CASES))
    parser.add_argument("--workers", type=int, default=None,
                        help="pool size of every framework (default: each framework's default configuration)")
    parser.add_argument("--ray-path", help="a directory holding Ray (e.g. from `pip install --target DIR ray`), "
                                           "put on the path of the Ray case only")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case, args.tasks, args.repeat, args.workers)))
        return
    results = []
    for name in args.only.split(","):
        tasks = args.tasks // 10 if name == "ray" else args.tasks
        print(f"measuring {CASES.get(name, name)} ({tasks} no-op tasks x {args.repeat}) ...", file=sys.stderr, flush=True)
        r = measure(name, tasks, args.repeat, args.workers, args.ray_path)
        if r is not None:
            results.append(r)
    print(table(results, args.workers))
    sray = next((r for r in results if r["case"] == "sray-process"), None)
    if sray:
        print(f"\nserverless_ray goals: start-up {sray['startup_s']:.3f} s (goal < 0.2 s: "
              f"{'met' if sray['startup_s'] < 0.2 else 'missed'}), per task {sray['per_task_ms']:.3f} ms "
              f"(goal < 0.15 ms: {'met' if sray['per_task_ms'] < 0.15 else 'missed'})")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
