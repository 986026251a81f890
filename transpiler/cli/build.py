"""`sray-gen build FILE [--target python|lambda|all]`: generate the crate, then build the
Python wheel with maturin and install it (python, the default), and/or the AWS Lambda
zip `dist/<module>-lambda.zip` (lambda)."""

from __future__ import annotations

import sys
import time

from ..toolchain.build import build_wheel, install_wheel, target_dir
from ..toolchain.crate import ToolchainError
from .generate import generate

TARGETS = ("python", "lambda", "all")


def run(config) -> int:
    if config.target not in TARGETS:
        raise ToolchainError(f"unknown build target `{config.target}`; choose one of {', '.join(TARGETS)}")
    python = config.target in ("python", "all")
    lam = config.target in ("lambda", "all")
    steps = 1 + (2 if python and config.install else 1 if python else 0) + (1 if lam else 0)
    step = iter(range(1, steps + 1))
    t0 = time.perf_counter()
    print(f"[{next(step)}/{steps}] generating the Rust crate of {config.file}", flush=True)
    crate = generate(config)
    target = config.target_dir or target_dir()
    profile = "release" if config.release else "debug"

    def echo(line: str) -> None:
        # Cargo's progress lines, or everything with --verbose.
        if config.verbose or line.lstrip().startswith(("Compiling", "Finished", "error", "warning", "📦", "🔗")):
            print("    " + line.strip(), flush=True)

    done = []
    if python:
        print(f"[{next(step)}/{steps}] compiling {config.module_name} ({profile}, cargo target dir {target})", flush=True)
        t1 = time.perf_counter()
        wheel = build_wheel(crate, config.dist, release=config.release, target=target, echo=echo)
        print(f"    wheel {wheel} ({time.perf_counter() - t1:.1f}s)", flush=True)
        if config.install:
            print(f"[{next(step)}/{steps}] installing {wheel.name} into {sys.executable}", flush=True)
            install_wheel(wheel)
            done.append(f"`import {config.module_name}`")
        else:
            done.append(str(wheel))
    if lam:
        from ..toolchain.lambda_zip import build_lambda_zip_of_crate

        print(f"[{next(step)}/{steps}] building the AWS Lambda zip of {config.module_name} "
              f"(release, cargo target dir {target})", flush=True)
        if not config.release:
            print("    (--debug does not apply: the Lambda binary is always a release build)", flush=True)
        t1 = time.perf_counter()

        def say(line: str) -> None:
            if line.startswith("  "):
                print("  " + line, flush=True)
            else:
                echo(line)

        z = build_lambda_zip_of_crate(crate, config.dist, config.module_name, target=target, echo=say)
        print(f"    ({time.perf_counter() - t1:.1f}s)", flush=True)
        done.append(f"{z} (deploy it with `sray-gen deploy`, try it with `sray-gen invoke --local`)")
    print(f"done in {time.perf_counter() - t0:.1f}s: {'; '.join(done)}", flush=True)
    return 0
