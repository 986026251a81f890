"""Building the AWS Lambda artifact of a generated crate: `dist/<module>-lambda.zip`.

The generated crate's `bootstrap` binary (feature `lambda`) is cross-linked with
cargo-zigbuild against glibc 2.34 (Amazon Linux 2023's) for x86_64, checked with
`elf.check_lambda_binary`, and zipped alone at the zip root, mode 0755, for the
`provided.al2023` runtime. The zip is deterministic (fixed timestamps), so an unchanged
binary gives a byte-identical zip, and it is written atomically.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

from .build import _run, target_dir
from .crate import ToolchainError
from .elf import check_lambda_binary

# The only Rust target the artifact needs; `.2.34` is cargo-zigbuild's glibc pin.
RUST_TARGET = "x86_64-unknown-linux-gnu"
GLIBC = "2.34"
BIN = "bootstrap"
ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def zip_path(dist: Path, module: str) -> Path:
    return Path(dist) / f"{module}-lambda.zip"


def _zigbuild() -> list[str]:
    """The cargo-zigbuild command, from the active environment (pip `cargo-zigbuild`)."""
    beside = Path(sys.executable).parent / "cargo-zigbuild"
    exe = str(beside) if beside.is_file() else shutil.which("cargo-zigbuild")
    if exe is None:
        raise ToolchainError("cargo-zigbuild was not found; install it with `python -m pip install cargo-zigbuild ziglang` "
                             "(or `python -m pip install 'serverless_ray[lambda]'`)")
    return [exe, "zigbuild"]


def _zig_env() -> dict[str, str]:
    """Points cargo-zigbuild at the zig of the pip `ziglang` package, unless one is set."""
    if os.environ.get("CARGO_ZIGBUILD_ZIG_PATH"):
        return {}
    try:
        import ziglang
    except ImportError:
        if shutil.which("zig"):
            return {}
        raise ToolchainError("zig was not found; install it with `python -m pip install ziglang`") from None
    return {"CARGO_ZIGBUILD_ZIG_PATH": str(Path(ziglang.__file__).with_name("zig"))}


def compile_bootstrap(crate_dir: Path, *, target: Path | None = None, echo=None) -> Path:
    """`cargo zigbuild --release --bin bootstrap --features lambda` for x86_64 glibc 2.34;
    returns the linked binary (in the shared cargo target dir)."""
    if shutil.which("cargo") is None:
        raise ToolchainError("cargo was not found on PATH; install Rust (https://rustup.rs) and retry")
    target = Path(target or target_dir())
    env = {
        **os.environ,
        **_zig_env(),
        "CARGO_TARGET_DIR": str(target),
        # Symbols are of no use in the function and are most of the binary's size.
        "CARGO_PROFILE_RELEASE_STRIP": "true",
    }
    cmd = [*_zigbuild(), "--release", "--manifest-path", str(Path(crate_dir) / "Cargo.toml"), "--bin", BIN,
           "--features", "lambda", "--target", f"{RUST_TARGET}.{GLIBC}"]
    try:
        _run(cmd, "cargo zigbuild", env=env, echo=echo)
    except ToolchainError as e:
        if "target may not be installed" in str(e) or "can't find crate for `std`" in str(e):
            raise ToolchainError(f"{e}\nthe Rust target is missing: rustup target add {RUST_TARGET}") from None
        raise
    binary = target / RUST_TARGET / "release" / BIN
    if not binary.is_file():
        raise ToolchainError(f"cargo zigbuild finished but {binary} is missing")
    return binary


def write_zip(binary: Path, dest: Path, libs: list[Path] = ()) -> Path:
    """Writes `dest` atomically: `bootstrap` (0755) at the root, `libs` under lib/."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as z:
            entries = [(BIN, Path(binary), 0o755)] + [(f"lib/{Path(lib).name}", Path(lib), 0o644) for lib in libs]
            for arcname, path, mode in entries:
                info = zipfile.ZipInfo(arcname, date_time=ZIP_DATE)
                info.create_system = 3  # unix: external_attr carries the mode bits
                info.external_attr = (0o100000 | mode) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                with path.open("rb") as src, z.open(info, "w") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest


def build_lambda_zip_of_crate(crate: Path, dist: Path, module: str, *, target: Path | None = None, echo=None) -> Path:
    """Compiles, checks and zips the `bootstrap` of an already generated crate."""
    say = echo or (lambda *_: None)
    say(f"  cargo zigbuild {BIN} for {RUST_TARGET} (glibc {GLIBC}), release")
    binary = compile_bootstrap(crate, target=target, echo=echo)
    report = check_lambda_binary(binary)
    glibc = ".".join(map(str, report.max_glibc)) if report.max_glibc else "none"
    say(f"  {binary}: x86_64, needs glibc <= {glibc}, loads {', '.join(report.needed) or 'nothing'}: runs on provided.al2023")
    dest = write_zip(binary, zip_path(dist, module))
    say(f"  {dest} ({dest.stat().st_size / 1e6:.1f} MB)")
    return dest
