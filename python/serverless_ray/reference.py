"""The reference engine: a DAG evaluated in pure Python/numpy, from the same source
semantics as the compiler (the same frontend, the same op table).

It is the oracle of the differential tests, and lets a user run and debug a DAG without
compiling it. Its API is that of a compiled module's class:

    Alpha = load("alpha.py", "Alpha")        # or: decorate the class with @dag
    a = Alpha(open=o, close=c)
    a.f3(); a.cal("f3"); a.compute(["f1", "f3"]); a.update(open=o2); a.stats()

Like the Rust engine it is lazy and incremental (verifying traces with early cutoff; see
runtime-rs/src/engine.rs), so `stats()` counts the same recomputations.
"""

from __future__ import annotations

import inspect
import time
from pathlib import Path

import numpy as np

from . import errors


class Input:
    """Marks a class attribute of a @dag class as an input: `open: Input` (a time x
    assets panel), or `loadings: Input["N", "K"]` (named dims; inputs naming the same dim
    must agree on its size)."""

    def __class_getitem__(cls, dims):
        # Only the compiler reads the dims, from the source; at run time this is `Input`.
        return cls


def _shape_str(shape) -> str:
    return f"({shape[0]},)" if len(shape) == 1 else "(" + ", ".join(str(d) for d in shape) + ")"


class ReferenceDag:
    """Base class of reference DAGs; `load` and `@dag` make one subclass per DAG."""

    _dag = None  # the sray_transpiler IR of the DAG, set on subclasses

    def __init__(self, **inputs):
        d = self._dag
        self._order = [n.name for n in d.nodes]  # topological: see `load`
        self._public = [n.name for n in d.nodes if not n.private]
        self._nodes = {n.name: n for n in d.nodes}
        self._input_names = [i.name for i in d.inputs]
        self._inputs: dict[str, dict] = {}
        self._cache: dict[str, dict] = {}
        self._revision = 1
        self._stats = {n: {"computes": 0, "cutoffs": 0, "seconds": 0.0} for n in self._order}
        self.update(**inputs)

    # -- the API of a compiled DAG class -----------------------------------------------

    def nodes(self) -> list[str]:
        return list(self._public)

    def inputs(self) -> list[str]:
        return list(self._input_names)

    def schedule(self) -> list[list[str]]:
        from sray_transpiler.analyses.graph import levels

        return levels(self._dag)

    def stats(self) -> dict:
        return {n: dict(s) for n, s in self._stats.items()}

    def cal(self, name: str) -> np.ndarray:
        return self.compute([name])[name]

    def compute(self, names) -> dict:
        if isinstance(names, str):
            raise TypeError("compute() takes a list of node names")
        for n in names:
            if n not in self._public:
                known = ", ".join(f"`{k}`" for k in self._public)
                raise errors.UnknownNameError(f"`{n}` is not a node of DAG `{self._dag.name}`; its nodes are: {known}")
        stale = self._stale_ancestors(names)
        for n in self._order:
            if n in stale:
                self._bring_up_to_date(n)
        return {n: self._output(self._cache[n]["value"]) for n in names}

    def update(self, **inputs) -> None:
        batch = {}
        for name, value in inputs.items():
            if name not in self._input_names:
                known = ", ".join(f"`{k}`" for k in self._input_names)
                raise errors.UnknownNameError(f"`{name}` is not an input of DAG `{self._dag.name}`; its inputs are: {known}")
            batch[name] = self._extract(name, value)
        self._check_dims(batch)
        nxt = self._revision + 1
        changed = False
        for name, new in batch.items():
            old = self._inputs.get(name)
            if old is not None and _bitwise_equal(old["value"], new["value"]):
                continue
            changed = True
            self._inputs[name] = {**new, "changed_at": nxt}
        if changed:
            self._revision = nxt

    # -- engine ------------------------------------------------------------------------

    def _check_dims(self, batch: dict) -> None:
        """Inputs set and kept must agree on the size of every named dim (as the Rust
        engine checks); a conflict is blamed on an input of `batch`."""
        dims = {i.name: i.dims for i in self._dag.inputs}
        kept = [(n, self._inputs[n]) for n in self._input_names if n in self._inputs and n not in batch]
        bound: dict[str, tuple[int, str]] = {}
        for name, slot in kept + list(batch.items()):
            for dim, size in zip(dims[name], slot["value"].shape):
                want, by = bound.setdefault(dim, (size, name))
                if want != size:
                    raise errors.ShapeError(
                        f"input `{name}` has shape {_shape_str(slot['given'])}, expected "
                        f"({', '.join(dims[name])}) with {dim} = {want}, the size input `{by}` gives it"
                    )

    def _extract(self, name, value) -> dict:
        if not isinstance(value, np.ndarray):
            raise errors.DTypeError(
                f"input `{name}` must be a numpy float64 array, got a {type(value).__name__}; "
                "convert it with np.asarray(x, dtype=np.float64)"
            )
        if value.dtype != np.float64:
            raise errors.DTypeError(
                f"input `{name}` must be a numpy float64 array, got an array of dtype {value.dtype}; "
                "convert it with np.asarray(x, dtype=np.float64)"
            )
        if value.ndim not in (1, 2):
            raise errors.ShapeError(
                f"input `{name}` has shape {_shape_str(value.shape)}, expected a 1-D (T,) or 2-D (T, N) array"
            )
        panel = value.reshape(-1, 1) if value.ndim == 1 else value
        return {"value": np.array(panel, dtype=np.float64, copy=True), "given": value.shape}

    def _output(self, panel: np.ndarray) -> np.ndarray:
        """A read-only view of a cached value, as compiled modules return."""
        one_d = all(len(s["given"]) == 1 for s in self._inputs.values())
        view = panel[:, 0] if one_d and panel.shape[1] == 1 else panel.view()
        view.flags.writeable = False
        return view

    def _stale_ancestors(self, names) -> set[str]:
        stale, seen, stack = set(), set(), list(names)
        while stack:
            n = stack.pop()
            if n in seen:
                continue
            seen.add(n)
            cached = self._cache.get(n)
            if cached is not None and cached["verified_at"] == self._revision:
                continue
            stale.add(n)
            for r in _refs(self._nodes[n]):
                if r.kind == "node":
                    stack.append(r.name)
                elif r.name not in self._inputs:
                    raise errors.MissingInputError(
                        f"computing `{n}` needs input `{r.name}`, which has not been given; pass it as "
                        f"{self._dag.name}({r.name}=...) or .update({r.name}=...)"
                    )
        return stale

    def _slot(self, ref):
        return self._inputs[ref.name] if ref.kind == "input" else self._cache[ref.name]

    def _bring_up_to_date(self, name: str) -> None:
        node = self._nodes[name]
        cached = self._cache.get(name)
        deps = [self._slot(r) for r in _refs(node)]
        if cached is not None and all(d["changed_at"] <= cached["verified_at"] for d in deps):
            cached["verified_at"] = self._revision
            return
        start = time.perf_counter()
        values = {r.name: self._slot(r)["value"] for r in _refs(node)}
        value = evaluate_node(node, values, next(iter(values.values())).shape)
        st = self._stats[name]
        st["computes"] += 1
        st["seconds"] += time.perf_counter() - start
        if cached is not None and _bitwise_equal(cached["value"], value):
            st["cutoffs"] += 1
            cached["verified_at"] = self._revision
            return
        self._cache[name] = {"value": value, "changed_at": self._revision, "verified_at": self._revision}

    @classmethod
    def graph(cls, optimized: bool = False):
        """The DAG as Graphviz DOT text (a `str`), what `sray-gen graph FILE` prints; on
        the class or an instance. Jupyter draws it as SVG when Graphviz's `dot` is on PATH
        (else shows the text); `.svg()` and `.save("alpha.svg")` draw it too.
        `optimized=True`: the plan after the compiler's passes (`sray-gen graph --optimized`)."""
        from sray_transpiler.diagram import Dot, diagram, to_dot

        return Dot(to_dot(diagram(cls._dag, optimized=optimized)))

    def __repr__(self) -> str:
        return f"<reference {self._dag.name}: inputs {self._input_names}, nodes {self._order}>"


