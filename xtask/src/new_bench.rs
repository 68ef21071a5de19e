//! `cargo xtask new-bench NAME`: a working benchmark crate to fill in.
//!
//! The skeleton (xtask/templates/new-bench/) is a whole benchmark: the twin
//! trait, both twins, the workload with its knobs, a parity test, the knob
//! tests, a Criterion harness and the suite metadata. As generated it
//! measures y = relu(x @ w), passes `cargo xtask test` and runs under
//! `cargo xtask bench --bench NAME`; `cargo xtask test` checks exactly that
//! on a throwaway copy ([`check_skeleton`]).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};
use clap::Args;

use xtask_suite as suite;

#[derive(Args, Debug)]
pub struct NewBenchArgs {
    /// The benchmark's name: lower-case letters, digits and '-', starting
    /// with a letter, e.g. `softmax` (the crate is `bench-softmax`).
    pub name: String,
}

/// (path in the crate, template); `{{ident}}` in a path is the crate's
/// Rust name.
const TEMPLATES: &[(&str, &str)] = &[
    (
        "Cargo.toml",
        include_str!("../templates/new-bench/Cargo.toml.tmpl"),
    ),
    (
        "build.rs",
        include_str!("../templates/new-bench/build.rs.tmpl"),
    ),
    (
        "src/lib.rs",
        include_str!("../templates/new-bench/lib.rs.tmpl"),
    ),
    (
        "src/main.rs",
        include_str!("../templates/new-bench/main.rs.tmpl"),
    ),
    (
        "src/workload.rs",
        include_str!("../templates/new-bench/workload.rs.tmpl"),
    ),
    (
        "src/mlx.rs",
        include_str!("../templates/new-bench/mlx.rs.tmpl"),
    ),
    (
        "src/torch.rs",
        include_str!("../templates/new-bench/torch.rs.tmpl"),
    ),
    (
        "tests/parity.rs",
        include_str!("../templates/new-bench/parity.rs.tmpl"),
    ),
    (
        "tests/knobs.rs",
        include_str!("../templates/new-bench/knobs.rs.tmpl"),
    ),
    (
        "benches/{{ident}}.rs",
        include_str!("../templates/new-bench/bench.rs.tmpl"),
    ),
];

pub fn run(root: &Path, args: &NewBenchArgs) -> Result<()> {
    let dir = create(root, &args.name)?;
    let names = Names::of(&args.name)?;
    format(root, &names.krate)?;
    println!(
        "created {}: a working benchmark of y = relu(x @ w). Now:\n\
         - src/workload.rs: your sizes per preset, knobs, inputs, settings;\n\
         - src/lib.rs: `{twin}` (what each twin provides) and `measure` (the timed cases);\n\
         - src/mlx.rs and src/torch.rs: the twins, same types and functions in the same order;\n\
         - tests/parity.rs: the same inputs give the same outputs, within a stated tolerance;\n\
         - Cargo.toml: the description and the README title;\n\
         - README.md, The benchmarks: one line linking to src/lib.rs, whose module doc describes it.\n\
         Then: cargo xtask test, and cargo xtask bench --bench {name}",
        dir.display(),
        twin = names.twin,
        name = args.name
    );
    Ok(())
}

/// The names one benchmark name gives.
struct Names {
    name: String,
    krate: String,
    ident: String,
    ty: String,
    twin: String,
}

impl Names {
    fn of(name: &str) -> Result<Self> {
        let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !name.ends_with('-')
            && !name.contains("--");
        ensure!(
            valid,
            "benchmark name {name:?}: use lower-case letters, digits and single '-', starting with a letter (e.g. softmax)"
        );
        let ty: String = name
            .split('-')
            .map(|part| {
                let mut chars = part.chars();
                chars
                    .next()
                    .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                    .unwrap_or_default()
            })
            .collect();
        Ok(Self {
            name: name.to_owned(),
            krate: format!("bench-{name}"),
            ident: format!("bench_{}", name.replace('-', "_")),
            twin: format!("{ty}Twin"),
            ty,
        })
    }

    fn fill(&self, template: &str) -> String {
        template
            .replace("{{name}}", &self.name)
            .replace("{{crate}}", &self.krate)
            .replace("{{ident}}", &self.ident)
            .replace("{{Twin}}", &self.twin)
            .replace("{{Type}}", &self.ty)
    }
}

/// Writes crates/bench-NAME/ from the templates; refuses a name the suite
/// already has.
pub fn create(root: &Path, name: &str) -> Result<PathBuf> {
    let names = Names::of(name)?;
    let dir = root.join("crates").join(&names.krate);
    if dir.exists() {
        bail!("{} exists already", dir.display());
    }
    if suite::discover(root)?.iter().any(|b| b.name == name) {
        bail!("the suite already has a benchmark named {name}");
    }
    for (path, template) in TEMPLATES {
        let file = dir.join(names.fill(path));
        fs::create_dir_all(file.parent().expect("a file in the crate"))?;
        fs::write(&file, names.fill(template))
            .with_context(|| format!("writing {}", file.display()))?;
    }
    Ok(dir)
}

