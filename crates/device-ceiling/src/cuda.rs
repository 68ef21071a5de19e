//! The CUDA ceiling: device-to-device copies through the driver API,
//! opened at run time so that nothing here links CUDA.

use std::ffi::{c_char, c_int, c_uint, c_void, CStr};

use anyhow::{bail, Context, Result};
use bench_core::ceiling::time_passes;
use bench_core::{Ceiling, DeviceKind};

use crate::{buffer_bytes, COPIES_PER_PASS};

type CuResult = c_int;
type CuDevice = c_int;
type CuContext = *mut c_void;
type CuDevicePtr = u64;

/// The driver calls the probe makes (the `_v2` entry points are those
/// that `cuda.h` maps the plain names to).
struct Driver {
    init: unsafe extern "C" fn(c_uint) -> CuResult,
    device_get: unsafe extern "C" fn(*mut CuDevice, c_int) -> CuResult,
    device_name: unsafe extern "C" fn(*mut c_char, c_int, CuDevice) -> CuResult,
    retain_primary_context: unsafe extern "C" fn(*mut CuContext, CuDevice) -> CuResult,
    release_primary_context: unsafe extern "C" fn(CuDevice) -> CuResult,
    set_current: unsafe extern "C" fn(CuContext) -> CuResult,
    memory_info: unsafe extern "C" fn(*mut usize, *mut usize) -> CuResult,
    allocate: unsafe extern "C" fn(*mut CuDevicePtr, usize) -> CuResult,
    free: unsafe extern "C" fn(CuDevicePtr) -> CuResult,
    copy: unsafe extern "C" fn(CuDevicePtr, CuDevicePtr, usize) -> CuResult,
    synchronize: unsafe extern "C" fn() -> CuResult,
    error_name: unsafe extern "C" fn(CuResult, *mut *const c_char) -> CuResult,
}

const LIBRARY: &CStr = c"libcuda.so.1";

impl Driver {
    fn open() -> Result<Self> {
        // SAFETY: dlopen/dlsym with NUL-terminated names; the handle stays
        // open for the process. Each symbol is cast to the signature that
        // cuda.h declares for it.
        unsafe {
            let handle = libc::dlopen(LIBRARY.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL);
            if handle.is_null() {
                bail!("no CUDA driver ({LIBRARY:?} is not on this machine's library path)");
            }
            let symbol = |name: &CStr| {
                let address = libc::dlsym(handle, name.as_ptr());
                if address.is_null() {
                    bail!("the CUDA driver ({LIBRARY:?}) lacks {name:?}");
                }
                Ok(address)
            };
            macro_rules! function {
                ($name:literal) => {
                    function_at(symbol($name)?)
                };
            }
            Ok(Self {
                init: function!(c"cuInit"),
                device_get: function!(c"cuDeviceGet"),
                device_name: function!(c"cuDeviceGetName"),
                retain_primary_context: function!(c"cuDevicePrimaryCtxRetain"),
                release_primary_context: function!(c"cuDevicePrimaryCtxRelease_v2"),
                set_current: function!(c"cuCtxSetCurrent"),
                memory_info: function!(c"cuMemGetInfo_v2"),
                allocate: function!(c"cuMemAlloc_v2"),
                free: function!(c"cuMemFree_v2"),
                copy: function!(c"cuMemcpyDtoD_v2"),
                synchronize: function!(c"cuCtxSynchronize"),
                error_name: function!(c"cuGetErrorName"),
            })
        }
    }

    /// Ok for CUDA_SUCCESS, else an error naming the call and the code.
    fn check(&self, status: CuResult, call: &str) -> Result<()> {
        if status == 0 {
            return Ok(());
        }
        let mut name: *const c_char = std::ptr::null();
        // SAFETY: cuGetErrorName writes a static string or leaves null.
        let known = unsafe { (self.error_name)(status, &mut name) } == 0 && !name.is_null();
        let name = if known {
            // SAFETY: a NUL-terminated static string from the driver.
            unsafe { CStr::from_ptr(name) }
                .to_string_lossy()
                .into_owned()
        } else {
            "an unknown error".into()
        };
        bail!("CUDA: {call} failed: {name} ({status})")
    }
}

