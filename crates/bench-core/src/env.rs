//! The environment that produced a result: machine, libraries, commit, date.

use std::path::Path;
use std::process::Command;

use sysinfo::System;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Environment {
    pub os: String,
    pub cpu: String,
    /// Physical cores (logical where the physical count is unknown).
    pub cpu_cores: usize,
    pub ram_gib: f64,
    pub gpu: String,
    pub gpu_driver: String,
    pub mlx_version: String,
    pub libtorch_version: String,
    /// Version of this suite (the benchmark crate's version).
    pub suite_version: String,
    pub git_commit: String,
}

impl Environment {
    /// Reads the machine; the caller fills in the framework versions it knows.
    pub fn capture(suite_version: &str) -> Self {
        let mut system = System::new();
        system.refresh_cpu_all();
        system.refresh_memory();
        let cpu = system
            .cpus()
            .first()
            .map(|cpu| cpu.brand().trim().to_owned())
            .unwrap_or_default();
        let cpu_cores = system.physical_core_count().unwrap_or(system.cpus().len());
        let os = format!(
            "{} ({} {})",
            System::long_os_version().unwrap_or_else(|| std::env::consts::OS.to_owned()),
            System::kernel_version().unwrap_or_default(),
            std::env::consts::ARCH
        );
        let (gpu, gpu_driver) = nvidia_gpu().unwrap_or_else(apple_gpu);
        Self {
            os,
            cpu,
            cpu_cores,
            ram_gib: system.total_memory() as f64 / (1u64 << 30) as f64,
            gpu,
            gpu_driver,
            mlx_version: String::new(),
            libtorch_version: String::new(),
            suite_version: suite_version.to_owned(),
            git_commit: git_commit(),
        }
    }
}

/// The machine's number of CPU cores that a benchmark should use by default.
pub fn default_threads() -> usize {
    let system = System::new();
    system
        .physical_core_count()
        .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
        .unwrap_or(1)
}

fn nvidia_gpu() -> Option<(String, String)> {
    let output = Command::new("nvidia-smi")
        .args(["--query-gpu=name,driver_version", "--format=csv,noheader"])
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let first = text.lines().next()?;
    let (name, driver) = first.split_once(',')?;
    let count = text.lines().count();
    let name = if count > 1 {
        format!("{count}x {}", name.trim())
    } else {
        name.trim().to_owned()
    };
    Some((name, driver.trim().to_owned()))
}

fn apple_gpu() -> (String, String) {
    if cfg!(target_os = "macos") {
        ("Apple GPU (Metal)".to_owned(), String::new())
    } else {
        (String::new(), String::new())
    }
}

/// `BENCH_GIT_COMMIT` where set (bundles run away from the checkout), else
/// the current checkout's commit.
fn git_commit() -> String {
    std::env::var("BENCH_GIT_COMMIT").unwrap_or_else(|_| checkout_commit(Path::new(".")))
}

/// HEAD of the git checkout at `dir`, with "-dirty" when it has uncommitted
/// changes; "unknown" outside a checkout.
pub fn checkout_commit(dir: &Path) -> String {
    let run = |args: &[&str]| {
        Command::new("git")
            .current_dir(dir)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    match run(&["rev-parse", "--short=12", "HEAD"]) {
        Some(commit) => {
            let dirty = run(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|status| !status.is_empty());
            if dirty {
                format!("{commit}-dirty")
            } else {
                commit
            }
        }
        None => "unknown".to_owned(),
    }
}

/// Peak resident set size of this process (Linux `VmHWM`), in bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Resets the peak resident set size (Linux 4.0+), so that the next
/// [`peak_rss_bytes`] covers only what follows. Best effort.
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}
