"""The lookback analysis (analyses/lookback.py): rows before an output row that each op,
node and DAG reads; whether a DAG can append rows; how `sray-gen explain` and `check`
print it; and the input names the generated class reserves (`keep`)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import FIXTURES, ROOT
from sray_transpiler import CompileError, ir, parse_checked
from sray_transpiler.analyses.lookback import (
    NodeLookback,
    append_blocker,
    call_lookback,
    lookbacks,
    max_lookback,
    time_inputs,
)
from sray_transpiler.analyses.validate import validate
from sray_transpiler.cli.check import summary
from sray_transpiler.explain import explain
from sray_transpiler.frontend import parse_source
from sray_transpiler.optable import OPS
from sray_transpiler.passes import run_pipeline

HEADER = "from serverless_ray import Input, dag\n\n\n@dag\nclass D:\n"


def dag_of(body: str) -> ir.Dag:
    """The DAG of a class body (indented by 4), parsed and validated."""
    result = parse_source(HEADER + body, "t.py")
    problems = list(result.diagnostics) + validate(result.module, result.broken)
    assert not problems, [d.render() for d in problems]
    return result.module.dags[0]


def totals(dag: ir.Dag) -> dict[str, int]:
    return {name: lb.total for name, lb in lookbacks(dag).items()}


# -- op calls --------------------------------------------------------------------------


@pytest.mark.parametrize("op", sorted(OPS))
def test_call_lookback_of_every_op(op):
    spec = OPS[op]
    x = ir.Ref("x", "input")
    args = tuple(ir.Const(7.0) if p in spec.windows else ir.Const(1.0) if p in spec.literals else x
                 for p in spec.params)
    got = call_lookback(ir.Call(op, args))
    if op in ("delay", "delta"):
        assert got == 7
    elif spec.kind == "timeseries":
        assert got == 6  # a window of 7 rows: the output row and 6 before it
    else:
        assert spec.kind in ("elementwise", "crosssection", "linalg") and got == 0


def test_the_window_is_read_from_its_parameter_not_the_last_argument():
    x, y = ir.Ref("x", "input"), ir.Ref("y", "input")
    assert call_lookback(ir.Call("correlation", (x, y, ir.Const(250.0)))) == 249
    assert call_lookback(ir.Call("ts_mean", (x, ir.Const(1.0)))) == 0


# -- nodes -----------------------------------------------------------------------------


def test_composition_inside_a_node_adds_along_the_path():
    dag = dag_of("    x: Input\n    def a(self): return delta(ts_mean(x, 10), 3)\n")
    assert lookbacks(dag)["a"] == NodeLookback(local=12, total=12, timed=True, reads={"x": 12})


def test_reading_a_node_adds_its_total():
    dag = dag_of(
        "    x: Input\n"
        "    def n1(self): return ts_sum(x, 20)\n"
        "    def n2(self): return delay(n1, 5)\n"
        "    def n3(self): return n2 + ts_max(x, 30)\n"
    )
    lb = lookbacks(dag)
    assert lb["n1"] == NodeLookback(19, 19, True, {"x": 19})
    assert lb["n2"] == NodeLookback(5, 24, True, {"n1": 5})
    # n3 reads n2 (total 24) at need 0 and x at need 29: the longer path wins.
    assert lb["n3"] == NodeLookback(29, 29, True, {"n2": 0, "x": 29})
    assert max_lookback(dag) == 29


def test_elementwise_and_cross_sectional_ops_read_only_the_same_row():
    dag = dag_of("    x: Input\n    y: Input\n    def r(self): return rank(x) * demean(y) + abs(x)\n")
    assert lookbacks(dag)["r"] == NodeLookback(0, 0, True, {"x": 0, "y": 0})
    assert max_lookback(dag) == 0


def test_a_dependency_read_on_several_paths_counts_the_longest():
    dag = dag_of("    x: Input\n    def s(self): return ts_sum(x, 10) + delay(x, 3) + x\n")
    assert lookbacks(dag)["s"].reads == {"x": 9}


def test_let_chains_pass_the_need_of_every_use_to_the_bound_value():
    dag = dag_of(
        "    x: Input\n"
        "    def c(self):\n"
        "        a = ts_mean(x, 5)\n"  # read by b (need 2 + 2) and by s (need 2)
        "        b = delay(a, 2)\n"
        "        s = a + b\n"
        "        unused = delay(x, 100)\n"  # never reaches the result
        "        return ts_sum(s, 3)\n"
    )
    assert lookbacks(dag)["c"] == NodeLookback(8, 8, True, {"x": 8})


def test_matmul_with_a_non_timed_right_operand():
    dag = dag_of(
        "    close: Input\n"
        "    loadings: Input['N', 'K']\n"
        "    betas: Input['K', 'N']\n"
        "    def exposure(self): return close @ loadings\n"
        "    def smooth(self): return ts_mean(close, 3) @ loadings\n"
        "    def trend(self): return ts_mean(exposure, 5)\n"
        "    def gram(self): return betas @ loadings\n"
        "    def rotated(self): return delta(exposure @ gram, 2)\n"
    )
    lb = lookbacks(dag)
    assert lb["exposure"] == NodeLookback(0, 0, True, {"close": 0})  # loadings is not counted
    assert lb["smooth"] == NodeLookback(2, 2, True, {"close": 2})
    assert lb["trend"] == NodeLookback(4, 4, True, {"exposure": 4})  # (T, K) is timed
    assert lb["gram"] == NodeLookback(0, 0, False, {})  # (K, K): its rows are not time
    assert lb["rotated"] == NodeLookback(2, 2, True, {"exposure": 2})  # gram: the right operand
    assert time_inputs(dag) == ["close"] and append_blocker(dag) is None


def test_private_nodes_have_a_lookback_too():
    dag = dag_of(
        "    x: Input\n"
        "    def _base(self): return ts_mean(x, 4)\n"
        "    def f(self): return delta(self._base, 2)\n"
    )
    assert [n.name for n in dag.nodes if n.private] == ["_base"]
    lb = lookbacks(dag)
    assert lb["_base"].total == 3 and lb["f"] == NodeLookback(2, 5, True, {"_base": 2})
    # Fused into its only reader, the private node's window moves into f's own kernel.
    fused = run_pipeline(ir.Module("t.py", (dag,))).dags[0]
    assert [n.name for n in fused.nodes] == ["f"]
    assert lookbacks(fused)["f"] == NodeLookback(5, 5, True, {"x": 5})


# -- appending -------------------------------------------------------------------------


def test_an_input_with_time_as_its_column_dim_blocks_appends():
    dag = dag_of(
        "    close: Input\n"
        "    w: Input['N', 'T']\n"
        "    def cov(self): return w @ close\n"
        "    def m(self): return ts_mean(close, 10)\n"
    )
    assert time_inputs(dag) == ["close"]
    assert "`w` (N, T)" in append_blocker(dag)
    lb = lookbacks(dag)
    assert lb["cov"] == NodeLookback(0, 0, False, {})  # (N, N)
    assert lb["m"].total == 9


def test_a_dag_without_timed_inputs_cannot_append():
    dag = dag_of("    a: Input['N', 'K']\n    b: Input['K', 'M']\n    def p(self): return a @ b\n")
    assert time_inputs(dag) == [] and max_lookback(dag) == 0
    assert "no input has the time dim T" in append_blocker(dag)


def test_time_inputs_keep_the_declaration_order():
    dag = dag_of(
        "    z: Input\n    k: Input['N', 'K']\n    a: Input\n"
        "    def f(self): return (z + a) @ k\n"
    )
    assert time_inputs(dag) == ["z", "a"]


# -- before and after the optimizer ----------------------------------------------------

HAND_WRITTEN = [
    # CSE shares delta(close, 1) and ts_mean(delta(close, 1), 5) across nodes.
    (
        "    close: Input\n    open: Input\n"
        "    def a(self): return rank(delta(close, 1))\n"
        "    def b(self): return ts_mean(delta(close, 1), 5) * open\n"
        "    def c(self): return delay(ts_mean(delta(close, 1), 5), 3) + ts_mean(delta(close, 1), 5)\n"
    ),
    # Private nodes read once are fused; a private node read twice stays a node.
    (
        "    close: Input\n    high: Input\n"
        "    def _w(self): return ts_max(high, 10)\n"
        "    def _twice(self): return delay(close, 4)\n"
        "    def f(self): return ts_sum(self._w, 3)\n"
        "    def g(self): return self._twice - ts_min(self._twice, 6)\n"
        "    def h(self): return delta(self._twice, 2)\n"
    ),
    # Let chains, a node reading a node, and constants to fold.
    (
        "    x: Input\n    loadings: Input['N', 'K']\n"
        "    def n1(self):\n        a = ts_mean(x, 3)\n        b = delay(a, 3)\n        return a * (2 ** 2) + b\n"
        "    def n2(self): return decay_linear(n1, 7) @ loadings\n"
        "    def n3(self): return ts_rank(self.n2, 4) + ts_rank(self.n2, 4)\n"
    ),
]


def _assert_totals_survive_the_optimizer(module: ir.Module) -> int:
    """Every node present in both the parsed and the optimized IR has the same total, and
    so has the DAG; returns how many nodes' kernels read differently after it."""
    moved = 0
    for before, after in zip(module.dags, run_pipeline(module, check=True).dags):
        lb_before, lb_after = lookbacks(before), lookbacks(after)
        assert {n.name for n in before.public_nodes} <= set(lb_after)
        for name in set(lb_before) & set(lb_after):
            assert lb_before[name].total == lb_after[name].total, name
            moved += lb_before[name].local != lb_after[name].local
        assert max_lookback(before) == max_lookback(after)
    return moved


