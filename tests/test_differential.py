"""Differential tests, the backbone: random DAGs, compiled and run on random data with
NaN and ±inf, must agree with the reference engine per docs/ops.md.

The DAGs are drawn once from a fixed seed and compiled together into one module (one
cargo build); hypothesis then draws the data and the DAG to run."""

from __future__ import annotations

import dataclasses
import functools
import itertools
import random
import re
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from conftest import assert_agree
import serverless_ray.ops
from serverless_ray import load
from sray_transpiler.optable import OPS

N_DAGS = 12
INPUTS = ["x", "y", "z"]

_BINARY = ["+", "-", "*", "/", "**", "<", "<=", ">", ">=", "==", "!=", "&", "|"]
_CALLS = {  # spelling -> arity; every callable elementwise op, in each accepted spelling
    "where": 3, "np.where": 3, "abs": 1, "np.abs": 1, "np.log": 1, "log": 1, "np.exp": 1, "ops.exp": 1,
    "np.sqrt": 1, "sign": 1, "np.minimum": 2, "maximum": 2, "np.maximum": 2, "minimum": 2, "signedpower": 2,
}


def test_the_generator_covers_every_elementwise_op():
    spelled = {s.split(".")[-1] for s in _CALLS} | {"absolute"}
    for op in OPS.values():
        assert op.kind != "elementwise" or op.symbol in _BINARY + ["-", "~"] or op.name in spelled, op.name


def _expr(rng: random.Random, names: list[str], depth: int, bare: bool) -> str:
    if depth == 0 or rng.random() < 0.25:
        if rng.random() < 0.2:
            return rng.choice(["0", "1", "2", "0.5", "-1.5", "3", "np.nan", "np.inf"])
        name = rng.choice(names)
        return name if bare and rng.random() < 0.5 else f"self.{name}"
    kind = rng.random()
    if kind < 0.5:
        return f"({_expr(rng, names, depth - 1, bare)} {rng.choice(_BINARY)} {_expr(rng, names, depth - 1, bare)})"
    if kind < 0.6:
        return f"{rng.choice(['-', '~'])}{_expr(rng, names, depth - 1, bare)}"
    fn = rng.choice(sorted(_CALLS))
    args = ", ".join(_expr(rng, names, depth - 1, bare) for _ in range(_CALLS[fn]))
    return f"{fn}({args})"


def random_dag_source(seed: int = 20261129) -> str:
    """The elementwise DAGs `R0..`, then the window / cross-section DAGs `W0..`: one file,
    one module, one cargo build."""
    rng = random.Random(seed)
    lines = ["import numpy as np", "from serverless_ray import Input, dag, ops", ""]
    for d in range(N_DAGS):
        lines += ["", "@dag", f"class R{d}:"] + [f"    {i}: Input" for i in INPUTS]
        nodes: list[str] = []
        for k in range(rng.randint(2, 7)):
            visible = INPUTS + nodes
            body = []
            if rng.random() < 0.4:
                body.append(f"        t = {_expr(rng, visible, 2, bare=True)}")
                visible = visible + ["t"]
            result = _expr(rng, visible, 3, bare=True)
            if not re.search(r"\b(" + "|".join(visible) + r")\b", result):
                result += f" + 0 * self.{rng.choice(INPUTS + nodes)}"  # every node must read something
            body.append(f"        return {result}".replace("self.t", "t"))
            lines += [f"    def n{k}(self):"] + body
            nodes.append(f"n{k}")
    for d, dag_ in enumerate(window_dags()):
        lines += ["", "@dag", f"class W{d}:"] + [f"    {i}: Input" for i in W_INPUTS]
        for node in dag_:
            lines += [f"    def {node.name}(self):", f"        return {node.body}"]
    return "\n".join(lines) + "\n"


