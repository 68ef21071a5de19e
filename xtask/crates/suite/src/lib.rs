//! The suite's benchmarks: every workspace crate under `crates/` whose
//! Cargo.toml has a `[package.metadata.suite]` table. Adding a benchmark is
//! adding such a crate.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

#[derive(Clone, Debug, PartialEq)]
pub struct BenchCrate {
    /// The name on the command line and in reports, e.g. "transfer".
    pub name: String,
    /// The cargo package (and runner binary), e.g. "bench-transfer".
    pub package: String,
    pub title: String,
    /// The case that the README table shows.
    pub headline: String,
    /// Assets (data/assets.toml) the runner reads: what a bundle carries;
    /// "name" for a whole asset, "name/file" for one of its files.
    pub assets: Vec<String>,
    pub dir: PathBuf,
}

#[derive(Deserialize)]
struct Manifest {
    package: Package,
}

#[derive(Deserialize)]
struct Package {
    name: String,
    #[serde(default)]
    metadata: Option<Metadata>,
}

#[derive(Deserialize)]
struct Metadata {
    suite: Option<SuiteEntry>,
}

#[derive(Deserialize)]
struct SuiteEntry {
    benchmark: String,
    title: String,
    headline: String,
    #[serde(default)]
    assets: Vec<String>,
}

/// Every benchmark crate, sorted by name.
pub fn discover(root: &Path) -> Result<Vec<BenchCrate>> {
    let crates = root.join("crates");
    let mut found = Vec::new();
    for entry in fs::read_dir(&crates).with_context(|| format!("reading {}", crates.display()))? {
        let dir = entry?.path();
        let manifest_path = dir.join("Cargo.toml");
        if !manifest_path.is_file() {
            continue;
        }
        let text = fs::read_to_string(&manifest_path)?;
        let manifest: Manifest = toml::from_str(&text)
            .with_context(|| format!("parsing {}", manifest_path.display()))?;
        if let Some(suite) = manifest.package.metadata.and_then(|m| m.suite) {
            found.push(BenchCrate {
                name: suite.benchmark,
                package: manifest.package.name,
                title: suite.title,
                headline: suite.headline,
                assets: suite.assets,
                dir,
            });
        }
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(found)
}

/// The benchmarks of a bundle: its runner binaries `bench-<name>`.
pub fn prebuilt(runner_dir: &Path) -> Result<Vec<BenchCrate>> {
    let mut found = Vec::new();
    for entry in
        fs::read_dir(runner_dir).with_context(|| format!("reading {}", runner_dir.display()))?
    {
        let package = entry?.file_name().to_string_lossy().into_owned();
        if let Some(name) = package.strip_prefix("bench-") {
            found.push(BenchCrate {
                name: name.to_owned(),
                package: package.clone(),
                title: name.to_owned(),
                headline: String::new(),
                assets: Vec::new(),
                dir: runner_dir.to_path_buf(),
            });
        }
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    anyhow::ensure!(
        !found.is_empty(),
        "no bench-* runners in {}",
        runner_dir.display()
    );
    Ok(found)
}

/// The benchmarks named on the command line (all when none is).
pub fn select(all: &[BenchCrate], names: &[String]) -> Result<Vec<BenchCrate>> {
    if names.is_empty() {
        return Ok(all.to_vec());
    }
    names
        .iter()
        .map(
            |name| match all.iter().find(|b| &b.name == name || &b.package == name) {
                Some(bench) => Ok(bench.clone()),
                None => bail!(
                    "unknown benchmark '{name}'; the suite has: {}",
                    all.iter()
                        .map(|b| b.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            },
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bench(name: &str) -> BenchCrate {
        BenchCrate {
            name: name.into(),
            package: format!("bench-{name}"),
            title: name.into(),
            headline: "step".into(),
            assets: Vec::new(),
            dir: PathBuf::new(),
        }
    }

    #[test]
    fn unknown_benchmark_names_the_known_ones() {
        let all = [bench("bert"), bench("transfer")];
        let error = select(&all, &["nope".into()]).unwrap_err().to_string();
        assert!(error.contains("unknown benchmark 'nope'"), "{error}");
        assert!(error.contains("bert, transfer"), "{error}");
        assert_eq!(
            select(&all, &["bench-bert".into()]).unwrap(),
            vec![bench("bert")]
        );
        assert_eq!(select(&all, &[]).unwrap().len(), 2);
    }

    #[test]
    fn the_workspace_has_the_transfer_benchmark() {
        // The workspace root: this crate is xtask/crates/<name>.
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .nth(3)
            .unwrap();
        let all = discover(root).unwrap();
        let transfer = all
            .iter()
            .find(|b| b.name == "transfer")
            .expect("transfer discovered");
        assert_eq!(transfer.package, "bench-transfer");
        assert_eq!(transfer.headline, "switch");
        assert!(all.iter().all(|b| b.package != "bench-core"));
    }
}
