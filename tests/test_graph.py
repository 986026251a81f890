"""`sray-gen graph` and `Dag.graph()`: DOT and Mermaid text, SVG and PNG drawn by
Graphviz's `dot`, and the errors.

Graphviz must be installed (Debian/Ubuntu: `apt-get install -y graphviz`): the drawing
tests fail, not skip, without it.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from serverless_ray.reference import load as reference_load
from sray_transpiler import CompileError, ir, load, parse_checked
from sray_transpiler import diagram as dg
from sray_transpiler.cli import graph as graph_cli

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OPT = HERE / "fixtures" / "dags" / "optimizable.py"
AWKWARD = HERE / "fixtures" / "dags" / "awkward_names.py"
FACTOR = HERE / "fixtures" / "dags" / "factor_model.py"
ALPHA = ROOT / "examples" / "alpha.py"

NEEDS_DOT = "Graphviz's `dot` is not on PATH: install it (Debian/Ubuntu: apt-get install -y graphviz)"


def run(*argv) -> int:
    p = argparse.ArgumentParser(prog="sray-gen")
    sub = p.add_subparsers(dest="command", required=True)
    graph_cli.add_parser(sub)
    return graph_cli.run_args(p.parse_args(["graph", *map(str, argv)]))


def dot_vertices(text: str) -> dict[str, str]:
    """{name: attribute text} of the vertex statements of DOT text made by to_dot."""
    return {m[1]: m[2] for m in re.finditer(r'^  "((?:[^"\\]|\\.)*)" \[(label=.*)\];$', text, re.MULTILINE)}


def dot_edges(text: str) -> set[tuple[str, str]]:
    return {(m[1], m[2]) for m in re.finditer(r'^  "([^"]*)" -> "([^"]*)"', text, re.MULTILINE)}


def svg_texts(svg: bytes | str) -> list[str]:
    root = ET.fromstring(svg)
    return [(t.text or "").strip() for t in root.iter("{http://www.w3.org/2000/svg}text")]


def dag_edges(dag: ir.Dag) -> set[tuple[str, str]]:
    return {(r.name, n.name) for n in dag.nodes for r in ir.refs(n)}


# -- text ----------------------------------------------------------------------------


def test_dot_of_the_source_has_every_input_node_and_read(capsys):
    assert run(OPT) == 0
    out = capsys.readouterr().out
    dag = parse_checked(OPT).dag()
    assert out.startswith('digraph "Opt" {') and out.rstrip().endswith("}")
    vertices = dot_vertices(out)
    assert list(vertices) == [i.name for i in dag.inputs] + [n.name for n in dag.nodes]
    for i in dag.inputs:
        assert "shape=ellipse" in vertices[i.name] and "input (T, N)" in vertices[i.name]
    for n in dag.nodes:
        assert "shape=box" in vertices[n.name]
        assert ("dashed" in vertices[n.name]) == n.private, n.name
    assert dot_edges(out) == dag_edges(dag)
    # edges out of private nodes are dashed, the others not
    assert '"_mid" -> "spread" [style=dashed];' in out and '"close" -> "base";' in out
    # the label says which ops a node uses; docstrings become tooltips
    assert "ts_max, ts_min" in vertices["_range"]
    assert 'tooltip="Private and elementwise: fused into its readers."' in vertices["_mid"]


def test_dot_of_the_optimized_plan_shows_fused_kernels_and_shared_nodes(capsys):
    assert run(OPT, "--optimized") == 0
    out = capsys.readouterr().out
    plan = load(OPT).dag()
    vertices = dot_vertices(out)
    assert set(vertices) == {i.name for i in plan.inputs} | {n.name for n in plan.nodes}
    # the private nodes were fused away; the optimizer's shared nodes are drawn, dashed
    assert "_mid" not in vertices and "_range" not in vertices
    for shared in ("_cse1", "_cse2"):
        assert "dashed" in vertices[shared] and "shared by the optimizer" in vertices[shared]
    assert "fuses _mid" in vertices["spread"] and "map(div, add, mul, sub)" in vertices["spread"]
    assert "ts_max → ts_min → map(sub, add, mul)" in vertices["scaled"] and "fuses _range" in vertices["scaled"]
    assert dot_edges(out) == dag_edges(plan)
    assert ("close", "spread") not in dot_edges(out)  # its dead local went away
    assert "Opt (optimized plan)" in out


def test_mermaid_text_structure(tmp_path):
    out = tmp_path / "opt.mmd"
    assert run(OPT, "--optimized", "-o", out) == 0
    text = out.read_text(encoding="utf-8")
    lines = text.splitlines()
    assert lines[:4] == ["---", "title: Opt (optimized plan)", "---", "flowchart TB"]
    plan = load(OPT).dag()
    names = [i.name for i in plan.inputs] + [n.name for n in plan.nodes]
    vertex_lines = [x for x in lines if re.match(r"  n\d+\(", x)]
    assert len(vertex_lines) == len(names)
    ids = {}
    for k, name in enumerate(names):
        line = vertex_lines[k]
        assert line.startswith(f"  n{k}(") and f"<b>{name}</b>" in line
        ids[f"n{k}"] = name
    for i in plan.inputs:
        assert re.search(rf'\(\["<b>{i.name}</b>.*"\]\):::input$', text, re.MULTILINE)
    assert ":::shared" in vertex_lines[names.index("_cse1")]
    edges = {(ids[a], ids[b]) for a, b in re.findall(r"^  (n\d+) -(?:->|\.->) (n\d+)$", text, re.MULTILINE)}
    assert edges == dag_edges(plan)
    assert "  n11 -.-> n5" in lines  # _cse2 -> momentum, dashed
    assert any(x.startswith("  classDef shared") and "stroke-dasharray" in x for x in lines)


def test_mermaid_escapes_names_and_dot_quotes_them(capsys, tmp_path):
    assert run(AWKWARD, "--class", "match", "--format", "mmd") == 0
    text = capsys.readouterr().out
    assert "<b>α</b>" in text and "<b>β</b>" in text and "flowchart TB" in text
    # DOT keywords and quotes as names are quoted
    src = tmp_path / "kw.py"
    src.write_text("from serverless_ray import Input, dag\n\n@dag\nclass strict:\n    edge: Input\n"
                   "    def node(self):\n        return self.edge * 2\n    def digraph(self):\n"
                   "        return self.node + 1\n", encoding="utf-8")
    assert run(src) == 0
    out = capsys.readouterr().out
    assert out.startswith('digraph "strict" {') and '"edge" -> "node";' in out and '"node" -> "digraph";' in out


def test_dims_other_than_a_panel_are_labelled(capsys):
    assert run(FACTOR) == 0
    vertices = dot_vertices(capsys.readouterr().out)
    assert "input (N, K)" in vertices["loadings"]
    assert "matmul" in vertices["exposure"] and "(T, K)" in vertices["exposure"]
    assert "(T, N)" not in vertices["residual"].split("label=")[1].split(">>")[0].replace("input (T, N)", "")


# -- drawn by dot --------------------------------------------------------------------


@pytest.mark.parametrize("optimized", [False, True])
def test_svg_drawn_by_dot_names_every_vertex(tmp_path, optimized):
    assert shutil.which("dot"), NEEDS_DOT
    out = tmp_path / "opt.svg"
    assert run(OPT, "-o", out, *(["--optimized"] if optimized else [])) == 0
    texts = svg_texts(out.read_bytes())
    dag = load(OPT).dag() if optimized else parse_checked(OPT).dag()
    for name in [i.name for i in dag.inputs] + [n.name for n in dag.nodes]:
        assert name in texts, name
    assert [p.name for p in tmp_path.iterdir()] == ["opt.svg"]  # no temporary left behind


def test_svg_of_non_ascii_names_and_png(tmp_path):
    assert shutil.which("dot"), NEEDS_DOT
    assert run(AWKWARD, "--class", "match", "-o", tmp_path / "m.svg") == 0
    texts = svg_texts((tmp_path / "m.svg").read_bytes())
    for name in ("type", "fn", "α", "loop", "struct", "impl_", "self_", "Panel", "β"):
        assert name in texts, name
    assert run(ALPHA, "-o", tmp_path / "alpha.png") == 0
    assert (tmp_path / "alpha.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_reference_graph_is_the_cli_dot_and_draws_in_jupyter(capsys):
    Opt = reference_load(OPT)
    for optimized in (False, True):
        assert run(OPT, *(["--optimized"] if optimized else [])) == 0
        assert Opt.graph(optimized=optimized) == capsys.readouterr().out
    panel = np.ones((4, 3))
    a = Opt(close=panel, open=panel, high=panel, low=panel)
    g = a.graph()
    assert isinstance(g, str) and g == Opt.graph()
    assert shutil.which("dot"), NEEDS_DOT
    svg = g._repr_svg_()
    texts = svg_texts(svg)
    assert all(n in texts for n in ("close", "spread", "_mid", "_range"))
    assert g.svg() == svg


def test_reference_graph_of_a_decorated_class(monkeypatch):
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("alpha_for_graph", ALPHA)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "alpha_for_graph", module)  # @dag finds the source through it
    spec.loader.exec_module(module)
    text = module.Alpha.graph()
    assert set(dot_vertices(text)) == {"open", "close", "high", "low", "f1", "f2", "f3", "spread", "breakout",
                                       "score"}


def test_reference_graph_save(tmp_path):
    assert shutil.which("dot"), NEEDS_DOT
    g = reference_load(OPT).graph()
    g.save(tmp_path / "g.dot")
    g.save(tmp_path / "g.svg")
    assert (tmp_path / "g.dot").read_text(encoding="utf-8") == g
    assert "spread" in svg_texts((tmp_path / "g.svg").read_bytes())


# -- errors --------------------------------------------------------------------------


def test_several_dags_need_class_and_unknown_class_lists_them(capsys, tmp_path):
    assert run(AWKWARD, "-o", tmp_path / "x.dot") == 2
    err = capsys.readouterr().err
    assert "holds 2 DAGs (match, Match)" in err and "--class NAME" in err
    assert run(AWKWARD, "--class", "Nope") == 2
    err = capsys.readouterr().err
    assert "no DAG `Nope`" in err and "match, Match" in err
    assert run(AWKWARD, "--class", "Match") == 0
    assert list(tmp_path.iterdir()) == []


def test_unknown_extension(capsys, tmp_path):
    assert run(OPT, "-o", tmp_path / "opt.jpg") == 2
    err = capsys.readouterr().err
    assert "opt.jpg" in err and ".svg" in err and ".mmd" in err and "--format" in err
    assert list(tmp_path.iterdir()) == []
    # --format wins over the extension
    assert run(OPT, "-o", tmp_path / "opt.txt", "--format", "dot") == 0
    assert (tmp_path / "opt.txt").read_text(encoding="utf-8").startswith("digraph")


def test_dot_missing_fails_clearly_and_writes_nothing(capsys, tmp_path, monkeypatch):
    empty = tmp_path / "bin"
    empty.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.svg").write_text("old", encoding="utf-8")
    monkeypatch.setenv("PATH", str(empty))
    for name in ("new.svg", "old.svg", "new.png"):
        assert run(OPT, "-o", out / name) == 2
        err = capsys.readouterr().err
        assert "Graphviz's `dot` program, which is not on PATH" in err
        assert "apt-get install graphviz" in err and ".dot" in err and ".mmd" in err and "need nothing" in err
    assert sorted(p.name for p in out.iterdir()) == ["old.svg"]
    assert (out / "old.svg").read_text(encoding="utf-8") == "old"
    # text formats need nothing
    assert run(OPT, "-o", out / "g.dot") == 0 and run(OPT, "-o", out / "g.mmd") == 0
    g = reference_load(OPT).graph()
    assert g._repr_svg_() is None  # Jupyter shows the text instead
    with pytest.raises(dg.GraphvizMissing, match="apt-get install graphviz"):
        g.svg()


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "g.dot"
    target.write_text("old", encoding="utf-8")

    def broken(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(dg.DiagramError, match="No space left"):
        dg.write_atomic(target, b"new")
    assert [p.name for p in tmp_path.iterdir()] == ["g.dot"] and target.read_text(encoding="utf-8") == "old"


def test_missing_directory_and_a_dag_with_errors(capsys, tmp_path):
    assert run(OPT, "-o", tmp_path / "nope" / "g.dot") == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(CompileError):  # main prints it and exits 1, as for check
        run(HERE / "fixtures" / "errors" / "cycle.py")


def test_help_names_the_formats_and_the_install():
    p = argparse.ArgumentParser(prog="sray-gen")
    sub = p.add_subparsers(dest="command")
    graph_cli.add_parser(sub)
    text = sub.choices["graph"].format_help()
    for word in ("--class NAME", "--optimized", "-o PATH", "--format", ".mmd", "apt-get install", "stdout"):
        assert word in text, word


def test_sray_gen_graph_through_the_command_line(tmp_path):
    """`sray-gen graph` as a user runs it: wired into the CLI, an SVG naming every node."""
    import subprocess
    import sys

    out = tmp_path / "alpha.svg"
    proc = subprocess.run([sys.executable, "-m", "sray_transpiler.cli.main", "graph", str(ROOT / "examples" / "alpha.py"),
                           "-o", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    texts = {t.text for t in ET.parse(out).iter() if t.text}
    assert {"open", "close", "f1", "f2", "f3", "score"} <= texts
