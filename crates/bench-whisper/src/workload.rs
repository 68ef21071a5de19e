//! What both twins work on, framework-free: the `--set` knobs, the model
//! and clip they read, and the settings every row records.

use std::path::PathBuf;
use std::sync::LazyLock;

use anyhow::Result;
use bench_core::{Cell, Kind, Knob, KnobDefaults, MeasureSettings, Preset, PresetRow, Settings};

use crate::audio::{self, Audio};
use crate::mel::MelFrontEnd;
use crate::pipeline::Transcriber;
use crate::source::{self, SourcePreference, WhisperModel};

/// What a cell reads when no knob says otherwise.
#[derive(Clone, Debug, PartialEq)]
pub struct Defaults {
    pub model: String,
    pub source: SourcePreference,
    pub language: String,
}

impl Defaults {
    /// What a cell runs of them, its knobs applied.
    pub fn for_cell(cell: &Cell) -> Result<Self> {
        let options = Options::from_cell(cell)?;
        Ok(Self {
            model: options.model,
            source: options.source,
            language: options.language,
        })
    }
}

/// The one table per preset (see [`bench_core::presets`]): the cells' work,
/// the rows' measurement settings, the knobs' defaults and the Criterion
/// harness all read it. Every preset transcribes one model and clip, as
/// whisper.cpp's bench does; the laptop and paper presets measure longer.
pub fn presets(preset: Preset) -> PresetRow<Defaults> {
    let sizes = Defaults {
        model: source::DEFAULT_MODEL.to_owned(),
        source: SourcePreference::Auto,
        language: "en".to_owned(),
    };
    let measure = match preset {
        Preset::Quick => MeasureSettings::new(1, 5, 3, 20),
        Preset::Laptop | Preset::Paper => MeasureSettings::new(2, 10, 5, 300),
    };
    // tiny.en's 39M parameters, the clip's windows and the caches.
    PresetRow {
        sizes,
        measure,
        needs_gib: 1.0,
    }
}

/// The `--set` knobs' declaration, the defaults read from [`presets`].
pub static KNOBS: LazyLock<Vec<Knob>> = LazyLock::new(|| knobs(&KnobDefaults::of(presets)));

/// The knobs, with the defaults that both presets give.
pub fn knobs(defaults: &KnobDefaults<Defaults>) -> Vec<Knob> {
    vec![
        Knob::new(
            "model",
            Kind::Model,
            defaults.text(|d| d.model.clone()),
            "a Whisper: Hub id, or a folder with config.json, model.safetensors, tokenizer.json (or CTranslate2's model.bin)",
        ),
        Knob::new(
            "source",
            Kind::Choice(&["auto", "hub", "offline"]),
            defaults.text(|d| d.source),
            "auto: the Hub, else the registry copy; hub: the Hub only; offline: the registry copy",
        ),
        Knob::new("audio", Kind::Path, "the jfk asset's jfk.wav", "a WAV file to transcribe"),
        Knob::new("language", Kind::Text, defaults.text(|d| d.language.clone()), "spoken language, for multilingual models"),
    ]
}

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
    /// The preset's model on the default clip: what the Criterion harness
    /// runs.
    pub fn for_preset(preset: Preset) -> Result<Self> {
        let Defaults {
            model,
            source,
            language,
        } = presets(preset).sizes;
        Ok(Self {
            model,
            source,
            audio: default_audio()?,
            language,
        })
    }

    /// The preset's defaults with the cell's `--set` knobs applied.
    pub fn from_cell(cell: &Cell) -> Result<Self> {
        let preset = presets(cell.preset).sizes;
        let audio = match cell.option::<PathBuf>("audio")? {
            Some(path) => path,
            None => default_audio()?,
        };
        Ok(Self {
            model: cell.option("model")?.unwrap_or(preset.model),
            source: cell.option("source")?.unwrap_or(preset.source),
            audio,
            language: cell.option("language")?.unwrap_or(preset.language),
        })
    }
}

/// The JFK clip of the `jfk` asset.
fn default_audio() -> Result<PathBuf> {
    bench_core::assets::asset_file("jfk", "jfk.wav")
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

#[cfg(test)]
mod tests {
    use bench_core::presets::assert_knobs_follow_the_cells;

    use super::*;

    /// `--help`'s defaults are the preset table's, and a cell of each
    /// preset runs them.
    #[test]
    fn knob_defaults_are_the_presets_that_cells_run() {
        assert_knobs_follow_the_cells(&KNOBS, knobs, Defaults::for_cell);
    }
}
