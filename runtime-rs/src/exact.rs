//! Exact sums over sliding windows, for the long-window kernels of [`crate::ts`].
//!
//! A running sum that adds the entering value and subtracts the leaving one rounds at
//! every step, so its bits at row `t` depend on every value it saw since it was last
//! rebuilt: on where the series started, on where the last NaN was. Here the running
//! state is the *exact* sum of the window, so whatever is read from it is a function of
//! the window's values alone (of their multiset, even: their order does not matter).
//!
//! - [`WindowSum`] keeps the exact sum of a window as a normalized double-double
//!   `(hi, lo)`: `hi + lo` is the sum exactly and `hi` is that sum correctly rounded.
//!   A step adds the entering terms and subtracts the leaving ones with error-free
//!   transformations ([`two_sum`]; 18 flops a term, and a test that nothing was lost).
//!   When the exact sum of a step does not fit in two doubles (the window's values span
//!   more than about 2^53 in magnitude with bits at both ends, say 1 and 1e-17), the
//!   state becomes Shewchuk's expansion of the sum ([`Partials`], the partials of Python's
//!   `math.fsum`) and slides as one, O(its length) per step (a handful of doubles), until
//!   the sum fits in two doubles again.
//! - [`LaneSums`]: [`LANES`] such sums side by side (the columns of a block), their
//!   double-doubles in arrays so that a step of all of them is a loop that vectorizes.
//! - [`WindowSum::pair`] is the canonical pair `(round(S), round(S - round(S)))` of the
//!   exact sum `S`: a function of the window, and `S` itself whenever `S` fits in two
//!   doubles, so it can feed further exact arithmetic.
//! - [`co_moment`] computes `n·(p + e) - a·b` from such pairs, correctly rounded: the
//!   numerator of a sample variance or covariance, `n·Σxy - Σx·Σy`, from exact sums of
//!   the products `x·y` split exactly into `p + e` by [`two_prod`]; [`co_moment_lanes`]
//!   for every lane of [`LaneSums`] at once.
//!
//! Values whose magnitude is at least [`HUGE`] (and infinities, and NaN) are never given
//! to these sums: squares of values up to `HUGE`, times window lengths, stay far from
//! overflow, which the error-free transformations need. Callers count such values in
//! their windows and compute those windows directly, as IEEE arithmetic does.

/// Values with `|v| >= HUGE` (2^448, about 7.3e134) are left to the callers' direct
/// path: below it, `v²·n²` stays under 2^1023 for any window length `n < 2^63`, so the
/// exact sums of values and of their products, and [`co_moment`], cannot overflow.
pub const HUGE: f64 = 7.268387242956069e134; // 2^448

/// Whether `v` may enter a [`WindowSum`]: finite and below [`HUGE`] in magnitude (false
/// for NaN and ±inf).
#[inline(always)]
pub fn regular(v: f64) -> bool {
    v.abs() < HUGE
}

/// `a + b = s + e` exactly, `s = fl(a + b)` (Knuth's TwoSum; exact for all finite
/// inputs whose sum does not overflow, subnormals included).
#[inline(always)]
pub fn two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    let bb = s - a;
    let e = (a - (s - bb)) + (b - bb);
    (s, e)
}

/// Whether the build target has a fused multiply-add (aarch64 always; x86-64 when built
/// with `-C target-feature=+fma`): then [`two_prod`] is `fma`-based.
pub const TARGET_FMA: bool = cfg!(any(target_feature = "fma", target_arch = "aarch64"));

/// `a·b = p + e` exactly, `p = fl(a·b)`, unless `e` falls below the smallest normal
/// double (products under about 2^-969), where `e` is rounded: still a function of `a`
/// and `b`, so sums built from it stay functions of the window. [`two_prod_with`] as the
/// build target allows.
#[inline(always)]
pub fn two_prod(a: f64, b: f64) -> (f64, f64) {
    two_prod_with::<TARGET_FMA>(a, b)
}

/// [`two_prod`]: with `FMA`, `e = fma(a, b, -p)`, for code compiled where the CPU has a
/// fused multiply-add (the target, or a `#[target_feature(enable = "fma")]` function:
/// elsewhere `f64::mul_add` is a call into libm); without, Dekker's product (Veltkamp
/// splits, 17 flops). The two give the same doubles wherever `e` is exact, as above.
#[inline(always)]
pub fn two_prod_with<const FMA: bool>(a: f64, b: f64) -> (f64, f64) {
    let p = a * b;
    if FMA {
        (p, a.mul_add(b, -p))
    } else {
        let (ah, al) = split(a);
        let (bh, bl) = split(b);
        (p, ((ah * bh - p) + ah * bl + al * bh) + al * bl)
    }
}

/// Veltkamp's split: `a = hi + lo` with each half of at most 26 significant bits
/// (exact for `|a| < 2^996`).
#[inline(always)]
fn split(a: f64) -> (f64, f64) {
    let c = 134217729.0 * a; // 2^27 + 1
    let hi = c - (c - a);
    (hi, a - hi)
}

/// The exact sum of any number of finite doubles, as Shewchuk's non-overlapping
/// partials (increasing magnitude, no zeros), the algorithm of Python's `math.fsum`.
#[derive(Clone, Debug, Default)]
pub struct Partials {
    parts: Vec<f64>,
}

impl Partials {
    pub fn new() -> Self {
        Partials { parts: Vec::new() }
    }

    /// Back to the empty sum.
    pub fn clear(&mut self) {
        self.parts.clear();
    }

    /// The partials, increasing in magnitude; their exact sum is the sum of every value
    /// added so far.
    pub fn parts(&self) -> &[f64] {
        &self.parts
    }

    /// Adds `x` (finite, and the sum must not overflow) exactly.
    pub fn add(&mut self, mut x: f64) {
        debug_assert!(x.is_finite(), "partials of finite values only");
        let mut i = 0;
        for k in 0..self.parts.len() {
            let mut y = self.parts[k];
            if x.abs() < y.abs() {
                std::mem::swap(&mut x, &mut y);
            }
            let hi = x + y;
            let lo = y - (hi - x);
            if lo != 0.0 {
                self.parts[i] = lo;
                i += 1;
            }
            x = hi;
        }
        self.parts.truncate(i);
        if x != 0.0 {
            self.parts.push(x);
        }
    }

