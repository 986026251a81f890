"""docs/ops.md and the op table agree: its generated part is what `sray-gen ops --markdown`
prints, and every `meaning` expression of the table, evaluated as written, computes what
the Python reference (serverless_ray.ops) does."""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT, assert_agree
from serverless_ray import ops as reference
from sray_transpiler import opdoc
from sray_transpiler.cli import ops as ops_command
from sray_transpiler.optable import OPS

DOC = ROOT / "docs" / "ops.md"
REGENERATE = "python -m sray_transpiler.opdoc docs/ops.md"


def test_docs_ops_md_holds_the_generated_tables():
    text = DOC.read_text()
    part = opdoc.extract(text)
    assert part is not None, (
        f"docs/ops.md has lost the markers of its generated part: put back the line\n  {opdoc.BEGIN}\n"
        f"and, after it, the line\n  {opdoc.END}\nthen run `{REGENERATE}`")
    assert part == opdoc.markdown(), (
        "docs/ops.md and the op table (transpiler/optable.py) have drifted apart: regenerate the part "
        f"between the markers with `{REGENERATE}` (it writes what `sray-gen ops --markdown` prints)")


def test_every_op_has_a_meaning_and_a_row():
    tables = opdoc.markdown()
    for op in OPS.values():
        assert op.meaning and op.doc, op.name
        assert f"| `{op.name}` |" in tables, op.name


def test_splice_replaces_only_the_generated_part():
    text = f"# Title\n\nprose before\n\n{opdoc.BEGIN}\nstale table\n{opdoc.END}\n\nprose after\n"
    spliced = opdoc.splice(text)
    assert spliced.startswith("# Title\n\nprose before\n\n")
    assert spliced.endswith("\n\nprose after\n")
    assert opdoc.extract(spliced) == opdoc.markdown()
    assert opdoc.splice(spliced) == spliced
    with pytest.raises(ValueError, match="no generated part"):
        opdoc.splice("# no markers\n")


def test_regenerating_in_place(tmp_path):
    path = tmp_path / "ops.md"
    path.write_text(f"intro\n{opdoc.BEGIN}\nold\n{opdoc.END}\n")
    assert opdoc.main([str(path)]) == 0
    assert opdoc.extract(path.read_text()) == opdoc.markdown()
    assert opdoc.main([str(tmp_path / "missing.md")]) == 1


def _parser():
    p = argparse.ArgumentParser(prog="sray-gen")
    ops_command.add_parser(p.add_subparsers(dest="command", required=True))
    return p


def test_ops_command_prints_the_markdown_and_points_to_the_doc(capsys):
    p = _parser()
    assert ops_command.run_args(p.parse_args(["ops", "--markdown"])) == 0
    assert capsys.readouterr().out == opdoc.markdown()
    assert ops_command.run_args(p.parse_args(["ops"])) == 0
    lines = capsys.readouterr().out.splitlines()
    assert {line.split()[0] for line in lines[1:]} == set(OPS)
    with pytest.raises(SystemExit):
        p.parse_args(["ops", "--help"])
    assert "docs/ops.md" in capsys.readouterr().out


# -- the meanings, evaluated as written --------------------------------------------------


def _truthy(v):
    return (v != 0) & ~np.isnan(v)


def _data():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((60, 7))
    x[:, 0] = rng.integers(0, 3, 60)  # ties
    y = rng.standard_normal((60, 7))
    x[rng.random(x.shape) < 0.05] = np.nan
    y[rng.random(y.shape) < 0.05] = np.nan
    g = np.broadcast_to(rng.integers(0, 3, 7).astype(float), x.shape).copy()
    g[5, 2] = np.nan  # a cell without a group
    g[7] = rng.integers(0, 2, 7)  # labels may change over time
    b = rng.standard_normal(x.shape)
    b[0, :3] = [0.0, np.nan, -0.0]
    return x, y, g, b


def _windows_of(op):
    return {"delay": (1, 3), "delta": (1, 2)}.get(op.name, (1, 2, 5))


@pytest.mark.parametrize("name", list(OPS))
def test_the_meaning_column_computes_what_the_reference_does(name):
    op = OPS[name]
    x, y, g, b = _data()
    reference_fn = getattr(reference, op.python)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        if op.kind in ("elementwise", "linalg"):
            right = b[:7, :4] if op.kind == "linalg" else b  # (N, 4), with a NaN
            env = {"np": np, "truthy": _truthy, "a": x, "b": right, "cond": y, "x": x}
            args = [{"a": x, "b": right, "cond": y, "x": x}[p] for p in op.params]
            if name == "signedpower":
                env["a"], args = 0.5, [x, 0.5]
            want = reference_fn(*args)
            got = eval(op.meaning, env)  # noqa: S307 - the op table's own text
            assert_agree(got, want, rtol=1e-12, atol=1e-15)
            return
        frames = {"x": pd.DataFrame(x), "y": pd.DataFrame(y), "g": pd.DataFrame(g)}
        if op.kind == "crosssection":
            literal = {"a": -2.0}
            args = [literal[p] if p in op.literals else frames[p].to_numpy() for p in op.params]
            got = eval(op.meaning, {"np": np, "pd": pd, **frames, **literal})  # noqa: S307
            assert_agree(np.asarray(got, dtype=float), reference_fn(*args), rtol=1e-12, atol=1e-15)
            return
        for d in _windows_of(op):
            args = [d if p == "d" else frames[p].to_numpy() for p in op.params]
            got = eval(op.meaning, {"np": np, "pd": pd, "d": d, **frames})  # noqa: S307
            want = reference_fn(*args)
            # pandas' rolling moments are running sums: exact only to rounding, and not
            # exactly 0 (or NaN) on flat windows, where docs/ops.md's flat-window rule wins.
            got = np.asarray(got, dtype=float)
            if name in ("ts_std", "covariance", "correlation"):
                got = np.where(np.isnan(want) | (want == 0), want, got)
            assert_agree(got, want, rtol=1e-9, atol=1e-12)
