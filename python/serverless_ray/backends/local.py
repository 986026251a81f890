"""The local backend: a serverless platform on one machine.

- Each running task has its own worker, up to `max_workers` (default max(8, 4 x CPUs)),
  so tasks that wait (sleep, I/O) do not queue behind each other: three tasks that
  sleep 2 s take about 2 s on a 2-core machine.
- Workers are processes, started on first need and reused across tasks (the function
  is sent once per worker). `worker="thread"` runs a task on a thread of this process
  instead: for compiled code that releases the GIL, with no pickling of arguments.
- `num_cpus` reserves that many cores while the task runs; a task waits for free cores.
  A task without num_cpus reserves none. A request above the machine's cores reserves
  all of them (with a warning) instead of waiting forever.
- `timeout_s`: a process task's worker is killed at the deadline (a new one starts for
  the next task); a thread cannot be killed, so a thread task fails at the deadline and
  its thread finishes in the background, still holding its slot.

Worker processes run worker_core.serve, loaded by path: a fresh interpreter that does not
import serverless_ray or numpy, with this process's sys.path so by-reference functions
import the same modules. They ignore SIGINT; closing the session ends them.
"""

from __future__ import annotations

import itertools
import json
import os
import pickle
import subprocess
import sys
import threading
import time
from collections import deque
from concurrent.futures import Future, InvalidStateError, ThreadPoolExecutor
from multiprocessing.connection import Connection
from pathlib import Path

from .. import codec
from ..task_errors import TaskCancelledError, TaskTimeoutError, WorkerCrashedError
from .base import Backend, Watchdog

_CORE = str(Path(__file__).resolve().parents[1] / "worker_core.py")
_BOOT = (
    "import sys, os, json, importlib.util as u\n"
    "sys.path[:] = json.loads(os.environ.pop('SRAY_WORKER_SYS_PATH'))\n"
    "s = u.spec_from_file_location('serverless_ray_worker_core', sys.argv[3])\n"
    "m = u.module_from_spec(s); s.loader.exec_module(m)\n"
    "m.serve(int(sys.argv[1]), int(sys.argv[2]))\n"
)


def default_max_workers() -> int:
    return max(8, 4 * (os.cpu_count() or 1))


def machine_memory_mb() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    except (ValueError, OSError, AttributeError):
        return None


def _settle(future: Future, ok: bool, value) -> None:
    try:
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
    except InvalidStateError:  # cancelled by shutdown meanwhile
        pass


class _Task:
    __slots__ = ("id", "fn", "args", "kwargs", "payload", "options", "future", "cpus", "timed_out", "worker")

    def __init__(self, id, fn, args, kwargs, options, future, cpus):
        self.id, self.fn, self.args, self.kwargs, self.options = id, fn, args, kwargs, options
        self.future, self.cpus = future, cpus
        self.payload = None
        self.timed_out = False
        self.worker = None


class _Worker:
    __slots__ = ("proc", "inbox", "outbox", "known", "task", "dead")

    def __init__(self, proc, inbox: Connection, outbox: Connection):
        self.proc, self.inbox, self.outbox = proc, inbox, outbox
        self.known: set = set()
        self.task: _Task | None = None
        self.dead = False


