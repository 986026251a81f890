"""The AWS Lambda artifact end to end: `sray-gen build --target lambda`'s zip, its real
`bootstrap` under cargo-lambda's Runtime API emulator, S3 on a moto server, every
errorType, warm-container incremental recompute, and the ELF check (docs/lambda.md).

The zip is built once per session; every server is started and stopped by the tests,
on 127.0.0.1.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import boto3
import jsonschema
import numpy as np
import pytest

from conftest import ROOT, assert_agree
from servers import FAKE_AWS_ENV, free_port, lambda_emulator, moto_server
from serverless_ray import evaluate
from sray_transpiler.resources import schema_path
from sray_transpiler.toolchain import emulator
from sray_transpiler.toolchain.crate import ToolchainError
from sray_transpiler.toolchain.elf import check_lambda_binary, lambda_problems, read_elf
from sray_transpiler.targets.lambda_ import build_lambda_zip

ALPHA = ROOT / "examples" / "alpha.py"
INPUTS = ("open", "close", "high", "low")
BUCKET = "sray-data"
REQUEST_SCHEMA = json.loads(schema_path("lambda-request").read_text())
RESPONSE_SCHEMA = json.loads(schema_path("lambda-response").read_text())


# --- fixtures -------------------------------------------------------------------------

def test_the_zip_builds_for_al2023_without_warnings(lambda_build, tmp_path_factory):
    z, lines = lambda_build
    assert z.name == "alpha_rs-lambda.zip" and z.parent.name == "dist"
    assert any("runs on provided.al2023" in line for line in lines), lines
    assert not [line for line in lines if line.lstrip().startswith("warning")], lines  # compiles without warnings


@pytest.fixture(scope="session")
def bootstrap(lambda_zip, tmp_path_factory):
    """The bootstrap as Lambda would unpack it."""
    task = tmp_path_factory.mktemp("task")
    with zipfile.ZipFile(lambda_zip) as z:
        z.extract("bootstrap", task)
    binary = task / "bootstrap"
    binary.chmod(0o755)
    return binary


@pytest.fixture(scope="session")
def s3(tmp_path_factory):
    """(endpoint, boto3 S3 client) of a moto server with the bucket BUCKET."""
    with moto_server(tmp_path_factory.mktemp("moto")) as url:
        client = boto3.client("s3", endpoint_url=url, region_name="us-east-1",
                              aws_access_key_id="testing", aws_secret_access_key="testing")
        client.create_bucket(Bucket=BUCKET)
        yield url, client


class Function:
    """The real bootstrap polling its own emulator; `call(request)` invokes it once."""

    def __init__(self, endpoint, proc, log):
        self.client = emulator.lambda_client(endpoint)
        self.proc = proc
        self.log = log

    def call(self, request) -> emulator.InvokeResult:
        payload = request if isinstance(request, bytes) else json.dumps(request).encode()
        result = emulator.invoke(self.client, payload)
        assert self.proc.poll() is None, f"the bootstrap died:\n{self.log.read_text()[-3000:]}"
        jsonschema.validate(result.payload, RESPONSE_SCHEMA)
        return result

    def ok(self, request) -> dict:
        result = self.call(request)
        assert result.ok, result.payload
        return result.payload


@contextlib.contextmanager
def function(bootstrap, workdir: Path, env: dict):
    workdir.mkdir(parents=True, exist_ok=True)
    with lambda_emulator(workdir) as (endpoint, runtime_api):
        log = workdir / "bootstrap.log"
        with emulator.run_bootstrap(bootstrap, runtime_api, log, env={**FAKE_AWS_ENV, **env}) as proc:
            yield Function(endpoint, proc, log)


@pytest.fixture(scope="session")
def fn(bootstrap, s3, tmp_path_factory):
    """The function as deployed: S3 is the moto server, no default output URI."""
    with function(bootstrap, tmp_path_factory.mktemp("fn"), {"AWS_ENDPOINT_URL": s3[0]}) as f:
        yield f


# --- helpers --------------------------------------------------------------------------

def panels(seed: int, shape=(40, 6)) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    low = rng.uniform(50, 100, shape)
    high = low + rng.uniform(0.1, 5, shape)
    x = {"open": rng.uniform(low, high), "close": rng.uniform(low, high), "high": high, "low": low}
    x["close"][0, 0] = np.nan  # NaN travels as null / as bytes
    return x


def json_array(a: np.ndarray) -> dict:
    data = [None if np.isnan(v) else ("inf" if v == np.inf else "-inf" if v == -np.inf else float(v)) for v in a.ravel()]
    return {"shape": list(a.shape), "data": data}


def b64_array(a: np.ndarray) -> dict:
    return {"shape": list(a.shape), "b64": base64.b64encode(np.ascontiguousarray(a, "<f8").tobytes()).decode()}


def decode(out: dict) -> np.ndarray:
    if "b64" in out:
        return np.frombuffer(base64.b64decode(out["b64"]), "<f8").reshape(out["shape"])
    return np.array([np.nan if v is None else float(v) for v in out["data"]]).reshape(out["shape"])


def request(inputs: dict, outputs, **extra) -> dict:
    r = {"dag": "Alpha", "inputs": inputs, "outputs": list(outputs), **extra}
    jsonschema.validate(r, REQUEST_SCHEMA)
    return r


def put_npy(client, key: str, a: np.ndarray) -> str:
    buf = io.BytesIO()
    np.save(buf, a)
    client.put_object(Bucket=BUCKET, Key=key, Body=buf.getvalue())
    return f"s3://{BUCKET}/{key}"


def get_npy(client, uri: str) -> np.ndarray:
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    return np.load(io.BytesIO(client.get_object(Bucket=bucket, Key=key)["Body"].read()))


# --- the artifact ---------------------------------------------------------------------

def test_the_zip_holds_an_executable_bootstrap_that_conforms_to_al2023(lambda_zip, bootstrap):
    with zipfile.ZipFile(lambda_zip) as z:
        (info,) = z.infolist()
        assert info.filename == "bootstrap"
        assert stat.S_IMODE(info.external_attr >> 16) == 0o755 and stat.S_ISREG(info.external_attr >> 16)
    report = check_lambda_binary(bootstrap)
    assert report.machine == "EM_X86_64"
    assert report.max_glibc <= (2, 34)
    assert set(report.needed) <= {"libc.so.6", "libm.so.6", "ld-linux-x86-64.so.2", "libgcc_s.so.1", "libpthread.so.0",
                                  "libdl.so.2", "librt.so.1"}
    assert lambda_zip.stat().st_size <= 10_000_000


def _zig_cc(tmp_path: Path, name: str, source: str, *args: str) -> Path:
    src = tmp_path / f"{name}.c"
    src.write_text(source)
    out = tmp_path / name
    subprocess.run([sys.executable, "-m", "ziglang", "cc", *args, "-o", str(out), str(src)], check=True,
                   capture_output=True, cwd=tmp_path)
    return out


def test_the_glibc_check_fails_on_a_binary_that_needs_a_newer_glibc(tmp_path):
    # arc4random is new in glibc 2.36: linked against 2.36 it needs GLIBC_2.36.
    source = "#include <stdlib.h>\nint main(void) { return (int)(arc4random() & 1); }\n"
    newer = _zig_cc(tmp_path, "newer", source, "-target", "x86_64-linux-gnu.2.36")
    assert read_elf(newer).max_glibc == (2, 36)
    with pytest.raises(ToolchainError) as e:
        check_lambda_binary(newer)
    assert "needs glibc 2.36" in str(e.value) and "Amazon Linux 2023 has glibc 2.34" in str(e.value)
    ok = _zig_cc(tmp_path, "ok", "int main(void) { return 0; }\n", "-target", "x86_64-linux-gnu.2.34")
    assert lambda_problems(ok) == []


def test_the_check_fails_on_a_library_that_is_neither_in_al2023_nor_shipped(tmp_path):
    lib = tmp_path / "libextra.so"
    subprocess.run([sys.executable, "-m", "ziglang", "cc", "-shared", "-target", "x86_64-linux-gnu.2.34", "-o", str(lib),
                    "-x", "c", "-"], input=b"int extra(void) { return 1; }\n", check=True, capture_output=True)
    exe = _zig_cc(tmp_path, "uses_extra", "int extra(void);\nint main(void) { return extra(); }\n",
                  "-target", "x86_64-linux-gnu.2.34", "-L", str(tmp_path), "-lextra")
    assert "libextra.so" in read_elf(exe).needed
    (problem,) = lambda_problems(exe)
    assert "loads libextra.so" in problem and "ship it in the zip under lib/" in problem
    assert lambda_problems(exe, shipped={"libextra.so"}) == []


def test_a_non_elf_file_is_a_clear_error(tmp_path):
    f = tmp_path / "bootstrap"
    f.write_text("#!/bin/sh\necho hi\n")
    with pytest.raises(ToolchainError, match="is not a readable ELF executable"):
        check_lambda_binary(f)


# --- values ---------------------------------------------------------------------------

@pytest.mark.parametrize("encode", [json_array, b64_array], ids=["json", "b64"])
@pytest.mark.parametrize("fmt", ["json", "b64"])
def test_inline_inputs_give_the_reference_values(fn, encode, fmt):
    x = panels(1)
    names = ["f1", "f3", "spread", "breakout", "score"]
    resp = fn.ok(request({k: encode(v) for k, v in x.items()}, names, format=fmt))
    expected = evaluate(ALPHA, "Alpha", x, names)
    for name in names:
        out = resp["outputs"][name]
        assert ("data" if fmt == "json" else "b64") in out
        assert_agree(decode(out), expected[name])


def test_1d_inputs_and_infinities_round_trip(fn):
    x = {k: v[:, 0].copy() for k, v in panels(2).items()}
    x["open"][3] = np.inf
    resp = fn.ok(request({k: json_array(v) for k, v in x.items()}, ["f1", "f2"], format="json"))
    assert resp["outputs"]["f1"]["shape"] == [40]
    assert resp["outputs"]["f1"]["data"][3] == "inf" and resp["outputs"]["f2"]["data"][3] == "-inf"
    expected = evaluate(ALPHA, "Alpha", x, ["f1", "f2"])
    assert_agree(decode(resp["outputs"]["f2"]), expected["f2"])


def test_dag_may_be_omitted_when_the_file_has_one_class(fn):
    x = panels(3, (5, 2))
    r = request({k: b64_array(v) for k, v in x.items()}, ["f1"])
    del r["dag"]
    assert_agree(decode(fn.ok(r)["outputs"]["f1"]), x["open"] + x["close"])


def test_npy_inputs_and_outputs_on_s3(fn, s3):
    _, client = s3
    x = panels(4, (30, 5))
    x["low"] = np.asfortranarray(x["low"])  # Fortran-order .npy files read too
    uris = {k: put_npy(client, f"in/{k}.npy", v) for k, v in x.items()}
    resp = fn.ok(request(uris, ["f3", "score"], output_uri=f"s3://{BUCKET}/runs/1/"))
    expected = evaluate(ALPHA, "Alpha", x, ["f3", "score"])
    for name in ("f3", "score"):
        out = resp["outputs"][name]
        assert out == {"uri": f"s3://{BUCKET}/runs/1/{name}.npy", "shape": [30, 5]}
        assert_agree(get_npy(client, out["uri"]), expected[name])


def test_a_response_past_6_mb_is_spilled_to_the_default_output_uri(bootstrap, s3, tmp_path):
    url, client = s3
    x = {k: v for k, v in panels(5, (1000, 800)).items()}  # one b64 output: 8.5 MB
    uris = {k: put_npy(client, f"big/{k}.npy", v) for k, v in x.items() if k in ("open", "close")}
    env = {"AWS_ENDPOINT_URL": url, "SRAY_OUTPUT_URI": f"s3://{BUCKET}/spill"}
    with function(bootstrap, tmp_path / "fn", env) as f:
        resp = f.ok(request(uris, ["f1"]))
    assert resp["outputs"]["f1"] == {"uri": f"s3://{BUCKET}/spill/f1.npy", "shape": [1000, 800]}
    assert_agree(get_npy(client, resp["outputs"]["f1"]["uri"]), x["open"] + x["close"])


# --- warm containers ------------------------------------------------------------------

def test_a_warm_container_recomputes_only_the_cone_of_a_changed_input(fn):
    x = panels(6, (17, 3))  # a shape of its own: the first call starts a fresh engine
    names = ["f3", "spread", "breakout", "score"]

    def computes(inputs):
        resp = fn.ok(request({k: b64_array(v) for k, v in inputs.items()}, names))
        expected = evaluate(ALPHA, "Alpha", inputs, names)
        for name in names:
            assert_agree(decode(resp["outputs"][name]), expected[name])
        return {k: v["computes"] for k, v in resp["stats"].items()}

    assert computes(x) == dict.fromkeys(["f1", "f2", "f3", "spread", "breakout", "score"], 1)
    assert set(computes(x).values()) == {0}  # same inputs again: nothing runs
    x["high"] = x["high"] + 1.0
    # high feeds spread and breakout (and score after them), not f1, f2, f3.
    assert computes(x) == {"f1": 0, "f2": 0, "f3": 0, "spread": 1, "breakout": 1, "score": 1}


# --- errors ---------------------------------------------------------------------------

def _inline(shape=(4, 3), **override):
    x = {k: b64_array(v) for k, v in panels(7, shape).items()}
    x.update(override)
    return x


ERRORS = {
    "not-json": (b'{"outputs": ["f1"', "MalformedRequest", "not valid JSON"),
    "bad-field": ({"outputs": ["f1"], "input": {}}, "MalformedRequest", "unknown field `input`"),
    "bad-array": ({"outputs": ["f1"], "inputs": {"open": {"shape": [2], "b64": "!!"}}}, "MalformedRequest", "base64"),
    "unknown-dag": ({"dag": "Beta", "outputs": ["f1"]}, "UnknownDag", "`Beta` is not a DAG of this function"),
    "unknown-output": ({"outputs": ["f9"], "inputs": _inline()}, "UnknownOutput", "`f9` is not a node of DAG `Alpha`"),
    "unknown-input": ({"outputs": ["f1"], "inputs": _inline(volume={"shape": [4, 3], "data": [0] * 12})},
                      "UnknownInput", "`volume` is not an input of DAG `Alpha`"),
    "missing-input": ({"outputs": ["spread"], "inputs": {"high": b64_array(np.ones((4, 3)))}},
                      "MissingInput", "read input `low`"),
    "shape-mismatch": ({"outputs": ["f1"], "inputs": _inline(close=b64_array(np.ones((5, 3))))},
                       "ShapeMismatch", "has shape (5, 3), expected (T, N) with T = 4"),
    "shape-vs-data": ({"outputs": ["f1"], "inputs": _inline(open={"shape": [4, 3], "data": [1, 2]})},
                      "ShapeMismatch", "has 2 values but shape (4, 3) needs 12"),
    "missing-object": ({"outputs": ["f1"], "inputs": _inline(open=f"s3://{BUCKET}/nowhere.npy")},
                       "S3ObjectNotFound", f"s3://{BUCKET}/nowhere.npy does not exist"),
    "missing-bucket": ({"outputs": ["f1"], "inputs": _inline(open="s3://no-such-bucket/x.npy")},
                       "S3ObjectNotFound", "does not exist"),
    "not-npy": ({"outputs": ["f1"], "inputs": _inline(open=f"s3://{BUCKET}/x.csv")}, "UnreadableObject", "not a .npy"),
    "int-npy": ({"outputs": ["f1"], "inputs": _inline(open=f"s3://{BUCKET}/ints.npy")},
                "UnreadableObject", "not a float64 .npy"),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_each_failure_has_its_error_type_and_the_next_invocation_succeeds(fn, s3, case):
    put_npy(s3[1], "ints.npy", np.arange(12).reshape(4, 3))
    event, error_type, words = ERRORS[case]
    result = fn.call(event)
    assert result.status == 500  # the emulator's convention for a function error
    assert result.error_type == error_type, result.payload
    assert words in result.payload["errorMessage"], result.payload["errorMessage"]
    x = panels(8, (4, 3))
    resp = fn.ok(request({k: b64_array(v) for k, v in x.items()}, ["f1"]))
    assert_agree(decode(resp["outputs"]["f1"]), x["open"] + x["close"])


def test_a_response_past_6_mb_without_an_output_uri_is_a_clear_error(fn, s3):
    _, client = s3
    uris = {k: put_npy(client, f"big2/{k}.npy", v) for k, v in panels(9, (1000, 800)).items() if k in ("open", "close")}
    result = fn.call(request(uris, ["f1"]))
    assert result.error_type == "OutputUriRequired"
    assert '"output_uri"' in result.payload["errorMessage"] and "SRAY_OUTPUT_URI" in result.payload["errorMessage"]


def test_an_unreachable_s3_endpoint_is_an_s3_error(bootstrap, tmp_path):
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with function(bootstrap, tmp_path / "fn", {"AWS_ENDPOINT_URL": closed}) as f:
        result = f.call({"outputs": ["f1"], "inputs": _inline(open=f"s3://{BUCKET}/in/open.npy")})
        assert result.error_type == "S3Error", result.payload
        assert "AWS_ENDPOINT_URL" in result.payload["errorMessage"]
        assert f.call({"outputs": ["f1"], "inputs": _inline()}).ok


def test_real_lambdas_error_convention_is_read_too():
    """Real Lambda answers a function error with 200 and a FunctionError header."""
    body = json.dumps({"errorType": "UnknownDag", "errorMessage": "..."}).encode()
    assert emulator.interpret(200, "Unhandled", body).error_type == "UnknownDag"
    assert emulator.interpret(500, None, body).error_type == "UnknownDag"
    assert emulator.interpret(200, None, b'{"outputs": {}}').ok


# --- the command line -----------------------------------------------------------------

def sray_gen(*args, cwd, stdin=None):
    return subprocess.run([sys.executable, "-m", "sray_transpiler.cli.main", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, input=stdin)


def test_sray_gen_invoke_local_prints_the_response_and_stops_what_it_started(lambda_zip, tmp_path):
    x = panels(10, (6, 2))
    event = tmp_path / "ev.json"
    event.write_text(json.dumps(request({k: json_array(v) for k, v in x.items()}, ["f3"], format="json")))
    crate = lambda_zip.parent.parent / "crate"  # reuse the session's crate: nothing recompiles
    proc = sray_gen("invoke", ALPHA, "--local", "--event", event, "--out", crate, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "[2/2] invoking its bootstrap" in proc.stderr
    out = json.loads(proc.stdout)
    assert_agree(decode(out["outputs"]["f3"]), evaluate(ALPHA, "Alpha", x, ["f3"])["f3"])
    assert (tmp_path / "dist" / "alpha_rs-lambda.zip").is_file()
    bad = sray_gen("invoke", ALPHA, "--local", "--event", "-", "--out", crate, cwd=tmp_path, stdin='{"outputs": ["f9"]}')
    assert bad.returncode == 1 and "function error UnknownOutput: `f9` is not a node" in bad.stderr
    leftovers = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True).stdout
    assert leftovers == "", "sray-gen invoke left processes running"


def test_build_target_lambda_writes_the_zip_and_says_so(lambda_zip, tmp_path):
    crate = lambda_zip.parent.parent / "crate"
    proc = sray_gen("build", ALPHA, "--target", "lambda", "--out", crate, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[2/2] building the AWS Lambda zip of alpha_rs" in proc.stdout
    assert "runs on provided.al2023" in proc.stdout
    # Deterministic: the same binary gives the same zip.
    assert (tmp_path / "dist" / "alpha_rs-lambda.zip").read_bytes() == lambda_zip.read_bytes()
    bad = sray_gen("build", ALPHA, "--target", "wasm", cwd=tmp_path)
    assert bad.returncode == 2 and "invalid choice: 'wasm'" in bad.stderr


def test_one_zip_serves_every_dag_class_of_its_file(tmp_path):
    """Two classes, `match` and `Match`, with keyword, colliding and non-ASCII names."""
    source = ROOT / "tests" / "fixtures" / "dags" / "awkward_names.py"
    z = build_lambda_zip(source, tmp_path / "dist", name="awkward_lambda", out=tmp_path / "crate")
    assert z.name == "awkward_lambda-lambda.zip"
    with zipfile.ZipFile(z) as zf:
        zf.extract("bootstrap", tmp_path / "task")
    binary = tmp_path / "task" / "bootstrap"
    binary.chmod(0o755)
    x = {name: np.random.default_rng(k).standard_normal((6, 2)) for k, name in enumerate(("type", "fn", "α"))}
    with function(binary, tmp_path / "fn", {}) as f:
        resp = f.ok({"dag": "match", "inputs": {k: b64_array(v) for k, v in x.items()}, "outputs": ["β", "impl_"]})
        expected = evaluate(source, "match", x, ["β", "impl_"])
        for name in ("β", "impl_"):
            assert_agree(decode(resp["outputs"][name]), expected[name])
        resp = f.ok({"dag": "Match", "inputs": {"x": json_array(x["fn"])}, "outputs": ["default"], "format": "json"})
        assert_agree(decode(resp["outputs"]["default"]), x["fn"] * 3 + 1)
        result = f.call({"outputs": ["new"], "inputs": {"x": json_array(x["fn"])}})
        assert result.error_type == "UnknownDag" and "`match`, `Match`" in result.payload["errorMessage"]
