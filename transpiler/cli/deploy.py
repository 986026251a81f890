"""`sray-gen deploy`: ships a Lambda artifact with boto3 (plan, then apply; see
sray_transpiler.deploy). Flags here, defaults in [tool.sray.deploy]; the logic lives in
the deploy package."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..deploy.errors import DeployError
from ..deploy.settings import DIRECT_UPLOAD_LIMIT, parse_pairs, resolve
from ..config import pyproject_settings

DESCRIPTION = """\
Create or update an AWS Lambda function from a DAG file's Lambda artifact, publish a
version and point an alias (default `live`) at it.

The artifact is dist/<module>-lambda.zip built from FILE (as `sray-gen build FILE
--target lambda` does), or an existing zip given with --zip. With --worker it is the
generic Python worker of the Ray-like API, packaged into dist/serverless_ray-worker.zip.
A second deploy with nothing changed publishes nothing. Zips over the direct upload limit
(50 MB) go through S3 (--bucket), under sray-gen/<function>/<sha256>.zip.

Region, profile, credentials and endpoint come from the usual AWS environment
(AWS_REGION, AWS_PROFILE, AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL, ~/.aws/config) unless
--region / --profile say otherwise. The function's options (not FILE, --zip, --worker,
--dry-run, --json) can be set in [tool.sray.deploy] of pyproject.toml (see docs/deploy.md);
flags win.
"""

EPILOG = """\
examples:
  sray-gen deploy examples/alpha.py --function-name alpha --create-role
  sray-gen deploy --zip dist/alpha_rs-lambda.zip --function-name alpha --role arn:aws:iam::123456789012:role/r
  sray-gen deploy examples/alpha.py --function-name alpha --memory 2048 --env RUST_LOG=info --dry-run
  sray-gen deploy --worker --bundle-numpy --function-name sray-worker --create-role --bucket my-data
  sray-gen destroy --function-name alpha
