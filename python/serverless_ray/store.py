"""Data stores: named float64 arrays in a folder or an S3 bucket, as .npy, .parquet or .csv.

    store = open_store("data/run_2")          # a local folder (or "file:///abs/path")
    store = open_store("s3://bucket/prefix")  # S3 through boto3 (endpoint from the usual
                                              # AWS_ENDPOINT_URL[_S3] variables, if set)
    store.write("f1", array)                  # data/run_2/f1.npy, written atomically
    store.read("open")                        # the first of open.npy, open.parquet, open.csv

A store is a small picklable value (its S3 client is made where it is used), so tasks
take it, or its URI, as an argument. Formats: .npy (always; exact), .csv (a plain
matrix, an optional header row is skipped), .parquet (needs pandas and pyarrow; one
column per asset).
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np

FORMATS = ("npy", "parquet", "csv")


class StoreError(LookupError):
    """A name the store does not have, or data it cannot read."""


def open_store(uri) -> Store:
    """A store from a folder path, a file:// URI or an s3://bucket/prefix URI."""
    if isinstance(uri, Store):
        return uri
    text = str(uri)
    parsed = urlparse(text)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ValueError(f"{text!r}: an S3 store is s3://BUCKET[/PREFIX]")
        return S3Store(parsed.netloc, parsed.path.strip("/"))
    if parsed.scheme == "file":
        return LocalStore(Path(unquote(parsed.path)))
    if parsed.scheme and len(parsed.scheme) > 1:  # not a Windows drive letter
        raise ValueError(f"{text!r}: unsupported store scheme {parsed.scheme!r}; use a folder, file:// or s3://")
    return LocalStore(Path(text))


def encode(array, fmt: str) -> bytes:
    array = np.asarray(array, dtype=np.float64)
    buf = io.BytesIO()
    if fmt == "npy":
        np.save(buf, array, allow_pickle=False)
    elif fmt == "csv":
        np.savetxt(buf, np.atleast_2d(array) if array.ndim == 2 else array, delimiter=",", fmt="%.17g")
    elif fmt == "parquet":
        pd = _pandas("write .parquet")
        frame = pd.DataFrame(np.atleast_2d(array.T).T if array.ndim == 1 else array)
        frame.columns = [str(c) for c in frame.columns]
        frame.to_parquet(buf)
    else:
        raise ValueError(f"unknown format {fmt!r}: choose one of {', '.join(FORMATS)}")
    return buf.getvalue()


def decode(data: bytes, fmt: str, where: str) -> np.ndarray:
    try:
        if fmt == "npy":
            return np.load(io.BytesIO(data), allow_pickle=False).astype(np.float64, copy=False)
        if fmt == "csv":
            text = data.decode()
            first = text.split("\n", 1)[0]
            try:
                [float(x) for x in first.split(",") if x.strip()]
                skip = 0
            except ValueError:
                skip = 1  # a header row
            return np.loadtxt(io.StringIO(text), delimiter=",", skiprows=skip, dtype=np.float64)
        if fmt == "parquet":
            pd = _pandas("read .parquet")
            return pd.read_parquet(io.BytesIO(data)).to_numpy(dtype=np.float64)
    except StoreError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise StoreError(f"{where} could not be read as .{fmt}: {type(exc).__name__}: {exc}") from exc
    raise ValueError(f"unknown format {fmt!r}")


def _pandas(what: str):
    try:
        import pandas as pd
    except ImportError:
        raise StoreError(f"to {what} files, install pandas and pyarrow: python -m pip install pandas pyarrow") from None
    return pd


class Store:
    uri = ""

    def read(self, name: str) -> np.ndarray:
        """The array called `name`: the first of name.npy, name.parquet, name.csv."""
        for fmt in FORMATS:
            data = self._get(f"{name}.{fmt}")
            if data is not None:
                return decode(data, fmt, f"{self.uri}/{name}.{fmt}")
        raise StoreError(f"no data named {name!r} in {self.uri}: looked for "
                         f"{', '.join(f'{name}.{f}' for f in FORMATS)}")

    def write(self, name: str, array, fmt: str = "npy") -> str:
        """Writes `array` as name.fmt (whole or not at all); returns its URI."""
        key = f"{name}.{fmt}"
        self._put(key, encode(array, fmt))
        return f"{self.uri}/{key}"

    def exists(self, name: str) -> bool:
        return any(self._get(f"{name}.{fmt}", probe=True) is not None for fmt in FORMATS)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r})"


class LocalStore(Store):
    def __init__(self, root):
        self.root = Path(root).expanduser().resolve()
        self.uri = self.root.as_uri()

    def _get(self, key: str, probe: bool = False):
        path = self.root / key
        if probe:
            return b"" if path.is_file() else None
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None

    def _put(self, key: str, data: bytes) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=f".{key}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, self.root / key)  # readers see the old file or the new one, never half
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


class S3Store(Store):
    def __init__(self, bucket: str, prefix: str = "", **client_kwargs):
        self.bucket, self.prefix = bucket, prefix.strip("/")
        self.client_kwargs = client_kwargs
        self.uri = f"s3://{bucket}" + (f"/{self.prefix}" if self.prefix else "")
        self._client = None

    def __getstate__(self):
        return {**self.__dict__, "_client": None}

    @property
    def client(self):
        if self._client is None:
            import boto3

            self._client = boto3.client("s3", **self.client_kwargs)
        return self._client

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _get(self, key: str, probe: bool = False):
        from botocore.exceptions import ClientError

        try:
            if probe:
                self.client.head_object(Bucket=self.bucket, Key=self._key(key))
                return b""
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                return None
            raise StoreError(f"S3 refused {self.uri}/{key}: {exc}") from exc

    def _put(self, key: str, data: bytes) -> None:  # an S3 PUT is atomic
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
