//! The work, independent of framework: sizes per preset, the model source
//! (Hub weights or seeded random ones), the prompt, the sampling knobs.

use std::path::PathBuf;
use std::sync::LazyLock;

use anyhow::{bail, ensure, Context, Result};
use bench_core::{Cell, Kind, Knob, KnobDefaults, MeasureSettings, Preset, PresetRow, Settings};
use model_hub::{ModelSource, Preference, SafetensorsFiles, TensorSource};

use crate::config::LlamaConfig;
use crate::sampler::SamplingConfig;
use crate::tokenizer::LlamaTokenizer;
use crate::weights::RandomWeights;

/// The model measured by default.
pub const TINYLLAMA_REPO: &str = "TinyLlama/TinyLlama-1.1B-Chat-v1.0";

/// The `--set` knobs; defaults are the quick preset's (the paper's in
/// brackets), the sizes read from [`presets`].
pub static KNOBS: LazyLock<Vec<Knob>> = LazyLock::new(|| knobs(&KnobDefaults::of(presets)));

/// The knobs, with the defaults that both presets' sizes give.
pub fn knobs(defaults: &KnobDefaults<GenerationConfig>) -> Vec<Knob> {
    vec![
        Knob::new(
            "model",
            Kind::Model,
            TINYLLAMA_REPO,
            "a Llama: Hub id, or a folder with config.json, tokenizer.json, model.safetensors (or its index and shards)",
        ),
        Knob::new("hub_repo", Kind::Model, TINYLLAMA_REPO, "the same as model (its older name)"),
        Knob::new(
            "weights",
            Kind::Choice(&["auto", "hub", "random"]),
            "auto",
            "auto: the model, else seeded random weights; hub: the model or an error; random: no download",
        ),
        Knob::new("config", Kind::Path, "TinyLlama's", "a config.json giving random weights another shape"),
        Knob::new(
            "prompt",
            Kind::Text,
            "a fixed English text cut to prompt_tokens",
            "your own prompt text (in the model's chat template); prompt_tokens is then its length",
        ),
        Knob::at_least("prompt_tokens", 1, defaults.text(|g| g.prompt_tokens), "prompt length in tokens"),
        Knob::at_least("gen_tokens", 1, defaults.text(|g| g.gen_tokens), "generation steps after the first token"),
        Knob::new(
            "temperature",
            Kind::Float { min: 0.0, max: f64::INFINITY },
            defaults.text(|g| {
                let t = g.sampling.temperature;
                if t == 0.0 { "0 (greedy)".to_owned() } else { t.to_string() }
            }),
            "sampling temperature; 0 is greedy",
        ),
        Knob::new("top_p", Kind::Float { min: 0.0, max: 1.0 }, defaults.text(|g| g.sampling.top_p), "nucleus sampling's probability mass, in (0, 1]"),
        Knob::int("sample_seed", 0, i64::MAX, defaults.text(|g| g.sampling.seed), "seed of the sampler"),
    ]
}

/// Prompt and generation lengths, as llama-bench's pp/tg and
/// mlx_lm.benchmark's -p/-g: fixed, with end-of-sequence ignored.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerationConfig {
    pub prompt_tokens: usize,
    /// Single-token generation steps after the first token.
    pub gen_tokens: usize,
    pub sampling: SamplingConfig,
}

/// The one table of sizes per preset (see [`bench_core::presets`]): the
/// cells' work, the rows' measurement settings, the knobs' defaults and
/// the Criterion harness all read it. One repetition is a whole generation
/// (prompt + steps): seconds at TinyLlama's size on a CPU, so few
/// repetitions.
pub fn presets(preset: Preset) -> PresetRow<GenerationConfig> {
    match preset {
        Preset::Quick => PresetRow {
            sizes: GenerationConfig {
                prompt_tokens: 128,
                gen_tokens: 32,
                sampling: SamplingConfig::default(),
            },
            measure: MeasureSettings::new(1, 5, 3, 60),
            needs_gib: NEEDS_GIB,
        },
        // llama-bench's pp512 / tg128; a laptop holds the model as well.
        Preset::Laptop | Preset::Paper => PresetRow {
            sizes: GenerationConfig {
                prompt_tokens: 512,
                gen_tokens: 128,
                sampling: SamplingConfig::default(),
            },
            measure: MeasureSettings::new(1, 10, 3, 600),
            needs_gib: NEEDS_GIB,
        },
    }
}

