//! Time-series kernels: each column on its own, along time (docs/ops.md).
//!
//! A window that is not yet full, or that holds a NaN, gives NaN (pandas `min_periods=d`).
//! Short windows are computed directly, O(d) per step (below). Long windows keep state:
//! - sums, means, `decay_linear`, `ts_std`, `covariance`, `correlation`: running
//!   compensated sums / co-moments, O(1) per step, re-anchored by an exact two-pass
//!   recompute every `d` steps (O(1) amortized), so long series do not drift; O(d) per
//!   step while the window holds an infinity;
//! - `ts_min`, `ts_max`, `ts_argmin`, `ts_argmax`: monotonic deques, O(1) amortized;
//! - `ts_rank`: the window kept sorted: a binary search, but the insert shifts up to d
//!   values, so O(d) per step (a memmove);
//! - `ts_product`: a two-stack queue of partial products (no division, zeros are fine),
//!   O(1) amortized.
//!
//! Flat windows are detected exactly (the last `d` values are all equal), and there
//! `ts_std` and `covariance` are exactly 0 and `correlation` is NaN: running sums would
//! leave ~1e-8 where the true variance is 0, and a later `rank` would reorder that noise.
//! Windows holding ±inf (but no NaN) are computed directly from the window, as IEEE does.
//!
//! Windows of at most [`SMALL_WINDOW`] values are summed directly, in order, every step:
//! as cheap as a running update at that size, and bitwise equal to a plain two-pass
//! computation (numpy's), so values that are mathematically tied stay tied for a later
//! `rank` instead of being split by rounding noise.
//!
//! Short windows are computed directly from the window's rows ([`crate::layout::window_rows`]):
//! each output row from the `d` input rows ending at it, looping across columns, which
//! the compiler vectorizes. The per-column state machines are for long windows, where
//! O(d) work per step would cost more than their O(1) updates. Both give the same bits
//! for sums, moments, extremes and ranks (the tests below check it).

use crate::layout::{by_column, by_column_block, rolling, window_rows, Rolling};
use crate::{Panel, View};
use ndarray::{s, Array2};
use std::collections::VecDeque;

/// Windows up to this size are recomputed directly at every step.
pub const SMALL_WINDOW: usize = 16;

/// Windows up to this size take the direct path for extremes and `ts_rank` too: a
/// comparison per value is cheaper than a deque or a sorted window at this size.
pub const DIRECT_ORDER_WINDOW: usize = 64;

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

/// The last `d` values of a column, with counts of what the running kernels cannot use.
struct Window {
    d: usize,
    values: VecDeque<f64>,
    nans: usize,
    infs: usize,
    /// How many of the newest values are equal to each other (a flat run).
    run: usize,
    /// Steps since the running sums were last recomputed exactly.
    since_anchor: usize,
    /// Running sums are invalid (the window was filling or held a NaN).
    stale: bool,
}

impl Window {
    fn new(d: usize) -> Self {
        Window {
            d,
            values: VecDeque::with_capacity(d + 1),
            nans: 0,
            infs: 0,
            run: 0,
            since_anchor: 0,
            stale: true,
        }
    }

    /// Adds a value; returns the one that left the window, if it was full.
    fn push(&mut self, x: f64) -> Option<f64> {
        self.run = match self.values.back() {
            Some(&last) if last == x => self.run + 1,
            _ => 1,
        };
        self.count(x, 1);
        self.values.push_back(x);
        self.since_anchor += 1;
        if self.values.len() > self.d {
            let old = self.values.pop_front().expect("len > d >= 1");
            self.count(old, -1);
            Some(old)
        } else {
            None
        }
    }

    fn count(&mut self, x: f64, by: isize) {
        if x.is_nan() {
            self.nans = self.nans.wrapping_add_signed(by);
        } else if x.is_infinite() {
            self.infs = self.infs.wrapping_add_signed(by);
        }
    }

    fn full(&self) -> bool {
        self.values.len() == self.d
    }

    /// Full and free of NaN: the window has a value.
    fn ready(&self) -> bool {
        self.full() && self.nans == 0
    }

    /// All `d` values are equal (zero variance, exactly).
    #[cfg(test)]
    fn flat(&self) -> bool {
        self.run >= self.d
    }

