//! Where the model comes from. Online, the Hugging Face Hub (config.json,
//! model.safetensors, tokenizer.json of e.g. openai/whisper-tiny.en);
//! offline, the registry's CTranslate2 copy of tiny.en; or a local folder
//! in either format. All of them end in the same [`WhisperModel`].

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use model_hub::{ModelFiles, ModelSource, Preference};

use crate::config::{read_json, ModelDims, SuppressRules};
use crate::ct2::Ct2Model;
use crate::text::{SuppressMasks, WhisperTokenizer};
use crate::weights::WhisperWeights;

pub const DEFAULT_MODEL: &str = "openai/whisper-tiny.en";

/// The registry copy (data/assets.toml) that stands in for a Hub model offline.
fn offline_copy(hub_repo: &str) -> Option<&'static str> {
    (hub_repo == DEFAULT_MODEL).then_some("whisper-tiny-en-ct2")
}

const HF_FILES: [&str; 3] = ["config.json", "model.safetensors", "tokenizer.json"];
const CT2_FILES: [&str; 3] = ["config.json", "model.bin", "tokenizer.json"];

/// `--set source=`: where to look for the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourcePreference {
    /// The Hub, else the registry copy.
    Auto,
    Hub,
    Offline,
}

impl FromStr for SourcePreference {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "auto" => Ok(Self::Auto),
            "hub" => Ok(Self::Hub),
            "offline" => Ok(Self::Offline),
            other => Err(format!("expected auto, hub or offline, got '{other}'")),
        }
    }
}

impl fmt::Display for SourcePreference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Hub => "hub",
            Self::Offline => "offline",
        })
    }
}

/// A model ready for either twin: one set of weights, one tokenizer, one set
/// of suppression masks.
pub struct WhisperModel {
    /// The Hub id or folder asked for.
    pub name: String,
    /// "hub:<repo>", "asset:<name>" or "dir:<path>".
    pub origin: String,
    pub format: &'static str,
    pub dims: ModelDims,
    pub weights: WhisperWeights,
    pub tokenizer: WhisperTokenizer,
    pub masks: SuppressMasks,
}

/// Loads `model`: a local folder (CTranslate2 or Hugging Face layout) or a
/// Hub id, from the Hub or its registry copy as `source` says.
pub fn load(model: &str, source: SourcePreference, language: &str) -> Result<WhisperModel> {
    if let Some(folder) = model_hub::local_folder(model) {
        return load_folder(folder, language);
    }
    let hub_error = if source == SourcePreference::Offline {
        None
    } else {
        let hub = ModelSource {
            hub_repo: model.to_owned(),
            offline_asset: None,
        };
        match model_hub::resolve(&hub, &HF_FILES, Preference::HubOnly) {
            Ok(files) => return load_hub_files(model, &files, language),
            Err(error) if source == SourcePreference::Hub => return Err(error),
            Err(error) => Some(error),
        }
    };
    let Some(asset) = offline_copy(model) else {
        let reason = hub_error.map_or_else(String::new, |e| format!(" (the Hub failed: {e:#})"));
        bail!("{model} has no registry copy for offline use{reason}");
    };
    let copy = ModelSource {
        hub_repo: model.to_owned(),
        offline_asset: Some(asset.to_owned()),
    };
    let files = model_hub::resolve(&copy, &CT2_FILES, Preference::OfflineOnly)?;
    load_ct2(model, &files, language)
}

/// A folder with model.bin (CTranslate2) or model.safetensors (Hugging
/// Face); the error names the files it lacks.
pub fn load_folder(folder: &Path, language: &str) -> Result<WhisperModel> {
    let name = folder.display().to_string();
    if folder.join("model.bin").is_file() {
        load_ct2(
            &name,
            &model_hub::from_folder(folder, &CT2_FILES)?,
            language,
        )
    } else if folder.join("model.safetensors").is_file() || !folder.is_dir() {
        let mut found = model_hub::from_folder(folder, &HF_FILES)?;
        let generation = folder.join("generation_config.json");
        if generation.is_file() {
            found
                .files
                .insert("generation_config.json".into(), generation);
        }
        load_hf(&name, &found, language)
    } else {
        bail!("{name} has neither model.bin (CTranslate2) nor model.safetensors (Hugging Face)")
    }
}

fn load_hub_files(model: &str, files: &ModelFiles, language: &str) -> Result<WhisperModel> {
    let mut files = files.clone();
    // Newer checkpoints keep the suppression lists in generation_config.json;
    // it is optional, so its absence is no error.
    let hub = ModelSource {
        hub_repo: model.to_owned(),
        offline_asset: None,
    };
    if let Ok(extra) = model_hub::resolve(&hub, &["generation_config.json"], Preference::HubOnly) {
        files.files.extend(extra.files);
    }
    load_hf(model, &files, language)
}

fn load_hf(name: &str, files: &ModelFiles, language: &str) -> Result<WhisperModel> {
    let config_path = files.path("config.json")?;
    let config = read_json(config_path)?;
    let dims = ModelDims::from_hf_config(&config, config_path)?;
    let mut rules = SuppressRules::from_config(&config, config_path)?;
    if rules.is_none() {
        if let Ok(path) = files.path("generation_config.json") {
            rules = SuppressRules::from_config(&read_json(path)?, path)?;
        }
    }
    let rules = rules.with_context(|| {
        format!(
            "{}: neither config.json nor generation_config.json lists suppress_tokens",
            files.origin
        )
    })?;
    let weights = WhisperWeights::read_safetensors(files.path("model.safetensors")?, &dims)?;
    finish(name, "safetensors", dims, weights, &rules, files, language)
}

fn load_ct2(name: &str, files: &ModelFiles, language: &str) -> Result<WhisperModel> {
    let model = Ct2Model::read(files.path("model.bin")?)?;
    let dims = ModelDims::from_ct2(&model)?;
    let config_path = files.path("config.json")?;
    let rules = SuppressRules::from_config(&read_json(config_path)?, config_path)?
        .with_context(|| format!("{} lists no suppress_ids", config_path.display()))?;
    let weights = WhisperWeights::from_ct2(&model, &dims)?;
    finish(name, "ctranslate2", dims, weights, &rules, files, language)
}

fn finish(
    name: &str,
    format: &'static str,
    dims: ModelDims,
    weights: WhisperWeights,
    rules: &SuppressRules,
    files: &ModelFiles,
    language: &str,
) -> Result<WhisperModel> {
    let tokenizer = WhisperTokenizer::load(files.path("tokenizer.json")?, &dims, language)?;
    let masks = SuppressMasks::new(rules, &tokenizer.special, dims.n_vocab)
        .with_context(|| format!("suppression rules of {}", files.origin))?;
    Ok(WhisperModel {
        name: name.to_owned(),
        origin: files.origin.clone(),
        format,
        dims,
        weights,
        tokenizer,
        masks,
    })
}
