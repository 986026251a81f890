"""User names -> Rust text, safely.

No user string reaches generated Rust unescaped: names become identifiers through
`IdentAllocator` (keywords, non-ASCII and collisions handled), and everything else
(docstrings, Python-facing names) becomes a string literal through `rust_str`.
"""

from __future__ import annotations

import re

# Strict and reserved keywords of Rust 2021, plus 2024's `gen`.
RUST_KEYWORDS = frozenset(
    """as break const continue crate else enum extern false fn for if impl in let loop match
    mod move mut pub ref return self Self static struct super trait true type unsafe use where
    while async await dyn abstract become box do final macro override priv typeof unsized
    virtual yield try gen union""".split()
)
# Keywords that cannot be written as raw identifiers (`r#self` is an error).
_NOT_RAW = frozenset({"self", "Self", "super", "crate", "_"})
_ASCII_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def sanitize(name: str) -> str:
    """An ASCII Rust identifier close to `name` (may still collide; see IdentAllocator)."""
    if _ASCII_IDENT.match(name) and name != "_":
        if name in RUST_KEYWORDS:
            return name + "_" if name in _NOT_RAW else "r#" + name
        return name
    out = []
    for ch in name:
        out.append(ch if (ch.isascii() and (ch.isalnum() or ch == "_")) else f"_u{ord(ch):x}_")
    text = "".join(out).strip("_") or "x"
    text = re.sub(r"_+", "_", text)
    if not (text[0].isalpha() or text[0] == "_"):
        text = "n" + text
    return text + "_" if text in RUST_KEYWORDS else text


class IdentAllocator:
    """Assigns each name a distinct Rust identifier, deterministically (first come, first
    served), avoiding `reserved` ones."""

    def __init__(self, reserved=(), sep: str = "_"):
        self.sep = sep  # between a colliding identifier and its counter: `x_2`, `Match2`
        self.taken: set[str] = {self._key(r) for r in reserved}
        self.assigned: dict[str, str] = {}

    @staticmethod
    def _key(ident: str) -> str:
        return ident.removeprefix("r#")

    def __call__(self, name: str, spelling: str | None = None) -> str:
        """The identifier of `name`, based on `spelling` (default: the name itself)."""
        if name in self.assigned:
            return self.assigned[name]
        base = sanitize(spelling if spelling is not None else name)
        ident, k = base, 1
        while self._key(ident) in self.taken:
            k += 1
            ident = f"{self._key(base)}{self.sep}{k}"
        self.taken.add(self._key(ident))
        self.assigned[name] = ident
        return ident


def rust_str(text: str) -> str:
    """A Rust string literal holding exactly `text`."""
    out = ['"']
    for ch in text:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch.isprintable() and ch.isascii():
            out.append(ch)
        else:
            out.append(f"\\u{{{ord(ch):x}}}")
    out.append('"')
    return "".join(out)


def camel(name: str) -> str:
    """A Rust type name for a DAG: ASCII, CamelCase-ish, never a keyword."""
    ident = sanitize(name).removeprefix("r#")
    return ident[:1].upper() + ident[1:]
