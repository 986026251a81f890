"""`sray-gen destroy`: removes what deploy created for a function: its aliases, its
versions and the function itself, the code objects deploy uploaded to S3, and the role
if deploy created it. Like deploy, a read-only plan and then its apply. Log groups are
kept (the function, not deploy, created them; docs/deploy.md says how to delete them)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from . import iam
from .aws import Aws, errors, is_missing
from .errors import DeployError
from .plan import BUCKET_TAG, CODE_PREFIX, FUNCTION_TAG, ROLE_TAG, Step, steps_text


@dataclass
class DestroyPlan:
    function_name: str
    region: str
    endpoint: str
    exists: bool = False
    aliases: list[str] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)
    role_name: str | None = None
    bucket: str | None = None
    keys: list[str] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)

    def to_json(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k != "steps"}
        d["steps"] = [s.to_json() for s in self.steps]
        return d

    def render(self) -> str:
        lines = [f"destroy plan for Lambda function {self.function_name} in {self.region} ({self.endpoint})"]
        if not self.steps:
            lines.append(f"nothing to destroy: no function {self.function_name}, and nothing sray-gen created for it")
        else:
            lines += steps_text(self.steps)
        return "\n".join(lines)

    def render_json(self) -> str:
        return json.dumps(self.to_json(), indent=2, sort_keys=True)


def _ours(tags: dict) -> bool:
    return tags.get(iam.MANAGED_TAG[0]) == iam.MANAGED_TAG[1]


def make_destroy_plan(aws: Aws, name: str, bucket: str | None = None, force: bool = False) -> DestroyPlan:
    from botocore.exceptions import ClientError

    lam, iam_client = aws.client("lambda"), aws.client("iam")
    plan = DestroyPlan(name, aws.region, aws.endpoint("lambda"))
    tags = {}
    with errors(f"reading function {name} (lambda:GetFunction, ListAliases, ListVersionsByFunction)"):
        try:
            got = lam.get_function(FunctionName=name)
        except ClientError as e:
            if not is_missing(e):
                raise
            got = None
        if got is not None:
            plan.exists = True
            tags = dict(got.get("Tags") or {})
            if not _ours(tags) and not force:
                raise DeployError(f"function {name} was not created by sray-gen (no {iam.MANAGED_TAG[0]} tag); "
                                  "destroy leaves it alone; pass --force to delete it anyway")
            for page in lam.get_paginator("list_aliases").paginate(FunctionName=name):
                plan.aliases += [a["Name"] for a in page["Aliases"]]
            for page in lam.get_paginator("list_versions_by_function").paginate(FunctionName=name):
                plan.versions += [v["Version"] for v in page["Versions"] if v["Version"] != "$LATEST"]
            plan.versions.sort(key=int)

    # The role: the one the function's tag names, else the name deploy would have given it
    # (a destroy interrupted after deleting the function still finds it), if sray-gen made it for `name`.
    candidate = tags.get(ROLE_TAG) or iam.role_name(name)
    with errors(f"reading role {candidate} (iam:GetRole, iam:ListRoleTags)"):
        try:
            iam_client.get_role(RoleName=candidate)
            role_tags = {t["Key"]: t["Value"] for t in iam_client.list_role_tags(RoleName=candidate)["Tags"]}
            if _ours(role_tags) and role_tags.get(FUNCTION_TAG) == name:
                plan.role_name = candidate
        except ClientError as e:
            if not is_missing(e):
                raise

    plan.bucket = tags.get(BUCKET_TAG) or bucket
    if plan.bucket:
        s3 = aws.client("s3")
        with errors(f"listing s3://{plan.bucket}/{CODE_PREFIX}/{name}/ (s3:ListBucket)"):
            try:
                for page in s3.get_paginator("list_objects_v2").paginate(Bucket=plan.bucket,
                                                                         Prefix=f"{CODE_PREFIX}/{name}/"):
                    plan.keys += [o["Key"] for o in page.get("Contents", [])]
            except ClientError as e:
                if not is_missing(e):
                    raise

    for a in plan.aliases:
        plan.steps.append(Step("delete-alias", f"delete alias {a}"))
    if plan.keys:
        plan.steps.append(Step("delete-code", f"delete {len(plan.keys)} code object(s) under "
                                              f"s3://{plan.bucket}/{CODE_PREFIX}/{name}/"))
    if plan.exists:
        vs = f" and its versions {', '.join(plan.versions)}" if plan.versions else ""
        plan.steps.append(Step("delete-function", f"delete function {name}{vs}"))
    if plan.role_name:
        plan.steps.append(Step("delete-role", f"delete role {plan.role_name} and its policies"))
    return plan


def apply_destroy(aws: Aws, plan: DestroyPlan, echo=print) -> None:
    from botocore.exceptions import ClientError

    lam = aws.client("lambda")
    n = len(plan.steps)
    alias_steps = iter(plan.aliases)
    for i, step in enumerate(plan.steps, 1):
        echo(f"[{i}/{n}] {step.detail}")
        with errors(f"step {i}/{n} ({step.action})"):
            try:
                if step.action == "delete-alias":
                    lam.delete_alias(FunctionName=plan.function_name, Name=next(alias_steps))
                elif step.action == "delete-code":
                    s3 = aws.client("s3")
                    for j in range(0, len(plan.keys), 1000):
                        s3.delete_objects(Bucket=plan.bucket, Delete={
                            "Objects": [{"Key": k} for k in plan.keys[j:j + 1000]], "Quiet": True})
                elif step.action == "delete-function":
                    lam.delete_function(FunctionName=plan.function_name)
                elif step.action == "delete-role":
                    _delete_role(aws.client("iam"), plan.role_name)
                else:
                    raise DeployError(f"unknown destroy step {step.action!r} (a bug in sray-gen)")
            except ClientError as e:
                if not is_missing(e):  # already gone: someone else removed it meanwhile
                    raise
    echo(f"destroyed {plan.function_name}" if n else plan.render())


def _delete_role(client, name: str) -> None:
    for page in client.get_paginator("list_role_policies").paginate(RoleName=name):
        for policy in page["PolicyNames"]:
            client.delete_role_policy(RoleName=name, PolicyName=policy)
    for page in client.get_paginator("list_attached_role_policies").paginate(RoleName=name):
        for policy in page["AttachedPolicies"]:
            client.detach_role_policy(RoleName=name, PolicyArn=policy["PolicyArn"])
    for profile in client.list_instance_profiles_for_role(RoleName=name)["InstanceProfiles"]:
        client.remove_role_from_instance_profile(InstanceProfileName=profile["InstanceProfileName"], RoleName=name)
    client.delete_role(RoleName=name)
