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

The DAG half (`dag`, `Input`, `load`, `evaluate`, `ReferenceDag`, `ops`) loads numpy and
the compiler's frontend on first use, so a program (or a Lambda task worker) that only
uses the Ray-like task API imports neither.
"""

import importlib

from . import errors

# The Ray-like task API (docs/remote.md).
from .api import config, get, put, remote, start, wait
from .graph import FunctionGraph, GraphError
from .options import ResourceRequestWarning
from .refs import ObjectRef
from .task_errors import (GetTimeoutError, RemoteTraceback, TaskCancelledError, TaskError, TaskTimeoutError,
                          WorkerCrashedError)

__all__ = ["Input", "ReferenceDag", "dag", "errors", "evaluate", "load", "ops",
           "FunctionGraph", "GetTimeoutError", "GraphError", "ObjectRef", "RemoteTraceback",
           "ResourceRequestWarning", "TaskCancelledError", "TaskError", "TaskTimeoutError",
           "WorkerCrashedError", "config", "get", "put", "remote", "start", "wait"]

# name -> the submodule it comes from, imported on first access (PEP 562)
_LAZY = {"Input": "reference", "ReferenceDag": "reference", "dag": "reference", "evaluate": "reference",
         "load": "reference", "ops": None}


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'serverless_ray' has no attribute {name!r}")
    module = importlib.import_module(f".{_LAZY[name] or name}", __name__)
    value = module if _LAZY[name] is None else getattr(module, name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