    /// The exact sum correctly rounded to a double, ties to even (`+0.0` for an exact 0).
    pub fn round(&self) -> f64 {
        let p = &self.parts;
        let Some(mut n) = p.len().checked_sub(1) else {
            return 0.0;
        };
        let mut hi = p[n];
        let mut lo = 0.0;
        // Sum from the top while that is exact; the first inexact step rounds.
        while n > 0 {
            let x = hi;
            n -= 1;
            let y = p[n];
            hi = x + y;
            lo = y - (hi - x);
            if lo != 0.0 {
                break;
            }
        }
        // A halfway `lo` rounded to even is wrong when the partials below it push the
        // sum off the midpoint, in the direction of `lo`: then round away instead.
        if n > 0 && ((lo < 0.0 && p[n - 1] < 0.0) || (lo > 0.0 && p[n - 1] > 0.0)) {
            let y = lo * 2.0;
            let x = hi + y;
            if y == x - hi {
                hi = x;
            }
        }
        hi + 0.0
    }

    /// The canonical pair `(round(S), round(S - round(S)))` of the exact sum `S`, and
    /// whether it is exact (`S` fits in two doubles). `scratch` is working space.
    pub fn pair(&self, scratch: &mut Partials) -> ((f64, f64), bool) {
        let hi = self.round();
        scratch.parts.clear();
        scratch.parts.extend_from_slice(&self.parts);
        scratch.add(-hi);
        let lo = scratch.round();
        scratch.add(-lo);
        ((hi, lo), scratch.parts.is_empty())
    }

    /// Rewrites the partials as the greedy expansion `r1 + r2 + ...`, `r_k` the correctly
    /// rounded remainder: the same exact sum in the fewest parts this gives (each part
    /// holds 53 bits of it), for an expansion that has grown long while sliding.
    fn compress(&mut self) {
        let mut rounded = Vec::new();
        while !self.parts.is_empty() {
            let r = self.round();
            rounded.push(r);
            self.add(-r);
        }
        self.parts.extend(rounded.into_iter().rev());
        debug_assert!(self.parts.windows(2).all(|w| w[0].abs() < w[1].abs()));
    }
}

/// An expansion longer than this is compressed (it grows by at most one part a term; a
/// window's sum needs about one part per 53 bits its values span).
const MAX_PARTS: usize = 32;

/// The exact sum of a sliding window's terms (see the module docs): a normalized
/// double-double while the sum fits in two doubles, an expansion otherwise.
#[derive(Clone, Debug, Default)]
pub struct WindowSum {
    /// The canonical pair of the sum; the sum itself unless `wide`.
    hi: f64,
    lo: f64,
    /// The sum does not fit in two doubles: `parts` holds it.
    wide: bool,
    parts: Partials,
    scratch: Partials,
}

impl WindowSum {
    pub fn new() -> Self {
        WindowSum {
            hi: 0.0,
            lo: 0.0,
            wide: false,
            parts: Partials::new(),
            scratch: Partials::new(),
        }
    }

    /// Starts over from the exact sum of `terms` (each finite, below [`HUGE`]): O(their
    /// number).
    pub fn reset(&mut self, terms: impl IntoIterator<Item = f64>) {
        (self.hi, self.lo, self.wide) = (0.0, 0.0, false);
        for v in terms {
            self.update([v]);
        }
    }

    /// Adds the terms (a leaving term enters negated): exactly, so that the state is the
    /// exact sum of the window's terms whatever the history.
    #[inline(always)]
    pub fn update<const K: usize>(&mut self, terms: [f64; K]) {
        if !self.wide {
            let (mut hi, mut lo) = (self.hi, self.lo);
            let mut lost = false;
            for v in terms {
                // hi + lo + v = s + e + lo = s + t + f = h + l + f, each step exact;
                // while f = 0, (h, l) is the normalized pair of the new sum.
                let (s, e) = two_sum(hi, v);
                let (t, f) = two_sum(lo, e);
                (hi, lo) = two_sum(s, t);
                lost |= f != 0.0;
            }
            if !lost {
                (self.hi, self.lo) = (hi, lo);
                return;
            }
            // The pair before this step is still exact: the expansion starts from it.
            self.parts.clear();
            self.parts.add(self.hi);
            self.parts.add(self.lo);
        }
        for v in terms {
            self.parts.add(v);
        }
        self.settle();
    }

    /// [`WindowSum::update`] for terms of any number (the slow path).
    pub fn update_with(&mut self, terms: impl IntoIterator<Item = f64>) {
        if !self.wide {
            self.parts.clear();
            self.parts.add(self.hi);
            self.parts.add(self.lo);
        }
        for v in terms {
            self.parts.add(v);
        }
        self.settle();
    }

    /// Sets the state to the exact sum `hi + lo`, a normalized pair (`hi = fl(hi + lo)`).
    fn set_narrow(&mut self, hi: f64, lo: f64) {
        (self.hi, self.lo, self.wide) = (hi, lo, false);
    }

    /// From `parts`: the canonical pair, and back to two doubles when the sum fits.
    fn settle(&mut self) {
        if self.parts.parts.len() > MAX_PARTS {
            self.parts.compress();
        }
        let ((hi, lo), exact) = self.parts.pair(&mut self.scratch);
        (self.hi, self.lo, self.wide) = (hi, lo, !exact);
    }

    /// The exact sum correctly rounded (ties to even; `+0.0` for 0).
    #[inline(always)]
    pub fn value(&self) -> f64 {
        self.hi + 0.0
    }

    /// The canonical pair `(round(S), round(S - round(S)))` of the exact sum `S`, zeros
    /// positive: `S` exactly unless [`WindowSum::is_wide`].
    #[inline(always)]
    pub fn pair(&self) -> (f64, f64) {
        (self.hi + 0.0, self.lo + 0.0)
    }

