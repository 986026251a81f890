//! The memory-bandwidth reference of bench/: a plain Rust triad `a = b + s * c` over
//! the same bytes as a panel, split across rayon threads like the fused kernels are.
//!
//!     cargo run --release --example triad -- ROWS COLS REPEATS
//!
//! Prints the median seconds of one triad and the GB/s it moved (3 arrays of 8-byte
//! values per cell: two read, one written), once writing a fresh output (as a kernel
//! writes a node's new value: page faults included) and once reusing one buffer.

use rayon::prelude::*;
use std::time::Instant;

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("ROWS COLS REPEATS are numbers"))
        .collect();
    let (rows, cols, repeats) = match args[..] {
        [r, c, n] => (r, c, n),
        _ => (2000, 5000, 9),
    };
    let n = rows * cols;
    let b: Vec<f64> = (0..n).map(|i| i as f64).collect();
    let c: Vec<f64> = (0..n).map(|i| (n - i) as f64).collect();
    let mut times = Vec::with_capacity(repeats);
    let mut checksum = 0.0;
    for _ in 0..repeats {
        let start = Instant::now();
        // A fresh output each time, as a kernel allocates its node's value.
        let mut a: Vec<f64> = Vec::with_capacity(n);
        a.spare_capacity_mut()[..n]
            .par_chunks_mut(1 << 15)
            .enumerate()
            .for_each(|(k, chunk)| {
                let base = k << 15;
                for (j, out) in chunk.iter_mut().enumerate() {
                    out.write(b[base + j] + 2.5 * c[base + j]);
                }
            });
        // SAFETY: every element was written above.
        unsafe { a.set_len(n) };
        times.push(start.elapsed().as_secs_f64());
        checksum += a[n / 2];
    }
    report("fresh output", rows, cols, &mut times, checksum);

    let mut a = vec![0.0; n];
    times.clear();
    for _ in 0..repeats {
        let start = Instant::now();
        a.par_chunks_mut(1 << 15)
            .enumerate()
            .for_each(|(k, chunk)| {
                let base = k << 15;
                for (j, out) in chunk.iter_mut().enumerate() {
                    *out = b[base + j] + 2.5 * c[base + j];
                }
            });
        times.push(start.elapsed().as_secs_f64());
    }
    report("reused output", rows, cols, &mut times, a[n / 2]);
}

fn report(what: &str, rows: usize, cols: usize, times: &mut [f64], checksum: f64) {
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let gbs = 3.0 * 8.0 * (rows * cols) as f64 / median / 1e9;
    println!(
        "triad {what} {rows}x{cols}: median {median:.6} s, {gbs:.2} GB/s (checksum {checksum})"
    );
}
