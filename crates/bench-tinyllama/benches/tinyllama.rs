//! Criterion harness: TinyLlama at its real size (random weights, seed 0)
//! on the CPU, float32, both twins, each in its own process: the quick preset's
//! prompt pass (128 tokens) and one generation step after it.
//! `cargo xtask bench` is the suite's runner; this gives Criterion's
//! statistics and regression tracking for one crate.

use std::time::Duration;

use bench_core::{Precision, Preset, Runtime};
use bench_tinyllama::tokenizer::LlamaTokenizer;
use bench_tinyllama::weights::RandomWeights;
use bench_tinyllama::workload::{build_prompt, presets};
use bench_tinyllama::{mlx, torch, CausalLm, LlamaConfig, Logits};
use bench_twin::harness::{bench_synced, group, CpuTwin};
use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, SamplingMode};

/// The prompt pass from an empty cache, and one step after the prompt.
fn bench_model(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    runtime: &dyn Runtime,
    model: &mut dyn CausalLm,
    prompt: &[u32],
) {
    bench_synced(
        group,
        format!("prompt-{}/{name}", prompt.len()),
        runtime,
        || {
            model.reset();
            model.forward(prompt, Logits::Last).expect("prompt pass");
        },
    );
    model.reset();
    model.forward(prompt, Logits::Last).expect("prompt pass");
    bench_synced(group, format!("generate-step/{name}"), runtime, || {
        model.truncate(prompt.len());
        model.forward(&[prompt[1]], Logits::Last).expect("step");
    });
}

fn tinyllama(c: &mut Criterion) {
    // One twin per process: each holds 4.4 GB of float32 weights.
    let twin = CpuTwin::for_this_process(Precision::F32);
    let config = LlamaConfig::tinyllama();
    let weights = RandomWeights::new(0);
    let sizes = presets(Preset::Quick).sizes;
    let tokenizer = LlamaTokenizer::offline().expect("offline tokenizer");
    let prompt = build_prompt(&tokenizer, None, sizes.prompt_tokens).expect("prompt");
    let capacity = sizes.cache_positions();
    let mut group = group(c, "tinyllama-cpu-f32", Duration::from_secs(60));
    // Seconds per prompt pass on a small CPU: one iteration per sample.
    group.sampling_mode(SamplingMode::Flat);
    match &twin {
        CpuTwin::Mlx(runtime) => {
            let mut model = mlx::Llama::new(
                runtime,
                &config,
                &weights,
                capacity,
                bench_core::Execution::Best,
            )
            .expect("MLX model");
            bench_model(&mut group, "mlx", runtime, &mut model, &prompt);
        }
        CpuTwin::Torch(runtime) => {
            let mut model = torch::Llama::new(
                runtime,
                &config,
                &weights,
                capacity,
                bench_core::Execution::Best,
            )
            .expect("PyTorch model");
            bench_model(&mut group, "torch", runtime, &mut model, &prompt);
        }
    }
    group.finish();
}

criterion_group!(benches, tinyllama);
criterion_main!(benches);
