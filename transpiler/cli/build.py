"""`sray-gen build FILE`: generate the crate, build a wheel with maturin, install it."""

from __future__ import annotations

import sys
import time

from ..toolchain.build import build_wheel, install_wheel, target_dir
from .generate import generate


def run(config) -> int:
    steps = 3 if config.install else 2
    t0 = time.perf_counter()
    print(f"[1/{steps}] generating the Rust crate of {config.file}", flush=True)
    crate = generate(config)
    target = config.target_dir or target_dir()
    profile = "release" if config.release else "debug"
    print(f"[2/{steps}] compiling {config.module_name} ({profile}, cargo target dir {target})", flush=True)

    def echo(line: str) -> None:
        # Cargo's progress lines, or everything with --verbose.
        if config.verbose or line.lstrip().startswith(("Compiling", "Finished", "error", "warning", "📦", "🔗")):
            print("    " + line.strip(), flush=True)

    t1 = time.perf_counter()
    wheel = build_wheel(crate, config.dist, release=config.release, target=target, echo=echo)
    print(f"    wheel {wheel} ({time.perf_counter() - t1:.1f}s)", flush=True)
    if config.install:
        print(f"[3/{steps}] installing {wheel.name} into {sys.executable}", flush=True)
        install_wheel(wheel)
    print(f"done in {time.perf_counter() - t0:.1f}s: `import {config.module_name}`", flush=True)
    return 0