/// TinyLlama's 1.1B parameters in float32 (4.4 GB) with the caches (and,
/// for a cell run by hand, the copy ceiling's buffers, after the model is
/// freed): every preset runs the whole model.
const NEEDS_GIB: f64 = 6.0;

impl GenerationConfig {
    /// The preset's sizes with the cell's `--set` knobs applied:
    /// prompt_tokens, gen_tokens, temperature, top_p, sample_seed.
    pub fn for_cell(cell: &Cell) -> Result<Self> {
        let mut config = presets(cell.preset).sizes;
        if cell.option::<String>("prompt")?.is_some() {
            ensure!(
                cell.option::<usize>("prompt_tokens")?.is_none(),
                "--set prompt and --set prompt_tokens exclude each other: a given prompt is as long as it is"
            );
        }
        cell.set_option("prompt_tokens", &mut config.prompt_tokens)?;
        cell.set_option("gen_tokens", &mut config.gen_tokens)?;
        cell.set_option("temperature", &mut config.sampling.temperature)?;
        cell.set_option("top_p", &mut config.sampling.top_p)?;
        cell.set_option("sample_seed", &mut config.sampling.seed)?;
        ensure!(
            config.prompt_tokens >= 1,
            "prompt_tokens must be at least 1"
        );
        config.sampling.validate()?;
        Ok(config)
    }

    /// Cache positions a generation needs: the prompt and every step's
    /// input token (the last token chosen is never fed back).
    pub fn cache_positions(&self) -> usize {
        self.prompt_tokens + self.gen_tokens
    }
}

/// A chat prompt format, wrapped around the prompt text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatTemplate {
    pub name: &'static str,
    pub before: &'static str,
    pub after: &'static str,
}

/// TinyLlama-Chat's template (Zephyr's): one user turn, then the
/// assistant's header, as its tokenizer_config.json renders it.
pub const ZEPHYR_TEMPLATE: ChatTemplate = ChatTemplate {
    name: "zephyr",
    before: "<|user|>\n",
    after: "</s>\n<|assistant|>\n",
};

/// Everything a cell's twins share: the model's shape, its weights, the
/// prompt, and what the rows record about them.
pub struct Workload {
    pub config: LlamaConfig,
    pub weights: Box<dyn TensorSource>,
    pub tokenizer_origin: String,
    /// Turns the generated ids back into text for the row.
    pub tokenizer: LlamaTokenizer,
    pub prompt: Vec<u32>,
    pub prompt_format: String,
    pub generation: GenerationConfig,
}

