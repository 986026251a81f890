//! Time-series kernels: each column on its own, along time (docs/ops.md).
//!
//! A window that is not yet full, or that holds a NaN, gives NaN (pandas `min_periods=d`).
//!
//! Every kernel is row-local: the value at row `t` is a function, bit for bit, of the
//! values of its window (rows `t - d + 1 ..= t`; `t - d` and `t` for `delay`, `delta`)
//! and of nothing else: not of where the series starts, of NaN or infinities before the
//! window, nor of how the work is split (docs/ops.md, "Row-local determinism"). How each
//! path keeps it, and its cost per value:
//!
//! - Windows of at most [`SMALL_WINDOW`] values, every op: computed directly from the
//!   window's rows ([`crate::layout::window_rows`]), in order, O(d) per step, each row a
//!   loop across columns that the compiler vectorizes; bitwise equal to a plain two-pass
//!   computation (numpy's), so values that are mathematically tied stay tied for a later
//!   `rank` instead of being split by rounding noise.
//! - `ts_sum`, `ts_mean`, `decay_linear`, `ts_std`, `covariance`, `correlation` over
//!   longer windows: exact window sums ([`crate::exact`]), O(1) per step. The running
//!   state is the exact sum of the window's values (for the moments, of `x`, `y` and of
//!   the products `x·y`, `x²`, `y²` split exactly into two doubles; for `decay_linear`, of
//!   `k·x_k` too), so what is rounded from it depends on the window alone: `ts_sum` is the
//!   correctly rounded sum (Python's `math.fsum`), `ts_mean` that over `d`,
//!   `decay_linear` the correctly rounded weighted sum over `d(d+1)/2`, and the moments
//!   come from the correctly rounded `n·Σxy - Σx·Σy` ([`exact::co_moment`]). NaN, ±inf and
//!   values of magnitude at least [`exact::HUGE`] add 0 to the sums and are counted: a
//!   window holding a NaN is NaN, one holding ±inf or a huge value is computed directly
//!   from its values as IEEE arithmetic does (O(d) per step while it lasts). The columns
//!   advance [`exact::LANES`] at a time, each step's exact arithmetic a loop across them
//!   that vectorizes; on x86-64, copies compiled for AVX2 and FMA run where the CPU has
//!   them (same bits).
//!   After an append, their `<op>_from` versions ([`ts_sum_from`], ...) continue from
//!   the sums a node's kernel kept after its previous run ([`crate::cache::OpState`]: the
//!   exact sums of the last `d - 1` values, counts, flat-run lengths), O(new rows) per
//!   column instead of O(d); exact sums, so the same bits.
//! - `ts_product`, every window: the window's values multiplied oldest first, O(d) per
//!   step (a running product would need divisions, which zeros break, or partial products
//!   whose bits depend on where the series started).
//! - `ts_min`, `ts_max`, `ts_argmin`, `ts_argmax` over windows longer than
//!   [`DIRECT_ORDER_WINDOW`]: monotonic deques, O(1) amortized; `ts_rank`: the window kept
//!   sorted, a binary search and an insert that shifts up to d values, O(d) per step.
//!   Both answer exact functions of the window.
//! - `delay`, `delta`: a shifted copy.
//!
//! Flat windows are detected exactly (the last `d` values are all equal), and there
//! `ts_std` and `covariance` are exactly 0 and `correlation` is NaN: rounding would leave
//! noise where the true variance is 0, and a later `rank` would reorder that noise.

use crate::cache::OpState;
use crate::exact::{self, co_moment_lanes, two_prod_with, LaneSums, Partials, LANES};
use crate::layout::{by_column, by_column_block, rolling, window_rows, Rolling};
use crate::{Panel, View};
use ndarray::{s, Array2};
use rayon::prelude::*;
use std::collections::VecDeque;

/// Windows up to this size are recomputed directly at every step.
pub const SMALL_WINDOW: usize = 16;

/// Windows up to this size take the direct path for extremes and `ts_rank` too: a
/// comparison per value is cheaper than a deque or a sorted window at this size.
pub const DIRECT_ORDER_WINDOW: usize = 64;

/// A view with at most this many full windows takes the direct path for extremes and
/// `ts_rank` at any window: after an append, a kernel asks for a few new rows, and
/// building a deque or a sorted window over the `d - 1` rows before them would cost more
/// than comparing each new row's window directly. Both paths give the same bits.
const FEW_ROWS: usize = 16;

/// Whether extremes and `ts_rank` over windows of `d` rows of `x` go the direct way.
fn direct_order(x: View<'_>, d: usize) -> bool {
    window_len(d) <= DIRECT_ORDER_WINDOW || x.nrows().saturating_sub(d - 1) <= FEW_ROWS
}

/// Columns per tile of a direct kernel, so that its per-column temporaries stay in L1.
const TILE: usize = 256;

/// The `d` rows of a window (oldest first), each cut to the columns `cols`.
fn window_tile<'a>(
    w: &'a [f64],
    n: usize,
    cols: std::ops::Range<usize>,
) -> impl Iterator<Item = &'a [f64]> + 'a {
    w.chunks_exact(n).map(move |row| &row[cols.clone()])
}

/// Column tiles of a row of `n` values.
fn tiles(n: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    (0..n).step_by(TILE).map(move |j| j..(j + TILE).min(n))
}

/// Direct `ts_sum`: Σ of the window's values oldest first, as [`plain_sum`] (NaN in, NaN out).
fn direct_sum(w: &[f64], out: &mut [f64]) {
    out.fill(0.0);
    for row in w.chunks_exact(out.len()) {
        for (o, &v) in out.iter_mut().zip(row) {
            *o += v;
        }
    }
}

/// `v` where it is not negative, 0.0 where it is (rounding can leave a sum of squares a
/// little below 0): NaN stays NaN, unlike `f64::max`, which would turn the NaN moments of
/// a window holding an infinity into a standard deviation of 0.
#[inline(always)]
fn non_negative(v: f64) -> f64 {
    if v < 0.0 {
        0.0
    } else {
        v
    }
}

/// 1.0 where `c`, else 0.0: flags kept as f64 so that loops stay one lane width and
/// vectorize.
#[inline(always)]
fn flag(c: bool) -> f64 {
    if c {
        1.0
    } else {
        0.0
    }
}

/// Direct two-pass moments of short windows, per column in the order of
/// `Moments::exact_plain`: `value(c, m2x, m2y)` where both windows are free of NaN and
/// not flat, `flat_value` where either holds `d` equal values, NaN where either holds a
/// NaN. `y = None` is the one-panel case (`ts_std`: y is x). `value` runs in a loop of
/// its own with no branch around it, so that its divisions and square roots vectorize.
fn direct_moments(
    x: &[f64],
    y: Option<&[f64]>,
    out: &mut [f64],
    flat_value: f64,
    value: impl Fn(f64, f64, f64) -> f64,
) {
    const L: usize = 4;
    let n = out.len();
    let y = y.unwrap_or(x);
    let full = n - n % L;
    for j in (0..full).step_by(L) {
        let cell: &mut [f64; L] = (&mut out[j..j + L]).try_into().expect("L values");
        moments_lanes::<L>(x, y, n, j, cell, flat_value, &value);
    }
    for j in full..n {
        let cell: &mut [f64; 1] = (&mut out[j..j + 1]).try_into().expect("1 value");
        moments_lanes::<1>(x, y, n, j, cell, flat_value, &value);
    }
}

/// [`direct_moments`] of the `W` adjacent columns starting at `j`: the accumulators are
/// `W`-wide arrays, which stay in vector registers across the window's rows.
#[inline(always)]
fn moments_lanes<const W: usize>(
    x: &[f64],
    y: &[f64],
    n: usize,
    j: usize,
    out: &mut [f64; W],
    flat_value: f64,
    value: &impl Fn(f64, f64, f64) -> f64,
) {
    let d = x.len() / n;
    let row = |w: &[f64], k: usize| -> [f64; W] {
        w[k * n + j..k * n + j + W].try_into().expect("W values")
    };
    let (last_x, last_y) = (row(x, d - 1), row(y, d - 1));
    let (mut sx, mut sy) = ([0.0f64; W], [0.0f64; W]);
    // Counts of NaN values, and of values unequal to the newest (0: a flat window).
    let (mut nan, mut moved_x, mut moved_y) = ([0.0f64; W], [0.0f64; W], [0.0f64; W]);
    for k in 0..d {
        let (rx, ry) = (row(x, k), row(y, k));
        for i in 0..W {
            sx[i] += rx[i];
            sy[i] += ry[i];
            nan[i] += flag(rx[i].is_nan()) + flag(ry[i].is_nan());
            moved_x[i] += flag(rx[i] != last_x[i]);
            moved_y[i] += flag(ry[i] != last_y[i]);
        }
    }
    let dn = d as f64;
    let (mx, my) = (sx.map(|s| s / dn), sy.map(|s| s / dn));
    let (mut c, mut m2x, mut m2y) = ([0.0f64; W], [0.0f64; W], [0.0f64; W]);
    for k in 0..d {
        let (rx, ry) = (row(x, k), row(y, k));
        for i in 0..W {
            let (dx, dy) = (rx[i] - mx[i], ry[i] - my[i]);
            c[i] += dx * dy;
            m2x[i] += dx * dx;
            m2y[i] += dy * dy;
        }
    }
    for i in 0..W {
        let v = value(c[i], m2x[i], m2y[i]);
        let flat = moved_x[i] == 0.0 || moved_y[i] == 0.0;
        let v = if flat { flat_value } else { v };
        out[i] = if nan[i] > 0.0 { f64::NAN } else { v };
    }
}

/// Direct extremes: the window's max (`MAX`) or min, or its 1-based position (`POS`;
/// the first occurrence on ties, as the deque keeps it).
fn direct_extreme<const MAX: bool, const POS: bool>(w: &[f64], out: &mut [f64]) {
    let n = out.len();
    for cols in tiles(n) {
        let m = cols.len();
        let mut rows = window_tile(w, n, cols.clone());
        let first = rows.next().expect("d >= 1");
        let (mut best, mut pos, mut nan) = ([0.0f64; TILE], [1.0f64; TILE], [0.0f64; TILE]);
        for i in 0..m {
            best[i] = first[i];
            nan[i] = flag(first[i].is_nan());
        }
        for (k, row) in rows.enumerate() {
            let at = (k + 2) as f64;
            let (best, pos, nan, row) = (&mut best[..m], &mut pos[..m], &mut nan[..m], &row[..m]);
            for i in 0..m {
                let v = row[i];
                let better = if MAX { v > best[i] } else { v < best[i] };
                best[i] = if better { v } else { best[i] };
                if POS {
                    // Exact on small integers; unlike a second select, this vectorizes.
                    pos[i] += (at - pos[i]) * flag(better);
                }
                nan[i] += flag(v.is_nan());
            }
        }
        for (i, o) in out[cols].iter_mut().enumerate() {
            *o = match (nan[i] > 0.0, POS) {
                (true, _) => f64::NAN,
                (false, true) => pos[i],
                (false, false) => best[i],
            };
        }
    }
}

/// Direct `ts_rank`: counts of window values below and equal to the newest.
fn direct_rank(w: &[f64], out: &mut [f64]) {
    const L: usize = 4;
    let n = out.len();
    let full = n - n % L;
    for j in (0..full).step_by(L) {
        let cell: &mut [f64; L] = (&mut out[j..j + L]).try_into().expect("L values");
        rank_lanes::<L>(w, n, j, cell);
    }
    for j in full..n {
        let cell: &mut [f64; 1] = (&mut out[j..j + 1]).try_into().expect("1 value");
        rank_lanes::<1>(w, n, j, cell);
    }
}

/// [`direct_rank`] of the `W` adjacent columns starting at `j`, counts in registers.
#[inline(always)]
fn rank_lanes<const W: usize>(w: &[f64], n: usize, j: usize, out: &mut [f64; W]) {
    let d = w.len() / n;
    let row = |k: usize| -> [f64; W] { w[k * n + j..k * n + j + W].try_into().expect("W values") };
    let newest = row(d - 1);
    let (mut less, mut equal, mut nan) = ([0.0f64; W], [0.0f64; W], [0.0f64; W]);
    for k in 0..d {
        let r = row(k);
        for i in 0..W {
            less[i] += flag(r[i] < newest[i]);
            equal[i] += flag(r[i] == newest[i]);
            nan[i] += flag(r[i].is_nan());
        }
    }
    for i in 0..W {
        let rank = (less[i] + (equal[i] + 1.0) / 2.0) / d as f64;
        out[i] = if nan[i] > 0.0 { f64::NAN } else { rank };
    }
}

/// Direct `ts_product`: the window's values multiplied oldest first (NaN in, NaN out).
fn direct_product(w: &[f64], out: &mut [f64]) {
    let n = out.len();
    let mut rows = w.chunks_exact(n);
    out.copy_from_slice(rows.next().expect("d >= 1"));
    for row in rows {
        for (o, &v) in out.iter_mut().zip(row) {
            *o *= v;
        }
    }
}