@pytest.mark.parametrize("example", ["alphas101.py", "alpha.py"])
def test_the_optimizer_keeps_the_totals_of_the_examples(example):
    module = parse_checked(ROOT / "examples" / example)
    moved = _assert_totals_survive_the_optimizer(module)
    if example == "alphas101.py":
        assert moved > 0  # fusion and CSE did move node boundaries: the check is not vacuous


@pytest.mark.parametrize("body", HAND_WRITTEN)
def test_the_optimizer_keeps_the_totals_of_hand_written_dags(body):
    module = ir.Module("t.py", (dag_of(body),))
    assert _assert_totals_survive_the_optimizer(module) > 0


def test_the_optimizer_keeps_the_totals_of_the_fixtures():
    for name in ("optimizable.py", "factor_model.py", "all_ops.py"):
        _assert_totals_survive_the_optimizer(parse_checked(FIXTURES / "dags" / name))


def test_hand_written_totals():
    lb = totals(dag_of(HAND_WRITTEN[0]))
    assert lb == {"a": 1, "b": 5, "c": 8}
    lb = totals(dag_of(HAND_WRITTEN[1]))
    assert lb == {"f": 11, "g": 9, "h": 6, "_w": 9, "_twice": 4}
    lb = totals(dag_of(HAND_WRITTEN[2]))
    assert lb == {"n1": 5, "n2": 11, "n3": 14}


