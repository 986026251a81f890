"""The Ray-like API: config, start, remote, get, wait, put.

    import serverless_ray as sr

    @sr.remote
    def double(n):
        return 2 * n

    with sr.start():                       # the local backend unless config() said otherwise
        ref = double.remote(1)             # an ObjectRef, at once
        sr.get(double.remote(ref))         # 4: a ref argument is a dependency
        double.map([1, 2, 3])              # [2, 4, 6], in parallel

Everything here is backend-neutral (backends/base.py is the interface): dependencies,
retries, progress and option checks work the same on every backend.
"""

from __future__ import annotations

import atexit
import concurrent.futures as cf
import contextlib
import functools
import importlib
import inspect
import threading
import time
import uuid
import warnings
from concurrent.futures import Future, InvalidStateError

from . import options as _options
from .options import ResourceRequestWarning
from .progress import _Quiet, progress_bar
from .refs import ObjectRef, ready_ref, refs_in, resolve
from .task_errors import GetTimeoutError, TaskCancelledError

BACKENDS = {
    "local": ("serverless_ray.backends.local", "LocalBackend"),
    "lambda": ("serverless_ray.backends.lambda_", "LambdaBackend"),
}
SESSION_OPTIONS = ("progress",)


# -- configuration and sessions -------------------------------------------------------------

_lock = threading.RLock()
_config: tuple[str, dict] = ("local", {})
_session: Session | None = None
_explicit = False
_atexit_registered = False


def _backend_class(name: str):
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}: choose one of {', '.join(repr(b) for b in BACKENDS)}")
    module, cls = BACKENDS[name]
    return getattr(importlib.import_module(module), cls)