# -- window, cross-section and `where` DAGs ------------------------------------------------
#
# Each node of a `W` DAG is one window or cross-sectional op applied to names or small
# elementwise expressions of them, a `where`, or elementwise code over earlier nodes. A
# node is checked against the reference applied to the *compiled* values of its parents
# (a one-node DAG whose inputs are those parents), so that a 1-ulp difference upstream
# (running sums) does not become a different `rank` downstream; and end to end, against
# the reference engine run from the inputs, where no order-sensitive op (ranks, argmin,
# comparisons, `where`, division...) reads a value that running sums may have rounded
# differently.

N_WINDOW_DAGS = 16
W_INPUTS = ["x", "y", "z", "g"]  # g: group labels, for indneutralize
DATA = ["x", "y", "z"]
WINDOWS = [1, 2, 3, 5, 16, 17, 33, 65, 120]  # both sides of the kernels' 16 and 64 switches
TS_OPS = [op.name for op in OPS.values() if op.kind == "timeseries"]
CS_OPS = [op.name for op in OPS.values() if op.kind == "crosssection"]
# Ops whose compiled value may differ from numpy's in the last bits (running sums,
# compensated row sums, libm): their outputs are "noisy".
INEXACT = {"ts_sum", "ts_mean", "ts_std", "covariance", "correlation", "decay_linear", "ts_product", "scale",
           "demean", "zscore", "indneutralize", "log", "exp", "sqrt", "**", "signedpower", "/"}
# Ops that can turn a last-bit difference of their input into a large one.
SENSITIVE = {"rank", "ts_rank", "ts_argmin", "ts_argmax", "where", "<", ">", "==", "!=", "sign", "&", "|", "~",
             "/", "log", "sqrt", "**", "signedpower", "exp", "correlation", "zscore", "scale", "ts_min", "ts_max"}


@dataclasses.dataclass
class WNode:
    name: str
    body: str
    op: str | None  # the window or row op at the top of the body, else None
    args: list[str]  # its array arguments (expressions)
    d: int | None
    parents: list[str]
    noisy: bool = False
    end_to_end: bool = True


def _tokens(text: str) -> set[str]:
    return set(re.findall(r"[A-Za-z_]\w*|\*\*|[<>=!]=?|[&|~/]", text))


def _arg(rng: random.Random, names: list[str]) -> str:
    """A name, or a small elementwise expression reading at least one name."""
    if rng.random() < 0.6:
        return rng.choice(names)
    while True:
        e = _expr(rng, names, 1, bare=True).replace("self.", "")
        if re.search(r"\b(" + "|".join(names) + r")\b", e):
            return e


def window_dags(seed: int = 20261203) -> list[list[WNode]]:
    rng = random.Random(seed)
    # Ops are taken in turn from shuffled cycles, so that every op is generated.
    ts_cycle = itertools.cycle(rng.sample(TS_OPS, len(TS_OPS)))
    cs_cycle = itertools.cycle(rng.sample(CS_OPS, len(CS_OPS)))
    dags = []
    for _ in range(N_WINDOW_DAGS):
        nodes: list[WNode] = []
        for k in range(rng.randint(3, 7)):
            visible = DATA + [n.name for n in nodes]
            kind = rng.random()
            op, args, d = None, [], None
            if kind < 0.45:
                op = next(ts_cycle)
                d = rng.choice(WINDOWS)
                args = [_arg(rng, visible) for _ in OPS[op].panel_params]
                spelled = op if rng.random() < 0.7 else f"ops.{op}"
                body = f"{spelled}({', '.join(args)}, {d})"
            elif kind < 0.65:
                op = next(cs_cycle)
                args = [_arg(rng, visible)]
                if op == "indneutralize":
                    body = f"indneutralize({args[0]}, g)"
                elif op == "scale" and rng.random() < 0.5:
                    body = f"scale({args[0]}, a={rng.choice(['-2', '0.5', '3'])})"
                else:
                    body = f"{op}({args[0]})"
            elif kind < 0.8:
                a, b = rng.choice(visible), rng.choice(visible + ["0", "1", "np.nan"])
                cmp = rng.choice(["<", "<=", ">", ">=", "==", "!="])
                body = f"where({a} {cmp} {b}, {_arg(rng, visible)}, {_arg(rng, visible)})"
            else:
                body = _arg(rng, visible) if rng.random() < 0.3 else _expr(rng, visible, 2, bare=True).replace("self.", "")
                if not re.search(r"\b(" + "|".join(visible) + r")\b", body):
                    body = f"{body} + 0 * {rng.choice(visible)}"
            parents = sorted(_tokens(body) & set(visible))
            node = WNode(f"n{k}", body, op, args, d, parents)
            by_name = {n.name: n for n in nodes}
            upstream_noisy = any(by_name[p].noisy for p in parents if p in by_name)
            tokens = _tokens(body)
            node.noisy = upstream_noisy or bool(tokens & INEXACT)
            node.end_to_end = all(by_name[p].end_to_end for p in parents if p in by_name) and not (
                upstream_noisy and tokens & SENSITIVE)
            nodes.append(node)
        dags.append(nodes)
    return dags


