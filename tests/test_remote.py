"""The Ray-like API on the local backend: remote/get/wait/put, dependencies, errors,
retries, timeouts, worker reuse and limits, core reservations, sessions, progress.

Concurrency is proven by structure, not by timings: tasks that can only finish when
all of them run at once (a file barrier), and start/end stamps that must overlap or not.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import serverless_ray as sr
from serverless_ray.backends.local import LocalBackend, default_max_workers

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def session():
    sr.config()
    with sr.start() as s:
        yield s


def local(session) -> LocalBackend:
    assert isinstance(session.backend, LocalBackend)
    return session.backend


# -- task functions (module level: workers import this module by reference) ----------------

@sr.remote
def double(n):
    return 2 * n


@sr.remote
def identity(x):
    return x


@sr.remote
def pid():
    return os.getpid()


@sr.remote
def barrier(me, folder, parties):
    """Finishes only when `parties` tasks have arrived at once: proves they ran concurrently."""
    Path(folder, str(me)).touch()
    deadline = time.monotonic() + 60
    while len(os.listdir(folder)) < parties:
        if time.monotonic() > deadline:
            raise RuntimeError("the other tasks never arrived: they were not running at the same time")
        time.sleep(0.01)
    return me


@sr.remote
def stamped(seconds):
    start = time.time()
    time.sleep(seconds)
    return start, time.time(), os.getpid()


class Unusual(Exception):
    """A user exception type, defined where the worker imports it from."""


class NeedsTwoArgs(Exception):
    def __init__(self, a, b):  # pickles, but cannot be rebuilt from its args
        super().__init__(f"{a}-{b}")


@sr.remote
def fail_with(kind):
    if kind == "value":
        raise ValueError("bad value 42")
    if kind == "unusual":
        raise Unusual("something unusual")
    if kind == "unpicklable":
        raise NeedsTwoArgs(1, 2)
    if kind == "exit":
        os._exit(3)
    return kind


@sr.remote
def flaky(counter_file, failures):
    """Fails the first `failures` times it runs (counted in a file shared by the attempts)."""
    path = Path(counter_file)
    runs = int(path.read_text()) if path.exists() else 0
    path.write_text(str(runs + 1))
    if runs < failures:
        raise ConnectionError(f"attempt {runs + 1} fails")
    return runs + 1


@sr.remote
def sleeper(seconds):
    time.sleep(seconds)
    return seconds


def g1(a):
    return a


def g2(b):
    return b


def g3(g1, g2):
    return g1 + g2


GRAPH = sr.FunctionGraph([g1, g2, g3])


@sr.remote(graph=GRAPH)
def by_name(name):
    start = time.time()
    time.sleep(0.3)
    return name, start, time.time()


def overlaps(intervals) -> int:
    """The largest number of (start, end) intervals open at one time."""
    events = sorted([(s, 1) for s, e, *_ in intervals] + [(e, -1) for s, e, *_ in intervals])
    most = now = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


# -- the basics -------------------------------------------------------------------------------

def test_remote_returns_a_ref_at_once_and_get_gives_the_value(session):
    ref = double.remote(21)
    assert isinstance(ref, sr.ObjectRef)
    assert sr.get(ref) == 42
    assert sr.get([double.remote(i) for i in range(5)]) == [0, 2, 4, 6, 8]


def test_map_keeps_input_order(session):
    assert double.map(range(20)) == [2 * i for i in range(20)]


def test_three_tasks_run_at_once_on_this_machine(session, tmp_path):
    # 3 tasks on 2 cores: each only finishes once all three have started
    assert barrier.map([0, 1, 2], folder=str(tmp_path), parties=3) == [0, 1, 2]


def test_default_worker_limit():
    assert default_max_workers() >= 8 and default_max_workers() >= 4 * os.cpu_count()
    assert LocalBackend().max_workers == default_max_workers()


def test_worker_limit_is_respected(tmp_path):
    sr.config(max_workers=2)
    try:
        with sr.start():
            intervals = sr.get([stamped.remote(0.3) for _ in range(6)])
    finally:
        sr.config()
    assert overlaps(intervals) <= 2
    assert len({p for *_, p in intervals}) <= 2


def test_workers_are_processes_reused_across_tasks(session):
    pids = [sr.get(pid.remote()) for _ in range(10)]
    assert os.getpid() not in pids
    assert len(set(pids)) == 1  # one task at a time: the same worker each time
    assert local(session).stats()["workers"] == 1


def test_thread_workers_run_in_this_process(session):
    assert sr.get(pid.options(worker="thread").remote()) == os.getpid()
    assert sr.get(double.options(worker="thread").remote(4)) == 8


def test_closures_and_lambdas_travel_by_value(session):
    k = 7

    @sr.remote
    def add_k(x):
        return x + k

    assert sr.get(add_k.remote(1)) == 8
    assert sr.get(identity.remote(lambda v: v * 3)) is not None  # a lambda argument pickles
    assert sr.get(sr.remote(lambda v: v - 1).remote(10)) == 9


def test_put_and_refs_as_arguments_even_nested(session):
    big = sr.put(list(range(1000)))
    assert sr.get(big) == list(range(1000))
    a, b = double.remote(1), double.remote(2)
    got = sr.get(identity.remote([a, (b, {"k": a, "n": [b]}), 5]))
    assert got == [2, (4, {"k": 2, "n": [4]}), 5]
    assert sr.get(double.remote(double.remote(double.remote(1)))) == 8
    assert sr.get(identity.remote(x=big))[-1] == 999


def test_a_ref_waits_for_its_dependency(session):
    slow = stamped.remote(0.5)
    after = stamped.remote(slow)  # receives the value (a tuple), not the ref ...
    with pytest.raises(TypeError):  # ... so time.sleep(tuple) fails in the task: the value arrived
        sr.get(after)
    first_end = sr.get(slow)[1]
    chained = identity.remote(slow)
    assert sr.get(chained)[1] == first_end


def test_refs_cannot_be_pickled_by_mistake():
    ref = sr.put(1)
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(ref)


# -- errors -----------------------------------------------------------------------------------

def test_exceptions_come_back_as_their_own_type_with_the_remote_traceback(session):
    with pytest.raises(ValueError, match="bad value 42") as info:
        sr.get(fail_with.remote("value"))
    cause = info.value.__cause__
    assert isinstance(cause, sr.RemoteTraceback)
    assert "in fail_with" in cause.tb and "test_remote.py" in cause.tb
    assert info.value.remote_traceback == cause.tb

    with pytest.raises(Unusual):
        sr.get(fail_with.remote("unusual"))


def test_an_exception_that_cannot_be_rebuilt_becomes_a_task_error(session):
    with pytest.raises(sr.TaskError) as info:
        sr.get(fail_with.remote("unpicklable"))
    assert info.value.type_name.endswith("NeedsTwoArgs")
    assert "1-2" in str(info.value) and "in fail_with" in info.value.remote_traceback


def test_a_dead_worker_fails_its_task_and_is_replaced(session):
    with pytest.raises(sr.WorkerCrashedError, match="exit code 3"):
        sr.get(fail_with.remote("exit"))
    assert sr.get(fail_with.remote("fine")) == "fine"


def test_a_failed_dependency_fails_its_dependents(session):
    bad = fail_with.remote("value")
    with pytest.raises(ValueError, match="bad value 42"):
        sr.get(identity.remote([bad]))


def test_retries_rerun_a_failed_task(session, tmp_path):
    assert sr.get(flaky.options(retries=2).remote(str(tmp_path / "a"), 2)) == 3
    with pytest.raises(ConnectionError, match="attempt 2 fails"):
        sr.get(flaky.options(retries=1).remote(str(tmp_path / "b"), 2))
    assert (tmp_path / "b").read_text() == "2"  # ran exactly twice


def test_timeout_kills_a_process_task_and_the_next_task_runs(session):
    with pytest.raises(sr.TaskTimeoutError, match="timeout_s=0.5"):
        sr.get(sleeper.options(timeout_s=0.5).remote(60))
    assert sr.get(double.remote(2)) == 4
    # the killed worker is gone: only live workers remain
    for p in local(session).worker_pids():
        os.kill(p, 0)


def test_timeout_on_a_thread_task(session):
    with pytest.raises(sr.TaskTimeoutError, match="thread cannot be killed"):
        sr.get(sleeper.options(timeout_s=0.2, worker="thread").remote(1.5))


def test_timeout_then_retry(session, tmp_path):
    with pytest.raises(sr.TaskTimeoutError):
        sr.get(sleeper.options(timeout_s=0.3, retries=1).remote(60))


def test_get_timeout_and_wait(session):
    slow, fast = sleeper.remote(2), double.remote(1)
    with pytest.raises(sr.GetTimeoutError):
        sr.get(slow, timeout=0.05)
    ready, not_ready = sr.wait([slow, fast], num_returns=1)
    assert ready == [fast] and not_ready == [slow]
    ready, not_ready = sr.wait([slow], num_returns=1, timeout=0.05)
    assert ready == [] and not_ready == [slow]
    ready, _ = sr.wait([slow, fast], num_returns=2)
    assert ready == [slow, fast]


# -- cores ------------------------------------------------------------------------------------

def test_num_cpus_reserves_cores():
    sr.config(num_cpus=2)  # this machine's 2 cores, explicitly
    try:
        with sr.start():
            heavy = [stamped.options(num_cpus=2).remote(0.4) for _ in range(3)]
            light = [stamped.remote(1.5) for _ in range(3)]  # long enough for three workers to start
            heavy, light = sr.get(heavy), sr.get(light)
    finally:
        sr.config()
    assert overlaps(heavy) == 1      # each takes both cores: one at a time
    assert overlaps(light) == 3      # no reservation: all at once
    assert overlaps(heavy + light) >= 2


def test_an_oversize_cpu_request_runs_with_a_warning(session):
    with pytest.warns(sr.ResourceRequestWarning, match="num_cpus=64 is more than this machine"):
        ref = double.options(num_cpus=64).remote(5)
    assert sr.get(ref) == 10
    with pytest.warns(sr.ResourceRequestWarning, match="num_gpus=1: the local backend schedules no GPUs"):
        sr.get(double.options(num_gpus=1).remote(1))


# -- sessions and bad input -------------------------------------------------------------------

def test_closing_a_session_cancels_what_runs_and_ends_the_workers():
    sr.config()
    with sr.start() as s:
        ref = sleeper.remote(60)
        waiting = identity.remote(ref)
        sr.wait([double.remote(1)])
        pids = s.backend.worker_pids()
    with pytest.raises(sr.TaskCancelledError):
        sr.get(ref)
    with pytest.raises(sr.TaskCancelledError):
        sr.get(waiting)
    for p in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(p, 0)


def test_calls_outside_start_open_a_default_session():
    sr.config()
    assert sr.get(double.remote(3)) == 6
    sr.config()  # closes it


def test_bad_input_is_explained():
    with pytest.raises(TypeError, match="use double.remote"):
        double(1)
    with pytest.raises(TypeError, match="did you mean 'timeout_s'"):
        sr.remote(timeout=3)(lambda: 1)
    with pytest.raises(ValueError, match="retries=-1 is invalid"):
        double.options(retries=-1)
    with pytest.raises(ValueError, match="unknown backend 'lamda'"):
        sr.config(backend="lamda")
    with pytest.raises(TypeError, match="did you mean 'max_workers'"):
        sr.config(max_worker=3)
    with pytest.raises(TypeError, match="ObjectRef"):
        sr.get(3)
    sr.config()
    with sr.start():
        with pytest.raises(RuntimeError, match="do not nest"):
            with sr.start():
                pass
        with pytest.raises(RuntimeError, match="before start"):
            sr.config()


# -- the progress bar ---------------------------------------------------------------------------

PROGRESS_SCRIPT = textwrap.dedent("""
    import serverless_ray as sr
    @sr.remote
    def inc(x):
        return x + 1
    if __name__ == "__main__":
        with sr.start():
            assert inc.map(range(30)) == list(range(1, 31))
        print("done")
