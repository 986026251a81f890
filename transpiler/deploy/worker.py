"""Packages the generic Python worker Lambda of the Ray-like API (issue 5): the
`serverless_ray` package, the pure-Python packages the worker imports (cloudpickle), and,
on request, numpy's manylinux wheel for Lambda's python3.11 on x86_64.

numpy is not pure Python, so it cannot be copied from this machine: either it is bundled
(`bundle_numpy=True`: pip installs the manylinux wheel of this machine's numpy version for
CPython 3.11 / x86_64 into the zip, about 20 MB zipped), or a Lambda layer provides it
(`--layer ARN`, for example AWS's AWSSDKPandas-Python311 layer). boto3 comes with Lambda's
Python runtime and is not bundled.

The zip is deterministic (sorted entries, fixed timestamps and modes), so packaging the
same sources again gives the same bytes and an unchanged redeploy publishes nothing."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from .artifact import PYTHON_RUNTIME, WORKER_HANDLER
from .errors import DeployError

WORKER_ZIP = "serverless_ray-worker.zip"
PURE_DEPS = ("cloudpickle",)  # what the worker imports beyond serverless_ray, the stdlib and numpy
PYTHON_VERSION = PYTHON_RUNTIME.removeprefix("python")  # "3.11"
# Amazon Linux 2023 has glibc 2.34: any manylinux wheel for glibc 2.17 ... 2.34 runs there.
PLATFORMS = [f"manylinux_2_{minor}_x86_64" for minor in range(34, 16, -1)] + ["manylinux2014_x86_64"]
_BINARY = (".so", ".pyd", ".dylib", ".dll")
_DATE = (1980, 1, 1, 0, 0, 0)


def installed_package() -> Path:
    """The directory of the serverless_ray package this sray-gen runs with."""
    spec = importlib.util.find_spec("serverless_ray")
    if spec is None or not spec.submodule_search_locations:
        raise DeployError("serverless_ray is not installed: python -m pip install serverless_ray")
    return Path(list(spec.submodule_search_locations)[0])


def _package_files(package: Path) -> dict[str, Path]:
    package = Path(package)
    handler_module = WORKER_HANDLER.rsplit(".", 1)[0].split(".", 1)[1].replace(".", "/") + ".py"
    if not (package / handler_module).is_file():
        raise DeployError(f"{package} has no {handler_module}: this serverless_ray has no Lambda worker handler "
                          f"({WORKER_HANDLER}); install a serverless_ray that has it")
    files = {}
    for path in sorted(package.rglob("*")):
        if not path.is_file() or "__pycache__" in path.parts or path.suffix == ".pyc":
            continue
        if path.name.endswith(_BINARY):
            raise DeployError(f"{path} is a compiled file: the worker zip takes pure-Python serverless_ray only")
        files["serverless_ray/" + path.relative_to(package).as_posix()] = path
    return files


def _distribution_files(name: str) -> dict[str, Path]:
    """The files of an installed pure-Python distribution, as they sit in site-packages."""
    try:
        dist = importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        raise DeployError(f"{name} is not installed, and the worker needs it: python -m pip install {name}") from None
    files = {}
    for f in dist.files or ():
        rel = f.as_posix()
        if rel.startswith("..") or "__pycache__" in rel or rel.endswith(".pyc"):
            continue  # scripts outside site-packages, bytecode
        if rel.endswith(_BINARY):
            raise DeployError(f"{name} has compiled file {rel}: it is not pure Python, so it cannot be copied "
                              "into the worker zip from this machine")
        path = Path(dist.locate_file(f))
        if path.is_file():
            files[rel] = path
    return files


def _numpy_files(tmp: Path, echo) -> dict[str, Path]:
    version = importlib.metadata.version("numpy")
    echo(f"    pip: numpy=={version} for CPython {PYTHON_VERSION}, manylinux x86_64 (Amazon Linux 2023)")
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--target", str(tmp),
           "--implementation", "cp", "--python-version", PYTHON_VERSION, "--only-binary=:all:", "--no-deps",
           "--no-compile", *[a for p in PLATFORMS for a in ("--platform", p)], f"numpy=={version}"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise DeployError(f"pip could not fetch numpy=={version} for python{PYTHON_VERSION} on manylinux x86_64 "
                          f"(is PyPI reachable?):\n{proc.stderr.strip()[-2000:]}\nor pass --layer ARN of a layer "
                          "that provides numpy instead of --bundle-numpy")
    return {p.relative_to(tmp).as_posix(): p for p in sorted(tmp.rglob("*"))
            if p.is_file() and p.relative_to(tmp).parts[0] != "bin" and "__pycache__" not in p.parts}


def build_worker_zip(dist: Path, *, package: Path | None = None, bundle_numpy: bool = False,
                     echo=print) -> Path:
    """Writes dist/serverless_ray-worker.zip (atomically) and returns its path."""
    dist = Path(dist)
    package = Path(package) if package else installed_package()
    echo(f"packaging the Python worker: {package}, {', '.join(PURE_DEPS)}"
         + (", numpy (bundled)" if bundle_numpy else " (numpy from a layer)"))
    files = _package_files(package)
    for dep in PURE_DEPS:
        files.update(_distribution_files(dep))
    dist.mkdir(parents=True, exist_ok=True)
    out = dist / WORKER_ZIP
    with tempfile.TemporaryDirectory(prefix="sray-worker-") as tmp:
        if bundle_numpy:
            files.update(_numpy_files(Path(tmp) / "numpy", echo))
        fd, part = tempfile.mkstemp(dir=dist, prefix=".worker-", suffix=".zip.part")
        os.close(fd)
        try:
            with zipfile.ZipFile(part, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
                for arcname in sorted(files):
                    info = zipfile.ZipInfo(arcname, date_time=_DATE)
                    info.create_system = 3
                    mode = 0o755 if arcname.endswith(_BINARY) or ".so." in arcname else 0o644
                    info.external_attr = (0o100000 | mode) << 16
                    info.compress_type = zipfile.ZIP_DEFLATED
                    zf.writestr(info, files[arcname].read_bytes())
            os.replace(part, out)
        except BaseException:
            Path(part).unlink(missing_ok=True)
            raise
    echo(f"    {out} ({out.stat().st_size / 2**20:.1f} MB, {len(files)} files)")
    return out
