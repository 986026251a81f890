"""`sray-gen explain FILE`: prints the optimized plan (sray_transpiler.explain)."""

from __future__ import annotations

from ..driver import load
from ..explain import explain


def run(config) -> int:
    print(explain(load(config.file)))
    return 0
