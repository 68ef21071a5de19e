//! Builds fw-torch's libtorch shim (see `shim/` and `src/shim.rs`):
//! - `shim/optim.cpp` (fused AdamW, clearing gradients), `shim/mps.cpp`
//!   (MPS synchronisation and memory) and `shim/distributed.cpp` (c10d's
//!   gloo process group and collectives) need libtorch_cpu only: compiled
//!   into a static library linked into fw-torch.
//! - `shim/cuda_graph.cpp` (CUDA graph capture and replay) and
//!   `shim/distributed_nccl.cpp` (c10d's NCCL process group) need
//!   libtorch_cuda: compiled into one shared object with those symbols
//!   left unresolved, embedded in the binary and opened only once
//!   libtorch_cuda.so is loaded, so the CPU-only install builds and runs.
//!   The NCCL part needs `nccl.h` (the nvidia-nccl-cu13 wheel of a CUDA
//!   set-up) and is compiled with `-DUSE_C10D_NCCL`, as PyTorch's build
//!   does; without the header, or where it does not compile, the shared
//!   object is built without it and the binary says why.
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
        println!("cargo:rustc-env=FWT_NCCL_NOTE=fw-torch was type-checked only (check-only)");
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
        .file("shim/distributed.cpp")
        .include(&include)
        // c10d's headers reach torch/types.h through the C++ API's folder.
        .include(include.join("torch/csrc/api/include"))
        // The torch wheel has c10d's headers but not gloo's (see its README).
        .include("shim/gloo-declarations")
        .define("USE_C10D_GLOO", None)
        .flag("-std=c++17")
        .define("_GLIBCXX_USE_CXX11_ABI", "1")
        .warnings(false)
        .opt_level(2);
    optim.compile("fwt_optim");
    build_probe(&probe);

    let nccl_include = libtorch.join("../nvidia/nccl/include");
    let (note, nccl_note) = if !cuda_include.join("cuda_runtime_api.h").exists() {
        let why = format!("no CUDA headers at {}", cuda_include.display());
        (
            format!("fw-torch was built without the CUDA graph shim: {why}"),
            format!("fw-torch was built without its CUDA shim: {why}"),
        )
    } else {
        let headers = CudaHeaders {
            include: &include,
            cuda: &cuda_include,
        };
        build_cuda_shim(&optim, &headers, &nccl_include, &shim)
    };
    if !note.is_empty() {
        std::fs::write(&shim, b"").expect("writing OUT_DIR");
    }
    println!("cargo:rustc-env=FWT_CUDA_GRAPH_SHIM_NOTE={note}");
    println!("cargo:rustc-env=FWT_NCCL_NOTE={nccl_note}");
}

struct CudaHeaders<'a> {
    include: &'a Path,
    cuda: &'a Path,
}

/// Builds the CUDA shim, with c10d's NCCL process group where NCCL's header
/// is there and compiles; returns (the CUDA shim's note, the NCCL part's
/// note), each empty when built.
fn build_cuda_shim(
    base: &cc::Build,
    headers: &CudaHeaders,
    nccl_include: &Path,
    output: &Path,
) -> (String, String) {
    let nccl_note = if nccl_include.join("nccl.h").exists() {
        match compile_cuda_shim(base, headers, Some(nccl_include), output) {
            Ok(()) => return (String::new(), String::new()),
            Err(reason) => {
                println!("cargo:warning=c10d's NCCL process group not built: {reason}");
                format!("PyTorch's NCCL process group did not compile into fw-torch's CUDA shim: {reason}")
            }
        }
    } else {
        format!(
            "fw-torch was built without PyTorch's NCCL process group: no nccl.h at {} \
             (a CUDA set-up has it: `cargo xtask setup --cuda`)",
            nccl_include.display()
        )
    };
    match compile_cuda_shim(base, headers, None, output) {
        Ok(()) => (String::new(), nccl_note),
        Err(reason) => {
            println!("cargo:warning=CUDA graph shim not built: {reason}");
            (
                format!("fw-torch was built without the CUDA graph shim: {reason}"),
                format!("fw-torch was built without its CUDA shim: {reason}"),
            )
        }
    }
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

/// One compilation of the CUDA shim; with `nccl`, NCCL's include folder,
/// the NCCL process group too.
fn compile_cuda_shim(
    base: &cc::Build,
    headers: &CudaHeaders,
    nccl: Option<&Path>,
    output: &Path,
) -> Result<(), String> {
    let compiler = base.get_compiler();
    let mut command = Command::new(compiler.path());
    command
        .args([
            "-shared",
            "-fPIC",
            "-O2",
            "-std=c++17",
            "-D_GLIBCXX_USE_CXX11_ABI=1",
        ])
        .arg("-I")
        .arg(headers.include)
        .arg("-I")
        .arg(headers.include.join("torch/csrc/api/include"))
        .arg("-I")
        .arg(headers.cuda);
    if let Some(nccl) = nccl {
        command.arg("-DUSE_C10D_NCCL").arg("-I").arg(nccl);
    }
    let status = command
        .args(["shim/cuda_graph.cpp", "shim/distributed_nccl.cpp", "-o"])
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