impl Workload {
    /// Resolves the model for a cell: `--set weights=auto` (default: the
    /// Hub, else random weights), `hub`, or `random`; `--set model=..` (a Hub
    /// id or a local folder; `hub_repo=` is its older name);
    /// `--set config=<config.json>` gives random weights another shape.
    pub fn for_cell(cell: &Cell) -> Result<Self> {
        let mut generation = GenerationConfig::for_cell(cell)?;
        let mode: String = cell.option("weights")?.unwrap_or_else(|| "auto".into());
        let older: Option<String> = cell.option("hub_repo")?;
        let repo: String = cell
            .option("model")?
            .or(older)
            .unwrap_or_else(|| TINYLLAMA_REPO.into());
        // A local folder asked for is never swapped for random weights.
        let local = model_hub::local_folder(&repo).is_some();
        let hub = match mode.as_str() {
            "random" => None,
            "auto" if local => Some(HubModel::fetch(&repo)?),
            "hub" => Some(HubModel::fetch(&repo)?),
            "auto" => HubModel::fetch(&repo)
                .map_err(|error| {
                    let cause = error.root_cause();
                    eprintln!("random weights instead of {repo}: {error}: {cause}");
                })
                .ok(),
            other => bail!("--set weights={other}: expected auto, hub or random"),
        };
        let (config, weights, tokenizer, template): (_, Box<dyn TensorSource>, _, _) = match hub {
            Some(hub) => (
                hub.config,
                Box::new(hub.weights),
                hub.tokenizer,
                hub.template,
            ),
            None => {
                let config = match cell.option::<PathBuf>("config")? {
                    Some(path) => LlamaConfig::from_file(&path)?,
                    None => LlamaConfig::tinyllama(),
                };
                let weights = RandomWeights::new(cell.seed);
                (config, Box::new(weights), LlamaTokenizer::offline()?, None)
            }
        };
        let prompt = match cell.option::<String>("prompt")? {
            Some(text) => user_prompt(&tokenizer, template.as_ref(), &text)?,
            None => build_prompt(&tokenizer, template.as_ref(), generation.prompt_tokens)?,
        };
        generation.prompt_tokens = prompt.len();
        if let Some(&bad) = prompt.iter().find(|&&id| id as usize >= config.vocab_size) {
            bail!(
                "the tokenizer ({}) gives id {bad}, outside the model's vocabulary of {}",
                tokenizer.origin,
                config.vocab_size
            );
        }
        Ok(Self {
            config,
            weights,
            tokenizer_origin: tokenizer.origin.clone(),
            tokenizer,
            prompt,
            prompt_format: template.map_or("plain".into(), |t| format!("{} chat", t.name)),
            generation,
        })
    }

    /// Settings shared by every row of the cell.
    pub fn settings(&self) -> Settings {
        let g = &self.generation;
        Settings::new()
            .with("weights", self.weights.origin())
            .with("tokenizer", &self.tokenizer_origin)
            .with("prompt_tokens", g.prompt_tokens)
            .with("gen_tokens", g.gen_tokens)
            .with("prompt_format", &self.prompt_format)
            .with("sampling", g.sampling.describe())
            .with("eos", "ignored")
            .with("layers", self.config.num_layers)
            .with("hidden", self.config.hidden_size)
            .with(
                "heads",
                format!("{}q/{}kv", self.config.num_heads, self.config.num_kv_heads),
            )
            .with("parameters", self.config.parameter_count())
    }
}

/// A model from the Hugging Face Hub: config, tokenizer, safetensors.
struct HubModel {
    config: LlamaConfig,
    weights: SafetensorsFiles,
    tokenizer: LlamaTokenizer,
    template: Option<ChatTemplate>,
}

impl HubModel {
    fn fetch(repo: &str) -> Result<Self> {
        let source = ModelSource {
            hub_repo: repo.to_owned(),
            offline_asset: None,
        };
        let meta = model_hub::resolve(
            &source,
            &["config.json", "tokenizer.json"],
            Preference::HubOnly,
        )?;
        let config = LlamaConfig::from_file(meta.path("config.json")?)?;
        let tokenizer =
            LlamaTokenizer::from_tokenizer_json(meta.path("tokenizer.json")?, &meta.origin)?;
        let files = match model_hub::resolve(&source, &["model.safetensors"], Preference::HubOnly) {
            Ok(single) => vec![single.path("model.safetensors")?.clone()],
            Err(_) => {
                let index = "model.safetensors.index.json";
                let found = model_hub::resolve(&source, &[index], Preference::HubOnly)
                    .with_context(|| format!("{repo} has neither model.safetensors nor {index}"))?;
                let shards = SafetensorsFiles::shards_of_index(found.path(index)?)?;
                let names: Vec<&str> = shards.iter().map(String::as_str).collect();
                let found = model_hub::resolve(&source, &names, Preference::HubOnly)?;
                found.files.into_values().collect()
            }
        };
        let weights = SafetensorsFiles::open(&files, &meta.origin)?;
        // A chat model's template is in its tokenizer_config.json; Zephyr's
        // markers there mean TinyLlama-Chat's format. No file: plain text.
        let template = model_hub::resolve(&source, &["tokenizer_config.json"], Preference::HubOnly)
            .ok()
            .and_then(|found| {
                std::fs::read_to_string(found.path("tokenizer_config.json").ok()?).ok()
            })
            .filter(|text| text.contains("<|user|>") && text.contains("<|assistant|>"))
            .map(|_| ZEPHYR_TEMPLATE);
        Ok(Self {
            config,
            weights,
            tokenizer,
            template,
        })
    }
}

