"""boto3 for deploy: one session (region, profile and endpoint from the usual AWS
environment, AWS_ENDPOINT_URL included, which boto3 honours itself), clients that retry
throttling and transient errors with backoff, and AWS errors turned into DeployErrors that
say what to do."""

from __future__ import annotations

import contextlib
import os
import random
import time
from dataclasses import dataclass

from .errors import DeployError

# botocore's "standard" mode retries throttling, 5xx and connection errors with
# exponential backoff and jitter; AWS_RETRY_MODE / AWS_MAX_ATTEMPTS override it.
RETRIES = {"mode": "standard", "max_attempts": 8}


def _boto3():
    try:
        import boto3
    except ImportError:
        raise DeployError("boto3 is not installed: python -m pip install boto3") from None
    return boto3


@dataclass
class Aws:
    """A session and its clients, made on first use."""

    session: object
    _clients: dict

    @property
    def region(self) -> str:
        return self.session.region_name

    @property
    def partition(self) -> str:
        try:
            return self.session.get_partition_for_region(self.region)
        except Exception:
            return "aws"

    def client(self, service: str):
        if service not in self._clients:
            from botocore.config import Config

            retries = None if {"AWS_RETRY_MODE", "AWS_MAX_ATTEMPTS"} & set(os.environ) else RETRIES
            self._clients[service] = self.session.client(service, config=Config(retries=retries))
        return self._clients[service]

    def account_id(self) -> str:
        if "_account" not in self._clients:
            with errors("reading the caller identity (sts:GetCallerIdentity)"):
                self._clients["_account"] = self.client("sts").get_caller_identity()["Account"]
        return self._clients["_account"]

    def endpoint(self, service: str) -> str:
        return self.client(service).meta.endpoint_url


def connect(region: str | None = None, profile: str | None = None) -> Aws:
    boto3 = _boto3()
    from botocore.exceptions import ProfileNotFound

    try:
        session = boto3.Session(profile_name=profile, region_name=region)
    except ProfileNotFound as e:
        profile = e.kwargs.get("profile", profile)
        raise DeployError(f"AWS profile `{profile}` is not in ~/.aws/config or ~/.aws/credentials: "
                          "pass an existing --profile (or fix AWS_PROFILE), or set up the profile with "
                          "`aws configure --profile NAME`") from None
    if not session.region_name:
        raise DeployError("no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION), pass --region, "
                          "or set region in [tool.sray.deploy]")
    if session.get_credentials() is None:
        raise DeployError("no AWS credentials found: set AWS_PROFILE (after `aws configure` or `aws sso login`) "
                          "or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
    return Aws(session, {})


def code(e) -> str:
    """The AWS error code of a botocore ClientError."""
    return e.response.get("Error", {}).get("Code", "")


def is_missing(e) -> bool:
    return code(e) in {"ResourceNotFoundException", "NoSuchEntity", "404", "NoSuchKey", "NoSuchBucket", "NotFound"}


@contextlib.contextmanager
def errors(doing: str):
    """Turns botocore errors raised while `doing` into DeployErrors with a next step."""
    from boto3.exceptions import S3UploadFailedError
    from botocore.exceptions import (ClientError, EndpointConnectionError, NoCredentialsError,
                                     PartialCredentialsError, TokenRetrievalError, WaiterError)

    try:
        yield
    except (NoCredentialsError, PartialCredentialsError, TokenRetrievalError) as e:
        raise DeployError(f"{doing}: no usable AWS credentials ({e}); set AWS_PROFILE (after `aws configure` or "
                          "`aws sso login`) or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY") from None
    except EndpointConnectionError as e:
        raise DeployError(f"{doing}: cannot reach {e.kwargs.get('endpoint_url')}; check the network, the region, "
                          "and AWS_ENDPOINT_URL if you set it") from None
    except WaiterError as e:
        last = e.last_response or {}
        cfg = last.get("Configuration", last)
        reason = cfg.get("StateReason") or cfg.get("LastUpdateStatusReason") or e.kwargs.get("reason", str(e))
        raise DeployError(f"{doing}: gave up waiting ({reason}); see the function's state with "
                          "`aws lambda get-function`, fix what the reason names, and run deploy again") from None
    except S3UploadFailedError as e:
        raise DeployError(f"{doing}: the upload to S3 failed ({e}); check the bucket's region and your "
                          "s3:PutObject / s3:PutObjectTagging permissions, then run deploy again") from None
    except ClientError as e:
        c, msg = code(e), e.response.get("Error", {}).get("Message", str(e))
        if c in {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "403"}:
            raise DeployError(f"{doing}: access denied ({msg}); the credentials in use need this permission "
                              "(docs/deploy.md lists what deploy calls)") from None
        if c in {"InvalidClientTokenId", "UnrecognizedClientException", "ExpiredToken", "ExpiredTokenException",
                 "SignatureDoesNotMatch", "InvalidSignatureException"}:
            raise DeployError(f"{doing}: AWS rejected the credentials ({c}: {msg}); refresh them "
                              "(`aws sso login`, or new access keys)") from None
        raise DeployError(f"{doing}: {c}: {msg}") from None


def retry_conflicts(call, *, what: str, tries: int = 12, first_delay: float = 0.5, max_delay: float = 8.0,
                    also=None, sleep=time.sleep):
    """Calls `call()`, retrying while Lambda answers ResourceConflictException (an update of
    the function is still in progress) or `also(e)` holds, with exponential backoff and
    jitter. Other errors are raised at once (throttling was already retried by botocore)."""
    from botocore.exceptions import ClientError

    delay = first_delay
    for attempt in range(tries):
        try:
            return call()
        except ClientError as e:
            if attempt == tries - 1 or not (code(e) == "ResourceConflictException"
                                            or (also is not None and also(e))):
                raise
            sleep(delay * (0.5 + random.random() / 2))
            delay = min(delay * 2, max_delay)
    raise AssertionError(f"unreachable: {what}")
