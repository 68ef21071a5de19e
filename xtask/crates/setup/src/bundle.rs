//! `cargo xtask bundle`: everything a CUDA machine with PyTorch 2.11 in its
//! Python, but no Rust toolchain and no network, needs to run the suite:
//! stripped release runners, the xtask orchestrator and the copy-ceiling
//! probe it runs before the cells, the assets they read,
//! MLX's CUDA runtime (pruned to one GPU architecture), a run script and a
//! manifest with every file's sha256. `bundle/run.sh OUT_DIR [bench args]`
//! runs it there and leaves the CSV in OUT_DIR, for `reports/raw/`;
//! `bundle/selftest.sh OUT_DIR` runs the GPU capture self-test (eager
//! against best mode, `xtask/scripts/selftest.sh`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{ensure, Context, Result};
use clap::Args;

use xtask_suite as suite;

use crate::{cache, download, pins, requirements, setup};

#[derive(Args, Debug)]
pub struct BundleArgs {
    /// Benchmarks to include (default: all).
    #[arg(long, num_args = 1..)]
    pub bench: Vec<String>,
    /// Output folder (default: reports/bundle).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Also pack MLX's CUDA runtime for this SM architecture (90: H100/H200).
    #[arg(long)]
    pub mlx_cuda_sm: Option<u32>,
    /// Leave the assets out (to carry them separately).
    #[arg(long)]
    pub no_assets: bool,
}

/// The copy-ceiling probe that `xtask bench` runs once per device before
/// the cells (crates/device-ceiling), bundled beside the runners.
const DEVICE_CEILING: &str = "device-ceiling";

pub fn run(root: &Path, args: &BundleArgs) -> Result<()> {
    let benches = suite::select(&suite::discover(root)?, &args.bench)?;
    setup::ensure(
        root,
        setup::SetupOptions::building(requirements::Build::Runners),
    )?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| root.join("reports/bundle"));
    cache::rebuild_dir(&out, |staging| fill(root, staging, &benches, args))?;
    eprintln!(
        "bundle: {} (run there: bundle/run.sh OUT_DIR --bench ...)",
        out.display()
    );
    Ok(())
}

fn fill(root: &Path, dir: &Path, benches: &[suite::BenchCrate], args: &BundleArgs) -> Result<()> {
    let mut build = Command::new(env!("CARGO"));
    build
        .current_dir(root)
        .args(["build", "--profile", "bundle", "--bins", "-p", "xtask"])
        .args(["-p", DEVICE_CEILING]);
    for bench in benches {
        build.args(["-p", &bench.package]);
    }
    ensure!(
        build.status()?.success(),
        "building the bundle's runners failed"
    );
    let bin = dir.join("bin");
    fs::create_dir_all(&bin)?;
    let tools = ["xtask", DEVICE_CEILING];
    for package in benches.iter().map(|b| b.package.as_str()).chain(tools) {
        fs::copy(root.join("target/bundle").join(package), bin.join(package))
            .with_context(|| format!("copying the {package} runner"))?;
    }
    if !args.no_assets {
        // "name" is a whole asset, "name/file" one file of it.
        for asset in benches.iter().flat_map(|b| &b.assets) {
            let from = root.join(".cache/assets").join(asset);
            let to = dir.join("assets").join(asset);
            if from.is_file() {
                fs::create_dir_all(to.parent().expect("asset folder"))?;
                fs::copy(&from, &to)?;
            } else {
                copy_tree(&from, &to)?;
            }
        }
    }
    if let Some(sm) = args.mlx_cuda_sm {
        pack_mlx_cuda(root, &dir.join("mlx-cuda-payload"), sm)?;
        // The frameworks' own Python implementations, for comparison.
        let wheels = dir.join("wheels");
        fs::create_dir_all(&wheels)?;
        for wheel in pins::reference_wheels() {
            let path = download::fetch(&root.join(".cache"), &wheel)?;
            fs::copy(&path, wheels.join(&wheel.file))?;
        }
        copy_tree(
            &root.join("xtask/scripts/references"),
            &dir.join("references"),
        )?;
        fs::write(dir.join("references.sh"), REFERENCES_SH)?;
    }
    for script in ["install-mlx-cuda.sh", "selftest.sh"] {
        fs::copy(root.join("xtask/scripts").join(script), dir.join(script))
            .with_context(|| format!("copying xtask/scripts/{script}"))?;
    }
    fs::write(dir.join("run.sh"), RUN_SH)?;
    fs::write(
        dir.join("COMMIT"),
        format!("{}\n", bench_core::env::checkout_commit(root)),
    )?;
    write_manifest(dir)
}

