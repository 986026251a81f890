"""One compiled DAG object used from several Python threads at once: calls queue on the
object's engine (waiting with the GIL released) instead of failing with PyO3's "Already
borrowed", and each call is atomic: it sees the inputs of one `update`, whole."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from conftest import ROOT, panel

ALPHA = ROOT / "examples" / "alpha.py"
NODES = ["f1", "f2", "f3", "spread", "breakout", "score"]
SHAPE = (1500, 300)  # a few ms per compute, so calls overlap


@pytest.fixture(scope="module")
def alpha_rs(compiled):
    return compiled(ALPHA)


def inputs(seed):
    o, c, h, l = (panel(seed + k, SHAPE) for k in range(4))
    return dict(open=o, close=c, high=np.abs(h) + 2, low=l)


def expected(alpha_rs, x):
    """The values a fresh object computes for inputs `x`, on this thread alone."""
    return {k: v.copy() for k, v in alpha_rs.Alpha(**x).compute(NODES).items()}


def run_threads(workers, timeout=120):
    """Starts every worker at once; returns the exceptions they raised. A worker still
    running after `timeout` seconds is a deadlock."""
    start = threading.Barrier(len(workers))
    errors: list[BaseException] = []

    def wrap(work):
        def run():
            try:
                start.wait()
                work()
            except BaseException as e:  # noqa: BLE001 - reported by the test
                errors.append(e)

        return run

    threads = [threading.Thread(target=wrap(w), daemon=True) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    assert not any(t.is_alive() for t in threads), "threads still running: a deadlock"
    return errors


def same(actual, want):
    np.testing.assert_array_equal(actual, want)  # NaN equals NaN: bitwise the same values


def test_one_object_serves_every_method_from_several_threads(alpha_rs):
    x = inputs(0)
    want = expected(alpha_rs, x)
    a = alpha_rs.Alpha(**x)

    def by_attribute():
        for _ in range(20):
            for name in NODES:
                same(getattr(a, name)(), want[name])

    def by_name():
        for _ in range(20):
            same(a.cal("score"), want["score"])
            same(a.cal("f2"), want["f2"])

    def together():
        for _ in range(20):
            got = a.compute(NODES)
            for name in NODES:
                same(got[name], want[name])

    def bookkeeping():
        for _ in range(50):
            assert set(a.stats()) >= set(NODES)
            assert "open (1500, 300)" in repr(a)
            assert a.nodes() == NODES and a.schedule()

    def same_inputs_again():
        for _ in range(10):
            a.update(**x)  # bitwise equal: nothing becomes stale

    errors = run_threads([by_attribute, by_name, together, bookkeeping, same_inputs_again])
    assert not errors, errors
    # Each node ran once: every later call found it up to date.
    assert all(a.stats()[name]["computes"] == 1 for name in NODES), a.stats()


def test_each_call_sees_the_inputs_of_one_update_whole(alpha_rs):
    sets = [inputs(10), inputs(20)]
    wants = [expected(alpha_rs, x) for x in sets]
    a = alpha_rs.Alpha(**sets[0])

    def which(name, value):
        """The input set a value was computed from."""
        found = [i for i, w in enumerate(wants) if np.array_equal(value, w[name], equal_nan=True)]
        assert found, f"`{name}` matches neither input set: a call saw a half-applied update"
        return found[0]

    def writer(first):
        def work():
            for k in range(15):
                a.update(**sets[(first + k) % 2])

        return work

    def reader():
        for _ in range(15):
            got = a.compute(["f1", "f3", "score"])
            seen = {which(name, value) for name, value in got.items()}
            assert len(seen) == 1, "one call mixed values of two input sets"

    def single_reader():
        for _ in range(15):
            which("score", a.score())

    errors = run_threads([writer(0), writer(1), reader, reader, single_reader])
    assert not errors, errors
    # The object is still fully usable, and consistent with its last update.
    a.update(**sets[1])
    same(a.score(), wants[1]["score"])
