"""Row-local determinism of compiled DAGs (docs/ops.md): the value of a node at row t is a
bit-exact function of its inputs' rows [t - lookback, t], lookback being the compiler's
total lookback of the node (sray_transpiler.analyses.lookback).

So a DAG computed on a panel and on the same panel minus its first k rows gives the same
bits (NaN == NaN, -0.0 != 0.0) in every row from k + lookback on: whatever the kernels do
(running sums re-anchored, blocks of rows, threads), where a computation starts must not
reach the bits of a row that has its whole window. A last-bit difference matters: a later
`rank` or `ts_argmax` turns it into a large one, and appending rows (issue 10) rests on it.

The DAGs are drawn once from a fixed seed (every window op with short and long windows up
to 250, nested in row ops and elementwise code) and built into one module with a few
fixed DAGs for the regression tests (the kernels that were not row-local; NaNs of both
signs meeting in `+` and `*`); hypothesis draws the DAG, the data and k.
"""

from __future__ import annotations

import dataclasses
import itertools
import random

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sray_transpiler import ir, parse_checked
from sray_transpiler.analyses.lookback import lookbacks
from sray_transpiler.optable import OPS

INPUTS = ["x", "y", "z"]
WINDOW_OPS = [op.name for op in OPS.values() if op.kind == "timeseries"]
ROW_OPS = ["rank", "scale", "demean", "zscore"]
# Windows on both sides of the kernels' 16 and 64 switches, and long ones up to 250.
SMALL, MID, LONG, TOP = [1, 2, 3, 5, 16], [17, 33, 64, 65], [100, 120, 180], [200, 249, 250]
SHORT = SMALL + MID
BUDGET = 420  # the largest total lookback of a drawn node, so that k + lookback < T often
N_DAGS = 16


# -- the DAGs -------------------------------------------------------------------------------


def _call(op: str, args: list[str], d: int) -> str:
    arity = len(OPS[op].panel_params)
    return f"{op}({', '.join(args[:arity])}, {d})"