def _refs(node):
    from sray_transpiler.ir import refs

    return refs(node)


def _bitwise_equal(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and np.array_equal(a.view(np.uint64), b.view(np.uint64))


def evaluate_node(node, values: dict[str, np.ndarray], shape) -> np.ndarray:
    """One node's value from the values of what it reads, with numpy float64 semantics."""
    from sray_transpiler import ir
    from sray_transpiler.optable import OPS

    from . import ops

    def ev(e, env):
        match e:
            case ir.Const(value=v):
                return np.float64(v)
            case ir.Ref(name=n):
                return values[n]
            case ir.Local(name=n):
                return env[n]
            case ir.Call(op=name, args=args):
                op = OPS[name]
                fn = getattr(ops, op.python)
                return fn(*(int(a.value) if p in op.windows else ev(a, env) for p, a in zip(op.params, args)))
        raise TypeError(f"not an IR expression: {e!r}")

    env: dict[str, np.ndarray] = {}
    with np.errstate(all="ignore"):
        for b in node.body:
            env[b.name] = ev(b.value, env)
        result = ev(node.result, env)
    if np.ndim(result) == 0:  # a constant node: shaped like the first value it reads, as compiled
        result = np.broadcast_to(result, shape)
    return np.array(result, dtype=np.float64, copy=True)


def load(path: str | Path, name: str | None = None) -> type[ReferenceDag]:
    """The reference class of DAG `name` of a source file (the only one when None)."""
    from sray_transpiler import parse_checked
    from sray_transpiler.analyses.graph import topological_order

    module = parse_checked(path)
    d = module.dag(name)
    order = topological_order(d)
    d = type(d)(**{**d.__dict__, "nodes": tuple(d.node(n) for n in order)})
    return _make_class(d)


def _make_class(d) -> type[ReferenceDag]:
    namespace = {"_dag": d, "__doc__": d.doc or f"Reference engine of DAG {d.name}."}
    for node in d.public_nodes:
        def method(self, _name=node.name):
            return self.cal(_name)

        method.__name__ = node.name
        method.__doc__ = node.doc or None
        namespace[node.name] = method
    return type(d.name, (ReferenceDag,), namespace)


def dag(cls):
    """Class decorator: turns a DAG class into its reference engine.

    The class's source file is parsed (not executed), so the decorated class computes
    exactly what `sray-gen build` compiles.
    """
    source = inspect.getsourcefile(cls)
    if source is None:
        raise TypeError(f"@dag needs {cls.__name__}'s source file; define the class in a .py file")
    ref = load(source, cls.__name__)
    ref.__module__ = cls.__module__
    ref.__qualname__ = cls.__qualname__
    return ref


def evaluate(path: str | Path, dag_name: str | None, inputs: dict, outputs) -> dict:
    """Computes `outputs` of a DAG of a source file on `inputs`, in pure Python."""
    return load(path, dag_name)(**inputs).compute(list(outputs))
