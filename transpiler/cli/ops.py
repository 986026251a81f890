"""`sray-gen ops`: the ops a DAG node may use, read from the op table; with --markdown,
the op tables of docs/ops.md (sray_transpiler.opdoc)."""

from __future__ import annotations

import argparse

from ..opdoc import markdown, spellings
from ..optable import OPS

DESCRIPTION = """\
List the ops a DAG node may use: each op's name, how DAG code may write it (an operator,
a bare call, `ops.<name>`, or its numpy name), its kind, and a short note.

What each op computes exactly (a numpy or pandas expression), the NaN and window rules,
flat windows (ts_std and covariance exactly 0, correlation NaN), how closely the compiled
module agrees with the Python reference, and which values depend on which rows: see
docs/ops.md in the serverless_ray repository. Its op tables are what --markdown prints.
"""

EPILOG = """\
examples:
  sray-gen ops                 one line per op
  sray-gen ops --markdown      the op tables of docs/ops.md, between their markers
  python -m sray_transpiler.opdoc docs/ops.md
                               regenerate those tables inside docs/ops.md
"""


def table() -> str:
    rows = [("op", "spellings", "kind", "meaning")]
    for op in OPS.values():
        rows.append((op.name, ", ".join(spellings(op)), op.kind, op.doc))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:<{widths[2]}}  {d}" for a, b, c, d in rows)


def add_parser(sub) -> None:
    p = sub.add_parser("ops", help="list the ops a DAG node may use (their meaning: docs/ops.md)",
                       description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--markdown", action="store_true",
                   help="print the op tables of docs/ops.md (Markdown, with the markers that delimit them there)")


def run_args(args) -> int:
    if getattr(args, "markdown", False):
        print(markdown(), end="")
    else:
        print(table())
    return 0
