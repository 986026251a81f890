"""IR -> the files of a Rust crate, rendered from the jinja2 templates of templates/rust/.

The crate's core holds, per DAG: the static GraphSpec (inputs, nodes in topological
order, the schedule levels), one fused elementwise kernel per node, a plain-Rust struct
with a method per node and the seed's `cal(name)` dispatcher, and (feature `python`) a
PyO3 class over it. Each build target adds its own part (`CratePart`: files rendered from
its templates, Cargo features, binaries), e.g. the AWS Lambda `bootstrap` binary serving
every DAG; the parts come from the caller (sray_transpiler.targets), so adding a target
changes nothing here. Output is deterministic: the same IR gives byte-identical files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import jinja2

from .. import ir
from ..analyses.graph import levels, topological_order
from ..analyses.lookback import NodeLookback, lookbacks, time_inputs
from ..analyses.shapes import Dims, infer_dims
from ..resources import runtime_dir, templates_dir
from .lower import TIME_DIM, plan_kernel
from .names import IdentAllocator, camel, rust_str

# Versions of the crates generated code is written against, kept in step with runtime-rs.
PYO3_VERSION = "0.30"


@dataclass(frozen=True)
class CrateBin:
    """A `[[bin]]` of the generated crate, built only with its feature."""

    name: str
    template: str  # in templates/rust/, rendered to src/bin/<name>.rs
    feature: str
    comment: str


@dataclass(frozen=True)
class CratePart:
    """What one build target adds to every generated crate."""

    files: tuple[tuple[str, str], ...] = ()  # (path in the crate, template); `{crate}` in a path is the crate name
    features: tuple[tuple[str, tuple[str, ...], str], ...] = ()  # (Cargo feature, what it enables, comment)
    bins: tuple[CrateBin, ...] = ()


@dataclass(frozen=True)
class NodeCtx:
    name: str  # as written in Python
    index: int
    kernel: str  # Rust fn name of the kernel
    method: str  # Rust method name on the plain struct
    py_method: str  # Rust method name on the PyO3 class
    deps: list[int]  # slots read, in kernel-argument order
    statements: list[tuple[str, str]]  # `let ident = expression;` before the result
    result: str  # the kernel's returned Panel
    recycled: list[str]  # temporaries given back to the buffer pool after the result
    slots: list[str]  # cache slots of intermediates read before the kernel's first row
    out: str  # the identifier the result is bound to while they are (when there are any)
    uses: set[str]  # runtime items the kernel uses (map, s, ts, cs, la, pool, tail)
    doc: str
    private: bool
    timed: bool  # its rows are time ("T"): appends add rows to it
    lookback: int  # rows of its time-indexed dependencies before a row that its kernel reads
    reads: list[int]  # the same per dependency, in the order of `deps`
    lookback_doc: str  # its total lookback, in words, for the .pyi


@dataclass(frozen=True)
class DagCtx:
    name: str
    module: str  # Rust module (file) name
    rust_type: str
    inputs: list[str]
    input_dims: list[tuple[str, str]]  # the named dims of each input
    time_inputs: list[str]  # inputs whose rows are time: what `append` takes
    nodes: list[NodeCtx]
    levels: list[list[int]]
    doc: str
    uses: set[str]  # runtime items any kernel uses (map, s, ts, cs, la, pool), so that no import goes unused


def _lookback_doc(lb: NodeLookback) -> str:
    if not lb.timed:
        return "Its rows are not time: appends do not change it."
    if lb.total == 0:
        return "Lookback: 0 rows (row t depends on the inputs' row t only)."
    return f"Lookback: {lb.total} rows (row t depends on the inputs' rows t - {lb.total} .. t)."


def _node_ctx(node: ir.Node, index: int, slots: dict[str, int], dims: dict[str, Dims], lb: NodeLookback, fns,
              methods, py_methods) -> NodeCtx:
    plan = plan_kernel(node, dims)
    return NodeCtx(
        name=node.name,
        index=index,
        kernel=fns(node.name, "node_" + node.name),
        method=methods(node.name),
        py_method=py_methods(node.name, "py_" + node.name),
        deps=[slots[r.name] for r in ir.refs(node)],
        statements=plan.statements,
        result=plan.result,
        recycled=plan.recycled,
        slots=plan.slots,
        out=plan.out,
        uses=plan.uses,
        doc=node.doc,
        private=node.private,
        timed=dims[node.name][0] == TIME_DIM,
        lookback=plan.lookback,
        reads=plan.reads,
        lookback_doc=_lookback_doc(lb),
    )


def dag_context(dag: ir.Dag, module_names: IdentAllocator, type_names: IdentAllocator) -> DagCtx:
    order = topological_order(dag)
    slots = {i.name: k for k, i in enumerate(dag.inputs)}
    slots.update({n: len(dag.inputs) + k for k, n in enumerate(order)})
    fns = IdentAllocator()
    methods = IdentAllocator(reserved=("new", "cal", "engine", "engine_mut", "default"))
    py_methods = IdentAllocator(reserved=("py_new", "cal", "compute", "update", "append", "lookback", "stats", "nodes",
                                          "inputs", "schedule"))
    dims, _ = infer_dims(dag)  # the DAG passed the checks: every node's dims are known
    lbs = lookbacks(dag)
    nodes = [_node_ctx(dag.node(n), k, slots, dims, lbs[n], fns, methods, py_methods) for k, n in enumerate(order)]
    index = {n: k for k, n in enumerate(order)}
    return DagCtx(
        name=dag.name,
        module=module_names(dag.name, "dag_" + dag.name.lower()),
        rust_type=type_names(dag.name, camel(dag.name)),
        inputs=[i.name for i in dag.inputs],
        input_dims=[i.dims for i in dag.inputs],
        time_inputs=time_inputs(dag),
        nodes=nodes,
        levels=[sorted(index[n] for n in level) for level in levels(dag)],
        doc=dag.doc,
        uses=set().union(*(n.uses for n in nodes)),
    )


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir() / "rust")),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["rust_str"] = rust_str
    env.filters["py_str"] = lambda s: json.dumps(s, ensure_ascii=False)
    return env


def render_crate(module: ir.Module, crate_name: str, parts: tuple[CratePart, ...] = ()) -> dict[str, str]:
    """The crate's files: relative path -> text (before rustfmt). `parts`: what each build
    target adds (see sray_transpiler.targets)."""
    module_names = IdentAllocator(reserved=("lib", "python", "sray_runtime", "pyo3", "std", "core", "alloc", "crate", "s"))
    type_names = IdentAllocator(sep="")
    dags = [dag_context(d, module_names, type_names) for d in module.dags]
    env = _environment()
    ctx = {
        "crate": crate_name,
        "dags": dags,
        "source": Path(module.file).name,
        "runtime_path": json.dumps(str(runtime_dir())),
        "pyo3_version": PYO3_VERSION,
        # Optional parts of the runtime this crate needs: faer only when a DAG uses `@`.
        "runtime_features": ["linalg"] if any("la" in d.uses for d in dags) else [],
        "features": [f for part in parts for f in part.features],
        "bins": [b for part in parts for b in part.bins],
    }
    files = {
        "Cargo.toml": env.get_template("Cargo.toml.j2").render(ctx),
        "src/lib.rs": env.get_template("lib.rs.j2").render(ctx),
    }
    for part in parts:
        for path, template in part.files:
            files[path.format(crate=crate_name)] = env.get_template(template).render(ctx)
        for b in part.bins:
            files[f"src/bin/{b.name}.rs"] = env.get_template(b.template).render(ctx)
    for d in dags:
        files[f"src/{d.module}.rs"] = env.get_template("dag.rs.j2").render({**ctx, "dag": d})
    return files
