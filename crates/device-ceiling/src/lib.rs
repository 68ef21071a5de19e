//! device-ceiling: a device's copy bandwidth, measured without either
//! framework, so that both twins' achieved bandwidth is divided by one
//! figure ([`bench_core::ceiling`]).
//!
//! - CPU: a copy between two 256 MiB buffers, split across the physical
//!   cores, each chunk by `memcpy` (`bench_core::ceiling::host_ceiling`).
//! - CUDA: device-to-device copies through the driver API (`libcuda.so.1`,
//!   opened at run time), the copy `cudaMemcpy` makes. The driver is the
//!   one CUDA library every NVIDIA machine has on its loader's path; the
//!   runtime (`libcudart`) ships inside each framework's wheel, where a
//!   program of neither framework does not find it.
//! - Metal: blit copies between two private buffers (the `metal` crate).
//!
//! The bandwidth is bytes read plus bytes written per second at the
//! median of 10 timed passes (after 2 untimed ones), each pass waited for.
//!
//! `cargo xtask bench` runs the binary (`device-ceiling --device gpu`) once
//! per device before the run's first cell and hands its figure to every
//! cell of that device ([`bench_core::ceiling::VARIABLE`]); a cell run
//! without it measures the same probe in its own process ([`for_cell`]).

#[cfg(not(target_os = "macos"))]
mod cuda;
#[cfg(target_os = "macos")]
mod metal_copy;

use anyhow::Result;
use bench_core::ceiling::{host_ceiling, HOST_ELEMENTS};
use bench_core::{Ceiling, DeviceKind};

/// The largest buffer an accelerator's probe copies (two are allocated).
pub const LARGEST_BUFFER: usize = 1 << 30;

/// Copies of the buffer per timed pass on an accelerator: a pass of
/// milliseconds, so that the wait at its end weighs little.
pub const COPIES_PER_PASS: usize = 4;

/// Measures `device`'s ceiling here and now; on the CPU with `threads`
/// host threads.
pub fn probe(device: DeviceKind, threads: usize) -> Result<Ceiling> {
    match device {
        DeviceKind::Cpu => host_ceiling(HOST_ELEMENTS, threads),
        DeviceKind::Gpu => accelerator_ceiling(),
    }
}

/// The ceiling a cell on `device` divides by: the suite's, measured once
/// for the run ([`bench_core::ceiling::VARIABLE`]), else the same probe
/// measured here (with every physical core on the CPU, as the suite's).
pub fn for_cell(device: DeviceKind) -> Result<Ceiling> {
    match Ceiling::from_env(device)? {
        Some(ceiling) => Ok(ceiling),
        None => probe(device, bench_core::env::default_threads()),
    }
}

/// The bytes of each of an accelerator's two buffers: up to
/// [`LARGEST_BUFFER`], within a quarter of `available` bytes, whole MiB.
pub fn buffer_bytes(available: u64) -> usize {
    let quarter = (available / 4).min(LARGEST_BUFFER as u64) as usize;
    (quarter >> 20 << 20).max(1 << 20)
}

#[cfg(not(target_os = "macos"))]
fn accelerator_ceiling() -> Result<Ceiling> {
    cuda::ceiling()
}

#[cfg(target_os = "macos")]
fn accelerator_ceiling() -> Result<Ceiling> {
    metal_copy::ceiling()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_a_gib_at_most_a_quarter_of_what_is_free_and_whole_mib() {
        assert_eq!(buffer_bytes(80 << 30), 1 << 30);
        assert_eq!(buffer_bytes(2 << 30), 512 << 20);
        assert_eq!(buffer_bytes((3 << 20) + 12345), 1 << 20);
        assert_eq!(buffer_bytes(0), 1 << 20);
    }

    #[test]
    fn the_cpu_probe_gives_a_positive_finite_bandwidth() {
        let ceiling = probe(DeviceKind::Cpu, 2).unwrap();
        assert!(
            ceiling.gbps.is_finite() && ceiling.gbps > 0.0,
            "{ceiling:?}"
        );
        assert_eq!(ceiling.device, DeviceKind::Cpu);
    }

    /// Where there is a GPU, its ceiling is a bandwidth; where there is
    /// none, the probe says which library or device it lacks.
    #[test]
    fn the_accelerator_probe_measures_or_names_what_is_missing() {
        match probe(DeviceKind::Gpu, 1) {
            Ok(ceiling) => assert!(ceiling.gbps > 0.0, "{ceiling:?}"),
            Err(error) => {
                let text = format!("{error:#}");
                assert!(text.contains("CUDA") || text.contains("Metal"), "{text}");
            }
        }
    }
}
