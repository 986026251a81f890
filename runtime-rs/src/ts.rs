//! Time-series kernels: each column on its own, along time (shared/OPS.md).
//!
//! A window that is not yet full, or that holds a NaN, gives NaN (pandas `min_periods=d`).
//! Every kernel is O(1) or O(log d) amortized per step:
//! - sums, means, `decay_linear`, `ts_std`, `covariance`, `correlation`: running
//!   compensated sums / co-moments, re-anchored by an exact two-pass recompute every `d`
//!   steps, so long series do not drift;
//! - `ts_min`, `ts_max`, `ts_argmin`, `ts_argmax`: monotonic deques;
//! - `ts_rank`: the window kept sorted (binary search; the insert moves at most d values);
//! - `ts_product`: a two-stack queue of partial products (no division, zeros are fine).
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

use crate::layout::{rolling, rolling2, Rolling, Rolling2};
use crate::Panel;
use ndarray::{s, Array2};
use std::collections::VecDeque;

/// Windows up to this size are recomputed directly at every step.
pub const SMALL_WINDOW: usize = 16;

/// Σ of values in order, no compensation: what numpy's reductions do for short rows.
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
    fn flat(&self) -> bool {
        self.run >= self.d
    }

    /// Whether a ready window's running sums must be rebuilt exactly: after filling or a
    /// NaN (stale), every `d` steps (anchor), and while infinities make them meaningless.
    /// Call only on a ready window; a window that is not ready marks itself stale.
    fn take_exact(&mut self) -> bool {
        if self.stale || self.since_anchor >= self.d || self.infs > 0 {
            self.since_anchor = 0;
            self.stale = false;
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
pub fn delay(x: &Panel, d: usize) -> Panel {
    let (t, n) = x.dim();
    let mut out = Array2::from_elem((t, n), f64::NAN);
    if d < t {
        out.slice_mut(s![d.., ..]).assign(&x.slice(s![..t - d, ..]));
    }
    out
}

/// `x - x.shift(d)`.
pub fn delta(x: &Panel, d: usize) -> Panel {
    let shifted = delay(x, d);
    crate::kernels::map([x, &shifted], |[a, b]| a - b)
}

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

/// `x.rolling(d).sum()`.
pub fn ts_sum(x: &Panel, d: usize) -> Panel {
    rolling(x, || sum_state(d))
}

/// `x.rolling(d).mean()`.
pub fn ts_mean(x: &Panel, d: usize) -> Panel {
    let inv = d as f64;
    rolling(x, || {
        let mut state = sum_state(d);
        move |v: f64| state.push(v) / inv
    })
}

impl<F: FnMut(f64) -> f64 + Send> Rolling for F {
    fn push(&mut self, x: f64) -> f64 {
        self(x)
    }
}

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

/// `x.rolling(d).std()` (ddof=1); exactly 0 on a flat window.
pub fn ts_std(x: &Panel, d: usize) -> Panel {
    rolling(x, || {
        let mut m = Moments::new(d);
        move |v: f64| {
            if !m.push(v, v) || d < 2 {
                f64::NAN
            } else if m.x.flat() {
                0.0
            } else {
                (m.m2x.max(0.0) / (d as f64 - 1.0)).sqrt()
            }
        }
    })
}

struct Cov {
    m: Moments,
    correlation: bool,
}

impl Rolling2 for Cov {
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
            (true, false) => self.m.c / (self.m.m2x.max(0.0) * self.m.m2y.max(0.0)).sqrt(),
        }
    }
}

/// `x.rolling(d).cov(y)` (ddof=1); exactly 0 where either window is flat.
pub fn covariance(x: &Panel, y: &Panel, d: usize) -> Panel {
    rolling2(x, y, || Cov {
        m: Moments::new(d),
        correlation: false,
    })
}

/// `x.rolling(d).corr(y)`; NaN where either window is flat.
pub fn correlation(x: &Panel, y: &Panel, d: usize) -> Panel {
    rolling2(x, y, || Cov {
        m: Moments::new(d),
        correlation: true,
    })
}

/// A monotonic deque over a window: the front is the window's min (or max), earliest
/// first on ties.
struct Extreme {
    w: Window,
    deque: VecDeque<(usize, f64)>,
    step: usize,
    max: bool,
}

impl Extreme {
    fn new(d: usize, max: bool) -> Self {
        Extreme {
            w: Window::new(window_len(d)),
            deque: VecDeque::new(),
            step: 0,
            max,
        }
    }

    /// Feeds a value; returns (index of the extreme, its value) when the window is ready.
    fn push(&mut self, x: f64) -> Option<(usize, f64)> {
        let i = self.step;
        self.step += 1;
        self.w.push(x);
        if !x.is_nan() {
            let max = self.max;
            while let Some(&(_, back)) = self.deque.back() {
                let beaten = if max { back < x } else { back > x };
                if !beaten {
                    break;
                }
                self.deque.pop_back();
            }
            self.deque.push_back((i, x));
        }
        while let Some(&(j, _)) = self.deque.front() {
            if j + self.w.d <= i {
                self.deque.pop_front();
            } else {
                break;
            }
        }
        if self.w.ready() {
            self.deque.front().copied()
        } else {
            None
        }
    }
}

fn extreme(x: &Panel, d: usize, max: bool, position: bool) -> Panel {
    rolling(x, || {
        let mut e = Extreme::new(d, max);
        move |v: f64| match e.push(v) {
            // 1 = the oldest day of the window.
            Some((j, _)) if position => (j + d - (e.step - 1)) as f64,
            Some((_, value)) => value,
            None => f64::NAN,
        }
    })
}

/// `x.rolling(d).min()`.
pub fn ts_min(x: &Panel, d: usize) -> Panel {
    extreme(x, d, false, false)
}

/// `x.rolling(d).max()`.
pub fn ts_max(x: &Panel, d: usize) -> Panel {
    extreme(x, d, true, false)
}

/// 1-based position of the window's minimum (1 = oldest; first occurrence on ties).
pub fn ts_argmin(x: &Panel, d: usize) -> Panel {
    extreme(x, d, false, true)
}

/// 1-based position of the window's maximum (1 = oldest; first occurrence on ties).
pub fn ts_argmax(x: &Panel, d: usize) -> Panel {
    extreme(x, d, true, true)
}

/// Rank of today's value within its window (average ties), divided by `d`.
pub fn ts_rank(x: &Panel, d: usize) -> Panel {
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
pub fn ts_product(x: &Panel, d: usize) -> Panel {
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
pub fn decay_linear(x: &Panel, d: usize) -> Panel {
    let total = (d * (d + 1)) as f64 / 2.0;
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
