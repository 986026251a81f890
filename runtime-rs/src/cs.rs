//! Cross-sectional kernels: each row (time step) on its own, across assets
//! (docs/ops.md). NaN values are skipped in row statistics and stay NaN. Rows run in
//! parallel.

use crate::layout::by_row;
use crate::{Panel, View};

fn mean_of(row: &[f64]) -> (f64, usize) {
    let (mut sum, mut comp, mut n) = (0.0f64, 0.0f64, 0usize);
    for &v in row.iter().filter(|v| !v.is_nan()) {
        let t = sum + v;
        if !t.is_finite() {
            // An infinite sum carries no rounding error: the compensation below would be
            // inf - inf = NaN, and the row mean NaN instead of ±inf.
            (sum, n) = (t, n + 1);
            continue;
        }
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

/// A row's non-NaN values spread over as many buckets as there are values, by
/// `(v - min) * scale`: monotone in `v`, so every value of a bucket is above every value
/// of the buckets before it, and equal values share a bucket. On typical rows buckets
/// hold one or two values. `None` for rows that are short, hold infinities, or whose
/// values are all equal.
struct Buckets {
    /// Bucket `b` holds `members[starts[b]..starts[b + 1]]` (indices into the row).
    starts: Vec<u32>,
    members: Vec<u32>,
}

fn buckets(values: &[f64]) -> Option<Buckets> {
    assert!(
        values.len() <= u32::MAX as usize,
        "rows of at most 2^32 values"
    );
    let (mut lo, mut hi, mut count) = (f64::INFINITY, f64::NEG_INFINITY, 0usize);
    for &v in values {
        // NaN compares false: skipped by all three.
        lo = if v < lo { v } else { lo };
        hi = if v > hi { v } else { hi };
        count += usize::from(!v.is_nan());
    }
    if count < 64 || !lo.is_finite() || !hi.is_finite() || lo == hi {
        return None;
    }
    // (hi - lo) may overflow to inf: scale 0 puts everything in bucket 0, still correct.
    let scale = count as f64 / (hi - lo);
    const NONE: u32 = u32::MAX;
    let bucket: Vec<u32> = values
        .iter()
        .map(|&v| {
            if v.is_nan() {
                NONE
            } else {
                (((v - lo) * scale) as usize).min(count - 1) as u32
            }
        })
        .collect();
    let mut starts = vec![0u32; count + 1];
    for &b in bucket.iter().filter(|&&b| b != NONE) {
        starts[b as usize + 1] += 1;
    }
    for b in 0..count {
        starts[b + 1] += starts[b];
    }
    let mut next = starts.clone();
    let mut members = vec![0u32; count];
    for (j, &b) in bucket.iter().enumerate() {
        if b != NONE {
            let slot = &mut next[b as usize];
            members[*slot as usize] = j as u32;
            *slot += 1;
        }
    }
    Some(Buckets { starts, members })
}

/// Sorts indices by their values (ties in any order).
fn sort_by_value(part: &mut [u32], values: &[f64]) {
    part.sort_unstable_by(|&i, &j| values[i as usize].total_cmp(&values[j as usize]));
}

/// The indices of a row's non-NaN values, in ascending order of value (ties in any order):
/// each bucket sorted, or a radix sort of (key, index) pairs where [`buckets`] declines.
fn sorted_indices(values: &[f64]) -> Vec<u32> {
    match buckets(values) {
        Some(Buckets {
            starts,
            mut members,
        }) => {
            for b in starts.windows(2) {
                sort_by_value(&mut members[b[0] as usize..b[1] as usize], values);
            }
            members
        }
        None => {
            let mut pairs: Vec<(u64, u32)> = values
                .iter()
                .enumerate()
                .filter(|(_, v)| !v.is_nan())
                .map(|(j, &v)| (order_key(v), j as u32))
                .collect();
            sort_by_key(&mut pairs);
            pairs.into_iter().map(|(_, j)| j).collect()
        }
    }
}

/// Calls `f(group, first)` for each run of equal values in `sorted` (from
/// [`sorted_indices`]), in ascending order: `group` holds the run's indices, `first`
/// its 0-based position.
fn groups_of_equal(values: &[f64], sorted: &[u32], mut f: impl FnMut(&[u32], usize)) {
    let mut i = 0;
    while i < sorted.len() {
        let v = values[sorted[i] as usize];
        let mut j = i + 1;
        while j < sorted.len() && values[sorted[j] as usize] == v {
            j += 1;
        }
        f(&sorted[i..j], i);
        i = j;
    }
}

/// Writes the average rank over `n` of each run of equal values of `sorted` (indices
/// in ascending order of value, `offset` values below the first).
fn rank_sorted(values: &[f64], sorted: &[u32], offset: usize, n: f64, out: &mut [f64]) {
    groups_of_equal(values, sorted, |group, first| {
        // The group holds ranks first+1 ..= first+len; ties get their average.
        let average = ((offset + first) as f64 + (group.len() as f64 + 1.0) / 2.0) / n;
        for &k in group {
            out[k as usize] = average;
        }
    });
}

/// Buckets up to this size are ranked by counting within the bucket, without a sort.
const COUNT_IN_BUCKET: usize = 16;

/// `x.rank(axis=1, pct=True)`: average ranks of ties, NaN not counted.
pub fn rank<'a>(x: impl Into<View<'a>>) -> Panel {
    let x: View<'a> = x.into();
    by_row(x, None, |row, _, out| {
        out.fill(f64::NAN);
        let Some(Buckets {
            starts,
            mut members,
        }) = buckets(row)
        else {
            let sorted = sorted_indices(row);
            rank_sorted(row, &sorted, 0, sorted.len() as f64, out);
            return;
        };
        let n = members.len() as f64;
        // The values of each bucket side by side, for the counting below.
        let values: Vec<f64> = members.iter().map(|&j| row[j as usize]).collect();
        for b in starts.windows(2) {
            let (lo, hi) = (b[0] as usize, b[1] as usize);
            // Every value below this bucket is below v; none above it is. Counts are
            // kept as f64 (exact integers): converting from usize costs more on x86-64.
            match hi - lo {
                0 => {}
                // Rank lo + 1, alone: (less + (equal + 1) / 2) / n with equal = 1.
                1 => out[members[lo] as usize] = (lo as f64 + 1.0) / n,
                len if len <= COUNT_IN_BUCKET => {
                    let part = &values[lo..hi];
                    for (&j, &v) in members[lo..hi].iter().zip(part) {
                        let (mut less, mut equal) = (lo as f64, 0.0f64);
                        for &u in part {
                            less += if u < v { 1.0 } else { 0.0 };
                            equal += if u == v { 1.0 } else { 0.0 };
                        }
                        out[j as usize] = (less + (equal + 1.0) / 2.0) / n;
                    }
                }
                _ => {
                    let part = &mut members[lo..hi];
                    sort_by_value(part, row);
                    rank_sorted(row, part, lo, n, out);
                }
            }
        }
    })
}

/// `x.div(x.abs().sum(axis=1), axis=0) * a`.
pub fn scale<'a>(x: impl Into<View<'a>>, a: f64) -> Panel {
    let x: View<'a> = x.into();
    by_row(x, None, |row, _, out| {
        let total: f64 = row.iter().filter(|v| !v.is_nan()).map(|v| v.abs()).sum();
        for (o, &v) in out.iter_mut().zip(row) {
            *o = v / total * a;
        }
    })
}

