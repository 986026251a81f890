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

use crate::Panel;
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

fn alloc_like(x: &Panel) -> Panel {
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
pub fn rolling<R: Rolling>(x: &Panel, make: impl Fn() -> R + Sync) -> Panel {
    rolling_n([x], make, |state: &mut R, [v]| state.push(v))
}

/// Runs one `Rolling2` state per column over the pairs of columns of `x` and `y`.
pub fn rolling2<R: Rolling2>(x: &Panel, y: &Panel, make: impl Fn() -> R + Sync) -> Panel {
    rolling_n([x, y], make, |state: &mut R, [a, b]| state.push(a, b))
}

fn rolling_n<const K: usize, R: Send>(
    args: [&Panel; K],
    make: impl Fn() -> R + Sync,
    step: impl Fn(&mut R, [f64; K]) -> f64 + Sync,
) -> Panel {
    assert!(
        args.iter().all(|a| a.dim() == args[0].dim()),
        "panels of different shapes"
    );
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
    args: [&Panel; K],
    d: usize,
    f: impl Fn([&[f64]; K], &mut [f64]) + Sync,
) -> Panel {
    assert!(d >= 1, "windows are at least 1");
    assert!(
        args.iter().all(|a| a.dim() == args[0].dim()),
        "panels of different shapes"
    );
    let (t, n) = args[0].dim();
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

/// Applies `f(row, out_row)` to every row of `x` (and of `g`, when given), in parallel.
/// Rows are gathered into contiguous buffers when the panel is not C-order.
pub fn by_row(
    x: &Panel,
    g: Option<&Panel>,
    f: impl Fn(&[f64], Option<&[f64]>, &mut [f64]) + Sync,
) -> Panel {
    let x = x.as_standard_layout();
    let g = g.map(|g| g.as_standard_layout());
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
