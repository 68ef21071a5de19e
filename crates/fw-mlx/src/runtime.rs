use std::ffi::CStr;

use anyhow::{bail, Result};
use bench_core::cli::FrameworkHooks;
use bench_core::{DeviceKind, Execution, Framework, Precision, Runtime, Unavailable};
use mlx_rs::{Device, Dtype, Stream};

use crate::blas;

/// What `bench_core::cli` needs before MLX is first used.
pub const HOOKS: FrameworkHooks = FrameworkHooks {
    framework: Framework::Mlx,
    version,
    configure_process,
};

/// MLX's library version, e.g. "0.32.2".
pub fn version() -> String {
    // SAFETY: mlx_version fills a string we own and free.
    unsafe {
        let mut text = mlx_sys::mlx_string_new();
        let status = mlx_sys::mlx_version(&mut text);
        let version = if status == 0 {
            CStr::from_ptr(mlx_sys::mlx_string_data(text))
                .to_string_lossy()
                .into_owned()
        } else {
            "unknown".to_owned()
        };
        mlx_sys::mlx_string_free(text);
        version
    }
}

/// Sets the CPU thread count and MLX's TF32 switch (read when MLX's CUDA
/// backend starts, so this must come first). MLX's own default on CUDA is
/// TF32; here it follows the chosen precision, as PyTorch's does. Eager
/// mode turns off `compile` (it becomes a no-op, as `mx.disable_compile()`)
/// and MLX's automatic CUDA graphs.
pub fn configure_process(precision: Precision, execution: Execution, threads: usize) {
    let tf32 = if precision == Precision::Tf32 {
        "1"
    } else {
        "0"
    };
    // SAFETY: called at start-up, before any other thread exists.
    unsafe {
        std::env::set_var("MLX_ENABLE_TF32", tf32);
        if execution == Execution::Eager {
            std::env::set_var("MLX_DISABLE_COMPILE", "1");
            std::env::set_var("MLX_USE_CUDA_GRAPHS", "0");
        }
        if precision == Precision::F32 {
            // NVIDIA's own switch: no TF32 in cuBLAS or cuDNN, whoever calls.
            std::env::set_var("NVIDIA_TF32_OVERRIDE", "0");
        }
    }
    blas::set_threads(threads);
}

/// "cuda", "metal", or None where MLX has no GPU backend. Asked of MLX
/// first, because `Device::gpu()` panics where there is none.
pub fn gpu_backend() -> Option<&'static str> {
    let ask = |query: unsafe extern "C" fn(*mut bool) -> i32| {
        let mut available = false;
        // SAFETY: the query writes one bool.
        let status = unsafe { query(&mut available) };
        status == 0 && available
    };
    if ask(mlx_sys::mlx_cuda_is_available) {
        Some("cuda")
    } else if ask(mlx_sys::mlx_metal_is_available) {
        Some("metal")
    } else {
        None
    }
}

/// What MLX itself says of a device (`mlx_device_info_get`): on Metal the
/// GPU's name, architecture ("applegpu_g16s") and recommended working set
/// (the memory Metal lets one process keep resident); on CUDA the
/// architecture. Keys a backend lacks stay None.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DeviceInfo {
    pub name: Option<String>,
    pub architecture: Option<String>,
    pub recommended_working_set_bytes: Option<u64>,
}

impl DeviceInfo {
    /// ", applegpu_g16s, recommended working set 96.0 GiB": what the
    /// runtime's device description adds; empty where MLX said nothing.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        if let Some(architecture) = &self.architecture {
            out.push_str(", ");
            out.push_str(architecture);
        }
        if let Some(bytes) = self.recommended_working_set_bytes {
            out.push_str(&format!(
                ", recommended working set {:.1} GiB",
                bytes as f64 / (1u64 << 30) as f64
            ));
        }
        out
    }
}

/// MLX's description of its GPU; None where MLX has no GPU backend or
/// cannot describe it (never fatal).
pub fn gpu_info() -> Option<DeviceInfo> {
    gpu_backend()?;
    device_info(mlx_sys::mlx_device_type__MLX_GPU)
}

/// `mlx_device_info_get` for device 0 of `kind`, the info freed whatever
/// happens; None where MLX reports an error.
fn device_info(kind: mlx_sys::mlx_device_type) -> Option<DeviceInfo> {
    // mlx-rs's error handler records MLX's errors instead of mlx-c's
    // default, which exits: any mlx-rs call that can fail installs it.
    let _ = Device::cpu().get_index();
    // SAFETY: the device and info are created here and freed below; the
    // strings read point into the info and are copied before it is freed.
    unsafe {
        let device = mlx_sys::mlx_device_new_type(kind, 0);
        let mut info = mlx_sys::mlx_device_info_new();
        let status = mlx_sys::mlx_device_info_get(&mut info, device);
        let read = (status == 0).then(|| {
            let text = |key: &CStr| {
                let mut value: *const std::ffi::c_char = std::ptr::null();
                let status = mlx_sys::mlx_device_info_get_string(&mut value, info, key.as_ptr());
                (status == 0 && !value.is_null())
                    .then(|| CStr::from_ptr(value).to_string_lossy().trim().to_owned())
                    .filter(|text| !text.is_empty())
            };
            let size = |key: &CStr| {
                let mut value: usize = 0;
                let status = mlx_sys::mlx_device_info_get_size(&mut value, info, key.as_ptr());
                (status == 0 && value > 0).then_some(value as u64)
            };
            DeviceInfo {
                name: text(c"device_name"),
                architecture: text(c"architecture"),
                recommended_working_set_bytes: size(c"max_recommended_working_set_size"),
            }
        });
        mlx_sys::mlx_device_info_free(info);
        mlx_sys::mlx_device_free(device);
        read
    }
}

