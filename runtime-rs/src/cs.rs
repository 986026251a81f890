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

/// Calls `f(group, first)` for each group of equal keys (NaN keys skipped), in ascending
/// order: `group` holds the indices of the group, `first` its 0-based position among all
/// non-NaN keys.
fn groups_of_equal(keys: &[f64], mut f: impl FnMut(&[usize], usize)) {
    let mut order: Vec<usize> = (0..keys.len()).filter(|&j| !keys[j].is_nan()).collect();
    order.sort_by(|&a, &b| keys[a].total_cmp(&keys[b]).then(a.cmp(&b)));
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && keys[order[j + 1]] == keys[order[i]] {
            j += 1;
        }
        f(&order[i..=j], i);
        i = j + 1;
    }
}

/// `x.rank(axis=1, pct=True)`: average ranks of ties, NaN not counted.
pub fn rank(x: &Panel) -> Panel {
    by_row(x, None, |row, _, out| {
        let n = row.iter().filter(|v| !v.is_nan()).count() as f64;
        out.fill(f64::NAN);
        groups_of_equal(row, |group, first| {
            // The group holds ranks first+1 ..= first+len; ties get their average.
            let average = first as f64 + (group.len() as f64 + 1.0) / 2.0;
            for &k in group {
                out[k] = average / n;
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
        groups_of_equal(labels.expect("labels given"), |group, _| {
            let members: Vec<f64> = group.iter().map(|&k| row[k]).collect();
            let (mean, _) = mean_of(&members);
            for &k in group {
                out[k] = row[k] - mean;
            }
        });
    })
}
