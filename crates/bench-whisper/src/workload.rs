//! What both twins work on, framework-free: the `--set` knobs, the model
//! and clip they read, and the settings every row records.

use std::path::PathBuf;

use anyhow::Result;
use bench_core::{Cell, Kind, Knob, Settings};

use crate::audio::{self, Audio};
use crate::mel::MelFrontEnd;
use crate::pipeline::Transcriber;
use crate::source::{self, SourcePreference, WhisperModel};

/// The `--set` knobs' declaration.
pub const KNOBS: &[Knob] = &[
    Knob::new(
        "model",
        Kind::Model,
        source::DEFAULT_MODEL,
        "a Whisper: Hub id, or a folder with config.json, model.safetensors, tokenizer.json (or CTranslate2's model.bin)",
    ),
    Knob::new(
        "source",
        Kind::Choice(&["auto", "hub", "offline"]),
        "auto",
        "auto: the Hub, else the registry copy; hub: the Hub only; offline: the registry copy",
    ),
    Knob::new("audio", Kind::Path, "the jfk asset's jfk.wav", "a WAV file to transcribe"),
    Knob::new("language", Kind::Text, "en", "spoken language, for multilingual models"),
];

/// The `--set` knobs, the same for both twins.
#[derive(Clone, Debug)]
pub struct Options {
    /// A Hub id (default openai/whisper-tiny.en) or a local model folder.
    pub model: String,
    pub source: SourcePreference,
    /// A WAV file (default: the JFK clip of the `jfk` asset).
    pub audio: PathBuf,
    /// For multilingual models only.
    pub language: String,
}

impl Options {
    pub fn from_cell(cell: &Cell) -> Result<Self> {
        let audio = match cell.option::<PathBuf>("audio")? {
            Some(path) => path,
            None => bench_core::assets::asset_file("jfk", "jfk.wav")?,
        };
        Ok(Self {
            model: cell
                .option("model")?
                .unwrap_or_else(|| source::DEFAULT_MODEL.to_owned()),
            source: cell.option("source")?.unwrap_or(SourcePreference::Auto),
            audio,
            language: cell.option("language")?.unwrap_or_else(|| "en".to_owned()),
        })
    }
}

/// What both twins work on, prepared before any framework starts.
pub struct Workload {
    pub options: Options,
    pub model: WhisperModel,
    pub audio: Audio,
    pub front_end: MelFrontEnd,
}

impl Workload {
    pub fn load(options: Options) -> Result<Self> {
        let model = source::load(&options.model, options.source, &options.language)?;
        let audio = audio::read_wav(&options.audio)?;
        let front_end = MelFrontEnd::whisper(model.dims.n_mels)?;
        Ok(Self {
            options,
            model,
            audio,
            front_end,
        })
    }

    pub fn transcriber(&self) -> Transcriber<'_> {
        Transcriber {
            dims: &self.model.dims,
            front_end: &self.front_end,
            tokenizer: &self.model.tokenizer,
        }
    }
}

/// The model and clip, recorded with every case.
pub fn common_settings(work: &Workload) -> Settings {
    let dims = &work.model.dims;
    let audio_name = work.options.audio.file_name().map_or_else(
        || work.options.audio.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    Settings::new()
        .with("model", &work.model.name)
        .with("origin", &work.model.origin)
        .with("weights_format", work.model.format)
        .with(
            "layers",
            format!("{}+{}", dims.n_audio_layer, dims.n_text_layer),
        )
        .with("width", dims.n_audio_state)
        .with("audio", audio_name)
        .with("audio_seconds", format!("{:.3}", work.audio.seconds()))
}
