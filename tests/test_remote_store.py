"""Data stores (serverless_ray.store): formats, URIs, atomic writes, clear errors.
The S3 store is tested against a moto server in tests/test_lambda_worker.py."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from serverless_ray.store import LocalStore, S3Store, StoreError, open_store


def test_uris_pick_the_store():
    assert isinstance(open_store("data/x"), LocalStore)
    assert open_store("file:///tmp/a%20b").root.as_posix() == "/tmp/a b"
    s3 = open_store("s3://bucket/some/prefix")
    assert isinstance(s3, S3Store) and (s3.bucket, s3.prefix) == ("bucket", "some/prefix")
    with pytest.raises(ValueError, match="unsupported store scheme 'http'"):
        open_store("http://example/x")
    with pytest.raises(ValueError, match="s3://BUCKET"):
        open_store("s3:///nobucket")


@pytest.mark.parametrize("fmt", ["npy", "csv", "parquet"])
def test_every_format_round_trips(tmp_path, fmt):
    if fmt == "parquet":
        pytest.importorskip("pyarrow", reason="parquet needs pyarrow (in the test extra)")
    a = np.random.default_rng(0).standard_normal((20, 5))
    a[3, 2] = np.nan
    store = open_store(tmp_path)
    assert store.write("x", a, fmt=fmt).endswith(f"/x.{fmt}")
    np.testing.assert_array_equal(store.read("x"), a)


def test_csv_with_a_header_row(tmp_path):
    (tmp_path / "close.csv").write_text("A,B\n1,2\n3,4\n")
    np.testing.assert_array_equal(open_store(tmp_path).read("close"), [[1, 2], [3, 4]])


def test_read_prefers_npy_and_names_what_it_looked_for(tmp_path):
    store = open_store(tmp_path)
    store.write("x", np.ones(3), fmt="csv")
    store.write("x", np.zeros(3))
    np.testing.assert_array_equal(store.read("x"), np.zeros(3))
    with pytest.raises(StoreError, match=r"no data named 'vwap' in file://.*vwap.npy, vwap.parquet, vwap.csv"):
        store.read("vwap")
    (tmp_path / "bad.npy").write_bytes(b"not numpy")
    with pytest.raises(StoreError, match=r"bad.npy could not be read as .npy"):
        store.read("bad")


def test_writes_are_atomic_and_leave_no_temporaries(tmp_path):
    store = open_store(tmp_path)
    store.write("x", np.arange(4.0))

    class Boom:
        def __array__(self, *a, **k):
            raise RuntimeError("fails while encoding")

    with pytest.raises(RuntimeError):
        store.write("x", Boom())
    np.testing.assert_array_equal(store.read("x"), np.arange(4.0))  # the old value, whole
    assert [p.name for p in tmp_path.iterdir()] == ["x.npy"]


def test_stores_pickle_without_their_client():
    s3 = S3Store("b", "p")
    s3._client = object()
    again = pickle.loads(pickle.dumps(s3))
    assert again._client is None and again.uri == "s3://b/p"
