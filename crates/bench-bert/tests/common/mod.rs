//! What the tests share: the real MiniLM weights (registry asset `minilm`)
//! and both twins built from one checkpoint.

#![allow(dead_code)]

use bench_bert::{mlx, torch, BertConfig, Checkpoint, Label, TextEncoder};
use bench_core::assets::asset_file;
use bench_core::{DeviceKind, Precision};
use fw_mlx::MlxRuntime;
use fw_torch::TorchRuntime;

/// Both runtimes on the CPU, float32, one thread each (CI has two cores).
pub fn runtimes() -> (MlxRuntime, TorchRuntime) {
    runtimes_at(Precision::F32)
}

/// Both runtimes on the CPU at `precision`, one thread each.
pub fn runtimes_at(precision: Precision) -> (MlxRuntime, TorchRuntime) {
    (
        MlxRuntime::new(DeviceKind::Cpu, precision, 1).unwrap(),
        TorchRuntime::new(DeviceKind::Cpu, precision, 1).unwrap(),
    )
}

/// MiniLM's config and weights, with a classification head seeded by `seed`.
pub fn minilm(seed: u64) -> (BertConfig, Checkpoint) {
    let config = BertConfig::from_file(&asset_file("minilm", "config.json").unwrap()).unwrap();
    let mut checkpoint =
        Checkpoint::read(&asset_file("minilm", "model.safetensors").unwrap(), &config).unwrap();
    checkpoint.add_classifier(config.hidden_size, Label::COUNT, seed);
    (config, checkpoint)
}

pub fn minilm_tokenizer(seq_len: usize) -> TextEncoder {
    TextEncoder::from_file(&asset_file("minilm", "tokenizer.json").unwrap(), seq_len).unwrap()
}

/// Both twins' models from one checkpoint, in float32.
pub fn both_models(
    config: &BertConfig,
    checkpoint: &Checkpoint,
) -> (mlx::BertClassifier, torch::BertClassifier) {
    both_models_at(config, checkpoint, Precision::F32)
}

/// Both twins' models from one checkpoint, computing at `precision`.
pub fn both_models_at(
    config: &BertConfig,
    checkpoint: &Checkpoint,
    precision: Precision,
) -> (mlx::BertClassifier, torch::BertClassifier) {
    let (mlx_rt, torch_rt) = runtimes_at(precision);
    (
        mlx::BertClassifier::new(&mlx_rt, config, checkpoint).unwrap(),
        torch::BertClassifier::new(&torch_rt, config, checkpoint).unwrap(),
    )
}
