//! `cargo xtask setup`: Debian packages, MLX (the mlx-cpu wheel, its BLAS
//! pointed at OpenBLAS) and libtorch (the torch wheel) in `.cache/`, all
//! pinned and checked by sha256. Idempotent: a finished part is checked and
//! skipped; a broken one is named and rebuilt.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};

use crate::cache::{ensure_dir, STAMP};
use crate::download::{fetch, pip_download, unzip, verify_sha256};
use crate::pins::{self, Pinned};
use crate::{assets, cache, requirements};

#[derive(Clone, Copy, Debug, Default)]
pub struct SetupOptions {
    /// Some(true): the full CUDA libtorch (libtorch_cuda and every NVIDIA
    /// library); Some(false): the slim CPU one; None (every command but
    /// `setup`): whichever is installed, the CPU one on a fresh clone.
    pub cuda: Option<bool>,
    /// What the command builds after set-up (for the disk it checks).
    pub build: requirements::Build,
}

impl SetupOptions {
    /// Whichever libtorch is installed, and `build` after set-up.
    pub fn building(build: requirements::Build) -> Self {
        SetupOptions {
            build,
            ..Default::default()
        }
    }
}

/// Makes everything the build needs present and sound.
pub fn ensure(root: &Path, options: SetupOptions) -> Result<()> {
    let cache = root.join(".cache");
    let fresh = !finished_any(&cache.join(pins::LIBTORCH_DIR));
    requirements::check(None, &cache, fresh, options.build)?;
    fs::create_dir_all(cache.join("downloads"))?;
    if cfg!(target_os = "macos") {
        ensure_libtorch_macos(&cache)?;
        eprintln!("set-up: MLX builds from source with Metal on macOS (mlx-sys's own path)");
        return assets::ensure(root);
    }
    ensure_debian_packages()?;
    ensure_mlx(&cache)?;
    ensure_libtorch(&cache, options)?;
    assets::ensure(root)
}

/// Checks the cache without fetching anything: for commands that must not
/// start a build on a broken cache.
pub fn verify(root: &Path) -> Result<()> {
    let cache = root.join(".cache");
    let libtorch = cache.join(pins::LIBTORCH_DIR);
    cache::check_files(&libtorch)?;
    if cfg!(target_os = "macos") {
        return check_libtorch(&libtorch);
    }
    let mlx = cache.join(pins::MLX_DIR);
    cache::check_files(&mlx)?;
    check_mlx(&mlx)?;
    check_libtorch(&libtorch)
}

fn ensure_debian_packages() -> Result<()> {
    if Command::new("dpkg-query")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!(
            "set-up: not a Debian-based system; make sure these (or their equivalents) are installed: {}",
            pins::DEBIAN_PACKAGES.join(" ")
        );
        return Ok(());
    }
    let missing: Vec<&str> = pins::DEBIAN_PACKAGES
        .iter()
        .copied()
        .filter(|package| !debian_package_installed(package))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let command = format!("apt-get update && apt-get install -y {}", missing.join(" "));
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "missing Debian packages: {}. Install them, then run this again:\n  sudo sh -c '{command}'",
            missing.join(", ")
        );
    }
    eprintln!("set-up: installing Debian packages: {}", missing.join(" "));
    let status = Command::new("sh")
        .args(["-c", &command])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .context("running apt-get")?;
    ensure!(status.success(), "`{command}` failed ({status})");
    Ok(())
}

fn debian_package_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${db:Status-Status}", package])
        .output()
        .map(|output| output.status.success() && output.stdout == b"installed")
        .unwrap_or(false)
}

// ----------------------------------------------------------------- MLX --

fn ensure_mlx(cache: &Path) -> Result<()> {
    let dir = cache.join(pins::MLX_DIR);
    let mlx = pins::mlx_cpu();
    ensure_dir(&dir, &mlx.sha256, check_mlx, |staging| {
        let wheel = fetch(cache, &mlx)?;
        unzip(&wheel, staging, same_name(|_| true))?;
        use_openblas(&staging.join("mlx_cpu.libs"))
    })
    .map(drop)
}

