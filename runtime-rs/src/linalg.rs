//! Linear algebra: `a @ b`.
//!
//! The GEMM is faer's `matmul` (pure Rust, SIMD kernels chosen at run time, parallel on
//! the rayon pool the engine already runs on, so node-level and GEMM-level parallelism
//! share one set of threads). Chosen by measurement: bench/gemm.py runs faer,
//! ndarray+matrixmultiply and numpy's OpenBLAS on the same shapes (bench/RESULTS.md).
//! Pure Rust keeps the Lambda artifact self-contained: no system BLAS to ship.

use crate::{Panel, View};
use faer::linalg::matmul::matmul as gemm;
use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;

/// The operands of `a @ b` in C order (copied only when they are not), and (m, k, n).
/// Panics when `a`'s columns are not `b`'s rows (the compiler checks dims).
fn operands<'a>(a: View<'a>, b: View<'a>) -> (Operand<'a>, Operand<'a>, (usize, usize, usize)) {
    assert_eq!(
        a.ncols(),
        b.nrows(),
        "matmul of {:?} by {:?}: inner dims differ",
        a.dim(),
        b.dim()
    );
    let shape = (a.nrows(), a.ncols(), b.ncols());
    let c_order = |x: View<'a>| -> Operand<'a> {
        if x.is_standard_layout() {
            x.into()
        } else {
            x.as_standard_layout().into_owned().into()
        }
    };
    (c_order(a), c_order(b), shape)
}

type Operand<'a> = ndarray::CowArray<'a, f64, ndarray::Ix2>;

fn row_major<'b>(x: &'b Operand<'_>) -> &'b [f64] {
    x.as_slice().expect("standard layout")
}

/// `a @ b`: (m, k) @ (k, n) -> (m, n), as `np.matmul` on float64. NaN and infinities
/// propagate as in any BLAS; the k-sums may run in another order than numpy's, so
/// results agree to rounding, not bitwise.
pub fn matmul<'a>(a: impl Into<View<'a>>, b: impl Into<View<'a>>) -> Panel {
    let (a, b, (m, k, n)) = operands(a.into(), b.into());
    let mut out = crate::pool::zeros(m * n);
    gemm(
        MatMut::from_row_major_slice_mut(&mut out, m, n),
        Accum::Replace,
        MatRef::from_row_major_slice(row_major(&a), m, k),
        MatRef::from_row_major_slice(row_major(&b), k, n),
        1.0,
        Par::rayon(0),
    );
    Panel::from_shape_vec((m, n), out).expect("m * n values")
}

/// Rows of `a` per task of [`matmul_rows`].
const ROW_BLOCK: usize = 4;

/// `a @ b` when `a`'s rows are time: row `i` of the result is Σ_k a[i, k]·b[k, :] in
/// ascending k (a multiply, then an add, per term), so its bits depend on row `i` of `a`
/// and on `b` only, not on how many rows `a` has or where they start: the row-local
/// determinism that appends rely on (docs/ops.md). faer's GEMM ([`matmul`]) picks its
/// blocking and parallel split from the whole shape, so the same row can round
/// differently in a batch and in an append. Slower than faer on large square products,
/// on par on the tall (T, N) @ (N, K) products of factor models; rows run in parallel.
pub fn matmul_rows<'a>(a: impl Into<View<'a>>, b: impl Into<View<'a>>) -> Panel {
    let (a, b, (m, k, n)) = operands(a.into(), b.into());
    let (a, b) = (row_major(&a), row_major(&b));
    let mut out = crate::pool::zeros(m * n);
    if n > 0 {
        out.par_chunks_mut(ROW_BLOCK * n)
            .enumerate()
            .for_each(|(block, o)| {
                let first = block * ROW_BLOCK;
                if let [o0, o1, o2, o3] = &mut *o.chunks_exact_mut(n).collect::<Vec<_>>() {
                    // A full block: each value of `b` is loaded once for its four rows.
                    for p in 0..k {
                        let b_row = &b[p * n..][..n];
                        let x: [f64; ROW_BLOCK] = std::array::from_fn(|r| a[(first + r) * k + p]);
                        for j in 0..n {
                            let y = b_row[j];
                            o0[j] += x[0] * y;
                            o1[j] += x[1] * y;
                            o2[j] += x[2] * y;
                            o3[j] += x[3] * y;
                        }
                    }
                    return;
                }
                for p in 0..k {
                    let b_row = &b[p * n..][..n];
                    for (r, o_row) in o.chunks_exact_mut(n).enumerate() {
                        let x = a[(first + r) * k + p];
                        for (o, &y) in o_row.iter_mut().zip(b_row) {
                            *o += x * y;
                        }
                    }
                }
            });
    }
    Panel::from_shape_vec((m, n), out).expect("m * n values")
}

