"""`sray-gen deploy` and `destroy` against a real moto server over HTTP (started by these
tests on 127.0.0.1; boto3 finds it through AWS_ENDPOINT_URL, as it would find AWS).

Each test uses its own function name, so one server serves the whole module."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import boto3
import botocore.client
import pytest
from botocore.exceptions import ClientError

from servers import FAKE_AWS_ENV, moto_server
from sray_transpiler.cli.main import main
from sray_transpiler.deploy import iam
from sray_transpiler.deploy.aws import retry_conflicts

ROOT = Path(__file__).resolve().parents[1]
ACCOUNT = "123456789012"  # moto's account
REGION = FAKE_AWS_ENV["AWS_REGION"]


# The artifact these tests deploy is examples/alpha.py's real Lambda zip: the `lambda_zip`
# fixture of conftest.py, built once per session.


def variant(src: Path, dest: Path, text: str) -> Path:
    """A copy of the zip with one more file: different code, same executable bootstrap."""
    shutil.copy(src, dest)
    with zipfile.ZipFile(dest, "a") as zf:
        zf.writestr("variant.txt", text)
    return dest


def code_sha256(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def assert_executable_bootstrap(data: bytes) -> None:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        info = zf.getinfo("bootstrap")
        assert info.create_system == 3
        mode = info.external_attr >> 16
        assert stat.S_ISREG(mode) and mode & 0o111 == 0o111, oct(mode)


@pytest.fixture(scope="module")
def moto_url(tmp_path_factory):
    with moto_server(tmp_path_factory.mktemp("moto")) as url:
        yield url


@pytest.fixture
def aws(moto_url, monkeypatch, tmp_path):
    """The environment a user would have (fake credentials, AWS_ENDPOINT_URL), a working
    directory without pyproject.toml, and boto3 clients for checking what deploy did."""
    for var in [v for v in os.environ if v.startswith("AWS_")]:
        monkeypatch.delenv(var)
    for k, v in FAKE_AWS_ENV.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.chdir(tmp_path)

    class Clients:
        url = moto_url
        lam = boto3.client("lambda", endpoint_url=moto_url)
        iam = boto3.client("iam", endpoint_url=moto_url)
        s3 = boto3.client("s3", endpoint_url=moto_url)

        def role(self, name: str) -> str:
            """An execution role made by the user (not by deploy)."""
            doc = json.dumps(iam.trust_policy())
            return self.iam.create_role(RoleName=name, AssumeRolePolicyDocument=doc)["Role"]["Arn"]

        def versions(self, fn: str) -> list[str]:
            vs = self.lam.list_versions_by_function(FunctionName=fn)["Versions"]
            return [v["Version"] for v in vs if v["Version"] != "$LATEST"]

        def alias(self, fn: str, name: str = "live") -> str:
            return self.lam.get_alias(FunctionName=fn, Name=name)["FunctionVersion"]

        def function_exists(self, fn: str) -> bool:
            try:
                self.lam.get_function(FunctionName=fn)
                return True
            except self.lam.exceptions.ResourceNotFoundException:
                return False

        def role_exists(self, name: str) -> bool:
            try:
                self.iam.get_role(RoleName=name)
                return True
            except self.iam.exceptions.NoSuchEntityException:
                return False

        def keys(self, bucket: str) -> list[str]:
            return [o["Key"] for o in self.s3.list_objects_v2(Bucket=bucket).get("Contents", [])]

    return Clients()


def sray(capsys, *argv) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_first_deploy_sets_the_configuration_version_and_alias(aws, capsys, lambda_zip):
    role = aws.role("first-role")
    rc, out, err = sray(capsys, "deploy", "--zip", lambda_zip, "--function-name", "first", "--role", role,
                        "--memory", 512, "--timeout", 20, "--env", "A=1", "--env", "B=two", "--tag", "team=quant")
    assert rc == 0, err
    assert "deployed first: version 1, alias live -> 1" in out
    assert "[1/3]" in out and "[3/3]" in out  # create, publish, alias: progress per step

    got = aws.lam.get_function(FunctionName="first")
    cfg = got["Configuration"]
    assert cfg["Runtime"] == "provided.al2023"
    assert cfg["Handler"] == "bootstrap"
    assert cfg["MemorySize"] == 512 and cfg["Timeout"] == 20
    assert cfg["Environment"]["Variables"] == {"A": "1", "B": "two"}
    assert cfg["Architectures"] == ["x86_64"]
    assert cfg["Role"] == role
    assert got["Tags"] == {"team": "quant", "sray:managed-by": "sray-gen"}
    assert aws.versions("first") == ["1"]
    assert aws.alias("first") == "1"

    # The stored code: moto does not serve Code.Location (a made-up AWS URL), but Lambda's
    # CodeSha256 is the sha256 of the zip it stored, so it pins the bytes to ours...
    data = lambda_zip.read_bytes()
    assert cfg["CodeSha256"] == code_sha256(data)
    assert aws.lam.get_function(FunctionName="first", Qualifier="1")["Configuration"]["CodeSha256"] == cfg["CodeSha256"]
    # ...and those bytes hold an executable bootstrap at the root.
    assert_executable_bootstrap(data)


def test_deploy_file_builds_its_artifact_first(aws, capsys, tmp_path):
    # Without --zip, deploy builds the artifact (a warm build: the session's zip shares the target dir).
    rc, out, err = sray(capsys, "deploy", ROOT / "examples" / "alpha.py", "--function-name", "fromfile",
                        "--create-role", "--dist", tmp_path / "dist")
    assert rc == 0, err
    assert "building the Lambda artifact" in out and "deployed fromfile: version 1" in out
    data = (tmp_path / "dist" / "alpha_rs-lambda.zip").read_bytes()
    assert aws.lam.get_function(FunctionName="fromfile")["Configuration"]["CodeSha256"] == code_sha256(data)
    assert_executable_bootstrap(data)


def test_redeploy_unchanged_publishes_nothing_and_says_so(aws, capsys, lambda_zip):
    args = ["deploy", "--zip", lambda_zip, "--function-name", "same", "--create-role", "--env", "K=v"]
    assert sray(capsys, *args)[0] == 0
    rc, out, err = sray(capsys, *args)
    assert rc == 0, err
    assert "same is up to date: nothing changed, no new version published (alias live -> 1)" in out
    assert aws.versions("same") == ["1"] and aws.alias("same") == "1"

    rc, out, _ = sray(capsys, *args, "--dry-run", "--json")
    plan = json.loads(out)
    assert plan["steps"] == [] and plan["changes"] is False and plan["reuse_version"] == "1"


def test_redeploy_after_a_change_publishes_and_moves_the_alias(aws, capsys, lambda_zip, tmp_path):
    role = aws.role("change-role")
    base = ["deploy", "--function-name", "change", "--role", role]
    assert sray(capsys, *base, "--zip", lambda_zip)[0] == 0
    assert aws.alias("change") == "1"

    # New code: version 2, alias follows.
    v2 = variant(lambda_zip, tmp_path / "v2.zip", "two")
    rc, out, err = sray(capsys, *base, "--zip", v2)
    assert rc == 0, err
    assert "update-code" in out and "deployed change: version 2, alias live -> 2" in out
    assert aws.versions("change") == ["1", "2"] and aws.alias("change") == "2"
    assert aws.lam.get_function(FunctionName="change", Qualifier="2")["Configuration"]["CodeSha256"] == \
        code_sha256(v2.read_bytes())

    # Same code, new configuration: a version too (versions snapshot the configuration).
    rc, out, err = sray(capsys, *base, "--zip", v2, "--memory", 2048)
    assert rc == 0, err
    assert "update-config" in out and "MemorySize 1024 -> 2048" in out
    assert aws.versions("change") == ["1", "2", "3"] and aws.alias("change") == "3"
    assert aws.lam.get_function(FunctionName="change", Qualifier="3")["Configuration"]["MemorySize"] == 2048

    # Tags only: applied, but no new version.
    rc, out, err = sray(capsys, *base, "--zip", v2, "--memory", 2048, "--tag", "stage=prod")
    assert rc == 0, err
    assert "no new version published" in out
    assert aws.versions("change") == ["1", "2", "3"]
    assert aws.lam.get_function(FunctionName="change")["Tags"]["stage"] == "prod"

    # Another alias name points at the same version, without publishing.
    rc, out, err = sray(capsys, *base, "--zip", v2, "--memory", 2048, "--tag", "stage=prod", "--alias", "beta")
    assert rc == 0, err
    assert aws.alias("change", "beta") == "3" and aws.versions("change") == ["1", "2", "3"]


def test_large_zip_goes_through_s3(aws, capsys, lambda_zip):
    aws.s3.create_bucket(Bucket="code-bucket")
    limit = lambda_zip.stat().st_size - 1  # the threshold is a parameter: this small zip is "too big"
    args = ["deploy", "--zip", lambda_zip, "--function-name", "big", "--create-role",
            "--direct-upload-limit", limit]

    rc, _, err = sray(capsys, *args)
    assert rc == 1 and "over the" in err and "--bucket" in err  # no bucket: says what to pass

    rc, _, err = sray(capsys, *args, "--bucket", "no-such-bucket")
    assert rc == 1 and "bucket no-such-bucket does not exist" in err and "aws s3 mb" in err
    assert not aws.function_exists("big")

    rc, out, err = sray(capsys, *args, "--bucket", "code-bucket")
    assert rc == 0, err
    data = lambda_zip.read_bytes()
    key = f"sray-gen/big/{hashlib.sha256(data).hexdigest()}.zip"
    assert "upload-code" in out and key in out
    assert aws.keys("code-bucket") == [key]
    stored = aws.s3.get_object(Bucket="code-bucket", Key=key)["Body"].read()
    assert stored == data
    assert_executable_bootstrap(stored)
    got = aws.lam.get_function(FunctionName="big")
    assert got["Configuration"]["CodeSha256"] == code_sha256(data)
    assert got["Code"]["RepositoryType"] == "S3"
    assert got["Tags"]["sray:code-bucket"] == "code-bucket"
    assert aws.alias("big") == "1"

    # Unchanged: the object is there already (its key is its hash), nothing is uploaded or published.
    rc, out, _ = sray(capsys, *args, "--bucket", "code-bucket")
    assert rc == 0 and "upload-code" not in out and "no new version published" in out


def test_create_role_is_least_privilege(aws, capsys, lambda_zip):
    aws.s3.create_bucket(Bucket="data-bucket")
    rc, out, err = sray(capsys, "deploy", "--zip", lambda_zip, "--function-name", "lean", "--create-role",
                        "--bucket", "data-bucket")
    assert rc == 0, err
    role = aws.iam.get_role(RoleName="sray-gen-lean")["Role"]
    assert aws.lam.get_function(FunctionName="lean")["Configuration"]["Role"] == role["Arn"]
    assert role["AssumeRolePolicyDocument"] == {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                       "Action": "sts:AssumeRole"}],
    }
    # Exactly one inline policy, no managed policies.
    assert aws.iam.list_role_policies(RoleName="sray-gen-lean")["PolicyNames"] == [iam.POLICY_NAME]
    assert aws.iam.list_attached_role_policies(RoleName="sray-gen-lean")["AttachedPolicies"] == []
    doc = aws.iam.get_role_policy(RoleName="sray-gen-lean", PolicyName=iam.POLICY_NAME)["PolicyDocument"]
    group = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/lean"
    assert [(st["Effect"], st["Action"], st["Resource"]) for st in doc["Statement"]] == [
        ("Allow", "logs:CreateLogGroup", [group, f"{group}:*"]),
        ("Allow", ["logs:CreateLogStream", "logs:PutLogEvents"], f"{group}:*"),
        ("Allow", ["s3:GetObject", "s3:PutObject"], "arn:aws:s3:::data-bucket/*"),
        ("Allow", "s3:ListBucket", "arn:aws:s3:::data-bucket"),
    ]
    tags = {t["Key"]: t["Value"] for t in aws.iam.list_role_tags(RoleName="sray-gen-lean")["Tags"]}
    assert tags == {"sray:managed-by": "sray-gen", "sray:function": "lean"}

    # Without a bucket the role keeps only the log statements; the redeploy resets the policy.
    rc, out, err = sray(capsys, "deploy", "--zip", lambda_zip, "--function-name", "lean", "--create-role")
    assert rc == 0, err
    assert "update-role" in out and "no new version published" in out
    doc = aws.iam.get_role_policy(RoleName="sray-gen-lean", PolicyName=iam.POLICY_NAME)["PolicyDocument"]
    assert [st["Sid"] for st in doc["Statement"]] == ["CreateOwnLogGroup", "WriteOwnLogs"]


def test_dry_run_only_reads(aws, capsys, lambda_zip, monkeypatch):
    aws.s3.create_bucket(Bucket="dry-bucket")
    calls = []
    real = botocore.client.BaseClient._make_api_call

    def spy(self, operation, params):  # records, then makes the real call
        calls.append(operation)
        return real(self, operation, params)

    with monkeypatch.context() as m:
        m.setattr(botocore.client.BaseClient, "_make_api_call", spy)
        rc, out, err = sray(capsys, "deploy", "--zip", lambda_zip, "--function-name", "dry", "--create-role",
                            "--bucket", "dry-bucket", "--direct-upload-limit", 0, "--dry-run", "--json")
    assert rc == 0, err
    plan = json.loads(out)
    assert [s["action"] for s in plan["steps"]] == ["create-role", "upload-code", "create-function",
                                                    "publish-version", "create-alias"]
    assert plan["endpoint"] == aws.url  # AWS_ENDPOINT_URL honoured by boto3 itself
    assert plan["config"]["Runtime"] == "provided.al2023" and plan["role"]["managed"] is True
    assert "dry run: nothing was changed" in err
    assert calls and all(op.startswith(("Get", "List", "Head")) for op in calls), calls
    assert not aws.function_exists("dry")
    assert not aws.role_exists("sray-gen-dry")
    assert aws.keys("dry-bucket") == []

    rc, out, _ = sray(capsys, "deploy", "--zip", lambda_zip, "--function-name", "dry", "--create-role",
                      "--dry-run")
    assert rc == 0 and "steps:\n  1. create-role" in out and not aws.function_exists("dry")


def test_destroy_removes_everything_deploy_created(aws, capsys, lambda_zip, tmp_path):
    aws.s3.create_bucket(Bucket="gone-bucket")
    aws.s3.put_object(Bucket="gone-bucket", Key="data/keep.npy", Body=b"user data")
    args = ["deploy", "--function-name", "gone", "--create-role", "--bucket", "gone-bucket",
            "--direct-upload-limit", 0]
    assert sray(capsys, *args, "--zip", lambda_zip)[0] == 0
    assert sray(capsys, *args, "--zip", variant(lambda_zip, tmp_path / "v2.zip", "2"))[0] == 0
    assert aws.versions("gone") == ["1", "2"] and len(aws.keys("gone-bucket")) == 3

    rc, out, _ = sray(capsys, "destroy", "--function-name", "gone", "--dry-run")
    assert rc == 0 and "delete function gone and its versions 1, 2" in out
    assert aws.function_exists("gone")

    rc, out, err = sray(capsys, "destroy", "--function-name", "gone")
    assert rc == 0, err
    assert [line.split("] ")[1].split()[0:2] for line in out.splitlines() if line.startswith("[")] == [
        ["delete", "alias"], ["delete", "2"], ["delete", "function"], ["delete", "role"]]
    assert not aws.function_exists("gone")
    assert not aws.role_exists("sray-gen-gone")
    assert aws.keys("gone-bucket") == ["data/keep.npy"]  # only deploy's code objects went
    with pytest.raises(ClientError):
        aws.lam.get_function(FunctionName="gone", Qualifier="1")

    rc, out, _ = sray(capsys, "destroy", "--function-name", "gone")
    assert rc == 0 and "nothing to destroy" in out


def test_foreign_function_is_left_alone(aws, capsys, lambda_zip):
    role = aws.role("foreign-role")
    aws.lam.create_function(FunctionName="foreign", Runtime="provided.al2023", Role=role, Handler="bootstrap",
                            Code={"ZipFile": lambda_zip.read_bytes()})
    rc, _, err = sray(capsys, "deploy", "--zip", lambda_zip, "--function-name", "foreign")
    assert rc == 1 and "sray-gen did not create it" in err and "--adopt" in err
    rc, _, err = sray(capsys, "destroy", "--function-name", "foreign")
    assert rc == 1 and "--force" in err
    assert aws.function_exists("foreign")

    rc, out, err = sray(capsys, "deploy", "--zip", lambda_zip, "--function-name", "foreign", "--adopt")
    assert rc == 0, err  # keeps the function's role, takes it over
    assert aws.lam.get_function(FunctionName="foreign")["Tags"]["sray:managed-by"] == "sray-gen"
    assert sray(capsys, "destroy", "--function-name", "foreign")[0] == 0
    assert not aws.function_exists("foreign") and aws.role_exists("foreign-role")  # not deploy's role


def test_options_from_pyproject(aws, capsys, lambda_zip, tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[tool.sray.deploy]\nfunction-name = "configured"\ncreate-role = true\nmemory = 256\ntimeout = 9\n'
        'alias = "prod"\nenv = { MODE = "fast", LEVEL = "3" }\ntags = { owner = "me" }\n')
    rc, out, err = sray(capsys, "deploy", "--zip", lambda_zip, "--env", "LEVEL=4", "--timeout", 10)
    assert rc == 0, err
    got = aws.lam.get_function(FunctionName="configured")
    cfg = got["Configuration"]
    assert (cfg["MemorySize"], cfg["Timeout"]) == (256, 10)  # flags win over the file
    assert cfg["Environment"]["Variables"] == {"MODE": "fast", "LEVEL": "4"}  # merged key by key
    assert cfg["Role"].endswith(":role/sray-gen-configured") and got["Tags"]["owner"] == "me"
    assert aws.alias("configured", "prod") == "1"
    assert sray(capsys, "destroy")[0] == 0 and not aws.function_exists("configured")

    (tmp_path / "pyproject.toml").write_text('[tool.sray.deploy]\nfunction-nam = "typo"\n')
    rc, _, err = sray(capsys, "deploy", "--zip", lambda_zip)
    assert rc == 1 and "unknown key `function-nam`" in err and "function-name" in err


def test_bad_zips_are_refused_with_what_to_do(aws, capsys, tmp_path):
    def zip_with(name: str, mode: int) -> Path:
        path = tmp_path / f"{name.replace('/', '_')}-{mode:o}.zip"
        info = zipfile.ZipInfo(name)
        info.create_system = 3
        info.external_attr = (stat.S_IFREG | mode) << 16
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr(info, "#!/bin/sh\n")
        return path

    not_zip = tmp_path / "not.zip"
    not_zip.write_text("hello")
    cases = [
        (tmp_path / "missing.zip", "does not exist"),
        (not_zip, "is not a zip file"),
        (zip_with("main", 0o755), "has no `bootstrap` at its root"),
        (zip_with("sub/bootstrap", 0o755), "there is sub/bootstrap, but it must be at the root"),
        (zip_with("bootstrap", 0o644), "is not executable (mode 0644)"),
    ]
    for path, message in cases:
        rc, _, err = sray(capsys, "deploy", "--zip", path, "--function-name", "bad", "--create-role")
        assert rc == 1 and message in err, (path, err)
        assert "sray-gen build" in err or "chmod 755" in err or "zip" in err
    assert not aws.function_exists("bad")


def test_clear_errors_for_role_credentials_and_options(aws, capsys, lambda_zip, monkeypatch):
    rc, _, err = sray(capsys, "deploy", "--zip", lambda_zip, "--function-name", "norole")
    assert rc == 1 and "no execution role" in err and "--create-role" in err
    rc, _, err = sray(capsys, "deploy", "--zip", lambda_zip, "--function-name", "norole",
                      "--role", f"arn:aws:iam::{ACCOUNT}:role/missing")
    assert rc == 1 and "role arn:aws:iam::123456789012:role/missing does not exist" in err
    rc, _, err = sray(capsys, "deploy", "--zip", lambda_zip, "--function-name", "norole", "--role", "admin")
    assert rc == 1 and "is not an IAM role ARN" in err
    rc, _, err = sray(capsys, "deploy", "--zip", lambda_zip, "--function-name", "norole", "--create-role",
                      "--env", "AWS_REGION=x")
    assert rc == 1 and "reserved by Lambda" in err
    rc, _, err = sray(capsys, "deploy", "--zip", lambda_zip, "--function-name", "norole", "--memory", 64)
    assert rc == 1 and "memory must be an integer from 128 to 10240" in err
    rc, _, err = sray(capsys, "deploy", "--zip", lambda_zip)
    assert rc == 1 and "--function-name" in err
    assert not aws.function_exists("norole")

    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    rc, _, err = sray(capsys, "deploy", "--zip", lambda_zip, "--function-name", "norole", "--create-role")
    assert rc == 1 and "no AWS credentials" in err and "AWS_PROFILE" in err
    monkeypatch.setenv("AWS_PROFILE", "nobody")
    rc, _, err = sray(capsys, "deploy", "--zip", lambda_zip, "--function-name", "norole", "--create-role")
    assert rc == 1 and "AWS profile `nobody`" in err


def test_cli_in_a_subprocess_reads_the_aws_environment(aws, lambda_zip):
    env = {**os.environ}  # the aws fixture's AWS_* variables, AWS_ENDPOINT_URL included
    proc = subprocess.run([sys.executable, "-m", "sray_transpiler.cli.main", "deploy", "--zip", str(lambda_zip),
                           "--function-name", "sub", "--create-role", "--json"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["version"] == "1" and result["published"] is True
    assert result["alias_arn"] == f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:sub:live"
    assert aws.alias("sub") == "1"


def test_conflicts_are_retried_with_backoff_and_other_errors_are_not():
    def error(code):
        return ClientError({"Error": {"Code": code, "Message": "m"}}, "UpdateFunctionConfiguration")

    outcomes = [error("ResourceConflictException"), error("ResourceConflictException"), "done"]
    slept = []

    def call():
        x = outcomes.pop(0)
        if isinstance(x, Exception):
            raise x
        return x

    assert retry_conflicts(call, what="t", first_delay=1.0, sleep=slept.append) == "done"
    assert len(slept) == 2 and 0.5 <= slept[0] <= 1.0 and 1.0 <= slept[1] <= 2.0  # doubling, with jitter

    outcomes[:] = [error("InvalidParameterValueException"), "done"]
    with pytest.raises(ClientError):
        retry_conflicts(call, what="t", sleep=slept.append)
    assert outcomes == ["done"]
    # `also` widens what is retried (a role Lambda cannot assume yet, right after creating it).
    outcomes[:] = [error("InvalidParameterValueException"), "done"]
    assert retry_conflicts(call, what="t", also=lambda e: True, sleep=slept.append) == "done"
    outcomes[:] = [error("ResourceConflictException")] * 3
    with pytest.raises(ClientError):
        retry_conflicts(call, what="t", tries=3, sleep=slept.append)
    assert outcomes == []


@pytest.fixture(scope="module")
def worker_package() -> Path:
    """The installed serverless_ray package, which the worker zip ships."""
    from sray_transpiler.deploy.worker import installed_package

    package = installed_package()
    assert (package / "lambda_worker.py").is_file()
    return package


@pytest.fixture(scope="module")
def bundled_worker_zip(worker_package, tmp_path_factory) -> Path:
    """The worker zip with numpy's manylinux wheel (pip fetches it from PyPI once)."""
    from sray_transpiler.deploy.worker import build_worker_zip

    return build_worker_zip(tmp_path_factory.mktemp("wdist"), package=worker_package, bundle_numpy=True,
                            echo=lambda line: None)


