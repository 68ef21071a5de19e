//! Where a benchmark's model files come from. Real users have the Hugging
//! Face Hub, so the Hub is the primary source; offline (no network, or
//! `HF_HUB_OFFLINE=1`), the registry copy from `data/assets.toml` is used.
//! Every result row records which one it was.

pub mod floats;

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use bench_core::assets::asset_dir;

/// A model: its Hub repository and the registry copy to use offline.
#[derive(Clone, Debug)]
pub struct ModelSource {
    /// e.g. "sentence-transformers/all-MiniLM-L6-v2"
    pub hub_repo: String,
    /// Asset name in data/assets.toml, if a registry ships a copy.
    pub offline_asset: Option<String>,
}

/// Resolved model files, by their name in the repository.
#[derive(Clone, Debug)]
pub struct ModelFiles {
    pub files: BTreeMap<String, PathBuf>,
    /// "hub:<repo>" or "asset:<name>", for the result row.
    pub origin: String,
}

impl ModelFiles {
    pub fn path(&self, name: &str) -> Result<&PathBuf> {
        self.files
            .get(name)
            .with_context(|| format!("model files from {} have no {name}", self.origin))
    }
}

/// Which source to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preference {
    /// The Hub, falling back to the registry copy when it cannot be reached.
    Auto,
    HubOnly,
    OfflineOnly,
}

fn hub_disabled() -> bool {
    std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// Fetches `files` from the Hub (cached in the Hugging Face cache), or
/// takes them from the offline copy; the error names both attempts.
pub fn resolve(source: &ModelSource, files: &[&str], preference: Preference) -> Result<ModelFiles> {
    let hub_error = if preference != Preference::OfflineOnly && !hub_disabled() {
        match from_hub(&source.hub_repo, files) {
            Ok(found) => return Ok(found),
            Err(error) if preference == Preference::HubOnly => return Err(error),
            Err(error) => Some(error),
        }
    } else {
        None
    };
    let offline = source
        .offline_asset
        .as_deref()
        .with_context(|| {
            format!(
                "no registry copy of {} exists for offline use",
                source.hub_repo
            )
        })
        .and_then(|asset| from_asset(asset, files));
    match (offline, hub_error) {
        (Ok(found), _) => Ok(found),
        (Err(offline), Some(hub)) => Err(offline.context(format!("the Hub failed too: {hub:#}"))),
        (Err(offline), None) => Err(offline),
    }
}

fn from_hub(repo: &str, files: &[&str]) -> Result<ModelFiles> {
    let api = hf_hub::api::sync::ApiBuilder::new()
        .with_progress(false)
        .build()
        .context("starting the Hugging Face Hub client")?;
    let repo_handle = api.model(repo.to_owned());
    let mut found = BTreeMap::new();
    for &file in files {
        let path = repo_handle
            .get(file)
            .with_context(|| format!("downloading {file} of {repo} from the Hugging Face Hub"))?;
        found.insert(file.to_owned(), path);
    }
    Ok(ModelFiles {
        files: found,
        origin: format!("hub:{repo}"),
    })
}

fn from_asset(asset: &str, files: &[&str]) -> Result<ModelFiles> {
    let dir = asset_dir(asset)?;
    let mut found = BTreeMap::new();
    for &file in files {
        let path = dir.join(file);
        anyhow::ensure!(
            path.is_file(),
            "the registry copy '{asset}' has no {file} ({})",
            path.display()
        );
        found.insert(file.to_owned(), path);
    }
    Ok(ModelFiles {
        files: found,
        origin: format!("asset:{asset}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offline_copy_resolves_and_missing_files_are_named() {
        let source = ModelSource {
            hub_repo: "sentence-transformers/all-MiniLM-L6-v2".into(),
            offline_asset: Some("minilm".into()),
        };
        let found = resolve(
            &source,
            &["config.json", "model.safetensors"],
            Preference::OfflineOnly,
        )
        .unwrap();
        assert_eq!(found.origin, "asset:minilm");
        assert!(found.path("model.safetensors").unwrap().is_file());
        let error = resolve(&source, &["nope.bin"], Preference::OfflineOnly).unwrap_err();
        assert!(
            format!("{error:#}").contains("has no nope.bin"),
            "{error:#}"
        );
    }

    #[test]
    fn no_offline_copy_is_an_error_naming_the_repo() {
        let source = ModelSource {
            hub_repo: "TinyLlama/TinyLlama-1.1B-Chat-v1.0".into(),
            offline_asset: None,
        };
        let error = resolve(&source, &["config.json"], Preference::OfflineOnly).unwrap_err();
        assert!(format!("{error:#}").contains("TinyLlama/TinyLlama-1.1B-Chat-v1.0"));
    }
}
