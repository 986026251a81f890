"""The streaming API of compiled modules (issue 10, parts 3 and 4): `append`,
`compute(names, last=k)`, `Cls(keep=ROWS)`, `lookback()` and the `rows` of `stats()`.

The claim checked here: an object built on the first rows of a panel that gets the rest
appended, in chunks of any size and with nodes asked for (or not) in between, holds the
bits that a fresh object built on the whole panel computes. Compared as uint64 words
(-0.0 != 0.0), except that any NaN equals any NaN, as issue 10 defines bitwise equality
("NaN == NaN"): the sign of a NaN from an operation on two NaNs is the operand the CPU
keeps, and the compiler may order the operands of `+` and `*` differently in a vectorized
loop and its remainder, so it can change with where a chunk starts. The rows a node returns
in between are checked too, against the same rows of the batch run (a row depends on
earlier rows only).

How the compiled batch run agrees with the reference engine is tests/test_differential.py's
and tests/test_compiled.py's business; here the reference is asked only about what those
do not cover: single window ops up to 250 rows on 900-row panels, and the examples'
appends (the reference streams too, tests/test_reference_stream.py).

DAGs: the row-local generator's (tests/test_row_local.py: every window op, windows up to
250, nested under rank/scale/demean/zscore), the window/cross-section/`where` generator's
(tests/test_differential.py, with indneutralize), one node per window op and window, and
a few fixed DAGs (a loadings matrix and products, a bounded stream, a wide panel), all in
one module (one cargo build); plus examples/alphas101.py and examples/alpha.py.
"""

from __future__ import annotations

import collections
import dataclasses
import gc
import random
import sys
import warnings

import numpy as np
import pytest
import test_differential as differential
import test_row_local as row_local
from conftest import ROOT, assert_agree
from hypothesis import given
from hypothesis import strategies as st
from serverless_ray import errors
from serverless_ray.reference import load
from sray_transpiler import parse_checked
from sray_transpiler.analyses.lookback import lookbacks
from sray_transpiler.optable import OPS
from sray_transpiler.passes import run_pipeline

sys.path.insert(0, str(ROOT / "examples"))
from market import synthetic_market

ALPHAS = ROOT / "examples" / "alphas101.py"
ALPHA = ROOT / "examples" / "alpha.py"

WINDOW_OPS = [op.name for op in OPS.values() if op.kind == "timeseries"]
# Both sides of the kernels' 16 and 64 switches, and the longest window.
OP_WINDOWS = [3, 16, 17, 65, 250]
ROW_OPS = ["rank", "scale", "demean", "zscore"]

FIXED = '''

@dag
class Book:
    """Time-indexed panels x, y (T, N), loadings w (N, K): products, a node whose rows are
    not time (wsq) and one reading it, windows, ranks."""
    x: Input
    y: Input
    w: Input["N", "K"]

    def smooth(self):
        return ts_mean(x, 80)

    def ranked(self):
        return rank(self.smooth) - ts_rank(y, 30)

    def exposure(self):
        return x @ w

    def crowded(self):
        return rank(ts_sum(self.exposure, 5))

    def wsq(self):
        return w * w

    def tilted(self):
        return x @ self.wsq

    def sgn(self):
        return sign(y)

    def runs(self):
        return ts_sum(self.sgn, 7) + delay(self.sgn, 2)


@dag
class Bounded:
    """A stream whose lookback (79 rows) is longer than the rows kept in the keep= test."""
    x: Input
    y: Input

    def mean80(self):
        return ts_mean(x, 80)

    def ranked(self):
        return rank(self.mean80)

    def high(self):
        return rank(ts_max(x, 60)) + delay(y, 70)

    def vol(self):
        return ts_std(y, 12) * ts_argmin(x, 55)


@dag
class Reach:
    """A node reading a dependency at its row and another one 3 rows back."""
    x: Input

    def slow(self):
        return ts_mean(x, 10)

    def mixed(self):
        return delta(x, 3) * self.slow


@dag
class Wide:
    """A few window ops over a wide panel, for the memory of a bounded stream."""
    x: Input

    def a(self):
        return ts_mean(x, 20)

    def b(self):
        return rank(ts_std(x, 60))

    def c(self):
        return ts_max(x, 30) - delay(x, 5)
'''


def _op_node(op: str, d: int) -> str:
    args = ", ".join(["x", "y"][: len(OPS[op].panel_params)])
    return f"{op}({args}, {d})"


def ops_dag() -> dict[str, str]:
    """Node name -> body of the Ops DAG: every window op at every window of OP_WINDOWS
    over the inputs, each window op at 250 over a row op, and the row ops alone."""
    nodes = {f"{op}_{d}": _op_node(op, d) for op in WINDOW_OPS for d in OP_WINDOWS}
    for i, op in enumerate(WINDOW_OPS):
        row = ROW_OPS[i % len(ROW_OPS)]
        inner = ", ".join([f"{row}(x)", "y"][: len(OPS[op].panel_params)])
        nodes[f"{op}_of_{row}"] = f"{op}({inner}, 250)"
    nodes.update({f"cs_{op}": f"{op}(x)" for op in ROW_OPS})
    nodes["cs_indneutralize"] = "indneutralize(x, g)"
    return nodes