def test_worker_zip_is_pure_python_and_deterministic(worker_package, tmp_path):
    from sray_transpiler.deploy.worker import build_worker_zip

    a = build_worker_zip(tmp_path / "a", package=worker_package, echo=lambda line: None)
    b = build_worker_zip(tmp_path / "b", package=worker_package, echo=lambda line: None)
    assert a.name == "serverless_ray-worker.zip" and a.read_bytes() == b.read_bytes()
    names = zipfile.ZipFile(a).namelist()
    assert {"serverless_ray/__init__.py", "serverless_ray/lambda_worker.py", "serverless_ray/errors.py",
            "cloudpickle/__init__.py", "cloudpickle/cloudpickle.py"} <= set(names)
    assert any(n.startswith("cloudpickle-") and n.endswith(".dist-info/METADATA") for n in names)
    assert not any(n.startswith("numpy") or "__pycache__" in n or n.endswith((".pyc", ".so")) for n in names)
    assert names == sorted(names)


def test_a_worker_without_numpy_deploys_with_a_note(aws, capsys, worker_package, tmp_path):
    rc, _, err = sray(capsys, "deploy", "examples/alpha.py", "--worker", "--function-name", "w0")
    assert rc == 1 and "drop FILE" in err
    assert not aws.function_exists("w0")
    rc, out, err = sray(capsys, "deploy", "--worker", "--worker-package", worker_package, "--function-name", "w0",
                        "--create-role", "--dist", tmp_path / "dist")
    assert rc == 0, err
    assert "no numpy" in out and "--bundle-numpy" in out and "--layer" in out
    assert aws.function_exists("w0")