    /// Whether the exact sum needs more than two doubles.
    pub fn is_wide(&self) -> bool {
        self.wide
    }

    /// Subtracts the exact sum of `other` (the pair, or the expansion when wide).
    pub fn subtract(&mut self, other: &WindowSum) {
        if other.wide {
            self.update_with(other.parts.parts().iter().map(|v| -v));
        } else {
            self.update([-other.hi, -other.lo]);
        }
    }
}

/// Columns a block kernel advances together: the lanes of a [`LaneSums`].
pub const LANES: usize = 16;

/// At most this many lanes wanted: [`co_moment_lanes`] goes lane by lane rather than
/// through a loop over all lanes.
const SPARSE: usize = 4;

/// [`LANES`] exact window sums side by side, one per column of a block. The
/// double-double states live in arrays, so that a step of every lane is a loop the
/// compiler vectorizes ([`LaneSums::update`]); a lane whose sum is wide, or whose step
/// lost exactness, goes through its own [`WindowSum`] instead.
#[derive(Clone, Debug)]
pub struct LaneSums {
    /// Each lane's canonical pair; its exact sum unless `wide`.
    hi: [f64; LANES],
    lo: [f64; LANES],
    /// The lane's sum needs more than two doubles: `slow[lane]` holds it.
    wide: [bool; LANES],
    slow: Vec<WindowSum>,
}

impl Default for LaneSums {
    fn default() -> Self {
        LaneSums::new()
    }
}

impl LaneSums {
    /// Every lane at 0.
    pub fn new() -> Self {
        LaneSums {
            hi: [0.0; LANES],
            lo: [0.0; LANES],
            wide: [false; LANES],
            slow: (0..LANES).map(|_| WindowSum::new()).collect(),
        }
    }

    /// Adds `terms[k][lane]` (k = 0, 1, ...) to every lane, exactly (a leaving term
    /// enters negated).
    #[inline(always)]
    pub fn update<const K: usize>(&mut self, terms: [&[f64; LANES]; K]) {
        let (mut hi, mut lo) = (self.hi, self.lo);
        let mut lost = [false; LANES];
        for v in terms {
            for c in 0..LANES {
                // As in WindowSum::update: exact while f = 0.
                let (s, e) = two_sum(hi[c], v[c]);
                let (t, f) = two_sum(lo[c], e);
                (hi[c], lo[c]) = two_sum(s, t);
                lost[c] |= f != 0.0;
            }
        }
        let mut slow = [false; LANES];
        for c in 0..LANES {
            slow[c] = self.wide[c] | lost[c];
            self.hi[c] = if slow[c] { self.hi[c] } else { hi[c] };
            self.lo[c] = if slow[c] { self.lo[c] } else { lo[c] };
        }
        if slow.contains(&true) {
            for c in (0..LANES).filter(|&c| slow[c]) {
                self.update_lane(c, terms.map(|v| v[c]));
            }
        }
    }

    /// Adds `terms` to one lane through its expansion (the slow path of
    /// [`LaneSums::update`], for terms of any number).
    #[inline(never)]
    pub fn update_lane(&mut self, lane: usize, terms: impl IntoIterator<Item = f64>) {
        let slow = &mut self.slow[lane];
        if !self.wide[lane] {
            slow.set_narrow(self.hi[lane], self.lo[lane]);
        }
        slow.update_with(terms);
        (self.hi[lane], self.lo[lane], self.wide[lane]) = (slow.hi, slow.lo, slow.wide);
    }

    /// Subtracts lane `lane` of `other` from lane `lane`, exactly, narrow or wide.
    pub fn subtract_lane(&mut self, lane: usize, other: &LaneSums) {
        if other.wide[lane] {
            let parts = other.slow[lane].parts.parts();
            self.update_lane(lane, parts.iter().map(|v| -v));
        } else {
            self.update_lane(lane, [-other.hi[lane], -other.lo[lane]]);
        }
    }

    /// The lane's exact sum correctly rounded (ties to even; `+0.0` for 0).
    #[inline(always)]
    pub fn value(&self, lane: usize) -> f64 {
        self.hi[lane] + 0.0
    }

    /// The lane's canonical pair, as [`WindowSum::pair`].
    #[inline(always)]
    pub fn pair(&self, lane: usize) -> (f64, f64) {
        (self.hi[lane] + 0.0, self.lo[lane] + 0.0)
    }

    /// Whether the lane's exact sum needs more than two doubles.
    #[inline(always)]
    pub fn is_wide(&self, lane: usize) -> bool {
        self.wide[lane]
    }

    /// Every lane's canonical pair, as two arrays (zeros not made positive).
    #[inline(always)]
    pub fn pairs(&self) -> (&[f64; LANES], &[f64; LANES]) {
        (&self.hi, &self.lo)
    }
}

/// `n·(p + e) - a·b` correctly rounded (ties to even; `+0.0` for 0), each argument a
/// canonical pair `(hi, lo)` standing for `hi + lo`; `n` an integer below 2^53. Exact
/// arithmetic on the pairs' doubles (each product split by [`two_prod`]), so a function of
/// its arguments: given the canonical pairs of `Σx·y` (its `p` and `e` parts), `Σx`,
/// `Σy` and the window length, a function of the window.
///
/// A double-double evaluation with a bound on its error answers when the bound shows
/// which double the exact value rounds to; otherwise the sixteen exact terms go through
/// [`Partials`]. Both give the correctly rounded value. The bound is about 2^-99 of the
/// leading terms `n·p` and `a·b`, so the exact tier runs for a share of about
/// `2^-46 · |n·p| / |result|` of the calls: rarely, unless the result cancels to less
/// than some 2^-40 of them (a window whose mean is millions of standard deviations
/// away from 0).
#[inline(always)]
pub fn co_moment(
    n: f64,
    p: (f64, f64),
    e: (f64, f64),
    a: (f64, f64),
    b: (f64, f64),
    scratch: &mut Partials,
) -> f64 {
    co_moment_with::<TARGET_FMA>(n, p, e, a, b, scratch)
}

