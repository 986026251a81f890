"""IR -> the files of a Rust crate, rendered from the jinja2 templates of templates/rust/.

The crate holds, per DAG: the static GraphSpec (inputs, nodes in topological order, the
schedule levels), one fused elementwise kernel per node, a plain-Rust struct with a
method per node and the seed's `cal(name)` dispatcher, and (feature `python`) a PyO3
class over it; and for the whole file, the AWS Lambda `bootstrap` binary (feature
`lambda`) serving every DAG. Output is deterministic: the same IR gives byte-identical files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import jinja2

from .. import ir
from ..analyses.graph import levels, topological_order
from ..resources import runtime_dir, templates_dir
from .lower import plan_kernel
from .names import IdentAllocator, camel, rust_str

# Versions of the crates generated code is written against, kept in step with runtime-rs.
PYO3_VERSION = "0.30"


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
    out: str  # the identifier the result is bound to while they are (when there are any)
    uses: set[str]  # runtime items the kernel uses (map, s, ts, cs, la, pool)
    doc: str
    private: bool


@dataclass(frozen=True)
class DagCtx:
    name: str
    module: str  # Rust module (file) name
    rust_type: str
    inputs: list[str]
    input_dims: list[tuple[str, str]]  # the named dims of each input
    nodes: list[NodeCtx]
    levels: list[list[int]]
    doc: str
    uses: set[str]  # runtime items any kernel uses (map, s, ts, cs, la, pool), so that no import goes unused


def _node_ctx(node: ir.Node, index: int, slots: dict[str, int], fns, methods, py_methods) -> NodeCtx:
    plan = plan_kernel(node)
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
        out=plan.out,
        uses=plan.uses,
        doc=node.doc,
        private=node.private,
    )


def dag_context(dag: ir.Dag, module_names: IdentAllocator, type_names: IdentAllocator) -> DagCtx:
    order = topological_order(dag)
    slots = {i.name: k for k, i in enumerate(dag.inputs)}
    slots.update({n: len(dag.inputs) + k for k, n in enumerate(order)})
    fns = IdentAllocator()
    methods = IdentAllocator(reserved=("new", "cal", "engine", "engine_mut", "default"))
    py_methods = IdentAllocator(reserved=("py_new", "cal", "compute", "update", "stats", "nodes", "inputs", "schedule"))
    nodes = [_node_ctx(dag.node(n), k, slots, fns, methods, py_methods) for k, n in enumerate(order)]
    index = {n: k for k, n in enumerate(order)}
    return DagCtx(
        name=dag.name,
        module=module_names(dag.name, "dag_" + dag.name.lower()),
        rust_type=type_names(dag.name, camel(dag.name)),
        inputs=[i.name for i in dag.inputs],
        input_dims=[i.dims for i in dag.inputs],
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


def render_crate(module: ir.Module, crate_name: str) -> dict[str, str]:
    """The crate's files: relative path -> text (before rustfmt)."""
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
    }
    files = {
        "Cargo.toml": env.get_template("Cargo.toml.j2").render(ctx),
        "pyproject.toml": env.get_template("pyproject.toml.j2").render(ctx),
        "src/lib.rs": env.get_template("lib.rs.j2").render(ctx),
        "src/bin/bootstrap.rs": env.get_template("bootstrap.rs.j2").render(ctx),
        f"{crate_name}.pyi": env.get_template("module.pyi.j2").render(ctx),
    }
    for d in dags:
        files[f"src/{d.module}.rs"] = env.get_template("dag.rs.j2").render({**ctx, "dag": d})
    return files
