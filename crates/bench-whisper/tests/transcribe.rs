//! The MLX twin transcribes the JFK clip word for word with tiny.en,
//! float32, one window and two. The PyTorch twin's transcript is tested in
//! `transcribe_torch.rs`: a test process that ran both frameworks' thread
//! pools at once was seen to corrupt its heap while exiting, after every
//! test had passed (about 1 run in 20, before and after the suite's own
//! changes); one framework per test process, as the runners have it.

mod common;

use bench_core::{DeviceKind, Execution, Precision};
use bench_whisper::mlx;
use common::{check_transcript, check_two_window_transcript, tiny_en};
use fw_mlx::MlxRuntime;

fn twin() -> mlx::Whisper {
    let model = tiny_en();
    let runtime = MlxRuntime::new(DeviceKind::Cpu, Precision::F32, 2).unwrap();
    mlx::Whisper::new(
        &runtime,
        &model.weights,
        &model.dims,
        &model.masks,
        Execution::Best,
    )
    .unwrap()
}

#[test]
fn mlx_transcribes_jfk_word_for_word() {
    check_transcript("MLX", &twin());
}

#[test]
fn longer_audio_is_transcribed_window_by_window() {
    check_two_window_transcript("MLX", &twin());
}
