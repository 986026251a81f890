//! Drivers that walk a panel's columns (time series) or rows (cross sections) in the
//! order its memory is laid out, in parallel, so kernels only describe one column's or
//! one row's computation.
//!
//! A time-series kernel is a per-column state machine ([`Rolling`]): it is fed the
//! column's values oldest first and answers one output per value. On a C-order panel a
//! task takes a block of adjacent columns and advances all their states row by row, so
//! memory is read contiguously; on a Fortran-order panel each column is contiguous.
//!
//! A short window is cheaper computed directly than through a state machine: output row
//! `t` of a [`window_rows`] kernel is a function of input rows `t - d + 1 ..= t` only, which
//! on a C-order panel are one contiguous slice, so the kernel loops over them across all
//! columns at once (loops the compiler vectorizes) and rows split freely across threads.

use crate::{Panel, View};
use ndarray::{Array2, ArrayView2, Axis, ShapeBuilder};
use rayon::prelude::*;

/// One column's state of a one-input time-series kernel.
pub trait Rolling: Send {
    /// Feeds the next value (oldest first); returns the output at that time step.
    fn push(&mut self, x: f64) -> f64;
}

/// One column's state of a two-input time-series kernel (correlation, covariance).
pub trait Rolling2: Send {
    fn push(&mut self, x: f64, y: f64) -> f64;
}

/// Columns per task on C-order panels: enough for contiguous reads, few enough to split.
const BLOCK: usize = 64;

fn alloc_like(x: View<'_>) -> Panel {
    let (t, n) = x.dim();
    let buffer = crate::pool::zeros(t * n);
    let shaped = if x.is_standard_layout() || x.ncols() <= 1 {
        Array2::from_shape_vec((t, n), buffer)
    } else {
        Array2::from_shape_vec((t, n).f(), buffer)
    };
    shaped.expect("buffer of t * n values")
}

/// Runs one `Rolling` state per column over `x`.
pub fn rolling<'a, R: Rolling>(x: impl Into<View<'a>>, make: impl Fn() -> R + Sync) -> Panel {
    rolling_n([x.into()], make, |state: &mut R, [v]| state.push(v))
}

/// Runs one `Rolling2` state per column over the pairs of columns of `x` and `y`.
pub fn rolling2<'a, R: Rolling2>(
    x: impl Into<View<'a>>,
    y: impl Into<View<'a>>,
    make: impl Fn() -> R + Sync,
) -> Panel {
    rolling_n([x.into(), y.into()], make, |state: &mut R, [a, b]| {
        state.push(a, b)
    })
}

