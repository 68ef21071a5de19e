//! Called from the `build.rs` of every crate that links MLX or libtorch.
//!
//! A dependency's `cargo:rustc-link-arg` does not reach the crates that use
//! it, so each final artifact (bin, test, bench, example) must carry its own
//! rpath. The library folders come from the `[env]` table of
//! `.cargo/config.toml`, which `cargo xtask setup` fills.

use std::path::Path;

/// Environment variables naming a library folder, and the sub-folder of it
/// that holds the shared libraries.
const LIBRARY_ROOTS: &[(&str, &str)] = &[("LIBTORCH", "lib"), ("MLX_PREFIX", "lib")];

/// Emits one rpath per library root, for every target of the calling crate.
pub fn link_runtime_libraries() {
    for (variable, sub_folder) in LIBRARY_ROOTS {
        println!("cargo:rerun-if-env-changed={variable}");
        let Some(root) = std::env::var_os(variable) else {
            continue;
        };
        let lib = Path::new(&root).join(sub_folder);
        if cfg!(target_os = "macos") || cfg!(target_os = "linux") {
            println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
        }
    }
}
