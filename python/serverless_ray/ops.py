"""The Python reference of every op of docs/ops.md, on numpy arrays.

These functions are the oracle the compiled kernels are tested against, and what the
reference engine runs (it finds an op's function here by the name the op table gives,
`Op.python`). They are plain numpy and usable on their own. Values are float64;
comparisons and logical ops return 1.0 / 0.0; truthiness is "nonzero and not NaN".

The elementwise ops are defined beside the op table, in `sray_transpiler.elementwise`
(the compiler folds constants with them), and re-exported here.
"""

from __future__ import annotations

import contextlib
import functools
import warnings

import numpy as np
from sray_transpiler.elementwise import (  # noqa: F401 - re-exported
    _f, abs, add, and_, div, eq, exp, ge, gt, le, log, lt, maximum, minimum, mul, ne, neg, not_, or_, pow, sign,
    signedpower, sqrt, sub, truthy, where,
)


# -- time series (each column on its own, along time) ------------------------------------
#
# A window that is not yet full, or that holds a NaN, gives NaN. These are plain numpy
# over sliding windows: O(T * N * d), written for clarity, not speed.


def _panel(x) -> np.ndarray:
    x = _f(x)
    return x.reshape(-1, 1) if x.ndim == 1 else x


def _windows(x, d: int):
    """(x as a panel, its windows of shape (T-d+1, N, d)), or windows None if d > T."""
    x = _panel(x)
    if d > x.shape[0]:
        return x, None
    return x, np.lib.stride_tricks.sliding_window_view(x, d, axis=0)


def _pad(x, values, d: int) -> np.ndarray:
    out = np.full(x.shape, np.nan)
    if values is not None:
        out[d - 1 :] = values
    return out


def _flat(w) -> np.ndarray:
    return w.max(axis=-1) == w.min(axis=-1)


def delay(x, d):
    x = _panel(x)
    out = np.full(x.shape, np.nan)
    if d < x.shape[0]:
        out[d:] = x[:-d]
    return out


def delta(x, d):
    return _panel(x) - delay(x, d)


def ts_sum(x, d):
    x, w = _windows(x, d)
    return _pad(x, None if w is None else w.sum(axis=-1), d)


def ts_mean(x, d):
    x, w = _windows(x, d)
    return _pad(x, None if w is None else w.mean(axis=-1), d)


def ts_std(x, d):
    x, w = _windows(x, d)
    if w is None or d < 2:
        return _pad(x, None, d)
    with np.errstate(all="ignore"):
        return _pad(x, np.where(_flat(w), 0.0, w.std(axis=-1, ddof=1)), d)


def ts_min(x, d):
    x, w = _windows(x, d)
    return _pad(x, None if w is None else w.min(axis=-1), d)


def ts_max(x, d):
    x, w = _windows(x, d)
    return _pad(x, None if w is None else w.max(axis=-1), d)


def _arg(x, d, fn):
    x, w = _windows(x, d)
    if w is None:
        return _pad(x, None, d)
    has_nan = np.isnan(w).any(axis=-1)
    position = fn(np.where(np.isnan(w), 0.0, w), axis=-1) + 1.0
    return _pad(x, np.where(has_nan, np.nan, position), d)


def ts_argmin(x, d):
    return _arg(x, d, np.argmin)


def ts_argmax(x, d):
    return _arg(x, d, np.argmax)


def ts_rank(x, d):
    x, w = _windows(x, d)
    if w is None:
        return _pad(x, None, d)
    last = w[..., -1:]
    less = (w < last).sum(axis=-1)
    equal = (w == last).sum(axis=-1)
    rank = (less + (equal + 1) / 2) / d
    return _pad(x, np.where(np.isnan(w).any(axis=-1), np.nan, rank), d)


def ts_product(x, d):
    x, w = _windows(x, d)
    return _pad(x, None if w is None else w.prod(axis=-1), d)


def decay_linear(x, d):
    x, w = _windows(x, d)
    weights = np.arange(1, d + 1, dtype=np.float64)
    return _pad(x, None if w is None else (w @ weights) / (d * (d + 1) / 2), d)


def _comoment(x, y, d):
    x, wx = _windows(x, d)
    _, wy = _windows(_panel(y), d)
    if wx is None or d < 2:
        return x, None, None, None, None
    dx = wx - wx.mean(axis=-1, keepdims=True)
    dy = wy - wy.mean(axis=-1, keepdims=True)
    flat = _flat(wx) | _flat(wy)
    return x, (dx * dy).sum(axis=-1), (dx * dx).sum(axis=-1), (dy * dy).sum(axis=-1), flat


