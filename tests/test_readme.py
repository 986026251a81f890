"""The README's commands are what CI runs, and what the README says matches the code."""

from __future__ import annotations

import re

from conftest import ROOT


def _commands() -> list[str]:
    block = re.search(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
    return [line for line in block.splitlines() if line and not line.startswith("#")]


def test_readme_opens_with_the_demo_and_the_test_command():
    demo, tests = _commands()
    assert "sray-gen build examples/alpha.py" in demo and "examples/alpha_demo.py" in demo
    assert "pytest" in tests


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert _commands()[1] in ci
