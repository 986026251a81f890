"""The float64 meaning of the elementwise ops, on numpy arrays and scalars.

The compiler folds constant expressions with these functions (passes/fold_constants.py)
and `serverless_ray.ops`, the numpy reference of every op, re-exports them; the Rust
scalar functions (runtime-rs/src/scalar.rs) are tested against them. Values are float64;
comparisons and logical ops return 1.0 / 0.0; truthiness is "nonzero and not NaN".
"""

from __future__ import annotations

import numpy as np


def _f(x):
    return np.asarray(x, dtype=np.float64)


def truthy(x):
    x = _f(x)
    return (x != 0) & ~np.isnan(x)


def _flag(b):
    return np.asarray(b, dtype=np.float64)


def add(a, b):
    return np.add(_f(a), _f(b))


def sub(a, b):
    return np.subtract(_f(a), _f(b))


def mul(a, b):
    return np.multiply(_f(a), _f(b))


def div(a, b):
    return np.divide(_f(a), _f(b))


def pow(a, b):  # noqa: A001 - the op's name
    return np.power(_f(a), _f(b))


def neg(a):
    return np.negative(_f(a))


def lt(a, b):
    return _flag(_f(a) < _f(b))


def le(a, b):
    return _flag(_f(a) <= _f(b))


def gt(a, b):
    return _flag(_f(a) > _f(b))


def ge(a, b):
    return _flag(_f(a) >= _f(b))


def eq(a, b):
    return _flag(_f(a) == _f(b))


def ne(a, b):
    return _flag(_f(a) != _f(b))


def and_(a, b):
    return _flag(truthy(a) & truthy(b))


def or_(a, b):
    return _flag(truthy(a) | truthy(b))


def not_(a):
    return _flag(~truthy(a))


def where(cond, a, b):
    return np.where(truthy(cond), _f(a), _f(b))


def abs(x):  # noqa: A001 - the op's name
    return np.abs(_f(x))


def log(x):
    return np.log(_f(x))


def exp(x):
    return np.exp(_f(x))


def sqrt(x):
    return np.sqrt(_f(x))


def sign(x):
    return np.sign(_f(x))


def minimum(a, b):
    return np.minimum(_f(a), _f(b))


def maximum(a, b):
    return np.maximum(_f(a), _f(b))


def signedpower(x, a):
    x = _f(x)
    return np.sign(x) * np.abs(x) ** _f(a)
