"""FunctionGraph: the dependencies of named functions, read from their parameter names.

    def f1(open, close): ...
    def f2(high, low): ...
    def f3(f1, f2): ...
    g = FunctionGraph([f1, f2, f3])
    g.dependencies("f3")   -> ["f1", "f2"]     (parameters that name another function)
    g.inputs("f3")         -> []               (parameters that name data)
    g.inputs("f1")         -> ["open", "close"]

The same rule as the compiler's function form (see README). Given as
`@remote(graph=g)`, `map` over node names runs each name after the names it depends on,
and names that do not depend on each other at once.
"""

from __future__ import annotations

import inspect
import types


class GraphError(ValueError):
    """A FunctionGraph that cannot be ordered (a cycle) or was asked for an unknown name."""


class FunctionGraph:
    def __init__(self, functions):
        if isinstance(functions, types.ModuleType):
            module = functions
            functions = [f for name, f in vars(module).items()
                         if inspect.isfunction(f) and f.__module__ == module.__name__ and not name.startswith("_")]
        if isinstance(functions, dict):
            self.functions = dict(functions)
        else:
            self.functions = {f.__name__: f for f in functions}
        self._params = {name: list(inspect.signature(f).parameters) for name, f in self.functions.items()}
        self.order = self._topological_order()

    def dependencies(self, name: str) -> list[str]:
        """The functions `name` reads (its parameters that name a function of the graph)."""
        return [p for p in self._params_of(name) if p in self.functions]

    def inputs(self, name: str) -> list[str]:
        """The data `name` reads (its parameters that name no function of the graph)."""
        return [p for p in self._params_of(name) if p not in self.functions]

    def parameters(self, name: str) -> list[str]:
        return list(self._params_of(name))

    def ancestors(self, name: str) -> set[str]:
        seen: set[str] = set()
        stack = list(self.dependencies(name))
        while stack:
            n = stack.pop()
            if n not in seen:
                seen.add(n)
                stack.extend(self.dependencies(n))
        return seen

    def __contains__(self, name) -> bool:
        return name in self.functions

    def _params_of(self, name: str) -> list[str]:
        try:
            return self._params[name]
        except KeyError:
            raise GraphError(f"{name!r} is not a function of this graph (it has: {', '.join(self.functions)})") from None

    def _topological_order(self) -> list[str]:
        order, state = [], {}

        def visit(name, path):
            if state.get(name) == "done":
                return
            if state.get(name) == "visiting":
                cycle = path[path.index(name):] + [name]
                raise GraphError(f"the functions form a cycle: {' -> '.join(cycle)}; a function cannot "
                                 "(indirectly) read itself")
            state[name] = "visiting"
            for dep in self.dependencies(name):
                visit(dep, path + [name])
            state[name] = "done"
            order.append(name)

        for name in self.functions:
            visit(name, [])
        return order

    def __repr__(self) -> str:
        edges = ", ".join(f"{n} <- {'/'.join(self.dependencies(n))}" for n in self.order if self.dependencies(n))
        return f"FunctionGraph({', '.join(self.order)}{'; ' + edges if edges else ''})"
