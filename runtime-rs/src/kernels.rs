//! Array kernels. Elementwise work is one pass over memory, split across rayon threads
//! once it is large enough to pay for the split.
//!
//! A generated node whose formula is elementwise becomes a single call to [`map`] with a
//! closure holding the whole formula, so `(a + b) * c` allocates one output and no
//! temporaries.

use crate::{Panel, View};
use ndarray::{Array2, ShapeBuilder};
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Elements per parallel chunk; below twice this a map runs on the calling thread.
const CHUNK: usize = 1 << 15;

/// True when all panels have the same shape and the same contiguous memory order, so that
/// element `i` of each flat slice is the same (t, n) cell.
fn same_flat_layout(args: &[View<'_>]) -> bool {
    let first = &args[0];
    args.iter().all(|a| {
        a.shape() == first.shape()
            && a.as_slice_memory_order().is_some()
            && a.is_standard_layout() == first.is_standard_layout()
    })
}

/// `v`, with every NaN made the one quiet NaN `f64::NAN`. Where two NaNs meet in `a + b`
/// or `a * b`, the CPU keeps one operand's NaN, and the compiler orders the operands of
/// these commutative ops as it likes, differently in a vectorized loop and in its
/// remainder; `map` flattens a panel, so which loop a cell falls in depends on its row,
/// and the sign of such a NaN would change with where a computation starts (an append).
/// One compare and blend per value, next to the memory traffic of the loop.
#[inline(always)]
fn canonical_nan(v: f64) -> f64 {
    if v.is_nan() {
        f64::NAN
    } else {
        v
    }
}

/// Applies `f` to the cells of `K` same-shaped panels: `out[t, n] = f([a[t, n], b[t, n], ...])`,
/// NaNs made `f64::NAN` (see `canonical_nan`).
///
/// The output keeps the memory order (C or Fortran) of the first argument when all
/// arguments share it; mixed layouts are first brought to C order.
///
/// Arguments are `&Panel`s or [`View`]s (all of one kind).
///
/// # Panics
/// If the panels differ in shape; the engine checks shapes before any kernel runs.
pub fn map<'a, const K: usize, V, F>(args: [V; K], f: F) -> Panel
where
    V: Into<View<'a>>,
    F: Fn([f64; K]) -> f64 + Sync,
{
    const { assert!(K > 0, "map needs at least one argument") };
    let args: [View<'a>; K] = args.map(Into::into);
    if !same_flat_layout(&args) {
        let owned: Vec<Panel> = args
            .iter()
            .map(|a| a.as_standard_layout().into_owned())
            .collect();
        assert!(
            owned.iter().all(|a| a.shape() == owned[0].shape()),
            "map over panels of different shapes"
        );
        let refs: [View<'_>; K] = std::array::from_fn(|k| owned[k].view());
        return map(refs, f);
    }
    let dim = args[0].raw_dim();
    let fortran = !args[0].is_standard_layout();
    let slices: [&[f64]; K] = std::array::from_fn(|k| args[k].as_slice_memory_order().unwrap());
    let len = slices[0].len();

    let mut out: Vec<f64> = crate::pool::take(len);
    let fill = |start: usize, chunk: &mut [MaybeUninit<f64>]| {
        let parts: [&[f64]; K] = std::array::from_fn(|k| &slices[k][start..start + chunk.len()]);
        for (j, o) in chunk.iter_mut().enumerate() {
            o.write(canonical_nan(f(std::array::from_fn(|k| parts[k][j]))));
        }
    };
    let spare = &mut out.spare_capacity_mut()[..len];
    if len < 2 * CHUNK {
        fill(0, spare);
    } else {
        spare
            .par_chunks_mut(CHUNK)
            .enumerate()
            .for_each(|(c, chunk)| fill(c * CHUNK, chunk));
    }
    // SAFETY: `fill` wrote every one of the first `len` elements above.
    unsafe { out.set_len(len) };

    let shape = (dim[0], dim[1]);
    let result = if fortran {
        Array2::from_shape_vec(shape.f(), out)
    } else {
        Array2::from_shape_vec(shape, out)
    };
    result.expect("output length equals the input length")
}

/// The last `rows` rows of `x` (all of them when it has fewer): what an op of a kernel
/// reads of an operand when the kernel computes only its node's last rows (see
/// `engine::Kernel`).
pub fn tail<'a>(x: impl Into<View<'a>>, rows: usize) -> View<'a> {
    let x = x.into();
    let t = x.nrows();
    x.slice_move(ndarray::s![t - rows.min(t).., ..])
}

/// Bitwise equality of two panels (shape and every bit of every value, NaN payloads
/// included): the test behind early cutoff.
pub fn bitwise_eq(a: &Panel, b: &Panel) -> bool {
    a.shape() == b.shape()
        && a.iter()
            .zip(b.iter())
            .all(|(x, y)| x.to_bits() == y.to_bits())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn map_combines_cells() {
        let a = array![[1.0, 2.0], [3.0, 4.0]];
        let b = array![[10.0, 20.0], [30.0, 40.0]];
        let out = map([&a, &b], |[x, y]| x * y + 1.0);
        assert_eq!(out, array![[11.0, 41.0], [91.0, 161.0]]);
    }

    #[test]
    fn map_keeps_fortran_order_and_handles_mixed_layouts() {
        let c = Array2::from_shape_fn((3, 4), |(t, n)| (t * 10 + n) as f64);
        let f = {
            let mut f = Array2::zeros((3, 4).f());
            f.assign(&c);
            f
        };
        let same = map([&f, &f], |[x, y]| x + y);
        assert!(!same.is_standard_layout());
        assert_eq!(same, &c * 2.0);
        let mixed = map([&c, &f], |[x, y]| x - y);
        assert_eq!(mixed, Array2::<f64>::zeros((3, 4)));
    }

    #[test]
    fn large_maps_run_in_parallel_chunks_and_agree() {
        let a = Array2::from_shape_fn((300, 500), |(t, n)| (t as f64) - (n as f64) * 0.5);
        let out = map([&a], |[x]| x * x);
        assert_eq!(out, a.mapv(|x| x * x));
    }

    #[test]
    fn large_maps_are_split_across_threads() {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Mutex;
        use std::thread::ThreadId;
        use std::time::{Duration, Instant};
        static SEEN: Mutex<Vec<ThreadId>> = Mutex::new(Vec::new());
        static WAITED: AtomicBool = AtomicBool::new(false);
        let seen = || SEEN.lock().unwrap().len();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let a = Array2::<f64>::zeros((4, CHUNK));
        pool.install(|| {
            map([&a], |[x]| {
                let id = std::thread::current().id();
                let mut s = SEEN.lock().unwrap();
                if !s.contains(&id) {
                    s.push(id);
                }
                drop(s);
                // The first element waits (bounded) for a second thread to join in.
                if !WAITED.swap(true, Ordering::SeqCst) {
                    let deadline = Instant::now() + Duration::from_secs(10);
                    while seen() < 2 && Instant::now() < deadline {
                        std::thread::yield_now();
                    }
                }
                x
            })
        });
        assert!(
            seen() >= 2,
            "a map over {} elements ran on one thread",
            4 * CHUNK
        );
    }

    #[test]
    fn bitwise_eq_sees_nan_and_signed_zero() {
        let a = array![[f64::NAN, 0.0]];
        assert!(bitwise_eq(&a, &a.clone()));
        assert!(!bitwise_eq(&a, &array![[f64::NAN, -0.0]]));
    }
}
