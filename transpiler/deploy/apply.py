"""Carries out a DeployPlan step by step: waits for the function to be active / updated
(botocore's waiters) before the next step, retries while an update is still in progress,
and reports each step."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from . import iam
from .aws import Aws, code, errors, retry_conflicts
from .errors import DeployError
from .plan import FUNCTION_TAG, DeployPlan

WAIT = {"Delay": 1, "MaxAttempts": 300}  # up to 5 minutes per wait


@dataclass
class DeployResult:
    function_arn: str
    version: str
    alias: str
    alias_arn: str
    published: bool  # a new version was published
    changed: bool  # anything at all was changed

    def to_json(self) -> dict:
        return dict(self.__dict__)


def _cannot_assume(e) -> bool:
    # A role created a moment ago is not yet usable by Lambda (IAM is eventually consistent).
    return code(e) == "InvalidParameterValueException" and "assume" in str(e)


def apply(aws: Aws, plan: DeployPlan, echo=print, sleep=time.sleep) -> DeployResult:
    s = plan.settings
    lam = aws.client("lambda")
    name = s.function_name
    version = plan.reuse_version
    published = False
    role_is_new = False
    n = len(plan.steps)
    t0 = time.perf_counter()

    for i, step in enumerate(plan.steps, 1):
        echo(f"[{i}/{n}] {step.detail}")
        doing = f"step {i}/{n} ({step.action})"
        with errors(doing):
            if step.action in ("create-role", "update-role"):
                _put_role(aws, plan, create=step.action == "create-role")
                role_is_new = role_is_new or step.action == "create-role"
            elif step.action == "upload-code":
                aws.client("s3").upload_file(
                    str(plan.artifact.path), s.bucket, plan.s3_key,
                    ExtraArgs={"Tagging": f"{FUNCTION_TAG}={name}&{iam.MANAGED_TAG[0]}={iam.MANAGED_TAG[1]}"})
            elif step.action == "create-function":
                cfg = plan.config()
                retry_conflicts(lambda: lam.create_function(
                    FunctionName=name, Code=plan.code(), Publish=False, PackageType="Zip",
                    Architectures=[plan.artifact.architecture], Tags=plan.tags, **cfg),
                    what="create function", tries=10 if role_is_new else 1, first_delay=1.0,
                    also=_cannot_assume, sleep=sleep)
                echo("    waiting until the function is active")
                lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig=WAIT)
            elif step.action == "update-code":
                retry_conflicts(lambda: lam.update_function_code(
                    FunctionName=name, Architectures=[plan.artifact.architecture], Publish=False, **plan.code()),
                    what="update code", sleep=sleep)
                echo("    waiting until the update is done")
                lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig=WAIT)
            elif step.action == "update-config":
                cfg = plan.config()
                retry_conflicts(lambda: lam.update_function_configuration(FunctionName=name, **cfg),
                                what="update configuration", also=_cannot_assume if role_is_new else None,
                                sleep=sleep)
                echo("    waiting until the update is done")
                lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig=WAIT)
            elif step.action == "update-tags":
                arn = plan.current.config["FunctionArn"]
                drop = [k for k in plan.current.tags if k not in plan.tags and not k.lower().startswith("aws:")]
                if drop:
                    lam.untag_resource(Resource=arn, TagKeys=drop)
                lam.tag_resource(Resource=arn, Tags=plan.tags)
            elif step.action == "publish-version":
                got = retry_conflicts(lambda: lam.publish_version(FunctionName=name,
                                                                  CodeSha256=plan.artifact.sha256),
                                      what="publish version", sleep=sleep)
                version = got["Version"]
                published = True
                echo(f"    version {version}")
            elif step.action in ("create-alias", "update-alias"):
                call = lam.create_alias if step.action == "create-alias" else lam.update_alias
                retry_conflicts(lambda: call(FunctionName=name, Name=s.alias, FunctionVersion=version),
                                what="point the alias", sleep=sleep)
                echo(f"    alias {s.alias} -> {version}")
            else:  # a plan only holds the actions above
                raise DeployError(f"unknown plan step {step.action!r} (a bug in sray-gen)")

    with errors("reading the result (lambda:GetAlias)"):
        alias = lam.get_alias(FunctionName=name, Name=s.alias)
        fn = lam.get_function(FunctionName=name)["Configuration"]
    if alias["FunctionVersion"] != version:
        raise DeployError(f"alias {s.alias} points at version {alias['FunctionVersion']}, not {version}: "
                          "someone else changed it during the deploy; run deploy again")
    dt = time.perf_counter() - t0
    if not plan.steps:
        echo(f"{name} is up to date: nothing changed, no new version published (alias {s.alias} -> {version})")
    elif not published:
        echo(f"{name}: no new version published (code and configuration unchanged); alias {s.alias} -> "
             f"{version} ({dt:.1f}s)")
    else:
        echo(f"deployed {name}: version {version}, alias {s.alias} -> {version} ({dt:.1f}s)")
    return DeployResult(fn["FunctionArn"], version, s.alias, alias["AliasArn"], published, bool(plan.steps))


def _put_role(aws: Aws, plan: DeployPlan, create: bool) -> None:
    client = aws.client("iam")
    name = plan.role_name
    if create:
        client.create_role(
            RoleName=name, AssumeRolePolicyDocument=json.dumps(iam.trust_policy()),
            Description=f"Execution role of Lambda function {plan.function_name}, created by sray-gen deploy",
            Tags=[{"Key": iam.MANAGED_TAG[0], "Value": iam.MANAGED_TAG[1]},
                  {"Key": FUNCTION_TAG, "Value": plan.function_name}])
        client.get_waiter("role_exists").wait(RoleName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    else:
        client.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(iam.trust_policy()))
    client.put_role_policy(RoleName=name, PolicyName=iam.POLICY_NAME, PolicyDocument=json.dumps(plan.role_policy))