class _Generator:
    """Draws one DAG's nodes, tracking each name's total lookback (as the design defines
    it, only to keep nodes within BUDGET; the test itself reads the compiler's)."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.lookback = {i: 0 for i in INPUTS}
        self.lines: list[str] = []

    def names(self, budget: int) -> list[str]:
        return [n for n, lb in self.lookback.items() if lb <= budget]

    def operand(self, budget: int) -> tuple[str, int]:
        """A name, or a small elementwise expression of names, of lookback <= budget."""
        rng, names = self.rng, self.names(budget)
        a, b = rng.choice(names), rng.choice(names)
        lb = max(self.lookback[a], self.lookback[b])
        choice = rng.random()
        if choice < 0.45:
            return a, self.lookback[a]
        if choice < 0.75:
            return f"({a} {rng.choice(['+', '-', '*', '/'])} {b})", lb
        if choice < 0.85:
            return f"{rng.choice(['abs', 'sign', 'np.log'])}({a})", self.lookback[a]
        return f"where({a} > {b}, {a}, {rng.choice([b, '0.5', 'np.nan'])})", lb

    def window(self, op: str, d: int, budget: int) -> tuple[str, int]:
        """`op` over operands (sometimes row ops of windows of operands) within budget."""
        own = d if op in ("delay", "delta") else d - 1
        room = budget - own
        args, lb = [], 0
        for _ in OPS[op].panel_params:
            r = self.rng.random()
            if r < 0.3 and room >= 1:  # a nested window under a row op: op(rank(ts_x(a, e)), d)
                inner_op = self.rng.choice(WINDOW_OPS)
                e = self.rng.choice([w for w in SHORT + LONG + TOP if w <= room] or [1])
                inner, inner_lb = self.window(inner_op, e, room)
                arg, arg_lb = f"{self.rng.choice(ROW_OPS)}({inner})", inner_lb
            elif r < 0.4:
                read = self.rng.choice(self.names(room))
                arg, arg_lb = f"{self.rng.choice(ROW_OPS)}({read})", self.lookback[read]
            else:
                arg, arg_lb = self.operand(room)
            args.append(arg)
            lb = max(lb, arg_lb)
        return _call(op, args, d), lb + own

    def node(self, name: str, op: str, d: int) -> None:
        body, lb = self.window(op, d, BUDGET)
        shape = self.rng.random()
        if shape < 0.3:
            body = f"{self.rng.choice(ROW_OPS)}({body})"
        elif shape < 0.45:
            other = self.rng.choice(self.names(BUDGET))
            lb = max(lb, self.lookback[other])
            body = f"{body} {self.rng.choice(['+', '*', '-'])} {self.rng.choice(ROW_OPS)}({other})"
        self.lookback[name] = lb
        self.lines += [f"    def {name}(self):", f"        return {body}"]


def row_local_dags(seed: int = 20261205) -> list[str]:
    """N_DAGS class bodies `L<i>`: every window op in turn, with a window of 200 to 250,
    a small one, a middle one and a long one, at the top of a node (and at random below
    row ops)."""
    rng = random.Random(seed)
    order = rng.sample(WINDOW_OPS, len(WINDOW_OPS))
    turns = itertools.cycle([(op, sizes) for sizes in (TOP, SMALL, MID, LONG) for op in order])
    dags = []
    for i in range(N_DAGS):
        gen = _Generator(rng)
        for k in range(rng.randint(3, 5)):
            op, sizes = next(turns)
            gen.node(f"n{k}", op, rng.choice(sizes))
        dags.append(["@dag", f"class L{i}:"] + [f"    {name}: Input" for name in INPUTS] + gen.lines)
    return dags


# The kernels that were not row-local (running sums re-anchored every d rows, products in
# blocks): one fixed DAG, one node each.
REGRESSIONS = {  # node -> (body, its window)
    "product": ("ts_product(x, 40)", 40),
    "std": ("ts_std(x, 100)", 100),
    "corr": ("correlation(x, y, 250)", 250),
    "sum": ("ts_sum(x, 250)", 250),
    "decay": ("decay_linear(x, 60)", 60),
}


def source() -> str:
    lines = ["import numpy as np", "from serverless_ray import Input, dag, ops", ""]
    for body in row_local_dags():
        lines += [""] + body
    lines += ["", "@dag", "class Regressions:", "    x: Input", "    y: Input"]
    for name, (body, _) in REGRESSIONS.items():
        lines += [f"    def {name}(self):", f"        return {body}"]
    # Two NaNs of different signs meeting in `+` and `*` (hypothesis found it: L8.n1 =
    # ts_std(zscore(x), 17) + zscore(x) on a panel whose rows are flat).
    lines += ["", "@dag", "class Nans:", "    x: Input", "    def total(self):",
              "        return ts_std(zscore(x), 17) + zscore(x)", "    def product(self):",
              "        return zscore(x) * ts_mean(zscore(x), 20)"]
    return "\n".join(lines) + "\n"


class Built:
    """The parsed IR and the built module of source() (a short repr for hypothesis)."""

    def __init__(self, ir_module: ir.Module, module):
        self.ir, self.module = ir_module, module

    def __repr__(self) -> str:
        return "Built(row_local_dags)"

    def lookbacks(self, dag_name: str) -> dict[str, int]:
        """The compiler's total lookback of every public node of a DAG."""
        dag = self.ir.dag(dag_name)
        found = lookbacks(dag)
        assert all(found[n.name].timed for n in dag.public_nodes)
        return {n.name: found[n.name].total for n in dag.public_nodes}


@pytest.fixture(scope="module")
def built(compiled, tmp_path_factory) -> Built:
    path = tmp_path_factory.mktemp("row_local") / "row_local_dags.py"
    path.write_text(source())
    return Built(parse_checked(path), compiled(path))


def _calls(e, under=()):
    """(op, window or None, the ops above it in its node) for every call of an expression."""
    if isinstance(e, ir.Call):
        d = int(e.args[-1].value) if OPS[e.op].kind == "timeseries" else None
        yield e.op, d, under
        for a in e.args:
            yield from _calls(a, under + (e.op,))


def test_the_generator_covers_every_window_op_with_small_middle_and_long_windows_and_nesting(tmp_path):
    path = tmp_path / "row_local_dags.py"
    path.write_text(source())
    calls = [c for dag in parse_checked(path).dags if dag.name.startswith("L")
             for node in dag.nodes for tree in ir.node_exprs(node) for c in _calls(tree)]
    for op in WINDOW_OPS:
        windows = {d for o, d, _ in calls if o == op}
        assert {w for w in windows if w <= 16} and {w for w in windows if 16 < w < 100}, (op, sorted(windows))
        assert {w for w in windows if w >= 100} and {w for w in windows if w >= 200}, (op, sorted(windows))
    assert max(d for _, d, _ in calls if d) == 250
    assert set(ROW_OPS) <= {o for o, _, _ in calls}
    # A window over a row op over a window, e.g. ts_argmax(rank(ts_std(x, 120)), 30).
    assert any(d and len(up) >= 2 and up[-1] in ROW_OPS and OPS[up[-2]].kind == "timeseries" for _, d, up in calls)


