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
//! The pool holds at most `SRAY_POOL_BYTES` bytes (default: a quarter of the memory the
//! process may use: the machine's, or its cgroup's limit when that is smaller, as in a
//! container on Lambda or Kubernetes; 1 GiB where neither is known; 0 disables it). It
//! only keeps memory that engines were holding a moment before, so it does not raise
//! the peak.

use crate::Panel;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

static POOL: Mutex<Vec<Vec<f64>>> = Mutex::new(Vec::new());

fn limit_bytes() -> usize {
    static LIMIT: OnceLock<usize> = OnceLock::new();
    *LIMIT.get_or_init(|| {
        std::env::var("SRAY_POOL_BYTES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| {
                usable_memory(physical_memory(), cgroup_limit(Path::new(CGROUP_ROOT)))
                    .map_or(1 << 30, |m| m / 4)
            })
    })
}

/// Where Linux mounts the cgroup hierarchy; in a container, the container's own cgroup.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The memory the process may use: the smaller of the machine's and its cgroup's limit.
fn usable_memory(physical: Option<usize>, cgroup: Option<usize>) -> Option<usize> {
    match (physical, cgroup) {
        (Some(p), Some(c)) => Some(p.min(c)),
        (p, c) => p.or(c),
    }
}

/// Total memory from /proc/meminfo (Linux), in bytes.
fn physical_memory() -> Option<usize> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The memory limit of the cgroup mounted at `root` (normally `/sys/fs/cgroup`), in
/// bytes: cgroup v2's `memory.max`, else cgroup v1's `memory/memory.limit_in_bytes`.
/// `None` when there is no limit: the files are missing or unreadable, say "max", or
/// hold v1's "unlimited" (a page-rounded `i64::MAX`, or anything past 2^60 bytes).
fn cgroup_limit(root: &Path) -> Option<usize> {
    let read = |rel: &str| std::fs::read_to_string(root.join(rel)).ok();
    let text = read("memory.max").or_else(|| read("memory/memory.limit_in_bytes"))?;
    parse_limit(&text)
}

/// A cgroup memory limit file's contents -> bytes, `None` for no limit.
fn parse_limit(text: &str) -> Option<usize> {
    const UNLIMITED: u64 = 1 << 60;
    let bytes: u64 = text.trim().parse().ok()?;
    if bytes >= UNLIMITED {
        return None;
    }
    usize::try_from(bytes).ok()
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

    #[test]
    fn limit_files_say_a_size_or_no_limit() {
        assert_eq!(parse_limit("536870912\n"), Some(512 << 20));
        assert_eq!(parse_limit("max\n"), None);
        assert_eq!(parse_limit("9223372036854771712\n"), None); // v1 unlimited, 4 KiB pages
        assert_eq!(parse_limit("9223372036854775807"), None);
        assert_eq!(parse_limit(""), None);
        assert_eq!(parse_limit("-1"), None);
    }

    /// A fresh directory standing in for /sys/fs/cgroup.
    fn cgroup_dir(name: &str, files: &[(&str, &str)]) -> std::path::PathBuf {
        let root =
            std::env::temp_dir().join(format!("sray-pool-cgroup-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for (rel, text) in files {
            let path = root.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        std::fs::create_dir_all(&root).unwrap();
        root
    }

    #[test]
    fn the_cgroup_limit_is_read_from_v2_then_v1() {
        let v2 = cgroup_dir("v2", &[("memory.max", "2147483648\n")]);
        assert_eq!(cgroup_limit(&v2), Some(2 << 30));
        let v2_open = cgroup_dir("v2-max", &[("memory.max", "max\n")]);
        assert_eq!(cgroup_limit(&v2_open), None);
        let v1 = cgroup_dir("v1", &[("memory/memory.limit_in_bytes", "1073741824\n")]);
        assert_eq!(cgroup_limit(&v1), Some(1 << 30));
        let v1_open = cgroup_dir(
            "v1-open",
            &[("memory/memory.limit_in_bytes", "9223372036854771712\n")],
        );
        assert_eq!(cgroup_limit(&v1_open), None);
        let none = cgroup_dir("none", &[]);
        assert_eq!(cgroup_limit(&none), None);
        for dir in [v2, v2_open, v1, v1_open, none] {
            std::fs::remove_dir_all(dir).unwrap();
        }
    }

    #[test]
    fn the_smaller_of_the_machine_and_the_cgroup_counts() {
        assert_eq!(usable_memory(Some(64 << 30), Some(3 << 30)), Some(3 << 30));
        assert_eq!(usable_memory(Some(2 << 30), Some(8 << 30)), Some(2 << 30));
        assert_eq!(usable_memory(Some(2 << 30), None), Some(2 << 30));
        assert_eq!(usable_memory(None, Some(1 << 30)), Some(1 << 30));
        assert_eq!(usable_memory(None, None), None);
    }
}
