"""The options of `sray-gen deploy` and `destroy`: defaults, then `[tool.sray.deploy]` of the
nearest pyproject.toml, then command-line flags (flags win; `env` and `tags` tables merge
key by key). Everything is checked here, before any AWS call, so a typo fails at once."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from pathlib import Path

from ..config import pyproject_settings
from .errors import DeployError

MB = 1024 * 1024
# Lambda takes a zip of at most 50 MB in the request itself; bigger ones go through S3.
DIRECT_UPLOAD_LIMIT = 50 * MB

# Variables Lambda sets itself and refuses in a function's environment.
RESERVED_ENV = {
    "_HANDLER", "_X_AMZN_TRACE_ID", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR",
}

_FUNCTION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_ALIAS = re.compile(r"^(?![0-9]+$)[A-Za-z0-9_-]{1,128}$")
_ROLE_ARN = re.compile(r"^arn:aws[a-zA-Z-]*:iam::\d{12}:role/[A-Za-z0-9+=,.@_/-]+$")
_ENV_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_LAYER_ARN = re.compile(r"^arn:aws[a-zA-Z-]*:lambda:[a-z0-9-]+:\d{12}:layer:[A-Za-z0-9_-]+:\d+$")


@dataclass
class DeploySettings:
    function_name: str | None = None
    alias: str = "live"
    role: str | None = None  # ARN of an existing execution role
    create_role: bool = False  # or let deploy create a least-privilege one
    bucket: str | None = None  # S3 bucket: code over the upload limit, and the role's data access
    memory: int = 1024  # MB
    timeout: int = 30  # seconds
    env: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    layers: list[str] = field(default_factory=list)
    description: str = "deployed by sray-gen"
    region: str | None = None  # default: AWS_REGION / AWS_DEFAULT_REGION / the profile's
    profile: str | None = None  # default: AWS_PROFILE
    direct_upload_limit: int = DIRECT_UPLOAD_LIMIT  # bytes; bigger zips go through --bucket
    adopt: bool = False  # take over an existing function that sray-gen did not create


KEYS = {f.name.replace("_", "-"): f.name for f in fields(DeploySettings)}


def pyproject_deploy_settings(start: Path) -> dict:
    """`[tool.sray.deploy]` of the nearest pyproject.toml (keys with `_` turned to `-`)."""
    table = pyproject_settings(start).get("deploy", {})
    if not isinstance(table, dict):
        raise DeployError("[tool.sray] deploy must be a table: write `[tool.sray.deploy]` in pyproject.toml")
    out = {}
    for key, value in table.items():
        norm = key.replace("_", "-")
        if norm not in KEYS:
            raise DeployError(f"unknown key `{key}` in [tool.sray.deploy] of pyproject.toml; "
                              f"known keys: {', '.join(sorted(KEYS))}")
        out[KEYS[norm]] = value
    return out


def parse_pairs(items, what: str) -> dict[str, str]:
    """`["K=V", ...]` from repeated flags -> dict; says which item is malformed."""
    out = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise DeployError(f"--{what} takes KEY=VALUE, got `{item}`")
        out[key] = value
    return out


def resolve(flags: dict, start: Path | None = None) -> DeploySettings:
    """Defaults < [tool.sray.deploy] < flags (None means the flag was not given)."""
    values = pyproject_deploy_settings(start or Path.cwd())
    for table in ("env", "tags"):
        if table in values and not isinstance(values[table], dict):
            raise DeployError(f"`{table}` in [tool.sray.deploy] must be a table, e.g. {table} = {{ KEY = \"value\" }}")
        values[table] = {str(k): v for k, v in values.get(table, {}).items()}
        values[table].update(flags.pop(table, None) or {})
    if flags.get("role") is not None:
        values["create_role"] = False
    if flags.get("create_role"):
        values["role"] = None
    for key, value in flags.items():
        if value is not None and key in {f.name for f in fields(DeploySettings)}:
            values[key] = value
    settings = DeploySettings(**values)
    check(settings)
    return settings


def check(s: DeploySettings) -> None:
    """Raises DeployError naming the first bad option and the fix."""
    if not s.function_name:
        raise DeployError("no function name: pass --function-name NAME or set function-name in [tool.sray.deploy]")
    if not _FUNCTION_NAME.match(s.function_name):
        raise DeployError(f"function name `{s.function_name}` is invalid: 1-64 letters, digits, `-` or `_`")
    if not isinstance(s.alias, str) or not _ALIAS.match(s.alias):
        raise DeployError(f"alias `{s.alias}` is invalid: 1-128 letters, digits, `-` or `_`, not all digits")
    if s.role is not None and not _ROLE_ARN.match(str(s.role)):
        raise DeployError(f"role `{s.role}` is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME); "
                          "pass the ARN of an existing execution role, or --create-role")
    if s.role and s.create_role:
        raise DeployError("both a role and create-role are set: pass either --role ARN or --create-role")
    if s.bucket is not None and not _BUCKET.match(str(s.bucket)):
        raise DeployError(f"bucket `{s.bucket}` is not a valid S3 bucket name "
                          "(3-63 lowercase letters, digits, `.`, `-`)")
    for name, lo, hi, unit in (("memory", 128, 10240, "MB"), ("timeout", 1, 900, "seconds")):
        value = getattr(s, name)
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise DeployError(f"{name} must be an integer from {lo} to {hi} {unit}, got {value!r}")
    limit = s.direct_upload_limit
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise DeployError(f"direct-upload-limit must be a number of bytes >= 0, got {s.direct_upload_limit!r}")
    for key, value in s.env.items():
        if not _ENV_KEY.match(key):
            raise DeployError(f"environment variable name `{key}` is invalid: letters, digits and `_`, "
                              "starting with a letter")
        if key in RESERVED_ENV:
            raise DeployError(f"environment variable `{key}` is reserved by Lambda (it sets it itself); remove it")
        if not isinstance(value, str):
            raise DeployError(f"environment variable `{key}` must be a string, got {value!r}; "
                              "quote it in pyproject.toml")
    for key, value in s.tags.items():
        if key.lower().startswith(("aws:", "sray:")):
            raise DeployError(f"tag `{key}`: the prefixes `aws:` and `sray:` are reserved; rename the tag")
        if not isinstance(value, str):
            raise DeployError(f"tag `{key}` must be a string, got {value!r}; quote it in pyproject.toml")
    if not isinstance(s.layers, list) or any(not isinstance(a, str) or not _LAYER_ARN.match(a) for a in s.layers):
        raise DeployError(f"layers must be layer version ARNs (arn:aws:lambda:REGION:ACCOUNT:layer:NAME:VERSION), "
                          f"got {s.layers!r}")
    if len(s.layers) > 5:
        raise DeployError(f"Lambda allows at most 5 layers, got {len(s.layers)}")
