"""What a build target is made of (`Target`) and the progress lines targets print."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..backend.rust import CratePart
from ..config import Config
from ..toolchain.build import target_dir


@dataclass(frozen=True)
class Target:
    name: str
    help: str  # one line for `sray-gen build --help`
    part: CratePart  # what it adds to every generated crate
    # Builds the artifact from the generated crate; returns what to tell the user
    # (e.g. "`import alpha_rs`"). Reports progress through the Progress it is given.
    build: Callable[[Path, Config, "Progress"], str]
    steps: Callable[[Config], int] = lambda config: 1  # progress steps `build` announces


class Progress:
    """`[k/n] what` lines of a multi-step command, and indented detail lines under them."""

    def __init__(self, steps: int, verbose: bool = False, say=print):
        self.steps, self.verbose, self.say, self._done = steps, verbose, say, 0
        self.t0 = time.perf_counter()

    def step(self, what: str) -> None:
        self._done += 1
        self.say(f"[{self._done}/{self.steps}] {what}", flush=True)

    def detail(self, line: str) -> None:
        self.say("    " + line.strip(), flush=True)

    def tool(self, line: str) -> None:
        """A line of a compiler's output: cargo's progress lines, or everything when verbose."""
        if self.verbose or line.lstrip().startswith(("Compiling", "Finished", "error", "warning", "📦", "🔗")):
            self.detail(line)


def cargo_target_dir(config: Config) -> Path:
    return config.target_dir or target_dir()
