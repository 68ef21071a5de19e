//! The libtorch adapter on this machine: devices, precision, versions.

use bench_core::error::unavailable_reason;
use bench_core::{DeviceKind, Precision, Runtime};
use fw_torch::{gpu_backend, libtorch_dir, to_host_f32, version, TorchRuntime};
use std::path::Path;

#[test]
fn version_is_read_from_the_loaded_libtorch() {
    assert!(version().starts_with("2.11.0"), "{}", version());
}

/// The loader names the libtorch this process runs on (`dladdr`): the
/// one `LIBTORCH` points at, where it is set.
#[test]
fn the_loaded_libtorch_is_found_by_the_loader() {
    let dir = libtorch_dir().expect("libtorch_cpu is loaded and dladdr names it");
    let library = if cfg!(target_os = "macos") {
        "libtorch_cpu.dylib"
    } else {
        "libtorch_cpu.so"
    };
    assert!(dir.join(library).is_file(), "{}", dir.display());
    if let Some(root) = std::env::var_os("LIBTORCH") {
        let expected = Path::new(&root).join("lib").canonicalize().unwrap();
        assert_eq!(dir, expected);
    }
}

#[test]
fn missing_gpu_is_a_skip_not_a_panic() {
    let result = TorchRuntime::new(DeviceKind::Gpu, Precision::F32, 1);
    match gpu_backend() {
        None => {
            let reason =
                unavailable_reason(&result.err().expect("no GPU here")).expect("Unavailable");
            assert!(reason.contains("PyTorch has no GPU here"), "{reason}");
        }
        Some(_) => assert!(result.is_ok()),
    }
}

#[test]
fn tf32_on_cpu_is_a_skip() {
    let error = TorchRuntime::new(DeviceKind::Cpu, Precision::Tf32, 1)
        .err()
        .expect("tf32 on cpu");
    assert!(unavailable_reason(&error).is_some_and(|r| r.contains("tf32")));
}

#[test]
fn cpu_runtime_maps_precision_and_copies_to_host() {
    let runtime = TorchRuntime::new(DeviceKind::Cpu, Precision::F16, 1).unwrap();
    assert_eq!(runtime.kind(), tch::Kind::Half);
    let t = tch::Tensor::from_slice(&[1.5f32, -2.0, 3.25])
        .reshape([3, 1])
        .to_kind(runtime.kind());
    runtime.synchronize().unwrap();
    let host = to_host_f32(&t).unwrap();
    assert_eq!(host.shape, vec![3, 1]);
    assert_eq!(host.data, vec![1.5, -2.0, 3.25]);
}