/// The wheel's netlib reference BLAS/LAPACK run a 1024^2 sgemm at a few
/// GFLOP/s; MLX-on-CPU figures on it would say nothing about MLX. Point
/// both (by the names libmlx.so asks for) at OpenBLAS, keeping the
/// originals beside them as `*.reference`.
pub fn use_openblas(libs: &Path) -> Result<()> {
    let openblas = pins::find_openblas()?;
    for entry in fs::read_dir(libs).with_context(|| format!("reading {}", libs.display()))? {
        let path = entry?.path();
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if (name.starts_with("libblas-") || name.starts_with("liblapack-"))
            && !name.ends_with(".reference")
        {
            fs::rename(&path, libs.join(format!("{name}.reference")))?;
            std::os::unix::fs::symlink(openblas, &path)
                .with_context(|| format!("linking {} to {}", path.display(), openblas.display()))?;
        }
    }
    Ok(())
}

fn check_mlx(dir: &Path) -> Result<()> {
    require_files(
        dir,
        &[
            "mlx/lib/libmlx.so",
            "mlx/include/mlx/mlx.h",
            "mlx/share/cmake/MLX/MLXConfig.cmake",
        ],
    )?;
    let libs = dir.join("mlx_cpu.libs");
    let mut blas_links = 0;
    for entry in fs::read_dir(&libs)
        .with_context(|| format!("broken cache: {} is missing", libs.display()))?
    {
        let path = entry?.path();
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if (name.starts_with("libblas-") || name.starts_with("liblapack-"))
            && !name.ends_with(".reference")
        {
            let target = fs::read_link(&path).unwrap_or_default();
            ensure!(
                target.to_string_lossy().contains("openblas") && path.exists(),
                "broken cache: {} should link to OpenBLAS, but is {}",
                path.display(),
                if target.as_os_str().is_empty() {
                    "the reference BLAS".into()
                } else {
                    target.display().to_string()
                }
            );
            blas_links += 1;
        }
    }
    ensure!(
        blas_links == 2,
        "broken cache: {} lacks its BLAS and LAPACK libraries",
        libs.display()
    );
    Ok(())
}

// ------------------------------------------------------------ libtorch --

/// Whether the CUDA libtorch is wanted: as asked, else as installed (so
/// that `setup --cuda` survives the `bench` and `test` after it).
fn wants_cuda(dir: &Path, options: SetupOptions) -> bool {
    options.cuda.unwrap_or_else(|| {
        fs::read_to_string(dir.join(STAMP))
            .is_ok_and(|text| text.lines().next().unwrap_or_default().starts_with("cuda "))
    })
}

/// Whether `dir` was ever finished (whatever its stamp).
fn finished_any(dir: &Path) -> bool {
    dir.join(STAMP).is_file()
}

fn ensure_libtorch(cache: &Path, options: SetupOptions) -> Result<()> {
    let dir = cache.join(pins::LIBTORCH_DIR);
    let cuda = wants_cuda(&dir, options);
    let variant = if cuda { "cuda" } else { "cpu" };
    let torch = pins::torch_linux();
    let stamp = format!("{variant} {}", torch.sha256);
    ensure_dir(&dir, &stamp, check_libtorch, |staging| {
        let nvidia = if cuda {
            let mut wheels = fetch_cuda_dependencies(cache, &torch)?;
            wheels.push(fetch(cache, &pins::cuda_headers())?);
            wheels
        } else {
            pins::cuda_runtime_libraries()
                .iter()
                .map(|library| fetch(cache, library))
                .collect::<Result<Vec<_>>>()?
        };
        let torch = fetch(cache, &torch)?;
        eprintln!(
            "set-up: unpacking libtorch ({variant}) into {}",
            dir.display()
        );
        unzip(&torch, staging, same_name(|name| libtorch_file(name, cuda)))?;
        for wheel in &nvidia {
            unzip(
                wheel,
                staging,
                same_name(|name| name.starts_with("nvidia/")),
            )?;
        }
        Ok(())
    })
    .map(drop)
}

/// The parts of the torch wheel that make a libtorch: its shared libraries
/// (the CPU install leaves out the CUDA ones, 1 GB), headers, CMake files.
fn libtorch_file(name: &str, cuda: bool) -> bool {
    const CUDA_ONLY: &[&str] = &[
        "libtorch_cuda.so",
        "libtorch_cuda_linalg.so",
        "libtorch_nvshmem.so",
        "libc10_cuda.so",
    ];
    let wanted = name.starts_with("torch/lib/")
        || name.starts_with("torch/include/")
        || name.starts_with("torch/share/")
        || name == "torch/version.py";
    let lib_name = name.rsplit('/').next().unwrap_or_default();
    wanted && name != "torch/lib/libtorch_python.so" && (cuda || !CUDA_ONLY.contains(&lib_name))
}

