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

/// `a @ b`: (m, k) @ (k, n) -> (m, n), as `np.matmul` on float64. NaN and infinities
/// propagate as in any BLAS; the k-sums may run in another order than numpy's, so
/// results agree to rounding, not bitwise.
pub fn matmul<'a>(a: impl Into<View<'a>>, b: impl Into<View<'a>>) -> Panel {
    let a: View<'a> = a.into();
    let b: View<'a> = b.into();
    assert_eq!(
        a.ncols(),
        b.nrows(),
        "matmul of {:?} by {:?}: inner dims differ",
        a.dim(),
        b.dim()
    );
    let (m, k, n) = (a.nrows(), a.ncols(), b.ncols());
    let (a, b) = (a.as_standard_layout(), b.as_standard_layout());
    let mut out = crate::pool::zeros(m * n);
    gemm(
        MatMut::from_row_major_slice_mut(&mut out, m, n),
        Accum::Replace,
        MatRef::from_row_major_slice(a.as_slice().expect("standard layout"), m, k),
        MatRef::from_row_major_slice(b.as_slice().expect("standard layout"), k, n),
        1.0,
        Par::rayon(0),
    );
    Panel::from_shape_vec((m, n), out).expect("m * n values")
}

#[cfg(test)]
mod tests {
    use super::matmul;
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
}