    /// Whether a ready window's running sums must be rebuilt exactly: after filling or a
    /// NaN (stale), every `d` steps (anchor), and while infinities make them meaningless
    /// and at the step after the last one leaves (removing an infinity from an infinite
    /// running sum gives NaN, not the finite sum of what is left).
    /// Call only on a ready window; a window that is not ready marks itself stale.
    fn take_exact(&mut self) -> bool {
        if self.stale || self.since_anchor >= self.d || self.infs > 0 {
            self.since_anchor = 0;
            self.stale = self.infs > 0;
            true
        } else {
            false
        }
    }

    /// `ready()`, marking the running sums stale when it is not.
    fn check_ready(&mut self) -> bool {
        let ready = self.ready();
        self.stale |= !ready;
        ready
    }
}

/// Neumaier-compensated running sum.
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

/// The running sum of one contiguous column, without a window copy: the value leaving
/// the window is read from the column. Same steps as the `Window` state machines (compensated
/// updates, re-anchored exactly every `d` steps, after a NaN and while infinities are
/// in the window), so the same bits.
fn running_sum_column(x: &[f64], d: usize, out: &mut [f64]) {
    let (mut nans, mut infs, mut since_anchor, mut stale) = (0usize, 0usize, 0usize, true);
    let mut sum = KSum::default();
    let count = |v: f64, nans: &mut usize, infs: &mut usize, add: bool| {
        let slot = if v.is_nan() {
            nans
        } else if v.is_infinite() {
            infs
        } else {
            return;
        };
        if add {
            *slot += 1
        } else {
            *slot -= 1
        }
    };
    for (t, o) in out.iter_mut().enumerate() {
        let v = x[t];
        count(v, &mut nans, &mut infs, true);
        since_anchor += 1;
        let old = (t >= d).then(|| x[t - d]);
        if let Some(old) = old {
            count(old, &mut nans, &mut infs, false);
        }
        if t + 1 < d || nans > 0 {
            stale = true;
            *o = f64::NAN;
            continue;
        }
        if stale || since_anchor >= d || infs > 0 {
            since_anchor = 0;
            stale = infs > 0; // also recompute when the last infinity has left
            sum = KSum::of(x[t + 1 - d..=t].iter().copied());
        } else {
            sum.add(v);
            sum.add(-old.expect("a ready window after a ready one is sliding"));
        }
        *o = sum.value();
    }
}

/// `x.rolling(d).sum()`.
pub fn ts_sum<'a>(x: impl Into<View<'a>>, d: usize) -> Panel {
    let x: View<'a> = x.into();
    if window_len(d) <= SMALL_WINDOW {
        return window_rows([x], d, |[w], out| direct_sum(w, out));
    }
    by_column([x], |[column], out| running_sum_column(column, d, out))
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
    by_column([x], |[column], out| {
        running_sum_column(column, d, out);
        out.iter_mut().for_each(|o| *o /= inv);
    })
}

impl<F: FnMut(f64) -> f64 + Send> Rolling for F {
    fn push(&mut self, x: f64) -> f64 {
        self(x)
    }
}

/// One column's half (x or y) of [`running_moments_block`]: the counts of `Window` and
/// the shifted running mean and Σ (v - mean)², with the window's values read from the
/// column instead of copied.
#[derive(Clone, Copy)]
struct Side {
    nans: usize,
    infs: usize,
    /// How many of the newest values are equal to each other (a flat run).
    run: usize,
    since_anchor: usize,
    stale: bool,
    /// The shift (a recent value), the mean of the shifted values, Σ (v - mean)².
    k: f64,
    m: f64,
    m2: f64,
}

impl Side {
    const NEW: Side = Side {
        nans: 0,
        infs: 0,
        run: 0,
        since_anchor: 0,
        stale: true,
        k: 0.0,
        m: 0.0,
        m2: 0.0,
    };

    fn count(&mut self, v: f64, add: bool) {
        let slot = if v.is_nan() {
            &mut self.nans
        } else if v.is_infinite() {
            &mut self.infs
        } else {
            return;
        };
        if add {
            *slot += 1
        } else {
            *slot -= 1
        }
    }