/// MLX bound to one device and precision.
pub struct MlxRuntime {
    device: DeviceKind,
    precision: Precision,
    threads: usize,
}

impl MlxRuntime {
    /// Makes `device` MLX's default device. A missing accelerator or an
    /// unsupported precision is [`Unavailable`] (a skipped row).
    pub fn new(device: DeviceKind, precision: Precision, threads: usize) -> Result<Self> {
        match device {
            DeviceKind::Cpu => {
                if precision == Precision::Tf32 {
                    bail!(Unavailable(
                        "tf32 is a CUDA setting; on CPU it equals f32".into()
                    ));
                }
                Device::set_default(&Device::cpu());
            }
            DeviceKind::Gpu => {
                if gpu_backend().is_none() {
                    bail!(Unavailable(
                        "MLX has no GPU backend here (neither CUDA nor Metal)".into()
                    ));
                }
                if precision == Precision::Tf32 && gpu_backend() != Some("cuda") {
                    bail!(Unavailable("tf32 is a CUDA setting".into()));
                }
                Device::set_default(&Device::gpu());
            }
        }
        Ok(Self {
            device,
            precision,
            threads,
        })
    }

    /// The element type of activations and weights at this precision.
    pub fn dtype(&self) -> Dtype {
        match self.precision {
            Precision::F32 | Precision::Tf32 => Dtype::Float32,
            Precision::Bf16 => Dtype::Bfloat16,
            Precision::F16 => Dtype::Float16,
        }
    }

    /// The default stream of the benchmark's device.
    pub fn stream(&self) -> Stream {
        match self.device {
            DeviceKind::Cpu => Stream::cpu(),
            DeviceKind::Gpu => Stream::gpu(),
        }
    }

    /// A row's `execution=`: "compiled" where the twin's step goes through
    /// `compile` (not in eager mode, where MLX_DISABLE_COMPILE makes it a
    /// no-op), "cuda-graph" where MLX records its own CUDA graphs (CUDA,
    /// best mode), "eager" otherwise.
    pub fn execution_label(&self, execution: Execution, compiles: bool) -> &'static str {
        let cuda = self.device == DeviceKind::Gpu && gpu_backend() == Some("cuda");
        match (execution, compiles, cuda) {
            (Execution::Eager, _, _) => "eager",
            (Execution::Best, true, true) => "compiled, cuda-graph",
            (Execution::Best, true, false) => "compiled",
            (Execution::Best, false, true) => "cuda-graph",
            (Execution::Best, false, false) => "eager",
        }
    }

    /// The CPU stream, for work placed on the CPU beside the accelerator.
    pub fn cpu_stream(&self) -> Stream {
        Stream::cpu()
    }

    /// Seeds MLX's global random state.
    pub fn seed(&self, seed: u64) -> Result<()> {
        mlx_rs::random::seed(seed)?;
        Ok(())
    }
}

impl Runtime for MlxRuntime {
    fn device(&self) -> DeviceKind {
        self.device
    }

    fn synchronize(&self) -> Result<()> {
        let mut streams = vec![Stream::cpu()];
        if self.device == DeviceKind::Gpu {
            streams.push(Stream::gpu());
        }
        for stream in streams {
            // SAFETY: a valid stream handle owned by `stream`.
            let status = unsafe { mlx_sys::mlx_synchronize(stream.as_ptr()) };
            if status != 0 {
                bail!("mlx_synchronize failed with status {status}");
            }
        }
        Ok(())
    }

    fn peak_memory_bytes(&self) -> Option<u64> {
        mlx_rs::memory::peak_memory().ok().map(|bytes| bytes as u64)
    }

    fn reset_peak_memory(&self) {
        let _ = mlx_rs::memory::reset_peak_memory();
    }

    fn device_description(&self) -> String {
        match self.device {
            DeviceKind::Cpu => format!("cpu ({} threads, {})", self.threads, blas::description()),
            DeviceKind::Gpu => format!(
                "gpu ({}{})",
                gpu_backend().unwrap_or("none"),
                gpu_info().map(|info| info.describe()).unwrap_or_default()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_description_adds_what_mlx_said() {
        let metal = DeviceInfo {
            name: Some("Apple M4 Max".into()),
            architecture: Some("applegpu_g16s".into()),
            recommended_working_set_bytes: Some(96 << 30),
        };
        assert_eq!(
            metal.describe(),
            ", applegpu_g16s, recommended working set 96.0 GiB"
        );
        let cuda = DeviceInfo {
            architecture: Some("sm_90".into()),
            ..DeviceInfo::default()
        };
        assert_eq!(cuda.describe(), ", sm_90");
        assert_eq!(DeviceInfo::default().describe(), "");
    }

    #[test]
    fn mlx_describes_its_devices_through_the_c_api() {
        // The CPU device always answers: its architecture is this machine's.
        let cpu = device_info(mlx_sys::mlx_device_type__MLX_CPU).expect("the CPU device info");
        assert_eq!(cpu.architecture.as_deref(), Some(std::env::consts::ARCH));
        assert_eq!(cpu.recommended_working_set_bytes, None);
        // Without a GPU backend, the GPU is not asked, and asking it anyway
        // is not fatal.
        if gpu_backend().is_none() {
            assert_eq!(gpu_info(), None);
            let gpu = device_info(mlx_sys::mlx_device_type__MLX_GPU);
            assert!(
                gpu.as_ref().is_none_or(|info| info.architecture.is_none()),
                "{gpu:?}"
            );
        }
    }
}
