"""The seed's first sample: a remote function mapped over [1, 2, 3], run in parallel.

    python examples/run_1.py [--sleep 5]

Each call sleeps, then doubles its argument. The three calls run at once (the local
backend gives each running task its own worker process), so the whole map waits about
one sleep, not three: about 5 s instead of 15 with the default.
"""

import argparse
import os
import time

import serverless_ray

SLEEP_S = float(os.environ.get("RUN_1_SLEEP", "5"))


@serverless_ray.remote
def heavy_computation(n):
    time.sleep(SLEEP_S)
    return n * 2


def main(argv=None) -> list:
    global SLEEP_S
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sleep", type=float, default=SLEEP_S, help="seconds each call sleeps (default %(default)s)")
    args = parser.parse_args(argv)
    # Workers are other processes: they see SLEEP_S by value when this file runs as a
    # script (cloudpickle), and through the environment when it is imported as a module.
    os.environ["RUN_1_SLEEP"] = str(args.sleep)
    SLEEP_S = args.sleep

    serverless_ray.config()  # the local backend: no cloud account needed
    started = time.perf_counter()
    with serverless_ray.start():
        # the three calls run in parallel: about one sleep in total, not three
        result = heavy_computation.map([1, 2, 3])
    elapsed = time.perf_counter() - started
    assert result == [2, 4, 6], result
    print(f"heavy_computation.map([1, 2, 3]) = {result} in {elapsed:.2f} s "
          f"(each call sleeps {args.sleep:g} s; one after another would take {3 * args.sleep:g} s)")
    return result


if __name__ == "__main__":
    main()
