//! What every crate's tests share: both frameworks' CPU runtimes, and a
//! closeness check that names what it compared. Tests may panic; these do,
//! with the reason.

use bench_core::host::HostTensor;
use bench_core::{DeviceKind, Precision};
use fw_mlx::MlxRuntime;
use fw_torch::TorchRuntime;

/// Both runtimes on the CPU at `precision`, `threads` each (CI has two
/// cores: one thread each lets both twins' tests run side by side).
pub fn cpu_runtimes(precision: Precision, threads: usize) -> (MlxRuntime, TorchRuntime) {
    let mlx = MlxRuntime::new(DeviceKind::Cpu, precision, threads)
        .unwrap_or_else(|e| panic!("MLX on the CPU at {precision}: {e:#}"));
    let torch = TorchRuntime::new(DeviceKind::Cpu, precision, threads)
        .unwrap_or_else(|e| panic!("PyTorch on the CPU at {precision}: {e:#}"));
    (mlx, torch)
}

/// Asserts that `a` and `b` have one shape and differ by at most
/// `tolerance` anywhere; returns the largest difference, for the test to
/// report or compare further.
pub fn assert_close(what: &str, a: &HostTensor, b: &HostTensor, tolerance: f32) -> f32 {
    let diff = a
        .max_abs_diff(b)
        .unwrap_or_else(|e| panic!("{what}: {e:#}"));
    assert!(diff <= tolerance, "{what}: max |diff| {diff} > {tolerance}");
    diff
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "logits: max |diff| 0.5 > 0.1")]
    fn a_difference_above_the_tolerance_names_what_was_compared() {
        let a = HostTensor::new(vec![2], vec![1.0, 2.0]).unwrap();
        let b = HostTensor::new(vec![2], vec![1.0, 2.5]).unwrap();
        assert_close("logits", &a, &b, 0.1);
    }

    #[test]
    fn a_difference_within_the_tolerance_is_returned() {
        let a = HostTensor::new(vec![2], vec![1.0, 2.0]).unwrap();
        let b = HostTensor::new(vec![2], vec![1.0, 2.05]).unwrap();
        let diff = assert_close("logits", &a, &b, 0.1);
        assert!((diff - 0.05).abs() < 1e-6, "{diff}");
    }
}
