"""What deploy ships: a zip, checked and hashed. Deploy does not look inside beyond these
checks: a custom-runtime zip needs an executable `bootstrap` at its root, a Python worker
zip needs its handler module."""

from __future__ import annotations

import base64
import hashlib
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .errors import DeployError

UNZIPPED_LIMIT = 250 * 1024 * 1024  # Lambda's limit on a function's unzipped code
ARCHITECTURE = "x86_64"
CUSTOM_RUNTIME = "provided.al2023"
PYTHON_RUNTIME = "python3.11"
WORKER_HANDLER = "serverless_ray.lambda_worker.handler"


@dataclass(frozen=True)
class Artifact:
    path: Path
    size: int  # bytes of the zip
    sha256: str  # base64 of the zip's sha256: Lambda's CodeSha256
    sha256_hex: str
    runtime: str
    handler: str
    architecture: str = ARCHITECTURE


def _hash(path: Path) -> tuple[str, str]:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return base64.b64encode(h.digest()).decode(), h.hexdigest()


def _open(path: Path) -> zipfile.ZipFile:
    if not path.is_file():
        raise DeployError(f"{path} does not exist: build it with `sray-gen build FILE --target lambda`, "
                          "or pass the zip's path with --zip")
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise DeployError(f"{path} is not a zip file: pass the zip that `sray-gen build FILE --target lambda` "
                          "wrote to dist/") from None
    unzipped = sum(i.file_size for i in zf.infolist())
    if unzipped > UNZIPPED_LIMIT:
        zf.close()
        raise DeployError(f"{path} unzips to {unzipped / 2**20:.0f} MB, over Lambda's 250 MB limit on "
                          "a function's code; make the artifact smaller")
    return zf


def mode_of(info: zipfile.ZipInfo) -> int:
    """Unix mode bits of a zip entry (0 when the zip was not made on a Unix system)."""
    return (info.external_attr >> 16) if info.create_system == 3 else 0


def bootstrap_artifact(path: Path) -> Artifact:
    """Checks a provided.al2023 zip: a regular, executable `bootstrap` at the root."""
    path = Path(path)
    with _open(path) as zf:
        try:
            info = zf.getinfo("bootstrap")
        except KeyError:
            names = [n for n in zf.namelist() if n.rsplit("/", 1)[-1] == "bootstrap"]
            where = f" (there is {names[0]}, but it must be at the root)" if names else ""
            raise DeployError(f"{path} has no `bootstrap` at its root{where}: Lambda's provided.al2023 runtime "
                              "starts that file; rebuild with `sray-gen build FILE --target lambda`") from None
        mode = mode_of(info)
        kind = stat.S_IFMT(mode)
        if kind not in (0, stat.S_IFREG):
            raise DeployError(f"`bootstrap` in {path} is not a regular file (mode {mode:o}); "
                              "zip the executable itself, not a link")
        if not mode & 0o111:
            raise DeployError(f"`bootstrap` in {path} is not executable (mode {stat.S_IMODE(mode):04o}): Lambda "
                              "would fail with `permission denied`; `chmod 755 bootstrap` and zip it again on "
                              "Linux or macOS, or rebuild with `sray-gen build FILE --target lambda`")
    b64, hexd = _hash(path)
    return Artifact(path, path.stat().st_size, b64, hexd, CUSTOM_RUNTIME, "bootstrap")


def worker_artifact(path: Path) -> Artifact:
    """Checks a Python worker zip: the handler's module at the root of the zip."""
    path = Path(path)
    module = WORKER_HANDLER.rsplit(".", 1)[0].replace(".", "/") + ".py"
    with _open(path) as zf:
        if module not in zf.namelist():
            raise DeployError(f"{path} has no `{module}`: it is not a serverless_ray worker zip; "
                              "let `sray-gen deploy --worker` build it (omit --zip)")
    b64, hexd = _hash(path)
    return Artifact(path, path.stat().st_size, b64, hexd, PYTHON_RUNTIME, WORKER_HANDLER)
