"""serverless_ray: DAGs of array formulas, compiled to Rust, run locally or serverless.

    from serverless_ray import dag, Input

    @dag
    class Alpha:
        open: Input
        close: Input
        def f1(self): return self.open + self.close
        def f3(self): return self.f1 * 2

    Alpha(open=o, close=c).f3()      # the pure-Python reference engine, no compilation
    # `sray-gen build alpha.py` compiles the same source; then:
    # import alpha_rs; alpha_rs.Alpha(open=o, close=c).f3()

The compiled module and the reference engine have the same API and raise the same
exceptions (serverless_ray.errors).
"""

from . import errors, ops
from .reference import Input, ReferenceDag, dag, evaluate, load

# The Ray-like task API (docs/remote.md).
from .api import ResourceRequestWarning, config, get, put, remote, start, wait
from .graph import FunctionGraph, GraphError
from .refs import ObjectRef
from .task_errors import (GetTimeoutError, RemoteTraceback, TaskCancelledError, TaskError, TaskTimeoutError,
                          WorkerCrashedError)

__all__ = ["Input", "ReferenceDag", "dag", "errors", "evaluate", "load", "ops",
           "FunctionGraph", "GetTimeoutError", "GraphError", "ObjectRef", "RemoteTraceback",
           "ResourceRequestWarning", "TaskCancelledError", "TaskError", "TaskTimeoutError",
           "WorkerCrashedError", "config", "get", "put", "remote", "start", "wait"]
