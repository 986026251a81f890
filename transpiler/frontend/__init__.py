"""Frontend: Python source -> IR. See parse.py."""

from .parse import ParseResult, parse_source

__all__ = ["ParseResult", "parse_source"]
