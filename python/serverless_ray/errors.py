"""The exceptions of compiled modules and of the reference engine.

Each class matches one variant of the Rust runtime's error enum (runtime-rs/src/error.rs)
and derives from the builtin exception a Python user would expect.
"""


class SrayError(Exception):
    """Base class of every serverless_ray error."""


class UnknownNameError(SrayError, LookupError):
    """A node or input name that the DAG does not have."""


class MissingInputError(SrayError, LookupError):
    """A node was asked for, but an input it reads has not been given."""


class ShapeError(SrayError, ValueError):
    """An input whose shape is not (T,) or (T, N), or differs from the other inputs."""


class DTypeError(SrayError, TypeError):
    """An input that is not a float64 numpy array."""


class ComputeError(SrayError, RuntimeError):
    """A kernel failed while computing a node."""
