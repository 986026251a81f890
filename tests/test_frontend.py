"""The frontend and the passes on well-formed sources: what IR each form produces."""

from __future__ import annotations

import pytest

from conftest import FIXTURES, ROOT
from sray_transpiler import ir, load, parse_checked
from sray_transpiler.analyses.graph import cone, levels, node_dependencies, topological_order
from sray_transpiler.frontend import parse_source
from sray_transpiler.passes import PIPELINE, run_pipeline


def parse(source: str) -> ir.Module:
    result = parse_source(source, "t.py")
    assert not result.diagnostics, [d.render() for d in result.diagnostics]
    return result.module


def test_class_form_inputs_nodes_docstrings_and_bare_names():
    module = parse_checked(ROOT / "examples" / "alpha.py")
    (dag,) = module.dags
    assert dag.name == "Alpha" and dag.form == "class"
    assert [i.name for i in dag.inputs] == ["open", "close", "high", "low"]
    assert [n.name for n in dag.nodes] == ["f1", "f2", "f3", "spread", "breakout", "score"]
    assert dag.node("f1").doc == "Sum of open and close."
    # `close - open` (bare names) reads the same inputs as `self.close - self.open`.
    assert dag.node("f2").result == ir.Call("sub", (ir.Ref("close", "input"), ir.Ref("open", "input")))
    assert node_dependencies(dag)["f3"] == ["f1", "f2"]


def test_function_form_names_the_dag_after_the_module_and_inlines_helpers():
    # Dependencies are listed in first-use order of the body.
    module = parse_checked(ROOT / "examples" / "funcs_seed.py")
    (dag,) = module.dags
    assert dag.name == "FuncsSeed" and dag.form == "function"
    assert [i.name for i in dag.inputs] == ["open", "close", "high", "low"]
    assert [n.name for n in dag.nodes] == ["f1", "f2", "f3", "f4"]  # `_clip` is a helper
    assert node_dependencies(dag) == {
        "f1": ["close", "open"], "f2": ["high", "low"], "f3": ["f1", "f2"], "f4": ["f3", "f1"],
    }
    f4 = dag.node("f4")
    assert {b.name for b in f4.body} == {"_clip/x", "_clip/bound"}


def test_decorated_functions_are_not_nodes():
    module = parse("import serverless_ray\n\n@serverless_ray.remote\ndef task(x):\n    return x\n\ndef f1(a):\n    return a * 2\n")
    assert [n.name for n in module.dags[0].nodes] == ["f1"]


def test_locals_rebinding_augmented_assignment_and_qualified_ops():
    module = parse(
        "from serverless_ray import dag, Input\nimport numpy as np\n"
        "@dag\nclass D:\n    x: Input\n"
        "    def n(self):\n        y = self.x\n        y += 1\n        y = np.where(y > 0, y, np.nan)\n"
        "        return ops.signedpower(y, 2) + abs(y) + self.x ** -1\n"
    )
    node = module.dags[0].node("n")
    assert [b.name for b in node.body] == ["y", "y#2", "y#3"]
    assert node.body[1].value == ir.Call("add", (ir.Local("y"), ir.Const(1.0)))
    ops = {e.op for e in ir.walk(node.result) if isinstance(e, ir.Call)}
    assert ops == {"add", "signedpower", "abs", "pow"}  # `** -1`: a negative literal
    where = node.body[2].value
    assert where.op == "where" and where.args[2].value != where.args[2].value  # np.nan


def test_self_method_call_reads_the_node_and_keyword_arguments_map_to_parameters():
    module = parse(
        "@dag\nclass D:\n    x: Input\n    def a(self):\n        return self.x * 2\n"
        "    def b(self):\n        return where(cond=self.a() > 1, b=0, a=self.x)\n"
    )
    b = module.dags[0].node("b")
    assert b.result == ir.Call("where", (ir.Call("gt", (ir.Ref("a", "node"), ir.Const(1.0))), ir.Ref("x", "input"), ir.Const(0.0)))


