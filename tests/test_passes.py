"""The optimizer passes: what each rewrites, that the IR stays valid after every pass,
the plan `sray-gen explain` prints (golden), and that optimized modules compute what the
unoptimized reference computes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from conftest import FIXTURES, ROOT, assert_agree, panel
from serverless_ray import load
from sray_transpiler import ir, parse_checked
from sray_transpiler.explain import explain
from sray_transpiler.passes import PIPELINE, run_pipeline
from sray_transpiler.passes.eliminate_common_subexpressions import eliminate_common_subexpressions
from sray_transpiler.passes.fold_constants import fold_constants
from sray_transpiler.passes.fuse_private_nodes import fuse_private_nodes

OPT = FIXTURES / "dags" / "optimizable.py"
GOLDEN = Path(__file__).resolve().parent / "golden"


def _dag(module):
    return module.dags[0]


def test_fold_constants_uses_float64_semantics():
    dag = _dag(fold_constants(parse_checked(OPT)))
    consts = [e.value for e in ir.walk(dag.node("spread").result) if isinstance(e, ir.Const)]
    assert 8.25 in consts  # 1 / 4 + 2 ** 3


def test_fuse_private_nodes_inlines_elementwise_and_single_reader_private_nodes():
    module = parse_checked(OPT)
    fused = run_pipeline(module, passes=[fuse_private_nodes])
    names = [n.name for n in _dag(fused).nodes]
    assert "_mid" not in names and "_range" not in names
    spread = _dag(fused).node("spread")
    assert "_mid" in [b.name for b in spread.body]  # now a local of spread's loop
    assert not any(isinstance(e, ir.Ref) and e.name.startswith("_") for t in ir.node_exprs(spread) for e in ir.walk(t))


def test_common_subexpressions_are_shared_across_nodes():
    module = run_pipeline(parse_checked(OPT), passes=[eliminate_common_subexpressions])
    dag = _dag(module)
    shared = [n for n in dag.nodes if n.name.startswith("_cse")]
    assert [n.result.op for n in shared] == ["ts_mean", "delta"]
    # `ts_mean(close, 3)` is the whole value of `base`: `scaled` reads `base` instead.
    assert any(isinstance(e, ir.Ref) and e.name == "base" for e in ir.walk(dag.node("scaled").result))
    for name in ("momentum", "flow"):
        node = dag.node(name)
        assert not any(isinstance(e, ir.Call) and e.op == "delta" for t in ir.node_exprs(node) for e in ir.walk(t))


def test_every_pass_keeps_the_ir_valid_and_the_pipeline_reaches_a_fixed_point():
    module = parse_checked(OPT)
    for p in PIPELINE:
        module = p(module)
        assert ir.check_ir(module) == [], p.__name__
    optimized = run_pipeline(parse_checked(OPT), check=True)
    assert run_pipeline(optimized) is optimized
    assert [b.name for b in _dag(optimized).node("spread").body] == ["_mid"]  # `unused` is gone


def test_explain_prints_the_plan(tmp_path):
    """Golden; regenerate with SRAY_UPDATE_GOLDEN=1 after a deliberate change."""
    text = explain(run_pipeline(parse_checked(OPT))) + "\n"
    golden = GOLDEN / "optimizable.explain.txt"
    if os.environ.get("SRAY_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()


def test_optimized_module_equals_the_unoptimized_reference(compiled):
    m = compiled(OPT)
    data = {k: panel(i, (80, 7)) for i, k in enumerate(["close", "open", "high", "low"])}
    data["high"] = np.abs(data["high"]) + 3
    opt = m.Opt(**data)
    assert sorted(opt.nodes()) == ["base", "flow", "momentum", "scaled", "smooth", "spread"]
    ref = load(OPT)(**data)
    got, want = opt.compute(opt.nodes()), ref.compute(opt.nodes())
    for name in got:
        assert_agree(got[name], want[name], rtol=1e-7)
    stats = opt.stats()
    assert stats["_cse2"]["computes"] == 1  # delta(close, 1): once for momentum, flow and smooth
    assert "_mid" not in stats  # fused away


def test_alpha_example_plan_has_one_fused_loop_per_node():
    text = explain(run_pipeline(parse_checked(ROOT / "examples" / "alpha.py")))
    assert text.count("<- fused map") == 6 and "1 kernel," in text


def test_a_pipeline_that_never_converges_raises_naming_the_passes_still_changing():
    import dataclasses

    import pytest

    from sray_transpiler.passes import MAX_ROUNDS, PipelineDidNotConverge

    calls = {"flip": 0, "idle": 0}

    def flip_file(module):  # always rewrites: a pass that never reaches a fixed point
        calls["flip"] += 1
        return dataclasses.replace(module, file=module.file + "'")

    def idle(module):
        calls["idle"] += 1
        return module

    with pytest.raises(PipelineDidNotConverge) as info:
        run_pipeline(parse_checked(OPT), passes=[idle, flip_file])
    assert f"in {MAX_ROUNDS} rounds" in str(info.value) and "flip_file" in str(info.value)
    assert info.value.changing == ["flip_file"]  # `idle` changed nothing and is not blamed
    assert calls == {"flip": MAX_ROUNDS, "idle": MAX_ROUNDS}


def test_passes_oscillating_between_two_modules_are_all_named():
    import dataclasses

    import pytest

    from sray_transpiler.passes import PipelineDidNotConverge

    def toggle_mark(module):  # a round never ends where it started: period two
        file = module.file
        return dataclasses.replace(module, file=file[:-1] if file.endswith("#") else file + "#")

    def rename_dags(module):
        return dataclasses.replace(module, dags=tuple(dataclasses.replace(d, name=d.name + "_") for d in module.dags))

    with pytest.raises(PipelineDidNotConverge, match="toggle_mark, rename_dags"):
        run_pipeline(parse_checked(OPT), passes=[toggle_mark, rename_dags])