/// [`co_moment`] with [`two_prod_with::<FMA>`](two_prod_with).
#[inline(always)]
pub fn co_moment_with<const FMA: bool>(
    n: f64,
    p: (f64, f64),
    e: (f64, f64),
    a: (f64, f64),
    b: (f64, f64),
    scratch: &mut Partials,
) -> f64 {
    match co_moment_fast::<FMA>(n, p, e, a, b) {
        Some(v) => v,
        None => co_moment_exact(n, p, e, a, b, scratch),
    }
}

/// The double-double tier of [`co_moment`]: `Some(the correctly rounded value)` when its
/// error bound decides the rounding, else `None`.
#[inline(always)]
fn co_moment_fast<const FMA: bool>(
    n: f64,
    p: (f64, f64),
    e: (f64, f64),
    a: (f64, f64),
    b: (f64, f64),
) -> Option<f64> {
    let (r, decided) = co_moment_try::<FMA>(n, p, e, a, b);
    decided.then_some(r)
}

/// [`co_moment_fast`] without branches (it vectorizes): the double-double value and
/// whether it is the correctly rounded one.
#[inline(always)]
fn co_moment_try<const FMA: bool>(
    n: f64,
    p: (f64, f64),
    e: (f64, f64),
    a: (f64, f64),
    b: (f64, f64),
) -> (f64, bool) {
    // Leading terms exactly; their difference holds the cancellation.
    let (np, np_err) = two_prod_with::<FMA>(n, p.0);
    let (ab, ab_err) = two_prod_with::<FMA>(a.0, b.0);
    let (s, s_err) = two_sum(np, -ab);
    // First-order terms (each at most about 2^-52 of the leading ones), summed plainly:
    // 7 terms, 4 of them rounded products, 6 additions: error <= 7u·Σ|t| (u = 2^-53).
    let t = [
        s_err,
        np_err,
        -ab_err,
        n * p.1,
        n * e.0,
        -(a.0 * b.1),
        -(a.1 * b.0),
    ];
    let rest = ((t[0] + t[1]) + (t[2] + t[3])) + ((t[4] + t[5]) + t[6]);
    let size = ((t[0].abs() + t[1].abs()) + (t[2].abs() + t[3].abs()))
        + ((t[4].abs() + t[5].abs()) + t[6].abs());
    // Second-order terms left out (about 2^-104 of the leading ones), with their
    // rounding errors: twice their computed magnitudes covers them.
    let left_out = (n * e.1).abs() + (a.1 * b.1).abs();
    // 2^-49 > 7u / (1 - 8u): covers the rounding of `size` too.
    let bound = size * (1.0 / 562949953421312.0) + 2.0 * left_out;
    let (r, delta) = two_sum(s, rest);
    // Every term but s, -ab was 0: r = s = the exact value.
    let exact = bound == 0.0 && delta == 0.0;
    // The exact value lies within `bound` of r + delta; it rounds to r when that whole
    // interval stays inside r's rounding interval, whose half-widths are half an ulp of r
    // (a quarter below a power of two, whose lower neighbour is closer). Below 2^-960
    // those would be subnormal: left to the exact tier.
    let bits = r.abs().to_bits();
    let power = f64::from_bits(bits & 0x7ff0_0000_0000_0000); // 2^exponent(r)
    let scale = if bits & 0x000f_ffff_ffff_ffff == 0 {
        1.0 / 18014398509481984.0 // 2^-54
    } else {
        1.0 / 9007199254740992.0 // 2^-53
    };
    // The factor covers the rounding of the sum on its left.
    let inside = (delta.abs() + bound) * (1.0 + 1.0 / 1125899906842624.0) < power * scale;
    (r + 0.0, exact | (inside & (r.abs() >= 1.0e-289)))
}

/// [`co_moment_with`] of every lane of the sums where `want[lane]`, into `out[lane]`
/// (the other lanes get any value): the double-double tier of all lanes in one loop the
/// compiler vectorizes, the exact tier for the lanes it does not decide.
#[inline(always)]
pub fn co_moment_lanes<const FMA: bool>(
    n: f64,
    [p, e, a, b]: [&LaneSums; 4],
    want: &[bool; LANES],
    out: &mut [f64; LANES],
    scratch: &mut Partials,
) {
    if want.iter().filter(|&&w| w).count() <= SPARSE {
        for c in (0..LANES).filter(|&c| want[c]) {
            out[c] = co_moment_with::<FMA>(n, p.pair(c), e.pair(c), a.pair(c), b.pair(c), scratch);
        }
        return;
    }
    let mut decided = [false; LANES];
    for c in 0..LANES {
        let pair = |s: &LaneSums| (s.hi[c] + 0.0, s.lo[c] + 0.0);
        (out[c], decided[c]) = co_moment_try::<FMA>(n, pair(p), pair(e), pair(a), pair(b));
    }
    for c in 0..LANES {
        if want[c] && !decided[c] {
            out[c] = co_moment_exact(n, p.pair(c), e.pair(c), a.pair(c), b.pair(c), scratch);
        }
    }
}

/// The eight products (x, y, sign) whose sum is `n·(p + e) - a·b`, each pair a double-double:
/// what [`co_moment_exact`] and the tests' oracle add up.
fn co_moment_terms(
    n: f64,
    p: (f64, f64),
    e: (f64, f64),
    a: (f64, f64),
    b: (f64, f64),
) -> [(f64, f64, f64); 8] {
    [
        (n, p.0, 1.0),
        (n, p.1, 1.0),
        (n, e.0, 1.0),
        (n, e.1, 1.0),
        (a.0, b.0, -1.0),
        (a.0, b.1, -1.0),
        (a.1, b.0, -1.0),
        (a.1, b.1, -1.0),
    ]
}

