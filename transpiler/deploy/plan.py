"""The plan of a deploy: read the current state (read-only calls: Get*, List*, Head*), compare
it with what the settings and the artifact ask for, and list the steps that would close the
gap. Nothing here mutates anything, so `--dry-run` is exactly this module."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from . import iam
from .artifact import Artifact
from .aws import Aws, errors, is_missing
from .errors import DeployError
from .settings import DeploySettings

ROLE_TAG = "sray:role"  # on the function: the role deploy created for it
BUCKET_TAG = "sray:code-bucket"  # on the function: the bucket holding code deploy uploaded
FUNCTION_TAG = "sray:function"  # on a role or code object deploy created: whose it is
CODE_PREFIX = "sray-gen"  # S3 keys of uploaded code: sray-gen/<function>/<sha256 hex>.zip


def code_key(function_name: str, artifact: Artifact) -> str:
    return f"{CODE_PREFIX}/{function_name}/{artifact.sha256_hex}.zip"


@dataclass
class Step:
    action: str  # create-role, update-role, upload-code, create-function, update-code, update-config,
    #              update-tags, publish-version, create-alias, update-alias
    detail: str

    def to_json(self) -> dict:
        return {"action": self.action, "detail": self.detail}


@dataclass
class FunctionState:
    config: dict  # GetFunction's Configuration of $LATEST
    tags: dict
    versions: list[dict]  # published versions' configurations, oldest first
    alias_version: str | None  # what the alias points at, if it exists


@dataclass
class DeployPlan:
    settings: DeploySettings
    artifact: Artifact
    region: str
    endpoint: str
    role_arn: str
    role_name: str | None  # the role deploy manages (--create-role), else None
    role_policy: dict | None
    s3_key: str | None  # where the code goes in settings.bucket, when it goes through S3
    tags: dict  # the function's tags after deploy
    current: FunctionState | None
    steps: list[Step] = field(default_factory=list)
    reuse_version: str | None = None  # a published version equal to the wanted $LATEST

    @property
    def function_name(self) -> str:
        return self.settings.function_name

    @property
    def changes(self) -> bool:
        return bool(self.steps)

    def config(self) -> dict:
        """The function configuration deploy sets (as CreateFunction / UpdateFunctionConfiguration take it)."""
        return wanted_config(self.settings, self.artifact, self.role_arn)

    def code(self) -> dict:
        if self.s3_key:
            return {"S3Bucket": self.settings.bucket, "S3Key": self.s3_key}
        return {"ZipFile": self.artifact.path.read_bytes()}

    def to_json(self) -> dict:
        s, a = self.settings, self.artifact
        cur = self.current
        return {
            "function": self.function_name,
            "region": self.region,
            "endpoint": self.endpoint,
            "alias": s.alias,
            "artifact": {"path": str(a.path), "bytes": a.size, "sha256": a.sha256, "runtime": a.runtime,
                         "handler": a.handler, "architecture": a.architecture},
            "config": {k: v for k, v in self.config().items()},
            "tags": self.tags,
            "role": {"arn": self.role_arn, "managed": self.role_name is not None, "policy": self.role_policy},
            "code_upload": ({"bucket": s.bucket, "key": self.s3_key} if self.s3_key else "direct"),
            "current": None if cur is None else {
                "code_sha256": cur.config.get("CodeSha256"),
                "versions": [v["Version"] for v in cur.versions],
                "alias_version": cur.alias_version,
            },
            "steps": [st.to_json() for st in self.steps],
            "changes": self.changes,
            "reuse_version": self.reuse_version,
        }

    def render(self) -> str:
        s, a = self.settings, self.artifact
        lines = [f"deploy plan for Lambda function {self.function_name} in {self.region} ({self.endpoint})",
                 f"  artifact   {a.path} ({_size(a.size)}, sha256 {a.sha256})",
                 f"  runtime    {a.runtime} {a.architecture}, handler {a.handler}, {s.memory} MB, {s.timeout} s",
                 f"  role       {self.role_arn}" + (" (managed by sray-gen)" if self.role_name else ""),
                 "  code       " + (f"through s3://{s.bucket}/{self.s3_key}" if self.s3_key
                                     else "uploaded directly in the request")]
        if self.current is None:
            lines.append("  current    the function does not exist")
        else:
            vs = [v["Version"] for v in self.current.versions]
            lines.append(f"  current    versions {', '.join(vs) or 'none'}; alias {s.alias} -> "
                         f"{self.current.alias_version or '(missing)'}")
        if not self.steps:
            lines.append(f"no changes: {self.function_name} is up to date (alias {s.alias} -> {self.reuse_version})")
        else:
            lines += steps_text(self.steps)
        return "\n".join(lines)

    def render_json(self) -> str:
        return json.dumps(self.to_json(), indent=2, sort_keys=True)


def steps_text(steps: list[Step]) -> list[str]:
    """The numbered steps of a deploy or destroy plan, for `render`."""
    return ["steps:"] + [f"  {i}. {st.action:<16} {st.detail}" for i, st in enumerate(steps, 1)]


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n / 1024:.1f} KB"


def wanted_config(s: DeploySettings, a: Artifact, role_arn: str) -> dict:
    return {
        "Runtime": a.runtime,
        "Handler": a.handler,
        "MemorySize": s.memory,
        "Timeout": s.timeout,
        "Role": role_arn,
        "Environment": {"Variables": dict(s.env)},
        "Description": s.description,
        "Layers": list(s.layers),
    }


def config_of(cfg: dict) -> dict:
    """A GetFunction configuration in the shape of wanted_config, for comparing."""
    return {
        "Runtime": cfg.get("Runtime"),
        "Handler": cfg.get("Handler"),
        "MemorySize": cfg.get("MemorySize"),
        "Timeout": cfg.get("Timeout"),
        "Role": cfg.get("Role"),
        "Environment": {"Variables": dict((cfg.get("Environment") or {}).get("Variables") or {})},
        "Description": cfg.get("Description") or "",
        "Layers": [layer["Arn"] for layer in cfg.get("Layers") or []],
    }


def config_diff(current: dict, wanted: dict) -> list[str]:
    """`key: old -> new` for each setting that differs."""
    out = []
    for key, value in wanted.items():
        old = current.get(key)
        if old != value:
            if key == "Environment":
                old, value = sorted(old["Variables"]), sorted(value["Variables"])
                out.append(f"environment {old} -> {value}" if old != value else "environment values")
            else:
                out.append(f"{key} {old!r} -> {value!r}")
    return out


def _same_code(cfg: dict, a: Artifact) -> bool:
    return cfg.get("CodeSha256") == a.sha256 and (cfg.get("Architectures") or ["x86_64"]) == [a.architecture]


def read_function(aws: Aws, name: str, alias: str) -> FunctionState | None:
    from botocore.exceptions import ClientError

    lam = aws.client("lambda")
    with errors(f"reading function {name} (lambda:GetFunction)"):
        try:
            got = lam.get_function(FunctionName=name)
        except ClientError as e:
            if is_missing(e):
                return None
            raise
    versions = []
    with errors(f"listing the versions of {name} (lambda:ListVersionsByFunction)"):
        for page in lam.get_paginator("list_versions_by_function").paginate(FunctionName=name):
            versions += [v for v in page["Versions"] if v["Version"] != "$LATEST"]
    versions.sort(key=lambda v: int(v["Version"]))
    alias_version = None
    with errors(f"reading alias {alias} of {name} (lambda:GetAlias)"):
        try:
            alias_version = lam.get_alias(FunctionName=name, Name=alias)["FunctionVersion"]
        except ClientError as e:
            if not is_missing(e):
                raise
    return FunctionState(got["Configuration"], dict(got.get("Tags") or {}), versions, alias_version)


def _role_plan(aws: Aws, s: DeploySettings, current: FunctionState | None, steps: list[Step]):
    """-> (role ARN, managed role name or None, policy or None); appends role steps."""
    from botocore.exceptions import ClientError

    iam_client = aws.client("iam")
    if s.create_role:
        name = iam.role_name(s.function_name)
        arn = iam.role_arn(aws.partition, aws.account_id(), name)
        policy = iam.permissions_policy(partition=aws.partition, region=aws.region, account=aws.account_id(),
                                        function_name=s.function_name, bucket=s.bucket)
        with errors(f"reading role {name} (iam:GetRole)"):
            try:
                role = iam_client.get_role(RoleName=name)["Role"]
            except ClientError as e:
                if not is_missing(e):
                    raise
                role = None
        what = "logs of /aws/lambda/" + s.function_name + (f"; read/write s3://{s.bucket}" if s.bucket else "")
        if role is None:
            steps.append(Step("create-role", f"create role {name} trusted by lambda.amazonaws.com ({what})"))
            return arn, name, policy
        with errors(f"reading role {name} (iam:ListRoleTags, iam:GetRolePolicy)"):
            tags = {t["Key"]: t["Value"] for t in iam_client.list_role_tags(RoleName=name)["Tags"]}
            if tags.get(iam.MANAGED_TAG[0]) != iam.MANAGED_TAG[1]:
                raise DeployError(f"role {name} exists but sray-gen did not create it; pass --role {role['Arn']} "
                                  "to use it as it is, or delete it")
            try:
                doc = iam_client.get_role_policy(RoleName=name, PolicyName=iam.POLICY_NAME)["PolicyDocument"]
            except ClientError as e:
                if not is_missing(e):
                    raise
                doc = None
        if doc != policy or role.get("AssumeRolePolicyDocument") != iam.trust_policy():
            steps.append(Step("update-role", f"reset the policies of role {name} ({what})"))
        return role["Arn"], name, policy
    if s.role:
        name = s.role.rsplit("/", 1)[-1]
        with errors(f"checking role {s.role} (iam:GetRole)"):
            try:
                iam_client.get_role(RoleName=name)
            except ClientError as e:
                if is_missing(e):
                    raise DeployError(f"role {s.role} does not exist: create an execution role Lambda can assume "
                                      "(docs/deploy.md), or pass --create-role") from None
                if "AccessDenied" not in e.response.get("Error", {}).get("Code", ""):
                    raise
                # Not allowed to read IAM: Lambda itself will say whether it can assume the role.
        return s.role, None, None
    if current is not None:
        return current.config["Role"], None, None
    raise DeployError(f"no execution role for the new function {s.function_name}: pass --role ARN of a role "
                      "Lambda can assume, or --create-role to let deploy create a least-privilege one "
                      "(or set role / create-role in [tool.sray.deploy])")


def _code_plan(aws: Aws, s: DeploySettings, a: Artifact, steps: list[Step]) -> str | None:
    """-> the S3 key when the code goes through S3; appends the upload step if needed."""
    from botocore.exceptions import ClientError

    if a.size <= s.direct_upload_limit:
        return None
    if not s.bucket:
        raise DeployError(f"{a.path} is {_size(a.size)}, over the {_size(s.direct_upload_limit)} direct upload "
                          "limit: pass --bucket NAME (or set bucket in [tool.sray.deploy]) so deploy uploads it "
                          "through S3")
    s3 = aws.client("s3")
    key = code_key(s.function_name, a)
    with errors(f"checking bucket {s.bucket} (s3:HeadBucket)"):
        try:
            s3.head_bucket(Bucket=s.bucket)
        except ClientError as e:
            if is_missing(e):
                raise DeployError(f"bucket {s.bucket} does not exist: create it in {aws.region} "
                                  f"(`aws s3 mb s3://{s.bucket}`) or pass another --bucket") from None
            raise
    with errors(f"checking s3://{s.bucket}/{key} (s3:HeadObject)"):
        try:
            s3.head_object(Bucket=s.bucket, Key=key)
            return key  # same content already uploaded (the key is its hash)
        except ClientError as e:
            if not is_missing(e):
                raise
    steps.append(Step("upload-code", f"upload {a.path.name} ({_size(a.size)}) to s3://{s.bucket}/{key}"))
    return key


def make_plan(aws: Aws, s: DeploySettings, a: Artifact) -> DeployPlan:
    """Reads the current state and lists the steps of the deploy. Read-only."""
    current = read_function(aws, s.function_name, s.alias)
    if current is not None and current.tags.get(iam.MANAGED_TAG[0]) != iam.MANAGED_TAG[1] and not s.adopt:
        raise DeployError(f"function {s.function_name} exists but sray-gen did not create it (no "
                          f"{iam.MANAGED_TAG[0]} tag): pick another --function-name, or pass --adopt to take it "
                          "over (deploy will then manage its code, configuration, versions and alias)")
    if current is not None and current.config.get("PackageType", "Zip") != "Zip":
        raise DeployError(f"function {s.function_name} is a container image function; deploy ships zips: "
                          "pick another --function-name")
    steps: list[Step] = []
    role_arn, role_name, policy = _role_plan(aws, s, current, steps)
    s3_key = _code_plan(aws, s, a, steps)

    tags = dict(s.tags)
    tags[iam.MANAGED_TAG[0]] = iam.MANAGED_TAG[1]
    old_tags = current.tags if current else {}
    if role_name:
        tags[ROLE_TAG] = role_name
    elif ROLE_TAG in old_tags:
        tags[ROLE_TAG] = old_tags[ROLE_TAG]  # still ours to delete on destroy
    if s3_key:
        tags[BUCKET_TAG] = s.bucket
    elif BUCKET_TAG in old_tags:
        tags[BUCKET_TAG] = old_tags[BUCKET_TAG]

    plan = DeployPlan(s, a, aws.region, aws.endpoint("lambda"), role_arn, role_name, policy, s3_key, tags,
                      current, steps)
    wanted = plan.config()
    if current is None:
        steps.append(Step("create-function", f"create {s.function_name} ({a.runtime}, {a.architecture}, "
                                             f"{s.memory} MB, {s.timeout} s) and wait until it is active"))
        latest_changed = True
    else:
        code_changed = not _same_code(current.config, a)
        diff = config_diff(config_of(current.config), wanted)
        if code_changed:
            steps.append(Step("update-code", f"replace the code (sha256 {current.config.get('CodeSha256')} -> "
                                             f"{a.sha256}) and wait until updated"))
        if diff:
            steps.append(Step("update-config", "set " + "; ".join(diff) + " and wait until updated"))
        latest_changed = code_changed or bool(diff)
        set_tags = {k: v for k, v in tags.items() if current.tags.get(k) != v}
        drop_tags = [k for k in current.tags if k not in tags and not k.lower().startswith("aws:")]
        if set_tags or drop_tags:
            parts = ([f"set {', '.join(sorted(set_tags))}"] if set_tags else []) + \
                    ([f"remove {', '.join(sorted(drop_tags))}"] if drop_tags else [])
            steps.append(Step("update-tags", "; ".join(parts) + " (tags do not make a new version)"))
        if not latest_changed:
            same = [v for v in current.versions if _same_code(v, a) and config_of(v) == wanted]
            plan.reuse_version = same[-1]["Version"] if same else None
    if plan.reuse_version is None:
        steps.append(Step("publish-version", f"publish a new version of {s.function_name}"))
    target = plan.reuse_version or "the new version"
    if current is None or current.alias_version is None:
        steps.append(Step("create-alias", f"create alias {s.alias} -> {target}"))
    elif current.alias_version != plan.reuse_version:
        steps.append(Step("update-alias", f"move alias {s.alias} from {current.alias_version} -> {target}"))
    return plan
