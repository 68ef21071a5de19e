//! `cargo xtask setup`: Debian packages (for `cargo xtask test` also the
//! tests' own: Chromium), MLX (the mlx-cpu wheel, its BLAS
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
        let sources = ensure_mlx_sources(&cache)?;
        use_mlx_sources(&sources);
        return assets::ensure(root);
    }
    ensure_debian_packages(options.build)?;
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
        let sources = cache.join(pins::MLX_SOURCES_DIR);
        cache::check_files(&sources)?;
        check_mlx_sources(&sources)?;
        use_mlx_sources(&sources);
        return check_libtorch(&libtorch);
    }
    let mlx = cache.join(pins::MLX_DIR);
    cache::check_files(&mlx)?;
    check_mlx(&mlx)?;
    check_libtorch(&libtorch)
}

/// The build's Debian packages, and for the tests theirs too, installed
/// where missing (as root; otherwise the command is named). A test package
/// missing without root only warns: its tests say what they lack.
fn ensure_debian_packages(build: requirements::Build) -> Result<()> {
    let tests: &[&str] = if build == requirements::Build::Tests {
        pins::TEST_DEBIAN_PACKAGES
    } else {
        &[]
    };
    let wanted = || pins::DEBIAN_PACKAGES.iter().chain(tests).copied();
    if Command::new("dpkg-query")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!(
            "set-up: not a Debian-based system; make sure these (or their equivalents) are installed: {}",
            wanted().collect::<Vec<_>>().join(" ")
        );
        return Ok(());
    }
    let missing: Vec<&str> = wanted()
        .filter(|package| !debian_package_installed(package))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let command = match missing_packages(&missing, tests, root) {
        Missing::Install(command) => command,
        Missing::Warn(warning) => {
            eprintln!("warning: {warning}");
            return Ok(());
        }
        Missing::Stop(error) => bail!(error),
    };
    eprintln!("set-up: installing Debian packages: {}", missing.join(" "));
    let status = Command::new("sh")
        .args(["-c", &command])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .context("running apt-get")?;
    ensure!(status.success(), "`{command}` failed ({status})");
    Ok(())
}

/// What set-up does about missing Debian packages.
#[derive(Debug, PartialEq)]
enum Missing {
    /// Run this command (as root).
    Install(String),
    /// Only the tests' packages are missing and set-up is not root: the
    /// tests that need them say so themselves.
    Warn(String),
    /// The build cannot go on without them.
    Stop(String),
}

