"""Pictures of a DAG: its inputs, nodes and edges as Graphviz DOT or Mermaid text, and
SVG or PNG drawn by Graphviz's `dot` program.

    d = diagram(dag)                         # the DAG as written (driver.parse_checked)
    d = diagram(dag, optimized=True)         # the plan after the passes (driver.load)
    to_dot(d), to_mermaid(d)                 # text; nothing needs to be installed
    render(to_dot(d), "svg")                 # bytes; needs `dot` (GraphvizMissing if not)
    write_atomic(path, data)                 # a temporary file renamed over `path`

Inputs are ellipses, nodes rounded boxes; private nodes (`_name`, or made by a pass) are
dashed, and so are the edges they feed. A node's label is its name, the ops it uses (in
the optimized plan: the kernels it runs, as `sray-gen explain` prints them, and the
private nodes fused into it) and its dims when they are not a (T, N) panel's.

`sray-gen graph` (cli/graph.py) and the reference engine's `Dag.graph()` use this.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from . import ir
from .analyses.shapes import infer_dims
from .optable import OPS

Kind = Literal["input", "node", "private", "shared"]

# Output formats by file extension. Only svg and png need Graphviz's `dot`.
EXTENSIONS = {".dot": "dot", ".gv": "dot", ".mmd": "mmd", ".mermaid": "mmd", ".svg": "svg", ".png": "png"}
FORMATS = ("dot", "mmd", "svg", "png")
DRAWN = ("svg", "png")

INSTALL_HINT = (
    "install Graphviz (Debian/Ubuntu: `sudo apt-get install graphviz`; Fedora: `sudo dnf install graphviz`; "
    "macOS: `brew install graphviz`; conda: `conda install -c conda-forge graphviz`)"
)

_MAX_LINE = 44  # label lines longer than this are cut with an ellipsis


class DiagramError(Exception):
    """A picture cannot be made: an unknown format, `dot` failing, an unwritable path."""


class GraphvizMissing(DiagramError):
    """Graphviz's `dot` program is not on PATH."""


@dataclass(frozen=True)
class Vertex:
    name: str
    kind: Kind
    lines: tuple[str, ...]  # label lines after the name
    tooltip: str = ""


@dataclass(frozen=True)
class Diagram:
    dag: str
    optimized: bool
    vertices: tuple[Vertex, ...]
    edges: tuple[tuple[str, str], ...]  # (read, reader)

    @property
    def title(self) -> str:
        return f"{self.dag} ({'optimized plan' if self.optimized else 'as written'})"


# -- the model -----------------------------------------------------------------------


def source_order(dag: ir.Dag) -> ir.Dag:
    """The DAG with its nodes in the order `driver.parse_checked` gives them (the
    frontend's: public nodes, then private ones, each in source order) where the
    reference engine keeps them in topological order. Nodes without a span (made by a
    pass) keep their order, last."""

    def position(k_node):
        k, node = k_node
        if node.span is None:
            return (1, False, 0, 0, k)
        return (0, node.private, node.span.line, node.span.col, k)

    nodes = tuple(n for _, n in sorted(enumerate(dag.nodes), key=position))
    return dag if nodes == dag.nodes else replace(dag, nodes=nodes)


def optimize(dag: ir.Dag, file: str = "<dag>") -> ir.Dag:
    """The DAG after the passes, as `driver.load` makes it (from the source order, so
    that the nodes the passes make get the names `sray-gen` gives them: `_cse1`, ...)."""
    from .passes import run_pipeline

    return run_pipeline(ir.Module(file, (source_order(dag),))).dags[0]


def diagram(dag: ir.Dag, optimized: bool = False, source: ir.Dag | None = None) -> Diagram:
    """The picture of `dag`. With `optimized`, `dag` is run through the passes first
    (pass an already optimized DAG with `source`, the DAG as written, instead)."""
    if optimized and source is None:
        source, dag = dag, optimize(dag)
    elif source is None:
        dag = source_order(dag)
    plan = source is not None
    dims, _ = infer_dims(dag)
    written = {n.name for n in source.nodes} if plan else set()
    fused_away = {n.name for n in source.nodes if n.private} - {n.name for n in dag.nodes} if plan else set()

    vertices = [Vertex(i.name, "input", ("input " + ir.dims_str(i.dims),)) for i in dag.inputs]
    for node in dag.nodes:
        lines: list[str] = []
        if plan:
            lines.append(_kernels(node))
            fused = _fused_into(node, fused_away)
            if fused:
                lines.append("fuses " + ", ".join(fused))
        else:
            lines.append(_ops(node))
        if node.name in dims and dims[node.name] != ir.PANEL_DIMS:
            lines.append(ir.dims_str(dims[node.name]))
        if not node.private:
            kind: Kind = "node"
        elif plan and node.name not in written:
            kind = "shared"
            lines.append("shared by the optimizer")
        else:
            kind = "private"
        doc = node.doc.strip().splitlines()[0] if node.doc.strip() else ""
        vertices.append(Vertex(node.name, kind, tuple(_cut(x) for x in lines if x), doc))
    edges = tuple((r.name, n.name) for n in dag.nodes for r in ir.refs(n))
    return Diagram(dag.name, plan, tuple(vertices), edges)


