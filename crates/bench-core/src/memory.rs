//! The peak memory of this process, the `peak_rss_bytes` of a result row.
//!
//! One figure per operating system, each read from the kernel's own count:
//! - Linux: the resident set's high-water mark (`VmHWM`), which
//!   [`reset_peak_rss`] resets. `getrusage`'s `ru_maxrss` is not used
//!   there: across `exec` it keeps the peak of the parent that spawned the
//!   process (any `posix_spawn` or `vfork` start, so every runner), and
//!   nothing resets it.
//! - macOS: the peak of the physical footprint (`task_info` with
//!   `TASK_VM_INFO`), which, unlike the resident set, counts Metal buffers
//!   and compressed memory: the figure Activity Monitor shows.
//! - Elsewhere, and where those are unreadable: `getrusage`'s `ru_maxrss`
//!   ([`max_rss_bytes`]).

/// The peak memory of this process in bytes (see the module's notes).
pub fn peak_rss_bytes() -> Option<u64> {
    platform::peak_bytes().or_else(max_rss_bytes)
}

/// Makes the next [`peak_rss_bytes`] cover only what follows, where the
/// system allows it. Best effort.
pub fn reset_peak_rss() {
    platform::reset_peak();
}

/// `getrusage(RUSAGE_SELF)`'s `ru_maxrss` in bytes: the portable peak
/// resident set size (the kernel counts KiB on Linux, bytes on macOS). On
/// Linux it includes the spawning parent's peak (see the module's notes).
pub fn max_rss_bytes() -> Option<u64> {
    // SAFETY: getrusage fills the zeroed struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0 {
            return None;
        }
        usage
    };
    let max_rss = u64::try_from(usage.ru_maxrss).ok()?;
    Some(if cfg!(target_vendor = "apple") {
        max_rss
    } else {
        max_rss * 1024
    })
}

#[cfg(target_os = "linux")]
mod platform {
    /// `VmHWM` of /proc/self/status, in bytes.
    pub fn peak_bytes() -> Option<u64> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    }

    /// Resets `VmHWM` to the current resident set (Linux 4.0+).
    pub fn reset_peak() {
        let _ = std::fs::write("/proc/self/clear_refs", "5");
    }
}

#[cfg(target_os = "macos")]
mod platform {
    /// `TASK_VM_INFO` in <mach/task_info.h>.
    const TASK_VM_INFO: libc::task_flavor_t = 22;

    /// The start of `task_vm_info_data_t` (revision 3, macOS 10.15+), up
    /// to the field read here, and room for the later revisions' fields:
    /// the kernel fills what it knows and says how much.
    #[repr(C)]
    struct TaskVmInfo {
        _virtual_size: u64,
        _region_count: i32,
        _page_size: i32,
        /// `resident_size` to `compressed_lifetime`: 16 fields.
        _counters: [u64; 16],
        /// Revision 1.
        phys_footprint: u64,
        /// Revision 2: `min_address`, `max_address`.
        _addresses: [u64; 2],
        /// Revision 3.
        ledger_phys_footprint_peak: i64,
        _later_revisions: [u64; 64],
    }

    // The offsets of XNU's `struct task_vm_info`: a miscount above would
    // read a neighbouring counter, which the type-check alone cannot see.
    const _: () = assert!(
        std::mem::offset_of!(TaskVmInfo, phys_footprint) == 144
            && std::mem::offset_of!(TaskVmInfo, ledger_phys_footprint_peak) == 168
    );

    /// The count (in `natural_t`, what `task_info` takes and returns) that
    /// covers the 8-byte field at `offset`.
    const fn count_through(offset: usize) -> libc::mach_msg_type_number_t {
        ((offset + 8) / 4) as libc::mach_msg_type_number_t
    }

    /// The peak physical footprint (`ledger_phys_footprint_peak`); on a
    /// kernel older than revision 3, the current footprint or the peak
    /// resident set, whichever is larger.
    pub fn peak_bytes() -> Option<u64> {
        // SAFETY: task_info writes at most `count` natural_t into the
        // zeroed structure, and says in `count` how many it wrote.
        let (info, count) = unsafe {
            let mut info: TaskVmInfo = std::mem::zeroed();
            let mut count = (std::mem::size_of::<TaskVmInfo>() / 4) as libc::mach_msg_type_number_t;
            #[allow(deprecated)] // libc points to the mach2 crate for this one call.
            let task = libc::mach_task_self();
            let status = libc::task_info(
                task,
                TASK_VM_INFO,
                (&mut info as *mut TaskVmInfo).cast(),
                &mut count,
            );
            if status != libc::KERN_SUCCESS {
                return None;
            }
            (info, count)
        };
        let peak_offset = std::mem::offset_of!(TaskVmInfo, ledger_phys_footprint_peak);
        let footprint_offset = std::mem::offset_of!(TaskVmInfo, phys_footprint);
        if count >= count_through(peak_offset) {
            u64::try_from(info.ledger_phys_footprint_peak).ok()
        } else if count >= count_through(footprint_offset) {
            Some(info.phys_footprint.max(super::max_rss_bytes().unwrap_or(0)))
        } else {
            None
        }
    }

    /// macOS has no public call that resets a task's peak footprint, and
    /// needs none here: every cell runs in a process of its own (see
    /// `bench_core::process`), so the process's peak is the cell's, with
    /// the runner's own start-up (a few MB) included.
    pub fn reset_peak() {}
}

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
mod platform {
    /// No figure beyond `getrusage`'s here.
    pub fn peak_bytes() -> Option<u64> {
        None
    }

    /// Nothing to reset: as on macOS, the process's peak is the cell's.
    pub fn reset_peak() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    /// Touching 64 MiB raises the figure by at least that, from a reset
    /// peak; `getrusage`'s figure, in bytes too, is as large (it also
    /// counts the peak before the reset, and the spawning parent's).
    #[test]
    fn touching_64_mib_raises_the_peak_by_as_much() {
        reset_peak_rss();
        let before = peak_rss_bytes().expect("a peak figure on this system");
        let mut block = vec![0u8; (64 * MIB) as usize];
        for page in block.chunks_mut(4096) {
            page[0] = 1;
        }
        std::hint::black_box(&block);
        let after = peak_rss_bytes().expect("a peak figure on this system");
        assert!(
            after >= before + 64 * MIB,
            "peak went from {before} to {after} bytes after touching 64 MiB"
        );
        // ru_maxrss and VmHWM come from counters that the kernel updates
        // in batches, so they may differ by a few pages.
        let max_rss = max_rss_bytes().expect("getrusage works");
        assert!(
            max_rss >= 64 * MIB && max_rss + 4 * MIB >= after,
            "getrusage's ru_maxrss is {max_rss} bytes, the peak {after}"
        );
        drop(block);
    }
}
