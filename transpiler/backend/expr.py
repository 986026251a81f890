"""IR expressions -> Rust scalar expressions, with the fewest parentheses that keep the
meaning (so rustc's `unused_parens` stays quiet).

    Call(mul, (Call(add, (a, b)), c))  ->  (a + b) * c
    Call(where, (Call(gt, (a, b)), a, Const(0)))  ->  s::where_(s::gt(a, b), a, 0.0)
"""

from __future__ import annotations

import math

from .. import ir
from ..optable import ATOM, OPS, PREC_UNARY


def rust_float(v: float) -> tuple[str, int]:
    """A float64 literal and its precedence."""
    if math.isnan(v):
        return "f64::NAN", ATOM
    if math.isinf(v):
        return ("f64::INFINITY", ATOM) if v > 0 else ("-f64::INFINITY", PREC_UNARY)
    text = repr(abs(v))
    if not any(c in text for c in ".e"):
        text += ".0"
    return ("-" + text, PREC_UNARY) if math.copysign(1.0, v) < 0 else (text, ATOM)


def rust_expr(e: ir.Expr, names: dict[str, str]) -> tuple[str, int]:
    """Rust text of `e` and its precedence; `names` maps Ref and Local names to idents."""
    match e:
        case ir.Const(value=v):
            return rust_float(v)
        case ir.Ref(name=n) | ir.Local(name=n):
            return names[n], ATOM
        case ir.Call(op=name, args=args):
            op = OPS[name]
            parts = [rust_expr(a, names) for a in args]
            if op.rust_prec is None:
                return op.rust.format(*(text for text, _ in parts)), ATOM
            p = op.rust_prec
            if len(parts) == 1:
                (text, prec), = parts
                return op.rust.format(text if prec > p else f"({text})"), p
            (left, lp), (right, rp) = parts
            return op.rust.format(left if lp >= p else f"({left})", right if rp > p else f"({right})"), p
    raise TypeError(f"not an IR expression: {e!r}")
