//! Builds fw-torch's libtorch shim (see `shim/` and `src/shim.rs`):
//! - `shim/optim.cpp` (fused AdamW, clearing gradients) and `shim/mps.cpp`
//!   (MPS synchronisation and memory) need libtorch_cpu only: compiled into
//!   a static library linked into fw-torch.
//! - `shim/cuda_graph.cpp` (CUDA graph capture and replay) needs
//!   libtorch_cuda: compiled into its own shared object with those symbols
//!   left unresolved, embedded in the binary and opened only once
//!   libtorch_cuda.so is loaded, so the CPU-only install builds and runs.
//! - `shim/probe.c`: a one-function library that the tests open the way
//!   the CUDA graph shim is opened (see `graph::open_library_bytes`).
//!
//! With the `check-only` feature (`cargo xtask check-macos`) nothing is
//! compiled: the type-check needs no libtorch, and links nothing.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    bench_build::link_runtime_libraries();
    println!("cargo:rerun-if-changed=shim");
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let shim = out.join("libfwt_cuda_graph.so");
    let probe = out.join("libfwt_probe.so");
    println!("cargo:rustc-env=FWT_CUDA_GRAPH_SHIM={}", shim.display());
    println!("cargo:rustc-env=FWT_PROBE_LIBRARY={}", probe.display());
    if std::env::var_os("CARGO_FEATURE_CHECK_ONLY").is_some() {
        std::fs::write(&shim, b"").expect("writing OUT_DIR");
        std::fs::write(&probe, b"").expect("writing OUT_DIR");
        println!(
            "cargo:rustc-env=FWT_CUDA_GRAPH_SHIM_NOTE=fw-torch was type-checked only (check-only)"
        );
        return;
    }
    let Some(libtorch) = std::env::var_os("LIBTORCH").map(PathBuf::from) else {
        panic!(
            "LIBTORCH is not set: run `cargo xtask setup` (it fills .cargo/config.toml's folders)"
        );
    };
    let include = libtorch.join("include");
    let cuda_include = libtorch.join("../nvidia/cu13/include");

    let mut optim = cc::Build::new();
    optim
        .cpp(true)
        .file("shim/optim.cpp")
        .file("shim/mps.cpp")
        .include(&include)
        .flag("-std=c++17")
        .define("_GLIBCXX_USE_CXX11_ABI", "1")
        .warnings(false)
        .opt_level(2);
    optim.compile("fwt_optim");
    build_probe(&probe);

    let note = if !cuda_include.join("cuda_runtime_api.h").exists() {
        format!(
            "fw-torch was built without the CUDA graph shim: no CUDA headers at {}",
            cuda_include.display()
        )
    } else {
        match build_cuda_graph_shim(&optim, &include, &cuda_include, &shim) {
            Ok(()) => String::new(),
            Err(reason) => {
                println!("cargo:warning=CUDA graph shim not built: {reason}");
                format!("fw-torch was built without the CUDA graph shim: {reason}")
            }
        }
    };
    if !note.is_empty() {
        std::fs::write(&shim, b"").expect("writing OUT_DIR");
    }
    println!("cargo:rustc-env=FWT_CUDA_GRAPH_SHIM_NOTE={note}");
}

/// The tests' probe library (C, no libtorch).
fn build_probe(output: &Path) {
    let compiler = cc::Build::new().cargo_warnings(false).get_compiler();
    let status = Command::new(compiler.path())
        .args(["-shared", "-fPIC", "-O2", "shim/probe.c", "-o"])
        .arg(output)
        .status()
        .unwrap_or_else(|e| panic!("running {}: {e}", compiler.path().display()));
    assert!(
        status.success(),
        "{} could not build shim/probe.c ({status})",
        compiler.path().display()
    );
}

fn build_cuda_graph_shim(
    base: &cc::Build,
    include: &Path,
    cuda_include: &Path,
    output: &Path,
) -> Result<(), String> {
    let compiler = base.get_compiler();
    let status = Command::new(compiler.path())
        .args([
            "-shared",
            "-fPIC",
            "-O2",
            "-std=c++17",
            "-D_GLIBCXX_USE_CXX11_ABI=1",
        ])
        .arg("-I")
        .arg(include)
        .arg("-I")
        .arg(cuda_include)
        .arg("shim/cuda_graph.cpp")
        .arg("-o")
        .arg(output)
        .status()
        .map_err(|e| format!("running {}: {e}", compiler.path().display()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} exited with {status}",
            compiler.path().display()
        ))
    }
}