def _check_backend_options(name: str, options: dict) -> None:
    import difflib

    cls = _backend_class(name)
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"] + list(SESSION_OPTIONS)
    for key in options:
        if key not in accepted:
            close = difflib.get_close_matches(key, accepted, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise TypeError(f"config(): the {name} backend has no option {key!r}{hint} "
                            f"(its options: {', '.join(accepted)})")


def config(backend: str = "local", **options) -> None:
    """Chooses the backend and its options for the sessions opened after this call.

    `config()` alone is the local backend with defaults, which needs no cloud account.
    local: max_workers (default max(8, 4 x CPUs)), num_cpus (cores tasks may reserve).
    lambda: function_name, region, endpoint_url, s3_bucket, ... (see docs/remote.md).
    Any backend: progress=True/False/"auto" (a bar only on a terminal, the default).
    """
    global _config
    _check_backend_options(backend, options)
    with _lock:
        if _session is not None and _explicit:
            raise RuntimeError("config() was called inside a start() block: call config() before start()")
        if _session is not None:
            _close_default()
        _config = (backend, dict(options))


class Session:
    """An open backend (pools, clients) plus what is waiting on dependencies or retries."""

    def __init__(self, backend_name: str, options: dict):
        opts = dict(options)
        self.progress = opts.pop("progress", "auto")
        self.backend = _backend_class(backend_name)(**opts)
        self._waiting: set[Future] = set()  # outer futures of tasks not yet handed to the backend
        self._lock = threading.Lock()
        self._warned: set[str] = set()
        self.closed = False

    # A task's outer future is the backend's own one when nothing needs to sit in between
    # (no dependencies, no retries): the common case pays for one Future only.
    def submit(self, fn: RemoteFunction, args: tuple, kwargs: dict, options, after=()) -> ObjectRef:
        checked = fn._checked_options
        if checked is None or checked[0] is not self or checked[1] is not options:
            self._warn(fn, options)
        deps = refs_in(args) if args else []
        if kwargs:
            refs_in(kwargs, deps)
        deps.extend(after)
        if not deps and not options.retries:
            return ObjectRef(self.backend.submit(fn, args, kwargs, options), fn.name)
        outer: Future = Future()
        with self._lock:
            self._waiting.add(outer)
        outer.add_done_callback(self._forget)
        pending = [d for d in deps if not d.done()]
        if not pending:
            self._launch(fn, args, kwargs, options, deps, outer, options.retries)
        else:
            remaining = [len(pending)]
            count_lock = threading.Lock()

            def one_done(_):
                with count_lock:
                    remaining[0] -= 1
                    last = remaining[0] == 0
                if last:
                    self._launch(fn, args, kwargs, options, deps, outer, options.retries)

            for d in pending:
                d._future.add_done_callback(one_done)
        return ObjectRef(outer, fn.name)

    def _forget(self, outer: Future) -> None:
        with self._lock:
            self._waiting.discard(outer)

    def _launch(self, fn, args, kwargs, options, deps, outer: Future, retries_left: int) -> None:
        if outer.done() or self.closed:
            outer.cancel()
            return
        for d in deps:
            f = d._future
            if f.cancelled():
                outer.cancel()
                return
            if f.exception() is not None:  # a failed dependency fails its dependents with its error
                _set(outer, False, f.exception())
                return
        try:
            inner = self.backend.submit(fn, resolve(args) if args else args,
                                        resolve(kwargs) if kwargs else kwargs, options)
        except Exception as exc:  # noqa: BLE001 - e.g. the session closed meanwhile
            _set(outer, False, exc)
            return

        def attempt_done(f: Future):
            if f.cancelled():
                outer.cancel()
            elif f.exception() is not None:
                if retries_left > 0 and not self.closed:
                    self._launch(fn, args, kwargs, options, deps, outer, retries_left - 1)
                else:
                    _set(outer, False, f.exception())
            else:
                _set(outer, True, f.result())

        inner.add_done_callback(attempt_done)

    def _warn(self, fn: RemoteFunction, options) -> None:
        for message in self.backend.resource_warnings(options):
            text = f"{fn.name}: {message}"
            if text not in self._warned:
                self._warned.add(text)
                warnings.warn(text, ResourceRequestWarning, stacklevel=4)
        if options is fn._options:
            fn._checked_options = (self, options)  # per session: another backend warns anew

    def close(self, cancel: bool = True) -> None:
        with self._lock:
            if self.closed:
                return
            self.closed = True
            waiting = list(self._waiting)
        for f in waiting:
            f.cancel()
        self.backend.shutdown(cancel=cancel)


def _set(future: Future, ok: bool, value) -> None:
    try:
        future.set_result(value) if ok else future.set_exception(value)
    except InvalidStateError:
        pass


def _close_default() -> None:
    global _session
    with _lock:
        session, _session = _session, None
    if session is not None:
        session.close()


def _current() -> Session:
    """The open session: the start() block's, else a default one opened on first use."""
    global _session, _atexit_registered
    session = _session
    if session is not None:
        return session
    with _lock:
        if _session is None:
            name, options = _config
            _session = Session(name, options)
            if not _atexit_registered:
                atexit.register(_close_default)
                _atexit_registered = True
        return _session


@contextlib.contextmanager
def start():
    """Opens a session on the configured backend; on exit closes it, cancelling the tasks
    that are still running or waiting (their `get` raises TaskCancelledError)."""
    global _session, _explicit
    with _lock:
        if _session is not None and _explicit:
            raise RuntimeError("a serverless_ray session is already open: start() blocks do not nest")
        if _session is not None:
            _close_default()
        name, options = _config
        session = _session = Session(name, options)
        _explicit = True
    try:
        yield session
    finally:
        with _lock:
            _session, _explicit = None, False
        session.close(cancel=True)


# -- remote functions -----------------------------------------------------------------------

class _Body:
    """What every options-variant of one remote function shares: the function, its key,
    and its pickled form (made once)."""

    __slots__ = ("function", "key", "_blob", "__weakref__")

    def __init__(self, function):
        self.function = function
        self.key = uuid.uuid4().hex
        self._blob = None


class RemoteFunction:
    """A function made remote by @remote: `.remote()`, `.map()`, `.options()`."""

    def __init__(self, function, options: _options.TaskOptions, body: _Body | None = None):
        if not callable(function):
            raise TypeError(f"@remote decorates a function; got {type(function).__name__}")
        functools.update_wrapper(self, function)
        self._body = body or _Body(function)
        self._options = options
        self._checked_options = None
        self.name = getattr(function, "__qualname__", getattr(function, "__name__", repr(function)))

    @property
    def function(self):
        return self._body.function

    @property
    def key(self) -> str:
        return self._body.key

    def blob(self) -> bytes:
        """(function, its source file), cloudpickled once (by value when defined in __main__;
        cloudpickle drops the file name, which worker_core.load_function puts back so remote
        tracebacks name the file)."""
        body = self._body
        if body._blob is None:
            from .codec import dumps

            code = getattr(body.function, "__code__", None)
            body._blob = dumps((body.function, code.co_filename if code is not None else None))
        return body._blob

    def __call__(self, *args, **kwargs):
        raise TypeError(f"remote function {self.name} cannot be called directly: use {self.name}.remote(...) "
                        f"(or {self.name}.function(...) to run it here, in this process)")

    def remote(self, *args, **kwargs) -> ObjectRef:
        """Submits one call; returns its ObjectRef at once."""
        return _current().submit(self, args, kwargs, self._options)

    def options(self, **overrides) -> RemoteFunction:
        """The same function with some options changed, for the calls made through it."""
        return RemoteFunction(self._body.function, self._options.merged(**overrides), self._body)

    def map(self, iterable, timeout: float | None = None, **kwargs) -> list:
        """[f(x, **kwargs) for x in iterable], computed in parallel; results in input order.

        With option `graph=FunctionGraph(...)`, items are node names and each runs after
        the items it depends on (directly or through names not in the list)."""
        items = list(iterable)
        graph = self._options.graph
        session = _current()
        if graph is None:
            refs = [session.submit(self, (x,), kwargs, self._options) for x in items]
        else:
            refs = self._map_graph(session, items, graph, kwargs)
        return get(refs, timeout=timeout, desc=self.name)

    def _map_graph(self, session, items, graph, kwargs) -> list[ObjectRef]:
        index = {x: i for i, x in enumerate(items) if x in graph}
        refs: list = [None] * len(items)
        for name in graph.order:  # dependencies first
            if name in index:
                after = [refs[index[a]] for a in graph.ancestors(name) if a in index]
                refs[index[name]] = session.submit(self, (name,), kwargs, self._options, after=after)
        for i, x in enumerate(items):
            if refs[i] is None:  # not a node of the graph, or a repeated name
                refs[i] = refs[index[x]] if x in index else session.submit(self, (x,), kwargs, self._options)
        return refs

    def __reduce__(self):
        return (_rebuild, (self._body.function, self._options))

    def __repr__(self) -> str:
        return f"<remote function {self.name}>"


def _rebuild(function, options):
    return RemoteFunction(function, options)


def remote(function=None, **options):
    """`@remote` or `@remote(num_cpus=..., memory_mb=..., timeout_s=..., retries=...,
    num_gpus=..., worker="process"|"thread", graph=...)` (see options.py)."""
    opts = _options.make(**options)
    if function is not None:
        return RemoteFunction(function, opts)
    return lambda fn: RemoteFunction(fn, opts)


# -- results ----------------------------------------------------------------------------------

def _value(ref: ObjectRef, timeout: float | None):
    if not isinstance(ref, ObjectRef):
        raise TypeError(f"get() takes an ObjectRef or a list of them; got {type(ref).__name__}")
    future = ref._future
    try:
        return future.result(timeout)
    except TimeoutError:  # cf.TimeoutError is TimeoutError: the task's own one must pass through
        if future.done():
            raise
        raise GetTimeoutError(f"{ref!r} was not ready within timeout={timeout}s (the task goes on)") from None
    except cf.CancelledError:
        raise TaskCancelledError(f"{ref!r} was cancelled: its session was closed before it finished") from None


def get(refs, timeout: float | None = None, *, desc: str = "tasks"):
    """The value of a ref, or the list of values of a list of refs (in their order).
    A failed task's exception is raised as itself, with the remote traceback as its cause.
    Raises GetTimeoutError after `timeout` seconds (the tasks go on running)."""
    if isinstance(refs, ObjectRef):
        return _value(refs, timeout)
    if not isinstance(refs, (list, tuple)):
        raise TypeError(f"get() takes an ObjectRef or a list of them; got {type(refs).__name__}")
    deadline = None if timeout is None else time.monotonic() + timeout
    with progress_bar(len(refs), desc, _current_progress()) as bar:
        if not isinstance(bar, _Quiet):  # a real bar: count tasks as they finish
            pending = {r._future for r in refs if isinstance(r, ObjectRef) and not r.done()}
            bar.update(len(refs) - len(pending))
            try:
                for _ in cf.as_completed(pending, timeout=timeout):
                    bar.update(1)
            except cf.TimeoutError:
                pass
        out = []
        for r in refs:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            out.append(_value(r, left))
        return out


def _current_progress():
    session = _session
    return session.progress if session is not None else _config[1].get("progress", "auto")


def wait(refs, num_returns: int = 1, timeout: float | None = None):
    """(ready, not_ready): the first `num_returns` refs to finish (in the order given),
    and the others; returns early with fewer ready when `timeout` passes."""
    refs = list(refs)
    if not all(isinstance(r, ObjectRef) for r in refs):
        raise TypeError("wait() takes a list of ObjectRefs")
    if not 0 <= num_returns <= len(refs):
        raise ValueError(f"num_returns={num_returns} must be between 0 and the number of refs ({len(refs)})")
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        done = [r for r in refs if r.done()]
        if len(done) >= num_returns:
            break
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            break
        cf.wait([r._future for r in refs if not r.done()], timeout=left, return_when=cf.FIRST_COMPLETED)
    ready = set(map(id, done[:num_returns]))
    return [r for r in refs if id(r) in ready], [r for r in refs if id(r) not in ready]


def put(value) -> ObjectRef:
    """A ref to `value`, ready at once; tasks given it receive the value."""
    if isinstance(value, ObjectRef):
        raise TypeError("put() takes a value, not an ObjectRef (it is already a ref)")
    return ready_ref(value)
