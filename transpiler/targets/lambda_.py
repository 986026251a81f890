"""Target `lambda`: `dist/<module>-lambda.zip` for AWS Lambda's provided.al2023 (x86_64):
the crate's `bootstrap` binary, which serves every DAG class of the file, linked against
Amazon Linux 2023's glibc and checked (toolchain/lambda_zip.py)."""

from __future__ import annotations

import time
from pathlib import Path

from ..backend.rust import CrateBin, CratePart
from ..config import Config
from ..toolchain.crate import ToolchainError
from .base import Progress, Target, cargo_target_dir

PART = CratePart(
    features=(("lambda", ("sray-runtime/lambda",),
               "The Lambda runtime, JSON events and S3 of sray-runtime, for the `bootstrap` binary."),),
    bins=(CrateBin("bootstrap", "bootstrap.rs.j2", "lambda",
                   "The AWS Lambda executable (`sray-gen build --target lambda` zips it); one function serves "
                   "every DAG class of the file."),),
)


def _zipper():
    """toolchain.lambda_zip, which needs the `lambda` extra (pyelftools, cargo-zigbuild):
    imported when a Lambda zip is built, so that the other targets work without it."""
    try:
        from ..toolchain import lambda_zip
    except ImportError as e:
        raise ToolchainError(f"building the Lambda zip needs the `lambda` extra ({e.name} is not installed): "
                             "python -m pip install 'serverless_ray[lambda]'") from None
    return lambda_zip


def build(crate: Path, config: Config, progress: Progress) -> str:
    target = cargo_target_dir(config)
    progress.step(f"building the AWS Lambda zip of {config.module_name} (release, cargo target dir {target})")
    if not config.release:
        progress.detail("(--debug does not apply: the Lambda binary is always a release build)")
    t1 = time.perf_counter()

    def say(line: str) -> None:
        if line.startswith("  "):
            progress.say("  " + line, flush=True)
        else:
            progress.tool(line)

    z = _zipper().build_lambda_zip_of_crate(crate, config.dist, config.module_name, target=target, echo=say)
    progress.detail(f"({time.perf_counter() - t1:.1f}s)")
    return f"{z} (deploy it with `sray-gen deploy`, try it with `sray-gen invoke --local`)"


TARGET = Target(
    name="lambda",
    help="the AWS Lambda zip dist/<name>-lambda.zip (provided.al2023, x86_64)",
    part=PART,
    build=build,
)


def build_lambda_zip(file: Path, dist: Path, *, name: str | None = None, echo=None, out: Path | None = None,
                     target: Path | None = None) -> Path:
    """Generates the crate of `file`, builds and checks its `bootstrap`, and writes
    `dist/<module>-lambda.zip` (module as `sray-gen build` names it); returns the zip.
    `echo` receives progress lines; `out` is the crate directory (default build/<module>),
    `target` the cargo target dir (default: the shared one)."""
    from . import generate

    say = echo or (lambda *_: None)
    config = Config(file=Path(file), name=name, out=out, dist=Path(dist), install=False)
    crate = generate(config, say=say)
    return _zipper().build_lambda_zip_of_crate(crate, config.dist, config.module_name, target=target, echo=say)
