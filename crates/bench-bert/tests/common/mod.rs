//! What the tests share: the real MiniLM weights (registry asset `minilm`)
//! and both twins built from one set of weights.

#![allow(dead_code)]

use bench_bert::{mlx, torch, BertConfig, BertWeights, Label, TextEncoder};
use bench_core::assets::asset_file;
use bench_core::Precision;
use fw_mlx::MlxRuntime;
use fw_torch::TorchRuntime;

/// Both runtimes on the CPU, float32, one thread each (CI has two cores).
pub fn runtimes() -> (MlxRuntime, TorchRuntime) {
    runtimes_at(Precision::F32)
}

/// Both runtimes on the CPU at `precision`, one thread each.
pub fn runtimes_at(precision: Precision) -> (MlxRuntime, TorchRuntime) {
    bench_twin::testing::cpu_runtimes(precision, 1)
}

/// MiniLM's config and weights, with a classification head seeded by `seed`.
pub fn minilm(seed: u64) -> (BertConfig, BertWeights) {
    let config = BertConfig::from_file(&asset_file("minilm", "config.json").unwrap()).unwrap();
    let path = asset_file("minilm", "model.safetensors").unwrap();
    let weights = BertWeights::read(&path, &config, Label::COUNT, seed).unwrap();
    (config, weights)
}

pub fn minilm_tokenizer(seq_len: usize) -> TextEncoder {
    TextEncoder::from_file(&asset_file("minilm", "tokenizer.json").unwrap(), seq_len).unwrap()
}

/// Both twins' models from one set of weights, in float32.
pub fn both_models(
    config: &BertConfig,
    weights: &BertWeights,
) -> (mlx::BertClassifier, torch::BertClassifier) {
    both_models_at(config, weights, Precision::F32)
}

/// Both twins' models from one set of weights, computing at `precision`.
pub fn both_models_at(
    config: &BertConfig,
    weights: &BertWeights,
    precision: Precision,
) -> (mlx::BertClassifier, torch::BertClassifier) {
    let (mlx_rt, torch_rt) = runtimes_at(precision);
    (
        mlx::BertClassifier::new(&mlx_rt, config, weights).unwrap(),
        torch::BertClassifier::new(&torch_rt, config, weights).unwrap(),
    )
}