/// Direct `decay_linear`: Σ k·x_k oldest first (k = 1 for the oldest) over `total`.
fn direct_decay(w: &[f64], out: &mut [f64], total: f64) {
    out.fill(0.0);
    for (k, row) in w.chunks_exact(out.len()).enumerate() {
        let weight = (k + 1) as f64;
        for (o, &v) in out.iter_mut().zip(row) {
            *o += weight * v;
        }
    }
    for o in out.iter_mut() {
        *o /= total;
    }
}

/// Σ of values in order, no compensation: what numpy's reductions do for short rows.
#[cfg(test)]
fn plain_sum(values: impl Iterator<Item = f64>) -> f64 {
    values.fold(0.0, |acc, v| acc + v)
}

/// The last `d` values of a column and how many are NaN (long-window `ts_rank`).
struct Window {
    d: usize,
    values: VecDeque<f64>,
    nans: usize,
}

impl Window {
    fn new(d: usize) -> Self {
        Window {
            d,
            values: VecDeque::with_capacity(d + 1),
            nans: 0,
        }
    }

    /// Adds a value; returns the one that left the window, if it was full.
    fn push(&mut self, x: f64) -> Option<f64> {
        self.nans += x.is_nan() as usize;
        self.values.push_back(x);
        if self.values.len() > self.d {
            let old = self.values.pop_front().expect("len > d >= 1");
            self.nans -= old.is_nan() as usize;
            Some(old)
        } else {
            None
        }
    }

    /// Full and free of NaN: the window has a value.
    fn ready(&self) -> bool {
        self.values.len() == self.d && self.nans == 0
    }
}

/// Neumaier-compensated sum (the direct moments of windows holding ±inf or huge values).
#[derive(Clone, Copy, Default)]
struct KSum {
    sum: f64,
    comp: f64,
}

impl KSum {
    fn add(&mut self, x: f64) {
        let t = self.sum + x;
        if !t.is_finite() {
            // An infinite (or NaN) sum has no rounding error to carry; the compensation
            // terms below would be inf - inf = NaN and turn an IEEE inf into NaN.
            self.sum = t;
            return;
        }
        if self.sum.abs() >= x.abs() {
            self.comp += (self.sum - t) + x;
        } else {
            self.comp += (x - t) + self.sum;
        }
        self.sum = t;
    }

    fn value(&self) -> f64 {
        self.sum + self.comp
    }

    fn of(values: impl Iterator<Item = f64>) -> Self {
        let mut k = KSum::default();
        values.for_each(|v| k.add(v));
        k
    }
}

fn window_len(d: usize) -> usize {
    assert!(d >= 1, "windows are at least 1");
    d
}

/// `x.shift(d)`.
pub fn delay<'a>(x: impl Into<View<'a>>, d: usize) -> Panel {
    let x: View<'a> = x.into();
    let (t, n) = x.dim();
    let mut buffer = crate::pool::take(t * n);
    buffer.resize(t * n, f64::NAN);
    let mut out = Array2::from_shape_vec((t, n), buffer).expect("t * n values");
    if d < t {
        out.slice_mut(s![d.., ..]).assign(&x.slice(s![..t - d, ..]));
    }
    out
}

/// `x - x.shift(d)`.
pub fn delta<'a>(x: impl Into<View<'a>>, d: usize) -> Panel {
    let x: View<'a> = x.into();
    let shifted = delay(x, d);
    let out = crate::kernels::map([x, shifted.view()], |[a, b]| a - b);
    crate::pool::give_panel(shifted);
    out
}

/// What the exact sums of a column's window cannot take, counted as the window slides:
/// NaN (the window is NaN) and special values, ±inf or `|v| >=` [`exact::HUGE`] (the
/// window is computed directly from its values, as IEEE arithmetic does).
#[derive(Clone, Copy, Default)]
struct Counts {
    nans: usize,
    specials: usize,
}

impl Counts {
    #[inline(always)]
    fn count(&mut self, v: f64, add: bool) {
        let slot = if exact::regular(v) {
            return;
        } else if v.is_nan() {
            &mut self.nans
        } else {
            &mut self.specials
        };
        if add {
            *slot += 1
        } else {
            *slot -= 1
        }
    }

    /// Moves the window of `col` to end at row `t`: `col[t]` enters, `col[t - d]` leaves.
    #[inline(always)]
    fn slide(&mut self, col: &[f64], t: usize, d: usize) {
        self.count(col[t], true);
        if t >= d {
            self.count(col[t - d], false);
        }
    }
}

/// Whether to run the kernels' copies compiled with AVX2 and FMA: on x86-64 CPUs that
/// have both, when the build target does not assume them (the default x86-64 target
/// assumes neither). Checked at run time (the standard library caches the answer).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn use_avx2_fma() -> bool {
    !exact::TARGET_FMA
        && std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("fma")
}

/// What a value adds to the exact sums: itself where they take it, 0 for NaN, ±inf and
/// huge values (which [`Counts`] counts, so that no window holding one reads the sums).
/// The sums are then exact sums of the window's regular values whatever came before, and
/// never need rebuilding after a NaN.
#[inline(always)]
fn term(v: f64) -> f64 {
    if exact::regular(v) {
        v
    } else {
        0.0
    }
}

/// Long-window `ts_sum` of a block of `width` contiguous columns (column `c` at
/// `[c * t..][..t]`), [`LANES`] columns advanced together row by row (their exact sums
/// in one [`LaneSums`], each step a loop across them that vectorizes): the exact sum of
/// each window correctly rounded, so a function of the window's values; NaN where the
/// window is not full or holds a NaN; the plain sum of the window oldest first (IEEE)
/// where it holds ±inf or a huge value.
#[inline(always)]
fn exact_sum_lanes(x: &[f64], width: usize, d: usize, out: &mut [f64]) {
    let t_len = out.len() / width;
    for first in (0..width).step_by(LANES) {
        let lanes = LANES.min(width - first);
        let column = |c: usize| &x[(first + c) * t_len..][..t_len];
        let mut sums = LaneSums::new();
        let mut counts = [Counts::default(); LANES];
        for t in 0..t_len {
            let (mut enter, mut leave) = ([0.0; LANES], [0.0; LANES]);
            for c in 0..lanes {
                let xs = column(c);
                counts[c].slide(xs, t, d);
                enter[c] = term(xs[t]);
                if t >= d {
                    leave[c] = -term(xs[t - d]);
                }
            }
            sums.update([&enter, &leave]);
            for c in 0..lanes {
                out[(first + c) * t_len + t] = if t + 1 < d || counts[c].nans > 0 {
                    f64::NAN
                } else if counts[c].specials > 0 {
                    column(c)[t + 1 - d..=t].iter().fold(0.0, |s, v| s + v)
                } else {
                    sums.value(c)
                };
            }
        }
    }
}

/// Defines `fn $name(args)`, which runs its work as compiled for the baseline x86-64
/// (`$body`) or, where the CPU has AVX2 and FMA, a copy compiled with them (`$avx`, doing
/// `$avx_body`): 4-wide vector loops and 2-flop exact product splits. Both give the same
/// bits (the kernel tests check it).
macro_rules! avx2_copy {
    (
        $(#[$doc:meta])*
        fn $name:ident / $avx:ident($($arg:ident: $ty:ty),* $(,)?) { $body:expr }
        with AVX2 { $avx_body:expr }
    ) => {
        $(#[$doc])*
        fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            if use_avx2_fma() {
                // SAFETY: the CPU has AVX2 and FMA, checked just above.
                return unsafe { $avx($($arg),*) };
            }
            $body
        }

        #[doc = concat!("The work of [`", stringify!($name), "`] compiled with AVX2 and FMA.")]
        ///
        /// # Safety
        /// The CPU must have AVX2 and FMA.
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn $avx($($arg: $ty),*) {
            $avx_body
        }
    };
}

avx2_copy! {
    /// [`exact_sum_lanes`], compiled for AVX2 where the CPU has it.
    fn sum_block / sum_block_avx2(x: &[f64], width: usize, d: usize, out: &mut [f64]) {
        exact_sum_lanes(x, width, d, out)
    } with AVX2 {
        exact_sum_lanes(x, width, d, out)
    }
}

/// `x.rolling(d).sum()`.
pub fn ts_sum<'a>(x: impl Into<View<'a>>, d: usize) -> Panel {
    let x: View<'a> = x.into();
    if window_len(d) <= SMALL_WINDOW {
        return window_rows([x], d, |[w], out| direct_sum(w, out));
    }
    by_column_block([x], |[x], width, out| sum_block(x, width, d, out))
}

/// `x.rolling(d).mean()`.
pub fn ts_mean<'a>(x: impl Into<View<'a>>, d: usize) -> Panel {
    let x: View<'a> = x.into();
    let inv = d as f64;
    if window_len(d) <= SMALL_WINDOW {
        return window_rows([x], d, |[w], out| {
            direct_sum(w, out);
            out.iter_mut().for_each(|o| *o /= inv);
        });
    }
    by_column_block([x], |[x], width, out| {
        sum_block(x, width, d, out);
        out.iter_mut().for_each(|o| *o /= inv);
    })
}

impl<F: FnMut(f64) -> f64 + Send> Rolling for F {
    fn push(&mut self, x: f64) -> f64 {
        self(x)
    }
}

/// What a moments kernel answers.
#[derive(Clone, Copy, PartialEq)]
enum Stat {
    Std,
    Cov,
    Corr,
}

/// The length of the run of equal values ending at row `t` of `col`, from the one ending
/// at `t - 1` (a NaN ends a run: NaN != NaN).
#[inline(always)]
fn run_length(previous: usize, col: &[f64], t: usize) -> usize {
    if t > 0 && col[t - 1] == col[t] {
        previous + 1
    } else {
        1
    }
}

/// Slides the exact sums of split products (`sums[0]`: Σp, `sums[1]`: Σe, for
/// `a·b = p + e` exactly) of every lane: `a·b` enters, `old_a·old_b` leaves.
#[inline(always)]
fn slide_products<const FMA: bool>(
    sums: &mut [LaneSums; 2],
    (a, b): (&[f64; LANES], &[f64; LANES]),
    (old_a, old_b): (&[f64; LANES], &[f64; LANES]),
) {
    let (mut p, mut e) = ([0.0; LANES], [0.0; LANES]);
    let (mut old_p, mut old_e) = ([0.0; LANES], [0.0; LANES]);
    for c in 0..LANES {
        (p[c], e[c]) = two_prod_with::<FMA>(a[c], b[c]);
        let (q, f) = two_prod_with::<FMA>(old_a[c], old_b[c]);
        (old_p[c], old_e[c]) = (-q, -f);
    }
    sums[0].update([&p, &old_p]);
    sums[1].update([&e, &old_e]);
}

/// The value of a moments kernel on a window pair holding ±inf or huge values (and no
/// NaN), computed directly: the flat-window rules, else the co-moments of the values
/// shifted by the window's newest with compensated two-pass sums (IEEE arithmetic on
/// the values: an infinity gives NaN or ±inf as it does).
fn special_moments(stat: Stat, flat: bool, xs: &[f64], ys: &[f64]) -> f64 {
    match (stat, flat) {
        (Stat::Std | Stat::Cov, true) => return 0.0,
        (Stat::Corr, true) => return f64::NAN,
        _ => {}
    }
    let n = xs.len() as f64;
    let (kx, ky) = (xs[xs.len() - 1], ys[ys.len() - 1]);
    let mx = KSum::of(xs.iter().map(|v| v - kx)).value() / n;
    let my = KSum::of(ys.iter().map(|v| v - ky)).value() / n;
    let (mut c, mut m2x, mut m2y) = (KSum::default(), KSum::default(), KSum::default());
    for (&a, &b) in xs.iter().zip(ys) {
        let (dx, dy) = (a - kx - mx, b - ky - my);
        c.add(dx * dy);
        m2x.add(dx * dx);
        m2y.add(dy * dy);
    }
    let (c, m2x, m2y) = (c.value(), m2x.value(), m2y.value());
    match stat {
        Stat::Std => (non_negative(m2x) / (n - 1.0)).sqrt(),
        Stat::Cov => c / (n - 1.0),
        Stat::Corr => c / (non_negative(m2x) * non_negative(m2y)).sqrt(),
    }
}

/// The exact window sums of a block of [`LANES`] column pairs for
/// [`exact_moments_lanes`]: `Σx`, `Σy` and, for each product `x·y`, `x·x`, `y·y` the
/// kernel needs, `Σp` and `Σe` of its exact split `p + e` ([`exact::two_prod_with`]);
/// all over the regular values of the window ([`term`]).
struct MomentSums {
    x: LaneSums,
    y: LaneSums,
    xy: [LaneSums; 2],
    xx: [LaneSums; 2],
    yy: [LaneSums; 2],
}

