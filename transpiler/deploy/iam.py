"""The execution role `--create-role` makes: Lambda may assume it; it may write the
function's own logs, and read and write objects of the configured bucket; nothing else."""

from __future__ import annotations

import hashlib

POLICY_NAME = "sray-gen-least-privilege"
MANAGED_TAG = ("sray:managed-by", "sray-gen")


def role_name(function_name: str) -> str:
    """`sray-gen-<function>`, shortened with a hash to IAM's 64 characters."""
    name = f"sray-gen-{function_name}"
    if len(name) <= 64:
        return name
    return name[:55] + "-" + hashlib.sha256(function_name.encode()).hexdigest()[:8]


def role_arn(partition: str, account: str, name: str) -> str:
    return f"arn:{partition}:iam::{account}:role/{name}"


def trust_policy() -> dict:
    return {
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }],
    }


def permissions_policy(*, partition: str, region: str, account: str, function_name: str,
                       bucket: str | None) -> dict:
    """Logs of /aws/lambda/<function> only; with a bucket, its objects (get, put) and listing."""
    log_group = f"arn:{partition}:logs:{region}:{account}:log-group:/aws/lambda/{function_name}"
    statements = [
        # The group's ARN as CreateLogGroup names it, and with `:*` as the console's roles write it.
        {"Sid": "CreateOwnLogGroup", "Effect": "Allow", "Action": "logs:CreateLogGroup",
         "Resource": [log_group, f"{log_group}:*"]},
        # `:*` covers the group's streams (log-group:NAME:log-stream:STREAM).
        {"Sid": "WriteOwnLogs", "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
         "Resource": f"{log_group}:*"},
    ]
    if bucket:
        statements += [
            {"Sid": "ReadWriteBucketObjects", "Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"],
             "Resource": f"arn:{partition}:s3:::{bucket}/*"},
            {"Sid": "ListBucket", "Effect": "Allow", "Action": "s3:ListBucket",
             "Resource": f"arn:{partition}:s3:::{bucket}"},
        ]
    return {"Version": "2012-10-17", "Statement": statements}
