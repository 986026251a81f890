"""The reference engine: a DAG evaluated in pure Python/numpy, from the same source
semantics as the compiler (the same frontend, the same op table).

It is the oracle of the differential tests, and lets a user run and debug a DAG without
compiling it. Its API is that of a compiled module's class:

    Alpha = load("alpha.py", "Alpha")        # or: decorate the class with @dag
    a = Alpha(open=o, close=c)
    a.f3(); a.cal("f3"); a.compute(["f1", "f3"]); a.update(open=o2); a.stats()

Like the Rust engine it is lazy and incremental (verifying traces with early cutoff; see
runtime-rs/src/engine.rs), so `stats()` counts the same recomputations. It streams too:

    a = Alpha(keep=250, open=o, close=c)     # keep=: a bounded stream (optional)
    a.append(open=o_row, close=c_row)        # a new row of every time-indexed input
    a.compute(["f3"], last=1); a.lookback("f3"); a.stats()["f3"]["rows"]

After an append a node whose dependencies only grew is evaluated on their last rows only
(its new rows and the `lookback` rows before them; sray_transpiler.analyses.lookback) and
keeps just its new rows, so the oracle checks the lookback analysis as well.
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
    """Base class of reference DAGs; `load` and `@dag` make one subclass per DAG.

    `Cls(*, keep=None, **inputs)`: `keep=ROWS` makes a bounded stream (see `append`)."""

    _dag = None  # the sray_transpiler IR of the DAG, set on subclasses

    def __init__(self, *, keep: int | None = None, **inputs):
        d = self._dag
        self._order = [n.name for n in d.nodes]  # topological: see `load`
        self._public = [n.name for n in d.nodes if not n.private]
        self._nodes = {n.name: n for n in d.nodes}
        self._input_names = [i.name for i in d.inputs]
        # A slot (an input's or a node's value) holds its stored rows `value`, the absolute
        # index `first` of its first stored row (0 unless `keep=` dropped older rows), the
        # revision at which it last changed (`changed_at`: grown by an append or replaced)
        # and at which it was last replaced (`replaced_at`: by update(), or recomputed
        # whole); a node's slot also holds `verified_at`, the revision it is known current at.
        self._inputs: dict[str, dict] = {}
        self._cache: dict[str, dict] = {}
        self._revision = 1
        self._stats = {n: {"computes": 0, "cutoffs": 0, "seconds": 0.0, "rows": 0} for n in self._order}
        self._analysis = None  # (lookbacks, max_lookback, time_inputs), computed when first needed
        if keep is not None:
            if isinstance(keep, bool) or not isinstance(keep, (int, np.integer)) or keep < 1:
                raise ValueError(f"keep= must be an int >= 1 (rows to keep), got {keep!r}")
            keep = int(keep)
            from sray_transpiler.analyses.lookback import append_blocker

            blocker = append_blocker(d)
            if blocker is not None:
                raise ValueError(f"keep= needs a DAG rows can be appended to, and DAG `{d.name}` is not one: {blocker}")
        self._keep = keep
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
        """Per node: `computes` (kernel runs), `cutoffs` (runs whose result was unchanged),
        `seconds`, and `rows` (rows kept from its runs: all T for a whole run, the new rows
        for a run after an append)."""
        return {n: dict(s) for n, s in self._stats.items()}

    def lookback(self, name: str) -> int:
        """Rows of the DAG's inputs before a row of node `name` that the row depends on."""
        self._check_public(name)
        return self._lookbacks()[name].total

    def cal(self, name: str) -> np.ndarray:
        return self.compute([name])[name]

    def compute(self, names, last: int | None = None) -> dict:
        """The values of nodes `names`; `last=k`: only the last k rows of each
        time-indexed node (all of a node that is not time-indexed)."""
        if isinstance(names, str):
            raise TypeError("compute() takes a list of node names")
        if last is not None:
            if isinstance(last, bool) or not isinstance(last, (int, np.integer)):
                raise TypeError(f"last= must be an int (rows), got a {type(last).__name__}")
            if last < 0:
                raise ValueError(f"last= must be >= 0, got {last}")
        for n in names:
            self._check_public(n)
        stale = self._stale_ancestors(names)
        for n in self._order:
            if n in stale:
                self._bring_up_to_date(n)
        return {n: self._output(n, last) for n in names}

    def update(self, **inputs) -> None:
        """Replaces inputs whole (a time-indexed input: its whole series, all T rows)."""
        batch = {}
        for name, value in inputs.items():
            self._check_input_name(name)
            batch[name] = self._extract(name, value)
        self._check_dims(batch)
        nxt = self._revision + 1
        changed = False
        for name, new in batch.items():
            new = self._trimmed_input(name, new)
            old = self._inputs.get(name)
            if old is not None and old["first"] == new["first"] and _bitwise_equal(old["value"], new["value"]):
                continue
            changed = True
            self._inputs[name] = {**new, "changed_at": nxt, "replaced_at": nxt}
        if changed:
            self._revision = nxt

    def append(self, **rows) -> None:
        """Appends rows to every time-indexed input at once: each (k, N), or (N,) for one
        row; (k,) or a scalar for an input given 1-D. Nodes then compute only their new
        rows (reading `lookback` earlier rows). With `keep=ROWS`, inputs keep their last
        ROWS + (the DAG's largest lookback) rows and older rows are gone."""
        from sray_transpiler.analyses.lookback import append_blocker

        d = self._dag
        blocker = append_blocker(d)
        if blocker is not None:
            raise errors.ShapeError(f"rows cannot be appended to DAG `{d.name}`: {blocker}; use update()")
        timed = self._time_inputs()
        for name in rows:
            self._check_input_name(name)
        for name in rows:
            if name not in timed:
                dims = _input_dims(d, name)
                raise errors.ShapeError(
                    f"input `{name}` {dims} is not indexed by time (its row dim is not T), so it "
                    f"cannot be appended: replace it with update({name}=...)"
                )
        missing = [n for n in timed if n not in rows]
        if missing:
            shown = ", ".join(f"`{n}`" for n in missing)
            raise errors.MissingInputError(
                f"append() needs every time-indexed input of DAG `{d.name}` at once; missing {shown}: "
                f"pass {', '.join(f'{n}=...' for n in missing)} too"
            )
        held = [n for n in timed if n in self._inputs]
        if held and len(held) != len(timed):
            absent = next(n for n in timed if n not in self._inputs)
            raise errors.MissingInputError(
                f"input `{absent}` has not been given while `{held[0]}` holds {self._end(self._inputs[held[0]])} "
                f"rows, so rows cannot be appended to it; give it whole first with update({absent}=...)"
            )
        new = {name: self._append_rows(name, rows[name]) for name in timed}
        ks = {name: v.shape[0] for name, v in new.items()}
        if len(set(ks.values())) != 1:
            shown = ", ".join(f"`{n}` {k}" for n, k in ks.items())
            raise errors.ShapeError(f"append() needs as many rows of every input; got {shown}")
        if held:
            for name, v in new.items():
                stored = self._inputs[name]["value"]
                if v.shape[1] != stored.shape[1]:
                    raise errors.ShapeError(
                        f"input `{name}` holds {stored.shape[1]} columns, and the rows appended to it have "
                        f"{v.shape[1]}; append rows of shape (k, {stored.shape[1]})"
                    )
        else:
            self._check_dims({
                name: {"value": v, "first": 0, "given": _given(v, rows[name], None)} for name, v in new.items()
            })
        nxt = self._revision + 1
        for name, v in new.items():
            old = self._inputs.get(name)
            if old is None:
                self._inputs[name] = {"value": v, "first": 0, "given": _given(v, rows[name], None),
                                      "changed_at": nxt, "replaced_at": nxt}
            else:
                value = np.concatenate([old["value"], v])
                self._inputs[name] = {**old, "value": value, "given": _given(value, None, old["given"]),
                                      "changed_at": nxt}
        self._revision = nxt
        self._trim_inputs()

    # -- engine ------------------------------------------------------------------------

    def _check_public(self, n: str) -> None:
        if n not in self._public:
            known = ", ".join(f"`{k}`" for k in self._public)
            raise errors.UnknownNameError(f"`{n}` is not a node of DAG `{self._dag.name}`; its nodes are: {known}")

    def _check_input_name(self, name: str) -> None:
        if name not in self._input_names:
            known = ", ".join(f"`{k}`" for k in self._input_names)
            raise errors.UnknownNameError(f"`{name}` is not an input of DAG `{self._dag.name}`; its inputs are: {known}")

    def _lookbacks(self):
        return self._analyze()[0]

    def _time_inputs(self) -> list[str]:
        return self._analyze()[2]

    def _analyze(self):
        if self._analysis is None:
            from sray_transpiler.analyses.lookback import lookbacks, max_lookback, time_inputs

            self._analysis = (lookbacks(self._dag), max_lookback(self._dag), time_inputs(self._dag))
        return self._analysis

    @staticmethod
    def _end(slot) -> int:
        """The absolute index after a slot's last row."""
        return slot["first"] + slot["value"].shape[0]

    def _check_dims(self, batch: dict) -> None:
        """Inputs set and kept must agree on the size of every named dim (as the Rust
        engine checks; a time-indexed input's rows count from the start of its series,
        dropped rows too); a conflict is blamed on an input of `batch`."""
        dims = {i.name: i.dims for i in self._dag.inputs}
        kept = [(n, self._inputs[n]) for n in self._input_names if n in self._inputs and n not in batch]
        bound: dict[str, tuple[int, str]] = {}
        for name, slot in kept + list(batch.items()):
            shape = (self._end(slot), *slot["value"].shape[1:])
            for dim, size in zip(dims[name], shape):
                want, by = bound.setdefault(dim, (size, name))
                if want != size:
                    raise errors.ShapeError(
                        f"input `{name}` has shape {_shape_str(slot['given'])}, expected "
                        f"({', '.join(dims[name])}) with {dim} = {want}, the size input `{by}` gives it"
                    )

    def _extract(self, name, value) -> dict:
        _check_dtype(name, value)
        if value.ndim not in (1, 2):
            raise errors.ShapeError(
                f"input `{name}` has shape {_shape_str(value.shape)}, expected a 1-D (T,) or 2-D (T, N) array"
            )
        panel = value.reshape(-1, 1) if value.ndim == 1 else value
        return {"value": np.array(panel, dtype=np.float64, copy=True), "given": value.shape, "first": 0}

    def _append_rows(self, name, value) -> np.ndarray:
        """Rows given to append() for input `name`, as a (k, N) float64 panel."""
        if isinstance(value, float):  # a Python float or a numpy float64 scalar
            value = np.asarray(value, dtype=np.float64)
        _check_dtype(name, value)
        slot = self._inputs.get(name)
        one_d = len(slot["given"]) == 1 if slot is not None else value.ndim < 2
        if one_d:
            if value.ndim > 1:
                raise errors.ShapeError(
                    f"input `{name}` is 1-D: append rows to it as a 1-D (k,) array or a scalar, "
                    f"got shape {_shape_str(value.shape)}"
                )
            rows = value.reshape(-1, 1)
        elif value.ndim == 1:
            n = slot["value"].shape[1]
            if value.shape[0] != n:
                raise errors.ShapeError(
                    f"input `{name}` holds {n} columns: one row appended to it has shape ({n},), "
                    f"got {_shape_str(value.shape)}; append k rows as a (k, {n}) array"
                )
            rows = value.reshape(1, -1)
        elif value.ndim == 2:
            rows = value
        else:
            raise errors.ShapeError(
                f"rows appended to input `{name}` have shape {_shape_str(value.shape)}, expected a 2-D (k, N) "
                "array, or (N,) for one row"
            )
        if rows.shape[0] == 0:
            raise errors.ShapeError(f"append() got no rows for input `{name}` (shape {_shape_str(value.shape)}); "
                                    "append at least one row")
        return np.array(rows, dtype=np.float64, copy=True)

    def _trimmed_input(self, name: str, slot: dict) -> dict:
        """`slot` without the rows `keep=` drops (a time-indexed input keeps its last
        ROWS + L rows, L the DAG's largest lookback, so that every node's last ROWS rows
        are exact)."""
        if self._keep is None or name not in self._time_inputs():
            return slot
        return _trimmed(slot, self._end(slot) - (self._keep + self._analyze()[1]))

    def _trim_inputs(self) -> None:
        if self._keep is None:
            return
        for name in self._time_inputs():
            if name in self._inputs:
                self._inputs[name] = self._trimmed_input(name, self._inputs[name])

    def _output(self, name: str, last: int | None) -> np.ndarray:
        """A read-only view of a node's value, as compiled modules return: its last
        min(T, ROWS) rows under `keep=ROWS`, its last `last` rows of those."""
        slot = self._cache[name]
        panel = slot["value"]
        if (self._keep is not None or last is not None) and self._lookbacks()[name].timed:
            rows = panel.shape[0]
            if self._keep is not None:
                rows = min(rows, self._keep)
            if last is not None:
                rows = min(rows, last)
            panel = panel[panel.shape[0] - rows:]
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
        deps = {r.name: self._slot(r) for r in _refs(node)}
        if cached is not None and all(d["changed_at"] <= cached["verified_at"] for d in deps.values()):
            cached["verified_at"] = self._revision
            return
        start = time.perf_counter()
        st = self._stats[name]
        grown = cached is not None and all(d["replaced_at"] <= cached["verified_at"] for d in deps.values())
        if grown and self._lookbacks()[name].timed:
            # Its dependencies only grew (appends): compute the new rows only.
            value, first, rows = self._new_rows(name, deps, cached)
            slot = {"value": value, "first": first, "changed_at": self._revision,
                    "replaced_at": cached["replaced_at"], "verified_at": self._revision}
        else:
            value, first = self._whole(name, deps)
            rows = value.shape[0]
            if cached is not None and cached["first"] == first and _bitwise_equal(cached["value"], value):
                st["computes"] += 1
                st["rows"] += rows
                st["cutoffs"] += 1
                st["seconds"] += time.perf_counter() - start
                cached["verified_at"] = self._revision
                return
            slot = {"value": value, "first": first, "changed_at": self._revision,
                    "replaced_at": self._revision, "verified_at": self._revision}
        if self._keep is not None and self._lookbacks()[name].timed:
            # What is computable exactly from the inputs' kept rows (see _trimmed_input).
            _, most, _ = self._analyze()
            slot = _trimmed(slot, self._end(slot) - (self._keep + most) + self._lookbacks()[name].total)
        st["computes"] += 1
        st["rows"] += rows
        st["seconds"] += time.perf_counter() - start
        self._cache[name] = slot

    def _whole(self, name: str, deps: dict) -> tuple[np.ndarray, int]:
        """(value, absolute index of its first row) of a node computed on all the rows
        its dependencies hold."""
        node = self._nodes[name]
        if all(d["first"] == 0 for d in deps.values()) or not self._lookbacks()[name].reads:
            values = {n: d["value"] for n, d in deps.items()}
            return evaluate_node(node, values, next(iter(values.values())).shape), 0
        # keep= dropped rows of a time-indexed dependency: rows start where the first one does.
        lb = self._lookbacks()[name]
        start = min(deps[n]["first"] for n in lb.reads)
        value, exact = self._rows_from(name, deps, start)
        return np.array(value[exact - start:]), exact

    def _new_rows(self, name: str, deps: dict, cached: dict) -> tuple[np.ndarray, int, int]:
        """(value, first, rows computed) of a time-indexed node whose dependencies only
        grew since `cached`: the node is evaluated on its dependencies' rows from
        (its end - its local lookback) on, and only its new rows are kept."""
        lb = self._lookbacks()[name]
        end = self._end(cached)
        start = max(end - lb.local, min(deps[n]["first"] for n in lb.reads))
        value, exact = self._rows_from(name, deps, start)
        total_end = start + value.shape[0]
        if exact <= end:
            new = value[end - start:]
            return np.concatenate([cached["value"], new]), cached["first"], new.shape[0]
        # keep= dropped the rows it needed: its older rows cannot be continued.
        return np.array(value[exact - start:]), exact, total_end - exact

    def _rows_from(self, name: str, deps: dict, start: int) -> tuple[np.ndarray, int]:
        """A node evaluated on its time-indexed dependencies' rows from absolute row
        `start` on (rows a dependency no longer holds are NaN), the others whole; and the
        first row of the result that is exact (equal to a run on whole series): row t
        reads rows [t - reads[dep], t] of each dependency."""
        lb = self._lookbacks()[name]
        values, exact = {}, start
        for n, d in deps.items():
            v = d["value"]
            if n in lb.reads:
                if d["first"] > start:
                    v = np.concatenate([np.full((d["first"] - start, v.shape[1]), np.nan), v])
                else:
                    v = v[start - d["first"]:]
                held = max(start, d["first"])
                if held > 0:
                    exact = max(exact, held + lb.reads[n])
            values[n] = v
        value = evaluate_node(self._nodes[name], values, next(iter(values.values())).shape)
        return value, min(exact, start + value.shape[0])

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


def _check_dtype(name, value) -> None:
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


def _given(value: np.ndarray, appended, before) -> tuple:
    """The shape an input reads as in messages and outputs (1-D or 2-D), after rows were
    appended to it (`before`: its shape until then; `appended`: the rows given when an
    append starts the series)."""
    one_d = len(before) == 1 if before is not None else np.ndim(appended) < 2
    return (value.shape[0],) if one_d else value.shape


def _trimmed(slot: dict, first: int) -> dict:
    """`slot` without its rows before absolute row `first` (a copy, so that the dropped
    rows are freed)."""
    if first <= slot["first"]:
        return slot
    return {**slot, "value": np.array(slot["value"][first - slot["first"]:]), "first": first}


def _input_dims(d, name: str) -> str:
    from sray_transpiler.ir import dims_str

    return dims_str(next(i.dims for i in d.inputs if i.name == name))


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
