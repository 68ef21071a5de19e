//! Criterion harness: one training step of the quick preset (MiniLM,
//! sequences of 128, batch 16) on the CPU, both twins, float32.
//! `cargo xtask bench` is the suite's runner; this gives Criterion's
//! statistics and regression tracking for one crate.

use std::time::Duration;

use bench_bert::{mlx, permutation, torch, FineTune, FineTuneConfig, LabelledBatch, Prepared};
use bench_core::{time_iterations, DeviceKind, Precision, Preset, Runtime};
use criterion::{criterion_group, criterion_main, Criterion};
use fw_mlx::MlxRuntime;
use fw_torch::TorchRuntime;

/// Times `iters` training steps, cycling through `batches`, between two
/// synchronisations.
fn timed(
    runtime: &dyn Runtime,
    iters: u64,
    trainer: &mut impl FineTune,
    batches: &[LabelledBatch],
) -> Duration {
    let mut next = 0;
    time_iterations(runtime, iters, || {
        trainer
            .step(&batches[next % batches.len()])
            .expect("training step");
        next += 1;
    })
}

fn bert(c: &mut Criterion) {
    let threads = bench_core::env::default_threads();
    // One framework per process (see bench_core::cli::harness_framework).
    let framework = bench_core::cli::harness_framework(&[fw_mlx::HOOKS, fw_torch::HOOKS], threads);
    let mut fine_tune = FineTuneConfig::for_preset(Preset::Quick);
    // Enough emails for the steps Criterion runs; the test set is unused.
    fine_tune.train_emails = Some(256);
    fine_tune.test_emails = Some(fine_tune.batch_size);
    let prepared = Prepared::load(&fine_tune, 0).expect("model and data (run `cargo xtask setup`)");
    let order = permutation(prepared.train.len(), 0);
    let batches = prepared.train.batches(&order, fine_tune.batch_size);
    let mut group = c.benchmark_group("bert-cpu-f32");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(35));

    match framework {
        bench_core::Framework::Mlx => {
            let mlx_rt =
                MlxRuntime::new(DeviceKind::Cpu, Precision::F32, threads).expect("MLX on CPU");
            let mut mlx_trainer = mlx::Trainer::new(
                &mlx_rt,
                &prepared.bert,
                &prepared.weights,
                &fine_tune.optimizer,
                bench_core::Execution::Best,
            )
            .expect("MLX model");
            group.bench_function("train-step/mlx", |b| {
                b.iter_custom(|iters| timed(&mlx_rt, iters, &mut mlx_trainer, &batches))
            });
            drop(mlx_trainer);
        }
        bench_core::Framework::Torch => {
            let torch_rt = TorchRuntime::new(DeviceKind::Cpu, Precision::F32, threads)
                .expect("PyTorch on CPU");
            let mut torch_trainer = torch::Trainer::new(
                &torch_rt,
                &prepared.bert,
                &prepared.weights,
                &fine_tune.optimizer,
                bench_core::Execution::Best,
            )
            .expect("PyTorch model");
            group.bench_function("train-step/torch", |b| {
                b.iter_custom(|iters| timed(&torch_rt, iters, &mut torch_trainer, &batches))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bert);
criterion_main!(benches);
