"""Backend: IR -> the text of a Rust crate (see rust.py and templates/rust/)."""
