"""Code generation: safe names, exact literals, minimal parentheses, deterministic and
golden output."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from conftest import FIXTURES, ROOT
from sray_transpiler import ir, load
from sray_transpiler.backend.expr import rust_expr, rust_float
from sray_transpiler.backend.names import RUST_KEYWORDS, IdentAllocator, rust_str, sanitize
from sray_transpiler.targets import render

GOLDEN = Path(__file__).resolve().parent / "golden"


def test_keywords_non_ascii_and_collisions_get_distinct_valid_identifiers():
    alloc = IdentAllocator()
    got = [alloc(n) for n in ["type", "match", "fn", "loop", "struct", "impl_", "self", "α", "u3b1", "x", "x"]]
    assert got == ["r#type", "r#match", "r#fn", "r#loop", "r#struct", "impl_", "self_", "u3b1", "u3b1_2", "x", "x"]
    for name in ["gen", "async", "Self", "crate", "super", "_", "1x", "a-b", "名前"]:
        ident = sanitize(name)
        bare = ident.removeprefix("r#")
        assert bare.isascii() and (bare[0].isalpha() or bare[0] == "_") and bare.replace("_", "a").isalnum()
        assert ident.startswith("r#") or bare not in RUST_KEYWORDS


def test_rust_str_escapes_everything_that_could_break_out():
    text = 'a "quoted" \\ {x} */ \n line\t and \u03b1 \x00'
    lit = rust_str(text)
    assert lit == '"a \\"quoted\\" \\\\ {x} */ \\n line\\t and \\u{3b1} \\u{0}"'
    assert "\n" not in lit


def test_float_literals_round_trip():
    assert rust_float(2.0) == ("2.0", 100)
    assert rust_float(-0.5)[0] == "-0.5"
    assert rust_float(1e-5)[0] == "1e-05"
    assert rust_float(math.nan)[0] == "f64::NAN"
    assert rust_float(-math.inf)[0] == "-f64::INFINITY"
    assert rust_float(-0.0)[0] == "-0.0"


_arith = st.recursive(
    st.one_of(st.floats(-100, 100, allow_nan=False).map(ir.Const), st.sampled_from([ir.Ref("x", "input"), ir.Ref("y", "input")])),
    lambda inner: st.one_of(
        st.tuples(st.sampled_from(["add", "sub", "mul", "div"]), inner, inner).map(lambda t: ir.Call(t[0], (t[1], t[2]))),
        inner.map(lambda a: ir.Call("neg", (a,))),
    ),
    max_leaves=12,
)


def _python_value(e, x, y):
    match e:
        case ir.Const(value=v):
            return v
        case ir.Ref(name=n):
            return {"x": x, "y": y}[n]
        case ir.Call(op="neg", args=(a,)):
            return -_python_value(a, x, y)
        case ir.Call(op=op, args=(a, b)):
            a, b = _python_value(a, x, y), _python_value(b, x, y)
            return {"add": a + b, "sub": a - b, "mul": a * b, "div": a / b if b else math.nan}[op]


@given(_arith)
def test_printed_arithmetic_keeps_its_meaning(e):
    # For + - * / and unary minus, Rust and Python share precedence and associativity,
    # so the printed text evaluated as Python must give the IR's value.
    text, _ = rust_expr(e, {"x": "x", "y": "y"})
    try:
        expected = _python_value(e, 1.5, -2.25)
        actual = eval(text.replace("--", "- -"), {}, {"x": 1.5, "y": -2.25})
    except ZeroDivisionError:
        return
    assert (math.isnan(expected) and math.isnan(actual)) or actual == expected or math.isclose(actual, expected)
    assert "((" not in text and not (text.startswith("(") and text.endswith(")") and text.count("(") == 1)


def test_parentheses_only_where_needed():
    a, b, c = (ir.Ref(n, "input") for n in "abc")
    sub = ir.Call("sub", (a, ir.Call("sub", (b, c))))
    assert rust_expr(sub, {"a": "a", "b": "b", "c": "c"})[0] == "a - (b - c)"
    left = ir.Call("sub", (ir.Call("sub", (a, b)), c))
    assert rust_expr(left, {"a": "a", "b": "b", "c": "c"})[0] == "a - b - c"
    neg = ir.Call("neg", (ir.Call("neg", (ir.Call("add", (a, b)),)),))
    assert rust_expr(neg, {"a": "a", "b": "b"})[0] == "-(-(a + b))"


def _crate(path: Path) -> dict[str, str]:
    """Every file of the crate, with every build target's part."""
    return render(load(path), path.stem + "_rs")


def test_generation_is_deterministic_across_processes():
    path = FIXTURES / "dags" / "awkward_names.py"
    here = _crate(path)
    assert _crate(path) == here
    script = (
        "import json, sys; from pathlib import Path; sys.path.insert(0, sys.argv[2]);"
        "from test_backend import _crate; print(json.dumps(_crate(Path(sys.argv[1]))))"
    )
    for seed in ("1", "2"):
        proc = subprocess.run([sys.executable, "-c", script, str(path), str(Path(__file__).parent)],
                              capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": seed}, check=True)
        assert json.loads(proc.stdout) == here


def test_generated_rust_matches_the_golden_files():
    """The Rust of examples/alpha.py; regenerate with SRAY_UPDATE_GOLDEN=1 after a
    deliberate change, and review the diff."""
    files = {k: v for k, v in _crate(ROOT / "examples" / "alpha.py").items() if k.endswith((".rs", ".pyi"))}
    golden = GOLDEN / "alpha"
    if os.environ.get("SRAY_UPDATE_GOLDEN"):
        for rel, text in files.items():
            (golden / rel).parent.mkdir(parents=True, exist_ok=True)
            (golden / rel).write_text(text)
    stored = {p.relative_to(golden).as_posix(): p.read_text() for p in golden.rglob("*") if p.is_file()}
    assert stored == files


def test_a_new_build_target_is_one_registry_entry(monkeypatch):
    """A target adds its part to every crate (a binary, its feature, a file) and shows up
    in `sray-gen build --target`, without edits to the backend, the CLI or the templates
    it does not own."""
    from sray_transpiler import targets
    from sray_transpiler.backend.rust import CrateBin, CratePart
    from sray_transpiler.cli.main import parser
    from sray_transpiler.targets.base import Target

    built = []
    extra = Target(
        name="server",
        help="an HTTP server binary",
        part=CratePart(files=(("{crate}.pyi.copy", "module.pyi.j2"),),
                       features=(("server", ("sray-runtime/lambda",), "The server binary."),),
                       bins=(CrateBin("serve", "bootstrap.rs.j2", "server", "The HTTP server."),)),
        build=lambda crate, config, progress: built.append(crate) or "served",
    )
    real = targets.registry()
    monkeypatch.setattr(targets, "registry", lambda: {**real, "server": extra})
    files = targets.render(load(ROOT / "examples" / "alpha.py"), "alpha_rs")
    assert files["src/bin/serve.rs"] == files["src/bin/bootstrap.rs"]
    assert files["alpha_rs.pyi.copy"] == files["alpha_rs.pyi"]
    cargo = files["Cargo.toml"]
    assert '[[bin]]\nname = "serve"\npath = "src/bin/serve.rs"\nrequired-features = ["server"]' in cargo
    assert 'server = ["sray-runtime/lambda"]' in cargo and 'python = ["dep:pyo3", "sray-runtime/python"]' in cargo
    args = parser().parse_args(["build", "x.py", "--target", "server"])
    assert args.target == "server"
    assert [t.name for t in targets.select("all")] == ["python", "lambda", "server"]
