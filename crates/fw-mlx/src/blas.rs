//! The CPU BLAS that MLX calls. `cargo xtask setup` points the mlx-cpu
//! wheel's reference BLAS/LAPACK at OpenBLAS; this module reports which one
//! is loaded and sets its thread count.

use std::ffi::CStr;

type SetThreads = unsafe extern "C" fn(libc::c_int);
type GetConfig = unsafe extern "C" fn() -> *const libc::c_char;

fn symbol(name: &CStr) -> *mut libc::c_void {
    // SAFETY: dlsym on the global namespace with a NUL-terminated name.
    unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) }
}

/// Sets OpenBLAS's thread count; returns false when OpenBLAS is not loaded.
pub fn set_threads(threads: usize) -> bool {
    let set = symbol(c"openblas_set_num_threads");
    if set.is_null() {
        return false;
    }
    // SAFETY: the symbol is OpenBLAS's `void openblas_set_num_threads(int)`.
    unsafe {
        let set: SetThreads = std::mem::transmute(set);
        set(threads as libc::c_int);
    }
    true
}

/// The file of the shared library that serves `name` in this process, found
/// the way the dynamic linker binds MLX's calls (global lookup order).
pub fn provider(name: &CStr) -> Option<String> {
    let address = symbol(name);
    if address.is_null() {
        return None;
    }
    // SAFETY: dladdr fills `info` for an address inside a loaded object.
    unsafe {
        let mut info: libc::Dl_info = std::mem::zeroed();
        if libc::dladdr(address, &mut info) == 0 || info.dli_fname.is_null() {
            return None;
        }
        let loaded = CStr::from_ptr(info.dli_fname)
            .to_string_lossy()
            .into_owned();
        // The wheel's BLAS names are links to the real library: follow them.
        Some(
            std::fs::canonicalize(&loaded)
                .map(|path| path.display().to_string())
                .unwrap_or(loaded),
        )
    }
}

/// Names the BLAS that serves MLX's `cblas_sgemm`: "OpenBLAS <config>"
/// when set-up has done its work, else the library's file name (the
/// wheel's reference BLAS, whose figures say nothing about MLX).
pub fn description() -> String {
    if cfg!(target_os = "macos") {
        return "Accelerate".to_owned();
    }
    let Some(library) = provider(c"cblas_sgemm") else {
        return "no cblas_sgemm loaded".to_owned();
    };
    let get = symbol(c"openblas_get_config");
    if !library.contains("openblas") || get.is_null() {
        return format!("BLAS from {library}");
    }
    // SAFETY: `char* openblas_get_config(void)` returns a static string.
    let config = unsafe {
        let get: GetConfig = std::mem::transmute(get);
        CStr::from_ptr(get()).to_string_lossy().trim().to_owned()
    };
    format!("OpenBLAS {config}")
}