/// Long-window `ts_std` (y is x), `covariance` or `correlation` of a block of `width`
/// contiguous columns (column `c` at `[c * t..][..t]`), [`LANES`] column pairs advanced
/// together row by row, each step's exact sums and co-moments loops across the lanes
/// that vectorize: `n·Σxy - Σx·Σy` (and `n·Σx² - (Σx)²`, `n·Σy² - (Σy)²`) correctly
/// rounded by [`exact::co_moment_lanes`] from exact window sums ([`MomentSums`]), so
/// functions of the window; the exact flat-window rules first; [`special_moments`] where
/// a window holds ±inf or a huge value.
#[inline(always)]
fn exact_moments_lanes<const FMA: bool>(
    x: &[f64],
    y: &[f64],
    width: usize,
    d: usize,
    stat: Stat,
    out: &mut [f64],
) {
    let t_len = out.len() / width;
    let n = d as f64;
    // n·Σab - Σa·Σb is n·(n - 1) times the sample co-moment of a and b.
    let scale = n * (n - 1.0);
    let pair = stat != Stat::Std;
    let mut scratch = Partials::new();
    for first in (0..width).step_by(LANES) {
        let lanes = LANES.min(width - first);
        fn column(v: &[f64], c: usize, t_len: usize) -> &[f64] {
            &v[c * t_len..][..t_len]
        }
        let new = || [LaneSums::new(), LaneSums::new()];
        let mut s = MomentSums {
            x: LaneSums::new(),
            y: LaneSums::new(),
            xy: new(),
            xx: new(),
            yy: new(),
        };
        let (mut count_x, mut count_y) = ([Counts::default(); LANES], [Counts::default(); LANES]);
        let (mut run_x, mut run_y) = ([0usize; LANES], [0usize; LANES]);
        for t in 0..t_len {
            // The terms entering (a) and leaving (b) each lane's sums.
            let (mut ax, mut ay) = ([0.0; LANES], [0.0; LANES]);
            let (mut bx, mut by) = ([0.0; LANES], [0.0; LANES]);
            for c in 0..lanes {
                let xs = column(x, first + c, t_len);
                run_x[c] = run_length(run_x[c], xs, t);
                count_x[c].slide(xs, t, d);
                ax[c] = term(xs[t]);
                if t >= d {
                    bx[c] = term(xs[t - d]);
                }
                if pair {
                    let ys = column(y, first + c, t_len);
                    run_y[c] = run_length(run_y[c], ys, t);
                    count_y[c].slide(ys, t, d);
                    ay[c] = term(ys[t]);
                    if t >= d {
                        by[c] = term(ys[t - d]);
                    }
                }
            }
            // Every lane at once.
            s.x.update([&ax, &bx.map(|v| -v)]);
            if stat == Stat::Std {
                slide_products::<FMA>(&mut s.xx, (&ax, &ax), (&bx, &bx));
            } else {
                s.y.update([&ay, &by.map(|v| -v)]);
                slide_products::<FMA>(&mut s.xy, (&ax, &ay), (&bx, &by));
                if stat == Stat::Corr {
                    slide_products::<FMA>(&mut s.xx, (&ax, &ax), (&bx, &bx));
                    slide_products::<FMA>(&mut s.yy, (&ay, &ay), (&by, &by));
                }
            }
            // Which lanes read the sums: windows full, free of NaN and special values,
            // and not flat (whose values the rules fix).
            let mut want = [false; LANES];
            for c in 0..lanes {
                let (cx, cy) = (count_x[c], if pair { count_y[c] } else { count_x[c] });
                let o = &mut out[(first + c) * t_len + t];
                let flat = run_x[c] >= d || (pair && run_y[c] >= d);
                *o = if t + 1 < d || cx.nans + cy.nans > 0 {
                    f64::NAN
                } else if flat {
                    if stat == Stat::Corr {
                        f64::NAN
                    } else {
                        0.0
                    }
                } else if cx.specials + cy.specials > 0 {
                    let w = t + 1 - d..=t;
                    let ys = if pair {
                        column(y, first + c, t_len)
                    } else {
                        column(x, first + c, t_len)
                    };
                    special_moments(stat, false, &column(x, first + c, t_len)[w.clone()], &ys[w])
                } else {
                    want[c] = true;
                    continue;
                };
            }
            if !want.contains(&true) {
                continue;
            }
            let mut v = [0.0; LANES];
            let sc = &mut scratch;
            match stat {
                Stat::Std => {
                    co_moment_lanes::<FMA>(n, [&s.xx[0], &s.xx[1], &s.x, &s.x], &want, &mut v, sc);
                    v = v.map(|m| (non_negative(m) / scale).sqrt());
                }
                Stat::Cov => {
                    co_moment_lanes::<FMA>(n, [&s.xy[0], &s.xy[1], &s.x, &s.y], &want, &mut v, sc);
                    v = v.map(|m| m / scale);
                }
                Stat::Corr => {
                    let (mut vx, mut vy) = ([0.0; LANES], [0.0; LANES]);
                    co_moment_lanes::<FMA>(n, [&s.xy[0], &s.xy[1], &s.x, &s.y], &want, &mut v, sc);
                    co_moment_lanes::<FMA>(n, [&s.xx[0], &s.xx[1], &s.x, &s.x], &want, &mut vx, sc);
                    co_moment_lanes::<FMA>(n, [&s.yy[0], &s.yy[1], &s.y, &s.y], &want, &mut vy, sc);
                    for c in 0..LANES {
                        v[c] /= non_negative(vx[c]).sqrt() * non_negative(vy[c]).sqrt();
                    }
                }
            }
            for c in (0..lanes).filter(|&c| want[c]) {
                out[(first + c) * t_len + t] = v[c];
            }
        }
    }
}

avx2_copy! {
    /// [`exact_moments_lanes`] as this CPU runs it best: on x86-64 builds that do not assume
    /// AVX2 and FMA, a copy compiled with them where the CPU has both (checked at run time):
    /// 4-wide vector loops, and exact product splits ([`exact::two_prod_with`]) of two flops
    /// instead of Dekker's seventeen. Both copies give the same bits (the splits agree
    /// wherever they are exact, which is everywhere but among products below about 2^-969).
    fn moments_block / moments_block_avx2(
        x: &[f64], y: &[f64], width: usize, d: usize, stat: Stat, out: &mut [f64]
    ) {
        exact_moments_lanes::<{ exact::TARGET_FMA }>(x, y, width, d, stat, out)
    } with AVX2 {
        exact_moments_lanes::<true>(x, y, width, d, stat, out)
    }
}

/// `x.rolling(d).std()` (ddof=1); exactly 0 on a flat window.
pub fn ts_std<'a>(x: impl Into<View<'a>>, d: usize) -> Panel {
    let x: View<'a> = x.into();
    if window_len(d) <= SMALL_WINDOW {
        if d < 2 {
            return window_rows([x], d, |_, out| out.fill(f64::NAN));
        }
        return window_rows([x], d, |[w], out| {
            direct_moments(w, None, out, 0.0, |_, m2x, _| {
                (non_negative(m2x) / (d as f64 - 1.0)).sqrt()
            })
        });
    }
    by_column_block([x], |[x], width, out| {
        moments_block(x, x, width, d, Stat::Std, out)
    })
}

/// Direct covariance or correlation of short windows, with `Cov`'s rules.
fn direct_cov(x: View<'_>, y: View<'_>, d: usize, correlation: bool) -> Panel {
    if d < 2 {
        return window_rows([x, y], d, |_, out| out.fill(f64::NAN));
    }
    let ddof = d as f64 - 1.0;
    window_rows([x, y], d, |[wx, wy], out| {
        if correlation {
            direct_moments(wx, Some(wy), out, f64::NAN, |c, m2x, m2y| {
                c / (non_negative(m2x) * non_negative(m2y)).sqrt()
            })
        } else {
            direct_moments(wx, Some(wy), out, 0.0, |c, _, _| c / ddof)
        }
    })
}

/// `x.rolling(d).cov(y)` (ddof=1); exactly 0 where either window is flat.
pub fn covariance<'a>(x: impl Into<View<'a>>, y: impl Into<View<'a>>, d: usize) -> Panel {
    let x: View<'a> = x.into();
    let y: View<'a> = y.into();
    if window_len(d) <= SMALL_WINDOW {
        return direct_cov(x, y, d, false);
    }
    by_column_block([x, y], |[x, y], width, out| {
        moments_block(x, y, width, d, Stat::Cov, out)
    })
}

/// `x.rolling(d).corr(y)`; NaN where either window is flat.
pub fn correlation<'a>(x: impl Into<View<'a>>, y: impl Into<View<'a>>, d: usize) -> Panel {
    let x: View<'a> = x.into();
    let y: View<'a> = y.into();
    if window_len(d) <= SMALL_WINDOW {
        return direct_cov(x, y, d, true);
    }
    by_column_block([x, y], |[x, y], width, out| {
        moments_block(x, y, width, d, Stat::Corr, out)
    })
}

/// Long-window extremes of one contiguous column: a monotonic deque of indices into the
/// column (the front is the window's min, or max, earliest first on ties), the window's
/// NaN count read from the column. Writes the extreme (`POS = false`) or its 1-based
/// position in the window (1 = the oldest day), NaN where the window is not full or
/// holds a NaN.
fn extreme_column<const MAX: bool, const POS: bool>(x: &[f64], d: usize, out: &mut [f64]) {
    let mut deque: VecDeque<usize> = VecDeque::with_capacity(d + 1);
    let mut nans = 0usize;
    for (i, o) in out.iter_mut().enumerate() {
        let v = x[i];
        if i >= d && x[i - d].is_nan() {
            nans -= 1;
        }
        if v.is_nan() {
            nans += 1;
        } else {
            while let Some(&j) = deque.back() {
                let beaten = if MAX { x[j] < v } else { x[j] > v };
                if !beaten {
                    break;
                }
                deque.pop_back();
            }
            deque.push_back(i);
        }
        while let Some(&j) = deque.front() {
            if j + d <= i {
                deque.pop_front();
            } else {
                break;
            }
        }
        *o = match deque.front() {
            Some(&j) if i + 1 >= d && nans == 0 => {
                if POS {
                    (j + d - i) as f64
                } else {
                    x[j]
                }
            }
            _ => f64::NAN,
        };
    }
}

fn extreme(x: View<'_>, d: usize, max: bool, position: bool) -> Panel {
    if direct_order(x, d) {
        return match (max, position) {
            (false, false) => window_rows([x], d, |[w], o| direct_extreme::<false, false>(w, o)),
            (false, true) => window_rows([x], d, |[w], o| direct_extreme::<false, true>(w, o)),
            (true, false) => window_rows([x], d, |[w], o| direct_extreme::<true, false>(w, o)),
            (true, true) => window_rows([x], d, |[w], o| direct_extreme::<true, true>(w, o)),
        };
    }
    match (max, position) {
        (false, false) => by_column([x], |[c], o| extreme_column::<false, false>(c, d, o)),
        (false, true) => by_column([x], |[c], o| extreme_column::<false, true>(c, d, o)),
        (true, false) => by_column([x], |[c], o| extreme_column::<true, false>(c, d, o)),
        (true, true) => by_column([x], |[c], o| extreme_column::<true, true>(c, d, o)),
    }
}

/// `x.rolling(d).min()`.
pub fn ts_min<'a>(x: impl Into<View<'a>>, d: usize) -> Panel {
    let x: View<'a> = x.into();
    extreme(x, d, false, false)
}

/// `x.rolling(d).max()`.
pub fn ts_max<'a>(x: impl Into<View<'a>>, d: usize) -> Panel {
    let x: View<'a> = x.into();
    extreme(x, d, true, false)
}

/// 1-based position of the window's minimum (1 = oldest; first occurrence on ties).
pub fn ts_argmin<'a>(x: impl Into<View<'a>>, d: usize) -> Panel {
    let x: View<'a> = x.into();
    extreme(x, d, false, true)
}

/// 1-based position of the window's maximum (1 = oldest; first occurrence on ties).
pub fn ts_argmax<'a>(x: impl Into<View<'a>>, d: usize) -> Panel {
    let x: View<'a> = x.into();
    extreme(x, d, true, true)
}

/// Rank of today's value within its window (average ties), divided by `d`.
pub fn ts_rank<'a>(x: impl Into<View<'a>>, d: usize) -> Panel {
    let x: View<'a> = x.into();
    if direct_order(x, d) {
        return window_rows([x], d, |[w], out| direct_rank(w, out));
    }
    rolling(x, || {
        let mut w = Window::new(window_len(d));
        let mut sorted: Vec<f64> = Vec::with_capacity(d + 1);
        move |v: f64| {
            let old = w.push(v);
            if let Some(o) = old.filter(|o| !o.is_nan()) {
                let at = sorted.partition_point(|&s| s < o);
                sorted.remove(at);
            }
            if !v.is_nan() {
                let at = sorted.partition_point(|&s| s < v);
                sorted.insert(at, v);
            }
            if !w.ready() {
                return f64::NAN;
            }
            let less = sorted.partition_point(|&s| s < v);
            let equal = sorted.partition_point(|&s| s <= v) - less;
            (less as f64 + (equal as f64 + 1.0) / 2.0) / d as f64
        }
    })
}

