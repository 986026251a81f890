"""`sray-gen build FILE [--target NAME|all]`: generate the crate, then build each target's
artifact (sray_transpiler.targets: the wheel, installed, by default)."""

from __future__ import annotations

from ..targets import build


def run(config) -> int:
    build(config)
    return 0
