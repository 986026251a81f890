"""The IR: small, typed, immutable. Passes change it with `dataclasses.replace`.

A `Module` holds `Dag`s; a `Dag` holds `Input`s and `Node`s; a node is a straight-line
body of `Let` bindings and a result expression. Expressions are `Const`, `Ref` (a
dependency on an input or node of the DAG), `Local` (a `Let` of the same node) and `Call`
(an op of optable.py; operators like `+` are calls too).

Spans never take part in equality, so structurally equal expressions compare equal.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal, Union

from .diagnostics import Span
from .optable import OPS


@dataclass(frozen=True)
class Const:
    value: float
    span: Span | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Ref:
    """A read of an input or a node of the enclosing DAG."""

    name: str
    kind: Literal["input", "node"]
    span: Span | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Local:
    name: str
    span: Span | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Call:
    op: str
    args: tuple["Expr", ...]
    span: Span | None = field(default=None, compare=False)


Expr = Union[Const, Ref, Local, Call]


@dataclass(frozen=True)
class Let:
    name: str
    value: Expr
    span: Span | None = field(default=None, compare=False)


# The dims of an input declared as plain `Input`: a (time x assets) panel.
PANEL_DIMS = ("T", "N")


def dims_str(dims: tuple[str, ...]) -> str:
    """("N", "K") -> "(N, K)", for messages."""
    return "(" + ", ".join(dims) + ")"


@dataclass(frozen=True)
class Input:
    """An input: a 2-D float64 array whose dims are named (`Input["N", "K"]`); inputs
    naming the same dim must agree on its size (checked when values are set)."""

    name: str
    span: Span = field(compare=False)
    dims: tuple[str, str] = PANEL_DIMS


@dataclass(frozen=True)
class Node:
    name: str
    body: tuple[Let, ...]
    result: Expr
    doc: str = ""
    span: Span | None = field(default=None, compare=False)
    # A private node (a `_name` of the source, or one made by a pass) cannot be asked
    # for; passes may inline it into its readers (fusion) or share it (CSE).
    private: bool = False


@dataclass(frozen=True)
class Dag:
    name: str
    form: Literal["class", "function"]
    inputs: tuple[Input, ...]
    nodes: tuple[Node, ...]
    doc: str = ""
    span: Span | None = field(default=None, compare=False)

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    @property
    def public_nodes(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if not n.private)


@dataclass(frozen=True)
class Module:
    file: str
    dags: tuple[Dag, ...]

    def dag(self, name: str | None = None) -> Dag:
        """The DAG called `name`, or the only one when `name` is None."""
        if name is None:
            if len(self.dags) != 1:
                names = ", ".join(d.name for d in self.dags)
                raise KeyError(f"{self.file} holds several DAGs ({names}); name one")
            return self.dags[0]
        for d in self.dags:
            if d.name == name:
                return d
        names = ", ".join(d.name for d in self.dags)
        raise KeyError(f"{self.file} has no DAG `{name}`; it has: {names}")


def children(e: Expr) -> tuple[Expr, ...]:
    match e:
        case Call(args=args):
            return args
        case Const() | Ref() | Local():
            return ()
    raise TypeError(f"not an IR expression: {e!r}")


def walk(e: Expr):
    """Pre-order traversal of an expression tree."""
    yield e
    for c in children(e):
        yield from walk(c)


def map_bottom_up(e: Expr, fn) -> Expr:
    """`fn` applied to every subexpression, children first. Returns `e` itself when `fn`
    returned every subexpression unchanged, so passes can tell "no change" cheaply."""
    if isinstance(e, Call):
        args = tuple(map_bottom_up(a, fn) for a in e.args)
        if any(a is not b for a, b in zip(args, e.args)):
            e = replace(e, args=args)
    return fn(e)


def node_exprs(node: Node):
    """Every expression tree of a node: its bindings, then its result."""
    return [b.value for b in node.body] + [node.result]


def refs(node: Node) -> list[Ref]:
    """The distinct `Ref`s a node reads, in first-use order."""
    seen: dict[tuple[str, str], Ref] = {}
    for tree in node_exprs(node):
        for e in walk(tree):
            if isinstance(e, Ref):
                seen.setdefault((e.kind, e.name), e)
    return list(seen.values())


def check_ir(module: Module) -> list[str]:
    """Structural problems of the IR itself (compiler bugs, not user errors).

    Run after every pass in the tests.
    """
    problems = []
    for dag in module.dags:
        inputs = {i.name for i in dag.inputs}
        nodes = [n.name for n in dag.nodes]
        if len(set(nodes)) != len(nodes):
            problems.append(f"{dag.name}: duplicate node names")
        if inputs & set(nodes):
            problems.append(f"{dag.name}: names both input and node: {sorted(inputs & set(nodes))}")
        for node in dag.nodes:
            bound: set[str] = set()
            for tree, binding in [(b.value, b) for b in node.body] + [(node.result, None)]:
                for e in walk(tree):
                    match e:
                        case Ref(name=n, kind="input") if n not in inputs:
                            problems.append(f"{dag.name}.{node.name}: unknown input {n}")
                        case Ref(name=n, kind="node") if n not in nodes:
                            problems.append(f"{dag.name}.{node.name}: unknown node {n}")
                        case Local(name=n) if n not in bound:
                            problems.append(f"{dag.name}.{node.name}: local {n} used before binding")
                        case Call(op=op, args=args):
                            spec = OPS.get(op)
                            if spec is None:
                                problems.append(f"{dag.name}.{node.name}: unknown op {op}")
                            elif len(args) != len(spec.params):
                                problems.append(f"{dag.name}.{node.name}: {op} takes {len(spec.params)} args")
                        case Const(value=v) if not isinstance(v, float):
                            problems.append(f"{dag.name}.{node.name}: non-float constant {v!r}")
                if binding is not None:
                    if binding.name in bound:
                        problems.append(f"{dag.name}.{node.name}: local {binding.name} bound twice")
                    bound.add(binding.name)
    return problems