/// Long-window `ts_product` of a block of `width` contiguous columns: each window's
/// values multiplied oldest first (as [`direct_product`]), O(d) per step; NaN results
/// are `f64::NAN`. Column by
/// column, [`PRODUCT_RUN`] consecutive rows at a time kept in registers, so that the loop
/// over the window's values reads the column (in L1) with vector loads.
#[inline(always)]
fn product_columns(x: &[f64], width: usize, d: usize, out: &mut [f64]) {
    let t_len = out.len() / width;
    for (xs, os) in x.chunks_exact(t_len).zip(out.chunks_exact_mut(t_len)) {
        let first = (d - 1).min(t_len);
        os[..first].fill(f64::NAN);
        // Output row t reads rows t - d + 1 ..= t: for the run starting at row `t`,
        // window value k of its i-th row is xs[t - d + 1 + k + i].
        let mut t = first;
        while t < t_len {
            let run = PRODUCT_RUN.min(t_len - t);
            let base = t + 1 - d;
            let mut acc = [0.0; PRODUCT_RUN];
            if run == PRODUCT_RUN {
                acc.copy_from_slice(&xs[base..base + PRODUCT_RUN]);
                for k in 1..d {
                    let row: &[f64; PRODUCT_RUN] = xs[base + k..base + k + PRODUCT_RUN]
                        .try_into()
                        .expect("a run of values");
                    for i in 0..PRODUCT_RUN {
                        acc[i] *= row[i];
                    }
                }
            } else {
                for i in 0..run {
                    acc[i] = xs[base + i..base + i + d][1..]
                        .iter()
                        .fold(xs[base + i], |p, v| p * v);
                }
            }
            // One NaN for every NaN: of two NaN operands a multiplication keeps either's
            // sign and payload, as the compiler ordered the operands, which the vector and
            // the scalar loops (chosen by where a row falls in its run) may do differently.
            for (o, &p) in os[t..t + run].iter_mut().zip(&acc) {
                *o = if p.is_nan() { f64::NAN } else { p };
            }
            t += run;
        }
    }
}

/// Rows per run of [`product_columns`].
const PRODUCT_RUN: usize = 16;

avx2_copy! {
    /// [`product_columns`], compiled for AVX2 where the CPU has it.
    fn product_block / product_block_avx2(x: &[f64], width: usize, d: usize, out: &mut [f64]) {
        product_columns(x, width, d, out)
    } with AVX2 {
        product_columns(x, width, d, out)
    }
}

/// `x.rolling(d).apply(np.prod)`: the window's values multiplied oldest first, at every
/// window length, O(d) per step (a running product would need divisions, which zeros
/// break, or a queue of partial products, whose bits depend on where the series
/// started). Short windows row by row across columns ([`direct_product`]), long ones
/// column by column ([`product_columns`]): the same multiplications in the same order.
pub fn ts_product<'a>(x: impl Into<View<'a>>, d: usize) -> Panel {
    let x: View<'a> = x.into();
    if window_len(d) <= SMALL_WINDOW {
        return window_rows([x], d, |[w], out| direct_product(w, out));
    }
    by_column_block([x], |[x], width, out| product_block(x, width, d, out))
}

/// Long-window `decay_linear` of a block of `width` contiguous columns, [`LANES`] columns
/// advanced together as in [`exact_sum_lanes`]: the exact weighted sum `W = Σ k·x_k`
/// (k = 1 for the oldest) of each window's regular values, slid exactly as
/// `W_new = W_old - S_old + d·x_new` (`S` the window's exact sum, `d·x` split exactly),
/// correctly rounded, over `total`; NaN where the window is not full or holds a NaN; the
/// direct weighted sum (IEEE) where it holds ±inf or a huge value.
#[inline(always)]
fn exact_decay_lanes<const FMA: bool>(x: &[f64], width: usize, d: usize, out: &mut [f64]) {
    let t_len = out.len() / width;
    let total = (d * (d + 1)) as f64 / 2.0;
    let weight = d as f64;
    for first in (0..width).step_by(LANES) {
        let lanes = LANES.min(width - first);
        let column = |c: usize| &x[(first + c) * t_len..][..t_len];
        let (mut sum, mut weighted) = (LaneSums::new(), LaneSums::new());
        let mut counts = [Counts::default(); LANES];
        for t in 0..t_len {
            let (mut enter, mut leave) = ([0.0; LANES], [0.0; LANES]);
            for c in 0..lanes {
                let xs = column(c);
                counts[c].slide(xs, t, d);
                enter[c] = term(xs[t]);
                if t >= d {
                    leave[c] = -term(xs[t - d]);
                }
            }
            // Every weight drops by one (the oldest, weight 1, leaves) and the new value
            // gets weight d: W - S + d·x, with S the previous window's sum (before `sum`
            // slides), subtracted through its expansion in the lanes where it is wide.
            let (mut p, mut e) = ([0.0; LANES], [0.0; LANES]);
            let (hi, lo) = sum.pairs();
            let (mut minus_hi, mut minus_lo) = ([0.0; LANES], [0.0; LANES]);
            for c in 0..LANES {
                (p[c], e[c]) = two_prod_with::<FMA>(weight, enter[c]);
                let narrow = !sum.is_wide(c);
                minus_hi[c] = if narrow { -hi[c] } else { 0.0 };
                minus_lo[c] = if narrow { -lo[c] } else { 0.0 };
            }
            weighted.update([&minus_hi, &minus_lo, &p, &e]);
            for c in (0..lanes).filter(|&c| sum.is_wide(c)) {
                weighted.subtract_lane(c, &sum);
            }
            sum.update([&enter, &leave]);
            for c in 0..lanes {
                out[(first + c) * t_len + t] = if t + 1 < d || counts[c].nans > 0 {
                    f64::NAN
                } else if counts[c].specials > 0 {
                    let w = &column(c)[t + 1 - d..=t];
                    let direct = w
                        .iter()
                        .enumerate()
                        .fold(0.0, |s, (k, v)| s + (k + 1) as f64 * v);
                    direct / total
                } else {
                    weighted.value(c) / total
                };
            }
        }
    }
}

avx2_copy! {
    /// [`exact_decay_lanes`] as this CPU runs it best (see [`moments_block`]).
    fn decay_block / decay_block_avx2(x: &[f64], width: usize, d: usize, out: &mut [f64]) {
        exact_decay_lanes::<{ exact::TARGET_FMA }>(x, width, d, out)
    } with AVX2 {
        exact_decay_lanes::<true>(x, width, d, out)
    }
}

/// Linearly weighted mean of the window, the newest value weighted `d`.
pub fn decay_linear<'a>(x: impl Into<View<'a>>, d: usize) -> Panel {
    let x: View<'a> = x.into();
    let total = (d * (d + 1)) as f64 / 2.0;
    if window_len(d) <= SMALL_WINDOW {
        return window_rows([x], d, |[w], out| direct_decay(w, out, total));
    }
    by_column_block([x], |[x], width, out| decay_block(x, width, d, out))
}

// Resumable long-window kernels (`<op>_from`): after an append, continue from the state
// the previous run of the same statement kept instead of rebuilding it from the window.

/// The running state of a long-window kernel between two runs of its statement
/// (`sray_runtime::cache::OpState`): for each block of [`LANES`] columns, the exact sums,
/// counts and run lengths of the last `filled` values of its columns, at most `d - 1`:
/// the window of the next row minus its newest value. A step adds the new row, reads
/// the window's value off the sums, then removes the window's oldest row, which is inside
/// the operand's view (the view holds `d - 1` rows before the first new row): the sums
/// are exact, so they hold the same exact values, and give the same bits, as the
/// stateless kernel's at every row.
struct Resume<B> {
    /// Columns and window length the state is for.
    n: usize,
    d: usize,
    /// Values of each column the sums hold (the same for every column).
    filled: usize,
    blocks: Vec<B>,
}

