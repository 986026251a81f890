"""Python DAG source -> IR, with libcst (the user's module is read, never imported).

Two source forms:

    @dag                                   # class form: inputs are `name: Input`
    class Alpha:                           # attributes; every public method is a node
        open: Input
        close: Input
        def f1(self): return self.open + self.close
        def f2(self): return open - close  # bare names resolve to inputs and nodes

    def f1(open, close): return close - open   # function form (a file without @dag
    def f3(f1, f2): return f1 * f2             # classes): parameters name dependencies

Names starting with `_` are helpers, not nodes; calls to them are inlined. Bodies are
straight-line: assignments and one final `return`. Every problem becomes a Diagnostic;
lowering goes on after an error so that all problems are reported together.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from .. import ir
from ..diagnostics import Diagnostic, Note, Span, did_you_mean
from ..optable import (
    BINARY_SYMBOLS,
    CONSTANTS,
    NUMPY_QUALIFIERS,
    OPS,
    OPS_QUALIFIERS,
    UNARY_SYMBOLS,
    Op,
    by_bare_name,
    by_numpy_name,
)

_BINARY = {
    cst.Add: "+",
    cst.MatrixMultiply: "@",
    cst.Subtract: "-",
    cst.Multiply: "*",
    cst.Divide: "/",
    cst.Power: "**",
    cst.BitAnd: "&",
    cst.BitOr: "|",
}
_COMPARE = {
    cst.LessThan: "<",
    cst.LessThanEqual: "<=",
    cst.GreaterThan: ">",
    cst.GreaterThanEqual: ">=",
    cst.Equal: "==",
    cst.NotEqual: "!=",
}
_AUGMENTED = {
    cst.AddAssign: "+",
    cst.SubtractAssign: "-",
    cst.MultiplyAssign: "*",
    cst.DivideAssign: "/",
    cst.PowerAssign: "**",
    cst.BitAndAssign: "&",
    cst.BitOrAssign: "|",
    cst.MatrixMultiplyAssign: "@",
}


@dataclass
class ParseResult:
    module: ir.Module
    diagnostics: list[Diagnostic]
    # Per DAG, the nodes that exist but could not be lowered because of errors.
    broken: dict[str, set[str]] = field(default_factory=dict)


def dotted(node: cst.BaseExpression) -> str | None:
    """`np.where` -> "np.where"; None for anything but names and attributes."""
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        base = dotted(node.value)
        return None if base is None else f"{base}.{node.attr.value}"
    return None


def camel_case(stem: str) -> str:
    """`funcs_seed` -> `FuncsSeed`."""
    return "".join(part[:1].upper() + part[1:] for part in stem.split("_") if part) or "Dag"


def parse_source(source: str, filename: str) -> ParseResult:
    try:
        tree = cst.parse_module(source)
    except cst.ParserSyntaxError as e:
        span = Span(filename, e.raw_line, e.raw_column + 1, e.raw_line, e.raw_column + 2)
        return ParseResult(ir.Module(filename, ()), [Diagnostic(span, f"invalid Python syntax: {e.message}")])
    wrapper = MetadataWrapper(tree)
    return _ModuleParser(filename, wrapper.resolve(PositionProvider)).parse(wrapper.module)


class _ModuleParser:
    def __init__(self, filename: str, positions):
        self.filename = filename
        self.positions = positions
        self.diagnostics: list[Diagnostic] = []
        self.broken: dict[str, set[str]] = {}

    # -- helpers ---------------------------------------------------------------------

    def span(self, node: cst.CSTNode) -> Span:
        r = self.positions[node]
        return Span(self.filename, r.start.line, r.start.column + 1, r.end.line, r.end.column + 1)

    def error(self, node: cst.CSTNode | Span, message: str, help: str = "", notes=()) -> None:
        span = node if isinstance(node, Span) else self.span(node)
        diagnostic = Diagnostic(span, message, help, tuple(notes))
        if diagnostic not in self.diagnostics:  # a construct visited twice reports once
            self.diagnostics.append(diagnostic)

    # -- module ----------------------------------------------------------------------

    def parse(self, module: cst.Module) -> ParseResult:
        classes = [s for s in module.body if isinstance(s, cst.ClassDef) and self._is_dag_class(s)]
        if classes:
            dags = [self._class_dag(c) for c in classes]
            self._check_unique(dags)
        else:
            dags = [self._function_dag(module)]
        if not any(d.nodes for d in dags) and not self.diagnostics:
            self.error(
                Span(self.filename, 1, 1, 1, 1),
                "no DAG found",
                "decorate a class with @dag (from serverless_ray import dag, Input), or define "
                "module-level functions whose parameters name their inputs",
            )
        return ParseResult(ir.Module(self.filename, tuple(dags)), self.diagnostics, self.broken)

    def _check_unique(self, dags: list[ir.Dag]) -> None:
        seen: dict[str, ir.Dag] = {}
        for d in dags:
            if d.name in seen:
                self.error(
                    d.span,
                    f"DAG `{d.name}` is defined twice",
                    "rename one of the classes",
                    [Note(seen[d.name].span, "first defined here")],
                )
            seen.setdefault(d.name, d)

    @staticmethod
    def _is_dag_class(c: cst.ClassDef) -> bool:
        for dec in c.decorators:
            target = dec.decorator.func if isinstance(dec.decorator, cst.Call) else dec.decorator
            name = dotted(target)
            if name is not None and name.split(".")[-1] == "dag":
                return True
        return False

    def _register_def(self, fn: cst.FunctionDef, defs: dict, helpers: dict, duplicate_message: str) -> None:
        """Files a definition as a node, or as a helper when its name starts with `_`."""
        name = fn.name.value
        table = helpers if name.startswith("_") else defs
        if name in table:
            self.error(
                fn.name,
                duplicate_message,
                "rename or remove one of the definitions",
                [Note(self.span(table[name].name), "first defined here")],
            )
            return
        table[name] = fn

    # -- class form ------------------------------------------------------------------

    def _class_dag(self, c: cst.ClassDef) -> ir.Dag:
        dag_name = c.name.value
        inputs: dict[str, ir.Input] = {}
        defs: dict[str, cst.FunctionDef] = {}
        helpers: dict[str, cst.FunctionDef] = {}
        statements = c.body.body if isinstance(c.body, cst.IndentedBlock) else [c.body]
        for i, stmt in enumerate(statements):
            if isinstance(stmt, cst.FunctionDef):
                self._register_def(stmt, defs, helpers, f"`{stmt.name.value}` is defined twice in DAG `{dag_name}`")
                continue
            small = stmt.body if isinstance(stmt, (cst.SimpleStatementLine, cst.SimpleStatementSuite)) else None
            if small is None:
                self.error(stmt, f"unsupported statement in DAG class `{dag_name}`", _CLASS_BODY_HELP)
                continue
            for s in small:
                self._class_attribute(s, i, dag_name, inputs)
        for name, fn in defs.items():
            if name in inputs:
                self.error(
                    fn.name,
                    f"`{name}` is both an input and a node of DAG `{dag_name}`",
                    f"rename the node or the input; every name in a DAG means one thing",
                    [Note(inputs[name].span, "declared as an input here")],
                )
        # `_name(self)` methods are private nodes (read as `self._name`), other `_` methods
        # are helpers (called, and inlined).
        private = {n: fn for n, fn in helpers.items() if _takes_only_self(fn)}
        helpers = {n: fn for n, fn in helpers.items() if n not in private}
        node_names = [n for n in defs if n not in inputs] + list(private)
        scope = _Scope(inputs=set(inputs), nodes=set(node_names), helpers=helpers, form="class")
        nodes = []
        for name in node_names:
            node = self._node(dag_name, defs.get(name) or private[name], scope, private=name in private)
            if node is not None:
                nodes.append(node)
        return ir.Dag(
            dag_name, "class", tuple(inputs.values()), tuple(nodes), c.get_docstring() or "", self.span(c.name)
        )

    def _class_attribute(self, s: cst.BaseSmallStatement, index: int, dag: str, inputs: dict) -> None:
        if isinstance(s, cst.Pass) or (index == 0 and _is_docstring(s)):
            return
        if isinstance(s, cst.AnnAssign) and isinstance(s.target, cst.Name):
            name = s.target.value
            dims = self._input_dims(s.annotation.annotation)
            if dims is None:
                self.error(
                    s.annotation.annotation,
                    f"class attribute `{name}` of DAG `{dag}` must be annotated `Input`",
                    f"declare inputs as `{name}: Input` (a time x assets panel) or `{name}: Input[\"N\", \"K\"]` "
                    "(named dims); constants belong inside the nodes that use them",
                )
            elif s.value is not None:
                self.error(s.value, f"input `{name}` cannot have a default value", f"write `{name}: Input`")
            elif name in inputs:
                self.error(
                    s.target,
                    f"input `{name}` is declared twice",
                    "remove one of the declarations",
                    [Note(inputs[name].span, "first declared here")],
                )
            elif dims:
                inputs[name] = ir.Input(name, self.span(s.target), dims)
            return
        self.error(s, f"unsupported statement in DAG class `{dag}`", _CLASS_BODY_HELP)

    def _input_dims(self, annotation: cst.BaseExpression) -> tuple[str, str] | tuple[()] | None:
        """The dims of an input annotation: `Input` -> ("T", "N"); `Input["N", "K"]` ->
        ("N", "K"). None when it is no `Input` annotation; () after reporting bad dims."""
        base = annotation.value if isinstance(annotation, cst.Subscript) else annotation
        if (dotted(base) or "").split(".")[-1] != "Input":
            return None
        if not isinstance(annotation, cst.Subscript):
            return ir.PANEL_DIMS
        dims = []
        for element in annotation.slice:
            index = element.slice
            value = index.value if isinstance(index, cst.Index) else None
            if isinstance(value, cst.SimpleString) and value.evaluated_value.isidentifier():
                dims.append(value.evaluated_value)
            elif isinstance(value, cst.Name):
                dims.append(value.value)
            else:
                self.error(element, "an input's dims are names, like `Input[\"T\", \"N\"]`",
                           "name each dim; inputs that share a dim name must agree on its size")
                return ()
        if len(dims) != 2:
            self.error(annotation, f"an input has 2 dims, this annotation names {len(dims)}",
                       "write `Input[\"rows\", \"cols\"]`; every value is a 2-D float64 array")
            return ()
        return (dims[0], dims[1])

    # -- function form ---------------------------------------------------------------

    def _function_dag(self, module: cst.Module) -> ir.Dag:
        defs: dict[str, cst.FunctionDef] = {}
        helpers: dict[str, cst.FunctionDef] = {}
        for stmt in module.body:
            if not isinstance(stmt, cst.FunctionDef) or stmt.decorators:
                continue  # imports, tasks decorated with @remote, scripts: not nodes
            self._register_def(stmt, defs, helpers, f"function `{stmt.name.value}` is defined twice")
        # A `_name` function that a parameter names is a private node; one that is called
        # is a helper (inlined).
        named = {p.name.value for fn in [*defs.values(), *helpers.values()] for p in _all_params(fn)}
        private = {n: fn for n, fn in helpers.items() if n in named}
        helpers = {n: fn for n, fn in helpers.items() if n not in private}
        everything = {**defs, **private}
        inputs: dict[str, ir.Input] = {}
        for fn in everything.values():
            for p in self._plain_params(fn, skip_first=False):
                if p.name.value not in everything:
                    dims = self._param_dims(p)
                    known = inputs.get(p.name.value)
                    if known is None:
                        inputs[p.name.value] = ir.Input(p.name.value, self.span(p.name), dims)
                    elif p.annotation is not None and dims != known.dims:
                        self.error(p.annotation, f"input `{p.name.value}` has dims {ir.dims_str(dims)} here, "
                                   f"{ir.dims_str(known.dims)} elsewhere", "annotate it the same way everywhere",
                                   [Note(known.span, "first annotated here")])
        scope = _Scope(inputs=set(inputs), nodes=set(everything), helpers=helpers, form="function")
        nodes = [
            n
            for name, fn in everything.items()
            if (n := self._node(self._dag_name(), fn, scope, private=name in private)) is not None
        ]
        return ir.Dag(self._dag_name(), "function", tuple(inputs.values()), tuple(nodes), module.get_docstring() or "",
                      Span(self.filename, 1, 1, 1, 1))

    def _dag_name(self) -> str:
        return camel_case(Path(self.filename).stem)

    def _param_dims(self, p: cst.Param) -> tuple[str, str]:
        """Dims of a function-form input parameter: `w: Input["N", "K"]`, else a panel."""
        if p.annotation is None:
            return ir.PANEL_DIMS
        dims = self._input_dims(p.annotation.annotation)
        if dims is None:
            self.error(p.annotation, f"parameter `{p.name.value}` is annotated, but not with `Input`",
                       "annotate inputs with `Input[\"rows\", \"cols\"]` or leave them unannotated")
        return dims or ir.PANEL_DIMS

    def _plain_params(self, fn: cst.FunctionDef, skip_first: bool) -> list[cst.Param]:
        """Positional parameters; reports `*args`, `**kwargs`, keyword-only and defaults."""
        p = fn.params
        for star in (p.star_arg, p.star_kwarg):
            if isinstance(star, cst.Param):
                self.error(star, f"`*args` / `**kwargs` are not supported in `{fn.name.value}`",
                           "name each dependency as a parameter")
        for kw in p.kwonly_params:
            self.error(kw, f"keyword-only parameter `{kw.name.value}` is not supported", "use a plain parameter")
        params = list(p.posonly_params) + list(p.params)
        if skip_first:
            params = params[1:]
        for param in params:
            if param.default is not None:
                self.error(param.default, f"parameter `{param.name.value}` has a default value",
                           "DAG parameters name dependencies; write constants inside the body")
        return params

    # -- nodes -----------------------------------------------------------------------

    def _node(self, dag: str, fn: cst.FunctionDef, scope: "_Scope", private: bool = False) -> ir.Node | None:
        name = fn.name.value
        before = len(self.diagnostics)
        env: dict[str, ir.Expr] = {}
        if scope.form == "class":
            params = list(fn.params.posonly_params) + list(fn.params.params)
            extra = isinstance(fn.params.star_arg, cst.Param) or isinstance(fn.params.star_kwarg, cst.Param)
            if len(params) != 1 or extra or fn.params.kwonly_params:
                self.error(fn.params if params else fn.name, f"node method `{name}` must take exactly one parameter, `self`",
                           "read inputs and other nodes as `self.name`")
            self_name = params[0].name.value if params else "self"
            for dec in fn.decorators:
                if dotted(dec.decorator) != "property":
                    self.error(dec.decorator, f"decorator on node `{name}` is not supported", "remove it")
        else:
            self_name = None
            for p in self._plain_params(fn, skip_first=False):
                pname = p.name.value
                kind = "node" if pname in scope.nodes else "input"
                env[pname] = ir.Ref(pname, kind, self.span(p.name))
        lowerer = _Lowerer(self, dag, name, scope, self_name)
        result = lowerer.body(fn, env, top=True)
        if result is None or len(self.diagnostics) > before:
            self.broken.setdefault(dag, set()).add(name)
            return None
        return ir.Node(name, tuple(lowerer.lets), result, fn.get_docstring() or "", self.span(fn.name), private)


_CLASS_BODY_HELP = "a DAG class holds `name: Input` declarations and node methods `def name(self): return ...`"


def _all_params(fn: cst.FunctionDef) -> list[cst.Param]:
    return list(fn.params.posonly_params) + list(fn.params.params)


def _takes_only_self(fn: cst.FunctionDef) -> bool:
    p = fn.params
    return len(_all_params(fn)) == 1 and not p.kwonly_params and not isinstance(p.star_arg, cst.Param) \
        and not isinstance(p.star_kwarg, cst.Param)


def _is_docstring(s: cst.BaseSmallStatement) -> bool:
    return isinstance(s, cst.Expr) and isinstance(s.value, (cst.SimpleString, cst.ConcatenatedString))


@dataclass
class _Scope:
    inputs: set[str]
    nodes: set[str]
    helpers: dict[str, cst.FunctionDef]
    form: str


class _Lowerer:
    """Lowers one node's body (and the helpers it calls) to `Let`s and a result."""

    def __init__(self, parser: _ModuleParser, dag: str, node: str, scope: _Scope, self_name: str | None):
        self.p = parser
        self.dag = dag
        self.node = node
        self.scope = scope
        self.self_name = self_name
        self.lets: list[ir.Let] = []
        self.used_names: set[str] = set()
        self.helper_stack: list[str] = []

    def fresh(self, name: str) -> str:
        """A binding name unique in this node: `x`, then `x#2`, `x#3`, ..."""
        candidate, k = name, 1
        while candidate in self.used_names:
            k += 1
            candidate = f"{name}#{k}"
        self.used_names.add(candidate)
        return candidate

    # -- statements ------------------------------------------------------------------

    def body(self, fn: cst.FunctionDef, env: dict[str, ir.Expr], top: bool) -> ir.Expr | None:
        statements = fn.body.body if isinstance(fn.body, cst.IndentedBlock) else [fn.body]
        small: list[cst.BaseSmallStatement] = []
        for stmt in statements:
            if isinstance(stmt, (cst.SimpleStatementLine, cst.SimpleStatementSuite)):
                small.extend(stmt.body)
            elif isinstance(stmt, cst.BaseSmallStatement):
                small.append(stmt)
            else:
                self.p.error(stmt, self._compound_message(stmt), _STRAIGHT_LINE_HELP)
        result: ir.Expr | None = None
        returned = False
        for i, s in enumerate(small):
            if returned:
                self.p.error(s, "unreachable statement after `return`", "remove it")
                break
            if isinstance(s, cst.Pass) or (i == 0 and _is_docstring(s)):
                continue
            if isinstance(s, cst.Return):
                returned = True
                if s.value is None:
                    self.p.error(s, f"`return` without a value in `{fn.name.value}`", "return the node's value")
                else:
                    result = self.expr(s.value, env)
            elif isinstance(s, cst.Assign):
                self.assign(s, env)
            elif isinstance(s, cst.AnnAssign) and isinstance(s.target, cst.Name) and s.value is not None:
                self.bind(s.target, self.expr(s.value, env), env)
            elif isinstance(s, cst.AugAssign) and isinstance(s.target, cst.Name) and type(s.operator) in _AUGMENTED:
                current = self.name(s.target, env)
                value = self.expr(s.value, env)
                op = BINARY_SYMBOLS[_AUGMENTED[type(s.operator)]]
                combined = None if current is None or value is None else ir.Call(op.name, (current, value), self.p.span(s))
                self.bind(s.target, combined, env)
            else:
                self.p.error(s, f"unsupported statement in `{fn.name.value}`", _STRAIGHT_LINE_HELP)
        if not returned:
            self.p.error(fn.name, f"`{fn.name.value}` has no `return` statement",
                         "end the body with `return <expression>`")
        return result

    def assign(self, s: cst.Assign, env: dict[str, ir.Expr | None]) -> None:
        """`x = e`, or `a, b = e1, e2` (all values computed before any name is bound)."""
        target = s.targets[0].target if len(s.targets) == 1 else None
        if isinstance(target, cst.Name):
            self.bind(target, self.expr(s.value, env), env)
            return
        if (
            isinstance(target, (cst.Tuple, cst.List))
            and isinstance(s.value, (cst.Tuple, cst.List))
            and len(target.elements) == len(s.value.elements)
            and all(isinstance(t.value, cst.Name) and not isinstance(t, cst.StarredElement) for t in target.elements)
        ):
            values = [self.expr(v.value, env) for v in s.value.elements]
            for t, v in zip(target.elements, values):
                self.bind(t.value, v, env)
            return
        self.p.error(s, "only assignments `name = expression` and `a, b = x, y` are supported",
                     "assign one name per statement")
        for t in s.targets:  # the names it meant to bind are unusable, not unknown
            for node in [t.target, *getattr(t.target, "elements", [])]:
                if isinstance(getattr(node, "value", node), cst.Name):
                    env[getattr(node, "value", node).value] = None

    def bind(self, target: cst.Name, value: ir.Expr | None, env: dict[str, ir.Expr | None]) -> None:
        if value is None:
            env[target.value] = None  # reported already; later reads stay quiet
            return
        name = self.fresh(("/".join(self.helper_stack) + "/" if self.helper_stack else "") + target.value)
        span = self.p.span(target)
        self.lets.append(ir.Let(name, value, span))
        env[target.value] = ir.Local(name, span)

    @staticmethod
    def _compound_message(stmt: cst.CSTNode) -> str:
        kind = {
            cst.For: "`for` loops are",
            cst.While: "`while` loops are",
            cst.If: "`if` statements are",
            cst.With: "`with` blocks are",
            cst.Try: "`try` blocks are",
            cst.FunctionDef: "nested functions are",
            cst.ClassDef: "nested classes are",
        }.get(type(stmt), "this statement is")
        return f"{kind} not supported in a DAG node"

    # -- expressions -----------------------------------------------------------------

    def expr(self, e: cst.BaseExpression, env: dict[str, ir.Expr]) -> ir.Expr | None:
        span = self.p.span(e)
        match e:
            case cst.Name():
                return self.name(e, env)
            case cst.Integer() | cst.Float():
                try:
                    value = float(e.evaluated_value)
                except OverflowError:
                    self.p.error(e, "number too large for float64")
                    return None
                return ir.Const(value, span)
            case cst.Attribute():
                return self.attribute(e, env)
            case cst.UnaryOperation():
                operand = self.expr(e.expression, env)
                if isinstance(e.operator, cst.Plus):
                    return operand
                if isinstance(e.operator, cst.Not):
                    self.p.error(e, "`not` does not work on arrays", "use `~x` for logical not")
                    return None
                op = UNARY_SYMBOLS["-" if isinstance(e.operator, cst.Minus) else "~"]
                if isinstance(operand, ir.Const) and op.name == "neg":
                    return ir.Const(-operand.value, span)  # a negative literal
                return None if operand is None else ir.Call(op.name, (operand,), span)
            case cst.BinaryOperation():
                symbol = _BINARY.get(type(e.operator))
                left, right = self.expr(e.left, env), self.expr(e.right, env)
                if symbol is None:
                    self.p.error(e.operator, f"operator `{e.operator.__class__.__name__}` is not supported",
                                 "the supported operators are + - * / ** @ & | ~ < <= > >= == != (see `sray-gen ops`)")
                    return None
                if left is None or right is None:
                    return None
                return ir.Call(BINARY_SYMBOLS[symbol].name, (left, right), span)
            case cst.Comparison():
                if len(e.comparisons) != 1:
                    self.p.error(e, "chained comparisons are not supported", "write `(a < b) & (b < c)`")
                    return None
                target = e.comparisons[0]
                symbol = _COMPARE.get(type(target.operator))
                left, right = self.expr(e.left, env), self.expr(target.comparator, env)
                if symbol is None:
                    self.p.error(target.operator, "only < <= > >= == != comparisons are supported")
                    return None
                if left is None or right is None:
                    return None
                return ir.Call(BINARY_SYMBOLS[symbol].name, (left, right), span)
            case cst.BooleanOperation():
                self.p.error(e.operator, "`and` / `or` do not work on arrays", "use `&` / `|` (with parentheses)")
                return None
            case cst.IfExp():
                self.p.error(e, "conditional expressions do not work on arrays", "use `where(cond, a, b)`")
                return None
            case cst.Call():
                return self.call(e, env)
        self.p.error(e, f"unsupported expression ({type(e).__name__}) in node `{self.node}`",
                     "node bodies use numbers, names, arithmetic, comparisons and the ops `sray-gen ops` lists")
        return None

    def name(self, e: cst.Name, env: dict[str, ir.Expr]) -> ir.Expr | None:
        n = e.value
        span = self.p.span(e)
        if n in env:
            found = env[n]
            if found is None:  # bound by a statement that had an error
                return None
            return ir.Local(found.name, span) if isinstance(found, ir.Local) else _respan(found, span)
        if n in ("True", "False"):
            return ir.Const(1.0 if n == "True" else 0.0, span)
        if self.scope.form == "class":
            if n in self.scope.inputs:
                return ir.Ref(n, "input", span)
            if n in self.scope.nodes:
                return ir.Ref(n, "node", span)
            if n == self.self_name:
                self.p.error(e, f"`{n}` alone is not a value", f"read an input or node as `{n}.name`")
                return None
        self.unknown(e, n, env)
        return None

    def unknown(self, e: cst.CSTNode, n: str, env: dict[str, ir.Expr]) -> None:
        what = f"unknown name `{n}` in node `{self.node}`"
        if by_bare_name(n) is not None:
            self.p.error(e, f"`{n}` is an op, not a value", f"call it: `{n}(...)`")
            return
        candidates = [k for k in env if not k.startswith("_")]
        if self.scope.form == "class":
            candidates += list(self.scope.inputs) + list(self.scope.nodes)
            hint = did_you_mean(n, candidates)
            declare = f"declare it as an input: `{n}: Input`, or define a node `def {n}(self): ...`"
            self.p.error(e, what, f"{hint}\n{declare}" if hint else declare)
        else:
            hint = did_you_mean(n, candidates + list(self.scope.nodes))
            if n in self.scope.nodes:
                self.p.error(e, what, f"add `{n}` as a parameter of `{self.node}` to depend on it")
            else:
                self.p.error(e, what, hint or f"add `{n}` as a parameter of `{self.node}`")

    def attribute(self, e: cst.Attribute, env: dict[str, ir.Expr]) -> ir.Expr | None:
        full = dotted(e)
        span = self.p.span(e)
        if full in CONSTANTS:
            return ir.Const(CONSTANTS[full], span)
        if self.self_name is not None and isinstance(e.value, cst.Name) and e.value.value == self.self_name:
            n = e.attr.value
            if n in self.scope.inputs:
                return ir.Ref(n, "input", span)
            if n in self.scope.nodes:
                return ir.Ref(n, "node", span)
            hint = did_you_mean(n, list(self.scope.inputs) + list(self.scope.nodes))
            declare = f"declare it as an input: `{n}: Input`, or define a node `def {n}(self): ...`"
            self.p.error(e.attr, f"unknown name `{self.self_name}.{n}` in node `{self.node}`",
                         f"{hint}\n{declare}" if hint else declare)
            return None
        what = f"`{full}`" if full else "this attribute"
        self.p.error(e, f"attribute access {what} is not supported in node `{self.node}`",
                     "read inputs and nodes by name (or `self.name`); numpy constants such as `np.nan` are allowed")
        return None

    def call(self, e: cst.Call, env: dict[str, ir.Expr]) -> ir.Expr | None:
        func = dotted(e.func)
        span = self.p.span(e)
        # `self.f1()`: calling a node method reads the node.
        if self.self_name is not None and func and func.startswith(self.self_name + "."):
            member = func[len(self.self_name) + 1 :]
            if member in self.scope.nodes and not e.args:
                return ir.Ref(member, "node", span)
            if member in self.scope.helpers:
                return self.inline(e, self.scope.helpers[member], env, skip_self=True)
        if self.scope.form == "function" and func in self.scope.helpers:
            return self.inline(e, self.scope.helpers[func], env, skip_self=False)
        op = self.resolve_op(func)
        if op is None:
            self.unknown_function(e, func)
            return None
        args = self.call_args(e, op, env)
        return None if args is None else ir.Call(op.name, args, span)

    @staticmethod
    def resolve_op(func: str | None) -> Op | None:
        if func is None:
            return None
        if "." not in func:
            return by_bare_name(func)
        qualifier, _, name = func.rpartition(".")
        if qualifier in NUMPY_QUALIFIERS:
            return by_numpy_name(name)
        if qualifier in OPS_QUALIFIERS:
            return by_bare_name(name)
        return None

    def unknown_function(self, e: cst.Call, func: str | None) -> None:
        if func is None:
            self.p.error(e.func, "only named functions can be called in a DAG node")
            return
        if self.self_name is not None and func.startswith(self.self_name + "."):
            self.p.error(e.func, f"`{func}()` is not supported in node `{self.node}`: inputs and nodes have no methods",
                         "apply an op (`sray-gen ops`) instead, e.g. `abs(x)`")
            return
        names = [op.name for op in OPS.values() if op.callable]
        numpy_names = [f"np.{n}" for op in OPS.values() for n in op.numpy]
        hint = did_you_mean(func, names + numpy_names)
        self.p.error(e.func, f"unknown function `{func}` in node `{self.node}`",
                     (hint + "\n" if hint else "") + "`sray-gen ops` lists the ops a node may call (docs/ops.md: their meaning)")

    def call_args(self, e: cst.Call, op: Op, env: dict[str, ir.Expr]) -> tuple[ir.Expr, ...] | None:
        slots: list[ir.Expr | None] = [None] * len(op.params)
        given = [False] * len(op.params)
        ok = True
        signature = f"`{op.name}({', '.join(op.params)})`"
        for i, arg in enumerate(e.args):
            if arg.star:
                self.p.error(arg, f"`{arg.star}` unpacking is not supported", f"pass the arguments of {signature} one by one")
                ok = False
                continue
            if arg.keyword is not None:
                key = arg.keyword.value
                if key not in op.params:
                    self.p.error(arg.keyword, f"{signature} has no parameter `{key}`")
                    ok = False
                    continue
                index = op.params.index(key)
            else:
                index = i
                if index >= len(op.params):
                    self.p.error(arg, f"{signature} takes {len(op.params)} argument(s), got {len(e.args)}")
                    ok = False
                    continue
            if given[index]:
                self.p.error(arg, f"argument `{op.params[index]}` of {signature} given twice")
                ok = False
                continue
            given[index] = True
            slots[index] = self.expr(arg.value, env)
            ok = ok and slots[index] is not None
        defaults = dict(op.defaults)
        for k, param in enumerate(op.params):
            if not given[k] and param in defaults:
                slots[k], given[k] = ir.Const(defaults[param], self.p.span(e)), True
        missing = [p for p, g in zip(op.params, given) if not g]
        if missing and ok:
            self.p.error(e, f"{signature} is missing argument(s): {', '.join(missing)}")
            return None
        if not ok:
            return None
        for param, value in zip(op.params, slots):
            ok = self.check_argument(e, op, signature, param, value) and ok
        return tuple(slots) if ok else None  # type: ignore[arg-type]

    def check_argument(self, call: cst.Call, op: Op, signature: str, param: str, value: ir.Expr) -> bool:
        """Windows are integer literals >= 1, literals are numbers, arrays read something."""
        where = value.span or self.p.span(call)
        if param in op.windows:
            if not (isinstance(value, ir.Const) and value.value.is_integer() and value.value >= 1):
                self.p.error(where, f"the window `{param}` of {signature} must be an integer literal >= 1",
                             f"write a number, e.g. `{op.name}(x, 10)`")
                return False
        elif param in op.literals:
            if not isinstance(value, ir.Const):
                self.p.error(where, f"`{param}` of {signature} must be a number literal")
                return False
        elif not op.elementwise and not any(isinstance(x, (ir.Ref, ir.Local)) for x in ir.walk(value)):
            self.p.error(where, f"`{param}` of {signature} must be an array, not a constant",
                         "pass an input, a node, or an expression of them")
            return False
        return True

    def inline(self, e: cst.Call, helper: cst.FunctionDef, env: dict[str, ir.Expr], skip_self: bool) -> ir.Expr | None:
        """`_spread(a, b)` -> the helper's body with its parameters bound to the arguments."""
        hname = helper.name.value
        if hname in self.helper_stack:
            chain = " -> ".join(self.helper_stack + [hname])
            self.p.error(e, f"helper `{hname}` calls itself ({chain})", "helpers are inlined and cannot recurse")
            return None
        params = self.p._plain_params(helper, skip_first=skip_self)
        if any(a.star or a.keyword for a in e.args) or len(e.args) != len(params):
            self.p.error(e, f"helper `{hname}` takes {len(params)} positional argument(s), got {len(e.args)}")
            return None
        args = [self.expr(a.value, env) for a in e.args]
        if any(a is None for a in args):
            return None
        self.helper_stack.append(hname)
        inner: dict[str, ir.Expr] = {}
        for p, value in zip(params, args):
            self.bind(p.name, value, inner)
        result = self.body(helper, inner, top=False)
        self.helper_stack.pop()
        return result


_STRAIGHT_LINE_HELP = (
    "node bodies are straight-line: assignments `x = ...` and a final `return ...`; "
    "use `where(cond, a, b)` instead of `if`"
)


def _respan(e: ir.Expr, span: Span) -> ir.Expr:
    return replace(e, span=span)
