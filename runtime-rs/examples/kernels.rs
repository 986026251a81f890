//! Seconds per call of the window and cross-sectional kernels used by
//! examples/alphas101.py, on a C-order (T, N) panel like those the engine gets from numpy.
//!
//!     cargo run --release --example kernels -- [T] [N] [repeats] [filter, or =name]
//!
//! For profiling kernel changes (bench/RESULTS.md, section (b)); run it with
//! RAYON_NUM_THREADS=1 for a steadier number on a shared machine, or under
//! `valgrind --tool=callgrind` with small T, N for instruction counts.

use ndarray::Array2;
use sray_runtime::{cs, ts, Panel};
use std::time::Instant;

/// A deterministic pseudo-random panel: a random walk per column with 1% NaN.
fn panel(t: usize, n: usize, seed: u64) -> Panel {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut x = Array2::zeros((t, n));
    for j in 0..n {
        let mut level = 100.0;
        for i in 0..t {
            level += next() - 0.5;
            x[[i, j]] = if next() < 0.01 { f64::NAN } else { level };
        }
    }
    x
}

type Kernel = Box<dyn Fn(&Panel, &Panel) -> Panel>;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let t: usize = args.get(1).map_or(2000, |v| v.parse().expect("T"));
    let n: usize = args.get(2).map_or(3000, |v| v.parse().expect("N"));
    let repeats: usize = args.get(3).map_or(3, |v| v.parse().expect("repeats"));
    let filter = args.get(4).cloned().unwrap_or_default();
    let x = panel(t, n, 1);
    let y = panel(t, n, 2);
    let mut kernels: Vec<(String, Kernel)> = Vec::new();
    for d in [5usize, 20, 250] {
        kernels.push((
            format!("ts_sum_{d}"),
            Box::new(move |x, _| ts::ts_sum(x, d)),
        ));
        kernels.push((
            format!("ts_std_{d}"),
            Box::new(move |x, _| ts::ts_std(x, d)),
        ));
        kernels.push((
            format!("ts_min_{d}"),
            Box::new(move |x, _| ts::ts_min(x, d)),
        ));
        kernels.push((
            format!("ts_argmax_{d}"),
            Box::new(move |x, _| ts::ts_argmax(x, d)),
        ));
        kernels.push((
            format!("ts_product_{d}"),
            Box::new(move |x, _| ts::ts_product(x, d)),
        ));
        kernels.push((
            format!("decay_linear_{d}"),
            Box::new(move |x, _| ts::decay_linear(x, d)),
        ));
        kernels.push((
            format!("correlation_{d}"),
            Box::new(move |x, y| ts::correlation(x, y, d)),
        ));
        kernels.push((
            format!("covariance_{d}"),
            Box::new(move |x, y| ts::covariance(x, y, d)),
        ));
    }
    for d in [5usize, 10, 32, 60, 250] {
        kernels.push((
            format!("ts_rank_{d}"),
            Box::new(move |x, _| ts::ts_rank(x, d)),
        ));
    }
    kernels.push(("delta_1".into(), Box::new(|x, _| ts::delta(x, 1))));
    kernels.push(("rank".into(), Box::new(|x, _| cs::rank(x))));
    kernels.push(("zscore".into(), Box::new(|x, _| cs::zscore(x))));
    let mut total = 0.0;
    for (name, kernel) in &kernels {
        let wanted = match filter.strip_prefix('=') {
            Some(exact) => name == exact,
            None => name.contains(filter.as_str()),
        };
        if !wanted {
            continue;
        }
        let mut best = f64::INFINITY;
        for _ in 0..repeats {
            let start = Instant::now();
            let out = kernel(&x, &y);
            best = best.min(start.elapsed().as_secs_f64());
            // Back to the pool, as the engine does with values it drops: the next call
            // writes into mapped memory instead of paying page faults.
            sray_runtime::pool::give(std::hint::black_box(out).into_raw_vec_and_offset().0);
        }
        total += best;
        println!(
            "{name:<18} {best:8.4} s  {:6.1} ns/cell",
            best * 1e9 / (t * n) as f64
        );
    }
    println!("{:<18} {total:8.4} s", "total");
}