/// One block of [`LANES`] columns of a resumable kernel.
trait LaneStep: Send {
    /// Adds row `t` of the operands (columns `first..first + lanes`) to the block's state;
    /// when `out` is given, writes into it the value of the window ending at row `t`
    /// (`full`: the state held `d - 1` values before, so the window has `d`); then, when
    /// full, removes the window's oldest row, `t + 1 - d`.
    #[allow(clippy::too_many_arguments)]
    fn step<const FMA: bool>(
        &mut self,
        ops: [&View<'_>; 2],
        first: usize,
        lanes: usize,
        t: usize,
        d: usize,
        full: bool,
        out: Option<&mut [f64; LANES]>,
    );
}

/// Row `t` of `x`, columns `first..first + lanes` (the other lanes 0).
#[inline(always)]
fn lane_row(x: &View<'_>, t: usize, first: usize, lanes: usize) -> [f64; LANES] {
    let mut v = [0.0; LANES];
    let row = x.row(t);
    for c in 0..lanes {
        v[c] = row[first + c];
    }
    v
}

/// The window of column `j` of `x` ending at row `t`, oldest first.
fn window_of(x: &View<'_>, j: usize, t: usize, d: usize) -> Vec<f64> {
    (t + 1 - d..=t).map(|i| x[[i, j]]).collect()
}

/// The run length at row `t` of column `j` from the one at `t - 1`, as [`run_length`]
/// (capped at `d`: only whether it reaches `d` matters).
#[inline(always)]
fn view_run(previous: usize, x: &View<'_>, t: usize, j: usize, d: usize) -> usize {
    if t > 0 && x[[t - 1, j]] == x[[t, j]] {
        (previous + 1).min(d)
    } else {
        1
    }
}

/// Rows `from..to` of the operands through one block's state (the state holding
/// `filled` values before row `from`); the values of the rows into `out` (row `k` at
/// `[k * LANES..][..LANES]`) when given.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn block_rows<B: LaneStep, const FMA: bool>(
    block: &mut B,
    ops: [&View<'_>; 2],
    first: usize,
    lanes: usize,
    (from, to): (usize, usize),
    d: usize,
    filled: usize,
    mut out: Option<&mut [f64]>,
) {
    for (k, t) in (from..to).enumerate() {
        let full = filled + k >= d - 1;
        let cell = out.as_deref_mut().map(|o| {
            <&mut [f64; LANES]>::try_from(&mut o[k * LANES..][..LANES]).expect("LANES values")
        });
        block.step::<FMA>(ops, first, lanes, t, d, full, cell);
    }
}

/// [`block_rows`] compiled with AVX2 and FMA enabled.
///
/// # Safety
/// The CPU must have AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn block_rows_avx2<B: LaneStep>(
    block: &mut B,
    ops: [&View<'_>; 2],
    first: usize,
    lanes: usize,
    rows: (usize, usize),
    d: usize,
    filled: usize,
    out: Option<&mut [f64]>,
) {
    block_rows::<B, true>(block, ops, first, lanes, rows, d, filled, out)
}

/// [`block_rows`] as the stateless kernels run (see [`moments_block`]): the copy compiled
/// for AVX2 and FMA where the CPU has both, else the target's products.
#[allow(clippy::too_many_arguments)]
fn block_rows_best<B: LaneStep>(
    block: &mut B,
    ops: [&View<'_>; 2],
    first: usize,
    lanes: usize,
    rows: (usize, usize),
    d: usize,
    filled: usize,
    out: Option<&mut [f64]>,
) {
    #[cfg(target_arch = "x86_64")]
    if use_avx2_fma() {
        // SAFETY: the CPU has AVX2 and FMA, checked just above.
        return unsafe { block_rows_avx2(block, ops, first, lanes, rows, d, filled, out) };
    }
    block_rows::<B, { exact::TARGET_FMA }>(block, ops, first, lanes, rows, d, filled, out)
}

impl<B: LaneStep + Default> Resume<B> {
    /// The state of no value yet, for `n` columns.
    fn new(n: usize, d: usize) -> Self {
        Resume {
            n,
            d,
            filled: 0,
            blocks: (0..n.div_ceil(LANES)).map(|_| B::default()).collect(),
        }
    }

    /// Whether this state continues into a run whose first new row follows `before`
    /// rows of the view.
    fn fits(&self, n: usize, d: usize, before: usize) -> bool {
        self.n == n && self.d == d && self.filled == before.min(d - 1)
    }

    /// Steps every column through rows `from..` of the operands, in parallel over the
    /// blocks; with `emit`, the rows' values (a panel of those rows).
    fn advance(&mut self, ops: [&View<'_>; 2], from: usize, emit: bool) -> Option<Panel> {
        let (t, n, d, filled) = (ops[0].nrows(), self.n, self.d, self.filled);
        let rows = t - from;
        let run = |(b, block): (usize, &mut B), out: Option<&mut [f64]>| {
            let first = b * LANES;
            let lanes = LANES.min(n - first);
            block_rows_best(block, ops, first, lanes, (from, t), d, filled, out);
        };
        let result = if emit {
            let mut buffer = vec![0.0; self.blocks.len() * rows * LANES];
            if rows > 0 {
                self.blocks
                    .par_iter_mut()
                    .enumerate()
                    .zip(buffer.par_chunks_mut(rows * LANES))
                    .with_min_len(4)
                    .for_each(|(block, out)| run(block, Some(out)));
            }
            let mut values = crate::pool::take(rows * n);
            for k in 0..rows {
                for j in 0..n {
                    values.push(buffer[((j / LANES) * rows + k) * LANES + j % LANES]);
                }
            }
            Some(Array2::from_shape_vec((rows, n), values).expect("rows * n values"))
        } else {
            self.blocks
                .par_iter_mut()
                .enumerate()
                .with_min_len(4)
                .for_each(|block| run(block, None));
            None
        };
        self.filled = (filled + rows).min(d - 1);
        result
    }
}

/// A resumable long-window kernel: warm, the last `rows` rows of the operands from the
/// kept state; cold, `batch` over the whole view, then the state after its last row
/// (built from the view's last `d - 1` rows) kept for the next run.
fn resume_or<B: LaneStep + Default + Sync + 'static>(
    ops: [View<'_>; 2],
    d: usize,
    rows: usize,
    state: &mut OpState,
    batch: impl FnOnce() -> Panel,
) -> Panel {
    let (t, n) = ops[0].dim();
    let rows = rows.min(t);
    let ops = [&ops[0], &ops[1]];
    if let Some(kept) = state.resume::<Resume<B>>() {
        if kept.fits(n, d, t - rows) {
            return kept.advance(ops, t - rows, true).expect("values emitted");
        }
    }
    let out = batch();
    let mut kept = Resume::<B>::new(n, d);
    kept.advance(ops, t - (d - 1).min(t), false);
    state.keep(kept);
    out
}

/// The state of long-window `ts_sum` / `ts_mean` of a block (see [`exact_sum_lanes`]).
#[derive(Default)]
struct SumLanes {
    sum: LaneSums,
    counts: [Counts; LANES],
}

impl LaneStep for SumLanes {
    #[inline(always)]
    fn step<const FMA: bool>(
        &mut self,
        [x, _]: [&View<'_>; 2],
        first: usize,
        lanes: usize,
        t: usize,
        d: usize,
        full: bool,
        out: Option<&mut [f64; LANES]>,
    ) {
        let new = lane_row(x, t, first, lanes);
        let mut enter = [0.0; LANES];
        for c in 0..lanes {
            self.counts[c].count(new[c], true);
            enter[c] = term(new[c]);
        }
        self.sum.update([&enter]);
        if let Some(out) = out {
            for c in 0..lanes {
                out[c] = if !full || self.counts[c].nans > 0 {
                    f64::NAN
                } else if self.counts[c].specials > 0 {
                    (t + 1 - d..=t).fold(0.0, |s, i| s + x[[i, first + c]])
                } else {
                    self.sum.value(c)
                };
            }
        }
        if full {
            let old = lane_row(x, t + 1 - d, first, lanes);
            let mut leave = [0.0; LANES];
            for c in 0..lanes {
                self.counts[c].count(old[c], false);
                leave[c] = -term(old[c]);
            }
            self.sum.update([&leave]);
        }
    }
}

/// The state of long-window `decay_linear` of a block (see [`exact_decay_lanes`]): the
/// exact sum `S` of the values held, and `W = Σ w·x` with weight `d - 1` for the newest
/// value, one less for each row before (0 for the oldest once the window is full).
#[derive(Default)]
struct DecayLanes {
    sum: LaneSums,
    weighted: LaneSums,
    counts: [Counts; LANES],
}

impl LaneStep for DecayLanes {
    #[inline(always)]
    fn step<const FMA: bool>(
        &mut self,
        [x, _]: [&View<'_>; 2],
        first: usize,
        lanes: usize,
        t: usize,
        d: usize,
        full: bool,
        out: Option<&mut [f64; LANES]>,
    ) {
        let new = lane_row(x, t, first, lanes);
        let mut enter = [0.0; LANES];
        for c in 0..lanes {
            self.counts[c].count(new[c], true);
            enter[c] = term(new[c]);
        }
        // The new value gets weight d (the others already have theirs).
        let (mut p, mut e) = ([0.0; LANES], [0.0; LANES]);
        for c in 0..LANES {
            (p[c], e[c]) = two_prod_with::<FMA>(d as f64, enter[c]);
        }
        self.weighted.update([&p, &e]);
        self.sum.update([&enter]);
        if let Some(out) = out {
            let total = (d * (d + 1)) as f64 / 2.0;
            for c in 0..lanes {
                out[c] = if !full || self.counts[c].nans > 0 {
                    f64::NAN
                } else if self.counts[c].specials > 0 {
                    let direct = (t + 1 - d..=t)
                        .enumerate()
                        .fold(0.0, |s, (k, i)| s + (k + 1) as f64 * x[[i, first + c]]);
                    direct / total
                } else {
                    self.weighted.value(c) / total
                };
            }
        }
        // Every weight drops by one (W - S, the oldest's to 0), then the oldest leaves S.
        let (hi, lo) = self.sum.pairs();
        let (mut minus_hi, mut minus_lo) = ([0.0; LANES], [0.0; LANES]);
        for c in 0..LANES {
            let narrow = !self.sum.is_wide(c);
            minus_hi[c] = if narrow { -hi[c] } else { 0.0 };
            minus_lo[c] = if narrow { -lo[c] } else { 0.0 };
        }
        self.weighted.update([&minus_hi, &minus_lo]);
        for c in (0..lanes).filter(|&c| self.sum.is_wide(c)) {
            self.weighted.subtract_lane(c, &self.sum);
        }
        if full {
            let old = lane_row(x, t + 1 - d, first, lanes);
            let mut leave = [0.0; LANES];
            for c in 0..lanes {
                self.counts[c].count(old[c], false);
                leave[c] = -term(old[c]);
            }
            self.sum.update([&leave]);
        }
    }
}

/// The state of long-window `ts_std`, `covariance` or `correlation` of a block (see
/// [`exact_moments_lanes`]).
struct MomentLanes<const S: u8> {
    s: MomentSums,
    count_x: [Counts; LANES],
    count_y: [Counts; LANES],
    run_x: [usize; LANES],
    run_y: [usize; LANES],
    scratch: Partials,
}

/// [`MomentLanes`]' `S` of each [`Stat`].
const STD: u8 = 0;
const COV: u8 = 1;
const CORR: u8 = 2;

impl<const S: u8> Default for MomentLanes<S> {
    fn default() -> Self {
        let new = || [LaneSums::new(), LaneSums::new()];
        MomentLanes {
            s: MomentSums {
                x: LaneSums::new(),
                y: LaneSums::new(),
                xy: new(),
                xx: new(),
                yy: new(),
            },
            count_x: [Counts::default(); LANES],
            count_y: [Counts::default(); LANES],
            run_x: [0; LANES],
            run_y: [0; LANES],
            scratch: Partials::new(),
        }
    }
}

/// Adds the exact splits of `sign·a·b` of every lane to `sums` (`sums[0]`: Σp,
/// `sums[1]`: Σe), as [`slide_products`] does.
#[inline(always)]
fn add_products<const FMA: bool>(
    sums: &mut [LaneSums; 2],
    a: &[f64; LANES],
    b: &[f64; LANES],
    leave: bool,
) {
    let (mut p, mut e) = ([0.0; LANES], [0.0; LANES]);
    for c in 0..LANES {
        (p[c], e[c]) = two_prod_with::<FMA>(a[c], b[c]);
        if leave {
            (p[c], e[c]) = (-p[c], -e[c]);
        }
    }
    sums[0].update([&p]);
    sums[1].update([&e]);
}

impl<const S: u8> MomentLanes<S> {
    const STAT: Stat = match S {
        STD => Stat::Std,
        COV => Stat::Cov,
        _ => Stat::Corr,
    };

    /// Adds (or, `leave`, removes) row `t`'s terms to the sums and its values to the
    /// counts.
    #[inline(always)]
    fn slide<const FMA: bool>(
        &mut self,
        [x, y]: [&View<'_>; 2],
        first: usize,
        lanes: usize,
        t: usize,
        leave: bool,
    ) {
        let pair = Self::STAT != Stat::Std;
        let (vx, vy) = (lane_row(x, t, first, lanes), lane_row(y, t, first, lanes));
        let (mut ax, mut ay) = ([0.0; LANES], [0.0; LANES]);
        for c in 0..lanes {
            self.count_x[c].count(vx[c], !leave);
            ax[c] = term(vx[c]);
            if pair {
                self.count_y[c].count(vy[c], !leave);
                ay[c] = term(vy[c]);
            }
        }
        let sign = |v: [f64; LANES]| if leave { v.map(|a| -a) } else { v };
        let s = &mut self.s;
        s.x.update([&sign(ax)]);
        if Self::STAT == Stat::Std {
            add_products::<FMA>(&mut s.xx, &ax, &ax, leave);
        } else {
            s.y.update([&sign(ay)]);
            add_products::<FMA>(&mut s.xy, &ax, &ay, leave);
            if Self::STAT == Stat::Corr {
                add_products::<FMA>(&mut s.xx, &ax, &ax, leave);
                add_products::<FMA>(&mut s.yy, &ay, &ay, leave);
            }
        }
    }

    /// The values of the windows ending at row `t` (full ones), as
    /// [`exact_moments_lanes`] gives them.
    #[inline(always)]
    fn values<const FMA: bool>(
        &mut self,
        [x, y]: [&View<'_>; 2],
        first: usize,
        lanes: usize,
        t: usize,
        d: usize,
        out: &mut [f64; LANES],
    ) {
        let stat = Self::STAT;
        let pair = stat != Stat::Std;
        let n = d as f64;
        let scale = n * (n - 1.0);
        let mut want = [false; LANES];
        for c in 0..lanes {
            let (cx, cy) = (
                self.count_x[c],
                if pair {
                    self.count_y[c]
                } else {
                    self.count_x[c]
                },
            );
            let flat = self.run_x[c] >= d || (pair && self.run_y[c] >= d);
            out[c] = if cx.nans + cy.nans > 0 {
                f64::NAN
            } else if flat {
                if stat == Stat::Corr {
                    f64::NAN
                } else {
                    0.0
                }
            } else if cx.specials + cy.specials > 0 {
                let xs = window_of(x, first + c, t, d);
                let ys = if pair {
                    window_of(y, first + c, t, d)
                } else {
                    xs.clone()
                };
                special_moments(stat, false, &xs, &ys)
            } else {
                want[c] = true;
                continue;
            };
        }
        if !want.contains(&true) {
            return;
        }
        let (s, sc) = (&self.s, &mut self.scratch);
        let mut v = [0.0; LANES];
        match stat {
            Stat::Std => {
                co_moment_lanes::<FMA>(n, [&s.xx[0], &s.xx[1], &s.x, &s.x], &want, &mut v, sc);
                v = v.map(|m| (non_negative(m) / scale).sqrt());
            }
            Stat::Cov => {
                co_moment_lanes::<FMA>(n, [&s.xy[0], &s.xy[1], &s.x, &s.y], &want, &mut v, sc);
                v = v.map(|m| m / scale);
            }
            Stat::Corr => {
                let (mut vx, mut vy) = ([0.0; LANES], [0.0; LANES]);
                co_moment_lanes::<FMA>(n, [&s.xy[0], &s.xy[1], &s.x, &s.y], &want, &mut v, sc);
                co_moment_lanes::<FMA>(n, [&s.xx[0], &s.xx[1], &s.x, &s.x], &want, &mut vx, sc);
                co_moment_lanes::<FMA>(n, [&s.yy[0], &s.yy[1], &s.y, &s.y], &want, &mut vy, sc);
                for c in 0..LANES {
                    v[c] /= non_negative(vx[c]).sqrt() * non_negative(vy[c]).sqrt();
                }
            }
        }
        for c in (0..lanes).filter(|&c| want[c]) {
            out[c] = v[c];
        }
    }
}

impl<const S: u8> LaneStep for MomentLanes<S> {
    #[inline(always)]
    fn step<const FMA: bool>(
        &mut self,
        ops: [&View<'_>; 2],
        first: usize,
        lanes: usize,
        t: usize,
        d: usize,
        full: bool,
        out: Option<&mut [f64; LANES]>,
    ) {
        let pair = Self::STAT != Stat::Std;
        for c in 0..lanes {
            self.run_x[c] = view_run(self.run_x[c], ops[0], t, first + c, d);
            if pair {
                self.run_y[c] = view_run(self.run_y[c], ops[1], t, first + c, d);
            }
        }
        self.slide::<FMA>(ops, first, lanes, t, false);
        if let Some(out) = out {
            if full {
                self.values::<FMA>(ops, first, lanes, t, d, out);
            } else {
                out.fill(f64::NAN);
            }
        }
        if full {
            self.slide::<FMA>(ops, first, lanes, t + 1 - d, true);
        }
    }
}

/// [`ts_sum`] continuing from `state` (see [`crate::cache::OpState`]): `x` holds the
/// operand's last `rows + d - 1` rows (fewer at the series start); the last `rows` rows
/// of the result are the values of `x`'s last `rows` rows, bit for bit those of
/// [`ts_sum`]. Warm, O(`rows`) per column; cold, [`ts_sum`] of the view.
pub fn ts_sum_from<'a>(
    x: impl Into<View<'a>>,
    d: usize,
    rows: usize,
    state: &mut OpState,
) -> Panel {
    let x: View<'a> = x.into();
    if window_len(d) <= SMALL_WINDOW {
        return ts_sum(x, d);
    }
    resume_or::<SumLanes>([x, x], d, rows, state, || ts_sum(x, d))
}

/// [`ts_mean`] continuing from `state`, as [`ts_sum_from`].
pub fn ts_mean_from<'a>(
    x: impl Into<View<'a>>,
    d: usize,
    rows: usize,
    state: &mut OpState,
) -> Panel {
    let x: View<'a> = x.into();
    if window_len(d) <= SMALL_WINDOW {
        return ts_mean(x, d);
    }
    let mut out = resume_or::<SumLanes>([x, x], d, rows, state, || ts_sum(x, d));
    let inv = d as f64;
    out.iter_mut().for_each(|o| *o /= inv);
    out
}

/// [`decay_linear`] continuing from `state`, as [`ts_sum_from`].
pub fn decay_linear_from<'a>(
    x: impl Into<View<'a>>,
    d: usize,
    rows: usize,
    state: &mut OpState,
) -> Panel {
    let x: View<'a> = x.into();
    if window_len(d) <= SMALL_WINDOW {
        return decay_linear(x, d);
    }
    resume_or::<DecayLanes>([x, x], d, rows, state, || decay_linear(x, d))
}

/// [`ts_std`] continuing from `state`, as [`ts_sum_from`].
pub fn ts_std_from<'a>(
    x: impl Into<View<'a>>,
    d: usize,
    rows: usize,
    state: &mut OpState,
) -> Panel {
    let x: View<'a> = x.into();
    if window_len(d) <= SMALL_WINDOW {
        return ts_std(x, d);
    }
    resume_or::<MomentLanes<STD>>([x, x], d, rows, state, || ts_std(x, d))
}

/// [`covariance`] continuing from `state`, as [`ts_sum_from`].
pub fn covariance_from<'a>(
    x: impl Into<View<'a>>,
    y: impl Into<View<'a>>,
    d: usize,
    rows: usize,
    state: &mut OpState,
) -> Panel {
    let (x, y): (View<'a>, View<'a>) = (x.into(), y.into());
    if window_len(d) <= SMALL_WINDOW {
        return covariance(x, y, d);
    }
    same_shape_pair(&x, &y);
    resume_or::<MomentLanes<COV>>([x, y], d, rows, state, || covariance(x, y, d))
}

/// [`correlation`] continuing from `state`, as [`ts_sum_from`].
pub fn correlation_from<'a>(
    x: impl Into<View<'a>>,
    y: impl Into<View<'a>>,
    d: usize,
    rows: usize,
    state: &mut OpState,
) -> Panel {
    let (x, y): (View<'a>, View<'a>) = (x.into(), y.into());
    if window_len(d) <= SMALL_WINDOW {
        return correlation(x, y, d);
    }
    same_shape_pair(&x, &y);
    resume_or::<MomentLanes<CORR>>([x, y], d, rows, state, || correlation(x, y, d))
}

/// The two operands of a moments kernel have one shape (as the stateless kernels check).
fn same_shape_pair(x: &View<'_>, y: &View<'_>) {
    assert!(x.dim() == y.dim(), "panels of different shapes");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exact::tests::uniform;
    use crate::exact::two_prod;
    use ndarray::ShapeBuilder;

    /// Columns of random values, small integers (ties), flat runs, NaN, ±inf and a C-order
    /// panel wide enough to span several tiles.
    fn panel(seed: u64) -> Panel {
        let mut next = uniform(seed);
        Array2::from_shape_fn((90, 2 * TILE + 7), |(t, n)| {
            let u = next();
            match n % 4 {
                _ if u < 0.03 => f64::NAN,
                _ if u > 0.995 => f64::INFINITY,
                0 => u * 100.0 - 50.0,
                1 => (u * 3.0).floor(),
                2 => ((t / 9) % 3) as f64, // flat runs of 9
                _ => 1e6 + u,
            }
        })
    }

    /// The window of `x` ending at row `t` of column `j`, oldest first (None before full).
    fn window(x: &Panel, t: usize, j: usize, d: usize) -> Option<Vec<f64>> {
        (t + 1 >= d).then(|| (t + 1 - d..=t).map(|i| x[[i, j]]).collect())
    }

    fn same_bits(a: f64, b: f64) -> bool {
        a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
    }

    /// Checks `got` against `want(window(s))` at every cell, bit for bit.
    fn check(name: &str, got: &Panel, want: impl Fn(usize, usize) -> f64) {
        for ((t, j), &g) in got.indexed_iter() {
            let w = want(t, j);
            assert!(same_bits(g, w), "{name}: at ({t}, {j}) got {g}, want {w}");
        }
    }

    /// The two-pass moments the running kernels use for short windows
    /// (`Moments::exact_plain`): what the direct path must reproduce bit for bit.
    fn plain_moments(a: &[f64], b: &[f64]) -> (f64, f64, f64) {
        let n = a.len() as f64;
        let (mx, my) = (
            plain_sum(a.iter().copied()) / n,
            plain_sum(b.iter().copied()) / n,
        );
        let (mut c, mut m2x, mut m2y) = (0.0, 0.0, 0.0);
        for (&p, &q) in a.iter().zip(b) {
            let (dx, dy) = (p - mx, q - my);
            c += dx * dy;
            m2x += dx * dx;
            m2y += dy * dy;
        }
        (c, m2x, m2y)
    }

    fn flat(w: &[f64]) -> bool {
        w.iter().all(|&v| v == w[w.len() - 1])
    }

    #[test]
    fn direct_short_windows_equal_the_plain_definitions_bit_for_bit() {
        let (x, y) = (panel(1), panel(2));
        for d in 1..=SMALL_WINDOW {
            let nan = |w: &[f64]| w.iter().any(|v| v.is_nan());
            let on = |t, j| window(&x, t, j, d).filter(|w| !nan(w));
            let pair = |t, j| {
                let (a, b) = (window(&x, t, j, d)?, window(&y, t, j, d)?);
                (!nan(&a) && !nan(&b)).then_some((a, b))
            };
            check("ts_sum", &ts_sum(&x, d), |t, j| {
                on(t, j).map_or(f64::NAN, |w| plain_sum(w.into_iter()))
            });
            check("ts_mean", &ts_mean(&x, d), |t, j| {
                on(t, j).map_or(f64::NAN, |w| plain_sum(w.into_iter()) / d as f64)
            });
            check("ts_std", &ts_std(&x, d), |t, j| match on(t, j) {
                Some(_) if d < 2 => f64::NAN,
                Some(w) if flat(&w) => 0.0,
                Some(w) => (non_negative(plain_moments(&w, &w).1) / (d as f64 - 1.0)).sqrt(),
                None => f64::NAN,
            });
            check("covariance", &covariance(&x, &y, d), |t, j| {
                match pair(t, j) {
                    Some(_) if d < 2 => f64::NAN,
                    Some((a, b)) if flat(&a) || flat(&b) => 0.0,
                    Some((a, b)) => plain_moments(&a, &b).0 / (d as f64 - 1.0),
                    None => f64::NAN,
                }
            });
            check("correlation", &correlation(&x, &y, d), |t, j| {
                match pair(t, j) {
                    Some((a, b)) if d >= 2 && !flat(&a) && !flat(&b) => {
                        let (c, m2x, m2y) = plain_moments(&a, &b);
                        c / (non_negative(m2x) * non_negative(m2y)).sqrt()
                    }
                    _ => f64::NAN,
                }
            });
            check("ts_product", &ts_product(&x, d), |t, j| {
                on(t, j).map_or(f64::NAN, |w| w.iter().skip(1).fold(w[0], |p, v| p * v))
            });
            let total = (d * (d + 1)) as f64 / 2.0;
            check("decay_linear", &decay_linear(&x, d), |t, j| {
                on(t, j).map_or(f64::NAN, |w| {
                    plain_sum(w.iter().enumerate().map(|(k, v)| (k + 1) as f64 * v)) / total
                })
            });
        }
    }

    /// Extremes and `ts_rank` agree on both paths (direct up to DIRECT_ORDER_WINDOW, the
    /// deque or the sorted window beyond): the comparison below is the definition.
    #[test]
    fn extremes_and_ts_rank_match_their_definitions_on_both_paths() {
        let windows = [
            1,
            2,
            3,
            5,
            16,
            17,
            40,
            DIRECT_ORDER_WINDOW,
            DIRECT_ORDER_WINDOW + 1,
            80,
        ];
        check_extremes_and_ts_rank(&panel(3), &windows);
        // Taller, so that windows of 80 and 100 have more than FEW_ROWS full windows and
        // go through the deque and the sorted window (on 90 rows they go direct).
        let tall = ndarray::concatenate![ndarray::Axis(0), panel(3), panel(4)];
        check_extremes_and_ts_rank(&tall, &[80, 100]);
    }

    /// `ts_min`/`ts_max`, `ts_argmin`/`ts_argmax` (first occurrence, 1-based) and
    /// `ts_rank` of `x` against their definitions, for each window.
    fn check_extremes_and_ts_rank(x: &Panel, windows: &[usize]) {
        for &d in windows {
            let on = |t, j| window(x, t, j, d).filter(|w| w.iter().all(|v| !v.is_nan()));
            let arg = |w: &[f64], max: bool| {
                let mut best = 0;
                for (k, &v) in w.iter().enumerate() {
                    if (max && v > w[best]) || (!max && v < w[best]) {
                        best = k;
                    }
                }
                best
            };
            for max in [false, true] {
                let value = if max { ts_max(x, d) } else { ts_min(x, d) };
                check("ts_min/max", &value, |t, j| {
                    on(t, j).map_or(f64::NAN, |w| w[arg(&w, max)])
                });
                let position = if max {
                    ts_argmax(x, d)
                } else {
                    ts_argmin(x, d)
                };
                check("ts_argmin/argmax", &position, |t, j| {
                    on(t, j).map_or(f64::NAN, |w| (arg(&w, max) + 1) as f64)
                });
            }
            check("ts_rank", &ts_rank(x, d), |t, j| {
                on(t, j).map_or(f64::NAN, |w| {
                    let v = w[d - 1];
                    let less = w.iter().filter(|&&u| u < v).count() as f64;
                    let equal = w.iter().filter(|&&u| u == v).count() as f64;
                    (less + (equal + 1.0) / 2.0) / d as f64
                })
            });
        }
    }

    #[test]
    fn fortran_order_panels_give_the_same_values() {
        let x = panel(4);
        let mut f = Array2::zeros(x.dim().f());
        f.assign(&x);
        for d in [3, 20] {
            assert!(crate::kernels::bitwise_eq(&ts_std(&x, d), &ts_std(&f, d)));
            assert!(crate::kernels::bitwise_eq(&ts_rank(&x, d), &ts_rank(&f, d)));
            assert!(crate::kernels::bitwise_eq(
                &correlation(&x, &x, d),
                &correlation(&f, &x, d)
            ));
        }
    }

    // Long windows (over SMALL_WINDOW and over DIRECT_ORDER_WINDOW) against exact
    // arithmetic.

    /// A long panel: columns of random values, small integers (ties), flat runs of 70
    /// (flat windows up to 70), a price level of 1e6 and a random walk at 1e4, with NaN
    /// and ±inf scattered in every column.
    fn long_panel(seed: u64, t: usize, n: usize) -> Panel {
        let mut next = uniform(seed);
        let mut walk = vec![1e4; n];
        Array2::from_shape_fn((t, n), |(i, j)| {
            let u = next();
            walk[j] += u - 0.5;
            match j % 5 {
                _ if u < 0.01 => f64::NAN,
                _ if u > 0.998 => f64::INFINITY,
                _ if u > 0.996 => f64::NEG_INFINITY,
                0 => u * 100.0 - 50.0,
                1 => (u * 3.0).floor(),
                2 => ((i / 70) % 3) as f64,
                3 => 1e6 + u,
                _ => walk[j],
            }
        })
    }

    /// The correctly rounded sum of finite values (Shewchuk's partials, as Python's
    /// `math.fsum`); with an infinity, the IEEE sum (±inf, or NaN for inf - inf).
    fn fsum(values: impl Iterator<Item = f64>) -> f64 {
        let values: Vec<f64> = values.collect();
        if values.iter().any(|v| !v.is_finite()) {
            return values.iter().sum();
        }
        let mut partials: Vec<f64> = Vec::new();
        for mut x in values {
            let mut i = 0;
            for k in 0..partials.len() {
                let mut y = partials[k];
                if x.abs() < y.abs() {
                    std::mem::swap(&mut x, &mut y);
                }
                let hi = x + y;
                let lo = y - (hi - x);
                if lo != 0.0 {
                    partials[i] = lo;
                    i += 1;
                }
                x = hi;
            }
            partials.truncate(i);
            partials.push(x);
        }
        // Round the partials (ascending magnitude, non-overlapping) to one double.
        let mut hi = 0.0;
        let mut k = partials.len();
        while k > 0 {
            k -= 1;
            let x = hi;
            let y = partials[k];
            hi = x + y;
            let lo = y - (hi - x);
            if lo != 0.0 {
                if k > 0
                    && ((lo < 0.0 && partials[k - 1] < 0.0) || (lo > 0.0 && partials[k - 1] > 0.0))
                {
                    let y = lo * 2.0;
                    let x = hi + y;
                    if y == x - hi {
                        hi = x;
                    }
                }
                break;
            }
        }
        hi
    }

    /// `got` within `tol` of `want`, or both the same non-finite value (NaN, +inf, -inf).
    fn close(name: &str, d: usize, at: (usize, usize), got: f64, want: f64, tol: f64) {
        let ok = if want.is_finite() {
            (got - want).abs() <= tol
        } else {
            same_bits(got, want) || (got.is_nan() && want.is_nan())
        };
        assert!(
            ok,
            "{name}, d = {d}: at {at:?} got {got:e}, want {want:e} (tolerance {tol:e})"
        );
    }

    const LONG: [usize; 6] = [17, 33, 64, 65, 120, 250];

    #[test]
    fn long_window_sums_means_and_decay_match_exact_arithmetic() {
        let x = long_panel(11, 300, 10);
        for d in LONG {
            let (sum, mean, decay) = (ts_sum(&x, d), ts_mean(&x, d), decay_linear(&x, d));
            let total = (d * (d + 1)) as f64 / 2.0;
            for ((t, j), &g) in sum.indexed_iter() {
                let w = window(&x, t, j, d).filter(|w| w.iter().all(|v| !v.is_nan()));
                let Some(w) = w else {
                    for (name, got) in [
                        ("ts_sum", g),
                        ("ts_mean", mean[[t, j]]),
                        ("decay_linear", decay[[t, j]]),
                    ] {
                        assert!(
                            got.is_nan(),
                            "{name}, d = {d}: at ({t}, {j}) got {got}, want NaN"
                        );
                    }
                    continue;
                };
                let scale: f64 = w.iter().map(|v| v.abs()).sum();
                let exact = fsum(w.iter().copied());
                close("ts_sum", d, (t, j), g, exact, 1e-14 * scale);
                close(
                    "ts_mean",
                    d,
                    (t, j),
                    mean[[t, j]],
                    exact / d as f64,
                    1e-14 * scale / d as f64,
                );
                let weighted = fsum(w.iter().enumerate().map(|(k, v)| (k + 1) as f64 * v));
                let weighted_scale: f64 = w
                    .iter()
                    .enumerate()
                    .map(|(k, v)| (k + 1) as f64 * v.abs())
                    .sum();
                close(
                    "decay_linear",
                    d,
                    (t, j),
                    decay[[t, j]],
                    weighted / total,
                    1e-14 * weighted_scale / total,
                );
            }
        }
    }

    /// Exact two-pass moments of a window pair: (Σ dx·dy, Σ dx², Σ dy²) around the means,
    /// every sum correctly rounded.
    fn exact_moments(a: &[f64], b: &[f64]) -> (f64, f64, f64) {
        let n = a.len() as f64;
        let (mx, my) = (fsum(a.iter().copied()) / n, fsum(b.iter().copied()) / n);
        let c = fsum(a.iter().zip(b).map(|(p, q)| (p - mx) * (q - my)));
        let m2x = fsum(a.iter().map(|p| (p - mx) * (p - mx)));
        let m2y = fsum(b.iter().map(|q| (q - my) * (q - my)));
        (c, m2x, m2y)
    }

    #[test]
    fn long_window_moments_match_exact_arithmetic() {
        let (x, y) = (long_panel(12, 300, 10), long_panel(13, 300, 10));
        for d in LONG {
            let (std, cov, corr) = (ts_std(&x, d), covariance(&x, &y, d), correlation(&x, &y, d));
            let ddof = d as f64 - 1.0;
            for ((t, j), &g) in std.indexed_iter() {
                let nan = |w: &Vec<f64>| w.iter().any(|v| v.is_nan());
                match window(&x, t, j, d).filter(|w| !nan(w)) {
                    None => close("ts_std", d, (t, j), g, f64::NAN, 0.0),
                    Some(a) if flat(&a) => close("ts_std", d, (t, j), g, 0.0, 0.0),
                    Some(a) => {
                        let (_, m2, _) = exact_moments(&a, &a);
                        let want = (m2 / ddof).sqrt();
                        close("ts_std", d, (t, j), g, want, 1e-9 * want);
                    }
                }
                let pair = window(&x, t, j, d)
                    .zip(window(&y, t, j, d))
                    .filter(|(a, b)| !nan(a) && !nan(b));
                let (gc, gr) = (cov[[t, j]], corr[[t, j]]);
                match pair {
                    None => {
                        close("covariance", d, (t, j), gc, f64::NAN, 0.0);
                        close("correlation", d, (t, j), gr, f64::NAN, 0.0);
                    }
                    Some((a, b)) if flat(&a) || flat(&b) => {
                        close("covariance", d, (t, j), gc, 0.0, 0.0);
                        close("correlation", d, (t, j), gr, f64::NAN, 0.0);
                    }
                    Some((a, b)) => {
                        let (c, m2x, m2y) = exact_moments(&a, &b);
                        let spread = (m2x * m2y).sqrt();
                        close("covariance", d, (t, j), gc, c / ddof, 1e-9 * spread / ddof);
                        close("correlation", d, (t, j), gr, c / spread, 1e-9);
                    }
                }
            }
        }
    }

    #[test]
    fn long_window_products_are_the_plain_product() {
        // Values near 1 (so that 250 of them neither overflow nor underflow), zeros, ties,
        // negative values, flat runs, NaN and ±inf; and the long panel as it is. The
        // product is the window's values multiplied oldest first: the same bits.
        let x = long_panel(14, 300, 10);
        let near_one = x.mapv(|v| match v {
            _ if !v.is_finite() => v,
            _ if v.fract() == 0.0 && v.abs() < 3.0 => v - 1.0, // -1, 0, 1: ties, zeros
            _ => 1.0 + (v * 7.0).sin() * 0.05,
        });
        for panel in [&near_one, &x] {
            for d in LONG {
                check("ts_product", &ts_product(panel, d), |t, j| {
                    window(panel, t, j, d)
                        .map_or(f64::NAN, |w| w.iter().skip(1).fold(w[0], |p, v| p * v))
                });
            }
        }
    }

    #[test]
    fn long_window_extremes_and_ts_rank_match_their_definitions() {
        check_extremes_and_ts_rank(&long_panel(15, 300, 10), &LONG);
    }

    // Row-local determinism: the value at row t is a function of the window's rows only.

    /// Columns of every kind the kernels meet: noise, small integers (ties), constant
    /// stretches (flat windows, signed zeros), a price level of 1e6, a walk at 1e4, huge
    /// values (±1e200, just under and at `exact::HUGE`), tiny values and subnormals among
    /// ordinary ones and values 2^±60 apart (exact sums wider than two doubles), with NaN
    /// stretches, single NaNs (of two signs) and ±inf scattered in every column.
    fn row_local_panel(seed: u64, t: usize) -> Panel {
        const N: usize = 10;
        let mut next = uniform(seed);
        let mut walk = [1e4; N];
        let mut nan_left = [0usize; N];
        let below_huge = f64::from_bits(exact::HUGE.to_bits() - 1);
        Array2::from_shape_fn((t, N), |(i, j)| {
            let u = next();
            walk[j] += u - 0.5;
            if nan_left[j] > 0 {
                nan_left[j] -= 1;
                return f64::NAN;
            }
            let sign = if next() < 0.5 { -1.0 } else { 1.0 };
            match j {
                _ if u < 0.004 => {
                    nan_left[j] = (next() * 40.0) as usize;
                    f64::NAN
                }
                _ if u < 0.006 => f64::NAN,
                _ if u < 0.008 => -f64::NAN, // another NaN (sign bit set)
                _ if u > 0.998 => f64::INFINITY,
                _ if u > 0.996 => f64::NEG_INFINITY,
                0 => u * 100.0 - 50.0,
                1 => (u * 3.0).floor(),
                2 => ((i / 70) % 3) as f64,
                3 => 1e6 + u,
                4 => walk[j],
                5 if u < 0.02 => sign * [1e200, below_huge, exact::HUGE][(next() * 3.0) as usize],
                6 if u < 0.05 => sign * 1e-300 * next(),
                6 if u < 0.1 => sign * f64::from_bits((next() * 1e15) as u64),
                6 => u * 1e-3,
                7 => sign * next() * 2f64.powi(if next() < 0.5 { 60 } else { -60 }),
                8 => [0.0, -0.0, 2.5][(i / 20) % 3],
                _ => u * 2.0 - 1.0,
            }
        })
    }

    type Op = Box<dyn Fn(View<'_>, View<'_>, usize) -> Panel>;

    /// Every time-series op, with the rows before an output row that it reads beyond its
    /// window's `d - 1` (1 for `delay` and `delta`, whose window is `d + 1` rows).
    fn every_ts_op() -> Vec<(&'static str, usize, Op)> {
        vec![
            ("delay", 1, Box::new(|x, _, d| delay(x, d))),
            ("delta", 1, Box::new(|x, _, d| delta(x, d))),
            ("ts_sum", 0, Box::new(|x, _, d| ts_sum(x, d))),
            ("ts_mean", 0, Box::new(|x, _, d| ts_mean(x, d))),
            ("ts_std", 0, Box::new(|x, _, d| ts_std(x, d))),
            ("ts_min", 0, Box::new(|x, _, d| ts_min(x, d))),
            ("ts_max", 0, Box::new(|x, _, d| ts_max(x, d))),
            ("ts_argmin", 0, Box::new(|x, _, d| ts_argmin(x, d))),
            ("ts_argmax", 0, Box::new(|x, _, d| ts_argmax(x, d))),
            ("ts_rank", 0, Box::new(|x, _, d| ts_rank(x, d))),
            ("ts_product", 0, Box::new(|x, _, d| ts_product(x, d))),
            ("decay_linear", 0, Box::new(|x, _, d| decay_linear(x, d))),
            ("correlation", 0, Box::new(|x, y, d| correlation(x, y, d))),
            ("covariance", 0, Box::new(|x, y, d| covariance(x, y, d))),
        ]
    }

    const ROW_LOCAL_WINDOWS: [usize; 10] = [1, 2, 5, 16, 17, 30, 64, 65, 100, 250];

    /// `got` (rows `from..` of a run on other rows) equals `want` shifted by `k` rows, bit
    /// for bit: NaN's sign and payload too (a later op may pass them on).
    fn same_rows(what: &str, got: &Panel, want: &Panel, k: usize, from: usize) {
        for ((r, j), &g) in got.indexed_iter().filter(|((r, _), _)| *r >= from) {
            let w = want[[r + k, j]];
            let (gb, wb) = (g.to_bits(), w.to_bits());
            let at = r + k;
            assert!(
                gb == wb,
                "{what}: row {at} col {j}: {g:e} ({gb:#x}) vs {w:e} ({wb:#x})"
            );
        }
    }

    #[test]
    fn every_ts_op_is_row_local() {
        // The same panel minus its first k rows gives the same bits from row k + d - 1 on
        // (k + d for delay and delta), with the panel's NaN stretches, infinities, huge,
        // tiny and wide values before, inside and across the cut.
        let (x, y) = (row_local_panel(21, 700), row_local_panel(22, 700));
        for d in ROW_LOCAL_WINDOWS {
            for (name, extra, op) in every_ts_op() {
                let full = op(x.view(), y.view(), d);
                for k in [1, 7, 37, 300] {
                    let cut = op(x.slice(s![k.., ..]), y.slice(s![k.., ..]), d);
                    same_rows(
                        &format!("{name}, d = {d}, k = {k}"),
                        &cut,
                        &full,
                        k,
                        d - 1 + extra,
                    );
                }
            }
        }
    }

    #[test]
    fn ts_ops_ignore_what_comes_before_the_window() {
        // Rows before the window replaced by other values (NaN, ±inf, huge, tiny, flat
        // runs: anything that would leave a running state in another place) change no
        // bit of a row whose window lies after them; nor does computing a subset of the
        // columns, in another block of columns.
        let (x, y) = (row_local_panel(23, 600), row_local_panel(24, 600));
        let (other_x, other_y) = (row_local_panel(25, 600), row_local_panel(26, 600));
        for d in ROW_LOCAL_WINDOWS {
            for (name, extra, op) in every_ts_op() {
                let full = op(x.view(), y.view(), d);
                for k in [1, 37, 300] {
                    let (mut px, mut py) = (x.clone(), y.clone());
                    px.slice_mut(s![..k, ..])
                        .assign(&other_x.slice(s![..k, ..]));
                    py.slice_mut(s![..k, ..])
                        .assign(&other_y.slice(s![..k, ..]));
                    let got = op(px.view(), py.view(), d);
                    let from = k + d - 1 + extra;
                    let rows = s![from.min(got.nrows()).., ..];
                    let (got, want) = (got.slice(rows).to_owned(), full.slice(rows).to_owned());
                    same_rows(
                        &format!("{name}, d = {d}, history of {k}"),
                        &got,
                        &want,
                        0,
                        0,
                    );
                }
                let cols = op(x.slice(s![.., 3..8]), y.slice(s![.., 3..8]), d);
                let want = full.slice(s![.., 3..8]).to_owned();
                same_rows(
                    &format!("{name}, d = {d}, columns 3..8"),
                    &cols,
                    &want,
                    0,
                    0,
                );
            }
        }
    }

    /// Block kernels of one and of two arguments.
    type OneColumn<'a> = dyn Fn(&[f64], usize, &mut [f64]) + Sync + 'a;
    type TwoColumns<'a> = dyn Fn(&[f64], &[f64], usize, &mut [f64]) + Sync + 'a;

    #[test]
    fn generic_and_vector_copies_give_the_same_bits() {
        // Where the CPU has AVX2 and FMA the long-window kernels run copies compiled for
        // them; the generic copies (SSE2, Dekker's products) give the same bits, and so
        // does the generic code with FMA products.
        let (x, y) = (row_local_panel(30, 400), row_local_panel(31, 400));
        let one =
            |f: &OneColumn<'_>| by_column_block([x.view()], |[a], width, out| f(a, width, out));
        let two = |f: &TwoColumns<'_>| {
            by_column_block([x.view(), y.view()], |[a, b], width, out| {
                f(a, b, width, out)
            })
        };
        for d in [17, 64, 250] {
            let same = |name: &str, got: &Panel, want: &Panel| {
                let what = format!("{name}, d = {d}");
                same_rows(&what, got, want, 0, 0);
            };
            same(
                "ts_sum",
                &ts_sum(&x, d),
                &one(&|a, w, o| exact_sum_lanes(a, w, d, o)),
            );
            same(
                "ts_product",
                &ts_product(&x, d),
                &one(&|a, w, o| product_columns(a, w, d, o)),
            );
            for fma in [false, true] {
                let decay = if fma {
                    one(&|a, w, o| exact_decay_lanes::<true>(a, w, d, o))
                } else {
                    one(&|a, w, o| exact_decay_lanes::<false>(a, w, d, o))
                };
                same("decay_linear", &decay_linear(&x, d), &decay);
                for (stat, want) in [
                    (Stat::Std, ts_std(&x, d)),
                    (Stat::Cov, covariance(&x, &y, d)),
                    (Stat::Corr, correlation(&x, &y, d)),
                ] {
                    let got = if fma {
                        two(&|a, b, w, o| {
                            let b = if stat == Stat::Std { a } else { b };
                            exact_moments_lanes::<true>(a, b, w, d, stat, o)
                        })
                    } else {
                        two(&|a, b, w, o| {
                            let b = if stat == Stat::Std { a } else { b };
                            exact_moments_lanes::<false>(a, b, w, d, stat, o)
                        })
                    };
                    same("moments", &got, &want);
                }
            }
        }
    }

    /// Whether `exact` sums take `v` (not NaN, not ±inf, below `exact::HUGE`).
    fn regular_window(w: &[f64]) -> bool {
        w.iter().all(|&v| exact::regular(v))
    }

    #[test]
    fn long_window_sums_and_decay_are_the_correctly_rounded_exact_values() {
        // Where a window holds only regular values, ts_sum is its exact sum correctly
        // rounded (Python's math.fsum), ts_mean that over d and decay_linear the exact
        // Σ k·x_k correctly rounded over d(d+1)/2; with ±inf or a huge value, the plain
        // IEEE sums oldest first.
        let x = row_local_panel(27, 700);
        for d in [17, 30, 64, 65, 100, 250] {
            let (sum, mean, decay) = (ts_sum(&x, d), ts_mean(&x, d), decay_linear(&x, d));
            let total = (d * (d + 1)) as f64 / 2.0;
            for ((t, j), &g) in sum.indexed_iter() {
                let Some(w) = window(&x, t, j, d).filter(|w| w.iter().all(|v| !v.is_nan())) else {
                    assert!(g.is_nan() && mean[[t, j]].is_nan() && decay[[t, j]].is_nan());
                    continue;
                };
                let weighted = |k: usize, v: f64| (k + 1) as f64 * v;
                let (want_sum, want_weighted) = if regular_window(&w) {
                    let splits = w.iter().enumerate().flat_map(|(k, &v)| {
                        let (p, e) = two_prod((k + 1) as f64, v);
                        [p, e]
                    });
                    (fsum(w.iter().copied()) + 0.0, fsum(splits) + 0.0)
                } else {
                    let direct = w
                        .iter()
                        .enumerate()
                        .fold(0.0, |s, (k, &v)| s + weighted(k, v));
                    (plain_sum(w.iter().copied()), direct)
                };
                let at = format!("d = {d} at ({t}, {j})");
                assert!(
                    same_bits(g, want_sum),
                    "ts_sum, {at}: {g:e} vs {want_sum:e}"
                );
                assert!(
                    same_bits(mean[[t, j]], want_sum / d as f64),
                    "ts_mean, {at}"
                );
                let want = want_weighted / total;
                assert!(
                    same_bits(decay[[t, j]], want),
                    "decay_linear, {at}: {:e} vs {want:e}",
                    decay[[t, j]]
                );
            }
        }
    }

    #[test]
    fn long_window_moments_of_every_kind_of_column_match_exact_arithmetic() {
        // The tolerances of long_window_moments_match_exact_arithmetic, on the columns of
        // the row-local tests (huge values and infinities aside: those windows are computed
        // directly, and the row-local tests cover them).
        let (x, y) = (row_local_panel(28, 500), row_local_panel(29, 500));
        for d in [17, 30, 64, 65, 100, 250] {
            let (std, cov, corr) = (ts_std(&x, d), covariance(&x, &y, d), correlation(&x, &y, d));
            let ddof = d as f64 - 1.0;
            for ((t, j), &g) in std.indexed_iter() {
                let (Some(a), Some(b)) = (window(&x, t, j, d), window(&y, t, j, d)) else {
                    continue;
                };
                let at = (t, j);
                if regular_window(&a) {
                    if flat(&a) {
                        close("ts_std", d, at, g, 0.0, 0.0);
                    } else {
                        let want = (exact_moments(&a, &a).1 / ddof).sqrt();
                        close("ts_std", d, at, g, want, 1e-9 * want);
                    }
                }
                if !(regular_window(&a) && regular_window(&b)) {
                    continue;
                }
                let (gc, gr) = (cov[[t, j]], corr[[t, j]]);
                if flat(&a) || flat(&b) {
                    close("covariance", d, at, gc, 0.0, 0.0);
                    close("correlation", d, at, gr, f64::NAN, 0.0);
                } else {
                    let (c, m2x, m2y) = exact_moments(&a, &b);
                    let spread = (m2x * m2y).sqrt();
                    close("covariance", d, at, gc, c / ddof, 1e-9 * spread / ddof);
                    close("correlation", d, at, gr, c / spread, 1e-9);
                }
            }
        }
    }

    // Resumable kernels (`<op>_from`): fed a few rows at a time with a kept state, the
    // same bits as the stateless op on the whole panel.

    type FromOp = Box<dyn Fn(View<'_>, View<'_>, usize, usize, &mut OpState) -> Panel>;

    fn resumable_ops() -> Vec<(&'static str, Op, FromOp)> {
        vec![
            (
                "ts_sum",
                Box::new(|x, _, d| ts_sum(x, d)),
                Box::new(|x, _, d, r, s| ts_sum_from(x, d, r, s)),
            ),
            (
                "ts_mean",
                Box::new(|x, _, d| ts_mean(x, d)),
                Box::new(|x, _, d, r, s| ts_mean_from(x, d, r, s)),
            ),
            (
                "decay_linear",
                Box::new(|x, _, d| decay_linear(x, d)),
                Box::new(|x, _, d, r, s| decay_linear_from(x, d, r, s)),
            ),
            (
                "ts_std",
                Box::new(|x, _, d| ts_std(x, d)),
                Box::new(|x, _, d, r, s| ts_std_from(x, d, r, s)),
            ),
            (
                "covariance",
                Box::new(|x, y, d| covariance(x, y, d)),
                Box::new(|x, y, d, r, s| covariance_from(x, y, d, r, s)),
            ),
            (
                "correlation",
                Box::new(|x, y, d| correlation(x, y, d)),
                Box::new(|x, y, d, r, s| correlation_from(x, y, d, r, s)),
            ),
        ]
    }

    /// Whether `state` holds a kept state of any resumable kernel that continues into a
    /// run of `n` columns whose first new row follows `before` rows of the view.
    fn resumes(state: &mut OpState, n: usize, d: usize, before: usize) -> bool {
        fn fits<B: LaneStep + Default + 'static>(
            state: &mut OpState,
            n: usize,
            d: usize,
            before: usize,
        ) -> bool {
            state
                .resume::<Resume<B>>()
                .is_some_and(|r| r.fits(n, d, before))
        }
        fits::<SumLanes>(state, n, d, before)
            || fits::<DecayLanes>(state, n, d, before)
            || fits::<MomentLanes<STD>>(state, n, d, before)
            || fits::<MomentLanes<COV>>(state, n, d, before)
            || fits::<MomentLanes<CORR>>(state, n, d, before)
    }

