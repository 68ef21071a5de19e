//! Criterion harness: one training step of the quick preset on the CPU,
//! both twins, float32, from the same checkpoint on the same batches.
//! `cargo xtask bench` is the suite's runner; this gives Criterion's
//! statistics and regression tracking for one crate.

use std::time::Duration;

use bench_core::{time_iterations, DeviceKind, Precision, Preset};
use bench_lm_train::{mlx, torch, weights, Dataset, LmConfig, LmTrainer};
use criterion::{criterion_group, criterion_main, Criterion};
use fw_mlx::MlxRuntime;
use fw_torch::TorchRuntime;

/// Batches uploaded before timing; the steps cycle through them.
const BATCHES: usize = 8;

fn lm_train(c: &mut Criterion) {
    let threads = bench_core::env::default_threads();
    // One framework per process (see bench_core::cli::harness_framework).
    let framework = bench_core::cli::harness_framework(&[fw_mlx::HOOKS, fw_torch::HOOKS], threads);
    let config = LmConfig::for_preset(Preset::Quick);
    let data = Dataset::shakespeare(&config, 0).expect("Shakespeare text (cargo xtask setup)");
    let host_batches: Vec<_> = (0..BATCHES).map(|i| data.train_batch(i)).collect();
    let checkpoint = weights::cached_checkpoint(&config.model, 0).expect("checkpoint");
    let mut group = c.benchmark_group("lm-train-cpu-f32");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));

    match framework {
        bench_core::Framework::Mlx => {
            let mlx_rt =
                MlxRuntime::new(DeviceKind::Cpu, Precision::F32, threads).expect("MLX on CPU");
            let mut mlx_trainer = mlx::Trainer::new(
                &mlx_rt,
                &config,
                &checkpoint,
                0,
                bench_core::Execution::Best,
            )
            .expect("MLX model");
            let mlx_batches: Vec<_> = host_batches
                .iter()
                .map(|b| mlx_trainer.upload(b).expect("MLX batch"))
                .collect();
            let mut next = 0;
            group.bench_function("step/mlx", |b| {
                b.iter_custom(|iters| {
                    time_iterations(&mlx_rt, iters, || {
                        mlx_trainer
                            .train_step(&mlx_batches[next % BATCHES])
                            .expect("MLX step");
                        next += 1;
                    })
                })
            });
            drop(mlx_trainer);
        }
        bench_core::Framework::Torch => {
            let torch_rt = TorchRuntime::new(DeviceKind::Cpu, Precision::F32, threads)
                .expect("PyTorch on CPU");
            let mut torch_trainer = torch::Trainer::new(
                &torch_rt,
                &config,
                &checkpoint,
                0,
                bench_core::Execution::Best,
            )
            .expect("PyTorch model");
            let torch_batches: Vec<_> = host_batches
                .iter()
                .map(|b| torch_trainer.upload(b).expect("PyTorch batch"))
                .collect();
            let mut next = 0;
            group.bench_function("step/torch", |b| {
                b.iter_custom(|iters| {
                    time_iterations(&torch_rt, iters, || {
                        torch_trainer
                            .train_step(&torch_batches[next % BATCHES])
                            .expect("PyTorch step");
                        next += 1;
                    })
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, lm_train);
criterion_main!(benches);
