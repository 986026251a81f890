//! Cross-sectional kernels: each row (time step) on its own, across assets
//! (shared/OPS.md). NaN values are skipped in row statistics and stay NaN. Rows run in
//! parallel.

use crate::layout::by_row;
use crate::Panel;

fn mean_of(row: &[f64]) -> (f64, usize) {
    let (mut sum, mut comp, mut n) = (0.0f64, 0.0f64, 0usize);
    for &v in row.iter().filter(|v| !v.is_nan()) {
        let t = sum + v;
        comp += if sum.abs() >= v.abs() {
            (sum - t) + v
        } else {
            (v - t) + sum
        };
        sum = t;
        n += 1;
    }
    ((sum + comp) / n as f64, n)
}

/// Sample standard deviation (ddof=1) around `mean`; exactly 0 when all values are equal.
fn std_of(row: &[f64], mean: f64, n: usize) -> f64 {
    if n < 2 {
        return f64::NAN;
    }
    let mut valid = row.iter().copied().filter(|v| !v.is_nan());
    let first = valid.clone().next().unwrap_or(f64::NAN);
    if valid.clone().all(|v| v == first) {
        return 0.0;
    }
    let squares: f64 = valid.by_ref().map(|v| (v - mean) * (v - mean)).sum();
    (squares / (n as f64 - 1.0)).sqrt()
}

/// A key whose unsigned order is the numeric order of non-NaN `v`, and which is equal for
/// equal values (`-0.0 + 0.0` is `+0.0`, so both zeros get one key).
fn order_key(v: f64) -> u64 {
    let bits = (v + 0.0).to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    }
}

/// Sorts (key, index) pairs by key: an LSD radix sort over the key's bytes for rows long
/// enough to pay for it (a byte that all keys share is skipped), pdqsort below.
fn sort_by_key(pairs: &mut Vec<(u64, u32)>) {
    if pairs.len() < 256 {
        pairs.sort_unstable_by_key(|&(key, _)| key);
        return;
    }
    let mut counts = [[0u32; 256]; 8];
    for &(key, _) in pairs.iter() {
        for (byte, count) in counts.iter_mut().enumerate() {
            count[(key >> (8 * byte)) as usize & 0xff] += 1;
        }
    }
    let len = pairs.len() as u32;
    let mut from = std::mem::take(pairs);
    let mut to: Vec<(u64, u32)> = vec![(0, 0); from.len()];
    for (byte, count) in counts.iter_mut().enumerate() {
        if count.contains(&len) {
            continue; // every key has the same byte here
        }
        let mut start = 0u32;
        for c in count.iter_mut() {
            (*c, start) = (start, start + *c);
        }
        for &pair in &from {
            let slot = &mut count[(pair.0 >> (8 * byte)) as usize & 0xff];
            to[*slot as usize] = pair;
            *slot += 1;
        }
        std::mem::swap(&mut from, &mut to);
    }
    *pairs = from;
}

/// The (key, index) pairs of a row's non-NaN values, sorted by key.
fn sorted_keys(keys: &[f64]) -> Vec<(u64, u32)> {
    assert!(
        keys.len() <= u32::MAX as usize,
        "rows of at most 2^32 values"
    );
    let mut order: Vec<(u64, u32)> = keys
        .iter()
        .enumerate()
        .filter(|(_, v)| !v.is_nan())
        .map(|(j, &v)| (order_key(v), j as u32))
        .collect();
    sort_by_key(&mut order);
    order
}

/// Calls `f(group, first)` for each run of equal keys in `sorted` (from [`sorted_keys`]),
/// in ascending order: `group` is the run, `first` its 0-based position.
fn groups_of_equal(sorted: &[(u64, u32)], mut f: impl FnMut(&[(u64, u32)], usize)) {
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i + 1;
        while j < sorted.len() && sorted[j].0 == sorted[i].0 {
            j += 1;
        }
        f(&sorted[i..j], i);
        i = j;
    }
}