/// The (t, n) shape the kernel's array arguments share (they always do: the compiler
/// checks operand dims), asserted.
fn same_shape<const K: usize>(args: &[View<'_>; K]) -> (usize, usize) {
    let dim = args[0].dim();
    assert!(
        args.iter().all(|a| a.dim() == dim),
        "panels of different shapes"
    );
    dim
}

fn rolling_n<const K: usize, R: Send>(
    args: [View<'_>; K],
    make: impl Fn() -> R + Sync,
    step: impl Fn(&mut R, [f64; K]) -> f64 + Sync,
) -> Panel {
    same_shape(&args);
    let mut out = alloc_like(args[0]);
    let (t, n) = out.dim();
    if t == 0 || n == 0 {
        return out;
    }
    if out.is_standard_layout() && n > 1 {
        // C order: a task per block of columns, advancing row by row.
        let blocks: Vec<usize> = (0..n).step_by(BLOCK).collect();
        let results: Vec<(usize, Array2<f64>)> = blocks
            .into_par_iter()
            .map(|start| {
                let end = (start + BLOCK).min(n);
                let views: [ArrayView2<f64>; K] =
                    std::array::from_fn(|k| args[k].slice(ndarray::s![.., start..end]));
                let mut states: Vec<R> = (start..end).map(|_| make()).collect();
                let mut block = Array2::zeros((t, end - start));
                for row in 0..t {
                    for (j, state) in states.iter_mut().enumerate() {
                        block[[row, j]] = step(state, std::array::from_fn(|k| views[k][[row, j]]));
                    }
                }
                (start, block)
            })
            .collect();
        for (start, block) in results {
            out.slice_mut(ndarray::s![.., start..start + block.ncols()])
                .assign(&block);
        }
    } else {
        out.axis_iter_mut(Axis(1))
            .into_par_iter()
            .enumerate()
            .for_each(|(j, mut column)| {
                let mut state = make();
                for row in 0..t {
                    column[row] = step(&mut state, std::array::from_fn(|k| args[k][[row, j]]));
                }
            });
    }
    out
}

/// Runs a direct window kernel: `f(windows, out_row)` writes output row `t` (all `n`
/// columns) from `windows[k]`, the `d` rows `t - d + 1 ..= t` of argument `k` as one
/// C-order slice of `d * n` values (oldest row first). Rows before the first full
/// window are NaN. Rows run in parallel; the output is C-order.
pub fn window_rows<const K: usize>(
    args: [View<'_>; K],
    d: usize,
    f: impl Fn([&[f64]; K], &mut [f64]) + Sync,
) -> Panel {
    assert!(d >= 1, "windows are at least 1");
    let (t, n) = same_shape(&args);
    let owned: [_; K] = std::array::from_fn(|k| args[k].as_standard_layout());
    let slices: [&[f64]; K] =
        std::array::from_fn(|k| owned[k].as_slice().expect("standard layout is contiguous"));
    par_rows(t, n, |row, o| {
        if row + 1 < d {
            o.fill(f64::NAN);
        } else {
            let span = (row + 1 - d) * n..(row + 1) * n;
            f(std::array::from_fn(|k| &slices[k][span.clone()]), o);
        }
    })
}

/// A (t, n) C-order panel whose rows `f(row, values)` fills, in parallel. Each row is
/// zeroed just before `f` gets it, by the thread that fills it: no serial pass over the
/// whole buffer first (for a fresh buffer, that pass would also take every page fault
/// on one thread).
fn par_rows(t: usize, n: usize, f: impl Fn(usize, &mut [f64]) + Sync) -> Panel {
    let len = t * n;
    let mut out: Vec<f64> = crate::pool::take(len);
    if n > 0 {
        out.spare_capacity_mut()[..len]
            .par_chunks_mut(n)
            .with_min_len(4)
            .enumerate()
            .for_each(|(row, o)| {
                for v in o.iter_mut() {
                    v.write(0.0);
                }
                // SAFETY: every element of `o` was written just above, and
                // MaybeUninit<f64> has the layout of f64.
                let o = unsafe { std::slice::from_raw_parts_mut(o.as_mut_ptr().cast::<f64>(), n) };
                f(row, o);
            });
    }
    // SAFETY: the rows above cover the first `len` elements, all written.
    unsafe { out.set_len(len) };
    Array2::from_shape_vec((t, n), out).expect("t * n values")
}

/// Columns per task of [`by_column`] on C-order panels.
const COLUMN_BLOCK: usize = 16;

/// A raw pointer that tasks writing disjoint parts of one buffer may share.
#[derive(Clone, Copy)]
struct SharedOut(*mut f64);
// SAFETY: only used by `by_column`, whose tasks write disjoint columns.
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

impl SharedOut {
    /// Writes `v` at element `i`.
    ///
    /// # Safety
    /// `i` is inside the buffer, and no other task writes element `i`.
    unsafe fn write(&self, i: usize, v: f64) {
        unsafe { self.0.add(i).write(v) }
    }
}

/// Runs a column kernel: `f(columns, out)` fills the output column from the same column
/// of each argument, all as contiguous slices of `t` values (oldest first). On C-order
/// panels a task copies a block of adjacent columns into contiguous scratch columns,
/// runs `f` on each, and writes the results back into its own columns of the output.
/// The output is C-order.
pub fn by_column<const K: usize>(
    args: [View<'_>; K],
    f: impl Fn([&[f64]; K], &mut [f64]) + Sync,
) -> Panel {
    by_column_block(args, |inputs, width, out| {
        let t = out.len() / width;
        if t == 0 {
            return;
        }
        for (c, o) in out.chunks_exact_mut(t).enumerate() {
            f(std::array::from_fn(|k| &inputs[k][c * t..][..t]), o);
        }
    })
}

/// [`by_column`] for kernels that interleave several columns (independent dependency
/// chains the CPU overlaps): `f(inputs, width, out)` gets a block of `width` adjacent
/// columns, column `c` of argument `k` at `inputs[k][c * t..][..t]`, and fills column
/// `c` of the output at `out[c * t..][..t]`.
pub fn by_column_block<const K: usize>(
    args: [View<'_>; K],
    f: impl Fn([&[f64]; K], usize, &mut [f64]) + Sync,
) -> Panel {
    let (t, n) = same_shape(&args);
    let owned: [_; K] = std::array::from_fn(|k| args[k].as_standard_layout());
    let slices: [&[f64]; K] =
        std::array::from_fn(|k| owned[k].as_slice().expect("standard layout is contiguous"));
    let len = t * n;
    let mut out: Vec<f64> = crate::pool::take(len);
    let shared = SharedOut(out.as_mut_ptr());
    (0..n)
        .step_by(COLUMN_BLOCK)
        .collect::<Vec<_>>()
        .into_par_iter()
        .for_each(|start| {
            let width = COLUMN_BLOCK.min(n - start);
            // Scratch columns: input k's column c at [(k * width + c) * t ..][..t].
            let mut scratch = vec![0.0f64; (K + 1) * width * t];
            let (inputs, result) = scratch.split_at_mut(K * width * t);
            for row in 0..t {
                for (k, slice) in slices.iter().enumerate() {
                    let values = &slice[row * n + start..row * n + start + width];
                    for (c, &v) in values.iter().enumerate() {
                        inputs[(k * width + c) * t + row] = v;
                    }
                }
            }
            let columns: [&[f64]; K] =
                std::array::from_fn(|k| &inputs[k * width * t..][..width * t]);
            f(columns, width, result);
            for row in 0..t {
                for c in 0..width {
                    // SAFETY: cell (row, start + c) is inside the buffer of t * n values,
                    // and only this task writes column start + c.
                    unsafe { shared.write(row * n + start + c, result[c * t + row]) };
                }
            }
        });
    // SAFETY: the tasks above wrote every cell of every column.
    unsafe { out.set_len(len) };
    Array2::from_shape_vec((t, n), out).expect("t * n values")
}

/// Applies `f(row, out_row)` to every row of `x` (and of `g`, when given), in parallel.
/// Rows are gathered into contiguous buffers when the panel is not C-order.
pub fn by_row(
    x: View<'_>,
    g: Option<View<'_>>,
    f: impl Fn(&[f64], Option<&[f64]>, &mut [f64]) + Sync,
) -> Panel {
    let x = x.as_standard_layout();
    let g = g.as_ref().map(|g| g.as_standard_layout());
    let (t, n) = x.dim();
    par_rows(t, n, |row, out| {
        let xs = x.row(row);
        let gs = g.as_ref().map(|g| g.row(row));
        f(
            xs.as_slice().expect("standard layout rows are contiguous"),
            gs.as_ref().map(|r| r.as_slice().expect("contiguous")),
            out,
        )
    })
}
