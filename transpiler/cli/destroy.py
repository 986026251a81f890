"""`sray-gen destroy`: removes what `sray-gen deploy` created for a function (see
sray_transpiler.deploy.teardown)."""

from __future__ import annotations

import argparse
import sys

from ..deploy.settings import resolve

DESCRIPTION = """\
Remove what `sray-gen deploy` created for a Lambda function: its aliases, its versions and
the function, the code objects deploy uploaded to S3 (sray-gen/<function>/ in the bucket),
and the execution role if deploy created it (--create-role). Functions that sray-gen did not
create are left alone unless --force. The function's CloudWatch log group is kept.
"""


def add_parser(sub) -> None:
    p = sub.add_parser("destroy", help="remove a function deployed by `sray-gen deploy`",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--function-name", dest="function_name", help="the Lambda function's name "
                                                                 "(default: function-name in [tool.sray.deploy])")
    p.add_argument("--bucket", help="also look for code objects here (default: the bucket deploy recorded)")
    p.add_argument("--region", help="AWS region (default: AWS_REGION, AWS_DEFAULT_REGION or the profile's)")
    p.add_argument("--profile", help="AWS profile (default: AWS_PROFILE)")
    p.add_argument("--force", action="store_true", help="delete the function even if sray-gen did not create it")
    p.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation on a terminal")
    p.add_argument("--dry-run", dest="dry_run", action="store_true", help="print the plan and delete nothing")
    p.add_argument("--json", action="store_true", help="print the plan as JSON on stdout")


def run_args(args) -> int:
    from ..deploy.aws import connect
    from ..deploy.teardown import apply_destroy, make_destroy_plan

    out = sys.stderr if args.json else sys.stdout

    def echo(line: str) -> None:
        print(line, file=out, flush=True)

    settings = resolve({k: getattr(args, k) for k in ("function_name", "bucket", "region", "profile")})
    aws = connect(settings.region, settings.profile)
    plan = make_destroy_plan(aws, settings.function_name, settings.bucket, force=args.force)
    if args.dry_run or not plan.steps:
        print(plan.render_json() if args.json else plan.render(), flush=True)
        if args.dry_run:
            echo("dry run: nothing was deleted")
        return 0
    echo(plan.render())
    if sys.stdin.isatty() and not args.yes:
        if input("delete all of the above? [y/N] ").strip().lower() not in ("y", "yes"):
            echo("nothing was deleted")
            return 1
    apply_destroy(aws, plan, echo=echo)
    return 0
