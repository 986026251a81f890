"""`sray-gen invoke FILE --local --event ev.json`: runs the function of a DAG file
locally, exactly as AWS Lambda would, and prints its response.

It builds (or, when nothing changed, reuses) `dist/<module>-lambda.zip`, takes the
`bootstrap` out of the zip, starts cargo-lambda's Runtime API emulator and the bootstrap
against it, sends the event through boto3's Invoke, prints the response JSON, and stops
what it started. With `--function-name NAME` instead of `--local`, it invokes a deployed
function (region, credentials and endpoint from the usual AWS environment).

Exit code: 0 for a response, 1 for a function error (its errorType and message are
printed on stderr), 2 when the build or the local servers fail.
"""

from __future__ import annotations

import json
import sys
import tempfile
import zipfile
from pathlib import Path

from ..toolchain.build import target_dir
from ..toolchain.crate import ToolchainError


def _read_event(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    p = Path(path)
    if not p.is_file():
        raise ToolchainError(f"event file {p} does not exist; write the request JSON there (see docs/lambda.md)")
    return p.read_bytes()


def _print(result) -> int:
    if result.ok:
        print(json.dumps(result.payload, indent=2))
        return 0
    message = result.payload.get("errorMessage") if isinstance(result.payload, dict) else result.payload
    print(f"function error {result.error_type}: {message}", file=sys.stderr)
    return 1


def invoke_local(config, event: bytes, env: dict | None = None, say=print):
    """Builds the zip and runs one invocation under the emulator; returns the InvokeResult."""
    from ..toolchain import emulator
    from ..targets.lambda_ import build_lambda_zip

    verbose = getattr(config, "verbose", False)
    say(f"[1/2] building the Lambda zip of {config.file}")
    zipped = build_lambda_zip(config.file, config.dist, name=config.name, out=config.out,
                              target=config.target_dir or target_dir(),
                              echo=lambda line: say("  " + line) if verbose or line.startswith("  ") else None)
    say(f"[2/2] invoking its bootstrap under cargo-lambda's emulator on {emulator.HOST}")
    with tempfile.TemporaryDirectory(prefix="sray-invoke-") as tmp:
        work = Path(tmp)
        with zipfile.ZipFile(zipped) as z:
            z.extract("bootstrap", work / "task")
        binary = work / "task" / "bootstrap"
        binary.chmod(0o755)
        with emulator.lambda_emulator(work / "emulator") as (endpoint, runtime_api):
            with emulator.run_bootstrap(binary, runtime_api, work / "bootstrap.log", env=env) as proc:
                client = emulator.lambda_client(endpoint)
                try:
                    return emulator.invoke(client, event)
                finally:
                    if proc.poll() is not None:
                        say(f"  the bootstrap exited with {proc.returncode}:\n"
                            + (work / "bootstrap.log").read_text(errors="replace")[-3000:])


def run(config) -> int:
    event = _read_event(config.event)
    if config.function_name:
        from botocore.exceptions import BotoCoreError, ClientError

        from ..toolchain import emulator

        try:
            result = emulator.invoke(emulator.lambda_client(), event, config.function_name)
        except (BotoCoreError, ClientError) as e:
            raise ToolchainError(f"could not invoke {config.function_name}: {e}; check AWS_REGION, the credentials "
                                 f"and that the function exists (sray-gen deploy)") from e
        return _print(result)
    if not config.local:
        raise ToolchainError("say where to run: --local (the emulator on this machine) or --function-name NAME "
                             "(a deployed function)")
    if config.file is None:
        raise ToolchainError("--local needs the DAG file: sray-gen invoke FILE --local --event ev.json")
    return _print(invoke_local(config, event, say=lambda line: print(line, file=sys.stderr, flush=True)))
