//! Times C = A (m x k) * B (k x n) in f64 with each candidate; prints one JSON line per
//! (candidate, shape) with the median seconds over `repeat` runs.
//!
//! Candidates: ndarray's `general_mat_mul` (backed by matrixmultiply; its `threading`
//! feature is on in this crate, threads from MATMUL_NUM_THREADS) and faer's `matmul`
//! (rayon `Par::rayon(0)` and sequential).

use ndarray::{linalg::general_mat_mul, Array2};
use std::time::Instant;

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    xs[xs.len() / 2]
}

fn time(repeat: usize, mut f: impl FnMut()) -> f64 {
    f(); // warm-up
    median(
        (0..repeat)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("usage: sray-gemm-bench M K N REPEAT"))
        .collect();
    let [m, k, n, repeat] = args[..] else {
        panic!("usage: sray-gemm-bench M K N REPEAT")
    };
    let a = Array2::from_shape_fn((m, k), |(i, j)| ((i * 31 + j * 17) % 97) as f64 / 97.0 - 0.5);
    let b = Array2::from_shape_fn((k, n), |(i, j)| ((i * 13 + j * 29) % 89) as f64 / 89.0 - 0.5);
    let mut c = Array2::<f64>::zeros((m, n));
    let report = |name: &str, secs: f64| {
        let gflops = 2.0 * (m * k * n) as f64 / secs / 1e9;
        println!(r#"{{"candidate": "{name}", "m": {m}, "k": {k}, "n": {n}, "seconds": {secs:.6}, "gflops": {gflops:.2}}}"#);
    };
    report(
        "ndarray+matrixmultiply",
        time(repeat, || general_mat_mul(1.0, &a, &b, 0.0, &mut c)),
    );
    let fa = faer::Mat::<f64>::from_fn(m, k, |i, j| a[(i, j)]);
    let fb = faer::Mat::<f64>::from_fn(k, n, |i, j| b[(i, j)]);
    let mut fc = faer::Mat::<f64>::zeros(m, n);
    for (name, par) in [("faer-rayon", faer::Par::rayon(0)), ("faer-seq", faer::Par::Seq)] {
        report(
            name,
            time(repeat, || {
                faer::linalg::matmul::matmul(
                    fc.as_mut(),
                    faer::Accum::Replace,
                    fa.as_ref(),
                    fb.as_ref(),
                    1.0,
                    par,
                )
            }),
        );
    }
}