def test_the_window_generator_covers_every_window_and_row_op_and_both_kernel_paths():
    dags = window_dags()
    used = {n.op for dag_ in dags for n in dag_}
    assert set(TS_OPS) | set(CS_OPS) <= used, sorted((set(TS_OPS) | set(CS_OPS)) - used)
    windows = {n.d for dag_ in dags for n in dag_ if n.d}
    assert {w for w in windows if w > 16} and {w for w in windows if w > 64} and {w for w in windows if w <= 16}
    assert any("where(" in n.body for dag_ in dags for n in dag_)
    # Some nodes are checked end to end, and some DAGs chain window ops.
    assert sum(n.end_to_end for dag_ in dags for n in dag_) >= 20
    assert any(n.op and any(a in {m.name for m in dag_} for a in _tokens(" ".join(n.args))) for dag_ in dags for n in dag_)


def _one_node_sources(dags: list[list[WNode]]) -> list[str]:
    """Per W DAG, a file of one-node DAGs: `W<i>_<node>` with the node's parents as inputs,
    its body as `value`, and its op's array arguments as `arg0`, `arg1`."""
    sources = []
    for i, dag_ in enumerate(dags):
        lines = ["import numpy as np", "from serverless_ray import Input, dag, ops", ""]
        for node in dag_:
            lines += ["", "@dag", f"class W{i}_{node.name}:"]
            lines += [f"    {p}: Input" for p in W_INPUTS + [n.name for n in dag_[: int(node.name[1:])]]]
            lines += ["    def value(self):", f"        return {node.body}"]
            for j, a in enumerate(node.args):
                lines += [f"    def arg{j}(self):", f"        return ({a}) + 0.0"]
        sources.append("\n".join(lines) + "\n")
    return sources


@pytest.fixture(scope="module")
def random_dags(compiled, tmp_path_factory):
    path = tmp_path_factory.mktemp("random") / "random_dags.py"
    path.write_text(random_dag_source())
    return path, compiled(path)


@pytest.fixture(scope="module")
def one_node_dags(random_dags):
    """(i, node name) -> the reference class of `W<i>_<node>` (see _one_node_sources)."""
    path, _ = random_dags
    classes = {}
    for i, (dag_, source) in enumerate(zip(window_dags(), _one_node_sources(window_dags()))):
        file = path.parent / f"one_node_{i}.py"
        file.write_text(source)
        for node in dag_:
            classes[i, node.name] = load(file, f"W{i}_{node.name}")
    return classes


_values = st.one_of(
    st.floats(-1e3, 1e3),
    st.sampled_from([0.0, -0.0, 1.0, -1.0, 2.0, np.nan, np.inf, -np.inf]),
)