/// The NVIDIA wheels that torch 2.11.0 depends on, at the exact versions
/// its metadata pins; the torch wheel itself is checked by sha256.
fn fetch_cuda_dependencies(cache: &Path, torch: &Pinned) -> Result<Vec<PathBuf>> {
    let dir = cache.join("downloads").join("cuda");
    fs::create_dir_all(&dir)?;
    pip_download(torch, &dir, true)?;
    verify_sha256(&dir.join(&torch.file), &torch.sha256)?;
    let mut wheels = Vec::new();
    for entry in fs::read_dir(&dir)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if name.starts_with("nvidia_") && name.ends_with(".whl") {
            wheels.push(path);
        }
    }
    ensure!(
        !wheels.is_empty(),
        "pip fetched no NVIDIA wheels into {}",
        dir.display()
    );
    Ok(wheels)
}

fn ensure_libtorch_macos(cache: &Path) -> Result<()> {
    let dir = cache.join(pins::LIBTORCH_DIR);
    let torch = pins::torch_macos();
    let stamp = format!("macos {}", torch.sha256);
    ensure_dir(&dir, &stamp, check_libtorch, |staging| {
        let torch = fetch(cache, &torch)?;
        unzip(
            &torch,
            staging,
            same_name(|name| libtorch_file(name, false)),
        )
        .map(drop)
    })
    .map(drop)
}

fn check_libtorch(dir: &Path) -> Result<()> {
    let library = if cfg!(target_os = "macos") {
        "torch/lib/libtorch_cpu.dylib"
    } else {
        "torch/lib/libtorch_cpu.so"
    };
    require_files(
        dir,
        &[library, "torch/include/ATen/ATen.h", "torch/version.py"],
    )?;
    if cfg!(target_os = "linux") {
        require_files(
            dir,
            &[
                "nvidia/cu13/lib/libcudart.so.13",
                "nvidia/cu13/lib/libcupti.so.13",
                "nvidia/cu13/include/cuda_runtime_api.h",
                "nvidia/cu13/include/crt/host_config.h",
            ],
        )?;
    }
    Ok(())
}

// ------------------------------------------------------------- helpers --

fn require_files(dir: &Path, files: &[&str]) -> Result<()> {
    for file in files {
        let path = dir.join(file);
        ensure!(
            path.exists(),
            "broken cache: {} is missing (run `cargo xtask setup`)",
            path.display()
        );
    }
    Ok(())
}

/// Keeps an entry under its own name when `wanted` says so.
fn same_name(wanted: impl Fn(&str) -> bool) -> impl FnMut(&str) -> Option<PathBuf> {
    move |name| wanted(name).then(|| PathBuf::from(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_libtorch_leaves_out_cuda_and_python_libraries() {
        assert!(libtorch_file("torch/lib/libtorch_cpu.so", false));
        assert!(libtorch_file("torch/include/ATen/ATen.h", false));
        assert!(!libtorch_file("torch/lib/libtorch_cuda.so", false));
        assert!(libtorch_file("torch/lib/libtorch_cuda.so", true));
        assert!(!libtorch_file("torch/lib/libtorch_python.so", true));
        assert!(!libtorch_file("torch/nn/modules/linear.py", false));
    }

    #[test]
    fn a_cuda_set_up_stays_cuda_unless_cpu_is_asked() {
        let dir = std::env::temp_dir().join(format!("xtask-variant-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        assert!(!wants_cuda(&dir, SetupOptions::default()), "fresh: CPU");
        fs::write(dir.join(STAMP), "cuda abc123\n10 torch/lib/x.so\n").unwrap();
        assert!(wants_cuda(&dir, SetupOptions::default()));
        assert!(!wants_cuda(
            &dir,
            SetupOptions {
                cuda: Some(false),
                ..Default::default()
            }
        ));
        fs::write(dir.join(STAMP), "cpu abc123\n").unwrap();
        assert!(!wants_cuda(&dir, SetupOptions::default()));
        assert!(wants_cuda(
            &dir,
            SetupOptions {
                cuda: Some(true),
                ..Default::default()
            }
        ));
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn missing_library_is_a_broken_cache() {
        let dir = std::env::temp_dir().join(format!("xtask-mlx-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let error = check_mlx(&dir).unwrap_err().to_string();
        assert!(
            error.contains("broken cache") && error.contains("libmlx.so"),
            "{error}"
        );
        fs::remove_dir_all(dir).unwrap();
    }
}