def test_graph_facts_of_the_seed_example():
    dag = parse_checked(FIXTURES / "dags" / "seed_incremental.py").dags[0]
    assert topological_order(dag) == ["A", "B", "C", "D", "E", "F"]
    assert levels(dag) == [["A", "D"], ["B", "E"], ["C"], ["F"]]
    assert cone(dag, "d") == {"D", "E", "F"}


def test_dead_locals_are_removed_and_every_pass_keeps_the_ir_valid():
    module = parse(
        "@dag\nclass D:\n    x: Input\n"
        "    def n(self):\n        unused = self.x * 3\n        chain = unused + 1\n        kept = self.x + 1\n        return kept\n"
    )
    out = run_pipeline(module, check=True)
    assert [b.name for b in out.dags[0].node("n").body] == ["kept"]
    assert run_pipeline(out) is out  # a fixed point returns the same object


@pytest.mark.parametrize("path", [ROOT / "examples" / "alpha.py", ROOT / "examples" / "funcs_seed.py",
                                  FIXTURES / "dags" / "awkward_names.py", FIXTURES / "dags" / "seed_incremental.py"])
def test_check_ir_after_every_pass(path):
    module = parse_checked(path)
    assert ir.check_ir(module) == []
    for p in PIPELINE:
        module = p(module)
        assert ir.check_ir(module) == [], p.__name__
    assert load(path) == module


def test_private_nodes_in_both_forms_and_tuple_assignment():
    cls = parse(
        "@dag\nclass D:\n    x: Input\n    y: Input\n"
        "    def _mid(self):\n        return (self.x + self.y) / 2\n"
        "    def _clip(self, v, b):\n        return minimum(maximum(v, -b), b)\n"
        "    def n(self):\n        a, b = self._mid, self.x\n        return self._clip(a - b, 1)\n"
    ).dags[0]
    assert [(n.name, n.private) for n in cls.nodes] == [("n", False), ("_mid", True)]
    assert [b.name for b in cls.node("n").body] == ["a", "b", "_clip/v", "_clip/b"]
    fn = parse("def _mid(high, low):\n    return (high + low) / 2\n\ndef f(_mid, close):\n    return close - _mid\n").dags[0]
    assert [(n.name, n.private) for n in fn.nodes] == [("f", False), ("_mid", True)]
    assert [i.name for i in fn.inputs] == ["close", "high", "low"]


def test_input_dims_in_both_forms_and_the_inferred_dims_of_nodes():
    from sray_transpiler.analyses.shapes import infer_dims

    cls = parse(
        "@dag\nclass M:\n    r: Input\n    w: Input['N', 'K']\n    v: serverless_ray.Input[N, K]\n"
        "    def e(self): return self.r @ (self.w + self.v)\n    def s(self): return rank(self.e) * 2\n"
    ).dag()
    assert [i.dims for i in cls.inputs] == [("T", "N"), ("N", "K"), ("N", "K")]
    assert infer_dims(cls) == ({"r": ("T", "N"), "w": ("N", "K"), "v": ("N", "K"), "e": ("T", "K"), "s": ("T", "K")}, [])
    fn = parse("def e(r, w: Input['N', 'K']): return r @ w\ndef f(e, w): return e\n").dag()
    assert {i.name: i.dims for i in fn.inputs} == {"r": ("T", "N"), "w": ("N", "K")}


def test_an_input_annotated_two_ways_in_the_function_form_is_an_error():
    result = parse_source("def e(r, w: Input['N', 'K']): return r @ w\ndef f(r, w: Input['K', 'N']): return r\n", "t.py")
    assert [d.message for d in result.diagnostics] == ["input `w` has dims (K, N) here, (N, K) elsewhere"]
    result = parse_source("def e(r: int): return r\n", "t.py")
    assert "parameter `r` is annotated, but not with `Input`" in result.diagnostics[0].message