@st.composite
def _case(draw):
    t, n = draw(st.integers(1, 6)), draw(st.integers(1, 5))
    dag = draw(st.integers(0, N_DAGS - 1))
    data = {name: draw(arrays(np.float64, (t, n), elements=_values)) for name in INPUTS}
    return dag, data


@given(_case())
def test_compiled_random_dags_agree_with_the_reference(random_dags, case):
    path, module = random_dags
    index, data = case
    compiled_dag = getattr(module, f"R{index}")(**data)
    reference = _load(path, f"R{index}")(**data)
    names = compiled_dag.nodes()
    got = compiled_dag.compute(names)
    want = reference.compute(names)
    for name in names:
        assert_agree(got[name], want[name])


def _assert_update_is_a_fresh_compute(cls, data: dict, changed: str) -> None:
    """After computing every node, `update` of one input (flipped in time) gives the bits
    a fresh object on the new inputs computes."""
    dag = cls(**data)
    names = dag.nodes()
    dag.compute(names)
    new = {changed: np.flipud(data[changed]).copy()}
    dag.update(**new)
    fresh = cls(**{**data, **new}).compute(names)
    got = dag.compute(names)
    for name in names:
        np.testing.assert_array_equal(got[name], fresh[name])


@given(_case(), st.sampled_from(INPUTS))
def test_incremental_updates_agree_with_a_fresh_compute(random_dags, case, changed):
    _, module = random_dags
    index, data = case
    _assert_update_is_a_fresh_compute(getattr(module, f"R{index}"), data, changed)


# -- data for the W DAGs: NaN, ±inf, ties, constant stretches, price levels ----------------