def _ops(node: ir.Node) -> str:
    """The distinct ops of a node, in order of appearance: `sub, ts_max, rank`."""
    seen: dict[str, None] = {}
    for tree in ir.node_exprs(node):
        for e in ir.walk(tree):
            if isinstance(e, ir.Call):
                seen.setdefault(OPS[e.op].name)
    return ", ".join(seen) if seen else "copy"


def _kernels(node: ir.Node) -> str:
    """The passes over memory of a node's kernel: `ts_max → ts_min → map(sub, add)`."""
    from .backend.lower import plan_kernel

    parts = []
    for s in plan_kernel(node).steps:
        if s.kind == "fused map":
            parts.append(f"map({', '.join(s.ops)})" if s.ops else "copy")
        else:
            parts.append(s.kind)
    return " → ".join(parts)


def _fused_into(node: ir.Node, fused_away: set[str]) -> list[str]:
    """The private nodes of the source inlined into `node` (fuse_private_nodes binds
    their values to locals named `_mid`, `_mid/x`, `_mid#2`)."""
    found: dict[str, None] = {}
    for b in node.body:
        base = b.name.split("/")[0].split("#")[0]
        if base in fused_away:
            found.setdefault(base)
    return list(found)


def _cut(line: str) -> str:
    return line if len(line) <= _MAX_LINE else line[: _MAX_LINE - 1] + "…"


# -- text ----------------------------------------------------------------------------

_FILL = {"input": "#dbeafe", "node": "#fef3c7", "private": "#ffffff", "shared": "#ede9fe"}
_MERMAID_CLASS = {"input": "input", "node": "public", "private": "private", "shared": "shared"}
_LEGEND = "ellipse: input · box: node · dashed: private"