/// The run script: finds the machine's libtorch, installs MLX's CUDA
/// runtime beside it, and lets the bundled xtask run the cells.
const RUN_SH: &str = r#"#!/usr/bin/env bash
# usage: run.sh OUT_DIR [cargo xtask bench options, e.g. --bench transfer --precision f32 bf16 --preset paper]
#        --world N (or a list, 1,2,4,8): the distributed benchmark's ranks (--set distributed.world=N)
# Needs: python3 with torch 2.11.0 (CUDA 13) on this machine. No network, no Rust.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: run.sh OUT_DIR [bench options]}
shift
mkdir -p "$out"
torch_lib=$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
lib_path="$torch_lib"
if [ -d "$here/mlx-cuda-payload" ]; then
  mlx_lib=$(bash "$here/install-mlx-cuda.sh" "$here/mlx-cuda-payload")
  # MLX's CPU BLAS/LAPACK: OpenBLAS instead of the wheel's reference BLAS.
  libs="$(dirname "$(dirname "$mlx_lib")")/mlx_cuda_13.libs"
  # Once, and one run at a time (runs may start together, one per GPU).
  (
    flock 9
    if [ ! -e "$libs/libopenblas.so.0" ]; then
      tar -C "$libs" -xJf "$here/mlx-cuda-payload/openblas.tar.xz"
    fi
    for f in "$libs"/libblas-*.so* "$libs"/liblapack-*.so*; do
      case "$f" in *.reference) continue ;; esac
      [ -L "$f" ] && continue
      mv -f "$f" "$f.reference"
      ln -s libopenblas.so.0 "$f"
    done
  ) 9>"$libs/.openblas.lock"
  lib_path="$mlx_lib:$libs:$lib_path"
fi
export LD_LIBRARY_PATH="$lib_path:${LD_LIBRARY_PATH:-}"
# OpenBLAS's core (OPENBLAS_CORETYPE): each runner sets it for itself
# (bench_core::openblas), as it does wherever it is started.
export MLX_VS_TORCH_ASSETS="$here/assets"
export BENCH_GIT_COMMIT="$(cat "$here/COMMIT")"
export MLX_PTX_CACHE_DIR="${MLX_PTX_CACHE_DIR:-$out/mlx-ptx-cache}"
cd "$here"
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --world) args+=(--set "distributed.world=${2:?--world needs a number of ranks}"); shift 2 ;;
    --world=*) args+=(--set "distributed.world=${1#--world=}"); shift ;;
    *) args+=("$1"); shift ;;
  esac
done
exec "$here/bin/xtask" bench --prebuilt "$here/bin" --results "$out" ${args[@]+"${args[@]}"}
"#;