    /// 30 columns (a block of lanes and a partial one) of the row-local kinds: NaN
    /// stretches, ±inf, huge and tiny values, flat runs, noise.
    fn resume_panel(seed: u64, t: usize) -> Panel {
        let parts = [0, 100, 200].map(|k| row_local_panel(seed + k, t));
        ndarray::concatenate(
            ndarray::Axis(1),
            &[parts[0].view(), parts[1].view(), parts[2].view()],
        )
        .expect("panels of t rows")
    }

    /// Feeds `x`, `y` to `f` in chunks of `chunks` rows (cycled), as a kernel's slot does:
    /// each call gets the operands' last `rows + d - 1` rows and the kept state, warm but
    /// at every `cold_every`-th call; every `narrow_every`-th call (when given) reads only
    /// columns 3..8, which must not resume the state of all the columns. The new rows must
    /// equal `want`'s bit for bit.
    #[allow(clippy::too_many_arguments)]
    fn drive(
        what: &str,
        f: &FromOp,
        (x, y): (&Panel, &Panel),
        want: &Panel,
        d: usize,
        chunks: &[usize],
        cold_every: usize,
        narrow_every: Option<usize>,
    ) -> usize {
        let (t_len, n) = x.dim();
        let mut state = OpState::default();
        let (mut end, mut warm_calls) = (0, 0);
        for (call, &k) in chunks.iter().cycle().enumerate() {
            if end == t_len {
                break;
            }
            let k = k.min(t_len - end);
            let to = end + k;
            let from = to.saturating_sub(k + d - 1);
            let narrow = narrow_every.is_some_and(|m| call % m == m - 1);
            let cols = if narrow { 3..8 } else { 0..n };
            let warm = call > 0 && call % cold_every != 0;
            state.set_warm(warm);
            let resumed = resumes(&mut state, cols.len(), d, end - from);
            let after_narrow = narrow_every.is_some_and(|m| call % m == 0 && call > 0);
            if warm && !narrow && !after_narrow {
                assert!(resumed, "{what}: call {call} does not resume its state");
            }
            if narrow {
                assert!(!resumed, "{what}: call {call} resumes another column set");
            }
            warm_calls += resumed as usize;
            let got = f(
                x.slice(s![from..to, cols.clone()]),
                y.slice(s![from..to, cols.clone()]),
                d,
                k,
                &mut state,
            );
            assert!(got.nrows() >= k, "{what}: {} rows for {k}", got.nrows());
            let got = got.slice(s![got.nrows() - k.., ..]).to_owned();
            let want = want.slice(s![.., cols]).to_owned();
            same_rows(
                &format!("{what}, call {call} (rows {end}..{to})"),
                &got,
                &want,
                end,
                0,
            );
            end = to;
        }
        warm_calls
    }