    /// `Window::push` then `Window::check_ready` at step `t` of `col`: whether the
    /// window ending at `t` is full and free of NaN.
    #[inline(always)]
    fn push(&mut self, col: &[f64], t: usize, d: usize) -> bool {
        let v = col[t];
        self.run = if t > 0 && col[t - 1] == v {
            self.run + 1
        } else {
            1
        };
        self.count(v, true);
        self.since_anchor += 1;
        if t >= d {
            self.count(col[t - d], false);
        }
        let ready = t + 1 >= d && self.nans == 0;
        self.stale |= !ready;
        ready
    }

    /// `Window::take_exact`.
    #[inline(always)]
    fn take_exact(&mut self, d: usize) -> bool {
        if self.stale || self.since_anchor >= d || self.infs > 0 {
            self.since_anchor = 0;
            self.stale = self.infs > 0;
            true
        } else {
            false
        }
    }

    fn flat(&self, d: usize) -> bool {
        self.run >= d
    }
}

/// What a running-moments kernel answers.
#[derive(Clone, Copy, PartialEq)]
enum Stat {
    Std,
    Cov,
    Corr,
}

/// Long-window `ts_std` (`PAIR = false`, y is x), `covariance` or `correlation` of a
/// block of `width` contiguous columns (column `c` at `[c * t..][..t]`), the columns
/// advanced together time step by time step so that their dependency chains (a
/// division feeds the next step's mean) overlap. Per column, the steps and bits of
/// the per-column state machine this replaced (`Moments`, kept in the tests as the
/// oracle): Welford updates of values shifted by a recent value, re-anchored by an
/// exact compensated two-pass recompute every `d` steps, after a NaN or a filling
/// window and while infinities are in the window; exact flat-window detection.
fn running_moments_block<const PAIR: bool>(
    x: &[f64],
    y: &[f64],
    width: usize,
    d: usize,
    stat: Stat,
    out: &mut [f64],
) {
    let t_len = out.len() / width;
    let n = d as f64;
    let ddof = n - 1.0;
    let mut lanes = vec![(Side::NEW, Side::NEW, 0.0f64); width];
    for t in 0..t_len {
        for (c, (sx, sy, cxy)) in lanes.iter_mut().enumerate() {
            let xs = &x[c * t_len..][..t_len];
            let ys = if PAIR { &y[c * t_len..][..t_len] } else { xs };
            let o = &mut out[c * t_len + t];
            let ready_x = sx.push(xs, t, d);
            let ready_y = !PAIR || sy.push(ys, t, d);
            if !(ready_x & ready_y) {
                *o = f64::NAN;
                continue;
            }
            let exact_x = sx.take_exact(d);
            let exact_y = PAIR && sy.take_exact(d);
            if exact_x | exact_y {
                let w = t + 1 - d..=t;
                sx.k = xs[t];
                sx.m = KSum::of(xs[w.clone()].iter().map(|v| v - sx.k)).value() / n;
                if PAIR {
                    sy.k = ys[t];
                    sy.m = KSum::of(ys[w.clone()].iter().map(|v| v - sy.k)).value() / n;
                    let (mut c, mut m2x, mut m2y) =
                        (KSum::default(), KSum::default(), KSum::default());
                    for (&a, &b) in xs[w.clone()].iter().zip(&ys[w]) {
                        let (dx, dy) = (a - sx.k - sx.m, b - sy.k - sy.m);
                        c.add(dx * dy);
                        m2x.add(dx * dx);
                        m2y.add(dy * dy);
                    }
                    (*cxy, sx.m2, sy.m2) = (c.value(), m2x.value(), m2y.value());
                } else {
                    let mut m2x = KSum::default();
                    for &a in &xs[w] {
                        let dx = a - sx.k - sx.m;
                        m2x.add(dx * dx);
                    }
                    sx.m2 = m2x.value();
                }
            } else {
                // Remove the oldest pair (n: d -> d-1), then add the new one (d-1 -> d).
                let oa = xs[t - d] - sx.k;
                let a = xs[t] - sx.k;
                let mx1 = sx.m - (oa - sx.m) / (n - 1.0);
                sx.m2 -= (oa - mx1) * (oa - sx.m);
                let dx = a - mx1;
                if PAIR {
                    let ob = ys[t - d] - sy.k;
                    let b = ys[t] - sy.k;
                    let my1 = sy.m - (ob - sy.m) / (n - 1.0);
                    *cxy -= (oa - mx1) * (ob - sy.m);
                    sy.m2 -= (ob - my1) * (ob - sy.m);
                    let dy = b - my1;
                    sx.m = mx1 + dx / n;
                    sy.m = my1 + dy / n;
                    *cxy += dx * (b - sy.m);
                    sx.m2 += dx * (a - sx.m);
                    sy.m2 += dy * (b - sy.m);
                } else {
                    sx.m = mx1 + dx / n;
                    sx.m2 += dx * (a - sx.m);
                }
            }
            let flat = sx.flat(d) || (PAIR && sy.flat(d));
            *o = match (stat, flat) {
                (Stat::Std, true) | (Stat::Cov, true) => 0.0,
                (Stat::Corr, true) => f64::NAN,
                (Stat::Std, false) => (non_negative(sx.m2) / ddof).sqrt(),
                (Stat::Cov, false) => *cxy / ddof,
                (Stat::Corr, false) => *cxy / (non_negative(sx.m2) * non_negative(sy.m2)).sqrt(),
            };
        }
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
        running_moments_block::<false>(x, x, width, d, Stat::Std, out)
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
        running_moments_block::<true>(x, y, width, d, Stat::Cov, out)
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
        running_moments_block::<true>(x, y, width, d, Stat::Corr, out)
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
    if window_len(d) <= DIRECT_ORDER_WINDOW {
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
    if window_len(d) <= DIRECT_ORDER_WINDOW {
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

/// `x.rolling(d).apply(np.prod)`, from a two-stack queue of partial products.
pub fn ts_product<'a>(x: impl Into<View<'a>>, d: usize) -> Panel {
    let x: View<'a> = x.into();
    if window_len(d) <= SMALL_WINDOW {
        return window_rows([x], d, |[w], out| direct_product(w, out));
    }
    rolling(x, || {
        let mut w = Window::new(window_len(d));
        // `front` holds suffix products of the older values (top = the oldest's);
        // `back` the newer values, whose product is `back_product`.
        let mut front: Vec<f64> = Vec::with_capacity(d);
        let mut back: Vec<f64> = Vec::with_capacity(d);
        let mut back_product = 1.0;
        move |v: f64| {
            if w.push(v).is_some() {
                if front.is_empty() {
                    let mut acc = 1.0;
                    for value in back.drain(..).rev() {
                        acc *= value;
                        front.push(acc);
                    }
                    back_product = 1.0;
                }
                front.pop();
            }
            back.push(v);
            back_product *= v;
            if w.ready() {
                front.last().copied().unwrap_or(1.0) * back_product
            } else {
                f64::NAN
            }
        }
    })
}

/// Linearly weighted mean of the window, the newest value weighted `d`.
pub fn decay_linear<'a>(x: impl Into<View<'a>>, d: usize) -> Panel {
    let x: View<'a> = x.into();
    let total = (d * (d + 1)) as f64 / 2.0;
    if window_len(d) <= SMALL_WINDOW {
        return window_rows([x], d, |[w], out| direct_decay(w, out, total));
    }
    rolling(x, || {
        let mut w = Window::new(window_len(d));
        // weighted = Σ k·x_k (k = 1 for the oldest), plain = Σ x_k.
        let (mut weighted, mut plain) = (KSum::default(), KSum::default());
        move |v: f64| {
            let old = w.push(v);
            if !w.check_ready() {
                return f64::NAN;
            }
            if w.take_exact() {
                weighted = KSum::of(
                    w.values
                        .iter()
                        .enumerate()
                        .map(|(k, &x)| (k + 1) as f64 * x),
                );
                plain = KSum::of(w.values.iter().copied());
            } else {
                // Every weight drops by one (the oldest, weight 1, leaves); the new value
                // gets weight d. `plain` is still the previous window's sum here.
                let o = old.expect("sliding");
                weighted.add(-plain.value());
                weighted.add(d as f64 * v);
                plain.add(v);
                plain.add(-o);
            }
            weighted.value() / total
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::ShapeBuilder;

    /// Uniform values in [0, 1) from a seeded linear congruential generator (tests only).
    fn uniform(seed: u64) -> impl FnMut() -> f64 {
        let mut state = seed;
        move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        }
    }

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

    /// The per-column state machine `ts_sum` used before `running_sum_column`: the oracle
    /// that the column kernel gives the same bits.
    struct Sum {
        w: Window,
        sum: KSum,
    }

    impl Rolling for Sum {
        fn push(&mut self, x: f64) -> f64 {
            let old = self.w.push(x);
            if !self.w.check_ready() {
                return f64::NAN;
            }
            if self.w.d <= SMALL_WINDOW {
                return plain_sum(self.w.values.iter().copied());
            }
            if self.w.take_exact() {
                self.sum = KSum::of(self.w.values.iter().copied());
            } else {
                self.sum.add(x);
                self.sum
                    .add(-old.expect("a ready window after a ready one is sliding"));
            }
            self.sum.value()
        }
    }

    fn sum_state(d: usize) -> Sum {
        Sum {
            w: Window::new(window_len(d)),
            sum: KSum::default(),
        }
    }

    // The per-column state machine `ts_std`, `covariance` and `correlation` used before
    // `running_moments_block`: the oracle that the block kernel gives the same bits.

    /// Running mean and co-moments of a pair of columns (Welford updates, re-anchored).
    ///
    /// Values are shifted by a recent value of their column (`kx`, `ky`, reset at each exact
    /// recompute), so that at a price level of 1e6 the running mean is not carrying absolute
    /// errors of 1e-10 into co-moments of 1e-4.
    struct Moments {
        x: Window,
        y: Window,
        kx: f64,
        ky: f64,
        /// Means of the shifted values.
        mx: f64,
        my: f64,
        /// Σ (x - mx)(y - my) over the window.
        c: f64,
        /// Σ (x - mx)², Σ (y - my)² over the window.
        m2x: f64,
        m2y: f64,
    }

    impl Moments {
        fn new(d: usize) -> Self {
            Moments {
                x: Window::new(window_len(d)),
                y: Window::new(d),
                kx: 0.0,
                ky: 0.0,
                mx: 0.0,
                my: 0.0,
                c: 0.0,
                m2x: 0.0,
                m2y: 0.0,
            }
        }

        fn exact(&mut self) {
            self.kx = *self.x.values.back().expect("a ready window");
            self.ky = *self.y.values.back().expect("a ready window");
            let (kx, ky) = (self.kx, self.ky);
            let n = self.x.values.len() as f64;
            self.mx = KSum::of(self.x.values.iter().map(|v| v - kx)).value() / n;
            self.my = KSum::of(self.y.values.iter().map(|v| v - ky)).value() / n;
            let (mut c, mut m2x, mut m2y) = (KSum::default(), KSum::default(), KSum::default());
            for (&a, &b) in self.x.values.iter().zip(&self.y.values) {
                let (dx, dy) = (a - kx - self.mx, b - ky - self.my);
                c.add(dx * dy);
                m2x.add(dx * dx);
                m2y.add(dy * dy);
            }
            (self.c, self.m2x, self.m2y) = (c.value(), m2x.value(), m2y.value());
        }

        /// The two-pass moments, in the order numpy computes them (small windows).
        fn exact_plain(&mut self) {
            let n = self.x.d as f64;
            (self.kx, self.ky) = (0.0, 0.0);
            self.mx = plain_sum(self.x.values.iter().copied()) / n;
            self.my = plain_sum(self.y.values.iter().copied()) / n;
            let (mut c, mut m2x, mut m2y) = (0.0, 0.0, 0.0);
            for (&a, &b) in self.x.values.iter().zip(&self.y.values) {
                let (dx, dy) = (a - self.mx, b - self.my);
                c += dx * dy;
                m2x += dx * dx;
                m2y += dy * dy;
            }
            (self.c, self.m2x, self.m2y) = (c, m2x, m2y);
        }

        /// Feeds a pair; returns whether both windows are full and free of NaN.
        fn push(&mut self, a: f64, b: f64) -> bool {
            let old_a = self.x.push(a);
            let old_b = self.y.push(b);
            let ready = self.x.check_ready() & self.y.check_ready();
            if !ready {
                return false;
            }
            if self.x.d <= SMALL_WINDOW {
                self.exact_plain();
                return true;
            }
            if self.x.take_exact() | self.y.take_exact() {
                self.exact();
                return true;
            }
            let (oa, ob) = (
                old_a.expect("sliding") - self.kx,
                old_b.expect("sliding") - self.ky,
            );
            let (a, b) = (a - self.kx, b - self.ky);
            // Remove the oldest pair (n: d -> d-1), then add the new one (d-1 -> d).
            let n = self.x.d as f64;
            let (mx1, my1) = (
                self.mx - (oa - self.mx) / (n - 1.0),
                self.my - (ob - self.my) / (n - 1.0),
            );
            self.c -= (oa - mx1) * (ob - self.my);
            self.m2x -= (oa - mx1) * (oa - self.mx);
            self.m2y -= (ob - my1) * (ob - self.my);
            let (dx, dy) = (a - mx1, b - my1);
            self.mx = mx1 + dx / n;
            self.my = my1 + dy / n;
            self.c += dx * (b - self.my);
            self.m2x += dx * (a - self.mx);
            self.m2y += dy * (b - self.my);
            true
        }
    }

    struct Cov {
        m: Moments,
        correlation: bool,
    }

    impl crate::layout::Rolling2 for Cov {
        fn push(&mut self, a: f64, b: f64) -> f64 {
            let d = self.m.x.d;
            if !self.m.push(a, b) || d < 2 {
                return f64::NAN;
            }
            let flat = self.m.x.flat() || self.m.y.flat();
            match (self.correlation, flat) {
                (false, true) => 0.0,
                (false, false) => self.m.c / (d as f64 - 1.0),
                (true, true) => f64::NAN,
                (true, false) => {
                    self.m.c / (non_negative(self.m.m2x) * non_negative(self.m.m2y)).sqrt()
                }
            }
        }
    }

    #[test]
    fn running_moments_give_the_bits_of_the_window_state_machine() {
        let (x, y) = (panel(6), panel(7));
        for d in [SMALL_WINDOW + 1, 20, 45, 89, 120] {
            for correlation_ in [false, true] {
                let want = crate::layout::rolling2(&x, &y, || Cov {
                    m: Moments::new(d),
                    correlation: correlation_,
                });
                let got = if correlation_ {
                    correlation(&x, &y, d)
                } else {
                    covariance(&x, &y, d)
                };
                check("covariance/correlation", &got, |t, j| want[[t, j]]);
            }
            let want = rolling(&x, || {
                let mut m = Moments::new(d);
                move |v: f64| {
                    if !m.push(v, v) {
                        f64::NAN
                    } else if m.x.flat() {
                        0.0
                    } else {
                        (non_negative(m.m2x) / (d as f64 - 1.0)).sqrt()
                    }
                }
            });
            check("ts_std", &ts_std(&x, d), |t, j| want[[t, j]]);
        }
    }

    #[test]
    fn running_sums_give_the_bits_of_the_window_state_machine() {
        let x = panel(5);
        for d in [SMALL_WINDOW + 1, 20, 45, 89, 120] {
            let want = rolling(&x, || sum_state(d));
            check("ts_sum", &ts_sum(&x, d), |t, j| want[[t, j]]);
            check("ts_mean", &ts_mean(&x, d), |t, j| want[[t, j]] / d as f64);
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
    // arithmetic, not against the state machines the kernels replaced.

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
    fn long_window_products_match_the_plain_product() {
        // Values near 1 (so that 250 of them neither overflow nor underflow), zeros, ties,
        // negative values, flat runs, NaN and ±inf; and the long panel as it is.
        let x = long_panel(14, 300, 10);
        let near_one = x.mapv(|v| match v {
            _ if !v.is_finite() => v,
            _ if v.fract() == 0.0 && v.abs() < 3.0 => v - 1.0, // -1, 0, 1: ties, zeros
            _ => 1.0 + (v * 7.0).sin() * 0.05,
        });
        for panel in [&near_one, &x] {
            for d in LONG {
                let got = ts_product(panel, d);
                for ((t, j), &g) in got.indexed_iter() {
                    let want = window(panel, t, j, d)
                        .map_or(f64::NAN, |w| w.iter().skip(1).fold(w[0], |p, v| p * v));
                    // Any order of d roundings is within d ulps of the plain product,
                    // unless a partial product overflows or underflows on one side only.
                    close(
                        "ts_product",
                        d,
                        (t, j),
                        g,
                        want,
                        4.0 * d as f64 * f64::EPSILON * want.abs(),
                    );
                }
            }
        }
    }

    #[test]
    fn long_window_extremes_and_ts_rank_match_their_definitions() {
        check_extremes_and_ts_rank(&long_panel(15, 300, 10), &LONG);
    }
}