# -- the data: NaN stretches, ±inf, ties, constant stretches, walks, noise -----------------


def _column_block(rng: np.random.Generator, kind: str, t: int, n: int) -> np.ndarray:
    if kind == "noise":
        return rng.standard_normal((t, n)) * rng.choice([1.0, 50.0])
    if kind == "ties":
        return rng.integers(-1, 2, (t, n)).astype(float)
    if kind == "flat":  # constant stretches, some longer than the longest window
        run = int(rng.choice([3, 20, 70, 260]))
        return np.repeat(rng.integers(-2, 3, (t // run + 1, n)).astype(float), run, axis=0)[:t]
    if kind == "walk":  # a price level: large sums of small moves
        return 1e4 + np.cumsum(rng.standard_normal((t, n)), axis=0)
    if kind == "growth":  # around 1, for products
        return np.exp(np.cumsum(rng.standard_normal((t, n)) * 0.01, axis=0)) * rng.choice([1.0, 1.01])
    raise KeyError(kind)


@dataclasses.dataclass(frozen=True)
class Column:
    """How to draw one input (kept small, so that a failing example prints short)."""

    kind: str  # a _column_block kind
    nan_rate: float
    inf_rate: float
    nan_stretch: int  # rows of a NaN run in one column (0: none)
    spike_rate: float  # rare huge values (bad prints): where compensated running sums kept
    # last bits that a fresh sum of the same window does not (before the exact sums)


def panel(rng: np.random.Generator, column: Column, t: int, n: int) -> np.ndarray:
    a = _column_block(rng, column.kind, t, n)
    spikes = rng.random((t, n)) < column.spike_rate
    a[spikes] = rng.standard_normal(spikes.sum()) * 10.0 ** rng.integers(12, 21, spikes.sum())
    a[rng.random((t, n)) < column.nan_rate] = np.nan
    a[rng.random((t, n)) < column.inf_rate / 2] = np.inf
    a[rng.random((t, n)) < column.inf_rate / 2] = -np.inf
    if column.nan_stretch:
        start, j = int(rng.integers(0, t)), int(rng.integers(0, n))
        a[start:start + column.nan_stretch, j] = np.nan
    return a


@dataclasses.dataclass(frozen=True)
class Case:
    dag: int
    t: int
    n: int
    k: int
    seed: int
    columns: tuple[Column, ...]  # one per input

    def data(self) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(self.seed)
        return {name: panel(rng, c, self.t, self.n) for name, c in zip(INPUTS, self.columns)}


_columns = st.builds(
    Column,
    kind=st.sampled_from(["noise", "ties", "flat", "walk", "growth"]),
    nan_rate=st.sampled_from([0.0, 0.0, 0.005, 0.05]),
    inf_rate=st.sampled_from([0.0, 0.0, 0.002]),
    nan_stretch=st.sampled_from([0, 0, 5, 60, 300]),
    spike_rate=st.sampled_from([0.0, 0.0, 0.003]),
)
_cases = st.builds(
    Case,
    dag=st.integers(0, N_DAGS - 1),
    t=st.integers(300, 700),
    n=st.integers(1, 6),
    k=st.one_of(st.integers(1, 40), st.integers(1, 300)),
    seed=st.integers(0, 2**32 - 1),
    columns=st.tuples(*[_columns] * len(INPUTS)),
)


# -- the check ------------------------------------------------------------------------------


def _show(v: np.float64) -> str:
    return f"{float(v)!r} ({int(v.view(np.uint64)):#018x})"


def assert_row_local(cls, data: dict, k: int, lookbacks: dict[str, int], what: str) -> int:
    """Every public node of `cls` on `data` and on `data` minus its first k rows: the rows
    from k + lookback on have the same bits. Returns the number of cells compared."""
    full = cls(**data).compute(list(lookbacks))
    part = cls(**{name: np.ascontiguousarray(a[k:]) for name, a in data.items()}).compute(list(lookbacks))
    compared, problems = 0, []
    for name, lb in lookbacks.items():
        a, b = np.ascontiguousarray(full[name]), np.ascontiguousarray(part[name])
        t = a.shape[0]
        assert a.dtype == b.dtype == np.float64 and b.shape == (t - k,) + a.shape[1:], (name, a.shape, b.shape)
        a, b = a[k + lb:], b[lb:]
        differ = a.view(np.uint64) != b.view(np.uint64)
        if differ.any():
            cells = np.argwhere(differ)
            first = [(int(r) + k + lb, int(c), _show(a[r, c]), _show(b[r, c])) for r, c in cells[:3]]
            problems.append(f"{what}.{name} (lookback {lb}, k = {k}, T = {t}): {len(cells)} of {a.size} cells "
                            f"differ; (row of the full panel, column, full value, value without the first k "
                            f"rows): {first}")
        compared += a.size
    assert not problems, "\n".join(problems)
    return compared


@given(_cases)
def test_random_dags_are_row_local(built, case):
    name = f"L{case.dag}"
    assert_row_local(getattr(built.module, name), case.data(), case.k, built.lookbacks(name), name)


def test_the_random_cases_compare_rows_often_and_sometimes_none(built):
    """The drawn k and lookbacks leave rows to compare in most cases, and none in some."""
    totals = [lb for i in range(N_DAGS) for lb in built.lookbacks(f"L{i}").values()]
    assert max(totals) >= 250 and max(totals) <= BUDGET
    rng = random.Random(0)
    # As _cases draws them: T in [300, 700], k from [1, 40] or [1, 300].
    cases = [(rng.randint(300, 700), rng.randint(1, rng.choice([40, 300])), rng.choice(totals)) for _ in range(1000)]
    some = sum(k + lb < t for t, k, lb in cases) / len(cases)
    assert 0.6 < some < 0.98, some


# -- regressions: the kernels that were not row-local --------------------------------------


def _regression_panel() -> dict[str, np.ndarray]:
    """A long random walk (prices) with a NaN early on and a few bad prints (±1e18: on a
    smooth walk a compensated running sum happens to round as a fresh sum would, so
    ts_sum's old kernel needed them to show), and a second walk for correlation."""
    rng = np.random.default_rng(37)
    t, n = 1000, 5
    x = 100 * np.exp(np.cumsum(rng.standard_normal((t, n)) * 0.01, axis=0))
    bad = rng.random((t, n)) < 0.003
    x[bad] = 1e18 * rng.standard_normal(bad.sum())
    y = 1e4 + np.cumsum(rng.standard_normal((t, n)), axis=0)
    x[5, 1] = np.nan
    y[9, 3] = np.nan
    return {"x": x, "y": y}


@pytest.mark.parametrize("node", list(REGRESSIONS))
def test_formerly_broken_kernels_are_row_local(built, node):
    module, data, k = built.module, _regression_panel(), 37
    lb = built.lookbacks("Regressions")[node]
    assert lb == REGRESSIONS[node][1] - 1  # the window's own rows: no slack that would hide a kernel's reach
    full = module.Regressions(**data).compute([node])[node]
    assert np.isfinite(full[k + lb:]).mean() > 0.9  # nothing vacuous: compared cells are numbers
    assert assert_row_local(module.Regressions, data, k, {node: lb}, "Regressions") == (1000 - k - lb) * 5


def test_nans_of_different_signs_meeting_in_an_elementwise_op_are_row_local(built):
    """zscore of a flat row is 0/0 (the CPU's NaN, sign bit set); a window holding a NaN
    is `f64::NAN` (sign bit clear). Which one `a + b` or `a * b` keeps must not depend on
    where the row sits in the panel (a vector loop's body versus its remainder)."""
    t, n, k = 300, 2, 1
    flat_rows = np.repeat(np.random.default_rng(5).integers(-2, 3, (t, 1)).astype(float), n, axis=1)
    data = {"x": flat_rows}
    names = built.lookbacks("Nans")
    full = built.module.Nans(**data).compute(list(names))
    assert all(np.isnan(v).all() for v in full.values())  # every cell is a NaN: only their bits can differ
    assert assert_row_local(built.module.Nans, data, k, names, "Nans") > 0