"""


def add_parser(sub) -> None:
    p = sub.add_parser("deploy", help="create or update the Lambda function of a DAG file",
                       description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", nargs="?", help="a DAG file; its Lambda artifact is built, then deployed")
    p.add_argument("--zip", type=Path, help="deploy this zip instead of building one (needs an executable "
                                           "`bootstrap` at its root)")
    p.add_argument("--worker", action="store_true",
                   help="deploy the generic Python worker of the Ray-like API (serverless_ray + cloudpickle, "
                        "python3.11, handler serverless_ray.lambda_worker.handler) instead of a DAG file")
    p.add_argument("--bundle-numpy", dest="bundle_numpy", action="store_true",
                   help="with --worker: put numpy's manylinux wheel for python3.11 x86_64 in the zip (pip "
                        "fetches it from PyPI); otherwise pass --layer ARN of a layer providing numpy")
    p.add_argument("--worker-package", dest="worker_package", type=Path, metavar="DIR",
                   help="with --worker: package this serverless_ray source directory instead of the "
                        "installed one")
    p.add_argument("--name", help="module name of the artifact built from FILE (default: the file's stem + `_rs`)")
    p.add_argument("--dist", help="where the built zip is left (default: dist/)")
    p.add_argument("--function-name", dest="function_name", help="the Lambda function's name")
    p.add_argument("--alias", help="alias pointed at the published version (default: live)")
    role = p.add_mutually_exclusive_group()
    role.add_argument("--role", help="ARN of an existing execution role (default for an existing function: "
                                     "keep its role)")
    role.add_argument("--create-role", dest="create_role", action="store_true", default=None,
                      help="create (or update) a least-privilege role sray-gen-<function>: the function's "
                           "logs, and read/write on --bucket")
    p.add_argument("--bucket", help="S3 bucket for code over the upload limit; --create-role grants the "
                                    "function read/write on it")
    p.add_argument("--memory", type=int, help="memory in MB, 128-10240 (default: 1024)")
    p.add_argument("--timeout", type=int, help="timeout in seconds, 1-900 (default: 30)")
    p.add_argument("--env", action="append", metavar="KEY=VALUE", help="environment variable (repeatable)")
    p.add_argument("--tag", action="append", metavar="KEY=VALUE", help="tag of the function (repeatable)")
    p.add_argument("--layer", action="append", metavar="ARN", help="layer version ARN (repeatable, at most 5)")
    p.add_argument("--description", help="the function's description")
    p.add_argument("--region", help="AWS region (default: AWS_REGION, AWS_DEFAULT_REGION or the profile's)")
    p.add_argument("--profile", help="AWS profile (default: AWS_PROFILE)")
    p.add_argument("--direct-upload-limit", dest="direct_upload_limit", type=int, metavar="BYTES",
                   help=f"zips larger than this go through S3 (default: {DIRECT_UPLOAD_LIMIT}, Lambda's limit)")
    p.add_argument("--adopt", action="store_true", default=None,
                   help="take over an existing function that sray-gen did not create")
    p.add_argument("--dry-run", dest="dry_run", action="store_true",
                   help="print the plan and change nothing (reads the current state, builds the zip if needed)")
    p.add_argument("--json", action="store_true", help="print the plan (or the result) as JSON on stdout")


def settings_from(args):
    flags = {k: getattr(args, k) for k in ("function_name", "alias", "role", "create_role", "bucket", "memory",
                                           "timeout", "description", "region", "profile",
                                           "direct_upload_limit", "adopt")}
    flags["env"] = parse_pairs(args.env, "env")
    flags["tags"] = parse_pairs(args.tag, "tag")
    if args.layer:
        flags["layers"] = list(args.layer)
    return resolve(flags)


def worker_artifact_from(args, settings, echo):
    from ..deploy.artifact import worker_artifact
    from ..deploy.worker import build_worker_zip

    if args.file:
        raise DeployError("--worker deploys the Python worker, not a DAG file: drop FILE")
    if args.zip:
        artifact = worker_artifact(args.zip)
        import zipfile

        with zipfile.ZipFile(args.zip) as zf:
            has_numpy = "numpy/__init__.py" in zf.namelist()
    else:
        has_numpy = args.bundle_numpy
        dist = Path(args.dist or pyproject_settings(Path.cwd()).get("dist", "dist"))
        path = build_worker_zip(dist, package=args.worker_package, bundle_numpy=args.bundle_numpy,
                                echo=echo)
        artifact = worker_artifact(path)
    if not has_numpy and not settings.layers:
        echo("note: the worker has no numpy (it needs none itself); tasks that import numpy will fail with "
             "ModuleNotFoundError: for them, pass --bundle-numpy to put numpy's manylinux wheel in the zip, or "
             "--layer ARN of a layer that provides it (e.g. AWS's AWSSDKPandas-Python311)")
    return artifact


def artifact_from(args, settings, echo):
    from ..deploy.artifact import bootstrap_artifact

    if args.worker:
        return worker_artifact_from(args, settings, echo)
    if args.bundle_numpy or args.worker_package:
        raise DeployError("--bundle-numpy and --worker-package only go with --worker")
    if args.zip:
        if args.file:
            raise DeployError("pass either FILE (to build its artifact) or --zip PATH, not both")
        return bootstrap_artifact(args.zip)
    if not args.file:
        raise DeployError("nothing to deploy: pass a DAG FILE, or --zip PATH of a built artifact")
    file = Path(args.file)
    if not file.is_file():
        raise DeployError(f"{file} does not exist: pass the path of a DAG file")
    from ..targets.lambda_ import build_lambda_zip

    project = pyproject_settings(Path.cwd())
    dist = Path(args.dist or project.get("dist", "dist"))
    name = args.name or project.get("name")
    echo(f"building the Lambda artifact of {file}")
    zip_path = build_lambda_zip(file, dist, name=name, echo=lambda line: echo("    " + line.rstrip()))
    return bootstrap_artifact(zip_path)


def run_args(args) -> int:
    from ..deploy.apply import apply
    from ..deploy.aws import connect
    from ..deploy.plan import make_plan

    out = sys.stderr if args.json else sys.stdout

    def echo(line: str) -> None:
        print(line, file=out, flush=True)

    settings = settings_from(args)
    artifact = artifact_from(args, settings, echo)
    aws = connect(settings.region, settings.profile)
    echo(f"reading the current state of {settings.function_name} ({aws.endpoint('lambda')})")
    plan = make_plan(aws, settings, artifact)
    if args.dry_run:
        print(plan.render_json() if args.json else plan.render(), flush=True)
        echo("dry run: nothing was changed")
        return 0
    if plan.changes:
        echo(plan.render())
    result = apply(aws, plan, echo=echo)
    if args.json:
        print(json.dumps(result.to_json(), indent=2, sort_keys=True))
    return 0