""")


def test_progress_bar_only_on_a_terminal(tmp_path):
    import pty

    script = tmp_path / "prog.py"
    script.write_text(PROGRESS_SCRIPT)
    quiet = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout.strip() == "done" and quiet.stderr == ""

    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, str(script)], stdin=follower, stdout=follower, stderr=follower)
    os.close(follower)
    out = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closed: the process is done
            break
        if not chunk:
            break
        out += chunk
    assert proc.wait(120) == 0
    os.close(leader)
    text = out.decode(errors="replace")
    assert "inc: 100%" in text and "30/30" in text, text


# -- graphs -------------------------------------------------------------------------------------

def test_map_with_a_graph_runs_dependencies_first_whatever_the_order(session, tmp_path):
    barrier.map([0, 1], folder=str(tmp_path), parties=2)  # two workers up and idle: g1, g2 start at once
    out = by_name.map(["g3", "g1", "g2"])
    assert [name for name, *_ in out] == ["g3", "g1", "g2"]  # input order
    t = {name: (start, end) for name, start, end in out}
    assert t["g3"][0] >= max(t["g1"][1], t["g2"][1])
    assert overlaps([t["g1"], t["g2"]]) == 2


def test_function_graph_reads_parameter_names_and_rejects_cycles():
    assert GRAPH.dependencies("g3") == ["g1", "g2"] and GRAPH.inputs("g1") == ["a"]
    assert GRAPH.order.index("g3") > max(GRAPH.order.index("g1"), GRAPH.order.index("g2"))

    def p(q):
        return q

    def q(p):
        return p

    with pytest.raises(sr.GraphError, match="cycle: p -> q -> p"):
        sr.FunctionGraph([p, q])
    with pytest.raises(sr.GraphError, match="'nope' is not a function of this graph"):
        GRAPH.dependencies("nope")


def test_unpicklable_arguments_are_explained(session):
    import threading

    with pytest.raises(TypeError, match="cannot be pickled to send them to a worker process.*worker='thread'"):
        sr.get(identity.remote(threading.Lock()))
    lock = threading.Lock()
    assert sr.get(identity.options(worker="thread").remote(lock)) is lock


def test_one_watchdog_thread_fires_deadlines_in_order_and_skips_cancelled_ones():
    import threading

    from serverless_ray.backends.base import Watchdog

    dog = Watchdog("test-watchdog")
    fired, done = [], threading.Event()
    dog.watch(0.3, lambda: (fired.append("late"), done.set()))
    cancel = dog.watch(0.1, lambda: fired.append("cancelled"))
    dog.watch(0.2, lambda: fired.append("early"))
    for _ in range(50):
        dog.watch(60, lambda: fired.append("never"))
    cancel()
    assert [t.name for t in threading.enumerate()].count("test-watchdog") == 1  # one thread for 53 deadlines
    assert done.wait(5)
    assert fired == ["early", "late"]
    dog.close()
