//! The MLX twin transcribes the JFK clip word for word with tiny.en,
//! float32, one window and two. The PyTorch twin's transcript is tested in
//! `transcribe_torch.rs`: a test process that ran both frameworks' thread
//! pools at once was seen to corrupt its heap while exiting, after every
//! test had passed (about 1 run in 20, before and after the suite's own
//! changes); one framework per test process, as the runners have it.

mod common;

use bench_core::{DeviceKind, Execution, Precision};
use bench_whisper::mlx;
use bench_whisper::text::normalize;
use common::{check_transcript, jfk, tiny_en, tiny_en_transcriber, JFK_WORDS};
use fw_mlx::MlxRuntime;

#[test]
fn mlx_transcribes_jfk_word_for_word() {
    let model = tiny_en();
    let runtime = MlxRuntime::new(DeviceKind::Cpu, Precision::F32, 2).unwrap();
    let twin = mlx::Whisper::new(
        &runtime,
        &model.weights,
        &model.dims,
        &model.masks,
        Execution::Best,
    )
    .unwrap();
    check_transcript("MLX", &twin);
}

#[test]
fn longer_audio_is_transcribed_window_by_window() {
    // the clip, silence up to the 30 s mark, the clip again: two windows,
    // each holding one full sentence
    let model = tiny_en();
    let clip = jfk().samples;
    let mut long = clip.clone();
    long.resize(30 * 16000, 0.0);
    long.extend_from_slice(&clip);
    let runtime = MlxRuntime::new(DeviceKind::Cpu, Precision::F32, 2).unwrap();
    let twin = mlx::Whisper::new(
        &runtime,
        &model.weights,
        &model.dims,
        &model.masks,
        Execution::Best,
    )
    .unwrap();
    let transcript = tiny_en_transcriber().transcribe(&twin, &long).unwrap();
    assert_eq!(transcript.windows, 2);
    assert_eq!(
        normalize(&transcript.text),
        format!("{JFK_WORDS} {JFK_WORDS}"),
        "{}",
        transcript.text
    );
    assert_eq!(transcript.decoder_steps, transcript.tokens.len() + 2);
}
