//! The MLX adapter on this machine: BLAS, devices, precision, versions.

use bench_core::error::unavailable_reason;
use bench_core::{DeviceKind, Precision, Runtime};
use fw_mlx::{gpu_backend, version, MlxRuntime};

#[test]
fn version_is_the_pinned_mlx() {
    assert_eq!(version(), "0.32.2");
}

/// The wheel's reference BLAS would make every MLX-on-CPU figure
/// meaningless: set-up must have put OpenBLAS behind MLX's cblas_sgemm.
#[cfg(target_os = "linux")]
#[test]
fn mlx_sgemm_is_served_by_openblas() {
    use fw_mlx::blas;
    let provider = blas::provider(c"cblas_sgemm").expect("cblas_sgemm is loaded");
    assert!(
        provider.contains("openblas"),
        "cblas_sgemm comes from {provider}"
    );
    assert!(
        blas::description().starts_with("OpenBLAS"),
        "{}",
        blas::description()
    );
}

#[test]
fn missing_gpu_is_a_skip_not_a_panic() {
    let result = MlxRuntime::new(DeviceKind::Gpu, Precision::F32, 1);
    match gpu_backend() {
        None => {
            let reason =
                unavailable_reason(&result.err().expect("no GPU here")).expect("Unavailable");
            assert!(reason.contains("no GPU backend"), "{reason}");
        }
        Some(_) => assert!(result.is_ok()),
    }
}

#[test]
fn tf32_on_cpu_is_a_skip() {
    let error = MlxRuntime::new(DeviceKind::Cpu, Precision::Tf32, 1)
        .err()
        .expect("tf32 on cpu");
    assert!(unavailable_reason(&error).is_some_and(|r| r.contains("tf32")));
}

#[test]
fn cpu_runtime_synchronises_and_reports_memory() {
    let runtime = MlxRuntime::new(DeviceKind::Cpu, Precision::Bf16, 1).unwrap();
    assert_eq!(runtime.dtype(), mlx_rs::Dtype::Bfloat16);
    runtime.reset_peak_memory();
    let a = mlx_rs::ops::ones::<f32>(&[256, 256]).unwrap();
    let b = a.matmul(&a).unwrap();
    b.eval().unwrap();
    runtime.synchronize().unwrap();
    assert!(runtime.peak_memory_bytes().unwrap() >= 256 * 256 * 4);
    assert!(runtime.device_description().starts_with("cpu (1 threads"));
}