/// The action for `missing` packages, of which `tests` are the tests'
/// own, for a user who is `root` or not.
fn missing_packages(missing: &[&str], tests: &[&str], root: bool) -> Missing {
    let command = format!("apt-get update && apt-get install -y {}", missing.join(" "));
    if root {
        return Missing::Install(command);
    }
    let names = missing.join(", ");
    if missing.iter().all(|package| tests.contains(package)) {
        return Missing::Warn(format!(
            "missing Debian packages for the tests: {names} (the tests that need them are skipped here and fail in CI); install them with:\n  sudo sh -c '{command}'"
        ));
    }
    Missing::Stop(format!(
        "missing Debian packages: {names}. Install them, then run this again:\n  sudo sh -c '{command}'"
    ))
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

// --------------------------------------------- MLX's sources on macOS --

/// The CMake file, in the sources' folder, that points FetchContent at them.
const MLX_SOURCES_CMAKE: &str = "pins.cmake";

/// The environment variable through which the `cmake` crate hands mlx-sys's
/// CMake build a toolchain file for this target (Apple silicon).
pub const MLX_SOURCES_ENV: &str = "CMAKE_TOOLCHAIN_FILE_aarch64_apple_darwin";

/// MLX's source and the sources its macOS build fetches, downloaded,
/// checked against their pinned sha256 and unpacked under
/// `.cache/mlx-src-0.32.2/<name>`, with `pins.cmake` naming them.
fn ensure_mlx_sources(cache: &Path) -> Result<PathBuf> {
    let dir = cache.join(pins::MLX_SOURCES_DIR);
    let stamp = mlx_sources_stamp();
    ensure_dir(&dir, &stamp, check_mlx_sources, |staging| {
        for archive in &pins::MLX_MACOS_SOURCES {
            let file = fetch_source(cache, archive)?;
            unpack_source(&file, &staging.join(archive.name))?;
        }
        fs::write(
            staging.join(MLX_SOURCES_CMAKE),
            fetchcontent_overrides(&dir),
        )?;
        Ok(())
    })?;
    Ok(dir)
}

/// The stamp of the sources' folder: every pin's sha256.
fn mlx_sources_stamp() -> String {
    let hashes: Vec<&str> = pins::MLX_MACOS_SOURCES.iter().map(|a| a.sha256).collect();
    format!("sources {}", hashes.join(" "))
}

fn check_mlx_sources(dir: &Path) -> Result<()> {
    require_files(
        dir,
        &[
            "mlx/CMakeLists.txt",
            "mlx/mlx/mlx.h",
            "metal_cpp/Metal/Metal.hpp",
            "json/CMakeLists.txt",
            "fmt/CMakeLists.txt",
            "gguflib/gguflib.c",
            MLX_SOURCES_CMAKE,
        ],
    )
}

/// Hands `pins.cmake` to the builds this process starts (cargo inherits
/// it): mlx-c and MLX then build from the pinned sources. A cargo command
/// run by hand needs the same variable (docs/MAC.md).
fn use_mlx_sources(dir: &Path) {
    let file = dir.join(MLX_SOURCES_CMAKE);
    eprintln!(
        "set-up: MLX builds from the pinned sources in {} ({MLX_SOURCES_ENV})",
        dir.display()
    );
    // SAFETY (edition 2024's rule): set-up runs before this process starts
    // any thread of its own.
    std::env::set_var(MLX_SOURCES_ENV, file);
}

/// `pins.cmake`: a toolchain file that only sets FetchContent's source
/// folders, one per pin under `dir`, so that nothing is fetched by tag.
fn fetchcontent_overrides(dir: &Path) -> String {
    let mut text = String::from(
        "# Written by `cargo xtask setup` (xtask/crates/setup/src/pins.rs): MLX's\n\
         # sources, checked against their pinned sha256, in place of FetchContent's\n\
         # downloads by git tag.\n",
    );
    for archive in &pins::MLX_MACOS_SOURCES {
        text.push_str(&format!(
            "set(FETCHCONTENT_SOURCE_DIR_{} \"{}\" CACHE PATH \"{} (sha256 {})\" FORCE)\n",
            archive.name.to_ascii_uppercase(),
            dir.join(archive.name).display(),
            archive.url,
            archive.sha256
        ));
    }
    text
}

/// The archive in `.cache/downloads`, downloaded (curl) if absent or
/// corrupt, and checked against its pin.
fn fetch_source(cache: &Path, archive: &pins::SourceArchive) -> Result<PathBuf> {
    let path = cache.join("downloads").join(archive.file);
    if path.exists() && verify_sha256(&path, archive.sha256).is_ok() {
        return Ok(path);
    }
    eprintln!("set-up: downloading {}", archive.url);
    let status = Command::new("curl")
        .args(["-fsSL", "--retry", "3", "-o"])
        .arg(&path)
        .arg(archive.url)
        .status()
        .context("running curl")?;
    ensure!(
        status.success(),
        "downloading {} failed ({status})",
        archive.url
    );
    verify_sha256(&path, archive.sha256).inspect_err(|_| {
        let _ = fs::remove_file(&path);
    })?;
    Ok(path)
}

/// Unpacks an archive (tar.gz, tar.xz or zip: the system's tar, bsdtar on
/// macOS) into `dest`, without its one top folder.
fn unpack_source(archive: &Path, dest: &Path) -> Result<()> {
    fs::create_dir_all(dest)?;
    let status = Command::new("tar")
        .arg("-xf")
        .arg(archive)
        .args(["--strip-components", "1", "-C"])
        .arg(dest)
        .status()
        .context("running tar")?;
    ensure!(
        status.success(),
        "unpacking {} failed ({status})",
        archive.display()
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
    let mut stamp = format!("{variant} {}", torch.sha256);
    if cuda {
        // A CUDA libtorch unpacked before a header wheel was pinned is
        // unpacked again, with it.
        for headers in pins::cuda_headers() {
            stamp.push_str(&format!(" {}", headers.sha256));
        }
    }
    ensure_dir(&dir, &stamp, check_libtorch, |staging| {
        let nvidia = if cuda {
            let mut wheels = fetch_cuda_dependencies(cache, &torch)?;
            for headers in pins::cuda_headers() {
                wheels.push(fetch(cache, &headers)?);
            }
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
    fn a_missing_test_package_stops_nothing_but_a_build_package_does() {
        let tests = pins::TEST_DEBIAN_PACKAGES;
        assert_eq!(tests, ["chromium"]);
        let Missing::Warn(warning) = missing_packages(&["chromium"], tests, false) else {
            panic!("a missing browser stops the set-up");
        };
        assert!(
            warning.contains("sudo sh -c 'apt-get update && apt-get install -y chromium'"),
            "{warning}"
        );
        let Missing::Stop(error) = missing_packages(&["cmake", "chromium"], tests, false) else {
            panic!("a missing cmake does not stop the set-up");
        };
        assert!(
            error.starts_with("missing Debian packages: cmake, chromium."),
            "{error}"
        );
        assert_eq!(
            missing_packages(&["cmake", "chromium"], tests, true),
            Missing::Install("apt-get update && apt-get install -y cmake chromium".into())
        );
    }

    #[test]
    fn every_macos_source_is_pinned_and_named_for_fetchcontent() {
        let mut names = Vec::new();
        for archive in &pins::MLX_MACOS_SOURCES {
            assert_eq!(archive.sha256.len(), 64, "{archive:?}");
            assert!(
                archive.sha256.bytes().all(|b| b.is_ascii_hexdigit()),
                "{archive:?}"
            );
            assert!(archive.url.starts_with("https://"), "{archive:?}");
            names.push(archive.name);
        }
        assert_eq!(names, ["mlx", "metal_cpp", "json", "fmt", "gguflib"]);
        // The MLX archive is of the version mlx-c's CMakeLists.txt names.
        let mlx_c = include_str!("../../../../third_party/mlx-sys/src/mlx-c/CMakeLists.txt");
        let tag = format!("GIT_TAG v{}", pins::MLX_VERSION);
        assert!(mlx_c.contains(&tag), "mlx-c no longer fetches {tag}");
        assert!(pins::MLX_MACOS_SOURCES[0]
            .url
            .ends_with(&format!("v{}.tar.gz", pins::MLX_VERSION)));
        let cmake = fetchcontent_overrides(Path::new("/clone/.cache/mlx-src-0.32.2"));
        for line in [
            "set(FETCHCONTENT_SOURCE_DIR_MLX \"/clone/.cache/mlx-src-0.32.2/mlx\" CACHE PATH",
            "set(FETCHCONTENT_SOURCE_DIR_METAL_CPP \"/clone/.cache/mlx-src-0.32.2/metal_cpp\"",
            "set(FETCHCONTENT_SOURCE_DIR_GGUFLIB \"/clone/.cache/mlx-src-0.32.2/gguflib\"",
        ] {
            assert!(cmake.contains(line), "{line:?} not in:\n{cmake}");
        }
        assert_eq!(cmake.matches("FORCE)\n").count(), 5, "{cmake}");
        // A changed pin makes a new stamp: the folder is rebuilt.
        assert!(mlx_sources_stamp().contains(pins::MLX_MACOS_SOURCES[4].sha256));
    }

    #[test]
    fn a_source_archive_unpacks_without_its_top_folder() {
        let dir = std::env::temp_dir().join(format!("xtask-unpack-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("fmt-12.1.0/include")).unwrap();
        fs::write(dir.join("fmt-12.1.0/CMakeLists.txt"), "project(fmt)").unwrap();
        let archive = dir.join("fmt.tar.gz");
        let status = Command::new("tar")
            .arg("-czf")
            .arg(&archive)
            .arg("-C")
            .arg(&dir)
            .arg("fmt-12.1.0")
            .status()
            .unwrap();
        assert!(status.success());
        unpack_source(&archive, &dir.join("out/fmt")).unwrap();
        assert!(dir.join("out/fmt/CMakeLists.txt").is_file());
        assert!(dir.join("out/fmt/include").is_dir());
        assert!(unpack_source(&dir.join("missing.tar.gz"), &dir.join("x")).is_err());
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
