//! What `cargo xtask check-macos` needs: a type-check of the whole
//! workspace for Apple silicon (`aarch64-apple-darwin`) on any machine, so
//! that the macOS paths (`cfg(target_os = "macos")`) are compiled by every
//! test run, not first on a Mac.
//!
//! Nothing is linked and no native library is built:
//! - Rust's standard library for the target (`rustup target add`);
//! - off macOS, a C compiler for the C that build scripts compile (ring,
//!   zstd-sys): Zig from PyPI's pinned `ziglang` wheel, whose
//!   `zig cc -target aarch64-macos` has macOS's libc headers, behind a
//!   wrapper (`CC_aarch64_apple_darwin`) that drops the flags cc-rs adds
//!   for Apple's clang;
//! - mlx-sys takes bindings generated once for the same mlx-c
//!   (`MLX_SYS_PREGENERATED_BINDINGS`, third_party/README.md) instead of
//!   building MLX;
//! - fw-torch's `check-only` feature: tch without libtorch (torch-sys's
//!   `doc-only`), and no shim compiled.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};

use crate::cache::ensure_dir;
use crate::download::{fetch, unzip};
use crate::pins;

/// The macOS target the check compiles for.
pub const TARGET: &str = "aarch64-apple-darwin";

/// The `cargo check` arguments after `check`: every crate, every target
/// (tests, benches, examples, binaries), for [`TARGET`].
pub const CHECK_ARGS: &[&str] = &[
    "--workspace",
    "--all-targets",
    "--target",
    TARGET,
    "--features",
    "fw-torch/check-only",
];

/// The variable that makes mlx-sys take its pre-generated bindings.
pub const MLX_SYS_BINDINGS_VAR: &str = "MLX_SYS_PREGENERATED_BINDINGS";

/// `.cache/` folder of the unpacked Zig (the pin's version).
const ZIG_DIR: &str = "ziglang-0.17.0";

/// The C compiler wrapper, in [`ZIG_DIR`].
const CC_WRAPPER: &str = "cc-aarch64-apple-darwin";

/// cc-rs targets Apple's clang: `-arch arm64`, `--target=arm64-apple-macosx`
/// and `-mmacosx-version-min=11.0`, which `zig cc` refuses or reads
/// otherwise. The wrapper drops them and names the target Zig's way. Zig's
/// caches stay under `.cache/` unless set.
const CC_WRAPPER_SCRIPT: &str = r#"#!/bin/sh
# C compiler for aarch64-apple-darwin (cargo xtask check-macos): Zig with
# macOS's libc headers. Drops the Apple-clang flags that cc-rs adds.
here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
: "${ZIG_GLOBAL_CACHE_DIR:=$here/../zig-cache}"
: "${ZIG_LOCAL_CACHE_DIR:=$ZIG_GLOBAL_CACHE_DIR}"
export ZIG_GLOBAL_CACHE_DIR ZIG_LOCAL_CACHE_DIR
skip=
for arg do
  shift
  if [ -n "$skip" ]; then skip=; continue; fi
  case $arg in
    -arch) skip=1; continue ;;
    --target=*|-mmacosx-version-min=*) continue ;;
  esac
  set -- "$@" "$arg"
done
exec "$here/ziglang/zig" cc -target aarch64-macos "$@"
"#;

/// Makes the check's tools present; returns the variables `cargo check`
/// runs with.
pub fn ensure(root: &Path) -> Result<Vec<(OsString, OsString)>> {
    ensure_rust_target()?;
    let mut vars = vec![(MLX_SYS_BINDINGS_VAR.into(), "1".into())];
    if !cfg!(target_os = "macos") {
        let zig = ensure_zig(&root.join(".cache"))?;
        vars.push((
            format!("CC_{}", TARGET.replace('-', "_")).into(),
            zig.join(CC_WRAPPER).into(),
        ));
    }
    Ok(vars)
}

/// `rustup target add`, unless the target's standard library is there.
fn ensure_rust_target() -> Result<()> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .context(
            "running rustup (the macOS type-check needs rustup to add the \
             aarch64-apple-darwin standard library)",
        )?;
    ensure!(
        installed.status.success(),
        "`rustup target list --installed` failed: {}",
        String::from_utf8_lossy(&installed.stderr).trim()
    );
    if String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|line| line.trim() == TARGET)
    {
        return Ok(());
    }
    eprintln!("set-up: adding Rust's standard library for {TARGET}");
    let status = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status()
        .context("running rustup target add")?;
    ensure!(
        status.success(),
        "`rustup target add {TARGET}` failed ({status})"
    );
    Ok(())
}

