#![allow(non_upper_case_globals)]
#![allow(non_camel_case_types)]
#![allow(non_snake_case)]
#![allow(clippy::all)]

include!(concat!(env!("OUT_DIR"), "/bindings.rs"));

// mlx-vs-torch patch: off ARM, half.h declares float16_t as a C struct of its
// 16-bit storage; mlx-rs needs a zero value for it, as bindgen's native
// half type has.
#[cfg(not(target_arch = "aarch64"))]
impl Default for float16_t {
    fn default() -> Self {
        Self { bits: 0 }
    }
}