class LocalBackend(Backend):
    name = "local"

    def __init__(self, max_workers: int | None = None, num_cpus: int | None = None):
        if max_workers is not None and (not isinstance(max_workers, int) or max_workers < 1):
            raise ValueError(f"max_workers={max_workers!r}: expected an integer >= 1")
        if num_cpus is not None and (not isinstance(num_cpus, int) or num_cpus < 1):
            raise ValueError(f"num_cpus={num_cpus!r}: expected an integer >= 1 (the cores tasks may reserve)")
        self.max_workers = max_workers or default_max_workers()
        self.total_cpus = num_cpus or os.cpu_count() or 1
        self._free_cpus = self.total_cpus
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._waiting: deque[_Task] = deque()       # tasks reserving no core, FIFO
        self._waiting_cpu: deque[_Task] = deque()   # tasks reserving cores, FIFO among themselves
        self._running = 0
        self._thread_tasks: set[_Task] = set()
        self._idle: list[_Worker] = []
        self._workers: set[_Worker] = set()
        self._threads: ThreadPoolExecutor | None = None
        self._watchdog = Watchdog("sray-watchdog")
        self._closed = False

    # -- what cannot be honoured ---------------------------------------------------------
    def resource_warnings(self, options) -> list[str]:
        out = []
        if options.num_cpus and options.num_cpus > self.total_cpus:
            out.append(f"num_cpus={options.num_cpus:g} is more than this machine's {self.total_cpus} cores: "
                       f"the local backend reserves all {self.total_cpus} while the task runs")
        if options.num_gpus:
            out.append(f"num_gpus={options.num_gpus:g}: the local backend schedules no GPUs; the task runs "
                       "without a GPU reservation")
        mem = machine_memory_mb()
        if options.memory_mb and mem and options.memory_mb > mem:
            out.append(f"memory_mb={options.memory_mb} is more than this machine's {mem} MB: the local backend "
                       "does not limit memory; the task runs and may run out of memory")
        return out

    # -- submitting ------------------------------------------------------------------------
    def submit(self, fn, args, kwargs, options) -> Future:
        future: Future = Future()
        task = _Task(next(self._ids), fn, args, kwargs, options, future,
                     min(options.num_cpus or 0, self.total_cpus))
        if options.worker == "process":
            try:
                task.payload = codec.dumps((args, kwargs))
            except Exception as exc:  # noqa: BLE001
                future.set_exception(TypeError(
                    f"the arguments of {fn.name} cannot be pickled to send them to a worker process: "
                    f"{type(exc).__name__}: {exc}. Pass picklable values, or use .options(worker='thread')"))
                return future
            task.args = task.kwargs = None
        with self._lock:
            if self._closed:
                raise RuntimeError("this serverless_ray session is closed; open a new one with serverless_ray.start()")
            if self._running < self.max_workers and (
                    self._free_cpus >= task.cpus if task.cpus else True) and not (
                    self._waiting_cpu if task.cpus else self._waiting):
                self._reserve(task)
                start = True
            else:
                (self._waiting_cpu if task.cpus else self._waiting).append(task)
                start = False
        if start:
            self._start(task)
        return future

    def _reserve(self, task: _Task) -> None:  # under the lock
        self._running += 1
        self._free_cpus -= task.cpus
        if task.options.worker == "process":
            task.worker = self._idle.pop() if self._idle else None
        else:
            self._thread_tasks.add(task)

    def _release(self, task: _Task) -> list[_Task]:  # under the lock: frees the slot, picks what starts next
        self._running -= 1
        self._free_cpus += task.cpus
        starts = []
        while self._running < self.max_workers and not self._closed:
            if self._waiting_cpu and self._waiting_cpu[0].cpus <= self._free_cpus:
                nxt = self._waiting_cpu.popleft()
            elif self._waiting:
                nxt = self._waiting.popleft()
            else:
                break
            self._reserve(nxt)
            starts.append(nxt)
        return starts

    def _start(self, task: _Task) -> None:
        if task.options.timeout_s:
            cancel = self._watchdog.watch(task.options.timeout_s, lambda: self._expire(task))
            task.future.add_done_callback(lambda _: cancel())
        if task.options.worker == "thread":
            if self._threads is None:
                with self._lock:
                    if self._threads is None:
                        self._threads = ThreadPoolExecutor(self.max_workers, thread_name_prefix="sray-task")
            try:
                self._threads.submit(self._run_thread, task)
            except RuntimeError:  # the session closed meanwhile: the pool takes no more
                with self._lock:
                    self._thread_tasks.discard(task)
                    self._release(task)
                task.future.cancel()
            return
        worker = task.worker
        if worker is None:
            try:
                worker = task.worker = self._spawn()
            except OSError as exc:
                with self._lock:
                    starts = self._release(task)
                _settle(task.future, False, WorkerCrashedError(f"could not start a worker process: {exc}"))
                self._start_all(starts)
                return
        with self._lock:
            dead = worker.dead or self._closed
            if not dead:
                worker.task = task
        if dead:  # it died (or the session closed) between being picked and given this task
            with self._lock:
                starts = self._release(task)
            _settle(task.future, False, WorkerCrashedError(f"the worker picked for {task.fn.name} died before "
                                                           "the task reached it") if not self._closed
                    else TaskCancelledError("the session was closed"))
            self._start_all(starts)
            return
        fn = task.fn
        blob = None if fn.key in worker.known else fn.blob()
        worker.known.add(fn.key)
        try:
            worker.inbox.send_bytes(pickle.dumps((task.id, fn.key, blob, task.payload), protocol=5))
        except OSError:
            pass  # the worker died; its reader thread fails the task
        task.payload = None

    def _start_all(self, tasks: list[_Task]) -> None:
        for t in tasks:
            self._start(t)

    # -- process workers -------------------------------------------------------------------
    def _spawn(self) -> _Worker:
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        env = dict(os.environ, SRAY_WORKER_SYS_PATH=json.dumps(sys.path))
        try:
            proc = subprocess.Popen([sys.executable, "-c", _BOOT, str(to_child_r), str(from_child_w), _CORE],
                                    pass_fds=(to_child_r, from_child_w), env=env)
        except BaseException:
            os.close(to_child_w)  # no worker will own the parent's ends
            os.close(from_child_r)
            raise
        finally:
            os.close(to_child_r)  # the child's ends: the child has its copies
            os.close(from_child_w)
        worker = _Worker(proc, Connection(to_child_w, readable=False), Connection(from_child_r, writable=False))
        with self._lock:
            self._workers.add(worker)
            if self._closed:
                worker.dead = True
                proc.kill()
        threading.Thread(target=self._read, args=(worker,), name=f"sray-worker-{proc.pid}", daemon=True).start()
        return worker

    def _read(self, worker: _Worker) -> None:
        """One thread per worker process: takes outcomes, settles futures, starts what waits."""
        while True:
            try:
                message = worker.outbox.recv_bytes()
            except (EOFError, OSError):
                break
            _, ok, out = pickle.loads(message)
            with self._lock:
                task, worker.task = worker.task, None
                if task is None:
                    continue
                if not self._closed:
                    # idle before the release, so the next task goes to this worker (LIFO)
                    self._idle.append(worker)
                starts = self._release(task)
            if starts:
                self._start_all(starts)
            if ok:
                try:
                    value = codec.loads(out)
                except Exception as exc:  # noqa: BLE001
                    ok, value = False, exc
            else:
                value = codec.decode_error(out)
            _settle(task.future, ok, value)
        self._gone(worker)

    def _gone(self, worker: _Worker) -> None:
        with self._lock:
            worker.dead = True
            self._workers.discard(worker)
            if worker in self._idle:
                self._idle.remove(worker)
            task, worker.task = worker.task, None
            starts = self._release(task) if task is not None else []
            worker.inbox.close()  # under the lock: shutdown() may close it too
        worker.outbox.close()  # only this reader thread uses it
        code = worker.proc.wait()
        if task is not None:
            if task.timed_out:
                exc = TaskTimeoutError(f"{task.fn.name} ran longer than timeout_s={task.options.timeout_s:g}; "
                                       "its worker process was killed")
            else:
                how = f"signal {-code}" if code < 0 else f"exit code {code}"
                exc = WorkerCrashedError(f"the worker process (pid {worker.proc.pid}) running {task.fn.name} "
                                         f"died ({how})")
            _settle(task.future, False, exc)
        self._start_all(starts)

    # -- thread workers --------------------------------------------------------------------
    def _run_thread(self, task: _Task) -> None:
        try:
            ok, value = True, task.fn.function(*task.args, **task.kwargs)
        except BaseException as exc:  # noqa: BLE001 - goes to the caller
            ok, value = False, exc
        task.args = task.kwargs = None
        with self._lock:
            self._thread_tasks.discard(task)
            starts = self._release(task)
        self._start_all(starts)
        if not task.timed_out:
            _settle(task.future, ok, value)

    # -- timeouts --------------------------------------------------------------------------
    def _expire(self, task: _Task) -> None:
        """On the watchdog's thread, at the task's deadline."""
        with self._lock:
            if self._closed or task.future.done():
                return
            task.timed_out = True
            if task.options.worker == "thread":
                _settle(task.future, False, TaskTimeoutError(
                    f"{task.fn.name} ran longer than timeout_s={task.options.timeout_s:g}; a thread cannot be "
                    "killed, so it finishes in the background (use worker='process' to have it killed)"))
            elif task.worker is not None and task.worker.task is task:
                task.worker.proc.kill()  # its reader thread sees EOF and fails the task

    # -- closing -----------------------------------------------------------------------------
    def shutdown(self, cancel: bool = True) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            pending = [*self._waiting, *self._waiting_cpu, *self._thread_tasks]
            self._waiting.clear()
            self._waiting_cpu.clear()
            workers = list(self._workers)
            pending += [w.task for w in workers if w.task is not None]
        self._watchdog.close()
        for task in pending:
            task.future.cancel()
        for w in workers:
            if w.task is not None:
                w.proc.kill()
            else:
                with self._lock:
                    w.inbox.close()  # an idle worker exits on end of input
        deadline = time.monotonic() + 5
        for w in workers:
            try:
                w.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                w.proc.kill()
                w.proc.wait()
        if self._threads is not None:
            self._threads.shutdown(wait=False, cancel_futures=True)

    def stats(self) -> dict:
        with self._lock:
            return {"workers": len(self._workers), "idle": len(self._idle), "running": self._running,
                    "waiting": len(self._waiting) + len(self._waiting_cpu), "free_cpus": self._free_cpus}

    def worker_pids(self) -> list[int]:
        with self._lock:
            return [w.proc.pid for w in self._workers]
