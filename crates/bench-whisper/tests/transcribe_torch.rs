//! The PyTorch twin transcribes the JFK clip word for word with tiny.en,
//! float32, in both modes: eager (a growing cache) and best (the static
//! decoder, whose step runs op by op off CUDA), one window and two (the
//! MLX twin: `transcribe.rs`; one framework per test process).

mod common;

use bench_core::{DeviceKind, Execution, Precision};
use bench_whisper::torch;
use common::{check_transcript, check_two_window_transcript, tiny_en};
use fw_torch::TorchRuntime;

fn twin(execution: Execution) -> torch::Whisper {
    let model = tiny_en();
    let runtime = TorchRuntime::new(DeviceKind::Cpu, Precision::F32, 2).unwrap();
    torch::Whisper::new(
        &runtime,
        &model.weights,
        &model.dims,
        &model.masks,
        execution,
    )
    .unwrap()
}

#[test]
fn torch_transcribes_jfk_word_for_word_in_both_modes() {
    check_transcript("PyTorch eager", &twin(Execution::Eager));
    check_transcript("PyTorch best", &twin(Execution::Best));
}

#[test]
fn the_static_decoder_transcribes_window_after_window() {
    // the second session loads its own cross-attention keys/values and
    // restarts the static cache from its prompt
    check_two_window_transcript("PyTorch best", &twin(Execution::Best));
}