def test_the_worker_zip_without_numpy_runs_a_task_with_nothing_but_the_zip(worker_package, tmp_path):
    """The task worker needs no numpy for tasks that do not use it (serverless_ray loads
    numpy only for its DAG half)."""
    from sray_transpiler.deploy.worker import build_worker_zip

    root = tmp_path / "task"  # as Lambda unpacks it into /var/task
    zipfile.ZipFile(build_worker_zip(tmp_path / "dist", package=worker_package, echo=lambda line: None)).extractall(root)
    code = (
        "import base64, pickle, sys; sys.path.insert(0, sys.argv[1]);"
        "import cloudpickle; from serverless_ray import lambda_worker as w;"
        "b64 = lambda data: {'inline': base64.b64encode(data).decode()};"
        "fn = cloudpickle.dumps((lambda n: sum(range(n)), None), protocol=5);"
        "answer = w.handler({'serverless_ray': 1, 'key': 'k', 'function': b64(fn),"
        " 'call': b64(pickle.dumps(((10,), {}))), 'result_s3': None}, None);"
        "assert answer['ok'], answer;"
        "assert 'numpy' not in sys.modules;"
        "print(pickle.loads(w.fetch(answer['value'])))"
    )
    # -I -S: no site-packages, no user paths, no environment: only the stdlib and the zip's files.
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", code, str(root)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["45"]


