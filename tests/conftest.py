"""Shared fixtures: building DAG files into importable modules, once per session.

Every build shares one cargo target directory (SRAY_TARGET_DIR, else the user cache),
so only the generated crates themselves compile during a test run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings

from sray_transpiler.targets.python import build_and_import

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"

settings.register_profile("ci", derandomize=True, deadline=None, max_examples=60)
settings.load_profile("ci")


@pytest.fixture(scope="session")
def compiled(tmp_path_factory):
    """`compiled(path)` -> the built module of a DAG file (built once per session)."""
    cache = {}

    def get(path, name=None):
        key = (str(path), name)
        if key not in cache:
            cache[key] = build_and_import(Path(path), tmp_path_factory.mktemp("build"), name)
        return cache[key]

    return get


@pytest.fixture(scope="session")
def lambda_build(tmp_path_factory):
    """(zip, build output lines): examples/alpha.py's real Lambda artifact, built once per
    session for the Lambda and deploy tests."""
    from sray_transpiler.targets.lambda_ import build_lambda_zip

    work = tmp_path_factory.mktemp("lambda")
    lines: list[str] = []
    z = build_lambda_zip(ROOT / "examples" / "alpha.py", work / "dist", echo=lines.append, out=work / "crate")
    return z, lines


@pytest.fixture(scope="session")
def lambda_zip(lambda_build):
    return lambda_build[0]


def assert_agree(actual: np.ndarray, expected: np.ndarray, rtol=1e-9, atol=1e-12) -> None:
    """The agreement rule of docs/ops.md: finite values equal within tolerance; a
    non-finite value on one side is non-finite on the other."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    fa, fe = np.isfinite(actual), np.isfinite(expected)
    assert np.array_equal(fa, fe), f"finiteness differs at {np.argwhere(fa != fe)[:5].tolist()}"
    np.testing.assert_allclose(actual[fa], expected[fe], rtol=rtol, atol=atol)


def panel(seed: int, shape=(50, 7)) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)