def source() -> str:
    lines = ["import numpy as np", "from serverless_ray import Input, dag, ops", ""]
    for body in row_local.row_local_dags():  # L0.. (inputs x, y, z)
        lines += [""] + body
    for i, nodes in enumerate(differential.window_dags()):  # W0.. (inputs x, y, z, g)
        lines += ["", "@dag", f"class W{i}:"] + [f"    {name}: Input" for name in differential.W_INPUTS]
        for node in nodes:
            lines += [f"    def {node.name}(self):", f"        return {node.body}"]
    lines += ["", "@dag", "class Ops:", "    x: Input", "    y: Input", "    g: Input"]
    for name, body in ops_dag().items():
        lines += [f"    def {name}(self):", f"        return {body}"]
    return "\n".join(lines) + FIXED


@pytest.fixture(scope="module")
def dags_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("append") / "append_dags.py"
    path.write_text(source())
    return path


@pytest.fixture(scope="module")
def mod(compiled, dags_path):
    return compiled(dags_path)


@pytest.fixture(scope="module")
def alphas(compiled):
    return compiled(ALPHAS).Alphas


@pytest.fixture(scope="module")
def alpha(compiled):
    return compiled(ALPHA).Alpha


# -- data -----------------------------------------------------------------------------------


def rough(rng: np.random.Generator, t: int, n: int, nan: float = 0.005) -> np.ndarray:
    """One column of each kind in turn: noise, ties (-1, 0, 1), constant stretches (some
    longer than 250 rows), a price walk with rare bad prints (1e15), growth around 1;
    then a NaN stretch, sparse NaN and rare infinities."""
    cols = []
    for j in range(n):
        kind = j % 5
        if kind == 0:
            c = rng.standard_normal(t)
        elif kind == 1:
            c = rng.integers(-1, 2, t).astype(float)
        elif kind == 2:
            run = int(rng.choice([3, 20, 70, 260]))
            c = np.repeat(rng.integers(-2, 3, t // run + 1).astype(float), run)[:t]
        elif kind == 3:
            c = 1e4 + np.cumsum(rng.standard_normal(t))
            bad = rng.random(t) < 0.003
            c[bad] = 1e15 * rng.standard_normal(bad.sum())
        else:
            c = np.exp(np.cumsum(rng.standard_normal(t) * 0.01))
        cols.append(c)
    a = np.stack(cols, axis=1)
    at, j = int(rng.integers(0, t)), int(rng.integers(0, n))
    a[at : at + int(rng.choice([5, 40, 300])), j] = np.nan
    a[rng.random((t, n)) < nan] = np.nan
    a[rng.random((t, n)) < nan / 5] = np.inf
    a[rng.random((t, n)) < nan / 5] = -np.inf
    return a


def labels(rng: np.random.Generator, t: int, n: int, nan: bool = False) -> np.ndarray:
    g = rng.integers(0, 3, n).astype(float)
    if nan:
        g[rng.random(n) < 0.2] = np.nan
    return np.broadcast_to(g, (t, n)).copy()


def book_inputs(seed: int, t: int = 300, n: int = 6, k: int = 3) -> dict:
    rng = np.random.default_rng(seed)
    return {"x": rough(rng, t, n), "y": rough(rng, t, n), "w": rng.standard_normal((n, k))}


def market(seed: int, t: int, n: int = 16) -> dict:
    """examples/market.py's market, with a NaN stretch, a stretch where an asset does not
    trade (constant prices, zero returns) and two identical assets (ties in every rank)."""
    data = synthetic_market(t, n, seed=seed)
    prices = ["open", "high", "low", "close", "vwap"]
    for k in prices + ["volume", "returns"]:
        data[k][t // 3 : t // 3 + 30, 3] = np.nan
    flat = slice(t // 2, t // 2 + 40)
    for k in prices:
        data[k][flat, 5] = data["close"][t // 2 - 1, 5]
    data["volume"][flat, 5] = 1e5
    data["returns"][flat, 5] = 0.0
    for k in data:
        data[k][:, 7] = data[k][:, 6]
    return data


def alpha_inputs(seed: int, t: int, n: int = 7) -> dict:
    rng = np.random.default_rng(seed)
    return {k: np.round(rough(rng, t, n), 1) for k in ("open", "close", "high", "low")}


# -- comparing ------------------------------------------------------------------------------


def differ(got, want) -> str | None:
    """None when `got` and `want` have the same shape and bits (uint64 words; any NaN
    equals any NaN), else what differs."""
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape or got.dtype != want.dtype:
        return f"shape/dtype {got.shape} {got.dtype} != {want.shape} {want.dtype}"
    a, b = np.ascontiguousarray(got).view(np.uint64), np.ascontiguousarray(want).view(np.uint64)
    bad = np.argwhere((a != b) & ~(np.isnan(got) & np.isnan(want)))
    if not bad.size:
        return None
    cells = [(tuple(int(i) for i in c), float(got[tuple(c)]), float(want[tuple(c)])) for c in bad[:3]]
    return f"{len(bad)} of {got.size} cells differ; (cell, got, batch): {cells}"


def assert_bits(got, want, what: str) -> None:
    problem = differ(got, want)
    assert problem is None, f"{what}: {problem}"


def chunks(pattern: str, total: int, rng: random.Random) -> list[int]:
    """Append sizes summing to `total`: single rows (the first 150, then mixed, to bound
    the time), 7 at a time, or mixed (1, 2, 3, 5, 13 and 40 rows)."""
    if pattern == "ones":
        sizes = [1] * min(total, 150)
    elif pattern == "several":
        sizes = [7] * (total // 7)
    else:
        sizes = []
    while sum(sizes) < total:
        sizes.append(min(rng.choice([1, 1, 2, 3, 5, 13, 40]), total - sum(sizes)))
    assert sum(sizes) == total
    return sizes


@dataclasses.dataclass
class Stream:
    obj: object
    mismatches: list[str]
    checked: int  # intermediate results compared


def stream(cls, data: dict, timed: list[str], start: int, sizes: list[int], rng: random.Random,
           batch: dict, untimed: frozenset = frozenset()) -> Stream:
    """An object built on rows [0, start) of the time-indexed inputs (and the others whole)
    that gets the next rows appended in `sizes`. After each append it asks for a random
    half of the nodes, with a random last=k (or whole), except the lazy third of them,
    asked for only every 5 appends; each answer is checked against the same rows of the
    `batch` values (whole panel). Mismatches are collected, not raised."""
    obj = cls(**{k: (np.ascontiguousarray(v[:start]) if k in timed else v) for k, v in data.items()})
    names = obj.nodes()
    lazy = set(rng.sample(names, len(names) // 3))
    end, found, checked = start, [], 0
    for i, k in enumerate(sizes):
        obj.append(**{name: data[name][end : end + k] for name in timed})
        end += k
        asked = [n for n in names if (i % 5 == 4 if n in lazy else rng.random() < 0.5)]
        if not asked:
            continue
        last = rng.choice([None, 1, k, k + 3, 10**6])
        got = obj.compute(asked, last=last)
        for n in asked:
            if n in untimed:  # rows that are not time: whole, last= or not
                want = batch[n]
            else:
                rows = end if last is None else min(last, end)
                want = batch[n][end - rows : end]
            problem = differ(got[n], want)
            checked += 1
            if problem:
                found.append(f"{n} after append {i} (rows [0, {end}), last={last}): {problem}")
    return Stream(obj, found, checked)


def final_mismatches(obj, batch: dict, names: list[str]) -> list[str]:
    got = obj.compute(names)
    return [f"{n} at the end: {p}" for n in names if (p := differ(got[n], batch[n]))]


def report(mismatches: list[str], what: str) -> None:
    """Fails with a count per node, then the first mismatches."""
    kinds = collections.Counter(m.split(" ", 1)[0] for m in mismatches)
    summary = ", ".join(f"{node} {n}x" for node, n in sorted(kinds.items()))
    assert not mismatches, (f"{what}: {len(mismatches)} mismatches with the batch run: {summary}\n"
                            + "\n".join(mismatches[:12]))


# -- 1. appends equal a batch run bit for bit -----------------------------------------------


@st.composite
def _random_case(draw):
    family = draw(st.sampled_from(["L", "W"]))
    index = draw(st.integers(0, (row_local.N_DAGS if family == "L" else differential.N_WINDOW_DAGS) - 1))
    t = draw(st.integers(260, 520))
    start = draw(st.one_of(st.integers(1, 30), st.integers(1, t - 1)))
    return {"family": family, "index": index, "t": t, "n": draw(st.integers(1, 5)), "start": start,
            "pattern": draw(st.sampled_from(["ones", "several", "mixed"])), "seed": draw(st.integers(0, 2**32 - 1)),
            "columns": draw(st.tuples(*[row_local._columns] * 3)), "nan_labels": draw(st.booleans())}


def _random_data(case: dict) -> tuple[dict, list[str]]:
    rng = np.random.default_rng(case["seed"])
    t, n = case["t"], case["n"]
    data = {name: row_local.panel(rng, c, t, n) for name, c in zip(["x", "y", "z"], case["columns"])}
    if case["family"] == "W":
        data["g"] = labels(rng, t, n, case["nan_labels"])
    return data, list(data)


@given(_random_case())
def test_random_dags_stream_bit_for_bit(mod, case):
    """Random DAGs (windows up to 250 under row ops; windows, cross sections and `where`),
    data with NaN stretches, ties, constant stretches, walks and bad prints, appended in
    random chunks from a random row (often before the first full window)."""
    cls = getattr(mod, f"{case['family']}{case['index']}")
    data, timed = _random_data(case)
    rng = random.Random(case["seed"])
    with np.errstate(all="ignore"):
        names = cls(**data).nodes()
        batch = cls(**data).compute(names)
        s = stream(cls, data, timed, case["start"], chunks(case["pattern"], case["t"] - case["start"], rng), rng, batch)
        report(s.mismatches + final_mismatches(s.obj, batch, names), f"{cls.__name__} {case['pattern']}")


@pytest.fixture(scope="module")
def ops_stream(mod):
    """The Ops DAG on a 900-row panel, streamed from row 100 (before the first full window
    of 250) in mixed chunks: (mismatches per node, the streamed values, the inputs)."""
    rng_np = np.random.default_rng(2026)
    t, n = 900, 6
    data = {"x": rough(rng_np, t, n), "y": rough(rng_np, t, n), "g": labels(rng_np, t, n, nan=True)}
    batch = mod.Ops(**data).compute(list(ops_dag()))
    rng = random.Random(7)
    s = stream(mod.Ops, data, ["x", "y", "g"], 100, chunks("mixed", t - 100, rng), rng, batch)
    per_node = {name: [m for m in s.mismatches if m.split(" ", 1)[0] == name] for name in ops_dag()}
    got = s.obj.compute(list(ops_dag()))
    for name in ops_dag():
        if p := differ(got[name], batch[name]):
            per_node[name].append(f"at the end: {p}")
    assert s.checked > 500
    return per_node, got, data


@pytest.mark.parametrize("op", WINDOW_OPS + ["cs"])
def test_each_op_streams_bit_for_bit(ops_stream, op):
    """One node per window op and window (3, 16, 17, 65, 250), each window op at 250 over
    a row op, and the row ops alone: a failure names the op and the windows that differ."""
    per_node, _, _ = ops_stream
    prefix = f"{op}_"
    failed = {name: found for name, found in per_node.items() if name.startswith(prefix) and found}
    assert any(name.startswith(prefix) for name in per_node)
    assert not failed, "\n".join(f"{name}: {found[0]} (+{len(found) - 1} more)" for name, found in failed.items())


def test_streamed_single_ops_agree_with_the_reference(ops_stream, dags_path):
    """Each streamed one-op node against the reference applied to the same inputs (its
    parents), within test_differential's per-op tolerance: windows up to 250 over 900 rows,
    which test_differential (windows up to 120, up to 130 rows) does not reach."""
    _, got, data = ops_stream
    reference = load(dags_path, "Ops")(**data)
    names = [f"{op}_{d}" for op in WINDOW_OPS for d in OP_WINDOWS] + [f"cs_{op}" for op in ROW_OPS]
    failed = []
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        want = reference.compute(names)
        for name in names:
            if name.startswith("cs_"):
                op, d = name[3:], None
            else:
                op, d = name.rsplit("_", 1)[0], int(name.rsplit("_", 1)[1])
            params = OPS[op].panel_params
            node = differential.WNode(name, "", op, ["x", "y"][: len(params)], d, [])
            tol = differential._tolerance(node, want[name], [data[a] for a in node.args])
            try:
                differential._assert_within(got[name], want[name], tol, f"Ops.{name} (streamed)")
            except AssertionError as e:
                failed.append(str(e).splitlines()[0])
    assert not failed, "\n".join(failed)


@pytest.mark.parametrize("pattern", ["ones", "several", "mixed"])
@pytest.mark.parametrize("start", [5, 200])
def test_alphas101_streams_bit_for_bit(alphas, pattern, start):
    """examples/alphas101.py (37 factors, lookback up to 251 rows) on a market with a NaN
    stretch, a flat stretch and tied assets, appended from row 5 or 200 up to 420."""
    t = 420
    data = market(3, t)
    names = alphas(**data).nodes()
    with np.errstate(all="ignore"):
        batch = alphas(**data).compute(names)
        rng = random.Random(start + len(pattern))
        s = stream(alphas, data, list(data), start, chunks(pattern, t - start, rng), rng, batch)
    assert s.checked > 100
    report(s.mismatches + final_mismatches(s.obj, batch, names), f"alphas101 from row {start}, {pattern}")


@pytest.mark.parametrize("pattern", ["ones", "mixed"])
def test_alpha_streams_bit_for_bit_and_agrees_with_the_reference(alpha, pattern):
    t, start = 200, 30
    data = alpha_inputs(1, t)
    names = alpha(**data).nodes()
    batch = alpha(**data).compute(names)
    rng = random.Random(len(pattern))
    sizes = chunks(pattern, t - start, rng)
    s = stream(alpha, data, list(data), start, sizes, rng, batch)
    report(s.mismatches + final_mismatches(s.obj, batch, names), f"alpha {pattern}")
    # The reference streams the same chunks; the two agree within the whole-DAG rule.
    ref = load(ALPHA)(**{k: v[:start] for k, v in data.items()})
    end = start
    for k in sizes:
        ref.append(**{name: v[end : end + k] for name, v in data.items()})
        end += k
    got, want = s.obj.compute(names), ref.compute(names)
    for n in names:
        assert_agree(got[n], want[n])


def test_book_streams_bit_for_bit(mod):
    """Products with a loadings matrix (x @ w, x @ (w * w)), a node whose rows are not
    time, windows and ranks over the products."""
    data = book_inputs(4, t=400)
    names = mod.Book(**data).nodes()
    batch = mod.Book(**data).compute(names)
    rng = random.Random(4)
    s = stream(mod.Book, data, ["x", "y"], 60, chunks("mixed", 340, rng), rng, batch, untimed=frozenset({"wsq"}))
    report(s.mismatches + final_mismatches(s.obj, batch, names), "Book")


# -- 2. rows computed per append ------------------------------------------------------------


def _timed_nodes(path, name=None) -> dict[str, bool]:
    """Every node of the optimized DAG (private and shared ones too, as the module has
    them): whether its rows are time."""
    module = run_pipeline(parse_checked(path))
    dag = module.dag(name) if name else module.dags[0]
    return {n: lb.timed for n, lb in lookbacks(dag).items()}


def _one_row_append_counts(obj, rows: dict, timed: dict[str, bool], t: int) -> None:
    names = obj.nodes()
    obj.compute(names)
    before = obj.stats()
    assert set(before) == set(timed), sorted(set(before) ^ set(timed))
    for n, st_ in before.items():
        assert st_["rows"] == t if timed[n] else st_["rows"] > 0, (n, st_)
    obj.append(**rows)
    obj.compute(names)
    after = obj.stats()
    for n in after:
        grew = after[n]["rows"] - before[n]["rows"]
        runs = after[n]["computes"] - before[n]["computes"]
        want = (1, 1) if timed[n] else (0, 0)
        assert (grew, runs) == want, (n, "rows, computes", grew, runs, "want", want)


def test_a_one_row_append_computes_one_row_per_time_indexed_node(mod, alphas, dags_path):
    data = book_inputs(5, t=301)
    timed = _timed_nodes(dags_path, "Book")
    assert not timed["wsq"] and sum(timed.values()) == 7
    obj = mod.Book(**{**data, "x": data["x"][:300], "y": data["y"][:300]})
    _one_row_append_counts(obj, {"x": data["x"][300], "y": data["y"][300]}, timed, 300)

    market_data = market(5, 301)
    timed = _timed_nodes(ALPHAS)
    assert all(timed.values()) and len(timed) > 37  # the private nodes count too
    obj = alphas(**{k: v[:300] for k, v in market_data.items()})
    _one_row_append_counts(obj, {k: v[300] for k, v in market_data.items()}, timed, 300)


def test_a_lazy_node_computes_the_rows_of_several_appends_at_once(mod):
    data = book_inputs(6, t=310)
    obj = mod.Book(**{**data, "x": data["x"][:300], "y": data["y"][:300]})
    obj.compute(obj.nodes())
    before = obj.stats()
    for at in range(300, 310, 2):
        obj.append(x=data["x"][at : at + 2], y=data["y"][at : at + 2])
        obj.compute(["runs"])
    obj.compute(["ranked"])
    after = obj.stats()
    delta = {n: (after[n]["rows"] - before[n]["rows"], after[n]["computes"] - before[n]["computes"]) for n in after}
    assert delta["runs"] == delta["sgn"] == (10, 5)
    assert delta["ranked"] == delta["smooth"] == (10, 1)
    assert delta["exposure"] == delta["crowded"] == delta["tilted"] == delta["wsq"] == (0, 0)
    assert_bits(obj.cal("ranked"), mod.Book(**data).cal("ranked"), "ranked")


# -- 3. update() after appends ----------------------------------------------------------------


def test_update_after_appends_recomputes_whole_and_keeps_early_cutoff(mod):
    t = 320
    data = book_inputs(7, t=t)
    obj = mod.Book(**{**data, "x": data["x"][:280], "y": data["y"][:280]})
    names = obj.nodes()
    obj.compute(names)
    for at in range(280, t, 8):
        obj.append(x=data["x"][at : at + 8], y=data["y"][at : at + 8])
        obj.compute(names[::2])
    obj.compute(names)

    # A whole new x: every node reading it is recomputed over all T rows.
    new_x = book_inputs(8, t=t)["x"]
    before = obj.stats()
    obj.update(x=new_x)
    got = obj.compute(names)
    after = obj.stats()
    fresh = mod.Book(**{**data, "x": new_x}).compute(names)
    for n in names:
        assert_bits(got[n], fresh[n], f"{n} after update(x=)")
    for n in ("smooth", "exposure", "crowded", "tilted"):
        assert after[n]["rows"] - before[n]["rows"] == t, n
        assert after[n]["computes"] - before[n]["computes"] == 1, n
    for n in ("sgn", "runs", "wsq"):  # they do not read x
        assert after[n] == before[n], n

    # y scaled by 2: sign(y) is recomputed whole and bitwise unchanged (a cutoff), so
    # `runs` is not recomputed; ts_rank(y, 30) is unchanged too.
    before = after
    obj.update(y=data["y"] * 2.0)
    got = obj.compute(names)
    after = obj.stats()
    assert after["sgn"]["rows"] - before["sgn"]["rows"] == t
    assert after["sgn"]["cutoffs"] - before["sgn"]["cutoffs"] == 1
    assert after["runs"] == before["runs"]
    assert after["ranked"]["computes"] - before["ranked"]["computes"] == 1
    fresh = mod.Book(x=new_x, y=data["y"] * 2.0, w=data["w"]).compute(names)
    for n in names:
        assert_bits(got[n], fresh[n], f"{n} after update(y=2y)")

    # The same values again: nothing runs. Then the stream goes on: one row each.
    obj.update(y=data["y"] * 2.0, x=new_x.copy())
    obj.compute(names)
    assert obj.stats() == after
    more = book_inputs(9, t=3)
    obj.append(x=more["x"][0], y=more["y"][0])
    got = obj.compute(names)
    final = obj.stats()
    for n in names:
        if n != "wsq":
            assert final[n]["rows"] - after[n]["rows"] == 1, n
    whole = {"x": np.vstack([new_x, more["x"][:1]]), "y": np.vstack([data["y"] * 2.0, more["y"][:1]]), "w": data["w"]}
    fresh = mod.Book(**whole).compute(names)
    for n in names:
        assert_bits(got[n], fresh[n], f"{n} after update and append")

    # New loadings between appends, with `crowded` (rank(ts_sum(x @ w, 5))) left behind:
    # the product is recomputed whole, and the rows appended after it use the new w.
    obj.compute(["exposure"])
    obj.append(x=more["x"][1], y=more["y"][1])
    new_w = book_inputs(23)["w"]
    obj.update(w=new_w)
    obj.append(x=more["x"][2], y=more["y"][2])
    got = obj.compute(names)
    whole = {"x": np.vstack([new_x, more["x"]]), "y": np.vstack([data["y"] * 2.0, more["y"]]), "w": new_w}
    fresh = mod.Book(**whole).compute(names)
    for n in names:
        assert_bits(got[n], fresh[n], f"{n} after update(w=) between appends")


# -- 4. rejected appends change nothing -------------------------------------------------------


def _state(obj) -> tuple:
    values = obj.compute(obj.nodes())
    return repr(obj), {n: np.ascontiguousarray(v).view(np.uint64).tobytes() + bytes(str(v.shape), "ascii")
                       for n, v in values.items()}, obj.stats()


def test_a_rejected_append_changes_nothing(mod, alpha):
    t = 305
    data = book_inputs(10, t=t)
    obj = mod.Book(**{**data, "x": data["x"][:300], "y": data["y"][:300]})
    row = {"x": data["x"][300:302], "y": data["y"][300:302]}
    bad = [
        (errors.UnknownNameError, "`z` is not an input", {**row, "z": row["x"]}),
        (errors.MissingInputError, "`y` is missing", {"x": row["x"]}),
        (errors.ShapeError, r"input `w` cannot be appended to: .*update\(w=", {**row, "w": data["w"]}),
        (errors.ShapeError, r"input `w` cannot be appended to: .*update\(w=", {**row, "w": data["w"][:1]}),
        (errors.ShapeError, r"input `x` has shape \(2, 5\)", {**row, "x": row["x"][:, :5]}),
        (errors.ShapeError, r"input `y` has shape \(5,\)", {**row, "y": row["y"][0, :5]}),
        (errors.ShapeError, r"input `y` has shape \(3, 6\), expected 2 rows", {**row, "y": data["y"][300:303]}),
        (errors.ShapeError, "at least one row", {"x": row["x"][:0], "y": row["y"][:0]}),
        (errors.DTypeError, "int64", {**row, "x": row["x"].astype(np.int64)}),
        (errors.DTypeError, "float32", {**row, "y": row["y"].astype(np.float32)}),
        (errors.DTypeError, "list", {**row, "x": row["x"].tolist()}),
        (errors.ShapeError, r"\(1, 2, 6\)", {**row, "x": row["x"][None]}),
    ]
    for error, message, rows in bad:
        before = _state(obj)
        with pytest.raises(error, match=message):
            obj.append(**rows)
        assert _state(obj) == before, message  # same shapes, bits, and no kernel ran
    obj.append(**row)
    obj.append(x=data["x"][302:], y=data["y"][302:])
    fresh = mod.Book(**data).compute(obj.nodes())
    for n, v in obj.compute(obj.nodes()).items():
        assert_bits(v, fresh[n], n)

    # A time-indexed input never given: the rows are refused, and nothing starts.
    half = mod.Book(x=data["x"][:5], w=data["w"])
    before = repr(half)
    with pytest.raises(errors.MissingInputError, match="`y`"):
        half.append(x=row["x"], y=row["y"])
    assert repr(half) == before

    # An object given 1-D: rows are (k,) or numbers.
    one_d = alpha(**{k: v[:40, 0].copy() for k, v in alpha_inputs(11, 50).items()})
    before = _state(one_d)
    with pytest.raises(errors.ShapeError, match=r"input `open` has shape \(2, 1\)"):
        one_d.append(open=np.ones((2, 1)), close=np.ones(2), high=np.ones(2), low=np.ones(2))
    with pytest.raises(errors.DTypeError):
        one_d.append(open="1", close=1.0, high=1.0, low=1.0)
    assert _state(one_d) == before


# -- 5. shapes of appended rows ---------------------------------------------------------------


def test_rows_of_each_accepted_shape(mod, alpha):
    data = book_inputs(12, t=320)
    x, y = data["x"], data["y"]
    obj = mod.Book(x=x[:300], y=y[:300], w=data["w"])
    obj.append(x=x[300], y=y[300])  # (N,): one row
    obj.append(x=x[301:305], y=y[301:305])  # (k, N)
    obj.append(x=np.asfortranarray(x[305:310]), y=y[305:310])  # Fortran order
    strided = np.zeros((10, 12))
    strided[:, ::2] = x[310:320]
    obj.append(x=strided[:, ::2], y=y[310:320])  # not contiguous
    fresh = mod.Book(**data).compute(obj.nodes())
    for n, v in obj.compute(obj.nodes()).items():
        assert_bits(v, fresh[n], n)
    assert "x (320, 6)" in repr(obj) and "w (6, 3)" in repr(obj)

    # 1-D inputs: (k,), numbers (float, np.float64, 0-d arrays); outputs stay 1-D.
    one = {k: v[:, 2].copy() for k, v in alpha_inputs(13, 60).items()}
    names = alpha(**one).nodes()
    obj = alpha(**{k: v[:40] for k, v in one.items()})
    obj.compute(names)
    obj.append(**{k: v[40] for k, v in one.items()})  # np.float64
    obj.append(**{k: float(v[41]) for k, v in one.items()})
    obj.append(**{k: np.asarray(v[42]) for k, v in one.items()})
    obj.append(**{k: v[43:50] for k, v in one.items()})
    obj.append(**{k: v[50:51] for k, v in one.items()})
    obj.append(**{k: v[51:] for k, v in one.items()})
    fresh = alpha(**one).compute(names)
    got = obj.compute(names)
    for n in names:
        assert got[n].shape == (60,), (n, got[n].shape)
        assert_bits(got[n], fresh[n], n)
    assert obj.compute(["f3"], last=4)["f3"].shape == (4,)
    assert "open (60,)" in repr(obj)


def test_appending_to_an_empty_object_starts_the_series(mod, alpha):
    data = book_inputs(14, t=300)
    obj = mod.Book()
    obj.append(x=data["x"][:1], y=data["y"][:1])
    assert obj.compute(["ranked"])["ranked"].shape == (1, 6)
    for at in range(1, 300, 37):
        obj.append(x=data["x"][at : at + 37], y=data["y"][at : at + 37])
        obj.compute(["ranked", "runs"])
    with pytest.raises(errors.MissingInputError, match="`w`"):
        obj.compute(["exposure"])
    obj.update(w=data["w"])
    fresh = mod.Book(**data).compute(obj.nodes())
    for n, v in obj.compute(obj.nodes()).items():
        assert_bits(v, fresh[n], n)

    # Only the loadings given first: the rows start the series next to them.
    obj = mod.Book(w=data["w"])
    obj.append(x=data["x"][:150], y=data["y"][:150])
    obj.compute(obj.nodes())
    obj.append(x=data["x"][150:], y=data["y"][150:])
    for n, v in obj.compute(obj.nodes()).items():
        assert_bits(v, fresh[n], n)

    one = {k: v[:, 0].copy() for k, v in alpha_inputs(15, 30).items()}
    obj = alpha()
    obj.append(**{k: v[:10] for k, v in one.items()})
    for at in range(10, 30):
        obj.append(**{k: v[at] for k, v in one.items()})
    got, fresh = obj.compute(obj.nodes()), alpha(**one).compute(obj.nodes())
    for n in got:
        assert got[n].shape == (30,)
        assert_bits(got[n], fresh[n], n)


# -- 6. compute(names, last=k) ----------------------------------------------------------------


def test_last_rows(mod):
    t = 320
    data = book_inputs(16, t=t)
    obj = mod.Book(**{**data, "x": data["x"][:300], "y": data["y"][:300]})
    obj.append(x=data["x"][300:], y=data["y"][300:])
    names = [n for n in obj.nodes() if n != "wsq"]
    full = mod.Book(**data).compute(obj.nodes())
    for k in (0, 1, 7, t, t + 1, 10**6):
        got = obj.compute(obj.nodes(), last=k)
        for n in names:
            width = full[n].shape[1]
            assert got[n].shape == (min(k, t), width), (n, k, got[n].shape)
            assert_bits(got[n], full[n][t - min(k, t) :], f"{n} last={k}")
        assert_bits(got["wsq"], full["wsq"], f"wsq (N, K) last={k}: whole")
    # Copies: writing to one changes neither the object nor the next answer.
    first = obj.compute(["ranked", "exposure"], last=5)
    for n, v in first.items():
        assert not np.shares_memory(v, obj.cal(n))
        v.setflags(write=True)
        v[...] = 12345.0
    again = obj.compute(["ranked", "exposure"], last=5)
    for n in again:
        assert_bits(again[n], full[n][t - 5 :], n)
        assert_bits(obj.cal(n), full[n], n)


# -- arguments the reference refuses (or reads) otherwise --------------------------------------


def _outcome(call) -> str:
    """What a call does: the class of the exception it raises, or the shapes it returns."""
    try:
        result = call()
    except Exception as e:  # noqa: BLE001 - the class is what is compared
        return type(e).__name__
    if isinstance(result, dict):
        return "returns " + ", ".join(f"{k} {np.shape(v)}" for k, v in result.items())
    return "returns"


def _book(cls):
    return cls(**book_inputs(21, t=40))


def _one_d(cls):
    return cls(x=np.arange(40.0), y=np.arange(40.0))


PARITY = {  # what -> a call on the class (compiled or reference)
    "a number appended to a 2-D input": lambda cls: _book(cls).append(x=1.0, y=np.ones(6)),
    "a Python int appended to a 1-D input": lambda cls: _one_d(cls).append(x=1, y=2),
    "last=-1": lambda cls: _book(cls).compute(["ranked"], last=-1),
    "last=k of a value whose rows are not time (N, K)": lambda cls: _book(cls).compute(["wsq"], last=2),
    "keep=True": lambda cls: cls(keep=True, x=np.ones((5, 2)), y=np.ones((5, 2))),
    "keep=-3": lambda cls: cls(keep=-3, x=np.ones((5, 2)), y=np.ones((5, 2))),
    "keep=0": lambda cls: cls(keep=0, x=np.ones((5, 2)), y=np.ones((5, 2))),
}
_PARITY_DAG = {"a number appended to a 2-D input": "Book", "last=-1": "Book",
               "last=k of a value whose rows are not time (N, K)": "Book"}


@pytest.mark.parametrize("what", list(PARITY))
def test_arguments_are_checked_as_the_reference_checks_them(mod, dags_path, what):
    """The compiled class and the reference class share one API: the same bad argument
    raises the same exception class, and the same call returns the same shapes (the
    reference returns a value whose rows are not time whole under last=k; it refuses a
    number for a 2-D input as a ShapeError, a Python int as a DTypeError, and keep= or
    last= outside the integers >= 1 / >= 0 as a ValueError)."""
    name = _PARITY_DAG.get(what, "Bounded")
    reference, compiled = _outcome(lambda: PARITY[what](load(dags_path, name))), \
        _outcome(lambda: PARITY[what](getattr(mod, name)))
    assert compiled == reference, f"{what}: compiled {compiled}, reference {reference}"


# -- 7. keep=ROWS, memory, lookback -----------------------------------------------------------


def test_keep_streams_single_rows_exactly(mod):
    """Bounded(keep=50) from 10 rows, then 2,000 single-row appends, each followed by
    compute(nodes, last=1): every step's row is the batch run's row (lookbacks up to 79
    rows, more than the 50 kept rows shown)."""
    keep, start, n_appends = 50, 10, 2000
    t = start + n_appends
    rng = np.random.default_rng(18)
    data = {"x": rough(rng, t, 5), "y": rough(rng, t, 5)}
    names = ["mean80", "ranked", "high", "vol"]
    batch = mod.Bounded(**data).compute(names)
    obj = mod.Bounded(keep=keep, x=data["x"][:start], y=data["y"][:start])
    assert obj.cal("ranked").shape == (start, 5)
    found = []
    for i in range(n_appends):
        end = start + i + 1
        obj.append(x=data["x"][end - 1], y=data["y"][end - 1])
        got = obj.compute(names, last=1)
        for n in names:
            if p := differ(got[n], batch[n][end - 1 : end]):
                found.append(f"{n} row {end - 1}: {p}")
        if i % 97 == 0 or i < 60:
            whole = obj.compute(names)
            for n in names:
                assert whole[n].shape == (min(end, keep), 5), (n, end, whole[n].shape)
                if p := differ(whole[n], batch[n][end - min(end, keep) : end]):
                    found.append(f"{n} rows [{end - min(end, keep)}, {end}): {p}")
            assert obj.cal("high").shape == (min(end, keep), 5)
    report(found, "keep=50")


def test_keep_shows_the_last_rows(mod):
    """Under keep=50: whole values are the last min(T, 50) rows, last=k at most 50."""
    rng = np.random.default_rng(22)
    data = {"x": rough(rng, 400, 4), "y": rough(rng, 400, 4)}
    batch = mod.Bounded(**data).compute(["mean80", "high"])
    obj = mod.Bounded(keep=50, x=data["x"][:30], y=data["y"][:30])
    assert obj.cal("mean80").shape == obj.compute(["high"])["high"].shape == (30, 4)
    assert obj.compute(["mean80"], last=45)["mean80"].shape == (30, 4)
    for at in range(30, 400, 10):
        obj.append(x=data["x"][at : at + 10], y=data["y"][at : at + 10])
        rows = min(at + 10, 50)
        assert obj.cal("high").shape == (rows, 4)
        assert obj.compute(["mean80"], last=80)["mean80"].shape == (rows, 4)
    assert "x (" in repr(obj)
    assert_bits(obj.cal("mean80"), batch["mean80"][-50:], "mean80")
    assert_bits(obj.compute(["high"], last=3)["high"], batch["high"][-3:], "high last=3")
    # update() gives a new series whole; the object then shows its last 50 rows.
    again = {"x": rough(rng, 300, 4), "y": rough(rng, 300, 4)}
    obj.update(**again)
    fresh = mod.Bounded(**again).compute(["mean80", "high"])
    for n in ("mean80", "high"):
        assert_bits(obj.cal(n), fresh[n][-50:], f"{n} after update under keep=")
    with pytest.raises(ValueError, match="keep"):
        mod.Bounded(keep=0, **data)


def _rss() -> int:
    """Resident memory of this process, bytes (VmRSS)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _append_rows(obj, x: np.ndarray, start: int, count: int) -> None:
    """Single-row appends of x's rows (cyclically); after each, the new row of `a` and
    `c`, and every 10 appends the new rows of `b` (lazy: 10 at once; its ts_std over
    60 rows of 1,000 columns is the costly kernel)."""
    for i in range(start, start + count):
        obj.append(x=x[i % len(x)])
        obj.compute(["a", "c", "b"] if i % 10 == 9 else ["a", "c"], last=1)


def test_a_bounded_stream_keeps_its_memory_flat(mod):
    """A keep= object on a (T, 1000) panel: resident memory (VmRSS, the allocator's
    behaviour included) after 10,000 single-row appends within 10% of after 100. A
    first object does 500 appends and is dropped (the allocator and the buffer pool
    warmed up), and the measured one starts past its first cut (400 rows > 2 x (50 + 59)).
    The measurement can see growth: the same appends without keep= (2,000 of them) raise
    it by at least half of what they store."""
    n = 1000
    rng = np.random.default_rng(19)
    x = rough(rng, 4096, n)  # rows are reused cyclically (their values do not matter)
    warm = mod.Wide(keep=50, x=x[:400])
    _append_rows(warm, x, 400, 500)
    del warm
    obj = mod.Wide(keep=50, x=x[:400])
    _append_rows(obj, x, 400, 100)
    gc.collect()
    after_100 = _rss()
    _append_rows(obj, x, 500, 9900)
    gc.collect()
    after_10000 = _rss()
    assert obj.cal("b").shape == (50, n)
    assert after_10000 <= after_100 * 1.10, (after_100 / 2**20, after_10000 / 2**20)

    control = mod.Wide(x=x[:400])
    _append_rows(control, x, 400, 100)
    gc.collect()
    before = _rss()
    _append_rows(control, x, 500, 2000)
    gc.collect()
    grown = _rss() - before
    stored = 4 * 2000 * n * 8  # x and three nodes, 2,000 rows of 1,000 doubles each
    assert grown >= stored / 2, (grown / 2**20, stored / 2**20)


def test_lookback_is_the_compilers_total(mod, dags_path):
    """mixed = delta(x, 3) * slow, slow = ts_mean(x, 10): row t reads x from t - 9 (through
    slow) and from t - 3 (delta): 9 rows, not 9 + 3."""
    found = lookbacks(parse_checked(dags_path).dag("Reach"))
    assert (found["slow"].total, found["mixed"].total) == (9, 9)
    obj = mod.Reach(x=np.ones((20, 2)))
    assert {n: obj.lookback(n) for n in obj.nodes()} == {"slow": 9, "mixed": 9}


def test_lookback_of_alphas101_is_the_compilers_total(alphas):
    obj = alphas(**market(20, 30))
    found = lookbacks(parse_checked(ALPHAS).dag())
    names = obj.nodes()
    assert len(names) == 37
    for n in names:
        assert obj.lookback(n) == found[n].total, n
    assert max(obj.lookback(n) for n in names) == 251
    for name in ("_adv20", "nope"):
        with pytest.raises(errors.UnknownNameError, match=f"`{name}` is not a node"):
            obj.lookback(name)
