"""Toolchain: crate files on disk -> rustfmt -> maturin wheel -> installed module."""
