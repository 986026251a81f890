//! `sray-runtime`: the thick core under every crate that `sray-gen` generates.
//!
//! A generated crate is mostly wiring: a static [`engine::GraphSpec`] describing the DAG,
//! one kernel function per node (built from [`kernels`] and [`scalar`]), and thin PyO3 /
//! Lambda layers. Everything that is the same for every DAG lives here:
//!
//! - [`engine`]: lazy, parallel (rayon, in-degree scheduled), incremental evaluation with
//!   early cutoff and per-node statistics;
//! - [`kernels`]: elementwise maps, one fused loop split across threads;
//! - [`ts`], [`cs`]: time-series and cross-sectional kernels, over the drivers of [`layout`];
//! - `linalg` (feature `linalg`): `a @ b`, a pure-Rust GEMM;
//! - [`scalar`]: the scalar meaning of each elementwise op of docs/ops.md;
//! - [`error`]: the one error enum of the runtime;
//! - `python` (feature `python`): numpy conversion and exception mapping for PyO3 modules;
//! - [`pool`]: the process-wide pool of freed panel buffers;
//! - `service` (feature `service`): serving JSON requests, whatever transport carries
//!   them: warm engines, the request and response documents, typed failures;
//! - `lambda` (feature `lambda`): the AWS Lambda transport behind a generated `bootstrap`.

pub mod cache;
pub mod cs;
pub mod engine;
pub mod error;
pub mod exact;
pub mod kernels;
pub mod layout;
#[cfg(feature = "linalg")]
pub mod linalg;
pub mod pool;
pub mod scalar;
pub mod ts;

#[cfg(feature = "python")]
pub mod python;

#[cfg(feature = "service")]
pub mod service;

#[cfg(feature = "lambda")]
pub mod lambda;

pub use engine::{Engine, GraphSpec, NodeSpec, NodeStats};
pub use error::{Error, Result};

/// Every node value: a float64 panel of shape (T, N), rows are time, columns are assets.
pub type Panel = ndarray::Array2<f64>;

/// What kernels read: a view of a panel, or of its last rows (an append computes only the
/// new rows of a node from the rows of its inputs within the node's lookback). Kernels
/// take `impl Into<View>`, so a `&Panel` is accepted as well.
pub type View<'a> = ndarray::ArrayView2<'a, f64>;