def _dot_id(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def to_dot(d: Diagram) -> str:
    """Graphviz DOT text: one vertex per input and node, one edge per read."""
    shared = any(v.kind == "shared" for v in d.vertices)
    legend = _LEGEND + (" · violet: shared by the optimizer" if shared else "")
    out = [
        f"digraph {_dot_id(d.dag)} {{",
        "  graph [rankdir=TB, fontname=\"Helvetica\", labelloc=t, nodesep=0.3, ranksep=0.45,",
        f"         label=<<B>{_html(d.title)}</B><BR/><FONT POINT-SIZE=\"9\">{_html(legend)}</FONT>>];",
        "  node [fontname=\"Helvetica\", fontsize=11, penwidth=1.2];",
        "  edge [color=\"#475569\", arrowsize=0.7];",
    ]
    inputs = [v.name for v in d.vertices if v.kind == "input"]
    for v in d.vertices:
        label = f"<B>{_html(v.name)}</B>" + "".join(
            f"<BR/><FONT POINT-SIZE=\"9\" COLOR=\"#334155\">{_html(x)}</FONT>" for x in v.lines
        )
        attrs = [f"label=<{label}>", f"fillcolor=\"{_FILL[v.kind]}\""]
        if v.kind == "input":
            attrs += ["shape=ellipse", "style=filled"]
        elif v.kind == "node":
            attrs += ["shape=box", "style=\"rounded,filled\""]
        else:
            attrs += ["shape=box", "style=\"rounded,filled,dashed\""]
        if v.tooltip:
            attrs.append(f"tooltip={_dot_id(v.tooltip)}")
        out.append(f"  {_dot_id(v.name)} [{', '.join(attrs)}];")
    if inputs:
        out.append("  { rank=source; " + " ".join(_dot_id(n) for n in inputs) + "; }")
    kinds = {v.name: v.kind for v in d.vertices}
    for a, b in d.edges:
        style = " [style=dashed]" if kinds[a] in ("private", "shared") else ""
        out.append(f"  {_dot_id(a)} -> {_dot_id(b)}{style};")
    out.append("}")
    return "\n".join(out) + "\n"


def _mermaid_text(text: str) -> str:
    for char, code in (("#", "#35;"), ("&", "#amp;"), ('"', "#quot;"), ("<", "#lt;"), (">", "#gt;")):
        text = text.replace(char, code)
    return text


def to_mermaid(d: Diagram) -> str:
    """Mermaid flowchart text (renders on GitHub, GitLab and in mermaid.live)."""
    ids = {v.name: f"n{k}" for k, v in enumerate(d.vertices)}
    out = ["---", f"title: {_mermaid_text(d.title)}", "---", "flowchart TB"]
    for v in d.vertices:
        label = "<br/>".join([f"<b>{_mermaid_text(v.name)}</b>"] + [_mermaid_text(x) for x in v.lines])
        shape = f'(["{label}"])' if v.kind == "input" else f'("{label}")'
        out.append(f"  {ids[v.name]}{shape}:::{_MERMAID_CLASS[v.kind]}")
    kinds = {v.name: v.kind for v in d.vertices}
    for a, b in d.edges:
        arrow = "-.->" if kinds[a] in ("private", "shared") else "-->"
        out.append(f"  {ids[a]} {arrow} {ids[b]}")
    out += [
        f"  classDef input fill:{_FILL['input']},stroke:#1e3a8a",
        f"  classDef public fill:{_FILL['node']},stroke:#92400e",
        f"  classDef private fill:{_FILL['private']},stroke:#475569,stroke-dasharray:5 4",
        f"  classDef shared fill:{_FILL['shared']},stroke:#5b21b6,stroke-dasharray:5 4",
    ]
    return "\n".join(out) + "\n"


# -- drawing and writing -------------------------------------------------------------


def format_of(path: str | Path) -> str:
    """The output format a file name asks for, by its extension."""
    ext = Path(path).suffix.lower()
    if ext not in EXTENSIONS:
        known = ", ".join(EXTENSIONS)
        raise DiagramError(f"cannot tell the format of `{path}` from its extension `{ext or '(none)'}`: "
                           f"use one of {known}, or pass --format")
    return EXTENSIONS[ext]


def dot_program() -> str | None:
    """The path of Graphviz's `dot`, or None when it is not on PATH."""
    return shutil.which("dot")


def render(dot_text: str, fmt: str, what: str = "an image") -> bytes:
    """`dot_text` drawn by Graphviz's `dot` as svg or png bytes."""
    if fmt not in DRAWN:
        raise DiagramError(f"render draws {' or '.join(DRAWN)}, not {fmt}")
    dot = dot_program()
    if dot is None:
        raise GraphvizMissing(
            f"drawing {what} needs Graphviz's `dot` program, which is not on PATH: {INSTALL_HINT}. "
            "DOT (.dot) and Mermaid (.mmd) output need nothing installed."
        )
    try:
        done = subprocess.run([dot, f"-T{fmt}"], check=False, input=dot_text.encode("utf-8"),
                              capture_output=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise DiagramError(f"running {dot} failed: {e}") from None
    if done.returncode != 0 or not done.stdout:
        err = done.stderr.decode("utf-8", "replace").strip()
        raise DiagramError(f"{dot} -T{fmt} failed (exit {done.returncode}): {err or 'no output'}")
    return done.stdout


def write_atomic(path: str | Path, data: bytes) -> None:
    """Writes `data` to a temporary file beside `path`, then renames it over `path`: a
    reader sees the old file or the whole new one, and a failure leaves nothing behind."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise DiagramError(f"cannot write {path}: the directory {parent} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise DiagramError(f"cannot write {path}: {e}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it 0600; give it a new file's mode
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise DiagramError(f"cannot write {path}: {e}") from None
        raise


def encode(d: Diagram, fmt: str) -> bytes:
    """The picture in one of FORMATS, as bytes."""
    if fmt == "dot":
        return to_dot(d).encode("utf-8")
    if fmt == "mmd":
        return to_mermaid(d).encode("utf-8")
    return render(to_dot(d), fmt, f"{d.dag} as {fmt}")


# -- notebooks -----------------------------------------------------------------------


class Dot(str):
    """DOT text that Jupyter draws as SVG when Graphviz's `dot` is on PATH (and shows as
    text when it is not). `print()` it, save it, or `.svg()` it."""

    def svg(self) -> str:
        """The SVG text; raises GraphvizMissing when `dot` is not installed."""
        return render(str(self), "svg", "the graph").decode("utf-8")

    def save(self, path: str | Path) -> None:
        """Writes the graph to `path`: .dot/.gv as text, .svg/.png drawn by `dot`."""
        fmt = format_of(path)
        if fmt == "mmd":
            raise DiagramError("this is DOT text; for Mermaid use `sray-gen graph FILE -o out.mmd`")
        write_atomic(path, str(self).encode("utf-8") if fmt == "dot" else render(str(self), fmt, str(path)))

    def _repr_svg_(self):
        if dot_program() is None:
            return None  # Jupyter falls back to the text
        try:
            return self.svg()
        except DiagramError:
            return None

    def _repr_pretty_(self, p, cycle):
        p.text(str(self))