/// The frameworks' own Python paths for each model benchmark
/// (`references/*.py`: transformers, torch.compile, gpt-fast, mlx-lm,
/// mlx-examples, mlx-whisper), run after the twins on the same machine; each reads the
/// twin's configuration from the twin's row in OUT_DIR.
const REFERENCES_SH: &str = r#"#!/usr/bin/env bash
# usage: references.sh OUT_DIR BENCH [--precision P] [--preset quick|paper] [--device gpu|cpu] BACKEND...
#   (after run.sh, which installs libmlx and writes the twins' rows to OUT_DIR)
#   BENCH: tinyllama (hf hf-static-compile gpt-fast gpt-fast-eager mlx-lm),
#          lm-train (torch-eager torch-compile mlx-compile mlx-compile-causal),
#          bert (hf-eager hf-compile hf-compile-graphs mlx-compile),
#          whisper (hf-eager hf-static-compile mlx-whisper)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: references.sh OUT_DIR BENCH [options] BACKEND...}
bench=${2:?usage: references.sh OUT_DIR BENCH [options] BACKEND...}
shift 2
precision=f32; preset=quick; device=gpu; backends=()
while [ $# -gt 0 ]; do case "$1" in
  --precision) precision=$2; shift 2;; --preset) preset=$2; shift 2;; --device) device=$2; shift 2;;
  *) backends+=("$1"); shift;; esac; done
