"""Task options: what `@remote(...)` and `.options(...)` accept, checked once, clearly.

    @remote(num_cpus=2, memory_mb=2048, timeout_s=60, retries=2)
    def f(x): ...
    f.options(timeout_s=5).remote(1)      # overrides for one call

| option      | meaning                                                                        |
|-------------|--------------------------------------------------------------------------------|
| num_cpus    | cores reserved while the task runs (local); chooses the memory size on Lambda   |
| num_gpus    | accepted for Ray compatibility; no backend here has GPUs (a warning says so)    |
| memory_mb   | memory the task needs (Lambda: the function's memory size; local: checked only) |
| timeout_s   | the task fails with TaskTimeoutError after this many seconds                    |
| retries     | how many times a failed task is run again                                       |
| worker      | "process" (default) or "thread": threads suit compiled, GIL-releasing work      |
| graph       | a FunctionGraph: `map` over its node names waits for each name's dependencies  |
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field


class ResourceRequestWarning(UserWarning):
    """A task asks for something its backend cannot give; the message says what it gets instead."""


@dataclass(frozen=True)
class TaskOptions:
    num_cpus: float | None = None
    num_gpus: float = 0
    memory_mb: int | None = None
    timeout_s: float | None = None
    retries: int = 0
    worker: str = "process"
    graph: object = field(default=None, compare=False)

    def __post_init__(self):
        def fail(name, want):
            raise ValueError(f"remote option {name}={getattr(self, name)!r} is invalid: expected {want}")

        def number(name, allow_none=True, minimum=0.0, strict=False):
            v = getattr(self, name)
            if v is None and allow_none:
                return
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < minimum or (strict and v == minimum):
                fail(name, f"a number {'>' if strict else '>='} {minimum:g}" + (" or None" if allow_none else ""))

        number("num_cpus")
        number("num_gpus", allow_none=False)
        number("memory_mb", strict=True)
        number("timeout_s", strict=True)
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            fail("retries", "an integer >= 0")
        if self.worker not in ("process", "thread"):
            fail("worker", '"process" or "thread"')
        if self.graph is not None and not hasattr(self.graph, "dependencies"):
            fail("graph", "a serverless_ray.FunctionGraph (or None)")

    def merged(self, **overrides) -> TaskOptions:
        check_names(overrides)
        return dataclasses.replace(self, **overrides)


NAMES = tuple(f.name for f in dataclasses.fields(TaskOptions))


def check_names(options: dict) -> None:
    """Raises TypeError naming an unknown option, with the closest valid name."""
    for name in options:
        if name not in NAMES:
            close = difflib.get_close_matches(name, NAMES, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise TypeError(f"unknown remote option {name!r}{hint} (valid options: {', '.join(NAMES)})")


def make(**options) -> TaskOptions:
    check_names(options)
    return TaskOptions(**options)