def test_the_largest_lookback_of_alphas101():
    dag = parse_checked(ROOT / "examples" / "alphas101.py").dag()
    lb = lookbacks(dag)
    # correlation(d, delta(delay(close, 1), 1), 250): 249 + 1 + 1 rows of close.
    assert lb["alpha048"].total == 251 == max_lookback(dag)
    # where(_adv20 < volume, ts_rank(abs(delta(close, 7)), 60) ...): 59 + 7.
    assert lb["alpha007"] == NodeLookback(66, 66, True, {"close": 66, "_adv20": 0, "volume": 0})
    assert lb["_adv20"].total == 19
    assert append_blocker(dag) is None and "industry" in time_inputs(dag)


# -- explain and check -----------------------------------------------------------------


def test_explain_prints_each_nodes_lookback_and_the_dags_largest():
    text = explain(run_pipeline(parse_checked(FIXTURES / "dags" / "optimizable.py")))
    lines = text.splitlines()
    assert lines[0].endswith(", 3 levels, lookback up to 5 rows")
    assert "    base: 1 kernel, 16 bytes per (T, N) cell, lookback 2 rows" in lines
    assert "    _cse2: 1 kernel, 16 bytes per (T, N) cell, lookback 1 row" in lines
    # smooth reads _cse1 (ts_mean of _cse2 = delta(close, 1)) in a plain elementwise map.
    assert "    smooth: 1 kernel, 16 bytes per (T, N) cell, lookback 5 rows (0 in its kernel)" in lines
    assert "    _cse1: 1 kernel, 16 bytes per (T, N) cell, lookback 5 rows (4 in its kernel)" in lines

    text = explain(run_pipeline(parse_checked(ROOT / "examples" / "alphas101.py")))
    assert text.splitlines()[0].endswith(", lookback up to 251 rows")


