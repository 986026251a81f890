"""The one config object of a build, filled from `[tool.sray]` in the nearest
pyproject.toml and then from explicit values (the command line's flags; they win)."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

from .backend.names import RUST_KEYWORDS


@dataclass
class Config:
    file: Path | None = None
    name: str | None = None  # module name; default <file stem>_rs
    out: Path | None = None  # crate directory; default build/<name>
    dist: Path = Path("dist")
    target_dir: Path | None = None  # default: toolchain.build.target_dir()
    install: bool = True
    release: bool = True
    verbose: bool = False
    target: str = "python"  # build: a name of targets.REGISTRY, or all
    # invoke
    event: str | None = None  # a request JSON file, or - for stdin
    local: bool = False
    function_name: str | None = None

    @property
    def module_name(self) -> str:
        return self.name or f"{self.file.stem}_rs"

    @property
    def crate_dir(self) -> Path:
        return self.out or Path("build") / self.module_name


def pyproject_settings(start: Path) -> dict:
    """`[tool.sray]` of the nearest pyproject.toml at or above `start`."""
    for d in [start, *start.parents]:
        f = d / "pyproject.toml"
        if f.is_file():
            with f.open("rb") as fh:
                return tomllib.load(fh).get("tool", {}).get("sray", {})
    return {}


def make_config(flags) -> Config:
    """`[tool.sray]` of the nearest pyproject.toml, overridden by `flags` (an object whose
    attributes named like Config's fields are set, e.g. parsed arguments; None = unset)."""
    settings = pyproject_settings(Path.cwd())
    known = {f.name for f in fields(Config)}
    values = {k.replace("-", "_"): v for k, v in settings.items() if k.replace("-", "_") in known}
    for f in fields(Config):
        flag = getattr(flags, f.name, None)
        if flag is not None:
            values[f.name] = flag
    for key in ("file", "out", "dist", "target_dir"):
        if values.get(key) is not None:
            values[key] = Path(values[key])
    return Config(**values)


_MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def module_name_problem(name: str) -> str | None:
    """Why `name` cannot name a Python extension module built from Rust, or None."""
    if not _MODULE_NAME.match(name):
        return f"module name `{name}` must be an ASCII identifier (letters, digits, _); pass --name"
    if name in RUST_KEYWORDS:
        return f"module name `{name}` is a Rust keyword; pass another --name"
    return None
