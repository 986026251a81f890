"""Where the Rust templates and the runtime crate's sources are.

From a regular install they ship inside this package (`data/`, see pyproject.toml); from
a source checkout or an editable install they are the repository's own folders.
"""

from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).resolve().parent


def _find(installed: str, in_repo: str) -> Path:
    for candidate in (_HERE / "data" / installed, _HERE.parent / in_repo):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"serverless_ray is installed without its {in_repo}/ folder (looked in {_HERE})")


def templates_dir() -> Path:
    return _find("templates", "templates")


def runtime_dir() -> Path:
    return _find("runtime", "runtime-rs")


def schema_path(name: str) -> Path:
    """A JSON Schema shipped with the package: `lambda-request` or `lambda-response`."""
    return _HERE / "schema" / f"{name}.schema.json"
