"""The reference engine's streaming API (issue 10): `append`, `compute(last=)`, `keep=`,
`lookback()` and the `rows` of `stats()`.

The reference is the oracle of the compiled modules' appends, so its own appends are
checked against a fresh reference object built on the concatenated inputs. They must be
equal bit for bit (compared as uint64 words, so -0.0 != 0.0; NaN == NaN whatever its sign),
not only within the tolerance of `assert_agree`: after an append a node
is evaluated on its dependencies' last rows only (its new rows and the `lookback` rows
before them), and every numpy op of serverless_ray.ops computes a row from the rows of
its window alone, in an order that does not depend on where the slice starts.

All but one: `matmul` (np.matmul, i.e. OpenBLAS dgemm/dgemv). OpenBLAS picks its kernel
by the number of rows (one row goes to gemv, the rows left over by gemm's row blocking to
other micro-kernels), and they add a row's products in different orders; so a row of
`x @ w` has other last bits when computed in a slice of 1, 3 or 7 rows than in a batch,
and a batch run is no more row-local than an append. Nodes that read a product (or a
node that does) are checked within the tolerance only; every other node bit for bit.

Why a NaN's sign does not count: when both operands of `+` are NaN, the result is one of
them, and numpy's SIMD loop and its scalar loop for the elements left over do not pick
the same one (the compiler may swap the operands of a commutative op); which loop an
element goes through depends on where it sits in the slice. So `corr`, `decayed` and
`late` below hold NaN of the other sign at a few cells after appends.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from conftest import FIXTURES, ROOT, assert_agree
from serverless_ray import errors
from serverless_ray.reference import load
from sray_transpiler.analyses.lookback import lookbacks, max_lookback

sys.path.insert(0, str(ROOT / "examples"))
from market import synthetic_market

# Windows up to 250, ranks and row ops between them, composition across nodes (private
# ones too), a node that is not time-indexed, and a product with one.
LONG = '''
from serverless_ray import Input, dag


@dag
class Long:
    x: Input
    y: Input
    g: Input
    w: Input["N", "K"]

    def _sum250(self):
        return ts_sum(x, 250)

    def mean_of_sum(self):
        return ts_mean(self._sum250, 100) - delay(y, 3)

    def ranked(self):
        return ts_rank(rank(x), 250)

    def corr(self):
        return correlation(rank(x), y, 200) + ts_std(y, 120)

    def extremes(self):
        return ts_argmax(x, 250) - ts_argmin(y, 60) + ts_max(x, 31) * ts_min(y, 250)

    def decayed(self):
        return decay_linear(delta(x, 5), 250) + covariance(x, y, 17)

    def product(self):
        return ts_product(1 + 0.01 * y, 40)

    def rows(self):
        return zscore(scale(x)) + indneutralize(demean(y), g) + rank(self.mean_of_sum)

    def late(self):
        return ts_mean(self.ranked, 250) + delay(self.corr, 250)

    def exposure(self):
        return rank(x @ w) + ts_sum(y @ w, 30)

    def wsq(self):
        return w * w
'''

TIME = [
    "mean_of_sum", "ranked", "corr", "extremes", "decayed", "product", "rows", "late", "exposure",
]


@pytest.fixture(scope="module")
def long_dag(tmp_path_factory):
    path = tmp_path_factory.mktemp("dags") / "long.py"
    path.write_text(LONG)
    return load(path, "Long")


def _rough(rng, shape, nan=0.01, inf=0.002) -> np.ndarray:
    """Values with ties (one decimal), constant stretches, a stretch of NaN, NaN and
    infinities (`nan`, `inf`: their share of the cells)."""
    x = np.round(rng.standard_normal(shape), 1)
    t, n = shape
    for _ in range(3):
        col, at, length = rng.integers(n), rng.integers(t), rng.integers(5, 300)
        x[at : at + length, col] = x[at, col]
    col, at = rng.integers(n), rng.integers(t)
    x[at : at + 20, col] = np.nan
    x[rng.random(shape) < nan] = np.nan
    x[rng.random(shape) < inf] = np.inf
    return x


def long_inputs(seed: int, t: int = 620, n: int = 6, k: int = 3) -> dict:
    rng = np.random.default_rng(seed)
    g = np.broadcast_to(rng.integers(0, 3, n).astype(np.float64), (t, n)).copy()
    # Sparse NaN and infinities: a window of 250 rows would hold one most of the time.
    x, y = _rough(rng, (t, n), 0.0005, 0.0002), _rough(rng, (t, n), 0.0005, 0.0002)
    return {"x": x, "y": y, "g": g, "w": rng.standard_normal((n, k))}


def alpha_inputs(seed: int, t: int = 120, n: int = 7) -> dict:
    rng = np.random.default_rng(seed)
    return {k: _rough(rng, (t, n)) for k in ("open", "close", "high", "low")}


def market_inputs(seed: int, t: int = 260, n: int = 12) -> dict:
    return synthetic_market(t, n, seed=seed)


# (file, DAG name, inputs, the row at which appends start)
DAGS = {
    "alphas101": (ROOT / "examples" / "alphas101.py", None, market_inputs, 150),
    "alpha": (ROOT / "examples" / "alpha.py", None, alpha_inputs, 40),
    "all_ops": (FIXTURES / "dags" / "all_ops.py", None, None, 30),
    "factor_model": (FIXTURES / "dags" / "factor_model.py", None, None, 10),
}


def all_ops_inputs(seed: int, t: int = 300, n: int = 5) -> dict:
    rng = np.random.default_rng(seed)
    g = np.broadcast_to(rng.integers(0, 2, n).astype(np.float64), (t, n)).copy()
    return {"x": _rough(rng, (t, n)), "y": _rough(rng, (t, n)), "g": g, "w": rng.standard_normal((n, n))}


def factor_inputs(seed: int, t: int = 80, n: int = 6, k: int = 3) -> dict:
    rng = np.random.default_rng(seed)
    return {"returns": _rough(rng, (t, n)), "loadings": rng.standard_normal((n, k)),
            "betas": rng.standard_normal((k, n)), "mix": rng.standard_normal((k, k))}


def _case(name, long_dag, seed=0):
    if name == "long":
        return long_dag, long_inputs(seed), 300
    path, dag_name, make, start = DAGS[name]
    make = make or {"all_ops": all_ops_inputs, "factor_model": factor_inputs}[name]
    return load(path, dag_name), make(seed), start


def bits_equal(a, b) -> bool:
    """Equal bit for bit, any NaN equal to any NaN (see the module docstring)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False
    nan = np.isnan(a)
    return np.array_equal(nan, np.isnan(b)) and np.array_equal(a[~nan].view(np.uint64), b[~nan].view(np.uint64))


