"""sray_transpiler: the compiler behind `sray-gen`.

The folders are the pipeline, in order:

    frontend/   Python source -> IR (libcst; the source is never imported)
    analyses/   read-only facts and checks on the IR (dependency graph, cycles, names)
    passes/     IR -> IR rewrites, in the one list of passes/__init__.py
    backend/    IR -> Rust crate text (jinja2 templates of templates/rust/)
    toolchain/  Rust crate -> wheel and installed module (rustfmt, maturin, pip)
    cli/        one module per `sray-gen` command

`optable.py` is the one place where ops are declared; `ir.py` is the IR.
"""

from .diagnostics import CompileError
from .driver import load, parse_checked

__all__ = ["CompileError", "load", "parse_checked"]
