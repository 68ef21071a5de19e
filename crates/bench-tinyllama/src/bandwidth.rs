//! The device's copy bandwidth, measured without either framework, so that
//! both twins' generation speed is divided by the same ceiling: on the CPU
//! a threaded y = 2x (MLX's elementwise kernels use one thread and
//! PyTorch's use all of them: their own y = 2x would measure the
//! frameworks, not the memory); on CUDA the runtime's own device-to-device
//! `cudaMemcpy`, the same call whichever framework's process makes it.

use std::ffi::{c_int, c_void, CStr};

use anyhow::{bail, Result};

/// STREAM's "scale", y = 2x, over float32 buffers split across threads.
pub struct HostScale {
    x: Vec<f32>,
    y: Vec<f32>,
    threads: usize,
}

impl HostScale {
    /// Both buffers are written here, so that page faults stay out of the
    /// timed passes.
    pub fn new(elements: usize, threads: usize) -> Self {
        Self {
            x: vec![1.0; elements],
            y: vec![0.0; elements],
            threads: threads.max(1),
        }
    }

    /// Bytes read plus bytes written by one pass.
    pub fn bytes(&self) -> f64 {
        (2 * self.x.len() * std::mem::size_of::<f32>()) as f64
    }

    /// One pass over the buffers.
    pub fn run(&mut self) {
        let chunk = self.x.len().div_ceil(self.threads).max(1);
        std::thread::scope(|scope| {
            for (x, y) in self.x.chunks(chunk).zip(self.y.chunks_mut(chunk)) {
                scope.spawn(move || {
                    for (out, value) in y.iter_mut().zip(x) {
                        *out = 2.0 * value;
                    }
                });
            }
        });
    }

    /// An element of the result, so the pass cannot be optimised away.
    pub fn probe(&self, index: usize) -> f32 {
        self.y[index % self.y.len()]
    }
}

type CudaStatus = c_int;

/// The CUDA runtime calls the copy needs, from the libcudart.so.13 that the
/// framework has already loaded.
struct CudaRuntimeApi {
    malloc: unsafe extern "C" fn(*mut *mut c_void, usize) -> CudaStatus,
    free: unsafe extern "C" fn(*mut c_void) -> CudaStatus,
    memcpy: unsafe extern "C" fn(*mut c_void, *const c_void, usize, c_int) -> CudaStatus,
    synchronize: unsafe extern "C" fn() -> CudaStatus,
}

const CUDA_MEMCPY_DEVICE_TO_DEVICE: c_int = 3;

/// A device-to-device `cudaMemcpy` between two buffers of `bytes`.
pub struct CudaMemcpy {
    api: CudaRuntimeApi,
    source: *mut c_void,
    target: *mut c_void,
    bytes: usize,
}

impl CudaMemcpy {
    /// Err where there is no CUDA runtime in this process (CPU, Metal).
    pub fn new(bytes: usize) -> Result<Self> {
        // SAFETY: dlopen/dlsym with NUL-terminated names; the handle stays
        // open for the process (the framework holds the library anyway).
        let api = unsafe {
            let handle = libc::dlopen(
                c"libcudart.so.13".as_ptr(),
                libc::RTLD_NOW | libc::RTLD_LOCAL,
            );
            if handle.is_null() {
                bail!("no CUDA runtime (libcudart.so.13) in this process");
            }
            let symbol = |name: &CStr| {
                let address = libc::dlsym(handle, name.as_ptr());
                if address.is_null() {
                    bail!("the CUDA runtime (libcudart.so.13) lacks {name:?}");
                }
                Ok(address)
            };
            CudaRuntimeApi {
                malloc: std::mem::transmute::<
                    *mut c_void,
                    unsafe extern "C" fn(*mut *mut c_void, usize) -> CudaStatus,
                >(symbol(c"cudaMalloc")?),
                free: std::mem::transmute::<
                    *mut c_void,
                    unsafe extern "C" fn(*mut c_void) -> CudaStatus,
                >(symbol(c"cudaFree")?),
                memcpy: std::mem::transmute::<
                    *mut c_void,
                    unsafe extern "C" fn(*mut c_void, *const c_void, usize, c_int) -> CudaStatus,
                >(symbol(c"cudaMemcpy")?),
                synchronize: std::mem::transmute::<*mut c_void, unsafe extern "C" fn() -> CudaStatus>(
                    symbol(c"cudaDeviceSynchronize")?,
                ),
            }
        };
        let mut copy = Self {
            api,
            source: std::ptr::null_mut(),
            target: std::ptr::null_mut(),
            bytes,
        };
        // SAFETY: cudaMalloc writes a device pointer; freed in Drop.
        unsafe {
            if (copy.api.malloc)(&mut copy.source, bytes) != 0
                || (copy.api.malloc)(&mut copy.target, bytes) != 0
            {
                bail!(
                    "CUDA device memory: cudaMalloc of 2 x {bytes} bytes failed (no CUDA device?)"
                );
            }
        }
        Ok(copy)
    }

    /// Bytes read plus bytes written by one copy.
    pub fn bytes(&self) -> f64 {
        2.0 * self.bytes as f64
    }

    /// One copy, waited for.
    pub fn run(&self) -> Result<()> {
        // SAFETY: both buffers hold `bytes` on the device.
        let status = unsafe {
            (self.api.memcpy)(
                self.target,
                self.source,
                self.bytes,
                CUDA_MEMCPY_DEVICE_TO_DEVICE,
            )
        };
        // SAFETY: a plain runtime call.
        let synced = unsafe { (self.api.synchronize)() };
        if status != 0 || synced != 0 {
            bail!("CUDA memcpy failed (status {status}, synchronise {synced})");
        }
        Ok(())
    }
}

impl Drop for CudaMemcpy {
    fn drop(&mut self) {
        // SAFETY: pointers from cudaMalloc (or null, which cudaFree accepts).
        unsafe {
            (self.api.free)(self.source);
            (self.api.free)(self.target);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_element_is_doubled() {
        let mut scale = HostScale::new(1001, 3);
        scale.run();
        assert!((0..1001).all(|i| scale.probe(i) == 2.0));
        assert_eq!(scale.bytes(), 2.0 * 1001.0 * 4.0);
    }

    #[test]
    fn without_cuda_the_device_copy_is_an_error() {
        if let Err(error) = CudaMemcpy::new(1024) {
            assert!(error.to_string().contains("CUDA"), "{error}");
        }
    }
}