/// The folder holding Zig (`ziglang/zig`) and the C compiler wrapper.
fn ensure_zig(cache: &Path) -> Result<PathBuf> {
    if !(cfg!(target_os = "linux") && cfg!(target_arch = "x86_64")) {
        bail!(
            "the macOS type-check's C compiler (PyPI's ziglang) is pinned for x86_64 Linux \
             and macOS only; on this machine run it on one of those"
        );
    }
    let dir = cache.join(ZIG_DIR);
    let zig = pins::ziglang();
    fs::create_dir_all(cache.join("downloads"))?;
    ensure_dir(&dir, &zig.sha256, check_zig, |staging| {
        let wheel = fetch(cache, &zig)?;
        eprintln!("set-up: unpacking Zig into {}", dir.display());
        unzip(&wheel, staging, |name| {
            zig_file(name).then(|| PathBuf::from(name))
        })?;
        make_executable(&staging.join("ziglang/zig"))?;
        let wrapper = staging.join(CC_WRAPPER);
        fs::write(&wrapper, CC_WRAPPER_SCRIPT)
            .with_context(|| format!("writing {}", wrapper.display()))?;
        make_executable(&wrapper)
    })?;
    Ok(dir)
}

/// The wheel's Zig, with the C library headers for macOS only (the other
/// systems' are 120 MB).
fn zig_file(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("ziglang/") else {
        return false;
    };
    match rest.strip_prefix("lib/libc/") {
        Some(libc) => libc.starts_with("include/any-darwin-any/") || libc.starts_with("darwin/"),
        None => true,
    }
}

fn check_zig(dir: &Path) -> Result<()> {
    for file in [
        "ziglang/zig",
        CC_WRAPPER,
        "ziglang/lib/libc/include/any-darwin-any/stdio.h",
    ] {
        let path = dir.join(file);
        ensure!(
            path.is_file(),
            "broken cache: {} is missing (run `cargo xtask check-macos` again)",
            path.display()
        );
    }
    Ok(())
}

fn make_executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))
        .with_context(|| format!("making {} executable", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zig_keeps_its_compiler_and_only_macos_libc_headers() {
        assert!(zig_file("ziglang/zig"));
        assert!(zig_file("ziglang/lib/include/stddef.h"));
        assert!(zig_file("ziglang/lib/std/std.zig"));
        assert!(zig_file("ziglang/lib/libc/include/any-darwin-any/stdio.h"));
        assert!(!zig_file(
            "ziglang/lib/libc/include/any-windows-any/windows.h"
        ));
        assert!(!zig_file("ziglang/lib/libc/musl/src/string/memcpy.c"));
        assert!(!zig_file("ziglang-0.17.0.dist-info/RECORD"));
    }

    /// The wrapper drops cc-rs's Apple flags and keeps the rest in order
    /// (a stand-in `zig` prints what it is given).
    #[test]
    fn the_wrapper_drops_apple_clang_flags() {
        let dir = std::env::temp_dir().join(format!("xtask-zig-cc-{}", std::process::id()));
        fs::create_dir_all(dir.join("ziglang")).unwrap();
        let zig = dir.join("ziglang/zig");
        fs::write(&zig, "#!/bin/sh\nprintf '%s|' \"$@\"\n").unwrap();
        make_executable(&zig).unwrap();
        let wrapper = dir.join(CC_WRAPPER);
        fs::write(&wrapper, CC_WRAPPER_SCRIPT).unwrap();
        make_executable(&wrapper).unwrap();
        let output = Command::new(&wrapper)
            .args([
                "-O0",
                "-arch",
                "arm64",
                "--target=arm64-apple-macosx",
                "-mmacosx-version-min=11.0",
                "-I",
                "a b",
                "-c",
                "x.c",
            ])
            .output()
            .unwrap();
        assert!(output.status.success());
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            "cc|-target|aarch64-macos|-O0|-I|a b|-c|x.c|"
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