/// English text that the prompt is cut from (repeated as needed).
const PROMPT_TEXT: &str = "The history of computing is a story of machines that learned to \
    remember more and to forget less. Early calculators kept a handful of digits in gears; \
    later machines stored programs beside their data, and the speed of a computation came to \
    depend as much on moving numbers between memory and processor as on the arithmetic \
    itself. Explain, step by step, why reading weights from memory limits how fast a \
    language model can write each new word, and what that means for choosing hardware. ";

/// The user's own prompt text: `<s>`, the chat template around the text
/// (if any), as the model's tokenizer reads it.
pub fn user_prompt(
    tokenizer: &LlamaTokenizer,
    template: Option<&ChatTemplate>,
    text: &str,
) -> Result<Vec<u32>> {
    ensure!(!text.trim().is_empty(), "--set prompt= is empty");
    let (before, after) = template.map_or(("", ""), |t| (t.before, t.after));
    let mut prompt = tokenizer.encode(&format!("{before}{text}"), true)?;
    if !after.is_empty() {
        prompt.extend(tokenizer.encode(after, false)?);
    }
    Ok(prompt)
}

/// Exactly `length` prompt token ids: `<s>`, the chat template's opening
/// (if any) and the prompt text, cut to fit, then the template's close.
/// The close is tokenized on its own and appended, so that the length is
/// exact whatever the text; it starts with a control token (`</s>`), where
/// the tokenizer splits the text anyway.
pub fn build_prompt(
    tokenizer: &LlamaTokenizer,
    template: Option<&ChatTemplate>,
    length: usize,
) -> Result<Vec<u32>> {
    let (before, after) = template.map_or(("", ""), |t| (t.before, t.after));
    let closing = if after.is_empty() {
        Vec::new()
    } else {
        tokenizer.encode(after, false)?
    };
    let opening = tokenizer.encode(before, true)?;
    ensure!(
        opening.first() == tokenizer.token_id("<s>").as_ref(),
        "the tokenizer ({}) does not start a prompt with <s>",
        tokenizer.origin
    );
    let room = length
        .checked_sub(opening.len() + closing.len())
        .with_context(|| {
            format!("prompt_tokens={length} is shorter than the chat template's own tokens")
        })?;
    let per_copy = tokenizer.encode(PROMPT_TEXT, false)?.len().max(1);
    let text = format!("{before}{}", PROMPT_TEXT.repeat(room / per_copy + 2));
    let mut prompt = tokenizer.encode(&text, true)?;
    prompt.truncate(length - closing.len());
    prompt.extend(closing);
    ensure!(
        prompt.len() == length,
        "built {} prompt tokens, not {length}",
        prompt.len()
    );
    Ok(prompt)
}

#[cfg(test)]
mod tests {
    use bench_core::presets::assert_knobs_follow_the_cells;

    use super::*;

    /// `--help`'s defaults are the preset table's, and a cell of each
    /// preset runs them.
    #[test]
    fn knob_defaults_are_the_presets_that_cells_run() {
        assert_knobs_follow_the_cells(&KNOBS, knobs, GenerationConfig::for_cell);
    }
}