def _reads_a_product(cls) -> set[str]:
    """Nodes with a `@`/matmul in their body or in a node they read (see the docstring)."""
    from sray_transpiler import ir

    out: set[str] = set()
    for node in cls._dag.nodes:  # topological
        calls = [e for tree in ir.node_exprs(node) for e in ir.walk(tree) if isinstance(e, ir.Call)]
        if any(c.op == "matmul" for c in calls) or any(r.name in out for r in ir.refs(node)):
            out.add(node.name)
    return out


def same(cls, name: str, got, want) -> None:
    """Bit for bit, except for a node that reads a product (within the tolerance)."""
    assert_agree(got, want)
    if name not in _reads_a_product(cls):
        assert bits_equal(got, want), f"{cls.__name__}.{name}: an append gave other bits than a batch run"


def _timed(cls) -> set[str]:
    return {n for n, lb in lookbacks(cls._dag).items() if lb.timed}


def _timed_inputs(cls) -> list[str]:
    return [i.name for i in cls._dag.inputs if i.dims[0] == "T"]


def _split(data: dict, cls, start: int):
    """(the inputs up to row `start`, the time-indexed inputs' rows from `start` on)."""
    timed = _timed_inputs(cls)
    head = {k: (v[:start] if k in timed else v) for k, v in data.items()}
    tail = {k: data[k][start:] for k in timed}
    return head, tail


