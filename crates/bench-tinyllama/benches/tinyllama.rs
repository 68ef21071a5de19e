//! Criterion harness: TinyLlama at its real size (random weights, seed 0)
//! on the CPU, float32, both twins, each in its own process: the quick preset's
//! prompt pass (128 tokens) and one generation step after it.
//! `cargo xtask bench` is the suite's runner; this gives Criterion's
//! statistics and regression tracking for one crate.

use std::time::Duration;

use bench_core::{time_iterations, DeviceKind, Precision, Preset, Runtime};
use bench_tinyllama::tokenizer::LlamaTokenizer;
use bench_tinyllama::weights::RandomWeights;
use bench_tinyllama::workload::build_prompt;
use bench_tinyllama::{mlx, torch, CausalLm, GenerationConfig, LlamaConfig, Logits};
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, SamplingMode};
use fw_mlx::MlxRuntime;
use fw_torch::TorchRuntime;

/// The prompt pass from an empty cache, and one step after the prompt.
fn bench_model(
    group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    runtime: &dyn Runtime,
    model: &mut dyn CausalLm,
    prompt: &[u32],
) {
    group.bench_function(format!("prompt-{}/{name}", prompt.len()), |b| {
        b.iter_custom(|iters| {
            time_iterations(runtime, iters, || {
                model.reset();
                model.forward(prompt, Logits::Last).expect("prompt pass");
            })
        })
    });
    model.reset();
    model.forward(prompt, Logits::Last).expect("prompt pass");
    group.bench_function(format!("generate-step/{name}"), |b| {
        b.iter_custom(|iters| {
            time_iterations(runtime, iters, || {
                model.truncate(prompt.len());
                model.forward(&[prompt[1]], Logits::Last).expect("step");
            })
        })
    });
}

fn tinyllama(c: &mut Criterion) {
    let threads = bench_core::env::default_threads();
    // One framework per process (see bench_core::cli::harness_framework).
    let framework = bench_core::cli::harness_framework(&[fw_mlx::HOOKS, fw_torch::HOOKS], threads);
    let config = LlamaConfig::tinyllama();
    let weights = RandomWeights::new(0);
    let sizes = GenerationConfig::for_preset(Preset::Quick);
    let tokenizer = LlamaTokenizer::offline().expect("offline tokenizer");
    let prompt = build_prompt(&tokenizer, None, sizes.prompt_tokens).expect("prompt");
    let capacity = sizes.cache_positions();
    let mut group = c.benchmark_group("tinyllama-cpu-f32");
    // Seconds per prompt pass on a small CPU: the minimum sample count,
    // one iteration each.
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(60));

    // One twin per process: each holds 4.4 GB of float32 weights.
    match framework {
        bench_core::Framework::Mlx => {
            let runtime = MlxRuntime::new(DeviceKind::Cpu, Precision::F32, threads).expect("MLX");
            let mut model = mlx::Llama::new(
                &runtime,
                &config,
                &weights,
                capacity,
                bench_core::Execution::Best,
            )
            .expect("MLX model");
            bench_model(&mut group, "mlx", &runtime, &mut model, &prompt);
        }
        bench_core::Framework::Torch => {
            let runtime =
                TorchRuntime::new(DeviceKind::Cpu, Precision::F32, threads).expect("PyTorch");
            let mut model = torch::Llama::new(
                &runtime,
                &config,
                &weights,
                capacity,
                bench_core::Execution::Best,
            )
            .expect("PyTorch model");
            bench_model(&mut group, "torch", &runtime, &mut model, &prompt);
        }
    }
    group.finish();
}

criterion_group!(benches, tinyllama);
criterion_main!(benches);
