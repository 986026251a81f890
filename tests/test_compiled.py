"""Compiled modules (real cargo + maturin builds) against the reference engine, and the
behaviour promised by their API: lazy, incremental with early cutoff, parallel with the
GIL released, and Python exceptions instead of crashes."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from conftest import FIXTURES, ROOT, assert_agree, panel
from serverless_ray import errors, load

ALPHA = ROOT / "examples" / "alpha.py"
SEED = FIXTURES / "dags" / "seed_incremental.py"


def alpha_inputs(seed=0, shape=(60, 9)):
    o, c, h, l = (panel(seed + k, shape) for k in range(4))
    o[3, 2] = np.nan
    c[5, 1] = np.inf
    h[7, 0] = -np.inf
    return dict(open=o, close=c, high=np.abs(h) + 2, low=l)


@pytest.fixture(scope="module")
def alpha_rs(compiled):
    return compiled(ALPHA)


def test_compiled_alpha_equals_the_reference(alpha_rs):
    inputs = alpha_inputs()
    got = alpha_rs.Alpha(**inputs).compute(["f1", "f2", "f3", "spread", "breakout", "score"])
    want = load(ALPHA, "Alpha")(**inputs).compute(list(got))
    for name in got:
        assert_agree(got[name], want[name])
    with np.errstate(all="ignore"):
        assert_agree(got["f3"], (inputs["open"] + inputs["close"]) * (inputs["close"] - inputs["open"]))


def test_api_of_a_generated_class(alpha_rs):
    inputs = alpha_inputs()
    a = alpha_rs.Alpha(**inputs)
    assert a.nodes() == ["f1", "f2", "f3", "spread", "breakout", "score"]
    assert a.inputs() == ["open", "close", "high", "low"]
    assert a.schedule() == [["f1", "f2", "spread"], ["f3", "breakout"], ["score"]]
    np.testing.assert_array_equal(a.f3(), a.cal("f3"))
    out = a.compute(["f1", "f3"])
    assert list(out) == ["f1", "f3"] and all(isinstance(v, np.ndarray) and v.dtype == np.float64 for v in out.values())
    assert alpha_rs.Alpha.f1.__doc__ == "Sum of open and close."
    assert set(a.stats()["f1"]) >= {"computes", "seconds"}
    assert "Alpha (compiled)" in repr(a)


def test_a_type_stub_ships_with_the_module(alpha_rs):
    from pathlib import Path

    stub = Path(alpha_rs.__file__).with_name("__init__.pyi").read_text()
    assert "class Alpha:" in stub and "def f3(self) -> Array:" in stub and "def update(self, *, open: Array" in stub


def test_lazy_computes_only_the_ancestors_of_what_is_asked(alpha_rs):
    a = alpha_rs.Alpha(**alpha_inputs())
    a.f3()
    computes = {k: v["computes"] for k, v in a.stats().items()}
    assert computes == {"f1": 1, "f2": 1, "f3": 1, "spread": 0, "breakout": 0, "score": 0}
    a.f3()
    assert a.stats()["f3"]["computes"] == 1  # cached


def test_seed_example_recomputes_only_the_cone_of_a_changed_input(compiled):
    m = compiled(SEED)
    s = m.Seed(a=panel(1), d=panel(2))
    ref = load(SEED)(a=panel(1), d=panel(2))
    s.F(), ref.F()
    s.update(d=panel(3))
    ref.update(d=panel(3))
    assert_agree(s.F(), ref.F())
    computes = {k: v["computes"] for k, v in s.stats().items()}
    assert computes == {"A": 1, "B": 1, "C": 1, "D": 2, "E": 2, "F": 2}
    assert computes == {k: v["computes"] for k, v in ref.stats().items()}


def test_early_cutoff_stops_at_a_bitwise_unchanged_node(compiled):
    m = compiled(SEED)
    d = np.full((4, 3), 5.0)
    s = m.Seed(a=np.ones((4, 3)), d=d)
    s.F()
    s.update(d=d * 2)  # still positive: D is recomputed, and is bitwise the same
    s.F()
    st = s.stats()
    assert (st["D"]["computes"], st["D"]["cutoffs"]) == (2, 1)
    assert (st["E"]["computes"], st["F"]["computes"]) == (1, 1)
    s.update(a=np.ones((4, 3)))  # the same value as before: nothing is stale
    s.F()
    assert s.stats()["A"]["computes"] == 1


def test_errors_are_python_exceptions_naming_the_input(alpha_rs):
    inputs = alpha_inputs()
    a = alpha_rs.Alpha(**inputs)
    with pytest.raises(errors.DTypeError, match="input `open` must be a numpy float64 array, got an array of dtype int64"):
        a.update(open=np.ones((60, 9), dtype=np.int64))
    with pytest.raises(TypeError, match="got a list"):
        a.update(open=[[1.0]])
    with pytest.raises(errors.ShapeError, match=r"input `close` has shape \(59, 9\), expected \(T, N\) with T = 60, the size input `open` gives it"):
        a.update(close=inputs["close"][:-1])
    with pytest.raises(ValueError, match=r"shape \(2, 2, 2\), expected a 1-D"):
        a.update(open=np.zeros((2, 2, 2)))
    with pytest.raises(errors.UnknownNameError, match="`nope` is not a node of DAG `Alpha`"):
        a.cal("nope")
    with pytest.raises(LookupError, match="`nope` is not an input"):
        a.update(nope=inputs["open"])
    with pytest.raises(errors.MissingInputError, match="computing `f1` needs input `close`"):
        alpha_rs.Alpha(open=inputs["open"]).f1()
    with pytest.raises(TypeError):
        a.compute("f1")  # a string is not a list of names
    # A failed update changed nothing: the object still computes on its old inputs.
    assert_agree(a.f1(), inputs["open"] + inputs["close"])


def test_reference_engine_raises_the_same_exceptions():
    inputs = alpha_inputs()
    ref = load(ALPHA)(**inputs)
    with pytest.raises(errors.DTypeError):
        ref.update(open=np.ones((60, 9), dtype=np.int64))
    with pytest.raises(errors.ShapeError):
        ref.update(close=inputs["close"][:-1])
    with pytest.raises(errors.UnknownNameError):
        ref.cal("nope")
    with pytest.raises(errors.MissingInputError):
        load(ALPHA)(open=inputs["open"]).f1()
    with pytest.raises(ValueError, match="read-only"):
        ref.f1()[:] = 0


def test_layouts_one_dimensional_inputs_and_snapshots(alpha_rs):
    o, c = panel(5, (40, 6)), panel(6, (40, 6))
    f = alpha_rs.Alpha(open=np.asfortranarray(o), close=np.asfortranarray(c))
    assert_agree(f.f1(), o + c)
    assert f.f1().flags.f_contiguous  # Fortran in, Fortran out, no transposing copy
    mixed = alpha_rs.Alpha(open=np.asfortranarray(o), close=c)
    assert_agree(mixed.f2(), c - o)
    strided = alpha_rs.Alpha(open=o[::2, ::3], close=c[::2, ::3])
    assert_agree(strided.f1(), o[::2, ::3] + c[::2, ::3])
    one_d = alpha_rs.Alpha(open=o[:, 0].copy(), close=c[:, 0].copy())
    assert one_d.f3().shape == (40,)
    # Inputs are snapshots; outputs are read-only views of the cache (no copy).
    mine = o.copy()
    a = alpha_rs.Alpha(open=mine, close=c)
    first = a.f1()
    mine[:] = 0
    with pytest.raises(ValueError, match="read-only"):
        first[:] = 0
    mutable = first.copy()
    mutable[:] = 0
    assert_agree(a.f1(), o + c)
    del a  # a result outlives its engine
    assert_agree(first, o + c)


def test_function_form_module(compiled):
    m = compiled(ROOT / "examples" / "funcs_seed.py")
    data = {k: panel(i, (30, 4)) for i, k in enumerate(["open", "close", "high", "low"])}
    got = m.FuncsSeed(**data).compute(["f1", "f2", "f3", "f4"])
    want = load(ROOT / "examples" / "funcs_seed.py")(**data).compute(["f1", "f2", "f3", "f4"])
    for k in got:
        assert_agree(got[k], want[k])


def test_keyword_and_non_ascii_names_build_and_import(compiled):
    m = compiled(FIXTURES / "dags" / "awkward_names.py")
    x = m.match(type=np.ones((3, 2)), fn=np.ones((3, 2)), **{"α": np.full((3, 2), 2.0)})
    assert x.nodes() == ["loop", "struct", "impl_", "self_", "Panel", "β"]
    assert x.inputs() == ["type", "fn", "α"]
    np.testing.assert_array_equal(x.cal("β"), np.full((3, 2), 6.5))
    assert 'Docstring with "quotes", \\backslashes\\, {braces}' in m.match.loop.__doc__
    assert m.Match(x=np.ones(3)).default().tolist() == [4.0, 4.0, 4.0]


def test_the_gil_is_released_while_computing(alpha_rs):
    """Another Python thread keeps running during a long compute."""
    big = {k: panel(i, (3000, 2000)) for i, k in enumerate(["open", "close", "high", "low"])}
    a = alpha_rs.Alpha(**big)
    ticks: list[float] = []
    stop = threading.Event()

    def ticker():
        while not stop.is_set():
            ticks.append(time.perf_counter())

    t = threading.Thread(target=ticker)
    t.start()
    try:
        time.sleep(0.05)
        start = time.perf_counter()
        a.score()
        end = time.perf_counter()
    finally:
        stop.set()
        t.join()
    # With the GIL held the ticker could only run at the very edges of the call.
    middle = [x for x in ticks if start + 0.25 * (end - start) < x < start + 0.75 * (end - start)]
    assert middle, f"no tick during the middle of a {end - start:.3f}s compute"
