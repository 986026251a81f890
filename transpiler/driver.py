"""The compiler driver: source file -> checked, optimized IR.

    module = load("examples/alpha.py")   # raises CompileError listing every problem
"""

from __future__ import annotations

from pathlib import Path

from . import ir
from .analyses.validate import validate
from .diagnostics import CompileError, Diagnostic, Span
from .frontend import parse_source
from .passes import run_pipeline


def parse_checked(path: str | Path, display_name: str | None = None) -> ir.Module:
    """Parses and validates a file: the IR exactly as written, before any pass."""
    path = Path(path)
    name = display_name or str(path)
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise CompileError([Diagnostic(Span(name, 1, 1, 1, 1), f"cannot read the file: {e}")]) from None
    result = parse_source(source, name)
    diagnostics = list(result.diagnostics) + validate(result.module, result.broken)
    if diagnostics:
        raise CompileError(diagnostics, {name: source.splitlines()})
    return result.module


def load(path: str | Path, display_name: str | None = None) -> ir.Module:
    """Parses, validates and optimizes a DAG file."""
    return run_pipeline(parse_checked(path, display_name))