mkdir -p "$out"
# Once, and one run at a time (runs may start together, one per GPU).
(
  flock 9
  if [ ! -e /tmp/mlx-vs-torch-wheels-installed ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile "$here"/wheels/*.whl && touch /tmp/mlx-vs-torch-wheels-installed
  fi
) 9>/tmp/mlx-vs-torch-wheels.lock
export BENCH_GIT_COMMIT="$(cat "$here/COMMIT")" MLX_VS_TORCH_ASSETS="$here/assets" PYTHONUNBUFFERED=1
script="$here/references/${bench//-/_}.py"
for backend in "${backends[@]}"; do
  timeout "${REFERENCE_TIMEOUT:-420}" python3 "$script" "$backend" "$out" --precision "$precision" \
    --preset "$preset" --device "$device" || echo "reference $bench $backend failed or timed out"
done
"#;

/// MLX's CUDA 13 runtime, with only one SM's cubins kept so that it is
/// small enough to carry (the GPU kit's pack-mlx-cuda.sh, as a command).
fn pack_mlx_cuda(root: &Path, payload: &Path, sm: u32) -> Result<()> {
    let wheel = download::fetch(&root.join(".cache"), &pins::mlx_cuda_13())?;
    let work = root.join(".cache/mlx-cuda-13");
    cache::rebuild_dir(&work, |staging| {
        download::unzip(&wheel, staging, |name| Some(PathBuf::from(name))).map(drop)
    })?;
    fs::create_dir_all(payload)?;
    let pruned = work.join("libmlx.pruned.so");
    run_command(
        Command::new("python3")
            .arg(root.join("xtask/scripts/prune_fatbin.py"))
            .arg(work.join("mlx/lib/libmlx.so"))
            .arg(&pruned)
            .arg(sm.to_string()),
    )?;
    run_command(Command::new("sh").arg("-c").arg(format!(
        "xz -6 -T0 -c '{}' > '{}'",
        pruned.display(),
        payload.join("libmlx.so.xz").display()
    )))?;
    run_command(
        Command::new("tar")
            .arg("-C")
            .arg(&work)
            .arg("-cJf")
            .arg(payload.join("libs.tar.xz"))
            .arg("mlx_cuda_13.libs"),
    )?;
    run_command(
        Command::new("tar")
            .arg("-C")
            .arg(&work)
            .arg("-cJf")
            .arg(payload.join("include.tar.xz"))
            .arg("mlx/include"),
    )?;
    fs::write(payload.join("VERSION"), format!("{}\n", pins::MLX_VERSION))?;
    pack_openblas(payload)
}

/// The CUDA wheel, too, ships netlib's reference BLAS for MLX's CPU work
/// (the CPU half of bench-transfer would take minutes per matmul on it):
/// carry this machine's OpenBLAS, with the Fortran runtime it needs, for
/// run.sh to put behind MLX's BLAS and LAPACK names as set-up does here.
fn pack_openblas(payload: &Path) -> Result<()> {
    let openblas = pins::find_openblas()?;
    let staging = payload.join("openblas");
    fs::create_dir_all(&staging)?;
    let lib_dir = openblas.parent().expect("a library folder");
    fs::copy(
        fs::canonicalize(openblas)?,
        staging.join("libopenblas.so.0"),
    )?;
    for runtime in ["libgfortran.so.5", "libquadmath.so.0"] {
        fs::copy(
            fs::canonicalize(lib_dir.join(runtime))?,
            staging.join(runtime),
        )
        .with_context(|| format!("copying {runtime} from {}", lib_dir.display()))?;
    }
    run_command(
        Command::new("tar")
            .arg("-C")
            .arg(&staging)
            .arg("-cJf")
            .arg(payload.join("openblas.tar.xz"))
            .args(["libopenblas.so.0", "libgfortran.so.5", "libquadmath.so.0"]),
    )?;
    fs::remove_dir_all(staging)?;
    Ok(())
}

fn run_command(command: &mut Command) -> Result<()> {
    let status = command
        .status()
        .with_context(|| format!("running {command:?}"))?;
    ensure!(status.success(), "{command:?} failed ({status})");
    Ok(())
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    ensure!(
        from.is_dir(),
        "{} is missing: run `cargo xtask setup`",
        from.display()
    );
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else if entry.file_name() != cache::STAMP {
            fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// MANIFEST: every file's size and sha256, so the far side can check what
/// arrived (`sha256sum -c` reads the same format).
fn write_manifest(dir: &Path) -> Result<()> {
    let mut files = Vec::new();
    cache::collect_files(dir, dir, &mut files)?;
    files.sort();
    let mut text = String::new();
    for relative in files {
        let sha = download::sha256_of(&dir.join(&relative))?;
        text.push_str(&format!("{sha}  {}\n", relative.display()));
    }
    fs::write(dir.join("MANIFEST.sha256"), text)?;
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::process::Command;

    use super::RUN_SH;

    /// run.sh hands its options to the bundled xtask, `--world N` as the
    /// distributed benchmark's knob; stand-ins for python3 and xtask.
    #[test]
    fn run_sh_passes_options_on_and_world_as_the_distributed_knob() {
        let dir = std::env::temp_dir().join(format!("xtask-run-sh-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let here = dir.as_path();
        let executable = |path: &std::path::Path, text: &str| {
            std::fs::write(path, text).unwrap();
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        std::fs::create_dir_all(here.join("bin")).unwrap();
        std::fs::create_dir_all(here.join("path")).unwrap();
        executable(&here.join("run.sh"), RUN_SH);
        executable(&here.join("bin/xtask"), "#!/bin/sh\necho \"$@\"\n");
        executable(
            &here.join("path/python3"),
            "#!/bin/sh\necho /nowhere/torch/lib\n",
        );
        std::fs::write(here.join("COMMIT"), "abc\n").unwrap();
        let path = format!(
            "{}:{}",
            here.join("path").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let run = |args: &[&str]| {
            let output = Command::new("bash")
                .arg(here.join("run.sh"))
                .arg(here.join("out"))
                .args(args)
                .env("PATH", &path)
                .output()
                .unwrap();
            assert!(output.status.success(), "{output:?}");
            String::from_utf8(output.stdout).unwrap()
        };
        let said = run(&[
            "--bench",
            "distributed",
            "--world",
            "2,4",
            "--precision",
            "bf16",
        ]);
        assert!(
            said.ends_with("--bench distributed --set distributed.world=2,4 --precision bf16\n"),
            "{said}"
        );
        assert!(said.starts_with("bench --prebuilt "), "{said}");
        assert!(run(&["--world=8"]).ends_with("--set distributed.world=8\n"));
        assert!(run(&[]).ends_with(&format!("--results {}\n", here.join("out").display())));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
