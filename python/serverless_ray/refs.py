"""`ObjectRef`: the handle to a task's result (or a `put` value), and dependency resolution.

A ref passed as an argument, at the top level or inside lists, tuples and dicts (values),
is a dependency: the task waits for it and receives the value, never the ref.

    refs_in((x, [r1, {"k": r2}]))          -> [r1, r2]
    resolve((x, [r1, {"k": r2}]))          -> (x, [v1, {"k": v2}])
"""

from __future__ import annotations

import itertools
from concurrent.futures import Future

_ids = itertools.count(1)
_CONTAINERS = (list, tuple, dict)


class ObjectRef:
    """A result that will exist: pass it to `get`, `wait`, or another task."""

    __slots__ = ("_future", "id", "label")

    def __init__(self, future: Future, label: str = ""):
        self._future = future
        self.id = next(_ids)
        self.label = label

    def done(self) -> bool:
        return self._future.done()

    def future(self) -> Future:
        """The underlying concurrent.futures.Future (for asyncio.wrap_future, callbacks ...)."""
        return self._future

    def __repr__(self) -> str:
        state = "pending" if not self._future.done() else ("failed" if self._failed() else "ready")
        return f"ObjectRef({self.id}{', ' + self.label if self.label else ''}, {state})"

    def _failed(self) -> bool:
        f = self._future
        return f.cancelled() or f.exception() is not None

    def __reduce__(self):
        raise TypeError(
            "an ObjectRef cannot be pickled: pass it as a task argument (also inside a list, "
            "tuple or dict) and the task receives its value, or call get(ref) first")


def ready_ref(value, label: str = "put") -> ObjectRef:
    f: Future = Future()
    f.set_result(value)
    return ObjectRef(f, label)


def refs_in(obj, found: list | None = None) -> list:
    """Every ObjectRef in obj (top level, and values of nested lists, tuples and dicts)."""
    if found is None:
        found = []
    if isinstance(obj, ObjectRef):
        found.append(obj)
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            if isinstance(item, (ObjectRef, *_CONTAINERS)):
                refs_in(item, found)
    elif isinstance(obj, dict):
        for item in obj.values():
            if isinstance(item, (ObjectRef, *_CONTAINERS)):
                refs_in(item, found)
    return found


def resolve(obj):
    """obj with every ObjectRef replaced by its (ready) value; containers are rebuilt with
    their own type (namedtuples included)."""
    if isinstance(obj, ObjectRef):
        return obj._future.result()
    if isinstance(obj, list):
        return [resolve(x) for x in obj]
    if isinstance(obj, tuple):
        items = [resolve(x) for x in obj]
        return type(obj)(*items) if hasattr(obj, "_fields") else type(obj)(items)
    if isinstance(obj, dict):
        out = {k: resolve(v) for k, v in obj.items()}
        if type(obj) is not dict:
            try:
                return type(obj)(out)
            except TypeError:
                return out
        return out
    return obj
