"""Checks that a Linux executable runs on AWS Lambda's `provided.al2023` runtime.

Amazon Linux 2023 ships glibc 2.34, so every `GLIBC_x.y` symbol version the binary needs
must be <= 2.34; and every shared library it loads (DT_NEEDED) must be in the image's base
set or shipped in the zip under `lib/` (Lambda puts /var/task/lib on the library path).
The ELF is read with pyelftools.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerNeedSection

from .crate import ToolchainError

GLIBC_MAX = (2, 34)

# Shared libraries of the provided.al2023 base image that a binary may rely on: glibc's
# own libraries and libgcc_s (Rust's unwinder).
AL2023_BASE_LIBS = frozenset({
    "libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1", "libutil.so.1",
    "libresolv.so.2", "libanl.so.1", "libnsl.so.1", "libgcc_s.so.1", "ld-linux-x86-64.so.2",
})

_GLIBC = re.compile(r"^GLIBC_(\d+)\.(\d+)(?:\.(\d+))?$")


@dataclass
class ElfReport:
    path: Path
    machine: str
    needed: list[str] = field(default_factory=list)
    glibc_versions: list[tuple[int, ...]] = field(default_factory=list)

    @property
    def max_glibc(self) -> tuple[int, ...] | None:
        return max(self.glibc_versions, default=None)


def read_elf(path: Path) -> ElfReport:
    """The machine, DT_NEEDED libraries and GLIBC_ versions needed by an ELF file."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            elf = ELFFile(f)
            report = ElfReport(path, elf["e_machine"])
            for section in elf.iter_sections():
                if isinstance(section, DynamicSection):
                    report.needed += [t.needed for t in section.iter_tags("DT_NEEDED")]
                elif isinstance(section, GNUVerNeedSection):
                    for _, auxiliaries in section.iter_versions():
                        for aux in auxiliaries:
                            m = _GLIBC.match(aux.name)
                            if m:
                                report.glibc_versions.append(tuple(int(g) for g in m.groups() if g is not None))
    except (ELFError, OSError) as e:
        raise ToolchainError(f"{path} is not a readable ELF executable: {e}") from e
    report.glibc_versions = sorted(set(report.glibc_versions))
    return report


def _version(v: tuple[int, ...]) -> str:
    return ".".join(map(str, v))


def lambda_problems(path: Path, shipped: frozenset[str] | set[str] = frozenset()) -> list[str]:
    """Why the binary would not run on provided.al2023 (x86_64); empty when it would.
    `shipped` are the file names of libraries the zip carries under lib/."""
    path = Path(path)
    report = read_elf(path)
    problems = []
    if report.machine != "EM_X86_64":
        problems.append(f"{path.name} is built for {report.machine}, but the function's architecture is x86_64")
    too_new = [v for v in report.glibc_versions if v > GLIBC_MAX]
    if too_new:
        problems.append(
            f"{path.name} needs glibc {_version(max(too_new))} (symbol versions "
            f"{', '.join('GLIBC_' + _version(v) for v in too_new)}), but Amazon Linux 2023 has glibc "
            f"{_version(GLIBC_MAX)}; build with cargo-zigbuild for x86_64-unknown-linux-gnu.{_version(GLIBC_MAX)} "
            f"(what `sray-gen build --target lambda` does)"
        )
    missing = [lib for lib in report.needed if lib not in AL2023_BASE_LIBS and lib not in shipped]
    if missing:
        problems.append(
            f"{path.name} loads {', '.join(missing)}, which the provided.al2023 image does not have; "
            f"link it statically or ship it in the zip under lib/"
        )
    return problems


def check_lambda_binary(path: Path, shipped: frozenset[str] | set[str] = frozenset()) -> ElfReport:
    """Raises ToolchainError naming every problem; returns the report when it conforms."""
    path = Path(path)
    problems = lambda_problems(path, shipped)
    if problems:
        raise ToolchainError(f"{path} will not run on AWS Lambda (provided.al2023, x86_64):\n  - "
                             + "\n  - ".join(problems))
    return read_elf(path)