def test_worker_deploys_with_a_numpy_layer(aws, capsys, worker_package, tmp_path):
    layer_zip = io.BytesIO()
    with zipfile.ZipFile(layer_zip, "w") as zf:  # the layer's content is not deploy's business
        zf.writestr("python/README", "numpy would be here")
    layer = aws.lam.publish_layer_version(LayerName="numpy-py311", Content={"ZipFile": layer_zip.getvalue()},
                                          CompatibleRuntimes=["python3.11"])["LayerVersionArn"]
    args = ["deploy", "--worker", "--worker-package", worker_package, "--function-name", "worker",
            "--create-role", "--layer", layer, "--memory", 2048, "--dist", tmp_path / "dist"]
    rc, out, err = sray(capsys, *args)
    assert rc == 0, err
    assert "deployed worker: version 1, alias live -> 1" in out
    cfg = aws.lam.get_function(FunctionName="worker")["Configuration"]
    assert cfg["Runtime"] == "python3.11" and cfg["Handler"] == "serverless_ray.lambda_worker.handler"
    assert [x["Arn"] for x in cfg["Layers"]] == [layer]
    assert cfg["Architectures"] == ["x86_64"] and cfg["MemorySize"] == 2048
    data = (tmp_path / "dist" / "serverless_ray-worker.zip").read_bytes()
    assert cfg["CodeSha256"] == code_sha256(data)
    assert "serverless_ray/lambda_worker.py" in zipfile.ZipFile(io.BytesIO(data)).namelist()

    rc, out, err = sray(capsys, *args)  # packaged again: same bytes, so nothing new
    assert rc == 0 and "up to date" in out and aws.versions("worker") == ["1"]