/// `x.rank(axis=1, pct=True)`: average ranks of ties, NaN not counted.
pub fn rank(x: &Panel) -> Panel {
    by_row(x, None, |row, _, out| {
        out.fill(f64::NAN);
        let sorted = sorted_keys(row);
        let n = sorted.len() as f64;
        groups_of_equal(&sorted, |group, first| {
            // The group holds ranks first+1 ..= first+len; ties get their average.
            let average = (first as f64 + (group.len() as f64 + 1.0) / 2.0) / n;
            for &(_, k) in group {
                out[k as usize] = average;
            }
        });
    })
}

/// `x.div(x.abs().sum(axis=1), axis=0) * a`.
pub fn scale(x: &Panel, a: f64) -> Panel {
    by_row(x, None, |row, _, out| {
        let total: f64 = row.iter().filter(|v| !v.is_nan()).map(|v| v.abs()).sum();
        for (o, &v) in out.iter_mut().zip(row) {
            *o = v / total * a;
        }
    })
}

/// `x.sub(x.mean(axis=1), axis=0)`.
pub fn demean(x: &Panel) -> Panel {
    by_row(x, None, |row, _, out| {
        let (mean, _) = mean_of(row);
        for (o, &v) in out.iter_mut().zip(row) {
            *o = v - mean;
        }
    })
}

/// `x.sub(x.mean(axis=1), axis=0).div(x.std(axis=1), axis=0)` (ddof=1).
pub fn zscore(x: &Panel) -> Panel {
    by_row(x, None, |row, _, out| {
        let (mean, n) = mean_of(row);
        let std = std_of(row, mean, n);
        for (o, &v) in out.iter_mut().zip(row) {
            *o = (v - mean) / std;
        }
    })
}

/// `x` minus the mean of `x` over the assets of the same group, row by row. `g` holds the
/// group label of every cell (a per-asset label vector broadcast over time); a NaN label
/// gives NaN.
pub fn indneutralize(x: &Panel, g: &Panel) -> Panel {
    assert_eq!(
        x.dim(),
        g.dim(),
        "indneutralize: labels and values differ in shape"
    );
    by_row(x, Some(g), |row, labels, out| {
        out.fill(f64::NAN);
        let sorted = sorted_keys(labels.expect("labels given"));
        groups_of_equal(&sorted, |group, _| {
            let mut members: Vec<u32> = group.iter().map(|&(_, k)| k).collect();
            members.sort_unstable(); // the mean adds members in column order
            let values: Vec<f64> = members.iter().map(|&k| row[k as usize]).collect();
            let (mean, _) = mean_of(&values);
            for &k in &members {
                out[k as usize] = row[k as usize] - mean;
            }
        });
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    /// Average ranks over non-NaN values, by counting: the definition `rank` must meet on
    /// rows long enough for the radix sort, with ties, both zeros, NaN and infinities.
    #[test]
    fn rank_matches_counting_on_long_rows_with_ties() {
        let specials = [
            f64::NAN,
            0.0,
            -0.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            1e-300,
            -2.5,
        ];
        let x = Array2::from_shape_fn((3, 1000), |(t, n)| match (n * 7919 + t * 31) % 11 {
            k @ 0..=6 => specials[k],
            k => ((n * 104729) % 97) as f64 * if k % 2 == 0 { 1.0 } else { -0.001 },
        });
        let got = rank(&x);
        for ((t, j), &g) in got.indexed_iter() {
            let row = x.row(t);
            let v = row[j];
            let valid = row.iter().filter(|u| !u.is_nan()).count() as f64;
            let want = if v.is_nan() {
                f64::NAN
            } else {
                let less = row.iter().filter(|&&u| u < v).count() as f64;
                let equal = row.iter().filter(|&&u| u == v).count() as f64;
                (less + (equal + 1.0) / 2.0) / valid
            };
            assert!(
                (g.is_nan() && want.is_nan()) || (g - want).abs() <= 1e-15,
                "at ({t}, {j}): {g} vs {want}"
            );
        }
    }
}
