"""Differential tests, the backbone: random DAGs, compiled and run on random data with
NaN and ±inf, must agree with the reference engine per shared/OPS.md.

The DAGs are drawn once from a fixed seed and compiled together into one module (one
cargo build); hypothesis then draws the data and the DAG to run."""

from __future__ import annotations

import random
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from conftest import assert_agree
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
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def random_dags(compiled, tmp_path_factory):
    path = tmp_path_factory.mktemp("random") / "random_dags.py"
    path.write_text(random_dag_source())
    return path, compiled(path)


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
    reference = load(path, f"R{index}")(**data)
    names = compiled_dag.nodes()
    got = compiled_dag.compute(names)
    want = reference.compute(names)
    for name in names:
        assert_agree(got[name], want[name])


@given(_case(), st.sampled_from(INPUTS))
def test_incremental_updates_agree_with_a_fresh_compute(random_dags, case, changed):
    path, module = random_dags
    index, data = case
    dag = getattr(module, f"R{index}")(**data)
    names = dag.nodes()
    dag.compute(names)
    new = {changed: np.flipud(data[changed]).copy()}
    dag.update(**new)
    fresh = getattr(module, f"R{index}")(**{**data, **new}).compute(names)
    got = dag.compute(names)
    for name in names:
        np.testing.assert_array_equal(got[name], fresh[name])
