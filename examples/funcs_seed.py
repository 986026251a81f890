"""The factor functions of the seed's second sample, in the function form.

Each module-level function is a node; its parameters name what it reads: other
functions (nodes) or, when no function has that name, inputs. `sray-gen build
examples/funcs_seed.py` makes the module `funcs_seed_rs` with the class `FuncsSeed`.
"""


def f1(open, close):
    """Close minus open."""
    return close - open


def f2(high, low):
    """The day's range."""
    return high - low


def f3(f1, f2):
    """f1 scaled by the range."""
    return f1 * f2


def _clip(x, bound):
    # A helper (leading underscore): inlined where it is called, not a node.
    return minimum(maximum(x, -bound), bound)  # noqa: F821 - resolved by sray-gen


def f4(f3, f1):
    """f3, clipped to +-1, where f1 is positive."""
    return where(f1 > 0, _clip(f3, 1.0), 0.0)  # noqa: F821