def test_worker_bundles_numpy_for_amazon_linux(aws, capsys, bundled_worker_zip):
    names = zipfile.ZipFile(bundled_worker_zip).namelist()
    assert "numpy/__init__.py" in names and "serverless_ray/lambda_worker.py" in names
    assert any(n.startswith("numpy/_core/_multiarray_umath.cpython-311-x86_64-linux-gnu") for n in names)
    size = bundled_worker_zip.stat().st_size
    assert size < 50 * 2**20, size  # direct upload, no bucket needed
    rc, out, err = sray(capsys, "deploy", "--worker", "--zip", bundled_worker_zip, "--function-name", "wnp",
                        "--create-role")
    assert rc == 0, err
    cfg = aws.lam.get_function(FunctionName="wnp")["Configuration"]
    assert cfg["CodeSha256"] == code_sha256(bundled_worker_zip.read_bytes()) and cfg["Layers"] == []


@pytest.mark.skipif(sys.version_info[:2] != (3, 11) or sys.platform != "linux" or os.uname().machine != "x86_64",
                    reason="the bundled numpy is built for CPython 3.11 on Linux x86_64, as Lambda runs it")
def test_bundled_worker_imports_with_nothing_but_the_zip(bundled_worker_zip, tmp_path):
    root = tmp_path / "task"  # as Lambda unpacks it into /var/task
    zipfile.ZipFile(bundled_worker_zip).extractall(root)
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import numpy, cloudpickle, serverless_ray.lambda_worker as w;"
            "assert callable(w.handler);"
            "assert all(m.__file__.startswith(sys.argv[1]) for m in (numpy, cloudpickle, w)), "
            "[numpy.__file__, cloudpickle.__file__];"
            "print(numpy.__version__, float(numpy.arange(4.0).sum()))")
    # -I -S: no site-packages, no user paths, no environment: only the stdlib and the zip's files.
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", code, str(root)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [np_version(), "6.0"]


def np_version() -> str:
    import numpy

    return numpy.__version__


def test_region_flag_and_retry_configuration(aws, capsys, lambda_zip, monkeypatch):
    from sray_transpiler.deploy.aws import RETRIES, connect

    rc, out, err = sray(capsys, "deploy", "--zip", lambda_zip, "--function-name", "elsewhere", "--create-role",
                        "--region", "eu-west-1", "--json")
    assert rc == 0, err
    assert json.loads(out)["function_arn"] == f"arn:aws:lambda:eu-west-1:{ACCOUNT}:function:elsewhere"
    assert not aws.function_exists("elsewhere")  # not in the environment's region (us-east-1)
    assert sray(capsys, "destroy", "--function-name", "elsewhere", "--region", "eu-west-1")[0] == 0

    # botocore retries throttling and transient errors in standard mode with backoff...
    assert connect().client("lambda").meta.config.retries == RETRIES
    # ...unless the user's AWS_RETRY_MODE / AWS_MAX_ATTEMPTS say otherwise.
    monkeypatch.setenv("AWS_RETRY_MODE", "adaptive")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "3")
    client = connect().client("lambda")
    assert client.meta.config.retries["mode"] == "adaptive" and client.meta.config.retries["total_max_attempts"] == 3