def _column_block(rng: np.random.Generator, kind: str, t: int, n: int) -> np.ndarray:
    if kind == "normal":
        return rng.standard_normal((t, n)) * rng.choice([1.0, 50.0])
    if kind == "ties":
        return rng.integers(-1, 2, (t, n)).astype(float)
    if kind == "flat":  # constant stretches, some longer than the longest window
        run = int(rng.choice([3, 20, 70]))
        return np.repeat(rng.integers(-2, 3, (t // run + 1, n)).astype(float), run, axis=0)[:t]
    if kind == "level":
        return 1e4 + np.cumsum(rng.standard_normal((t, n)), axis=0)
    raise KeyError(kind)


@st.composite
def _window_case(draw):
    t = draw(st.sampled_from([1, 3, 8, 20, 40, 70, 90, 130]))
    n = draw(st.integers(1, 6))
    dag = draw(st.integers(0, N_WINDOW_DAGS - 1))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    nan_rate, inf_rate = draw(st.sampled_from([0.0, 0.01, 0.1])), draw(st.sampled_from([0.0, 0.0, 0.01]))
    data = {}
    for name in DATA:
        a = _column_block(rng, draw(st.sampled_from(["normal", "ties", "flat", "level"])), t, n)
        a[rng.random((t, n)) < nan_rate] = np.nan
        a[rng.random((t, n)) < inf_rate / 2] = np.inf
        a[rng.random((t, n)) < inf_rate / 2] = -np.inf
        data[name] = a
    labels = rng.integers(0, 3, n).astype(float)
    if draw(st.booleans()):
        labels[rng.random(n) < 0.2] = np.nan
    data["g"] = np.broadcast_to(labels, (t, n)).copy()
    return dag, data


@functools.lru_cache(maxsize=None)
def _load(path, name):
    """The reference class `name` of a DAG file, parsed once."""
    return load(path, name)


def _ref(op: str):
    return getattr(serverless_ray.ops, OPS[op].python)


def _tolerance(node: WNode, want: np.ndarray, args: list[np.ndarray]) -> np.ndarray:
    """Per cell, how far the compiled value of `node` may be from the reference applied to
    the same parent values: the rounding a running sum or a compensated row sum may make,
    scaled by the magnitudes it sums (exact ops: 1e-9 relative, as the elementwise DAGs)."""
    eps = 1e-12
    base = 1e-9 * np.abs(want) + 1e-12
    a = args[0] if args else None
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if node.op in ("ts_sum", "ts_mean", "decay_linear"):
            extra = eps * _ref("ts_sum")(np.abs(a), node.d)
        elif node.op == "ts_product":
            extra = 4 * node.d * 2.2e-16 * np.abs(want)
        elif node.op in ("ts_std", "covariance", "correlation"):
            b = args[-1]
            mean_a, mean_b = _ref("ts_mean")(np.abs(a), node.d), _ref("ts_mean")(np.abs(b), node.d)
            std_a, std_b = _ref("ts_std")(a, node.d), _ref("ts_std")(b, node.d)
            if node.op == "ts_std":
                extra = 1e-8 * std_a + eps * mean_a
            elif node.op == "covariance":
                extra = 1e-8 * std_a * std_b + eps * mean_a * mean_b
            else:  # a relative error of the co-moments over the spread of the windows
                extra = 1e-8 + eps * (mean_a / std_a) * (mean_b / std_b)
        elif node.op in ("scale", "demean", "zscore", "indneutralize"):
            row = np.nanmax(np.where(np.isfinite(a), np.abs(a), np.nan), axis=1, keepdims=True)
            extra = eps * a.shape[1] * row
            if node.op == "scale":
                extra = extra / np.nansum(np.abs(a), axis=1, keepdims=True) * 3
            elif node.op == "zscore":
                extra = extra / np.nanstd(a, axis=1, ddof=1, keepdims=True)
        else:
            extra = 0.0
    tol = base + extra
    return np.where(np.isfinite(tol), tol, 0.0)


def _assert_within(got, want, tol, what):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    same = (np.isnan(got) & np.isnan(want)) | (np.isinf(want) & (got == want))
    with np.errstate(invalid="ignore"):
        ok = np.where(np.isfinite(want), np.abs(got - want) <= tol, same)
    bad = np.argwhere(~ok)
    assert bad.size == 0, (f"{what}: {len(bad)} cells differ, first at {bad[:3].tolist()}: got "
                           f"{[got[tuple(b)] for b in bad[:3]]}, want {[want[tuple(b)] for b in bad[:3]]}")


@given(_window_case())
def test_window_and_row_dags_agree_node_by_node_and_end_to_end(random_dags, one_node_dags, case):
    path, module = random_dags
    index, data = case
    nodes = window_dags()[index]
    compiled_dag = getattr(module, f"W{index}")(**data)
    names = [n.name for n in nodes]
    got = compiled_dag.compute(names)
    for node in nodes:
        parents = {**data, **{n.name: got[n.name] for n in nodes[: int(node.name[1:])]}}
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            reference = one_node_dags[index, node.name](**parents)
            out = reference.compute(["value"] + [f"arg{j}" for j in range(len(node.args))])
        args = [out[f"arg{j}"] for j in range(len(node.args))]
        value, mine = out["value"], got[node.name]
        _assert_within(mine, value, _tolerance(node, value, args),
                       f"W{index}.{node.name} = {node.body} (from the compiled parents)")
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        want = _load(path, f"W{index}")(**data).compute(names)
    for node in nodes:
        if node.end_to_end:
            w, mine = want[node.name], got[node.name]
            finite = np.abs(w[np.isfinite(w)])
            tol = 1e-7 * np.abs(w) + 1e-9 * (finite.max() if finite.size else 0.0)
            _assert_within(mine, w, np.where(np.isfinite(tol), tol, 0.0),
                           f"W{index}.{node.name} = {node.body} (end to end)")


@given(_window_case(), st.sampled_from(DATA))
def test_window_dags_update_incrementally_to_the_bits_of_a_fresh_compute(random_dags, case, changed):
    _, module = random_dags
    index, data = case
    _assert_update_is_a_fresh_compute(getattr(module, f"W{index}"), data, changed)
