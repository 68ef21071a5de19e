//! Where a benchmark's model files come from. Real users have the Hugging
//! Face Hub, so the Hub is the primary source; offline (no network, or
//! `HF_HUB_OFFLINE=1`), the registry copy from `data/assets.toml` is used.
//! Every result row records which one it was. A model given as a local
//! folder (an absolute or ./relative path, or any existing folder) is read
//! from there, whatever the preference.
//!
//! The Hub client follows Hugging Face's conventions: `HF_HOME` (the cache),
//! `HF_ENDPOINT` (a mirror), `HF_TOKEN` (else the token file that
//! `huggingface-cli login` writes), `HF_HUB_OFFLINE`.

pub mod floats;
pub mod weights;

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use bench_core::assets::asset_dir;

pub use weights::{Init, Request, SafetensorsFiles, TensorSource, WeightPath, WeightTree};

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
    if let Some(folder) = local_folder(&source.hub_repo) {
        return from_folder(folder, files);
    }
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
    let api = hub_client()
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

/// The Hub client as Hugging Face's own tools configure it: `HF_HOME` and
/// `HF_ENDPOINT` (from_env), `HF_TOKEN` over the stored token, and progress
/// bars where someone watches (stderr a terminal).
pub fn hub_client() -> hf_hub::api::sync::ApiBuilder {
    let builder =
        hf_hub::api::sync::ApiBuilder::from_env().with_progress(std::io::stderr().is_terminal());
    match env_token() {
        Some(token) => builder.with_token(Some(token)),
        None => builder,
    }
}

/// `HF_TOKEN`, when set and not empty.
pub fn env_token() -> Option<String> {
    std::env::var("HF_TOKEN")
        .ok()
        .map(|token| token.trim().to_owned())
        .filter(|token| !token.is_empty())
}

/// `model` as a local folder: any existing folder, or a path written as
/// one (absolute, ./ or ../, ~/) so that a mistyped folder is not sent to
/// the Hub as a repo id.
pub fn local_folder(model: &str) -> Option<&Path> {
    let path = Path::new(model);
    let written_as_path = ["/", "./", "../", "~/"]
        .iter()
        .any(|start| model.starts_with(start));
    (written_as_path || path.is_dir()).then_some(path)
}

/// Files of a model in a local folder; the error names every missing one.
pub fn from_folder(folder: &Path, files: &[&str]) -> Result<ModelFiles> {
    anyhow::ensure!(
        folder.is_dir(),
        "the model folder {} does not exist (a local model is a folder with {})",
        folder.display(),
        files.join(", ")
    );
    let missing: Vec<&str> = files
        .iter()
        .copied()
        .filter(|file| !folder.join(file).is_file())
        .collect();
    anyhow::ensure!(
        missing.is_empty(),
        "the model folder {} has no {} (it needs {})",
        folder.display(),
        missing.join(", "),
        files.join(", ")
    );
    Ok(ModelFiles {
        files: files
            .iter()
            .map(|&file| (file.to_owned(), folder.join(file)))
            .collect(),
        origin: format!("dir:{}", folder.display()),
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
    fn a_local_folder_is_a_model_and_its_missing_files_are_named() {
        let minilm = asset_dir("minilm").unwrap();
        let source = ModelSource {
            hub_repo: minilm.display().to_string(),
            offline_asset: None,
        };
        let files = ["config.json", "model.safetensors", "tokenizer.json"];
        let found = resolve(&source, &files, Preference::HubOnly).unwrap();
        assert_eq!(found.origin, format!("dir:{}", minilm.display()));
        assert!(found.path("tokenizer.json").unwrap().is_file());
        let error = resolve(
            &source,
            &["config.json", "nope.bin", "gone.json"],
            Preference::Auto,
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("has no nope.bin, gone.json"), "{error}");
        let typo = ModelSource {
            hub_repo: "./no/such/model".into(),
            offline_asset: None,
        };
        let error = resolve(&typo, &files, Preference::HubOnly)
            .unwrap_err()
            .to_string();
        assert!(error.contains("./no/such/model does not exist"), "{error}");
        assert!(local_folder("org/name").is_none());
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
