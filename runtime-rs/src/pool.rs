//! A process-wide pool of freed panel buffers.
//!
//! A kernel writes each node's value into a fresh buffer. For panels past glibc's mmap
//! threshold (32 MiB: a 2000 x 2000 panel) every fresh buffer is new memory from the
//! kernel, and its page faults cost several times the kernel's own memory traffic
//! (bench/RESULTS.md, triad with a fresh vs a reused output). Engines hand back the
//! buffers of values they drop (a recomputed node's old value, everything when an engine
//! is dropped) and kernels take from here first, so a recompute or a new engine over the
//! same shapes writes into memory that is already mapped.
//!
//! The pool holds at most `SRAY_POOL_BYTES` bytes (default: a quarter of the machine's
//! memory, or 1 GiB where that is unknown; 0 disables it). It only keeps memory that
//! engines were holding a moment before, so it does not raise the peak.

use crate::Panel;
use std::sync::{Arc, Mutex, OnceLock};

static POOL: Mutex<Vec<Vec<f64>>> = Mutex::new(Vec::new());

fn limit_bytes() -> usize {
    static LIMIT: OnceLock<usize> = OnceLock::new();
    *LIMIT.get_or_init(|| {
        std::env::var("SRAY_POOL_BYTES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| physical_memory().map_or(1 << 30, |m| m / 4))
    })
}

/// Total memory from /proc/meminfo (Linux), in bytes.
fn physical_memory() -> Option<usize> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// An empty vector with capacity for at least `len` values, reused when possible.
pub fn take(len: usize) -> Vec<f64> {
    if len > 0 {
        let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
        // The smallest buffer that fits, and wastes at most half of itself.
        let best = pool
            .iter()
            .enumerate()
            .filter(|(_, v)| v.capacity() >= len && v.capacity() / 2 <= len)
            .min_by_key(|(_, v)| v.capacity())
            .map(|(i, _)| i);
        if let Some(i) = best {
            let mut v = pool.swap_remove(i);
            v.clear();
            return v;
        }
    }
    let mut fresh = Vec::with_capacity(len);
    advise_huge_pages(&mut fresh);
    fresh
}

/// Asks Linux to back a fresh buffer of several MiB with transparent huge pages (where
/// THP is in `madvise` mode, the common default): its first touch then takes one page
/// fault per 2 MiB instead of one per 4 KiB. Values freed outside the pool (a node
/// kernel's temporaries) come back as fresh memory, so this is most of what a fresh
/// buffer costs beyond writing it. Only a hint: errors are ignored.
fn advise_huge_pages(v: &mut Vec<f64>) {
    #[cfg(target_os = "linux")]
    {
        extern "C" {
            fn madvise(addr: *mut std::ffi::c_void, len: usize, advice: i32) -> i32;
        }
        const MADV_HUGEPAGE: i32 = 14;
        const HUGE: usize = 2 << 20;
        let start = v.as_mut_ptr() as usize;
        let end = start + v.capacity() * std::mem::size_of::<f64>();
        let aligned = start.next_multiple_of(HUGE);
        if end >= aligned + HUGE {
            // SAFETY: the range lies inside the vector's own allocation; MADV_HUGEPAGE
            // changes how it is backed, not its contents or its mapping.
            unsafe {
                madvise(
                    aligned as *mut _,
                    (end - aligned) / HUGE * HUGE,
                    MADV_HUGEPAGE,
                )
            };
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = v;
}

/// A zero-filled buffer of `len` values, reused when possible.
pub fn zeros(len: usize) -> Vec<f64> {
    let mut v = take(len);
    v.resize(len, 0.0);
    v
}

/// Gives a buffer back, if the pool has room for it.
pub fn give(v: Vec<f64>) {
    let bytes = v.capacity() * std::mem::size_of::<f64>();
    if bytes < 1 << 20 {
        return; // small buffers are cheap for malloc; not worth a lock
    }
    let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
    let held: usize = pool
        .iter()
        .map(|b| b.capacity() * std::mem::size_of::<f64>())
        .sum();
    if held + bytes <= limit_bytes() {
        pool.push(v);
    }
}

/// Gives back the buffer of a panel its owner is done with: for the temporaries of a
/// node's kernel, which otherwise go back to the OS and come back as fresh memory.
pub fn give_panel(panel: Panel) {
    give(panel.into_raw_vec_and_offset().0);
}

/// Gives back a value's buffer if nothing else (a numpy view, another engine) holds it.
pub fn recycle(value: Arc<Panel>) {
    if let Ok(panel) = Arc::try_unwrap(value) {
        give(panel.into_raw_vec_and_offset().0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back() {
        let v = take(1 << 21); // a size no other test uses
        let ptr = v.as_ptr();
        give(v);
        let again = take((1 << 21) - 5);
        assert_eq!(again.as_ptr(), ptr);
        assert!(again.is_empty() && again.capacity() >= (1 << 21) - 5);
        assert_eq!(zeros(3), vec![0.0; 3]);
    }
}
