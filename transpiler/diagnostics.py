"""Problems found in user source, rendered rustc-style so people can act on them.

    alpha.py:7:33: error: unknown name `clsoe` in node `f2`
       7 |     def f2(self): return open - clsoe
         |                                 ^^^^^
      = help: did you mean `close`?

Every stage collects its problems as `Diagnostic`s; the driver sorts them and raises one
`CompileError` carrying all of them.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field


@dataclass(frozen=True, order=True)
class Span:
    """A source range: 1-based lines and columns, end exclusive."""

    file: str
    line: int
    col: int
    end_line: int
    end_col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True)
class Note:
    """A secondary location, for example one edge of a cycle."""

    span: Span
    message: str


@dataclass(frozen=True)
class Diagnostic:
    span: Span
    message: str
    help: str = ""
    notes: tuple[Note, ...] = ()
    severity: str = "error"

    def sort_key(self) -> tuple:
        return (self.span.file, self.span.line, self.span.col, self.message)

    def render(self, source_lines: dict[str, list[str]] | None = None) -> str:
        """The diagnostic as text; with the file's lines, also the source line and a caret."""
        lines = source_lines or {}
        out = [f"{self.span}: {self.severity}: {self.message}"]
        out += _excerpt(self.span, lines.get(self.span.file))
        for note in self.notes:
            out.append(f"  {note.span}: note: {note.message}")
            out += _excerpt(note.span, lines.get(note.span.file), indent="  ")
        if self.help:
            for i, text in enumerate(self.help.splitlines()):
                out.append(("  = help: " if i == 0 else "          ") + text)
        return "\n".join(out)


def _excerpt(span: Span, lines: list[str] | None, indent: str = "") -> list[str]:
    if not lines or not 1 <= span.line <= len(lines):
        return []
    text = lines[span.line - 1].rstrip("\n")
    gutter = " " * len(str(span.line))
    end = span.end_col if span.end_line == span.line else len(text) + 1
    width = max(1, end - span.col)
    return [
        f"{indent}  {span.line} | {text}",
        f"{indent}  {gutter} | {' ' * (span.col - 1)}{'^' * width}",
    ]


def did_you_mean(name: str, candidates) -> str:
    """`did you mean `close`?` for the closest candidates, or ""."""
    matches = difflib.get_close_matches(name, sorted(set(candidates)), n=3, cutoff=0.6)
    if not matches:
        return ""
    return "did you mean " + " or ".join(f"`{m}`" for m in matches) + "?"


@dataclass
class CompileError(Exception):
    """All problems found in one compilation, reported together."""

    diagnostics: list[Diagnostic]
    source_lines: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.diagnostics = sorted(self.diagnostics, key=Diagnostic.sort_key)
        super().__init__(self.render())

    def render(self) -> str:
        errors = [d for d in self.diagnostics if d.severity == "error"]
        files = sorted({d.span.file for d in errors})
        body = "\n\n".join(d.render(self.source_lines) for d in self.diagnostics)
        count = f"{len(errors)} error{'s' if len(errors) != 1 else ''}"
        return f"{body}\n\n{count} in {', '.join(files)}"

    def __str__(self) -> str:
        return self.render()