/// rustfmt over the new crate: the imports' order and the line breaks
/// depend on the name.
fn format(root: &Path, krate: &str) -> Result<()> {
    let status = Command::new(env!("CARGO"))
        .current_dir(root)
        .args(["fmt", "-p", krate])
        .status()
        .context("running cargo fmt")?;
    ensure!(status.success(), "cargo fmt -p {krate} failed");
    Ok(())
}

/// Removes the throwaway crate and puts Cargo.lock back, however the check
/// ends.
struct Throwaway {
    dir: PathBuf,
    lock: PathBuf,
    lock_text: Vec<u8>,
}

impl Drop for Throwaway {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
        let _ = fs::write(&self.lock, &self.lock_text);
    }
}

/// What `cargo xtask test` checks of the skeleton: generated under a
/// throwaway name, it builds, passes its own tests (parity, knobs), and
/// `cargo xtask bench` runs one quick CPU cell of each twin through it.
pub fn check_skeleton(root: &Path) -> Result<()> {
    const NAME: &str = "zz-skeleton-check";
    let lock = root.join("Cargo.lock");
    let _throwaway = Throwaway {
        dir: root.join("crates").join(format!("bench-{NAME}")),
        lock_text: fs::read(&lock).context("reading Cargo.lock")?,
        lock: lock.clone(),
    };
    create(root, NAME)?;
    format(root, &format!("bench-{NAME}"))?;
    eprintln!("new-bench: checking a generated benchmark ({NAME})");
    let cargo = env!("CARGO");
    let status = Command::new(cargo)
        .current_dir(root)
        .args(["test", "-p", &format!("bench-{NAME}")])
        .status()?;
    ensure!(status.success(), "the generated benchmark's tests failed");
    let results = std::env::temp_dir().join(format!("mlx-vs-torch-{NAME}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&results);
    let status = Command::new(cargo)
        .current_dir(root)
        .args([
            "run", "--quiet", "-p", "xtask", "--", "bench", "--bench", NAME,
        ])
        .args(["--device", "cpu", "--prebuilt"])
        .arg(root.join("target/debug"))
        .arg("--results")
        .arg(&results)
        .status()?;
    ensure!(status.success(), "cargo xtask bench --bench {NAME} failed");
    let rows = fs::read_to_string(
        fs::read_dir(&results)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|x| x == "csv"))
            .context("the run wrote no CSV")?,
    )?;
    let _ = fs::remove_dir_all(&results);
    for framework in ["mlx", "torch"] {
        ensure!(
            rows.lines().any(
                |l| l.contains(&format!(",{NAME},step,{framework},cpu,")) && l.contains(",ok,")
            ),
            "no ok step row of {framework} in:\n{rows}"
        );
    }
    eprintln!("new-bench: the generated benchmark builds, passes its tests and runs");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_from_the_benchmark_name() {
        let names = Names::of("kv-cache2").unwrap();
        assert_eq!(names.krate, "bench-kv-cache2");
        assert_eq!(names.ident, "bench_kv_cache2");
        assert_eq!(names.ty, "KvCache2");
        assert_eq!(names.twin, "KvCache2Twin");
        assert_eq!(
            names.fill("{{crate}} {{ident}}::{{Type}}: {{Twin}} \"{{name}}\""),
            "bench-kv-cache2 bench_kv_cache2::KvCache2: KvCache2Twin \"kv-cache2\""
        );
        for bad in ["", "Softmax", "2x", "a_b", "a-", "a--b", "a b", "../x"] {
            assert!(Names::of(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn every_placeholder_of_every_template_is_filled() {
        let names = Names::of("demo").unwrap();
        for (path, template) in TEMPLATES {
            let filled = names.fill(template);
            assert!(!filled.contains("{{"), "{path} keeps a placeholder");
            assert!(!names.fill(path).contains("{{"), "{path}");
        }
    }

    #[test]
    fn an_existing_crate_or_benchmark_is_refused() {
        let root = std::env::temp_dir().join(format!("new-bench-{}", std::process::id()));
        let existing = root.join("crates/bench-transfer");
        fs::create_dir_all(&existing).unwrap();
        fs::write(
            existing.join("Cargo.toml"),
            "[package]\nname = \"bench-transfer\"\n[package.metadata.suite]\nbenchmark = \"transfer\"\ntitle = \"t\"\nheadline = \"switch\"\n",
        )
        .unwrap();
        let error = create(&root, "transfer").unwrap_err().to_string();
        assert!(error.contains("exists already"), "{error}");
        let made = create(&root, "softmax").unwrap();
        assert!(
            made.join("src/mlx.rs").is_file() && made.join("benches/bench_softmax.rs").is_file()
        );
        let _ = fs::remove_dir_all(&root);
    }
}
