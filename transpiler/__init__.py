"""sray_transpiler: the compiler behind `sray-gen`.

The folders are the pipeline, in order:

    frontend/   Python source -> IR (libcst; the source is never imported)
    analyses/   read-only facts and checks on the IR (dependency graph, cycles, names)
    passes/     IR -> IR rewrites, in the one list of passes/__init__.py
    backend/    IR -> Rust crate text (jinja2 templates of templates/rust/)
    toolchain/  Rust crate -> wheel, Lambda binary (rustfmt, maturin, cargo-zigbuild, pip)
    driver.py   source file -> checked, optimized IR (the pipeline above, in order)
    targets/    the build targets: what each adds to a crate and builds from it (registry)
    deploy/     a built artifact -> AWS (boto3)
    cli/        one module per `sray-gen` command; the top: nothing imports cli/

`optable.py` is the one place where ops are declared, `elementwise.py` the float64
meaning of the elementwise ones; `ir.py` is the IR; `config.py` the build settings
([tool.sray]); `explain.py` the plan report and cost model. Imports point down this
list (tests/test_layers.py checks it).
"""

from .diagnostics import CompileError
from .driver import load, parse_checked

__all__ = ["CompileError", "load", "parse_checked"]
