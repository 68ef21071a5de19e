//! bench-whisper: speech to text with Whisper, MLX vs PyTorch, measured as
//! whisper.cpp's bench reports it: total transcription time and real-time
//! factor, encoder time, and time per decoded token. Model loading is
//! outside every timing.
//!
//! Both twins build from one [`weights::WhisperWeights`] (Hub safetensors or the CTranslate2
//! registry copy), read the same log-mel (computed in plain Rust by
//! [`mel`]), and share the decoding loop ([`pipeline`]); only the model
//! code differs (`mlx.rs`, `torch.rs`).
//!
//! # What it measures
//!
//! Speech to text with Whisper (greedy decoding without timestamps,
//! Whisper's token suppression), timed as whisper.cpp's bench reports it;
//! model loading is never timed. Both twins load one weight set: Hugging
//! Face safetensors from the Hub (`--set model=openai/whisper-tiny.en`, or
//! any size of the family, `.en` or multilingual with `--set language=`),
//! or offline the registry's CTranslate2 tiny.en, read by our own
//! `model.bin` reader (fused q/k/v split). One plain-Rust front end for
//! both: WAV of any rate, format and channel count to 16 kHz mono,
//! Whisper's log-mel, 30 s windows.
//!
//! Cases:
//! - `transcribe`: the whole clip from samples to text (log-mel, per window
//!   encoder, cross-attention K/V and cached greedy decoding, detokenising);
//!   audio s/s, with the real-time factor `rtf`, the token count and the
//!   transcript in the row;
//! - `encode`: one window's encoder and cross-attention K/V;
//! - `decode-token`: greedy decoding of the first window with the
//!   self-attention KV cache, divided by its decoder steps.
//!
//! # Presets and knobs
//!
//! - `quick`: tiny.en (Hub, else the offline copy), JFK clip (11 s).
//! - `paper`: the same; choose a larger model with `--set model=`.
//!
//! `--set audio=clip.wav`, `--set source=auto|hub|offline`.
//!
//! # Tests
//!
//! Both twins transcribe the JFK clip word for word; encoder output and
//! first-step logits agree within 3e-4 (float32).

pub mod audio;
pub mod config;
pub mod ct2;
pub mod mel;
pub mod mlx;
mod modules;
pub mod pipeline;
pub mod source;
pub mod text;
pub mod torch;
pub mod weights;
pub mod workload;

use anyhow::{Context, Result};
use bench_core::{measure_case, CaseResult, Cell, Knob, Preset, Runtime, Throughput};
use bench_twin::{MlxRuntime, TorchRuntime, TwinBenchmark};

pub use crate::pipeline::WhisperTwin;
use crate::pipeline::{greedy_decode, max_sampled_tokens};
use crate::workload::common_settings;
pub use crate::workload::{Options, Workload, KNOBS};

pub struct Transcription;

impl TwinBenchmark for Transcription {
    const NAME: &'static str = "whisper";
    type Work = Workload;

    fn knobs() -> &'static [Knob] {
        &KNOBS
    }

    type Sizes = workload::Defaults;

    fn presets(preset: Preset) -> bench_core::PresetRow<Self::Sizes> {
        workload::presets(preset)
    }

    fn prepare(cell: &Cell) -> Result<Workload> {
        Workload::load(Options::from_cell(cell)?)
    }

    fn mlx(runtime: &MlxRuntime, cell: &Cell, work: &Workload) -> Result<Vec<CaseResult>> {
        let model = &work.model;
        let twin = mlx::Whisper::new(
            runtime,
            &model.weights,
            &model.dims,
            &model.masks,
            cell.execution,
        )?;
        measure_twin(runtime, &twin, work, cell)
    }

    fn torch(runtime: &TorchRuntime, cell: &Cell, work: &Workload) -> Result<Vec<CaseResult>> {
        let model = &work.model;
        let twin = torch::Whisper::new(
            runtime,
            &model.weights,
            &model.dims,
            &model.masks,
            cell.execution,
        )?;
        measure_twin(runtime, &twin, work, cell)
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

    // Read after the timed runs: best mode's CUDA graph is captured in
    // the first window's decoding.
    let common = common_settings(work).with("execution", twin.execution());
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
    // The first window's tokens, as TinyLlama's rows give theirs: the
    // GPU self-test compares them between eager and best mode.
    let first: Vec<String> = decoded.tokens.iter().take(32).map(u32::to_string).collect();
    decode.settings = common
        .with("decoder_steps", decoded.steps)
        .with("first_tokens", first.join(" "))
        .with("prompt_tokens", special.prompt.len())
        .with(
            "timed",
            "greedy decode of window 1 with KV cache, divided by decoder steps",
        );
    Ok(vec![transcribe, encode, decode])
}
