"""One fixture per kind of bad input: the message, its location, and its help text."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import FIXTURES, ROOT
from sray_transpiler import CompileError, parse_checked

ERRORS = FIXTURES / "errors"

# fixture -> [(line, col, message fragment, help fragment)], in report order.
EXPECTED = {
    "cycle.py": [(8, 9, "cycle in DAG `Alpha`: f1 -> f3 -> f1", "break the cycle")],
    "unknown_name.py": [
        (13, 33, "unknown name `self.clsoe` in node `f2`", "did you mean `close`?"),
        (15, 9, "node `f3` cannot be computed: it depends on `f2`, which has errors", "fix the errors reported for `f2`"),
        (19, 16, "unknown name `vwap` in node `f4`", "declare it as an input: `vwap: Input`"),
    ],
    "duplicate_node.py": [(11, 9, "`f1` is defined twice in DAG `Alpha`", "rename or remove")],
    "input_and_node.py": [(9, 9, "`close` is both an input and a node of DAG `Alpha`", "rename the node or the input")],
    "unsupported.py": [
        (10, 9, "`for` loops are not supported in a DAG node", "straight-line"),
        (15, 9, "`if` statements are not supported in a DAG node", "use `where(cond, a, b)`"),
        (20, 16, "`self.open.mean()` is not supported in node `attribute`", "apply an op"),
        (23, 16, "unknown function `pandas.rolling` in node `foreign`", "sray-gen ops"),
        (26, 16, "unknown function `np.foo` in node `unknown_op`", "sray-gen ops"),
        (29, 16, "unsupported expression (List) in node `starred`", "node bodies use"),
        (30, 27, "`*` unpacking is not supported", "one by one"),
        (33, 32, "`and` / `or` do not work on arrays", "use `&` / `|`"),
        (36, 16, "attribute access `self.open.shape` is not supported in node `shape`", "by name"),
    ],
    "star_params.py": [
        (1, 8, "`*args` / `**kwargs` are not supported in `f1`", "name each dependency"),
        (2, 12, "unknown name `prices` in node `f1`", "add `prices` as a parameter"),
        (5, 20, "parameter `close` has a default value", "write constants inside the body"),
    ],
    "reserved_name.py": [(8, 9, "node name `update` is taken by the generated class's method", "rename the node")],
    "no_input.py": [
        (8, 9, "node `const` reads no input", "make it depend on an input"),
        (11, 9, "node `uses_const` reads no input", "make it depend on an input"),
    ],
    "syntax_error.py": [(9, 1, "invalid Python syntax", "")],
    "no_dag.py": [(1, 1, "no DAG found", "decorate a class with @dag")],
    "function_form_unknown.py": [(6, 17, "unknown name `f2` in node `f3`", "add `f2` as a parameter of `f3`")],
    "recursive_helper.py": [(2, 12, "helper `_twice` calls itself (_twice -> _twice)", "cannot recurse")],
    "bad_dims.py": [
        (8, 10, "an input has 2 dims, this annotation names 3", "Input[\"rows\", \"cols\"]"),
        (9, 29, "the operands of `+` in node `mixed` have different dims: (T, N) and (N, K)", "same dims"),
        (10, 29, "`@` in node `inner` multiplies (N, K) by (T, N): the left operand's columns (K) must be",
         "name it alike"),
        (11, 32, "the operands of `correlation` in node `windowed` have different dims: (T, N) and (T, K)",
         "same dims"),
        (13, 18, "an input's dims are names", "inputs that share a dim name"),
    ],
    "bad_windows.py": [
        (8, 27, "the window `d` of `ts_mean(x, d)` must be an integer literal >= 1", "ts_mean(x, 10)"),
        (10, 27, "the window `d` of `ts_mean(x, d)` must be an integer literal >= 1", "ts_mean(x, 10)"),
        (12, 21, "`x` of `rank(x)` must be an array, not a constant", "pass an input"),
        (14, 27, "`a` of `scale(x, a)` must be a number literal", ""),
    ],
}


def test_every_error_fixture_is_covered():
    assert sorted(p.name for p in ERRORS.glob("*.py")) == sorted(EXPECTED)


@pytest.mark.parametrize("fixture", sorted(EXPECTED))
def test_error_fixture(fixture):
    path = ERRORS / fixture
    with pytest.raises(CompileError) as info:
        parse_checked(path)
    got = info.value.diagnostics
    assert len(got) == len(EXPECTED[fixture]), "\n".join(d.message for d in got)
    for d, (line, col, message, help) in zip(got, EXPECTED[fixture]):
        assert (d.span.line, d.span.col) == (line, col), d.render()
        assert message in d.message
        assert help in d.help
        assert d.span.file == str(path)
    count = len(got)
    assert info.value.render().endswith(f"{count} error{'s' if count != 1 else ''} in {path}")


def test_cycle_names_each_edge_with_its_location():
    with pytest.raises(CompileError) as info:
        parse_checked(ERRORS / "cycle.py")
    (d,) = info.value.diagnostics
    edges = {(n.span.line, n.span.col, n.message) for n in d.notes}
    assert edges == {(9, 16, "`f1` uses `f3`"), (15, 16, "`f3` uses `f1`")}


def test_rendering_shows_the_line_and_a_caret_under_the_span():
    with pytest.raises(CompileError) as info:
        parse_checked(ERRORS / "unknown_name.py")
    text = info.value.render()
    assert f"{ERRORS / 'unknown_name.py'}:13:33: error: unknown name `self.clsoe` in node `f2`" in text
    lines = text.splitlines()
    at = lines.index("  13 |         return self.open - self.clsoe")
    assert lines[at + 1] == "     |                                 ^^^^^"


def test_check_command_exits_1_and_prints_every_problem():
    proc = subprocess.run(
        [sys.executable, "-m", "sray_transpiler.cli.main", "check", str(ERRORS / "unknown_name.py")],
        capture_output=True, text=True,
    )
    assert proc.returncode == 1
    assert "did you mean `close`?" in proc.stderr
    assert proc.stderr.rstrip().endswith(f"3 errors in {ERRORS / 'unknown_name.py'}")


def test_check_command_prints_the_graph_of_a_clean_file():
    proc = subprocess.run(
        [sys.executable, "-m", "sray_transpiler.cli.main", "check", str(ROOT / "examples" / "alpha.py")],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "DAG Alpha (class form): 4 inputs, 6 nodes, 3 levels" in out
    assert "inputs: open, close, high, low" in out
    assert "f3       <- f1, f2" in out
    assert "0: f1, f2, spread" in out and "2: score" in out


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(CompileError, match="cannot read the file"):
        parse_checked(tmp_path / "nope.py")


def test_ops_command_lists_every_op_of_the_table():
    from sray_transpiler.optable import OPS

    proc = subprocess.run([sys.executable, "-m", "sray_transpiler.cli.main", "ops"], capture_output=True, text=True)
    assert proc.returncode == 0
    names = {line.split()[0] for line in proc.stdout.splitlines()[1:]}
    assert names == set(OPS)