/// The function at `address`, as the field it fills declares it.
///
/// # Safety
/// `F` must be the function pointer type of the symbol at `address`.
unsafe fn function_at<F: Copy>(address: *mut c_void) -> F {
    const { assert!(std::mem::size_of::<F>() == std::mem::size_of::<*mut c_void>()) };
    // SAFETY: a function pointer of the symbol's own signature (caller).
    unsafe { std::mem::transmute_copy(&address) }
}

/// The first visible device's primary context (the one the frameworks
/// use), current on this thread while it lives.
struct PrimaryContext<'a> {
    driver: &'a Driver,
    device: CuDevice,
}

impl<'a> PrimaryContext<'a> {
    fn new(driver: &'a Driver) -> Result<Self> {
        // SAFETY: plain driver calls with out-pointers to locals.
        unsafe {
            driver.check((driver.init)(0), "cuInit")?;
            let mut device = 0;
            driver.check((driver.device_get)(&mut device, 0), "cuDeviceGet")?;
            let mut context = std::ptr::null_mut();
            driver.check(
                (driver.retain_primary_context)(&mut context, device),
                "cuDevicePrimaryCtxRetain",
            )?;
            let held = Self { driver, device };
            driver.check((driver.set_current)(context), "cuCtxSetCurrent")?;
            Ok(held)
        }
    }

    fn name(&self) -> Result<String> {
        let mut name = [0 as c_char; 256];
        // SAFETY: the driver writes at most `len` bytes, NUL-terminated.
        unsafe {
            self.driver.check(
                (self.driver.device_name)(name.as_mut_ptr(), name.len() as c_int, self.device),
                "cuDeviceGetName",
            )?;
            Ok(CStr::from_ptr(name.as_ptr()).to_string_lossy().into_owned())
        }
    }
}

impl Drop for PrimaryContext<'_> {
    fn drop(&mut self) {
        // SAFETY: releases the retain of `new`.
        unsafe { (self.driver.release_primary_context)(self.device) };
    }
}

/// A device allocation, freed on drop.
struct DeviceBuffer<'a> {
    driver: &'a Driver,
    pointer: CuDevicePtr,
}

impl<'a> DeviceBuffer<'a> {
    fn new(driver: &'a Driver, bytes: usize) -> Result<Self> {
        let mut pointer = 0;
        // SAFETY: cuMemAlloc writes a device pointer.
        let status = unsafe { (driver.allocate)(&mut pointer, bytes) };
        driver
            .check(status, "cuMemAlloc")
            .with_context(|| format!("allocating {} MiB on the GPU", bytes >> 20))?;
        Ok(Self { driver, pointer })
    }
}

impl Drop for DeviceBuffer<'_> {
    fn drop(&mut self) {
        // SAFETY: a pointer from cuMemAlloc, freed once.
        unsafe { (self.driver.free)(self.pointer) };
    }
}

/// The first visible CUDA device's copy bandwidth.
pub fn ceiling() -> Result<Ceiling> {
    let driver = Driver::open()?;
    let context = PrimaryContext::new(&driver)?;
    let (mut free, mut total) = (0, 0);
    // SAFETY: out-pointers to locals.
    driver.check(
        unsafe { (driver.memory_info)(&mut free, &mut total) },
        "cuMemGetInfo",
    )?;
    let bytes = buffer_bytes(free as u64);
    let source = DeviceBuffer::new(&driver, bytes)?;
    let target = DeviceBuffer::new(&driver, bytes)?;
    let samples = time_passes(|| {
        for _ in 0..COPIES_PER_PASS {
            // SAFETY: both buffers hold `bytes` on the current device.
            let status = unsafe { (driver.copy)(target.pointer, source.pointer, bytes) };
            driver.check(status, "cuMemcpyDtoD")?;
        }
        // SAFETY: a plain driver call.
        driver.check(unsafe { (driver.synchronize)() }, "cuCtxSynchronize")
    })?;
    let probe = format!(
        "cuMemcpyDtoD (the copy cudaMemcpy makes), 2 x {} MiB, {COPIES_PER_PASS} copies a pass, {}",
        bytes >> 20,
        context.name()?
    );
    let moved = (2 * bytes * COPIES_PER_PASS) as f64;
    Ceiling::of_samples(DeviceKind::Gpu, &samples, moved, probe)
}