/// `x.sub(x.mean(axis=1), axis=0)`.
pub fn demean<'a>(x: impl Into<View<'a>>) -> Panel {
    let x: View<'a> = x.into();
    by_row(x, None, |row, _, out| {
        let (mean, _) = mean_of(row);
        for (o, &v) in out.iter_mut().zip(row) {
            *o = v - mean;
        }
    })
}

/// `x.sub(x.mean(axis=1), axis=0).div(x.std(axis=1), axis=0)` (ddof=1).
pub fn zscore<'a>(x: impl Into<View<'a>>) -> Panel {
    let x: View<'a> = x.into();
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
pub fn indneutralize<'a>(x: impl Into<View<'a>>, g: impl Into<View<'a>>) -> Panel {
    let x: View<'a> = x.into();
    let g: View<'a> = g.into();
    assert_eq!(
        x.dim(),
        g.dim(),
        "indneutralize: labels and values differ in shape"
    );
    by_row(x, Some(g), |row, labels, out| {
        out.fill(f64::NAN);
        let labels = labels.expect("labels given");
        let sorted = sorted_indices(labels);
        groups_of_equal(labels, &sorted, |group, _| {
            let mut members: Vec<u32> = group.to_vec();
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

    /// Row means as IEEE gives them: ±inf where the row's non-NaN values hold infinities of
    /// one sign, NaN where both signs, the compensated sum's mean otherwise.
    #[test]
    fn row_means_with_infinities_follow_ieee() {
        let inf = f64::INFINITY;
        assert_eq!(mean_of(&[1.0, -inf, f64::NAN, 3.0]), (-inf, 3));
        assert_eq!(mean_of(&[inf, 1.0, inf]), (inf, 3));
        assert!(mean_of(&[inf, 1.0, -inf]).0.is_nan());
        assert_eq!(mean_of(&[1e308, 1e308, -1e308]).0, inf); // overflows like numpy's sum
        let got = demean(&ndarray::array![[1.0, -inf, 2.0, f64::NAN]]);
        assert_eq!((got[[0, 0]], got[[0, 2]]), (inf, inf));
        assert!(got[[0, 1]].is_nan() && got[[0, 3]].is_nan());
    }

    /// Average ranks over non-NaN values, by counting.
    fn check_rank(x: &Array2<f64>) {
        let got = rank(x);
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

    /// `rank` meets the counting definition on rows long enough for the bucket sort (and
    /// the radix sort, when a row holds infinities), with ties, both zeros and NaN; on rows
    /// of equal values, of a range that overflows, and of a few huge outliers.
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
        let value = |t: usize, n: usize, with_inf: bool| match (n * 7919 + t * 31) % 11 {
            3 | 4 if !with_inf => 7.0,
            k @ 0..=6 => specials[k],
            k => ((n * 104729) % 97) as f64 * if k % 2 == 0 { 1.0 } else { -0.001 },
        };
        check_rank(&Array2::from_shape_fn((3, 1000), |(t, n)| {
            value(t, n, true)
        }));
        check_rank(&Array2::from_shape_fn((3, 1000), |(t, n)| {
            value(t, n, false)
        }));
        check_rank(&Array2::from_elem((2, 300), 4.0));
        check_rank(&Array2::from_shape_fn((2, 300), |(t, n)| match n % 3 {
            0 => -1.5e308,
            1 => 1.6e308,
            _ => (n + t) as f64,
        }));
        check_rank(&Array2::from_shape_fn((2, 300), |(_, n)| {
            if n % 100 == 0 {
                1e200
            } else {
                (n % 17) as f64 * 0.1
            }
        }));
    }
}
