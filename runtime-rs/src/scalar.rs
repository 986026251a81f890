//! The scalar meaning of every elementwise op of docs/ops.md.
//!
//! Generated kernels call these inside their per-element closures, so each op's float64
//! semantics are written once. Arithmetic (`+ - * /`, unary `-`) is emitted as Rust
//! operators, which already are IEEE-754 float64 like numpy.

/// Truthiness of docs/ops.md: nonzero and not NaN.
#[inline(always)]
pub fn truthy(x: f64) -> bool {
    x != 0.0 && !x.is_nan()
}

#[inline(always)]
fn flag(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

#[inline(always)]
pub fn lt(a: f64, b: f64) -> f64 {
    flag(a < b)
}
#[inline(always)]
pub fn le(a: f64, b: f64) -> f64 {
    flag(a <= b)
}
#[inline(always)]
pub fn gt(a: f64, b: f64) -> f64 {
    flag(a > b)
}
#[inline(always)]
pub fn ge(a: f64, b: f64) -> f64 {
    flag(a >= b)
}
#[inline(always)]
pub fn eq(a: f64, b: f64) -> f64 {
    flag(a == b)
}
/// numpy's `!=`: NaN is unequal to everything, so `NaN != x` is 1.0.
#[inline(always)]
pub fn ne(a: f64, b: f64) -> f64 {
    flag(a != b)
}
#[inline(always)]
pub fn and(a: f64, b: f64) -> f64 {
    flag(truthy(a) && truthy(b))
}
#[inline(always)]
pub fn or(a: f64, b: f64) -> f64 {
    flag(truthy(a) || truthy(b))
}
#[inline(always)]
pub fn not(a: f64) -> f64 {
    flag(!truthy(a))
}
/// `np.where(truthy(c), a, b)`.
#[inline(always)]
pub fn where_(c: f64, a: f64, b: f64) -> f64 {
    if truthy(c) {
        a
    } else {
        b
    }
}
#[inline(always)]
pub fn pow(a: f64, b: f64) -> f64 {
    a.powf(b)
}
#[inline(always)]
pub fn abs(a: f64) -> f64 {
    a.abs()
}
#[inline(always)]
pub fn log(a: f64) -> f64 {
    a.ln()
}
#[inline(always)]
pub fn exp(a: f64) -> f64 {
    a.exp()
}
#[inline(always)]
pub fn sqrt(a: f64) -> f64 {
    a.sqrt()
}
/// `np.sign`: 0 for ±0, NaN for NaN (unlike `f64::signum`).
#[inline(always)]
pub fn sign(a: f64) -> f64 {
    if a > 0.0 {
        1.0
    } else if a < 0.0 {
        -1.0
    } else {
        a // ±0.0 or NaN
    }
}
/// `np.minimum`: NaN propagates (unlike `f64::min`).
#[inline(always)]
pub fn minimum(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}
/// `np.maximum`: NaN propagates (unlike `f64::max`).
#[inline(always)]
pub fn maximum(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}
/// `np.sign(x) * np.abs(x) ** a`.
#[inline(always)]
pub fn signedpower(x: f64, a: f64) -> f64 {
    sign(x) * x.abs().powf(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nan_semantics_follow_numpy() {
        assert_eq!(lt(f64::NAN, 1.0), 0.0);
        assert_eq!(ne(f64::NAN, f64::NAN), 1.0);
        assert!(minimum(f64::NAN, 1.0).is_nan());
        assert!(maximum(1.0, f64::NAN).is_nan());
        assert!(sign(f64::NAN).is_nan());
        assert_eq!(sign(0.0), 0.0);
        assert_eq!(sign(-3.0), -1.0);
        assert_eq!(where_(f64::NAN, 1.0, 2.0), 2.0);
        assert_eq!(and(1.0, f64::NAN), 0.0);
        assert_eq!(or(0.0, -2.0), 1.0);
        assert_eq!(not(0.0), 1.0);
        assert_eq!(signedpower(-2.0, 2.0), -4.0);
    }
}
