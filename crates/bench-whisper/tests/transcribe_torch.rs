//! The PyTorch twin transcribes the JFK clip word for word with tiny.en,
//! float32 (the MLX twin: `transcribe.rs`; one framework per test process).

mod common;

use bench_core::{DeviceKind, Precision};
use bench_whisper::torch;
use common::{check_transcript, tiny_en};
use fw_torch::TorchRuntime;

#[test]
fn torch_transcribes_jfk_word_for_word() {
    let model = tiny_en();
    let runtime = TorchRuntime::new(DeviceKind::Cpu, Precision::F32, 2).unwrap();
    let twin = torch::Whisper::new(&runtime, &model.weights, &model.dims, &model.masks).unwrap();
    check_transcript("PyTorch", &twin);
}