def covariance(x, y, d):
    x, c, _, _, flat = _comoment(x, y, d)
    if c is None:
        return _pad(x, None, d)
    # A flat window makes the covariance exactly 0 unless a window holds a NaN (an
    # infinity in the other window does not count: 0 * inf is NaN, but its deviation is 0).
    _, wx = _windows(x, d)
    _, wy = _windows(_panel(y), d)
    holds_nan = np.isnan(wx).any(axis=-1) | np.isnan(wy).any(axis=-1)
    return _pad(x, np.where(flat & ~holds_nan, 0.0, c / (d - 1)), d)


def correlation(x, y, d):
    x, c, vx, vy, flat = _comoment(x, y, d)
    if c is None:
        return _pad(x, None, d)
    with np.errstate(all="ignore"):
        return _pad(x, np.where(flat, np.nan, c / np.sqrt(vx * vy)), d)


# -- cross sections (each row on its own, across assets) ---------------------------------


def rank(x):
    x = _panel(x)
    out = np.full(x.shape, np.nan)
    for t, row in enumerate(x):
        valid = ~np.isnan(row)
        values = row[valid]
        if values.size == 0:
            continue
        order = np.sort(values)
        less = np.searchsorted(order, values, side="left")
        leq = np.searchsorted(order, values, side="right")
        out[t, valid] = (less + leq + 1) / 2 / values.size
    return out


def scale(x, a=1.0):
    x = _panel(x)
    with np.errstate(all="ignore"):
        return x / np.nansum(np.abs(x), axis=1, keepdims=True) * a


def _row_mean(x):
    with np.errstate(all="ignore"), _quiet():
        return np.nanmean(x, axis=1, keepdims=True)


def demean(x):
    x = _panel(x)
    return x - _row_mean(x)


def zscore(x):
    x = _panel(x)
    with np.errstate(all="ignore"), _quiet():
        std = np.nanstd(x, axis=1, ddof=1, keepdims=True)
        flat = np.nanmax(x, axis=1, keepdims=True) == np.nanmin(x, axis=1, keepdims=True)
        return (x - _row_mean(x)) / np.where(flat & (np.sum(~np.isnan(x), axis=1, keepdims=True) > 1), 0.0, std)


def indneutralize(x, g):
    x, g = _panel(x), _panel(g)
    out = np.full(x.shape, np.nan)
    for t in range(x.shape[0]):
        for label in np.unique(g[t][~np.isnan(g[t])]):
            members = g[t] == label
            with np.errstate(all="ignore"), _quiet():
                out[t, members] = x[t, members] - np.nanmean(x[t, members])
    return out


@contextlib.contextmanager
def _quiet():
    """Silences numpy's warnings about all-NaN rows and empty slices."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _frame_aware(fn):
    """Lets an op take pandas DataFrames (or Series): the result has the first one's
    index and columns."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        frame = next((a for a in args if hasattr(a, "to_numpy") and hasattr(a, "index")), None)
        if frame is None:
            return fn(*args, **kwargs)
        values = [a.to_numpy(dtype=np.float64) if hasattr(a, "to_numpy") else a for a in args]
        out = fn(*values, **kwargs)
        import pandas as pd

        if getattr(frame, "ndim", 2) == 1:
            return pd.Series(np.asarray(out).reshape(len(frame)), index=frame.index, name=frame.name)
        return pd.DataFrame(out, index=frame.index, columns=frame.columns)

    return wrapper


__all__ = [
    name for name, value in list(globals().items())
    if callable(value) and not name.startswith("_")
    and getattr(value, "__module__", None) in (__name__, "sray_transpiler.elementwise")
]
for _name in __all__:
    globals()[_name] = _frame_aware(globals()[_name])


def matmul(a, b):
    """`a @ b` of 2-D float64 arrays: (m, k) @ (k, n) -> (m, n), as np.matmul.

    Not wrapped by `_frame_aware` (its result is not shaped like its first argument):
    with DataFrames the result takes the rows of `a` and the columns of `b`."""
    out = np.matmul(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
    if hasattr(a, "index") and hasattr(b, "columns"):
        import pandas as pd

        return pd.DataFrame(out, index=a.index, columns=b.columns)
    return out


__all__.append("matmul")