/// The exact tier of [`co_moment`]: the sixteen doubles of the split products through
/// [`Partials`], correctly rounded.
#[cold]
#[inline(never)]
fn co_moment_exact(
    n: f64,
    p: (f64, f64),
    e: (f64, f64),
    a: (f64, f64),
    b: (f64, f64),
    scratch: &mut Partials,
) -> f64 {
    scratch.clear();
    for (x, y, sign) in co_moment_terms(n, p, e, a, b) {
        let (hi, lo) = two_prod(x, y);
        scratch.add(sign * hi);
        scratch.add(sign * lo);
    }
    scratch.round()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An exact fixed-point accumulator (the oracle): a two's complement integer of
    /// `LIMBS` 64-bit limbs counting units of 2^-BIAS, enough for any sum of doubles
    /// below 2^1024 and of their pairwise products.
    #[derive(Clone)]
    struct Exact {
        limbs: Vec<u64>,
    }

    const LIMBS: usize = 72;
    const BIAS: i64 = 2200;

    /// `v = m·2^k` with `m` an integer of at most 53 bits.
    fn decompose(v: f64) -> (u64, i64) {
        let bits = v.abs().to_bits();
        let exp = (bits >> 52) as i64;
        let frac = bits & ((1 << 52) - 1);
        if exp == 0 {
            (frac, -1074)
        } else {
            (frac | (1 << 52), exp - 1075)
        }
    }

    impl Exact {
        fn zero() -> Self {
            Exact {
                limbs: vec![0; LIMBS],
            }
        }

        fn of(values: &[f64]) -> Self {
            let mut e = Exact::zero();
            values.iter().for_each(|&v| e.add(v));
            e
        }

        /// Adds `±m·2^(shift - BIAS)`.
        fn add_scaled(&mut self, m: u128, shift: i64, negative: bool) {
            assert!(shift >= 0, "below the accumulator's unit");
            let (limb, bit) = ((shift / 64) as usize, (shift % 64) as u32);
            // m << bit spans at most three limbs.
            let wide = [
                (m << bit) as u64,
                ((m << bit) >> 64) as u64,
                if bit == 0 {
                    0
                } else {
                    (m >> (128 - bit)) as u64
                },
            ];
            let mut carry = false;
            for (k, slot) in self.limbs.iter_mut().enumerate().skip(limb) {
                let w = wide.get(k - limb).copied().unwrap_or(0);
                if negative {
                    let (r1, b1) = slot.overflowing_sub(w);
                    let (r2, b2) = r1.overflowing_sub(carry as u64);
                    *slot = r2;
                    carry = b1 || b2;
                } else {
                    let (r1, c1) = slot.overflowing_add(w);
                    let (r2, c2) = r1.overflowing_add(carry as u64);
                    *slot = r2;
                    carry = c1 || c2;
                }
                if !carry && k >= limb + 2 {
                    break;
                }
            }
        }

        fn add(&mut self, v: f64) {
            assert!(v.is_finite());
            if v == 0.0 {
                return;
            }
            let (m, k) = decompose(v);
            self.add_scaled(m as u128, k + BIAS, v < 0.0);
        }

        /// Adds `sign·x·y` exactly.
        fn add_product(&mut self, x: f64, y: f64, sign: f64) {
            if x == 0.0 || y == 0.0 {
                return;
            }
            let ((mx, kx), (my, ky)) = (decompose(x), decompose(y));
            let negative = ((x < 0.0) != (y < 0.0)) != (sign < 0.0);
            self.add_scaled(mx as u128 * my as u128, kx + ky + BIAS, negative);
        }

        fn sub(&self, other: &Exact) -> Exact {
            let mut out = self.clone();
            let mut borrow = false;
            for (o, &b) in out.limbs.iter_mut().zip(&other.limbs) {
                let (r1, b1) = o.overflowing_sub(b);
                let (r2, b2) = r1.overflowing_sub(borrow as u64);
                *o = r2;
                borrow = b1 || b2;
            }
            out
        }

        fn is_zero(&self) -> bool {
            self.limbs.iter().all(|&l| l == 0)
        }

        /// Correctly rounded to a double, ties to even (`+0.0` for 0).
        fn round(&self) -> f64 {
            let negative = self.limbs[LIMBS - 1] >> 63 == 1;
            let mut mag = self.limbs.clone();
            if negative {
                let mut carry = true;
                for l in mag.iter_mut() {
                    let (r, c) = (!*l).overflowing_add(carry as u64);
                    *l = r;
                    carry = c;
                }
            }
            let bit = |i: i64| (mag[(i / 64) as usize] >> (i % 64)) & 1 == 1;
            let Some(top) = (0..LIMBS as i64 * 64).rev().find(|&i| bit(i)) else {
                return 0.0;
            };
            // The last kept bit: 53 bits down from the top, or the unit 2^-1074.
            let low = (top - 52).max(BIAS - 1074);
            let mut m: u64 = 0;
            for i in (low..=top).rev() {
                m = (m << 1) | bit(i) as u64;
            }
            let half = low > 0 && bit(low - 1);
            let sticky = (0..low - 1).any(bit);
            if half && (sticky || m & 1 == 1) {
                m += 1;
            }
            // m·2^(low - BIAS), exactly representable: two exact scalings.
            let k = low - BIAS;
            let pow2 = |k: i64| f64::from_bits(((k + 1023) as u64) << 52);
            let v = if k >= -1022 {
                m as f64 * pow2(k)
            } else {
                m as f64 * pow2(k + 200) * pow2(-200)
            };
            assert!(v.is_finite());
            if negative {
                -v
            } else {
                v
            }
        }

        /// The canonical pair of the exact value.
        fn pair(&self) -> (f64, f64) {
            let hi = self.round();
            let lo = self.sub(&Exact::of(&[hi])).round();
            (hi, lo)
        }
    }

    /// Seeded uniform values in [0, 1) from a linear congruential generator (tests
    /// only; ts.rs's tests use it too).
    pub(crate) fn uniform(seed: u64) -> impl FnMut() -> f64 {
        let mut state = seed;
        move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// Random doubles of every kind the sums take: ordinary noise, wide magnitude
    /// ranges (2^-1074 .. 2^440), subnormals, exact ties and cancellations.
    fn value(next: &mut impl FnMut() -> f64) -> f64 {
        let u = next();
        let sign = if next() < 0.5 { -1.0 } else { 1.0 };
        let mag = match (u * 8.0) as u32 {
            0 | 1 => next() * 100.0,
            2 => 1e6 + next(),
            3 => (next() * 5.0).floor(),
            4 => next() * 2f64.powi((next() * 880.0) as i32 - 440),
            5 => f64::from_bits((next() * (1u64 << 52) as f64) as u64), // subnormal
            6 => 2f64.powi((next() * 200.0) as i32 - 100),
            _ => next() * 1e-17,
        };
        sign * mag
    }

    fn same(a: f64, b: f64) -> bool {
        a.to_bits() == b.to_bits()
    }

    #[test]
    fn oracle_rounds_like_the_hardware_where_one_addition_is_exact() {
        // A sum of two doubles rounds once: fl(a + b) is the correctly rounded sum.
        let mut next = uniform(1);
        for _ in 0..20000 {
            let (a, b) = (value(&mut next), value(&mut next));
            let want = a + b;
            assert!(
                same(Exact::of(&[a, b]).round(), want + 0.0),
                "{a:e} + {b:e}"
            );
            assert!(same(Exact::of(&[a]).round(), a + 0.0));
        }
    }

    #[test]
    fn two_sum_and_two_prod_are_exact() {
        let mut next = uniform(2);
        for _ in 0..20000 {
            let (a, b) = (value(&mut next), value(&mut next));
            let (s, e) = two_sum(a, b);
            assert!(Exact::of(&[a, b]).sub(&Exact::of(&[s, e])).is_zero());
            let (p, e) = two_prod(a, b);
            if p.abs() >= 2f64.powi(-960) {
                let mut x = Exact::zero();
                x.add_product(a, b, 1.0);
                assert!(x.sub(&Exact::of(&[p, e])).is_zero(), "{a:e} * {b:e}");
                // The FMA split and Dekker's agree where exact.
                for split in [two_prod_with::<true>(a, b), two_prod_with::<false>(a, b)] {
                    assert!(same(split.0, p) && same(split.1, e), "{a:e} * {b:e}");
                }
            }
        }
    }

    /// Sets of doubles whose exact sums include exact ties (a value plus half its ulp,
    /// split into pieces), pushed off the tie by a tiny term or not.
    fn tie_set(next: &mut impl FnMut() -> f64) -> Vec<f64> {
        let r = (1.0 + next()) * 2f64.powi((next() * 40.0) as i32 - 20);
        let half_ulp = f64::from_bits(r.to_bits() & 0x7ff0_0000_0000_0000) * 2f64.powi(-53);
        let mut set = vec![r, half_ulp * 0.5, half_ulp * 0.25, half_ulp * 0.25];
        match (next() * 3.0) as u32 {
            0 => set.push(half_ulp * 2f64.powi(-60)),
            1 => set.push(-half_ulp * 2f64.powi(-60)),
            _ => {}
        }
        if next() < 0.5 {
            set.iter_mut().for_each(|v| *v = -*v);
        }
        set
    }

    #[test]
    fn partials_round_correctly_and_give_the_canonical_pair() {
        let mut next = uniform(3);
        let mut scratch = Partials::new();
        let mut inexact = 0;
        for case in 0..4000 {
            let set: Vec<f64> = if case % 4 == 0 {
                tie_set(&mut next)
            } else {
                let len = 1 + (next() * 40.0) as usize;
                let mut set: Vec<f64> = (0..len).map(|_| value(&mut next)).collect();
                if case % 4 == 1 {
                    // Cancel some of them exactly.
                    let extra: Vec<f64> = set.iter().step_by(2).map(|v| -v).collect();
                    set.extend(extra);
                }
                set
            };
            let exact = Exact::of(&set);
            // Any order of the values gives the same partial sum's rounding.
            for order in 0..2 {
                let mut p = Partials::new();
                if order == 0 {
                    set.iter().for_each(|&v| p.add(v));
                } else {
                    set.iter().rev().for_each(|&v| p.add(v));
                }
                assert!(Exact::of(p.parts()).sub(&exact).is_zero());
                assert!(same(p.round(), exact.round()), "{set:?}");
                let (pair, fits) = p.pair(&mut scratch);
                let want = exact.pair();
                assert!(
                    same(pair.0, want.0) && same(pair.1 + 0.0, want.1),
                    "{set:?}"
                );
                assert_eq!(fits, exact.sub(&Exact::of(&[want.0, want.1])).is_zero());
                inexact += !fits as usize;
            }
        }
        assert!(
            inexact > 100,
            "the sets include sums that need three doubles"
        );
    }

    #[test]
    fn compressing_keeps_the_sum_and_orders_the_parts() {
        let mut next = uniform(4);
        for _ in 0..500 {
            let set: Vec<f64> = (0..60).map(|_| value(&mut next)).collect();
            let mut p = Partials::new();
            set.iter().for_each(|&v| p.add(v));
            p.compress();
            assert!(Exact::of(p.parts()).sub(&Exact::of(&set)).is_zero());
            assert!(p.parts().windows(2).all(|w| w[0].abs() < w[1].abs()));
            assert!(p.parts().iter().all(|&v| v != 0.0));
        }
    }

    /// Slides a window of `d` over `xs` from every start in `starts`, checking the
    /// state's value and pair against the oracle at every full window, and the bits
    /// against the run from the first start (translation invariance). Returns how many
    /// steps found the state wide.
    fn slide_and_check(xs: &[f64], d: usize, starts: &[usize]) -> usize {
        let mut first: Vec<(f64, f64)> = Vec::new();
        let mut wide = 0;
        for (run, &start) in starts.iter().enumerate() {
            let mut sum = WindowSum::new();
            let mut got = Vec::new();
            for t in start + d - 1..xs.len() {
                let window = &xs[t + 1 - d..=t];
                if t == start + d - 1 {
                    sum.reset(window.iter().copied());
                } else {
                    sum.update([xs[t], -xs[t - d]]);
                }
                wide += sum.is_wide() as usize;
                let exact = Exact::of(window);
                let (hi, lo) = sum.pair();
                let want = exact.pair();
                assert!(
                    same(hi, want.0) && same(lo, want.1) && same(sum.value(), want.0),
                    "d = {d}, t = {t}: got {hi:e} + {lo:e}, want {:e} + {:e}",
                    want.0,
                    want.1
                );
                // Subtracting the state from a copy of itself leaves an exact 0.
                let mut zero = sum.clone();
                zero.subtract(&sum);
                assert!(same(zero.value(), 0.0) && !zero.is_wide());
                got.push((hi, lo));
            }
            if run == 0 {
                first = got;
            } else {
                let skip = start - starts[0];
                for (k, (g, f)) in got.iter().zip(&first[skip..]).enumerate() {
                    assert!(same(g.0, f.0) && same(g.1, f.1), "start {start}, row {k}");
                }
            }
        }
        wide
    }

    #[test]
    fn window_sums_are_exact_on_ordinary_noise_and_never_wide() {
        let mut next = uniform(5);
        let walk: Vec<f64> = (0..600)
            .scan(100.0, |level, _| {
                *level += next() - 0.5;
                Some(*level)
            })
            .collect();
        let noise: Vec<f64> = (0..600).map(|_| next() * 2.0 - 1.0).collect();
        for xs in [&walk, &noise] {
            for d in [1, 2, 17, 64, 250] {
                assert_eq!(slide_and_check(xs, d, &[0, 1, 7, 37, 300]), 0);
            }
        }
    }

    #[test]
    fn window_sums_are_exact_through_wide_stretches_and_back() {
        let mut next = uniform(6);
        // Ordinary values, with stretches of values 2^60 .. 2^300 apart in magnitude
        // (sums that need three doubles or more), subnormals and exact cancellations.
        let xs: Vec<f64> = (0..900)
            .map(|i| match (i / 100) % 3 {
                1 => value(&mut next),
                _ => next() * 10.0 - 5.0,
            })
            .collect();
        for d in [1, 5, 17, 40, 65] {
            let wide = slide_and_check(&xs, d, &[0, 7, 37, 300]);
            // (One value always fits in one double.)
            assert!(d == 1 || wide > 0, "d = {d}: the wide path ran");
        }
    }

    #[test]
    fn window_sums_of_subnormals_ties_and_cancellations_are_exact() {
        let mut next = uniform(7);
        let tiny: Vec<f64> = (0..300)
            .map(|_| {
                f64::from_bits((next() * 4096.0) as u64) * if next() < 0.5 { -1.0 } else { 1.0 }
            })
            .collect();
        let ties: Vec<f64> = (0..300).flat_map(|_| tie_set(&mut next)).collect();
        // Values that cancel to an exact 0 (the sum's zero must come out +0.0).
        let zeros: Vec<f64> = (0..300)
            .map(|i| if i % 2 == 0 { 0.1 } else { -0.1 })
            .collect();
        let negative_zeros = vec![-0.0; 50];
        for xs in [&tiny, &ties, &zeros, &negative_zeros] {
            for d in [1, 2, 4, 17] {
                slide_and_check(xs, d, &[0, 1, 7]);
            }
        }
    }

    #[test]
    fn long_expansions_are_compressed_and_stay_exact() {
        // Every value a power of two far from its neighbours: each one a part of its own.
        let mut next = uniform(8);
        let xs: Vec<f64> = (0..400)
            .map(|_| 2f64.powi((next() * 1600.0) as i32 - 1060))
            .collect();
        let mut sum = WindowSum::new();
        let d = 70;
        sum.reset(xs[..d].iter().copied());
        for t in d..xs.len() {
            sum.update([xs[t], -xs[t - d]]);
            assert!(sum.parts.parts().len() <= MAX_PARTS + 2);
            let want = Exact::of(&xs[t + 1 - d..=t]).pair();
            assert!(same(sum.pair().0, want.0) && same(sum.pair().1, want.1));
        }
        assert!(sum.is_wide());
    }

    #[test]
    fn update_with_any_number_of_terms_is_exact() {
        let mut next = uniform(9);
        let mut sum = WindowSum::new();
        let mut all = Vec::new();
        sum.reset([]);
        for _ in 0..300 {
            let terms: Vec<f64> = (0..(next() * 5.0) as usize)
                .map(|_| value(&mut next))
                .collect();
            if next() < 0.5 {
                sum.update_with(terms.iter().copied());
            } else {
                for &v in &terms {
                    sum.update([v]);
                }
            }
            all.extend(terms);
            let want = Exact::of(&all).pair();
            assert!(same(sum.pair().0, want.0) && same(sum.pair().1, want.1));
        }
    }

    #[test]
    fn subtracting_a_window_sum_is_exact_narrow_or_wide() {
        let mut next = uniform(11);
        let mut wide = 0;
        for _ in 0..500 {
            let mut set = || -> Vec<f64> {
                let len = 1 + (next() * 20.0) as usize;
                (0..len).map(|_| value(&mut next)).collect()
            };
            let (a, b) = (set(), set());
            let (mut x, mut y) = (WindowSum::new(), WindowSum::new());
            x.reset(a.iter().copied());
            y.reset(b.iter().copied());
            wide += y.is_wide() as usize;
            x.subtract(&y);
            let want = Exact::of(&a).sub(&Exact::of(&b)).pair();
            assert!(same(x.pair().0, want.0) && same(x.pair().1, want.1));
        }
        assert!(wide > 50, "wide sums were subtracted");
    }

    #[test]
    fn lane_sums_are_exact_in_every_lane_narrow_or_wide() {
        // Sixteen lanes of sliding windows (d = 9, filling first): ordinary noise, values
        // of every kind (wide sums, subnormals, ties), and stretches of each in turn.
        let mut next = uniform(12);
        let (d, len) = (9, 300);
        let streams: Vec<Vec<f64>> = (0..LANES)
            .map(|c| {
                (0..len)
                    .map(|i| match c % 3 {
                        0 => next() * 10.0 - 5.0,
                        1 => value(&mut next),
                        _ if (i / 30) % 2 == 0 => next(),
                        _ => value(&mut next),
                    })
                    .collect()
            })
            .collect();
        let mut sums = LaneSums::new();
        let (mut wide, mut narrow) = (0, 0);
        for t in 0..len {
            let enter: [f64; LANES] = std::array::from_fn(|c| streams[c][t]);
            let leave: [f64; LANES] =
                std::array::from_fn(|c| if t >= d { -streams[c][t - d] } else { 0.0 });
            sums.update([&enter, &leave]);
            for (c, stream) in streams.iter().enumerate() {
                let want = Exact::of(&stream[(t + 1).saturating_sub(d)..=t]).pair();
                let got = sums.pair(c);
                assert!(
                    same(got.0, want.0) && same(got.1, want.1),
                    "lane {c}, t = {t}"
                );
                assert!(same(sums.value(c), want.0));
                if sums.is_wide(c) {
                    wide += 1;
                } else {
                    narrow += 1;
                }
            }
            let mut zero = sums.clone();
            for c in 0..LANES {
                zero.subtract_lane(c, &sums);
                assert!(same(zero.value(c), 0.0) && !zero.is_wide(c));
            }
        }
        assert!(wide > 100 && narrow > 100, "{wide} wide, {narrow} narrow");
    }

    /// The exact `n·(p + e) - a·b` of [`co_moment`], from the oracle.
    fn co_moment_oracle(n: f64, p: (f64, f64), e: (f64, f64), a: (f64, f64), b: (f64, f64)) -> f64 {
        let mut x = Exact::zero();
        for (u, v, sign) in co_moment_terms(n, p, e, a, b) {
            x.add_product(u, v, sign);
        }
        x.round()
    }

    type Pair = (f64, f64);

    /// Canonical pairs of the sums `co_moment` is given for a window pair `xs`, `ys`:
    /// (p, e) of Σx·y, Σx, Σy, from the oracle.
    fn window_pairs(xs: &[f64], ys: &[f64]) -> (Pair, Pair, Pair, Pair) {
        let (mut p, mut e) = (Vec::new(), Vec::new());
        for (&x, &y) in xs.iter().zip(ys) {
            let (hi, lo) = two_prod(x, y);
            p.push(hi);
            e.push(lo);
        }
        (
            Exact::of(&p).pair(),
            Exact::of(&e).pair(),
            Exact::of(xs).pair(),
            Exact::of(ys).pair(),
        )
    }

    #[test]
    fn co_moments_are_correctly_rounded_on_both_tiers() {
        let mut next = uniform(10);
        let mut scratch = Partials::new();
        let (mut fast, mut slow) = (0, 0);
        for case in 0..3000 {
            let d = [2, 3, 17, 64, 250][case % 5];
            // Windows at a level far from 0 with a spread from 1e-12 to 1e3 of it (the
            // cancellation in n·Σx² - (Σx)² grows as (level / spread)²), flat windows,
            // windows around 0, tiny and huge values, correlated pairs.
            // (No level where products underflow: there two_prod is not exact.)
            let level: f64 = [0.0, 1.0, 100.0, 1e6, 1e-140, 1e120][(next() * 6.0) as usize];
            let scale = if level == 0.0 { 1.0 } else { level };
            let spread = 10f64.powi(-((next() * 15.0) as i32)) * scale * 1e3;
            let xs: Vec<f64> = (0..d).map(|_| level + spread * (next() - 0.5)).collect();
            let ys: Vec<f64> = match case % 3 {
                0 => xs.clone(),
                1 => xs.iter().map(|x| 2.0 * x + spread * next()).collect(),
                _ => (0..d)
                    .map(|_| (next() - 0.5) * 10f64.powi((next() * 100.0) as i32 - 50))
                    .collect(),
            };
            let n = d as f64;
            let (p, e, a, b) = window_pairs(&xs, &ys);
            let want = co_moment_oracle(n, p, e, a, b);
            let got = co_moment(n, p, e, a, b, &mut scratch);
            assert!(same(got, want), "case {case}: got {got:e}, want {want:e}");
            let with_fma = co_moment_with::<true>(n, p, e, a, b, &mut scratch);
            assert!(
                same(with_fma, want),
                "case {case}, FMA: got {with_fma:e}, want {want:e}"
            );
            assert!(same(co_moment_exact(n, p, e, a, b, &mut scratch), want));
            match co_moment_fast::<TARGET_FMA>(n, p, e, a, b) {
                Some(v) => {
                    assert!(same(v, want));
                    fast += 1;
                }
                None => slow += 1,
            }
            // n·Σx² - (Σx)² is n·Σ(x - mean)²: never negative.
            let (p, e, a, _) = window_pairs(&xs, &xs);
            assert!(co_moment(n, p, e, a, a, &mut scratch) >= 0.0);
        }
        assert!(
            fast > 1000 && slow > 100,
            "both tiers ran: {fast} fast, {slow} exact"
        );
    }

    #[test]
    fn co_moment_of_a_flat_window_is_zero_and_huge_values_do_not_overflow() {
        let mut scratch = Partials::new();
        for v in [0.0, -0.0, 1.0, 0.1, -3.7e-300, 1e6 + 0.1, HUGE * 0.99] {
            for d in [2usize, 17, 250, 1 << 20] {
                let xs = vec![v; d];
                let n = d as f64;
                let (p, e, a, _) = if d <= 250 {
                    window_pairs(&xs, &xs)
                } else {
                    // n copies of v: the sums are n·v and n·v², split.
                    let (vp, ve) = two_prod(v, v);
                    (two_prod(n, vp), two_prod(n, ve), two_prod(n, v), (0.0, 0.0))
                };
                let got = co_moment(n, p, e, a, a, &mut scratch);
                assert!(same(got, 0.0), "{v:e} x {d}: {got:e}");
            }
        }
        // Values just under HUGE, opposite signs, a window of 2^20: finite.
        let n = (1u64 << 20) as f64;
        let big = HUGE * 0.99;
        let (p, e) = (two_prod(n, big * big), (0.0, 0.0));
        let got = co_moment(n, p, e, (big, 0.0), (-big, 0.0), &mut scratch);
        assert!(got.is_finite() && got > 0.0);
    }
}