def _chunks(pattern: str, total: int, rng) -> list[int]:
    if pattern == "ones":
        sizes = [1] * total
    elif pattern == "several":
        sizes = [7] * (total // 7) + ([total % 7] if total % 7 else [])
    else:
        sizes = []
        while sum(sizes) < total:
            sizes.append(int(min(rng.choice([1, 1, 2, 3, 5, 13, 40]), total - sum(sizes))))
    assert sum(sizes) == total
    return sizes


def _stream(cls, data, start, sizes, ask, keep=None):
    """An object built on rows [0, start) that gets the rest appended in `sizes` rows;
    after each append it computes what `ask(i)` lists (laziness: a node not asked for
    falls several appends behind)."""
    head, tail = _split(data, cls, start)
    obj = cls(keep=keep, **head)
    at = 0
    for i, k in enumerate(sizes):
        obj.append(**{name: v[at : at + k] for name, v in tail.items()})
        at += k
        names = ask(i)
        if names:
            obj.compute(names)
    return obj


@pytest.mark.parametrize("pattern", ["ones", "several", "mixed"])
@pytest.mark.parametrize("name", ["alphas101", "alpha", "all_ops", "factor_model", "long"])
def test_appends_equal_a_fresh_object_bit_for_bit(name, pattern, long_dag):
    cls, data, start = _case(name, long_dag)
    rng = np.random.default_rng(len(name) + len(pattern))
    timed = _timed_inputs(cls)
    total = data[timed[0]].shape[0] - start
    if pattern == "ones":
        total = min(total, 60)  # one row at a time is the slow case of a slow oracle
    sizes = _chunks(pattern, total, rng)
    names = cls(**data).nodes()
    # Every node after every append, and half of them only now and then.
    every = _stream(cls, data, start, sizes, lambda i: names)
    some = _stream(cls, data, start, sizes, lambda i: names[: len(names) // 2] if i % 3 else names[::4])
    end = start + total
    fresh = cls(**{k: (v[:end] if k in timed else v) for k, v in data.items()}).compute(names)
    for obj in (every, some):
        got = obj.compute(names)
        for n in names:
            same(cls, n, got[n], fresh[n])


def test_append_starts_the_series(long_dag):
    data = long_inputs(1, t=300)
    names = long_dag(**data).nodes()
    obj = long_dag(w=data["w"])
    obj.append(x=data["x"][:1], y=data["y"][:1], g=data["g"][:1])
    obj.compute(names)
    for at in range(1, 300, 37):
        rows = slice(at, at + 37)
        obj.append(x=data["x"][rows], y=data["y"][rows], g=data["g"][rows])
        obj.compute(names[::2])
    fresh = long_dag(**data).compute(names)
    got = obj.compute(names)
    for n in names:
        same(long_dag, n, got[n], fresh[n])


def test_a_one_row_append_computes_one_row_per_time_indexed_node(long_dag):
    for cls, data, start in [_case("long", long_dag), _case("alphas101", long_dag), _case("factor_model", long_dag)]:
        head, tail = _split(data, cls, start)
        obj = cls(**head)
        names = obj.nodes()
        obj.compute(names)
        before = obj.stats()
        assert all(before[n]["rows"] == start for n in names if n in _timed(cls))
        obj.append(**{k: v[0] for k, v in tail.items()})  # (N,): one row
        obj.compute(names)
        after = obj.stats()
        timed = _timed(cls)
        for n in after:
            grew = after[n]["rows"] - before[n]["rows"]
            runs = after[n]["computes"] - before[n]["computes"]
            if n in timed:
                assert (grew, runs) == (1, 1), (n, grew, runs)
            else:  # not time-indexed: an append does not touch it
                assert (grew, runs) == (0, 0), (n, grew, runs)


def test_a_node_behind_by_several_appends_computes_their_rows_once(long_dag):
    data = long_inputs(2)
    head, tail = _split(data, long_dag, 300)
    obj = long_dag(**head)
    obj.compute(["late"])
    before = obj.stats()
    for at in range(0, 10, 2):
        obj.append(**{k: v[at : at + 2] for k, v in tail.items()})
    obj.compute(["late"])
    after = obj.stats()
    for n in ("late", "ranked", "corr"):
        assert after[n]["rows"] - before[n]["rows"] == 10
        assert after[n]["computes"] - before[n]["computes"] == 1


def _state(obj) -> tuple:
    """Everything an append could change, as comparable values."""
    def slot(s):
        return (s["value"].tobytes(), s["value"].shape, s["first"], s.get("given"), s["changed_at"], s["replaced_at"])
    return (obj._revision, {k: slot(s) for k, s in obj._inputs.items()},
            {k: slot(s) + (s["verified_at"],) for k, s in obj._cache.items()}, obj.stats())


def test_a_rejected_append_changes_nothing(long_dag, tmp_path):
    data = long_inputs(3, t=310)
    head, tail = _split(data, long_dag, 300)
    obj = long_dag(**head)
    obj.compute(obj.nodes())
    row = {k: v[:2] for k, v in tail.items()}
    bad = [
        (errors.UnknownNameError, "`z` is not an input", {**row, "z": row["x"]}),
        (errors.ShapeError, r"input `w` \(N, K\) is not indexed by time .* replace it with update\(w=\.\.\.\)",
         {**row, "w": data["w"]}),
        (errors.MissingInputError, "missing `g`", {"x": row["x"], "y": row["y"]}),
        (errors.DTypeError, "got an array of dtype int64", {**row, "x": row["x"].astype(np.int64)}),
        (errors.DTypeError, "got an array of dtype float32", {**row, "y": row["y"].astype(np.float32)}),
        (errors.DTypeError, "got a list", {**row, "x": row["x"].tolist()}),
        (errors.ShapeError, r"holds 6 columns, and the rows appended to it have 5", {**row, "x": row["x"][:, :5]}),
        (errors.ShapeError, r"one row appended to it has shape \(6,\), got \(5,\)", {**row, "g": row["g"][0, :5]}),
        (errors.ShapeError, r"expected a 2-D \(k, N\) array", {**row, "x": 1.0}),
        (errors.ShapeError, r"expected a 2-D \(k, N\) array", {**row, "x": row["x"][None]}),
        (errors.ShapeError, "as many rows of every input", {**row, "y": tail["y"][:3]}),
        (errors.ShapeError, "got no rows for input `x`", {k: v[:0] for k, v in row.items()}),
    ]
    for error, message, rows in bad:
        before = _state(obj)
        with pytest.raises(error, match=message):
            obj.append(**rows)
        assert _state(obj) == before, message
    # What is left is still a working stream.
    obj.append(**row)
    fresh = long_dag(**{**data, **{k: data[k][:302] for k in row}})
    for n in obj.nodes():
        same(long_dag, n, obj.cal(n), fresh.cal(n))

    one_d = load(ROOT / "examples" / "alpha.py")(**{k: v[:, 0].copy() for k, v in alpha_inputs(4).items()})
    one_d.f3()
    before = _state(one_d)
    with pytest.raises(errors.ShapeError, match=r"input `open` is 1-D: .* got shape \(2, 1\)"):
        one_d.append(open=np.ones((2, 1)), close=np.ones(2), high=np.ones(2), low=np.ones(2))
    with pytest.raises(errors.DTypeError, match="got a int"):
        one_d.append(open=1, close=1.0, high=1.0, low=1.0)
    assert _state(one_d) == before

    # A DAG rows cannot be appended to, and one whose time-indexed input is half given.
    wide = tmp_path / "wide.py"
    wide.write_text("from serverless_ray import Input, dag\n\n@dag\nclass Wide:\n    x: Input\n"
                    "    m: Input[\"N\", \"T\"]\n\n    def p(self):\n        return x @ m\n")
    obj = load(wide)(x=np.ones((3, 2)), m=np.ones((2, 3)))
    before = _state(obj)
    with pytest.raises(errors.ShapeError, match=r"input `m` \(N, T\) has the time dim T as its column dim"):
        obj.append(x=np.ones((1, 2)))
    assert _state(obj) == before
    with pytest.raises(ValueError, match="keep= needs a DAG rows can be appended to"):
        load(wide)(keep=5, x=np.ones((3, 2)))
    half = long_dag(x=data["x"][:5], w=data["w"])
    before = _state(half)
    with pytest.raises(errors.MissingInputError, match="input `y` has not been given while `x` holds 5 rows"):
        half.append(x=row["x"], y=row["y"], g=row["g"])
    assert _state(half) == before


def test_one_dimensional_inputs_take_rows_and_scalars():
    cls = load(ROOT / "examples" / "alpha.py")
    data = {k: v[:, 2].copy() for k, v in alpha_inputs(5).items()}
    names = cls(**data).nodes()
    obj = cls(**{k: v[:40] for k, v in data.items()})
    obj.compute(names)
    obj.append(**{k: v[40] for k, v in data.items()})  # numpy float64 scalars
    obj.append(**{k: float(v[41]) for k, v in data.items()})  # Python floats
    obj.append(**{k: np.asarray(v[42]) for k, v in data.items()})  # 0-d arrays
    obj.append(**{k: v[43:60] for k, v in data.items()})  # (k,)
    fresh = cls(**{k: v[:60] for k, v in data.items()}).compute(names)
    got = obj.compute(names)
    for n in names:
        assert got[n].shape == (60,)
        assert bits_equal(got[n], fresh[n]), n
    assert obj.compute(["f3"], last=4)["f3"].shape == (4,)


def test_last_rows(long_dag):
    data = long_inputs(6, t=320)
    obj = long_dag(**data)
    full = obj.compute(obj.nodes())
    for k in (0, 1, 5, 320, 10_000):
        got = obj.compute(["ranked", "wsq", "exposure"], last=k)
        assert got["ranked"].shape == (min(k, 320), 6)
        assert got["exposure"].shape == (min(k, 320), 3)
        assert bits_equal(got["ranked"], full["ranked"][320 - min(k, 320):])
        assert bits_equal(got["wsq"], full["wsq"])  # not time-indexed: whole
        assert not got["ranked"].flags.writeable
    assert obj.compute(["ranked"], last=np.int64(2))["ranked"].shape == (2, 6)
    for bad, error in [("3", TypeError), (1.5, TypeError), (True, TypeError), (None, None), (-1, ValueError)]:
        if error is None:
            assert obj.compute(["ranked"], last=bad)["ranked"].shape == (320, 6)
            continue
        with pytest.raises(error, match="last="):
            obj.compute(["ranked"], last=bad)


def test_lookback_is_the_compilers_total(long_dag):
    obj = long_dag(**long_inputs(7, t=10))
    assert obj.lookback("mean_of_sum") == 249 + 99
    assert obj.lookback("ranked") == 249
    assert obj.lookback("late") == max(249 + 249, 199 + 250)
    assert obj.lookback("exposure") == 29
    assert obj.lookback("wsq") == 0
    assert max(obj.lookback(n) for n in obj.nodes()) == max_lookback(long_dag._dag)
    for name in ("_sum250", "nope"):
        with pytest.raises(errors.UnknownNameError, match=f"`{name}` is not a node"):
            obj.lookback(name)
    alphas = load(ROOT / "examples" / "alphas101.py")
    assert alphas(**market_inputs(0, t=30)).lookback("alpha007") == 7 + 59  # ts_rank(abs(delta(close, 7)), 60)


def test_update_after_appends_replaces_the_whole_series(long_dag):
    data = long_inputs(8, t=340)
    head, tail = _split(data, long_dag, 320)
    obj = long_dag(**head)
    names = obj.nodes()
    obj.compute(names)
    obj.append(**{k: v[:20] for k, v in tail.items()})
    obj.compute(names)
    other = long_inputs(9, t=340)
    obj.update(y=other["y"])
    before = obj.stats()
    got = obj.compute(names)
    fresh = long_dag(**{**data, "y": other["y"]}).compute(names)
    for n in names:
        same(long_dag, n, got[n], fresh[n])
    after = obj.stats()
    assert after["ranked"]["computes"] == before["ranked"]["computes"]  # reads no y
    assert after["corr"]["rows"] - before["corr"]["rows"] == 340  # recomputed whole
    # An update to the same values changes nothing; a new `w` recomputes what reads it.
    obj.update(y=other["y"].copy())
    obj.compute(names)
    assert obj.stats() == after
    obj.update(w=other["w"])
    obj.compute(names)
    final = obj.stats()
    assert final["exposure"]["computes"] == after["exposure"]["computes"] + 1
    assert final["wsq"]["computes"] == after["wsq"]["computes"] + 1
    assert final["corr"]["computes"] == after["corr"]["computes"]
    with pytest.raises(errors.ShapeError, match="with T = 340"):
        obj.update(x=data["x"][:339])


def _stored_rows(obj) -> dict:
    return {**{k: s["value"].shape[0] for k, s in obj._inputs.items()},
            **{k: s["value"].shape[0] for k, s in obj._cache.items()}}


def _every_stored_row_is_exact(obj, cls, data: dict, names) -> None:
    """The invariant `keep=` rests on: each row an input or a node holds (from its
    `first` on) is that row of a batch run over all the rows appended so far; not only
    the rows shown, so that a lookback one row short shows up."""
    batch = cls(**data)
    batch.compute(names)
    for name, slot in obj._inputs.items():
        end = slot["first"] + slot["value"].shape[0]
        assert end == batch._end(batch._inputs[name])
        assert bits_equal(slot["value"], batch._inputs[name]["value"][slot["first"] : end]), name
    for name, slot in obj._cache.items():
        want = batch._cache[name]["value"]
        if slot["first"] == 0 and slot["value"].shape[0] == want.shape[0] and not lookbacks(cls._dag)[name].timed:
            same(cls, name, slot["value"], want)
            continue
        end = slot["first"] + slot["value"].shape[0]
        if end == want.shape[0]:  # a node asked for after the last append
            same(cls, name, slot["value"], want[slot["first"] :])


@pytest.mark.parametrize("rows", [1, 40])
def test_keep_bounds_a_stream_of_single_row_appends(long_dag, rows):
    """2,000 single-row appends under keep=ROWS: the stored rows stay bounded, every row
    held is exact, and the last ROWS rows of every node are those of a batch run."""
    n_appends = 2000
    data = long_inputs(10, t=260 + n_appends, n=4, k=2)
    head, tail = _split(data, long_dag, 260)
    obj = long_dag(keep=rows, **head)
    names = obj.nodes()
    most = max_lookback(long_dag._dag)
    lbs = lookbacks(long_dag._dag)
    # Inputs: ROWS + L rows; a node: what of those it can compute exactly; `w` and `wsq`
    # (not time-indexed): their 4 rows.
    bound = {**{k: rows + most for k in tail}, "w": 4,
             **{k: rows + most - lbs[k].total if lbs[k].timed else 4 for k in lbs}}
    gaps = 0
    for i in range(n_appends):
        obj.append(**{k: v[i : i + 1] for k, v in tail.items()})
        # `mean_of_sum` every append; `late` every 7 until append 1,200, then not until
        # the end, and `rows` every 700: so that they fall behind further than the rows
        # kept and are computed again from what is left; the others every 97.
        asked = ["mean_of_sum"] + (["late"] if i % 7 == 0 and i < 1200 else [])
        asked += [n for n in names if n != "rows" and (n != "late" or i < 1200)] if i % 97 == 0 else []
        if i % 700 == 0:
            asked.append("rows")
            if "rows" in obj._cache:  # behind the first row `mean_of_sum` still holds?
                held = obj._cache["rows"]
                gaps += held["first"] + held["value"].shape[0] < obj._cache["mean_of_sum"]["first"]
        obj.compute(asked)
        if i % 100 == 0:
            stored = _stored_rows(obj)
            assert all(stored[k] <= bound[k] for k in stored), {k: (stored[k], bound[k]) for k in stored}
        if i == 1400:
            _every_stored_row_is_exact(obj, long_dag, {k: v[: 261 + i] for k, v in data.items()} | {"w": data["w"]},
                                       names)
    assert gaps == 2  # `rows` at appends 700 and 1,400
    got = obj.compute(names)
    total = 260 + n_appends
    batch = long_dag(**data).compute(names)
    for n in names:
        want = batch[n][total - rows:] if n != "wsq" else batch[n]
        same(long_dag, n, got[n], want)
    _every_stored_row_is_exact(obj, long_dag, data, names)
    assert obj.compute(["ranked"], last=rows + 5)["ranked"].shape == (rows, 4)
    assert obj.compute(["ranked"], last=1)["ranked"].shape == (1, 4)
    stored = _stored_rows(obj)
    assert all(stored[k] <= bound[k] for k in stored)
    # A new series through update() under keep: it is given whole (all its T rows) and
    # only its last ROWS + L are kept; every node is computed whole from those.
    fresh = long_inputs(11, t=800, n=4, k=2) | {"w": data["w"]}
    obj.update(x=fresh["x"], y=fresh["y"], g=fresh["g"])
    assert _stored_rows(obj)["x"] == rows + most
    again = long_dag(**fresh).compute(names)
    got = obj.compute(names)
    for n in names:
        want = again[n][800 - rows:] if n != "wsq" else again[n]
        same(long_dag, n, got[n], want)
    _every_stored_row_is_exact(obj, long_dag, fresh, names)


def test_keep_shows_the_last_rows_of_a_short_series(long_dag):
    data = long_inputs(12, t=30)
    obj = long_dag(keep=100, **data)
    full = long_dag(**data)
    for n in obj.nodes():
        same(long_dag, n, obj.cal(n), full.cal(n))
    obj.append(**{k: v[:5] for k, v in _split(long_inputs(13, t=35), long_dag, 30)[1].items()})
    assert obj.cal("ranked").shape == (35, 6)
    for bad in (0, -3, 2.5, True, "10"):
        with pytest.raises(ValueError, match="keep= must be an int >= 1"):
            long_dag(keep=bad, **data)
