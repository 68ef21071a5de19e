//! Loading libtorch's CUDA library by hand.
//!
//! rustc links with --as-needed, so libtorch_cuda.so is not among a tch
//! binary's dependencies and its CUDA hooks never register. It must be
//! loaded before the first CUDA query: a query made earlier caches the
//! CPU-only hooks, and CUDA then stays unavailable for the whole process.

use std::ffi::CStr;
use std::sync::OnceLock;

static LOADED: OnceLock<Result<(), String>> = OnceLock::new();

/// Loads libtorch_cuda.so once; Err says why CUDA cannot be used here.
pub fn load() -> Result<(), String> {
    LOADED
        .get_or_init(|| {
            if !cfg!(target_os = "linux") {
                return Err("libtorch CUDA is only loaded on Linux".to_owned());
            }
            // SAFETY: dlopen with a NUL-terminated name; the handle is kept
            // for the life of the process on purpose.
            let handle = unsafe {
                libc::dlopen(c"libtorch_cuda.so".as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL)
            };
            if handle.is_null() {
                // SAFETY: dlerror returns a thread-local message or null.
                let reason = unsafe {
                    let message = libc::dlerror();
                    if message.is_null() {
                        "unknown dlopen error".to_owned()
                    } else {
                        CStr::from_ptr(message).to_string_lossy().into_owned()
                    }
                };
                return Err(format!(
                    "libtorch has no usable CUDA here (this is the CPU install, or CUDA libraries are missing): {reason}"
                ));
            }
            Ok(())
        })
        .clone()
}
