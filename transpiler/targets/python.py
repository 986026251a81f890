"""Target `python`: the PyO3 extension module, as a wheel built by maturin and installed
into the running interpreter (`--no-install`: the wheel only)."""

from __future__ import annotations

import importlib
import sys
import time
import zipfile
from pathlib import Path

from ..backend.rust import CratePart
from ..config import Config
from ..toolchain.build import build_wheel, install_wheel
from .base import Progress, Target, cargo_target_dir

PART = CratePart(
    files=(("pyproject.toml", "pyproject.toml.j2"), ("{crate}.pyi", "module.pyi.j2")),
    features=(("python", ("dep:pyo3", "sray-runtime/python"),
               "The PyO3 extension module (maturin builds with this feature)."),),
)


def build(crate: Path, config: Config, progress: Progress) -> str:
    target = cargo_target_dir(config)
    profile = "release" if config.release else "debug"
    progress.step(f"compiling {config.module_name} ({profile}, cargo target dir {target})")
    t1 = time.perf_counter()
    wheel = build_wheel(crate, config.dist, release=config.release, target=target, echo=progress.tool)
    progress.detail(f"wheel {wheel} ({time.perf_counter() - t1:.1f}s)")
    if not config.install:
        return str(wheel)
    progress.step(f"installing {wheel.name} into {sys.executable}")
    install_wheel(wheel)
    return f"`import {config.module_name}`"


TARGET = Target(
    name="python",
    help="the Python extension module: a wheel, installed (the default)",
    part=PART,
    build=build,
    steps=lambda config: 2 if config.install else 1,
)


def build_and_import(path: Path, workdir: Path, name: str | None = None, echo=None):
    """Generates and builds the module of a DAG file without installing it: the wheel is
    unpacked into `workdir/site`, which goes on sys.path, and the module is imported.
    For tests and benchmarks, which must not touch the environment."""
    from . import generate

    config = Config(file=Path(path), name=name, out=workdir / "crate", dist=workdir / "dist", install=False)
    crate = generate(config, say=echo or (lambda *_: None))
    wheel = build_wheel(crate, config.dist, echo=echo)
    site = workdir / "site"
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
    sys.path.insert(0, str(site))
    return importlib.import_module(config.module_name)
