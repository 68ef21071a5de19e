use std::cell::Cell;
use std::ffi::CStr;
use std::path::PathBuf;

use anyhow::{bail, Result};
use bench_core::cli::FrameworkHooks;
use bench_core::{DeviceKind, Execution, Framework, Precision, Runtime, Unavailable};
use tch::{Device, Kind};

use crate::{cuda, shim};

/// What `bench_core::cli` needs before libtorch is first used.
pub const HOOKS: FrameworkHooks = FrameworkHooks {
    framework: Framework::Torch,
    version,
    configure_process,
};

/// libtorch's version, e.g. "2.11.0+cu130", read from the `version.py`
/// beside the libtorch that this process loaded.
pub fn version() -> String {
    libtorch_dir()
        .and_then(|lib| std::fs::read_to_string(lib.join("../version.py")).ok())
        .and_then(|text| {
            text.lines().find_map(|line| {
                let rest = line.strip_prefix("__version__")?;
                let value = rest.split(['\'', '"']).nth(1)?;
                Some(value.to_owned())
            })
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// A function of libtorch_cpu's (`at::get_num_threads()`, mangled alike by
/// libstdc++ and libc++: no standard-library type in its signature).
const LIBTORCH_SYMBOL: &CStr = c"_ZN2at15get_num_threadsEv";

/// The folder of the libtorch_cpu library loaded into this process (its
/// `lib/`), found by asking the dynamic loader which file defines one of
/// its functions (`dladdr`, on Linux and macOS alike). None before
/// libtorch is loaded or where the loader cannot say.
pub fn libtorch_dir() -> Option<PathBuf> {
    // SAFETY: dlsym and dladdr only read the loader's tables; the file name
    // dladdr returns lives as long as the library, which is never unloaded.
    let file = unsafe {
        let address = libc::dlsym(libc::RTLD_DEFAULT, LIBTORCH_SYMBOL.as_ptr());
        if address.is_null() {
            return None;
        }
        let mut info: libc::Dl_info = std::mem::zeroed();
        if libc::dladdr(address, &mut info) == 0 || info.dli_fname.is_null() {
            return None;
        }
        CStr::from_ptr(info.dli_fname).to_str().ok()?.to_owned()
    };
    let file = PathBuf::from(file);
    let file = file.canonicalize().unwrap_or(file);
    file.parent().map(PathBuf::from)
}

/// Sets the CPU thread count and PyTorch's TF32 switch. PyTorch's default
/// is strict float32; `TORCH_ALLOW_TF32_CUBLAS_OVERRIDE` is read when
/// cuBLAS starts, so this must come first. Eager mode needs no process
/// switch here: the twins choose graphs and optimizers per cell.
pub fn configure_process(precision: Precision, _execution: Execution, threads: usize) {
    // SAFETY: called at start-up, before any other thread exists.
    unsafe {
        match precision {
            Precision::Tf32 => std::env::set_var("TORCH_ALLOW_TF32_CUBLAS_OVERRIDE", "1"),
            // PyTorch allows TF32 in cuDNN convolutions by default and tch
            // has no setter for it: NVIDIA's own switch turns TF32 off in
            // cuBLAS and cuDNN alike.
            Precision::F32 => std::env::set_var("NVIDIA_TF32_OVERRIDE", "0"),
            Precision::Bf16 | Precision::F16 => {}
        }
    }
    tch::set_num_threads(threads as i32);
}

/// "cuda", "mps", or None where libtorch has no accelerator here.
pub fn gpu_backend() -> Option<&'static str> {
    if cuda::load().is_ok() && tch::Cuda::is_available() {
        Some("cuda")
    } else if tch::utils::has_mps() {
        Some("mps")
    } else {
        None
    }
}

/// Set (to the reason) where PyTorch's MPS must not be used, e.g.
/// `MLX_VS_TORCH_SKIP_MPS="hosted runners have no MPS"`.
pub const SKIP_MPS: &str = "MLX_VS_TORCH_SKIP_MPS";

/// libtorch bound to one device and precision.
pub struct TorchRuntime {
    device: DeviceKind,
    precision: Precision,
    threads: usize,
    tch_device: Device,
    /// The most the MPS allocator held for tensors at a synchronisation
    /// since the last reset: MPS keeps no peak of its own.
    mps_peak: Cell<u64>,
}

impl TorchRuntime {
    /// Resolves `device`. A missing accelerator or an unsupported precision
    /// is [`Unavailable`] (a skipped row).
    pub fn new(device: DeviceKind, precision: Precision, threads: usize) -> Result<Self> {
        let tch_device = match device {
            DeviceKind::Cpu => {
                if precision == Precision::Tf32 {
                    bail!(Unavailable(
                        "tf32 is a CUDA setting; on CPU it equals f32".into()
                    ));
                }
                Device::Cpu
            }
            DeviceKind::Gpu => match gpu_backend() {
                Some("cuda") => Device::Cuda(0),
                // A Mac whose runner has no usable MPS (GitHub's hosted
                // runners) says why: the cells become skipped rows.
                _ if std::env::var(SKIP_MPS).is_ok_and(|why| !why.is_empty()) => {
                    let why = std::env::var(SKIP_MPS).unwrap_or_default();
                    bail!(Unavailable(format!("PyTorch MPS skipped: {why}")))
                }
                Some(_) if precision == Precision::Tf32 => {
                    bail!(Unavailable("tf32 is a CUDA setting".into()))
                }
                Some(_) if precision == Precision::Bf16 && !shim::mps_macos_at_least(14, 0)? => {
                    bail!(Unavailable(
                        "bf16 on MPS needs macOS 14 (Sonoma) or newer".into()
                    ))
                }
                Some(_) => Device::Mps,
                None => {
                    let reason = cuda::load()
                        .err()
                        .unwrap_or_else(|| "no CUDA device".into());
                    bail!(Unavailable(format!("PyTorch has no GPU here: {reason}")))
                }
            },
        };
        Ok(Self {
            device,
            precision,
            threads,
            tch_device,
            mps_peak: Cell::new(0),
        })
    }

    /// The element type of activations and weights at this precision.
    pub fn kind(&self) -> Kind {
        match self.precision {
            Precision::F32 | Precision::Tf32 => Kind::Float,
            Precision::Bf16 => Kind::BFloat16,
            Precision::F16 => Kind::Half,
        }
    }

    /// The benchmark's device.
    pub fn tch_device(&self) -> Device {
        self.tch_device
    }

    /// Seeds libtorch's generators (CPU and, where present, CUDA).
    pub fn seed(&self, seed: u64) -> Result<()> {
        tch::manual_seed(seed as i64);
        Ok(())
    }
}

impl Runtime for TorchRuntime {
    fn device(&self) -> DeviceKind {
        self.device
    }

    fn synchronize(&self) -> Result<()> {
        match self.tch_device {
            Device::Cuda(index) => tch::Cuda::synchronize(index as i64),
            // torch.mps.synchronize, through the shim (tch has none); the
            // allocator's figure is read while the device is idle.
            Device::Mps => {
                shim::mps_synchronize()?;
                let (allocated, _) = shim::mps_memory()?;
                self.mps_peak.set(self.mps_peak.get().max(allocated));
            }
            _ => {}
        }
        Ok(())
    }

    /// On MPS, the most its allocator held for tensors at the case's
    /// synchronisations (every repetition ends with one). tch exposes no
    /// CUDA allocator statistics; the row's peak RSS covers CPU runs.
    fn peak_memory_bytes(&self) -> Option<u64> {
        (self.tch_device == Device::Mps).then(|| self.mps_peak.get())
    }

    fn reset_peak_memory(&self) {
        self.mps_peak.set(0);
    }

    fn device_description(&self) -> String {
        match self.tch_device {
            Device::Cpu => format!("cpu ({} threads)", self.threads),
            Device::Cuda(index) => format!("cuda:{index}"),
            other => format!("{other:?}").to_lowercase(),
        }
    }
}
