"""`sray-gen generate FILE`: writes the Rust crate of a DAG file, without building it."""

from __future__ import annotations

from ..targets import generate


def run(config) -> int:
    print(f"[1/1] generating the Rust crate of {config.file}")
    generate(config)
    return 0
