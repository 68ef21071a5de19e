//! What the set-up needs of the machine, checked before it fetches or
//! builds anything; each missing piece is named with the command that
//! fixes it (README: Requirements).

use std::ffi::OsString;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Result};

/// The oldest Rust the workspace builds with (Cargo.toml's rust-version).
const MIN_RUST: (u32, u32) = (1, 85);

/// Disk the first set-up fills: `.cache` with the CPU libtorch, MLX and the
/// assets (1.6 GB measured on x86_64 Linux; `--cuda` adds the NVIDIA
/// libraries).
const CACHE_GB: u64 = 2;

/// What a command builds once set-up is done, for the disk it needs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Build {
    /// `setup`: nothing.
    #[default]
    Nothing,
    /// `test`: the workspace's tests (dev profile).
    Tests,
    /// `bench` and `bundle`: the benchmark runners (release profile).
    Runners,
}

impl Build {
    /// What the build is, for the message, and `target/` after it from a
    /// fresh clone, measured on x86_64 Linux (2026-11-30) and rounded up:
    /// the tests 4.3 GB (dev profile, line tables only), the five runners
    /// 2.1 GB. None: no build.
    fn target(self) -> Option<(&'static str, u64)> {
        match self {
            Build::Nothing => None,
            Build::Tests => Some(("the tests' build", 5)),
            Build::Runners => Some(("the runners' release build", 3)),
        }
    }
}

/// A program run with `args` that must succeed, and the fix when it does not.
struct Tool {
    what: &'static str,
    program: &'static str,
    args: &'static [&'static str],
    fix: &'static str,
}

const LINUX_TOOLS: &[Tool] = &[
    Tool {
        what: "Python 3 with pip (fetches the pinned wheels from PyPI)",
        program: "python3",
        args: &["-m", "pip", "--version"],
        fix: "sudo apt-get install -y python3 python3-pip",
    },
    Tool {
        what: "Node.js with npm (three assets come through `npm pack`)",
        program: "npm",
        args: &["--version"],
        fix: "sudo apt-get install -y nodejs npm",
    },
    Tool {
        what: "a C++ compiler, g++ (torch-sys's shim, mlx-c)",
        program: "g++",
        args: &["--version"],
        fix: "sudo apt-get install -y g++",
    },
];

const MACOS_TOOLS: &[Tool] = &[
    Tool {
        what: "Python 3 with pip (fetches the pinned wheels from PyPI)",
        program: "python3",
        args: &["-m", "pip", "--version"],
        fix: "brew install python",
    },
    Tool {
        what: "Node.js with npm (three assets come through `npm pack`)",
        program: "npm",
        args: &["--version"],
        fix: "brew install node",
    },
    Tool {
        what: "the Xcode command line tools: a C++ compiler (mlx-sys builds MLX with Metal)",
        program: "c++",
        args: &["--version"],
        fix: "xcode-select --install",
    },
    Tool {
        what: "the Xcode command line tools: xcrun (finds the Metal compiler)",
        program: "xcrun",
        args: &["--version"],
        fix: "xcode-select --install",
    },
    Tool {
        what: "the Metal toolchain (`xcrun -f metal`: MLX compiles its GPU kernels into mlx.metallib)",
        program: "xcrun",
        args: &["-f", "metal"],
        fix: "xcodebuild -downloadComponent MetalToolchain   (needs Xcode itself, not only the command line tools: install Xcode from the App Store, then sudo xcode-select -s /Applications/Xcode.app)",
    },
    Tool {
        what: "CMake (builds mlx-c and MLX)",
        program: "cmake",
        args: &["--version"],
        fix: "brew install cmake",
    },
];

