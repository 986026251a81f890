"""`sray-gen ops`: the ops a DAG node may use, read from the op table."""

from __future__ import annotations

from ..optable import OPS


def table() -> str:
    rows = [("op", "spellings", "kind", "meaning")]
    for op in OPS.values():
        spellings = []
        if op.symbol:
            spellings.append(f"a {op.symbol} b" if len(op.params) == 2 else f"{op.symbol}a")
        if op.callable:
            spellings.append(f"{op.name}({', '.join(op.params)})")
        spellings += [f"np.{n}" for n in op.numpy]
        rows.append((op.name, ", ".join(spellings), op.kind, op.doc))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:<{widths[2]}}  {d}" for a, b, c, d in rows)


def run(config) -> int:
    print(table())
    return 0
