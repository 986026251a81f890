"""`sray-gen graph FILE`: draws a DAG (see sray_transpiler.diagram)."""

from __future__ import annotations

import argparse
import os
import sys

from ..diagram import FORMATS, DiagramError, diagram, encode, format_of, write_atomic
from ..driver import load, parse_checked

DESCRIPTION = """\
Draw a DAG of FILE: its inputs (ellipses), nodes (boxes; private nodes dashed) and
edges (a node reads what points at it). Labels give each node's ops and, where they are
not (T, N), its dims. With --optimized, the plan after the optimizer's passes, as
`sray-gen explain` prints it: each node's kernels (fused maps, window and row kernels),
the private nodes fused into it, and the nodes the optimizer shares (violet).

The format follows -o's extension: .dot/.gv (Graphviz DOT) and .mmd (Mermaid, which
GitHub renders) need nothing installed; .svg and .png are laid out and drawn by
Graphviz's `dot` program, which must be on PATH (Debian/Ubuntu: apt-get install
graphviz; macOS: brew install graphviz). Without -o, DOT text goes to stdout (--format
picks another). Files are written whole or not at all (a temporary file, renamed).
"""

EPILOG = """\
examples:
  sray-gen graph examples/alpha.py -o alpha.svg
  sray-gen graph examples/alphas101.py --optimized -o plan.png
  sray-gen graph tests/fixtures/dags/awkward_names.py --class Match -o match.mmd
  sray-gen graph examples/alpha.py | dot -Tpdf > alpha.pdf
"""


def add_parser(sub) -> None:
    p = sub.add_parser("graph", help="draw a DAG's inputs, nodes and edges (DOT, Mermaid, SVG or PNG)",
                       description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", help="a Python file holding @dag classes or factor functions")
    p.add_argument("--class", dest="class_name", metavar="NAME",
                   help="the DAG to draw (needed when FILE holds several)")
    p.add_argument("-o", "--output", metavar="PATH",
                   help="write here; the format follows the extension: .svg, .png (need Graphviz's dot), "
                        ".dot, .gv, .mmd (default: DOT text on stdout)")
    p.add_argument("--format", choices=FORMATS,
                   help="the format, whatever -o's extension (dot, mmd: Mermaid, svg, png)")
    p.add_argument("--optimized", action="store_true",
                   help="draw the plan after the optimizer's passes (fused kernels, shared nodes)")


def _error(message: str) -> int:
    print(f"sray-gen graph: error: {message}", file=sys.stderr)
    return 2


def run_args(args) -> int:
    """Exit 0 on success, 1 on a DAG with errors (CompileError, raised for main to
    print), 2 on a bad command line or when the picture cannot be made or written."""
    try:
        fmt = args.format or (format_of(args.output) if args.output else "dot")
    except DiagramError as e:
        return _error(str(e))
    module = parse_checked(args.file)
    names = [d.name for d in module.dags]
    if args.class_name is None and len(names) != 1:
        listed = ", ".join(names) if names else "none"
        return _error(f"{args.file} holds {len(names)} DAGs ({listed}): pick one with --class NAME")
    name = args.class_name if args.class_name is not None else names[0]
    if name not in names:
        return _error(f"{args.file} has no DAG `{name}`; its DAGs are: {', '.join(names)}")
    source = module.dag(name)
    if args.optimized:
        picture = diagram(load(args.file).dag(name), source=source)
    else:
        picture = diagram(source)
    try:
        data = encode(picture, fmt)
        if args.output:
            write_atomic(args.output, data)
        elif fmt == "png" and sys.stdout.isatty():
            return _error("PNG is binary: write it with -o out.png, or redirect stdout")
        else:
            sys.stdout.flush()
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
    except DiagramError as e:
        return _error(str(e))
    except BrokenPipeError:  # `sray-gen graph FILE | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return 0