/// Checks the machine with the programs on `path` (the process's PATH in
/// use; another one in tests); `cache` is where the set-up writes, `fresh`
/// says whether it still has everything to fetch, and `build` what the
/// command builds after it.
pub fn check(path: Option<OsString>, cache: &Path, fresh: bool, build: Build) -> Result<()> {
    let mut problems = Vec::new();
    let (os, arch) = (std::env::consts::OS, std::env::consts::ARCH);
    let tools = match (os, arch) {
        ("linux", "x86_64") => LINUX_TOOLS,
        ("macos", "aarch64") => MACOS_TOOLS,
        _ => bail!(
            "the set-up supports x86_64 Linux (and Apple-silicon macOS, untested); this is {arch} {os}"
        ),
    };
    if let Some(problem) = check_rust(path.as_ref()) {
        problems.push(problem);
    }
    problems.extend(missing_tools(path.as_ref(), tools));
    if fresh {
        if let Ok(free) = fs4::available_space(existing_parent(cache)) {
            problems.extend(disk_problem(free, cache, build));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    bail!(
        "the set-up cannot start:\n  - {}\nthen run the command again",
        problems.join("\n  - ")
    )
}

/// Each of `tools` that does not run on `path`, with its fix.
fn missing_tools(path: Option<&OsString>, tools: &[Tool]) -> Vec<String> {
    tools
        .iter()
        .filter(|tool| !runs(path, tool.program, tool.args))
        .map(|tool| format!("{} is missing; fix:\n    {}", tool.what, tool.fix))
        .collect()
}

/// Too little disk for the set-up and `build`, with `free` bytes at `cache`.
fn disk_problem(free: u64, cache: &Path, build: Build) -> Option<String> {
    let target = build.target();
    let need_gb = CACHE_GB + target.map_or(0, |(_, gb)| gb);
    let free_gb = free as f64 / 1e9;
    (free_gb < need_gb as f64).then(|| {
        let build = target
            .map(|(what, gb)| format!(" and {what} (target/, {gb} GB)"))
            .unwrap_or_default();
        format!(
            "{free_gb:.1} GB free at {}; the set-up (.cache, {CACHE_GB} GB){build} \
             need about {need_gb} GB (clear space, or clone onto a larger disk)",
            cache.display(),
        )
    })
}

/// Rust older than the workspace's minimum, or no rustc at all.
fn check_rust(path: Option<&OsString>) -> Option<String> {
    let fix = "rustup update stable (no rustup: curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh)";
    let (major, minor) = MIN_RUST;
    let Some(version) = output(path, "rustc", &["--version"]) else {
        return Some(format!(
            "Rust {major}.{minor} or newer is missing; fix:\n    {fix}"
        ));
    };
    // "rustc 1.95.0 (59807616e 2026-04-14)"
    let number = version.split_whitespace().nth(1).unwrap_or_default();
    let mut parts = number
        .split('.')
        .map(|part| part.parse::<u32>().unwrap_or(0));
    let found = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (found < MIN_RUST)
        .then(|| format!("Rust {number} is older than {major}.{minor}; fix:\n    {fix}"))
}

fn command(path: Option<&OsString>, program: &str, args: &[&str]) -> Command {
    let mut command = Command::new(program);
    command.args(args);
    // With PATH set here, the program is looked up on it too.
    if let Some(path) = path {
        command.env("PATH", path);
    }
    command
}

fn runs(path: Option<&OsString>, program: &str, args: &[&str]) -> bool {
    output(path, program, args).is_some()
}

/// The program's stdout when it ran and succeeded.
fn output(path: Option<&OsString>, program: &str, args: &[&str]) -> Option<String> {
    let output = command(path, program, args).output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

/// `path` or its nearest existing ancestor (a fresh clone has no .cache yet).
fn existing_parent(path: &Path) -> &Path {
    path.ancestors()
        .find(|ancestor| ancestor.exists())
        .unwrap_or(Path::new("/"))
}

// The fixes named are the Debian ones.
#[cfg(all(test, target_os = "linux", target_arch = "x86_64"))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A PATH holding only fake programs that print `output` and exit 0.
    fn fake_path(name: &str, programs: &[(&str, &str)]) -> (std::path::PathBuf, OsString) {
        let dir = std::env::temp_dir().join(format!("xtask-req-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (program, output) in programs {
            let path = dir.join(program);
            std::fs::write(&path, format!("#!/bin/sh\necho '{output}'\n")).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let path = dir.clone().into_os_string();
        (dir, path)
    }

    #[test]
    fn every_missing_requirement_is_named_with_its_fix() {
        let (dir, path) = fake_path("missing", &[("rustc", "rustc 1.80.0 (abc 2024-07-21)")]);
        let error = check(Some(path), &dir, false, Build::Tests)
            .unwrap_err()
            .to_string();
        for needle in [
            "Rust 1.80.0 is older than 1.85; fix:\n    rustup update stable",
            "Python 3 with pip",
            "sudo apt-get install -y python3 python3-pip",
            "Node.js with npm",
            "sudo apt-get install -y nodejs npm",
            "g++",
            "sudo apt-get install -y g++",
        ] {
            assert!(error.contains(needle), "{needle:?} not in:\n{error}");
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_machine_with_everything_passes() {
        let (dir, path) = fake_path(
            "complete",
            &[
                ("rustc", "rustc 1.85.0 (4d91de4e4 2025-02-17)"),
                ("python3", "pip 24.0"),
                ("npm", "10.0.0"),
                ("g++", "g++ 12"),
            ],
        );
        check(Some(path), &dir, false, Build::Tests).unwrap();
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Writes a fake program that runs `body` (sh).
    fn fake_script(dir: &Path, program: &str, body: &str) {
        let path = dir.join(program);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn a_mac_without_xcode_tools_cmake_or_metal_gets_the_exact_fixes() {
        // Nothing at all: every fix is named.
        let (dir, path) = fake_path("mac-bare", &[]);
        let problems = missing_tools(Some(&path), MACOS_TOOLS).join("\n");
        for needle in [
            "C++ compiler (mlx-sys builds MLX with Metal) is missing; fix:\n    xcode-select --install",
            "xcrun (finds the Metal compiler) is missing; fix:\n    xcode-select --install",
            "the Metal toolchain (`xcrun -f metal`",
            "xcodebuild -downloadComponent MetalToolchain",
            "CMake (builds mlx-c and MLX) is missing; fix:\n    brew install cmake",
            "brew install python",
            "brew install node",
        ] {
            assert!(problems.contains(needle), "{needle:?} not in:\n{problems}");
        }
        std::fs::remove_dir_all(dir).unwrap();
        // The command line tools without the Metal toolchain: only that.
        let (dir, path) = fake_path(
            "mac-no-metal",
            &[
                ("c++", "Apple clang version 16.0.0"),
                ("cmake", "cmake version 3.31.6"),
                ("python3", "pip 24.0"),
                ("npm", "10.0.0"),
            ],
        );
        fake_script(
            &dir,
            "xcrun",
            r#"if [ "$1" = "-f" ]; then echo "xcrun: error: unable to find utility \"$2\", not a developer tool or in PATH" >&2; exit 72; fi
echo "xcrun version 70.""#,
        );
        let problems = missing_tools(Some(&path), MACOS_TOOLS);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("xcodebuild -downloadComponent MetalToolchain"),
            "{problems:?}"
        );
        // With the Metal compiler found, nothing is missing.
        fake_script(&dir, "xcrun", "echo /usr/bin/metal");
        assert!(missing_tools(Some(&path), MACOS_TOOLS).is_empty());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_disk_asked_is_what_the_command_builds() {
        let cache = Path::new("/clone/.cache");
        const GB: u64 = 1_000_000_000;
        // The CI machine that the old flat 15 GB refused.
        assert_eq!(disk_problem(13 * GB, cache, Build::Tests), None);
        assert_eq!(disk_problem(3 * GB, cache, Build::Nothing), None);
        let problem = disk_problem(GB, cache, Build::Runners).expect("1 GB is too little");
        for needle in [
            "1.0 GB free at /clone/.cache",
            "release build",
            "clear space",
        ] {
            assert!(problem.contains(needle), "{needle:?} not in: {problem}");
        }
        assert!(
            problem.contains("(target/, 3 GB) need about 5 GB"),
            "{problem}"
        );
        assert!(disk_problem(3 * GB, cache, Build::Tests).is_some());
        let setup_only = disk_problem(GB, cache, Build::Nothing).expect("1 GB is too little");
        assert!(!setup_only.contains("target/"), "{setup_only}");
    }
}