    #[test]
    fn resumable_kernels_fed_in_chunks_give_the_batch_bits() {
        let (x, y) = (resume_panel(41, 560), resume_panel(42, 560));
        let schedules: [(&str, &[usize], usize, Option<usize>); 4] = [
            ("one row at a time", &[1], usize::MAX, None),
            ("three rows at a time", &[3], usize::MAX, None),
            ("mixed", &[5, 1, 3, 40, 1, 1, 2, 7, 120, 1, 16], 9, None),
            ("mixed, column sets change", &[1, 2, 1, 30, 3], 17, Some(7)),
        ];
        for d in [17, 40, 250] {
            for (name, batch, from) in resumable_ops() {
                let want = batch(x.view(), y.view(), d);
                for (schedule, chunks, cold_every, narrow_every) in schedules {
                    let what = format!("{name}, d = {d}, {schedule}");
                    let warm = drive(
                        &what,
                        &from,
                        (&x, &y),
                        &want,
                        d,
                        chunks,
                        cold_every,
                        narrow_every,
                    );
                    assert!(warm > 0, "{what}: no call resumed");
                }
            }
        }
    }

    #[test]
    fn resumable_kernels_start_the_series_and_grow_from_it() {
        // From the first row of the series, one row at a time and across a window that is
        // not yet full (the state holds fewer than d - 1 values), on a panel shorter than
        // the window and on one longer.
        for t in [30, 300] {
            let (x, y) = (resume_panel(43, t), resume_panel(44, t));
            for d in [17, 40, 250] {
                for (name, batch, from) in resumable_ops() {
                    let want = batch(x.view(), y.view(), d);
                    let what = format!("{name}, d = {d}, {t} rows from the start");
                    drive(
                        &what,
                        &from,
                        (&x, &y),
                        &want,
                        d,
                        &[1, 1, 2],
                        usize::MAX,
                        None,
                    );
                }
            }
        }
    }
}
