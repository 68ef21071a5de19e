//! A runner without MPS names its reason, and PyTorch's GPU cells become
//! skipped rows with it. Its own test binary: the one test sets the
//! variable before anything else runs in the process.

use bench_core::error::unavailable_reason;
use bench_core::{DeviceKind, Precision};
use fw_torch::{gpu_backend, TorchRuntime};

#[test]
fn a_runner_without_mps_skips_the_gpu_with_its_reason() {
    if gpu_backend() == Some("cuda") {
        return; // The variable is about MPS: CUDA machines ignore it.
    }
    std::env::set_var("MLX_VS_TORCH_SKIP_MPS", "hosted runners have no MPS");
    let error = TorchRuntime::new(DeviceKind::Gpu, Precision::F32, 1)
        .err()
        .expect("the GPU is skipped");
    let reason = unavailable_reason(&error).expect("a skipped row, not a failure");
    assert_eq!(reason, "PyTorch MPS skipped: hosted runners have no MPS");
    // The CPU is not affected.
    assert!(TorchRuntime::new(DeviceKind::Cpu, Precision::F32, 1).is_ok());
}