#[cfg(test)]
mod tests {
    use super::{matmul, matmul_rows};
    use crate::Panel;

    #[test]
    fn matches_the_textbook_product_on_every_shape_edge() {
        for (m, k, n) in [
            (1, 1, 1),
            (3, 1, 4),
            (1, 5, 1),
            (7, 3, 2),
            (0, 3, 2),
            (2, 0, 3),
            (40, 17, 33),
        ] {
            let a = Panel::from_shape_fn((m, k), |(i, j)| (i * 7 + j * 3) as f64 % 5.0 - 2.0);
            let b = Panel::from_shape_fn((k, n), |(i, j)| (i * 2 + j * 5) as f64 % 7.0 - 3.0);
            let want =
                Panel::from_shape_fn((m, n), |(i, j)| (0..k).map(|p| a[(i, p)] * b[(p, j)]).sum());
            assert_eq!(matmul(&a, &b), want, "({m}, {k}) @ ({k}, {n})");
            assert_eq!(matmul_rows(&a, &b), want, "({m}, {k}) @ ({k}, {n}) by rows");
        }
    }

    #[test]
    fn nan_propagates_along_its_row_and_column() {
        let mut a = Panel::ones((3, 3));
        a[(1, 2)] = f64::NAN;
        let out = matmul(&a, &Panel::ones((3, 2)));
        assert!(out.row(1).iter().all(|v| v.is_nan()));
        assert!(out.row(0).iter().chain(out.row(2)).all(|&v| v == 3.0));
    }

    #[test]
    fn a_transposed_view_gives_the_same_product() {
        let a = Panel::from_shape_fn((5, 4), |(i, j)| (i + 2 * j) as f64);
        let b = Panel::from_shape_fn((4, 6), |(i, j)| (3 * i) as f64 - j as f64);
        let at = a.t().to_owned();
        assert_eq!(matmul(&at.t().to_owned(), &b), matmul(&a, &b));
        assert_eq!(matmul(&a.t().t().to_owned(), &b), matmul(&a, &b));
    }

    /// Each row of `matmul_rows` has the bits of that row computed alone, whatever the
    /// rows around it (here on a shape where faer's blocking differs with the rows).
    #[test]
    fn matmul_rows_is_row_local() {
        let (m, k, n) = (300, 700, 9);
        let a = Panel::from_shape_fn((m, k), |(i, j)| {
            ((i * 31 + j * 17) % 101) as f64 / 7.3 - 6.0
        });
        let b = Panel::from_shape_fn((k, n), |(i, j)| {
            ((i * 13 + j * 29) % 89) as f64 / 3.1 - 14.0
        });
        let full = matmul_rows(&a, &b);
        for start in [1, 5, 37, 299] {
            let part = matmul_rows(a.slice(ndarray::s![start.., ..]), &b);
            for (x, y) in part.iter().zip(full.slice(ndarray::s![start.., ..]).iter()) {
                assert_eq!(x.to_bits(), y.to_bits(), "rows from {start}");
            }
        }
    }
}