def test_explain_marks_nodes_whose_rows_are_not_time():
    dag = dag_of("    close: Input\n    a: Input['N', 'K']\n    b: Input['K', 'N']\n"
                 "    def gram(self): return a @ b\n    def f(self): return close @ gram\n")
    text = explain(ir.Module("t.py", (dag,)))
    (gram,) = [line for line in text.splitlines() if line.startswith("    gram (N, N): ")]
    assert gram.endswith(" cell, no lookback (rows are not time)")
    (f,) = [line for line in text.splitlines() if line.startswith("    f: ")]
    assert f.endswith(" cell, lookback 0 rows")


def test_check_prints_the_largest_lookback_whether_it_appends_and_every_node():
    text = summary(parse_checked(ROOT / "examples" / "alphas101.py"))
    lines = text.splitlines()
    assert ("  lookback: at most 251 rows (alpha048); appendable: yes, rows of open, high, low, close, volume, "
            "vwap, returns, industry") in lines
    at = lines.index("  lookback per node (earlier rows of the inputs that one row depends on):")
    per_node = lines[at + 1:]
    dag = parse_checked(ROOT / "examples" / "alphas101.py").dag()
    assert len(per_node) == len(dag.nodes)
    assert "    alpha007: 66 rows" in per_node and "    alpha012: 1 row" in per_node
    assert "    _adv20:   19 rows" in per_node


def test_check_command_says_why_a_dag_cannot_append(tmp_path):
    src = tmp_path / "cov.py"
    src.write_text(HEADER + "    close: Input\n    w: Input['N', 'T']\n    def cov(self): return w @ close\n"
                   "    def m(self): return ts_mean(close, 10)\n")
    proc = subprocess.run([sys.executable, "-m", "sray_transpiler.cli.main", "check", str(src)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"{src}: ok, 1 DAG"
    assert "  lookback: at most 9 rows (m); appendable: no, input `w` (N, T) has the time dim T" in proc.stdout
    assert "    cov: - (its rows are not time)" in lines and "    m:   9 rows" in lines


def test_check_of_a_dag_without_lookback(tmp_path):
    text = summary(parse_checked(ROOT / "examples" / "alpha.py"))
    assert "  lookback: 0 rows; appendable: yes, rows of open, close, high, low" in text.splitlines()
    assert "    breakout: 0 rows" in text.splitlines()


# -- names the generated class reserves ------------------------------------------------


@pytest.mark.parametrize("source, line, col", [
    (HEADER + "    close: Input\n    keep: Input\n\n    def f(self):\n        return self.close + self.keep\n", 7, 5),
    ("def f(close, keep):\n    return close - keep\n", 1, 14),
])
def test_an_input_named_keep_is_a_compile_error(tmp_path, source, line, col):
    path = tmp_path / "keeper.py"
    path.write_text(source)
    with pytest.raises(CompileError) as info:
        parse_checked(path)
    (d,) = info.value.diagnostics
    assert (d.span.file, d.span.line, d.span.col) == (str(path), line, col)
    assert "input name `keep` is taken by the keyword `keep=` of the generated class" in d.message
    assert "rename the input" in d.help
    assert info.value.render().endswith(f"1 error in {path}")


@pytest.mark.parametrize("method", ["append", "lookback"])
def test_a_node_cannot_take_the_name_of_the_streaming_methods(tmp_path, method):
    path = tmp_path / "nodes.py"
    path.write_text(HEADER + f"    close: Input\n\n    def {method}(self):\n        return self.close + 1\n")
    with pytest.raises(CompileError) as info:
        parse_checked(path)
    (d,) = info.value.diagnostics
    assert d.span.line == 8 and f"node name `{method}` is taken by the generated class's method" in d.message
    assert "rename the node" in d.help
