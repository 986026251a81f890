"""The `sray-gen` command line: parses flags into a Config and dispatches."""

from __future__ import annotations

import argparse
import sys

from ..deploy.errors import DeployError
from ..diagnostics import CompileError
from ..toolchain.crate import ToolchainError
from .. import targets as build_targets
from ..config import make_config
from . import build, check, deploy, destroy, explain, generate, graph, invoke, ops

DESCRIPTION = """\
Compile DAGs of array formulas written in Python into Rust.

A DAG file holds @dag classes (inputs are `name: Input` attributes, nodes are methods)
or module-level functions whose parameters name their inputs. sray-gen reads the source
(it never imports it), checks the graph, and generates, builds and installs a Python
extension module computing the same values in parallel and incrementally.

Defaults can be set in [tool.sray] of pyproject.toml (name, out, dist, target-dir, ...).
"""

EPILOG = """\
examples:
  sray-gen check examples/alpha.py        print the graph, or every problem with its line
  sray-gen build examples/alpha.py        build and install `alpha_rs`
  sray-gen build alpha.py --target lambda dist/alpha_rs-lambda.zip, for AWS Lambda
  sray-gen generate alpha.py --out crate  only write the Rust crate
  sray-gen explain examples/alpha.py      the optimized plan the module will run
  sray-gen graph examples/alpha.py -o alpha.svg
                                          draw the DAG (.svg/.png need Graphviz's dot; .dot/.mmd do not)
  sray-gen invoke alpha.py --local --event ev.json
                                          run the Lambda function locally on a request
  sray-gen deploy alpha.py --function-name alpha --create-role
                                          create or update the Lambda function, alias `live`
  sray-gen destroy --function-name alpha  remove what deploy created
  sray-gen ops                            list the ops and how to spell them (meanings: docs/ops.md)
"""

COMMANDS = {"check": check, "explain": explain, "graph": graph, "generate": generate, "build": build,
            "invoke": invoke, "ops": ops, "deploy": deploy, "destroy": destroy}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sray-gen", description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    ops.add_parser(sub)

    c = sub.add_parser("check", help="validate a DAG file and print its graph")
    c.add_argument("file", help="a Python file holding @dag classes or factor functions")
    x = sub.add_parser("explain", help="print the optimized plan: fused kernels, schedule, bytes moved")
    x.add_argument("file", help="a Python file holding @dag classes or factor functions")

    targets = build_targets.registry()
    for name, helptext in (("generate", "write the Rust crate of a DAG file"),
                           ("build", "generate the crate and build it: by default the Python module, compiled "
                                     "with maturin and installed (--target: another artifact)")):
        g = sub.add_parser(name, help=helptext, description=helptext)
        g.add_argument("file", help="a Python file holding @dag classes or factor functions")
        g.add_argument("--name", help="Python module name (default: the file's stem + `_rs`)")
        g.add_argument("--out", help="directory of the generated crate (default: build/<name>)")
        if name == "build":
            g.add_argument("--dist", help="where the wheel is left (default: dist/)")
            g.add_argument("--target-dir", dest="target_dir",
                           help="cargo target dir shared by all builds (default: $SRAY_TARGET_DIR or "
                                "~/.cache/serverless_ray/target)")
            g.add_argument("--no-install", dest="install", action="store_false", default=None,
                           help="build the wheel but do not install it")
            g.add_argument("--debug", dest="release", action="store_false", default=None,
                           help="unoptimized build (faster to compile, slow to run)")
            g.add_argument("--target", choices=(*targets, "all"), default=None,
                           help="what to build: " + "; ".join(f"{t.name}: {t.help}" for t in targets.values())
                                + "; or all of them")
            g.add_argument("-v", "--verbose", action="store_true", default=None, help="show all compiler output")
    graph.add_parser(sub)
    deploy.add_parser(sub)
    destroy.add_parser(sub)
    i = sub.add_parser("invoke", help="run the AWS Lambda function of a DAG file on one request",
                       description=invoke.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    i.add_argument("file", nargs="?", help="the DAG file (needed with --local)")
    i.add_argument("--event", required=True, help="the request JSON (docs/lambda.md), a file or - for stdin")
    where = i.add_mutually_exclusive_group()
    where.add_argument("--local", action="store_true", default=None,
                       help="build the zip and run its bootstrap under cargo-lambda's emulator on 127.0.0.1")
    where.add_argument("--function-name", dest="function_name", help="invoke this deployed function instead")
    i.add_argument("--name", help="module name (default: the file's stem + `_rs`)")
    i.add_argument("--out", help="directory of the generated crate (default: build/<name>)")
    i.add_argument("--dist", help="where the zip is left (default: dist/)")
    i.add_argument("--target-dir", dest="target_dir", help="cargo target dir shared by all builds")
    i.add_argument("-v", "--verbose", action="store_true", default=None, help="show all compiler output")
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    config = make_config(args)
    try:
        command = COMMANDS[args.command]
        return command.run_args(args) if hasattr(command, "run_args") else command.run(config)
    except CompileError as e:
        print(e.render(), file=sys.stderr)
        return 1
    except ToolchainError as e:
        print(f"sray-gen: error: {e}", file=sys.stderr)
        return 2
    except DeployError as e:
        print(f"sray-gen: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("sray-gen: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
